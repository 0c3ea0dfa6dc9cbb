//! A worker thread: its loop, its local queue, and the blocking hooks.
//!
//! A worker is always in exactly one place (see README.md): running (in
//! `nr_running`, maybe searching), blocked (inside `wq::blocking`, out of
//! `nr_running`), or idle (on the idle list, parked).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{
    fence, AtomicBool, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::SeqCst,
};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use crate::task::Runnable;
use crossbeam_deque::{Steal, Stealer, Worker};

use super::manager;
use super::park::Parker;
use super::stamp::{PollStamp, Seen};
use super::Shared;
use crate::task::coop;

/// How often (in tasks) a worker takes from the injector before its own
/// queue, so that work from outside is not starved by a busy local queue.
const INJECTOR_INTERVAL: u32 = 61;

/// How many tasks in a row a worker runs from its LIFO slot before what it
/// wakes goes to the back of its queue instead (tokio's
/// `MAX_LIFO_POLLS_PER_TICK`): two tasks waking each other must not starve
/// the rest of the queue.
const MAX_LIFO_RUNS: u32 = 3;

/// How long a searcher that found nothing keeps watching the queues before
/// it goes idle. Waking a parked thread costs a futex call, a context
/// switch, and on a virtual machine without a guest idle driver an exit
/// from the halted vCPU: tens of microseconds. Work that arrives within a
/// few microseconds of the last (a thread outside the runtime that spawns
/// each item when the previous one is done) is then taken by the searcher
/// itself, without a kick. At most half of the running workers search, so
/// this costs at most this much CPU each time the runtime runs dry, and
/// less where another thread wants the CPU and the watch yields it
/// between looks (`Local::spin_for_work` says when).
const SEARCH_SPIN: Duration = Duration::from_micros(5);

/// After this many watches in a row found nothing, a worker watches only
/// once every [`WATCH_PROBE`] times it runs dry, until a watch finds work
/// again. A worker woken by a timer or an I/O event every millisecond finds
/// nothing in its watches, and each one cost it a `sched_yield` (about 4 us
/// of a 20-30 us wakeup on the reference VM).
const WATCH_MISSES: u32 = 4;

/// How often a worker whose watches keep finding nothing still watches, to
/// notice when the work starts arriving within the watch again.
const WATCH_PROBE: u32 = 16;

/// `spin_loop` hints between two looks of a watch that does not yield
/// (a `pause` takes some 10 to 140 cycles, by x86 generation), so that the
/// looks (a read lock on the worker list) do not keep the other workers'
/// cache lines moving.
const WATCH_SPIN_HINTS: u32 = 64;

/// Where a searcher's watch found work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Found {
    /// Nothing, within [`SEARCH_SPIN`].
    Nothing,
    /// In the injector: work from a thread outside the workers (a remote
    /// spawn, a wake from another thread).
    Injector,
    /// In another worker's queue or yield list, or woken by the reactor or
    /// a timer: work the runtime's own threads or the kernel produced.
    Runtime,
}

/// What a worker's searcher watches have been finding: whether they pay
/// (watches in a row that found nothing, then, past [`WATCH_MISSES`],
/// watches skipped), and whether they yield the CPU between looks.
#[derive(Debug)]
struct Watch {
    misses: Cell<u32>,
    /// Yield between looks (`sched_yield`) rather than spin: until a watch
    /// finds its work in the runtime, and again once one finds it in the
    /// injector (see `Local::spin_for_work`).
    yields: Cell<bool>,
}

impl Default for Watch {
    fn default() -> Watch {
        Watch {
            misses: Cell::new(0),
            yields: Cell::new(true),
        }
    }
}

impl Watch {
    /// Whether a searcher that found nothing should watch for work before
    /// it goes idle: unless its last [`WATCH_MISSES`] watches found
    /// nothing, and then once every [`WATCH_PROBE`] times.
    fn should_watch(&self) -> bool {
        let misses = self.misses.get();
        if misses < WATCH_MISSES {
            return true;
        }
        if misses - WATCH_MISSES + 1 == WATCH_PROBE {
            // A probe: if it finds nothing, skip again.
            self.misses.set(WATCH_MISSES - 1);
            return true;
        }
        self.misses.set(misses + 1);
        false
    }

    /// Whether the next watch yields the CPU between looks.
    fn yields(&self) -> bool {
        self.yields.get()
    }

    /// What a watch found.
    fn record(&self, found: Found) {
        match found {
            Found::Nothing => self.misses.set((self.misses.get() + 1).min(WATCH_MISSES)),
            Found::Injector | Found::Runtime => {
                self.misses.set(0);
                self.yields.set(found == Found::Injector);
            }
        }
    }
}

/// A new worker's queues, made before its thread so that their stealers
/// can be published first.
pub(super) struct Queues {
    pub(super) deque: Worker<Runnable>,
    pub(super) lifo: Worker<Runnable>,
    pub(super) yielded: Worker<Runnable>,
}

/// The part of a worker other threads touch.
pub(crate) struct WorkerShared {
    pub(super) stealer: Stealer<Runnable>,
    /// Steals from the worker's LIFO slot, so that the task woken last
    /// does not wait behind a worker stuck in a poll.
    pub(super) lifo_stealer: Stealer<Runnable>,
    /// Steals from the worker's yield list, so that tasks that yielded do
    /// not wait behind a worker stuck in a poll.
    pub(super) yield_stealer: Stealer<Runnable>,
    /// What the worker publishes about its current poll.
    pub(super) stamp: PollStamp,
    /// The worker thread's OS thread id, once it runs (Linux only).
    pub(super) os_tid: OnceLock<i32>,
    pub(super) parker: Parker,
    /// Set by the kicker before it unparks the worker: the wakeup means
    /// "run", not "look at the timers". Release/Acquire.
    pub(super) kicked: AtomicBool,
    /// Parks and busy time, for the metrics.
    pub(super) activity: Activity,
}

/// What a worker did, for the metrics (tokio's `worker_park_count` and
/// `worker_total_busy_duration`). Written only by the worker, read by
/// anyone. A worker is busy from the moment it leaves the idle list until
/// it is back on it, so time inside `wq::blocking` or in a stuck poll
/// counts as busy.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    /// Times the thread went to sleep on the idle list (Relaxed: a
    /// counter of its own).
    parks: AtomicU64,
    /// The busy time, under a lock (uncontended but for a reader) so that
    /// a reader never sees a spell both ended and still running, or
    /// neither: read from two atomics, a busy time read as a spell ended
    /// could come out larger than the next read.
    busy: parking_lot::Mutex<Busy>,
}

#[derive(Debug, Default)]
struct Busy {
    /// Busy time, up to the last time it went idle.
    ns: u64,
    /// When the current busy spell started (nanoseconds since the pool's
    /// epoch, plus one), or 0 while idle.
    since: u64,
}

/// A worker's figures as read now.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ActivityFigures {
    pub(crate) parks: u64,
    pub(crate) busy: Duration,
}

impl Activity {
    fn busy_from(&self, epoch: Instant) {
        self.busy.lock().since = nanos_since(epoch).saturating_add(1);
    }

    fn idle_from(&self, epoch: Instant) {
        let mut busy = self.busy.lock();
        if busy.since != 0 {
            busy.ns += nanos_since(epoch).saturating_sub(busy.since - 1);
            busy.since = 0;
        }
    }

    fn parked(&self) {
        self.parks.fetch_add(1, Relaxed);
    }

    /// The figures now, the current busy spell included.
    pub(crate) fn read(&self, epoch: Instant) -> ActivityFigures {
        let busy = {
            let busy = self.busy.lock();
            match busy.since {
                0 => busy.ns,
                since => busy.ns + nanos_since(epoch).saturating_sub(since - 1),
            }
        };
        ActivityFigures {
            parks: self.parks.load(Relaxed),
            busy: Duration::from_nanos(busy),
        }
    }
}

fn nanos_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A reference to a worker, compared by identity.
#[derive(Clone)]
pub(crate) struct WorkerRef(Arc<WorkerShared>);

impl WorkerRef {
    pub(super) fn new(shared: WorkerShared) -> WorkerRef {
        WorkerRef(Arc::new(shared))
    }
}

impl WorkerRef {
    /// What the worker is doing now (see `PollStamp`).
    pub(crate) fn observe(&self) -> Seen {
        self.0.stamp.observe()
    }

    /// The id of the task in the poll `seen` and its workqueue's index, if
    /// the worker is still in it.
    pub(crate) fn task_of(&self, seen: Seen) -> Option<(u64, u32)> {
        self.0.stamp.task_of(seen)
    }

    /// A number that identifies the worker while it lives.
    pub(crate) fn key(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }

    /// The worker thread's OS thread id, once it runs (Linux only).
    pub(crate) fn os_tid(&self) -> Option<i32> {
        self.0.os_tid.get().copied()
    }
}

impl std::ops::Deref for WorkerRef {
    type Target = WorkerShared;

    fn deref(&self) -> &WorkerShared {
        &self.0
    }
}

impl PartialEq for WorkerRef {
    fn eq(&self, other: &WorkerRef) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::fmt::Debug for WorkerRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WorkerRef({:p})", Arc::as_ptr(&self.0))
    }
}

/// The part of a worker only its own thread touches.
struct Local {
    shared: Arc<Shared>,
    me: WorkerRef,
    deque: Worker<Runnable>,
    /// The LIFO slot: the last task woken (or spawned) by this worker's
    /// running task, run next while it is still in cache (at most one in
    /// it: a newer one sends the older to the back of `deque`). A deque so
    /// that others can steal from it.
    lifo: Worker<Runnable>,
    /// Tasks run from the LIFO slot in a row.
    lifo_runs: Cell<u32>,
    /// Tasks that yielded; run when nothing else is queued for this worker.
    yielded: Worker<Runnable>,
    /// Tasks of the current lap of the yield list still to be taken
    /// (`take_yielded`); others may have stolen some, so it is an upper
    /// bound.
    lap_left: Cell<usize>,
    /// Polls started, for the poll stamp.
    seq: Cell<u64>,
    /// The workqueue of the task in the current (or last) poll, for the
    /// counters of `wq::blocking` (`BlockingGuard::cm_wakeup`).
    queue: Cell<u32>,
    /// Whether polls are stamped (someone watches them).
    stamped: bool,
    /// What this worker's searcher watches have been finding (`Watch`).
    watch: Watch,
    /// Counted in `nr_searching`.
    searching: Cell<bool>,
    /// Inside `wq::blocking` (out of `nr_running`).
    blocked: Cell<bool>,
    /// On the idle list (then wakes it causes go to the injector).
    idle: Cell<bool>,
    /// Idle and dispatching the reactor's events or firing due timers (the
    /// timer worker): the tasks they wake go to this worker's own queue
    /// without a kick, and it runs them itself
    /// if a worker is needed (`Idle::claim`), saving a second thread
    /// wakeup; otherwise it hands them to the injector.
    dispatching: Cell<bool>,
    tick: Cell<u32>,
    rng: Cell<u64>,
    /// Set on a `block_on` thread serving as a worker (`block_on` below):
    /// its root future's waker.
    root: Option<Arc<Root>>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Local>>> = const { RefCell::new(None) };
}

/// The worker thread's body.
pub(super) fn main(shared: Arc<Shared>, queues: Queues, me: WorkerRef) {
    // Whatever happens below (a hook may panic), the pool learns that this
    // thread is gone.
    let mut exit = ExitGuard {
        shared: shared.clone(),
        me: me.clone(),
        culled: false,
    };
    if let Some(tid) = current_os_tid() {
        let _ = me.os_tid.set(tid);
    }
    if let Some(cpus) = &shared.config.affinity {
        // Best effort: a CPU outside the process's cpuset makes it fail,
        // and the worker then runs wherever the process may.
        pin_current_thread(cpus);
    }
    if let Some(nice) = shared.config.nice {
        let applied = set_current_thread_nice(nice);
        shared.nice_applied.store(
            if applied { 1 } else { 2 },
            std::sync::atomic::Ordering::Relaxed,
        );
    }
    let local = Rc::new(Local::new(&shared, queues, me, None));
    CURRENT.with(|c| *c.borrow_mut() = Some(local.clone()));
    let _timers = crate::time::driver::DriverRef::enter_worker(&shared.config.timers);
    if let Some(hook) = &shared.config.on_thread_start {
        hook();
    }

    exit.culled = local.run();

    // Leaving: whatever is still queued here is dropped (shutdown) or, if
    // culled, there is nothing (an idle worker's queues are empty). Dropping
    // a runnable drops its task's future, whose destructor may wake other
    // tasks (a `JoinSet` aborts its members): counted idle, this thread no
    // longer takes their runnables into its own queues, which nobody would
    // look at again, but sends them to the injector (`push_local`), where a
    // closed pool drops them at once (`notify_work`) and an open one runs
    // them.
    local.idle.set(true);
    for queue in [&local.deque, &local.lifo, &local.yielded] {
        while let Some(runnable) = queue.pop() {
            drop(runnable);
        }
    }
    if !exit.culled {
        // Shutdown: `Pool::close` drained the injector, and every producer
        // that queues through `notify_work` drains it again if it sees the
        // pool closed. Workers also move runnables there directly (a
        // blocker or a retiring worker handing its queue over, the idle
        // driver dispatching I/O events) and may have done so after that
        // drain: each drains it once more as it exits, so that shutdown,
        // which waits for every worker to exit, leaves nothing queued.
        shared.drain_injector();
    }
    if let Some(hook) = &shared.config.on_thread_stop {
        hook();
    }
    CURRENT.with(|c| c.borrow_mut().take());
}

/// Unregisters the worker as its thread ends, normally or by a panic.
struct ExitGuard {
    shared: Arc<Shared>,
    me: WorkerRef,
    culled: bool,
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        let shared = &self.shared;
        if !self.culled {
            // A culled worker was already taken off the books by `try_cull`.
            shared.idle.remove(&self.me);
        } else {
            shared.culled.fetch_add(1, Relaxed);
        }
        shared.retire(&self.me);
        // The last worker of a closed pool shuts the timers down: the
        // shutdown may not have waited for us (a timeout), and then no
        // worker is left to fire them. It leaves the count only after that,
        // since a shutdown that does wait returns once the count is zero:
        // the tasks still waiting on timers, which the timers' shutdown
        // wakes and so drops, must be gone by then. (Counted out first, the
        // last worker dropped such a task just after `drop(runtime)`
        // returned, in 4 of 100 runs of `shutdown_drops_the_tasks_that_sleep`:
        // the timers' shutdown can come before the runtime's shutdown wakes
        // every task.)
        let last = {
            let mut alive = shared.alive.lock();
            let last = *alive == 1 && shared.is_closed();
            if !last {
                *alive -= 1;
                shared.exited.notify_all();
            }
            last
        };
        if last {
            if shared.config.drives_timers {
                shared.timers().shutdown();
            }
            let mut alive = shared.alive.lock();
            *alive -= 1;
            shared.exited.notify_all();
        }
    }
}

impl Local {
    fn new(shared: &Arc<Shared>, queues: Queues, me: WorkerRef, root: Option<Arc<Root>>) -> Local {
        Local {
            stamped: shared.config.stamp_polls,
            shared: shared.clone(),
            me,
            deque: queues.deque,
            lifo: queues.lifo,
            lifo_runs: Cell::new(0),
            watch: Watch::default(),
            yielded: queues.yielded,
            lap_left: Cell::new(0),
            seq: Cell::new(0),
            queue: Cell::new(0),
            searching: Cell::new(false),
            blocked: Cell::new(false),
            idle: Cell::new(false),
            dispatching: Cell::new(false),
            tick: Cell::new(0),
            rng: Cell::new(shared.next_seed() | 1),
            root,
        }
    }

    /// Whether this worker's own queues (queue, LIFO slot, yield list) or
    /// the injector hold a task.
    fn has_local_work(&self) -> bool {
        !self.deque.is_empty()
            || !self.lifo.is_empty()
            || !self.yielded.is_empty()
            || !self.shared.injector.is_empty()
    }

    /// Whether this is a `block_on` thread whose root future was woken
    /// and not polled since.
    fn root_woken(&self) -> bool {
        self.root
            .as_ref()
            .is_some_and(|root| root.woken.load(SeqCst))
    }

    /// Runs until shutdown (returns false) or until culled (returns true).
    fn run(&self) -> bool {
        let idle = &self.shared.idle;
        // A new worker starts idle, not counted as running.
        if let Some(culled) = self.idle_and_park(true) {
            return culled;
        }
        loop {
            if self.shared.is_closed() {
                return false;
            }
            match self.next_task() {
                Some(runnable) => {
                    if self.searching.replace(false) && idle.transition_from_searching() {
                        // The last searcher found work: if more is queued
                        // anywhere (a running worker may have pushed to its
                        // own queue while we searched, and not kicked because
                        // we were searching), wake another worker to keep
                        // spreading it.
                        if self.shared.has_work() {
                            self.shared.wake_one();
                        }
                    }
                    self.run_task(runnable);
                    if idle.try_retire() {
                        // Surplus (blockers came back): go idle. Our queue
                        // goes to the injector for the running workers.
                        self.hand_over_local_queue();
                        if let Some(culled) = self.idle_and_park(true) {
                            return culled;
                        }
                    }
                }
                None => {
                    // Fire due timers and dispatch ready I/O before giving
                    // up: what they wake lands on this worker's queue.
                    if self.shared.timers().process() > 0 || self.shared.poll_io_now() > 0 {
                        continue;
                    }
                    if self.searching.get() && self.watch_for_work() {
                        continue;
                    }
                    if let Some(culled) = self.idle_and_park(false) {
                        return culled;
                    }
                }
            }
        }
    }

    /// Polls a task once, publishing the poll in the stamp if polls are
    /// watched. If the watcher took this worker out of `nr_running` during
    /// the poll (it was stuck), the worker counts as running again after it.
    fn run_task(&self, runnable: Runnable) {
        let tag = runnable.metadata();
        let (id, queue) = (tag.id, tag.queue);
        self.queue.set(queue.0);
        // One span per poll, for tracing-based profilers; compiled out
        // without the feature.
        #[cfg(feature = "trace-polls")]
        let _span = tracing::trace_span!("poll", task.id = id.as_u64(), queue = queue.0).entered();
        if !self.stamped {
            // A task's panic is caught inside it; this guards against a
            // panicking waker or schedule hook.
            let _ = catch_unwind(AssertUnwindSafe(|| coop::budget(|| runnable.run())));
            return;
        }
        let seq = self.seq.get().wrapping_add(1);
        self.seq.set(seq);
        self.me.stamp.begin(seq, id.as_u64(), queue.0);
        let _ = catch_unwind(AssertUnwindSafe(|| coop::budget(|| runnable.run())));
        if self.me.stamp.end(seq) {
            self.shared.rejoin_after_detection();
        }
    }

    fn next_task(&self) -> Option<Runnable> {
        let tick = self.tick.get().wrapping_add(1);
        self.tick.set(tick);
        if tick.is_multiple_of(INJECTOR_INTERVAL) {
            self.shared.timers().process();
            self.shared.poll_io_now();
            self.shared.tick_observer(self.queue.get());
            if let Some(runnable) = steal_one(&self.shared.injector) {
                self.lifo_runs.set(0);
                return Some(runnable);
            }
        }
        if let Some(runnable) = self.lifo.pop() {
            self.lifo_runs.set(self.lifo_runs.get() + 1);
            return Some(runnable);
        }
        self.lifo_runs.set(0);
        if let Some(runnable) = self.deque.pop() {
            return Some(runnable);
        }
        if let Some(runnable) = self.steal_from_injector() {
            return Some(runnable);
        }
        if let Some(runnable) = self.take_yielded() {
            return Some(runnable);
        }
        if !self.searching.get() {
            if !self.shared.idle.transition_to_searching() {
                return None;
            }
            self.searching.set(true);
        }
        self.steal_from_workers()
            .or_else(|| self.steal_from_injector())
    }

    fn steal_from_injector(&self) -> Option<Runnable> {
        // Two loads, where an empty steal costs a SeqCst fence: this runs
        // before every task taken from the yield list. A push this misses
        // is seen at the next look (its producer kicked if a worker was
        // needed, README "No lost wakeup").
        if self.shared.injector.is_empty() {
            return None;
        }
        loop {
            match self.shared.injector.steal_batch_and_pop(&self.deque) {
                Steal::Success(runnable) => return Some(runnable),
                Steal::Empty => return None,
                Steal::Retry => continue,
            }
        }
    }

    fn steal_from_workers(&self) -> Option<Runnable> {
        let workers = self.shared.workers.read();
        let n = workers.len();
        if n <= 1 {
            return None;
        }
        let start = self.next_random() as usize % n;
        for i in 0..n {
            let victim = &workers[(start + i) % n];
            if *victim == self.me {
                continue;
            }
            for stealer in [&victim.stealer, &victim.lifo_stealer, &victim.yield_stealer] {
                loop {
                    match stealer.steal_batch_and_pop(&self.deque) {
                        Steal::Success(runnable) => return Some(runnable),
                        Steal::Empty => break,
                        Steal::Retry => continue,
                    }
                }
            }
        }
        None
    }

    /// `spin_for_work` if `watch` lets it; whether work turned up.
    fn watch_for_work(&self) -> bool {
        if !self.watch.should_watch() {
            return false;
        }
        let found = self.spin_for_work(self.watch.yields());
        self.watch.record(found);
        found != Found::Nothing
    }

    /// A searcher that found nothing watches the injector and the other
    /// workers' queues for [`SEARCH_SPIN`] before it goes idle, and polls
    /// the reactor once at the end. Returns where work turned up (the
    /// caller looks again, still searching). Still counted searching, so
    /// producers leave the work to it rather than kick a parked worker
    /// (`Idle::need_more_worker`). Other workers' LIFO slots are not
    /// watched: the task there is their next one, and taking it because we
    /// waited would only move it away from its cache.
    ///
    /// Between two looks it yields the CPU (`sched_yield`) if `yields`,
    /// else it spins ([`WATCH_SPIN_HINTS`] `spin_loop` hints). Yielding
    /// serves work from outside the workers: on an otherwise idle CPU the
    /// call returns at once and the watch is a spin, but a thread waiting
    /// for this CPU, often the very one that produces the work (a remote
    /// spawner), runs first rather than wait for the watch to burn its
    /// 5 us. Work the runtime itself produces (another worker's queue, the
    /// reactor) is not helped by it: there the thread waiting for this CPU
    /// is rather a client of the process (under `wrk`), and a yield hands
    /// it the CPU for as long as it wants it. So a worker's watches yield
    /// until one finds its work in the runtime, and again once one finds it
    /// in the injector (`Watch::record`).
    fn spin_for_work(&self, yields: bool) -> Found {
        let shared = &self.shared;
        let deadline = Instant::now() + SEARCH_SPIN;
        loop {
            if yields {
                std::thread::yield_now();
            } else {
                for _ in 0..WATCH_SPIN_HINTS {
                    std::hint::spin_loop();
                }
            }
            if !shared.injector.is_empty() {
                return Found::Injector;
            }
            let queued =
                shared.workers.read().iter().any(|w| {
                    *w != self.me && (!w.stealer.is_empty() || !w.yield_stealer.is_empty())
                });
            if queued {
                return Found::Runtime;
            }
            if Instant::now() >= deadline {
                let woke = shared.timers().process() > 0 || shared.poll_io_now() > 0;
                return if woke { Found::Runtime } else { Found::Nothing };
            }
        }
    }

    /// Pops the oldest task that yielded. Tasks that yield again go to the
    /// back of the same list, behind the ones already there, so the list is
    /// run in laps. At the start of each lap, if more than this one task is
    /// waiting, an idle worker is woken to help (yields kick nobody).
    ///
    /// The tasks are taken from the yield list itself, never moved to the
    /// local queue first: moving a lap at a time made both deques grow and
    /// shrink on every lap (a buffer reallocated and freed through
    /// crossbeam's epoch each time), which was a tenth of the instructions
    /// of a yield-heavy workload.
    fn take_yielded(&self) -> Option<Runnable> {
        let runnable = self.yielded.pop()?;
        match self.lap_left.get() {
            0 => {
                let lap = self.yielded.len();
                self.lap_left.set(lap);
                if lap > 0 {
                    self.shared.notify_work();
                }
            }
            left => self.lap_left.set(left - 1),
        }
        Some(runnable)
    }

    /// Enters the idle list and parks until woken. `left_running` says the
    /// worker already left `nr_running` (retired, or new). Returns
    /// `Some(culled)` if the worker must exit, `None` once it was kicked to
    /// run (then it is counted running and searching, by its kicker).
    ///
    /// While idle, the worker may hold the timer role: then it sleeps until
    /// the next deadline instead of `idle_timeout`, fires the due timers
    /// (and runs their tasks itself if a worker is needed, as it does the
    /// tasks the reactor's events wake), and, with a paused clock and
    /// nothing else to do, advances the clock (its tasks go to the injector
    /// with the usual kick).
    fn idle_and_park(&self, left_running: bool) -> Option<bool> {
        self.me.activity.idle_from(self.shared.epoch);
        let outcome = self.go_idle_and_park(left_running);
        if outcome.is_none() {
            self.me.activity.busy_from(self.shared.epoch);
        }
        outcome
    }

    /// `idle_and_park` without the busy-time accounting.
    fn go_idle_and_park(&self, left_running: bool) -> Option<bool> {
        let shared = &self.shared;
        let timers = shared.timers();
        let was_searching = self.searching.replace(false);
        self.idle.set(true);
        shared
            .idle
            .enter_idle(self.me.clone(), was_searching, left_running);
        // Pairs with the fence in `notify_work` (README, "no lost wakeup"):
        // we are counted idle before we look at the queues.
        fence(SeqCst);
        if shared.is_closed() {
            return Some(false);
        }
        if shared.has_work() {
            // Work arrived while we were giving up: kick (possibly ourselves,
            // the most recently idled).
            shared.wake_one();
        } else if timers.clock().is_paused() {
            // Maybe the runtime just went quiet: let the timer worker see
            // whether the paused clock may advance.
            timers.nudge();
        }
        // The last worker to go idle takes back the observer's wake that a
        // start asked for, if it has not happened: our polls were short.
        shared.take_back_polls_observer_wake();
        let mut timer_worker = false;
        let outcome = loop {
            // Checked before every park, the first included: the root's
            // wake may have come before this call, its token consumed by
            // an earlier park (the thread claimed itself, ran a task before
            // its root as `block_on` allows, and retired after that task).
            if self.root_woken() && shared.idle.claim_root(&self.me) {
                // The `block_on` thread's own future was woken: it runs it,
                // counted running as a kicked worker would be.
                shared.wake_polls_observer();
                break None;
            }
            if !timer_worker && shared.config.drives_timers && timers.try_become_timer_worker() {
                timer_worker = true;
                *shared.timer_worker.lock() = Some(self.me.clone());
            }
            if timer_worker && self.may_auto_advance() && timers.auto_advance() > 0 {
                continue;
            }
            let limit = shared.config.idle_timeout;
            let timeout = match timer_worker {
                true if !timers.clock().is_paused() => timers.park_timeout(limit).unwrap_or(limit),
                true => {
                    // Paused time does not pass while we sleep: wait for a
                    // nudge (new timer, end of an inhibitor) or a kick.
                    timers.park_timeout(limit);
                    limit
                }
                false => limit,
            };
            if let Some(hook) = &shared.config.on_thread_park {
                hook();
            }
            self.me.activity.parked();
            let (notified, dispatched) = if timer_worker && self.me.parker.has_reactor() {
                // The driver: sleep in the reactor, dispatching I/O events.
                self.dispatching.set(true);
                let parked = self.me.parker.park_in_reactor(timeout);
                self.dispatching.set(false);
                parked
            } else {
                (self.me.parker.park_timeout(timeout), 0)
            };
            if let Some(hook) = &shared.config.on_thread_unpark {
                hook();
            }
            if timer_worker {
                timers.unparked();
            }
            if shared.is_closed() {
                break Some(false);
            }
            // Checked whether or not the park reported a token: a kick that
            // lands as a timed park expires still means "run". A token
            // left behind then is consumed later as a harmless nudge.
            if self.me.kicked.swap(false, Acquire) {
                break None;
            }
            // The timer worker fires the due timers as the driver dispatches
            // events: what they wake waits on this worker's queue.
            let fired = if timer_worker {
                self.dispatching.set(true);
                let fired = timers.process();
                self.dispatching.set(false);
                fired
            } else {
                0
            };
            if dispatched + fired > 0 && shared.has_work() {
                // The events or timers woke tasks onto this worker's queue,
                // with no kick: run them here if a worker is needed, else
                // hand them to the injector and let the usual producer path
                // decide (a kick, maybe of us: then the loop finds the
                // token and the flag).
                if shared.idle.claim(&self.me) {
                    // Counted running as a kick would count it: the
                    // observer (which may sleep while no worker runs) must
                    // learn of it, or a poll of ours that gets stuck goes
                    // unwatched.
                    shared.wake_polls_observer();
                    break None;
                }
                self.hand_over_local_queue();
                shared.notify_work();
                continue;
            }
            if !notified
                && self.root.is_none()
                && shared.idle.try_cull(&self.me, shared.config.idle_timeout)
            {
                break Some(true);
            }
        };
        if timer_worker {
            *shared.timer_worker.lock() = None;
            timers.release_timer_worker();
            if outcome == Some(true) && (timers.next_deadline().is_some() || shared.has_io()) {
                // Culled while timers are pending or I/O sources are
                // registered: hand the role to the longest-idle worker (a
                // bare unpark, not a kick), or the events wait until an
                // idle worker's own wait times out. A kicked
                // timer worker needs no successor: running, it fires timers
                // itself, and if it blocks it kicks one (`BlockingGuard`).
                if let Some(successor) = shared.idle.oldest_idle() {
                    successor.parker.unpark();
                }
            }
        }
        self.idle.set(false);
        if outcome.is_none() {
            self.searching.set(true);
            // `may_start_working`: make sure a spare is idle before we
            // start, so that our blocking never has to create a thread.
            manager::maybe_create_worker(shared);
        }
        outcome
    }

    /// Auto-advance of a paused clock needs a runtime with nothing to do: no
    /// worker running, no queued task, no inhibitor (`block_on` polling,
    /// blocking closure running). Only the timer worker advances, so fired
    /// timers' tasks are queued before it looks again.
    fn may_auto_advance(&self) -> bool {
        let shared = &self.shared;
        shared.timers().clock().is_paused()
            && shared.idle.nr_running() == 0
            && !shared.timers().clock().auto_advance_inhibited()
            && !shared.has_work()
    }

    /// Moves everything queued on this worker to the injector, so that no
    /// task waits behind a worker that blocks or goes idle.
    fn hand_over_local_queue(&self) {
        self.lap_left.set(0);
        while let Some(runnable) = self.lifo.pop() {
            self.shared.injector.push(runnable);
        }
        while let Some(runnable) = self.yielded.pop() {
            self.shared.injector.push(runnable);
        }
        while let Some(runnable) = self.deque.pop() {
            self.shared.injector.push(runnable);
        }
    }

    fn next_random(&self) -> u64 {
        // xorshift64
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.set(x);
        x
    }
}

fn steal_one(injector: &crossbeam_deque::Injector<Runnable>) -> Option<Runnable> {
    loop {
        match injector.steal() {
            Steal::Success(runnable) => return Some(runnable),
            Steal::Empty => return None,
            Steal::Retry => continue,
        }
    }
}

/// Where `push_local` put a runnable.
pub(super) enum Pushed {
    /// In the worker's empty LIFO slot: the worker itself runs it next.
    Next,
    /// On the worker's queue (perhaps an older task sent there from the
    /// LIFO slot by this one): other workers may need a kick.
    Queued,
    /// On the worker's yield list: the worker itself runs it.
    Yielded,
    /// On the queue of the idle worker dispatching the reactor's events or
    /// firing timers: it decides about kicks once that is over.
    Deferred,
}

/// Pushes onto the current worker's queue (or yield list) if the current
/// thread is a running worker of `shared`'s pool; otherwise gives the
/// runnable back.
pub(super) fn push_local(
    shared: &Arc<Shared>,
    runnable: Runnable,
    yielded: bool,
) -> Result<Pushed, Runnable> {
    CURRENT.with(|current| match &*current.borrow() {
        Some(local) if Arc::ptr_eq(&local.shared, shared) && local.dispatching.get() => {
            // Kept here, the last one woken in the LIFO slot: the driver
            // runs them itself if it claims a worker's place, and hands
            // them to the injector otherwise (`go_idle_and_park`).
            if let Some(older) = local.lifo.pop() {
                local.deque.push(older);
            }
            local.lifo.push(runnable);
            Ok(Pushed::Deferred)
        }
        Some(local)
            if Arc::ptr_eq(&local.shared, shared) && !local.blocked.get() && !local.idle.get() =>
        {
            if yielded {
                local.yielded.push(runnable);
                Ok(Pushed::Yielded)
            } else if local.lifo_runs.get() >= MAX_LIFO_RUNS {
                local.deque.push(runnable);
                Ok(Pushed::Queued)
            } else {
                let older = local.lifo.pop();
                local.lifo.push(runnable);
                match older {
                    Some(older) => {
                        local.deque.push(older);
                        Ok(Pushed::Queued)
                    }
                    None => Ok(Pushed::Next),
                }
            }
        }
        _ => Err(runnable),
    })
}

/// The root future of a `block_on` thread serving as a worker: its waker.
pub(super) struct Root {
    /// Woken since it was last polled. A wake holds one auto-advance
    /// inhibit (the thread will poll soon), released after the poll.
    woken: AtomicBool,
    worker: WorkerRef,
    timers: Arc<crate::time::driver::Driver>,
}

impl Wake for Root {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.woken.swap(true, SeqCst) {
            self.timers.inhibit_add();
        }
        // Running: it looks at `woken` before its next task. Idle: the
        // token ends its park, and it claims itself off the idle list.
        self.worker.parker.unpark();
    }
}

/// How a `block_on` thread's stint as a worker ended.
pub(crate) enum Joined<T> {
    /// The future completed.
    Done(T),
    /// Every worker slot is taken (another thread blocks on the pool).
    NoSlot,
    /// The pool closed before the future completed; it was not dropped.
    Closed,
}

/// Runs `future` on the calling thread, which serves as one of the pool's
/// workers meanwhile (a current-thread pool's `block_on`). Between two
/// polls of `future` the thread runs the pool's tasks, fires its timers and
/// polls its reactor exactly as a worker thread does: it is counted in
/// `nr_running` while it does, its polls (the root's too) are stamped for
/// the monitor, it sits on the idle list when there is nothing to do, and a
/// wake of `future` takes it off the list (`Idle::claim_root`). On return
/// it leaves the pool: what it had queued goes to the injector, for the
/// next `block_on` (or a helper thread, if `max_workers` allows them).
pub(super) fn block_on<F: Future>(
    shared: &Arc<Shared>,
    mut future: Pin<&mut F>,
) -> Joined<F::Output> {
    if shared.is_closed() || !shared.idle.reserve_worker(shared.config.max_workers) {
        return if shared.is_closed() {
            Joined::Closed
        } else {
            Joined::NoSlot
        };
    }
    let (queues, me) = manager::new_worker(shared);
    if let Some(tid) = current_os_tid() {
        let _ = me.os_tid.set(tid);
    }
    let root = Arc::new(Root {
        woken: AtomicBool::new(true),
        worker: me.clone(),
        timers: shared.config.timers.clone(),
    });
    // The first poll is as if woken: it holds the wake's inhibit.
    root.timers.inhibit_add();
    let local = Rc::new(Local::new(shared, queues, me.clone(), Some(root.clone())));
    me.activity.busy_from(shared.epoch);
    shared.workers.write().push(me);
    shared.joined.fetch_add(1, SeqCst);
    shared.idle.join_running();
    shared.wake_polls_observer();
    let previous = CURRENT.with(|c| c.replace(Some(local.clone())));
    let mut leave = Leave {
        local,
        previous,
        idle: false,
    };
    let waker = Waker::from(root.clone());
    let mut cx = Context::from_waker(&waker);
    let local = leave.local.clone();
    // Tasks run between two polls of the root at most, when both are ready
    // (tokio's `event_interval`): a root that keeps waking itself
    // (`yield_now`) lets the tasks run, and tasks do not starve the root.
    let mut tasks_since_root = INJECTOR_INTERVAL;
    loop {
        if root.woken.load(SeqCst)
            && (tasks_since_root >= INJECTOR_INTERVAL || !local.has_local_work())
            && root.woken.swap(false, SeqCst)
        {
            tasks_since_root = 0;
            let seq = local.seq.get().wrapping_add(1);
            local.seq.set(seq);
            local.queue.set(0);
            if local.stamped {
                local.me.stamp.begin(seq, 0, 0);
            }
            let polled = {
                let _end = PollEnd { local: &local, seq };
                coop::budget(|| future.as_mut().poll(&mut cx))
            };
            root.timers.inhibit_sub();
            if let Poll::Ready(output) = polled {
                return Joined::Done(output);
            }
            continue;
        }
        if shared.is_closed() {
            return Joined::Closed;
        }
        match local.next_task() {
            Some(runnable) => {
                tasks_since_root += 1;
                if local.searching.replace(false)
                    && shared.idle.transition_from_searching()
                    && shared.has_work()
                {
                    // The searcher chain, as in `Local::run`.
                    shared.wake_one();
                }
                local.run_task(runnable);
                if shared.idle.try_retire() {
                    local.hand_over_local_queue();
                    leave.idle = true;
                    if local.idle_and_park(true).is_some() {
                        return Joined::Closed;
                    }
                    leave.idle = false;
                }
            }
            None => {
                tasks_since_root = INJECTOR_INTERVAL;
                if shared.timers().process() > 0 || shared.poll_io_now() > 0 {
                    continue;
                }
                if root.woken.load(SeqCst) {
                    continue;
                }
                leave.idle = true;
                if local.idle_and_park(false).is_some() {
                    return Joined::Closed;
                }
                leave.idle = false;
            }
        }
    }
}

/// Ends a stamped root poll, also when it unwinds.
struct PollEnd<'a> {
    local: &'a Local,
    seq: u64,
}

impl Drop for PollEnd<'_> {
    fn drop(&mut self) {
        if self.local.stamped && self.local.me.stamp.end(self.seq) {
            self.local.shared.rejoin_after_detection();
        }
    }
}

/// Takes a `block_on` thread out of the pool as it returns (or unwinds).
struct Leave {
    local: Rc<Local>,
    previous: Option<Rc<Local>>,
    /// On the idle list (else counted running).
    idle: bool,
}

impl Drop for Leave {
    fn drop(&mut self) {
        let local = &self.local;
        let shared = &local.shared;
        if self.idle {
            // Off the idle list, and its slot given back.
            shared.idle.remove(&local.me);
        } else {
            if local.searching.replace(false) {
                let _ = shared.idle.transition_from_searching();
            }
            local.hand_over_local_queue();
            shared.idle.worker_sleeping();
            shared.idle.release_worker();
        }
        // Timer role: only held while idle, and given up by then.
        local.me.activity.idle_from(shared.epoch);
        shared.retire(&local.me);
        shared.joined.fetch_sub(1, SeqCst);
        CURRENT.with(|c| *c.borrow_mut() = self.previous.take());
        // Its slot is free: a thread waiting to block on the pool may take it.
        let waiting = std::mem::take(&mut *shared.slot_waiters.lock());
        waiting.into_iter().for_each(Waker::wake);
        // Pairs with the fence in `notify_work`, as in `BlockingGuard`:
        // what it left queued goes to a helper, if the pool has one; or,
        // if the pool closed, it is dropped here, as an exiting worker
        // drops it (`main`).
        fence(SeqCst);
        if shared.is_closed() {
            shared.drain_injector();
        } else if shared.has_work() {
            shared.wake_one();
        }
    }
}

/// Whether the calling thread is one of the worker threads of `shared`'s
/// pool (a thread it created, not a `block_on` thread serving as a worker).
pub(super) fn is_worker_thread_of(shared: &Arc<Shared>) -> bool {
    CURRENT.with(|current| {
        current
            .borrow()
            .as_ref()
            .is_some_and(|local| Arc::ptr_eq(&local.shared, shared) && local.root.is_none())
    })
}

/// While alive, the current worker counts as blocked (`wq_worker_sleeping`);
/// dropping it makes the worker run again (`wq_worker_running`).
#[must_use = "the worker counts as blocked only while the guard lives"]
pub(crate) struct BlockingGuard {
    local: Rc<Local>,
    /// This guard took the worker out of `nr_running` (false if the watcher
    /// had already done so during the current poll).
    left_running: bool,
    /// Leaving woke an idle worker in this one's place.
    woke: bool,
}

impl BlockingGuard {
    /// Marks the current thread's worker as blocked, if the current thread is
    /// a pool worker not already blocked. Its queued tasks go to the injector
    /// and, if that leaves the pool short of running workers while work is
    /// queued, one idle worker is woken.
    pub(crate) fn enter() -> Option<BlockingGuard> {
        let local = CURRENT.with(|current| current.borrow().clone())?;
        if local.blocked.replace(true) {
            // Nested: only the outermost call is a transition.
            return None;
        }
        let shared = &local.shared;
        local.hand_over_local_queue();
        let left_running = local.me.stamp.annotate();
        if left_running {
            shared.idle.worker_sleeping();
            shared.detached.fetch_add(1, Relaxed);
        }
        // Pairs with the fence in `notify_work`: either a concurrent
        // scheduler sees our decrement, or we see its work.
        fence(SeqCst);
        let timers = shared.timers();
        timers.inhibit_add();
        // Work, or timers with nobody idle to drive them: a worker must run.
        let woke = !shared.is_closed()
            && (shared.has_work() || shared.needs_driver())
            && shared.wake_one();
        Some(BlockingGuard {
            local,
            left_running,
            woke,
        })
    }

    /// Whether the blocked thread is a worker thread of its pool (not a
    /// `block_on` thread serving as one, whose own future waits meanwhile).
    pub(crate) fn on_worker_thread(&self) -> bool {
        self.local.root.is_none()
    }

    /// If entering took the worker out of `nr_running` and woke an idle
    /// worker in its place (a concurrency-management wakeup), the workqueue
    /// index of the task that blocked.
    pub(crate) fn cm_wakeup(&self) -> Option<u32> {
        (self.left_running && self.woke).then(|| self.local.queue.get())
    }
}

impl Drop for BlockingGuard {
    fn drop(&mut self) {
        let shared = &self.local.shared;
        // Counted running again before the stamp lets the monitor examine
        // the poll again: a detection then always finds the worker counted
        // (loom: `loom_detect_vs_blocking_annotation`).
        if self.left_running {
            shared.detached.fetch_sub(1, Relaxed);
            shared.worker_running();
        }
        self.local.me.stamp.unannotate();
        self.local.blocked.set(false);
        shared.timers().inhibit_sub();
    }
}

/// The calling thread's OS thread id, where the platform has one the pool
/// can use.
#[cfg(target_os = "linux")]
fn current_os_tid() -> Option<i32> {
    Some(nix::unistd::gettid().as_raw())
}

#[cfg(not(target_os = "linux"))]
fn current_os_tid() -> Option<i32> {
    None
}

/// Sets the calling thread's nice value (Linux: per thread); returns
/// whether it took. Lowering it needs CAP_SYS_NICE or a RLIMIT_NICE that
/// allows it; without, the thread keeps the process's value.
#[cfg(target_os = "linux")]
fn set_current_thread_nice(nice: i32) -> bool {
    let me = rustix::thread::gettid();
    rustix::process::setpriority_process(Some(me), nice).is_ok()
        && rustix::process::getpriority_process(Some(me)).ok() == Some(nice)
}

#[cfg(not(target_os = "linux"))]
fn set_current_thread_nice(_nice: i32) -> bool {
    false
}

/// Pins the calling thread to `cpus`; returns whether it took.
#[cfg(target_os = "linux")]
fn pin_current_thread(cpus: &[usize]) -> bool {
    let mut set = rustix::thread::CpuSet::new();
    for &cpu in cpus {
        if cpu < rustix::thread::CpuSet::MAX_CPU {
            set.set(cpu);
        }
    }
    rustix::thread::sched_setaffinity(None, &set).is_ok()
}

#[cfg(not(target_os = "linux"))]
fn pin_current_thread(_cpus: &[usize]) -> bool {
    false
}

/// The CPU the calling thread runs on now (0 where that cannot be known).
pub(crate) fn current_cpu() -> usize {
    #[cfg(target_os = "linux")]
    {
        rustix::thread::sched_getcpu()
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{Found, Watch, WATCH_MISSES, WATCH_PROBE};

    /// How many of the next `n` times a worker runs dry it watches, each
    /// watch finding `found`.
    fn watches(watch: &Watch, n: u32, found: Found) -> u32 {
        let mut watched = 0;
        for _ in 0..n {
            if watch.should_watch() {
                watched += 1;
                watch.record(found);
            }
        }
        watched
    }

    #[test]
    fn watches_that_find_nothing_are_skipped_but_for_probes() {
        let watch = Watch::default();
        assert_eq!(watches(&watch, WATCH_MISSES, Found::Nothing), WATCH_MISSES);
        // From now on one watch per WATCH_PROBE times, for ever.
        for _ in 0..1_000 {
            assert_eq!(watches(&watch, WATCH_PROBE, Found::Nothing), 1);
        }
    }

    #[test]
    fn a_watch_that_finds_work_turns_watching_back_on() {
        let watch = Watch::default();
        watches(&watch, 10 * WATCH_PROBE, Found::Nothing);
        // Skip up to the next probe, which finds work.
        let mut skipped = 0;
        while !watch.should_watch() {
            skipped += 1;
        }
        assert!(skipped < WATCH_PROBE);
        watch.record(Found::Runtime);
        // Work found every time: always watching.
        assert_eq!(watches(&watch, 100, Found::Runtime), 100);
        // Then WATCH_MISSES misses in a row before skipping again.
        assert_eq!(watches(&watch, WATCH_MISSES, Found::Nothing), WATCH_MISSES);
        assert!(!watch.should_watch());
    }

    #[test]
    fn watches_yield_until_they_find_runtime_work_and_again_after_injector_work() {
        let watch = Watch::default();
        assert!(watch.yields(), "a new worker's watches yield");
        watch.record(Found::Nothing);
        assert!(watch.yields(), "finding nothing changes nothing");
        watch.record(Found::Runtime);
        assert!(!watch.yields(), "work from the runtime: spin");
        watch.record(Found::Nothing);
        assert!(!watch.yields());
        watch.record(Found::Injector);
        assert!(watch.yields(), "work from outside the workers: yield");
        // Either kind of work resets the misses.
        watches(&watch, WATCH_MISSES, Found::Nothing);
        assert!(!watch.should_watch());
        watch.record(Found::Injector);
        assert_eq!(watches(&watch, WATCH_MISSES, Found::Nothing), WATCH_MISSES);
    }
}
