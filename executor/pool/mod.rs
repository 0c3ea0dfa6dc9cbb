//! The concurrency-managed worker pool (cmwq in user space).
//!
//! A pool runs `Runnable`s on worker threads it creates and culls itself,
//! keeping `target` workers running: a worker that blocks (inside
//! `wq::blocking`) leaves the running count and one idle worker is woken in
//! its place; when it returns, surplus workers go idle after their current
//! task. The protocol, its counters and its orderings are described in
//! `README.md` beside this file.
//!
//! The pool knows nothing of runtimes, workqueues or tasks beyond
//! `async_task::Runnable` and the tags it carries; a starving pool calls
//! for rescue through a hook (`mayday.rs`).

mod idle;
#[cfg(all(test, loom))]
mod loom_tests;
mod manager;
mod mayday;
mod park;
mod stamp;
mod worker;

use std::fmt;
use std::io;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::task::Runnable;
use crossbeam_deque::Injector;
use parking_lot::{Condvar, Mutex, RwLock};

use crate::net::reactor::Reactor;
use crate::time::driver::Driver;
use idle::{Idle, Kick};
pub(crate) use park::Parker;
pub(crate) use stamp::Seen;
pub(crate) use worker::{current_cpu, BlockingGuard, Joined};
pub(crate) use worker::{ActivityFigures, WorkerRef};

/// A hook run on worker threads.
pub(crate) type Hook = Arc<dyn Fn() + Send + Sync + 'static>;

/// A hook run before each worker thread is created: an error fails the
/// creation as if the OS had refused the thread (fault injection).
pub(crate) type SpawnHook = Arc<dyn Fn() -> io::Result<()> + Send + Sync + 'static>;

/// Called by a starving pool with the distinct rescuer tags of its queued
/// runnables (see `mayday.rs`).
pub(crate) type MaydayHook = Arc<dyn Fn(&Pool, &[u64]) + Send + Sync + 'static>;

/// How long the manager waits after a failed worker creation before it
/// tries again (the kernel's `CREATE_COOLDOWN`).
pub(crate) const CREATE_COOLDOWN: Duration = Duration::from_secs(1);

/// In `Observer::soon`: the wake that token names is still lazy (see
/// `Shared::hurry_polls_observer`). Tokens count up from 1 and never reach
/// it.
pub(crate) const LAZY: u64 = 1 << 63;

/// How a pool is shaped. Validated by the runtime builder.
#[derive(Clone)]
pub(crate) struct PoolConfig {
    /// What the pool is, for the metrics: `normal`, `highpri`,
    /// `unbound <scope> pod <n>`, `blocking`.
    pub(crate) label: Arc<str>,
    /// Concurrency target: how many workers run at once.
    pub(crate) workers: usize,
    /// Cap on threads, blocked and idle ones included.
    pub(crate) max_workers: usize,
    /// How long an idle worker waits before it may be culled.
    pub(crate) idle_timeout: Duration,
    pub(crate) thread_name: Arc<dyn Fn() -> String + Send + Sync + 'static>,
    pub(crate) thread_stack_size: Option<usize>,
    pub(crate) on_thread_start: Option<Hook>,
    pub(crate) on_thread_stop: Option<Hook>,
    /// Run by a worker just before it sleeps for lack of work, and just
    /// after it wakes.
    pub(crate) on_thread_park: Option<Hook>,
    pub(crate) on_thread_unpark: Option<Hook>,
    /// The timers the workers drive.
    pub(crate) timers: Arc<Driver>,
    /// Whether workers publish their polls in their stamps (for a watcher).
    pub(crate) stamp_polls: bool,
    /// A nice value for the worker threads (the high-priority pools'), if
    /// the process may set it.
    pub(crate) nice: Option<i32>,
    /// Whether idle workers of this pool sleep on the timers (one pool per
    /// runtime does: the timer role and its nudges belong to one pool).
    pub(crate) drives_timers: bool,
    /// CPUs the worker threads are pinned to (strict affinity), if any.
    pub(crate) affinity: Option<Arc<[usize]>>,
    /// Runs before each worker thread is created (`Builder::spawn_worker_with`).
    pub(crate) spawn_hook: Option<SpawnHook>,
    /// How long to wait after a failed creation before the next attempt.
    pub(crate) create_cooldown: Duration,
    /// Where a starving pool calls for rescue, if anyone rescues.
    pub(crate) mayday: Option<MaydayHook>,
    /// The runtime's I/O reactor: running workers poll it without
    /// blocking; the idle worker holding the timer role of the pool that
    /// drives the timers sleeps in it.
    pub(crate) reactor: Option<Arc<Reactor>>,
    /// A current-thread pool: it starts no threads; the threads that block
    /// on it serve as its workers while they do (`Pool::block_on`), and
    /// threads of its own are created (up to `max_workers`, counting the
    /// `block_on` thread) only while one does.
    pub(crate) current_thread: bool,
}

/// A handle to a pool. Cloning shares the pool.
#[derive(Clone)]
pub(crate) struct Pool {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    config: PoolConfig,
    idle: Idle<WorkerRef>,
    /// Tasks scheduled from outside the pool's workers, and tasks handed over
    /// by workers that block.
    injector: Injector<Runnable>,
    /// Every live worker, for stealing and for waking at shutdown.
    workers: RwLock<Vec<WorkerRef>>,
    /// Set once by `shutdown`; then nothing is queued any more.
    closed: AtomicBool,
    /// Threads not yet exited, for shutdown to wait on.
    alive: Mutex<usize>,
    /// The origin of the workers' busy-time stamps.
    epoch: Instant,
    /// Parks and busy time of the workers that exited (or left).
    retired_parks: AtomicU64,
    retired_busy_ns: AtomicU64,
    /// Idle workers culled after `idle_timeout`.
    culled: AtomicU64,
    /// Workers out of `nr_running` because they are inside `wq::blocking`
    /// or were found stuck in a poll, for the metrics only (Relaxed: no
    /// decision reads it).
    detached: std::sync::atomic::AtomicUsize,
    exited: Condvar,
    /// The idle worker that sleeps on the timers, to nudge when an earlier
    /// timer is registered.
    timer_worker: Mutex<Option<WorkerRef>>,
    /// Rough random seed source for steal victims.
    seed: AtomicU64,
    /// Worker threads created since the pool started.
    created: AtomicU64,
    /// 0: not tried yet; 1: the last worker got the nice value; 2: it could
    /// not (no permission).
    nice_applied: std::sync::atomic::AtomicU8,
    /// Someone (a watcher of the polls) that sleeps while no worker runs.
    observer: Arc<Observer>,
    /// Failed worker creations: when the last one failed, and how many.
    create_failures: Mutex<CreateFailures>,
    /// The mayday timer (`mayday.rs`).
    mayday: Mutex<mayday::MaydayTimer>,
    /// `block_on` threads serving as workers now (`Pool::block_on`).
    joined: std::sync::atomic::AtomicUsize,
    /// Threads waiting for a worker slot to block on the pool, woken when
    /// a `block_on` thread leaves.
    slot_waiters: Mutex<Vec<std::task::Waker>>,
}

/// The manager's record of failed creations.
#[derive(Debug, Default)]
struct CreateFailures {
    /// The last failure; no creation is tried until the cooldown passed.
    last: Option<Instant>,
    /// Failures since the pool started.
    count: u64,
}

/// A thread that wants to be woken when the pool starts running again.
#[derive(Default)]
struct Observer {
    /// Set by the observer before it sleeps; cleared by whoever wakes it.
    asleep: AtomicBool,
    wake: OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// See `Pool::set_soon_observer`.
    wake_soon: OnceLock<Box<dyn Fn() -> Option<u64> + Send + Sync>>,
    cancel_soon: OnceLock<Box<dyn Fn(u64) + Send + Sync>>,
    hurry_soon: OnceLock<Box<dyn Fn(u64) + Send + Sync>>,
    /// The token of the wake a worker of this pool asked for on starting
    /// to run, until it is taken back or replaced (0: none); with `LAZY`
    /// until a task is queued (`Shared::hurry_polls_observer`).
    soon: AtomicU64,
    /// Run by running workers between polls, every 61st task, so that the
    /// observer need not wake to look at them. Given the workqueue index of
    /// the task the worker polled last.
    tick: OnceLock<Box<dyn Fn(u32) + Send + Sync>>,
}

/// Figures read from a pool (a snapshot; each counter is read on its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PoolStats {
    pub(crate) workers: usize,
    pub(crate) idle: usize,
    pub(crate) running: usize,
    pub(crate) searching: usize,
    /// Out of `nr_running` inside `wq::blocking` or stuck in a poll.
    pub(crate) detached: usize,
}

/// A stuck poll taken out of `nr_running` by [`Pool::detach_stuck`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Detached {
    /// An idle worker was woken in its place (a concurrency-management
    /// wakeup).
    pub(crate) woke: bool,
}

impl Pool {
    /// Creates the pool, without threads yet: see `start`.
    pub(crate) fn new(config: PoolConfig) -> Pool {
        let shared = Arc::new(Shared {
            idle: Idle::new(config.workers),
            config,
            injector: Injector::new(),
            workers: RwLock::new(Vec::new()),
            closed: AtomicBool::new(false),
            alive: Mutex::new(0),
            epoch: Instant::now(),
            retired_parks: AtomicU64::new(0),
            retired_busy_ns: AtomicU64::new(0),
            culled: AtomicU64::new(0),
            detached: std::sync::atomic::AtomicUsize::new(0),
            exited: Condvar::new(),
            timer_worker: Mutex::new(None),
            seed: AtomicU64::new(0x9E37_79B9_7F4A_7C15),
            created: AtomicU64::new(0),
            nice_applied: std::sync::atomic::AtomicU8::new(0),
            observer: Arc::default(),
            create_failures: Mutex::new(CreateFailures::default()),
            mayday: Mutex::new(mayday::MaydayTimer::default()),
            joined: std::sync::atomic::AtomicUsize::new(0),
            slot_waiters: Mutex::new(Vec::new()),
        });
        if shared.config.drives_timers {
            let weak = Arc::downgrade(&shared);
            shared.config.timers.set_nudge(Box::new(move || {
                if let Some(shared) = weak.upgrade() {
                    if let Some(worker) = &*shared.timer_worker.lock() {
                        worker.parker.unpark();
                    }
                }
            }));
            // A timer registered while no worker holds the timer role, or
            // an I/O source registered: if every worker is blocked, none
            // will look at it, and the observer must (see `Pool::tend`).
            // Free unless the observer sleeps.
            let stranded_hook = || -> Box<dyn Fn() + Send + Sync> {
                let (weak, observer) = (Arc::downgrade(&shared), shared.observer.clone());
                Box::new(move || {
                    if observer.asleep.load(SeqCst) {
                        if let Some(shared) = weak.upgrade() {
                            if shared.timers_stranded() {
                                shared.wake_observer();
                            }
                        }
                    }
                })
            };
            shared.config.timers.set_unowned(stranded_hook());
            if let Some(reactor) = &shared.config.reactor {
                reactor.set_on_register(stranded_hook());
            }
        }
        Pool { shared }
    }

    /// Creates the first `config.workers` threads (they start idle). Fails
    /// only if not even one thread could be created; then the pool is closed.
    pub(crate) fn start(&self) -> io::Result<()> {
        let shared = &self.shared;
        if shared.config.current_thread {
            // Its first worker is the first thread to block on it.
            return Ok(());
        }
        let initial = shared.config.workers.min(shared.config.max_workers);
        for created in 0..initial {
            if !shared.idle.reserve_worker(shared.config.max_workers) {
                break;
            }
            if let Err(err) = manager::spawn_worker(shared) {
                shared.idle.release_worker();
                if created == 0 {
                    self.close();
                    return Err(err);
                }
                manager::creation_failed(shared, &err);
                // The pool runs with the workers it has; more are created on
                // demand later.
                break;
            }
        }
        Ok(())
    }

    /// Queues a runnable: on the current worker's own queue if called from
    /// one of this pool's workers (in its LIFO slot, to run next, unless
    /// that worker has just run three tasks in a row from it), otherwise on
    /// the injector. A task that
    /// woke itself while running (`yielded`: it yielded) waits on its worker's
    /// yield list until the worker has nothing else to do, so that it goes
    /// behind the injector's tasks too; no other worker is woken for it.
    /// After shutdown the runnable is dropped (which cancels its task).
    pub(crate) fn schedule(&self, runnable: Runnable, yielded: bool) {
        match worker::push_local(&self.shared, runnable, yielded) {
            Ok(worker::Pushed::Next | worker::Pushed::Yielded | worker::Pushed::Deferred) => {
                self.shared.hurry_polls_observer();
            }
            Ok(worker::Pushed::Queued) => self.shared.notify_work(),
            Err(runnable) => {
                self.shared.injector.push(runnable);
                self.shared.notify_work();
            }
        }
    }

    /// Runs `future` to completion on the calling thread, which serves as one
    /// of the pool's workers meanwhile (a current-thread pool): see
    /// `worker::block_on`. Gives up without polling (`NoSlot`) if every
    /// worker slot is taken, or, if the pool closes first, with `future`
    /// not complete (`Closed`).
    pub(crate) fn block_on<F: std::future::Future>(
        &self,
        future: std::pin::Pin<&mut F>,
    ) -> worker::Joined<F::Output> {
        worker::block_on(&self.shared, future)
    }

    /// Wakes `waker` once a `block_on` thread serving as a worker leaves
    /// (its worker slot is free). Register before trying `block_on`, so
    /// that a slot freed in between is not missed.
    pub(crate) fn wait_for_slot(&self, waker: &std::task::Waker) {
        let mut waiting = self.shared.slot_waiters.lock();
        if !waiting.iter().any(|w| w.will_wake(waker)) {
            waiting.push(waker.clone());
        }
    }

    /// Closes the pool: from now on nothing is queued (a runnable scheduled
    /// after this is dropped, which cancels its task), queued runnables are
    /// dropped, and every worker is woken to exit after its current task.
    /// Idempotent.
    pub(crate) fn close(&self) {
        let shared = &self.shared;
        shared.closed.store(true, SeqCst);
        // Pairs with the fence in `notify_work`: either a concurrent
        // scheduler sees `closed`, or our drain sees its runnable.
        fence(SeqCst);
        for worker in shared.workers.read().iter() {
            worker.parker.unpark();
        }
        shared.drain_injector();
    }

    /// Waits (up to `timeout`, or forever) for every worker thread to exit,
    /// after `close`. Returns whether all did. Called on one of the pool's
    /// own workers (inside `wq::blocking`), it waits for the others: the
    /// caller exits once it returns to its loop and sees the pool closed.
    pub(crate) fn wait_for_exit(&self, timeout: Option<Duration>) -> bool {
        let shared = &self.shared;
        let deadline = timeout.map(|t| Instant::now() + t);
        let me = usize::from(worker::is_worker_thread_of(shared));
        let mut alive = shared.alive.lock();
        while *alive > me {
            match deadline {
                None => shared.exited.wait(&mut alive),
                Some(deadline) => {
                    if shared.exited.wait_until(&mut alive, deadline).timed_out() {
                        break;
                    }
                }
            }
        }
        let all_exited = *alive <= me;
        drop(alive);
        shared.drain_injector();
        all_exited
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.shared.closed.load(SeqCst)
    }

    /// Whether `other` is this pool.
    pub(crate) fn same(&self, other: &Pool) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    pub(crate) fn stats(&self) -> PoolStats {
        PoolStats {
            workers: self.shared.idle.nr_workers(),
            idle: self.shared.idle.nr_idle(),
            running: self.shared.idle.nr_running(),
            searching: self.shared.idle.nr_searching(),
            detached: self.shared.detached.load(Relaxed),
        }
    }

    /// The live workers' parks and busy time, in the order of the workers'
    /// list, and the pool's totals (those of the workers gone included).
    pub(crate) fn activity(&self) -> (Vec<ActivityFigures>, ActivityFigures) {
        let epoch = self.shared.epoch;
        // Under the list's lock, as a worker retires (`Shared::retire`).
        let workers = self.shared.workers.read();
        let live: Vec<ActivityFigures> = workers.iter().map(|w| w.activity.read(epoch)).collect();
        let mut total = ActivityFigures {
            parks: self.shared.retired_parks.load(Relaxed),
            busy: Duration::from_nanos(self.shared.retired_busy_ns.load(Relaxed)),
        };
        drop(workers);
        for figures in &live {
            total.parks += figures.parks;
            total.busy += figures.busy;
        }
        (live, total)
    }

    /// Idle workers culled since the pool started.
    pub(crate) fn threads_culled(&self) -> u64 {
        self.shared.culled.load(Relaxed)
    }

    /// Whether tasks are queued (on the injector or a worker's queues) and
    /// a worker should be running them: false for a current-thread pool
    /// while no thread is in `block_on` (its tasks wait for the next one
    /// by design) and for a closed pool.
    pub(crate) fn has_due_work(&self) -> bool {
        !self.shared.is_closed() && self.shared.is_attended() && self.shared.has_work()
    }

    /// What the pool is (`PoolConfig::label`).
    pub(crate) fn label(&self) -> &Arc<str> {
        &self.shared.config.label
    }

    /// How many runnables wait on the injector.
    pub(crate) fn injector_depth(&self) -> usize {
        self.shared.injector.len()
    }

    /// Worker creations that failed since the pool started.
    pub(crate) fn create_failures(&self) -> u64 {
        self.shared.create_failures.lock().count
    }

    /// Worker threads created since the pool started (culled and exited
    /// ones included).
    pub(crate) fn threads_created(&self) -> u64 {
        self.shared.created.load(Relaxed)
    }

    /// Whether the worker threads run at the configured nice value: `None`
    /// if none was asked or no worker has started yet.
    pub(crate) fn nice_applied(&self) -> Option<bool> {
        self.shared.config.nice?;
        match self.shared.nice_applied.load(Relaxed) {
            0 => None,
            1 => Some(true),
            _ => Some(false),
        }
    }

    /// Workers counted by concurrency management now.
    pub(crate) fn nr_running(&self) -> usize {
        self.shared.idle.nr_running()
    }

    /// The live workers, whose poll stamps a watcher reads.
    pub(crate) fn workers(&self) -> Vec<WorkerRef> {
        self.shared.workers.read().clone()
    }

    /// A watcher found `worker` stuck in the poll `seen` (blocked, or
    /// hogging the CPU): takes it out of `nr_running` exactly as
    /// `wq::blocking` would, and wakes an idle worker if that leaves work
    /// (or timers) without enough runners. The worker's queues are stolen by
    /// the others; it counts as running again when the poll ends. Returns
    /// `None` if the poll ended (or entered `wq::blocking`) meanwhile.
    pub(crate) fn detach_stuck(&self, worker: &WorkerRef, seen: Seen) -> Option<Detached> {
        let shared = &self.shared;
        // Counted before the CAS: the worker may rejoin (and uncount
        // itself) as soon as the CAS succeeds.
        shared.detached.fetch_add(1, Relaxed);
        if !worker.stamp.try_detect(seen) {
            shared.detached.fetch_sub(1, Relaxed);
            return None;
        }
        // Out of `nr_running` after the CAS, never before: the count may be
        // one too high for a moment (the worker may have rejoined already),
        // never too low. The re-check below covers every wake decision
        // taken while it was too high.
        shared.idle.worker_sleeping();
        // A paused clock must not auto-advance past a poll still running.
        shared.timers().inhibit_add();
        // Pairs with the fence in `notify_work`, as in `BlockingGuard`.
        fence(SeqCst);
        let woke = !shared.is_closed()
            && (shared.has_work() || shared.needs_driver())
            && shared.wake_one();
        Some(Detached { woke })
    }

    /// Installs the function that wakes the observer (the monitor) when the
    /// pool starts starving while the observer sleeps, and, if the pool
    /// stamps its polls (someone watches them), when a worker starts
    /// running.
    pub(crate) fn set_observer(&self, wake: Box<dyn Fn() + Send + Sync>) {
        let _ = self.shared.observer.wake.set(wake);
    }

    /// Installs the functions through which a worker that starts running
    /// asks the observer, if it sleeps without a deadline, for a lazy wake
    /// (a token, or `None` if it woke the observer at once), brings that
    /// wake forward to one tick period after the start once a task is
    /// queued while it is pending (`hurry_soon`: the queued task could wait
    /// behind a poll of the run that gets stuck), and takes it back if it
    /// goes idle first (see `Shared::take_back_polls_observer_wake`).
    /// Without them, a worker that starts running wakes the observer at
    /// once.
    pub(crate) fn set_soon_observer(
        &self,
        wake_soon: Box<dyn Fn() -> Option<u64> + Send + Sync>,
        hurry_soon: Box<dyn Fn(u64) + Send + Sync>,
        cancel_soon: Box<dyn Fn(u64) + Send + Sync>,
    ) {
        let _ = self.shared.observer.wake_soon.set(wake_soon);
        let _ = self.shared.observer.hurry_soon.set(hurry_soon);
        let _ = self.shared.observer.cancel_soon.set(cancel_soon);
    }

    /// Installs the function running workers call between polls, every
    /// 61st task (the observer's tick, which decides itself whether one is
    /// due). Only if the pool stamps its polls.
    pub(crate) fn set_ticker(&self, tick: Box<dyn Fn(u32) + Send + Sync>) {
        if self.shared.config.stamp_polls {
            let _ = self.shared.observer.tick.set(tick);
        }
    }

    /// The observer wants to sleep until the pool starves or, if polls are
    /// watched, a worker runs. Returns false (and stays awake) if that is
    /// the case already. The SeqCst store and loads pair with the counter
    /// increment (or the kicker's fence) and the load in
    /// `Shared::wake_observer` (Dekker): either the observer sees the
    /// running worker (the starving pool), or the other side sees the flag
    /// and wakes it.
    pub(crate) fn observer_may_sleep(&self) -> bool {
        self.shared.observer_may_sleep()
    }

    /// Whether queued work waits with no worker to take it: fewer than
    /// `target` run, nobody searches, no idle worker is left to wake, and a
    /// queue holds work. Only a new worker, a blocked one returning, or a
    /// rescuer moves it on: see `Pool::tend`.
    pub(crate) fn is_starving(&self) -> bool {
        self.shared.is_starving()
    }

    /// The observer sleeps for a while (a slow tick, the mayday timer's)
    /// and wants to be woken if a worker starts running meanwhile, when
    /// polls are watched: its polls must be looked at a period apart, not
    /// after that sleep. Returns false (and stays awake) if one runs
    /// already. The same Dekker pairing as `observer_may_sleep`; starvation
    /// does not veto it.
    pub(crate) fn observer_may_doze(&self) -> bool {
        let shared = &self.shared;
        if !shared.config.stamp_polls {
            return true;
        }
        shared.observer.asleep.store(true, SeqCst);
        fence(SeqCst);
        if shared.idle.nr_running() > 0 {
            shared.observer.asleep.store(false, SeqCst);
            return false;
        }
        true
    }

    /// The observer woke (or gave up sleeping).
    pub(crate) fn observer_awake(&self) {
        self.shared.observer.asleep.store(false, SeqCst);
    }
}

impl Shared {
    /// A worker leaves the list: its figures go to the pool's totals.
    /// Takes `worker` off the list of workers, its figures moving to the
    /// retired totals under the list's lock: `Pool::activity`, which reads
    /// both under it, counts the worker once, never zero times (totals only
    /// go up).
    fn retire(&self, worker: &WorkerRef) {
        let mut workers = self.workers.write();
        workers.retain(|w| w != worker);
        let figures = worker.activity.read(self.epoch);
        self.retired_parks.fetch_add(figures.parks, Relaxed);
        let busy = u64::try_from(figures.busy.as_nanos()).unwrap_or(u64::MAX);
        self.retired_busy_ns.fetch_add(busy, Relaxed);
    }
}

impl Shared {
    /// A worker that blocked (or was detected stuck) runs again.
    fn worker_running(&self) {
        self.idle.worker_running();
        self.wake_polls_observer();
    }

    /// A poll the watcher had detected as stuck ended: the worker counts as
    /// running again (and may then retire as surplus).
    fn rejoin_after_detection(&self) {
        self.detached.fetch_sub(1, Relaxed);
        self.worker_running();
        self.timers().inhibit_sub();
    }

    /// Runs the observer's tick, if it installed one; `queue` is the
    /// workqueue index of the task the calling worker polled last.
    fn tick_observer(&self, queue: u32) {
        if let Some(tick) = self.observer.tick.get() {
            tick(queue);
        }
    }

    /// Called after `nr_running` was incremented: if the observer sleeps
    /// and watches the polls, wakes it (see `wake_observer`), or, if it
    /// sleeps without a deadline, asks for its wake a tick period from
    /// now, so that a worker whose polls are all short can take the wake
    /// back when it goes idle (`take_back_polls_observer_wake`).
    fn wake_polls_observer(&self) {
        if !self.config.stamp_polls {
            return;
        }
        let observer = &self.observer;
        let Some(wake_soon) = observer.wake_soon.get() else {
            self.wake_observer();
            return;
        };
        fence(SeqCst);
        if observer.asleep.load(SeqCst) && observer.asleep.swap(false, SeqCst) {
            if let Some(token) = wake_soon() {
                observer.soon.store(token | LAZY, SeqCst);
                // Tasks queued before the store did not see the token: if
                // there is more than the one this start is for, one could
                // wait behind a stuck poll of the run.
                fence(SeqCst);
                if self.queued_beyond_one() {
                    self.hurry_polls_observer();
                }
            }
        }
    }

    /// Whether more than one task is queued, over the injector and every
    /// worker's queues.
    fn queued_beyond_one(&self) -> bool {
        let mut queued = self.injector.len();
        for worker in self.workers.read().iter() {
            if queued > 1 {
                break;
            }
            queued += worker.stealer.len() + worker.lifo_stealer.len() + worker.yield_stealer.len();
        }
        queued > 1
    }

    /// Called after a task was queued: brings the lazy wake a start asked
    /// for (`wake_polls_observer`), if one is pending, forward to one tick
    /// period after that start, once. A task queued while a run goes on
    /// may wait behind one of its polls that gets stuck, and then must not
    /// wait for a lazy look. One load on the fast path, of a word written
    /// only when a worker starts running while the observer sleeps deep,
    /// and when that wake is taken back.
    fn hurry_polls_observer(&self) {
        let observer = &self.observer;
        let soon = observer.soon.load(SeqCst);
        if soon & LAZY != 0
            && observer
                .soon
                .compare_exchange(soon, soon & !LAZY, SeqCst, SeqCst)
                .is_ok()
        {
            if let Some(hurry_soon) = observer.hurry_soon.get() {
                hurry_soon(soon & !LAZY);
            }
        }
    }

    /// Called by a worker that went idle, after its fence: if no worker
    /// runs and a wake asked for by `wake_polls_observer` is pending, the
    /// observer may sleep on, as it would have decided itself
    /// (`observer_may_sleep`: `asleep` published again, then the same
    /// look at the pool, in the same Dekker pairing with a worker that
    /// starts meanwhile); then the wake is taken back. Otherwise it stays:
    /// the observer wakes a period after the start that asked for it. The
    /// wake taken back is only that token's: a start after our look asks
    /// for one of its own.
    fn take_back_polls_observer_wake(&self) {
        let observer = &self.observer;
        if observer.soon.load(SeqCst) == 0 || self.idle.nr_running() != 0 {
            return;
        }
        let token = observer.soon.swap(0, SeqCst) & !LAZY;
        if token == 0 {
            return;
        }
        if self.observer_may_sleep() {
            if let Some(cancel_soon) = observer.cancel_soon.get() {
                cancel_soon(token);
            }
        }
    }

    /// See `Pool::observer_may_sleep`.
    fn observer_may_sleep(&self) -> bool {
        let observer = &self.observer;
        observer.asleep.store(true, SeqCst);
        fence(SeqCst);
        let running = self.config.stamp_polls && self.idle.nr_running() > 0;
        if running || self.is_closed() || self.is_starving() || self.timers_stranded() {
            observer.asleep.store(false, SeqCst);
            return false;
        }
        true
    }

    /// See `Pool::is_starving`.
    fn is_starving(&self) -> bool {
        self.is_attended()
            && !self.is_closed()
            && self.idle.need_more_worker()
            && self.idle.nr_idle() == 0
            && self.has_work()
    }

    /// Wakes the observer if it sleeps. A fence and a plain load on the
    /// fast path. The fence orders whatever the caller published before
    /// (a raised `nr_running`, queued work) before the load of `asleep`; it
    /// pairs with the fence the observer issues between storing `asleep`
    /// and looking at the pool (Dekker: either it sees what we published,
    /// or we see the flag). `pool/loom_tests.rs`, section 9, models it.
    fn wake_observer(&self) {
        let observer = &self.observer;
        fence(SeqCst);
        if observer.asleep.load(SeqCst) && observer.asleep.swap(false, SeqCst) {
            if let Some(wake) = observer.wake.get() {
                wake();
            }
        }
    }

    /// After queueing work: wake one idle worker if the pool needs one.
    ///
    /// The SeqCst fence orders the push before the loads of the counters; it
    /// pairs with the fence a worker issues after entering the idle list (or
    /// leaving `nr_running`) and before it re-checks the queues. Either we see
    /// its counter change and wake someone, or it sees our work.
    fn notify_work(&self) {
        fence(SeqCst);
        self.hurry_polls_observer();
        if self.closed.load(SeqCst) {
            // Shutdown may have drained before our push landed: drain again.
            self.drain_injector();
            return;
        }
        if self.idle.need_more_worker() {
            self.wake_one();
        }
    }

    /// `kick_pool`: wake the most recently idled worker if more must run.
    /// Picked under the idle lock, woken after it is released. Returns
    /// whether a worker was woken (the kernel's `kick_pool` result, which
    /// its `CMW` column counts).
    fn wake_one(&self) -> bool {
        match self.idle.kick() {
            Kick::Wake(worker) => {
                // Tells the worker it was kicked, not nudged for its timers.
                worker
                    .kicked
                    .store(true, std::sync::atomic::Ordering::Release);
                worker.parker.unpark();
                self.wake_polls_observer();
                true
            }
            // A spare is being created, or the pool is at `max_workers`, or a
            // creation failed: the manager's new worker re-checks the queues
            // when it goes idle. If every worker is blocked, nobody in the
            // pool can create one: the observer, if asleep, must look.
            Kick::NoIdle => {
                self.wake_observer();
                false
            }
            Kick::NotNeeded => false,
        }
    }

    /// Whether timers are pending, or I/O sources registered, that no
    /// worker will look at: this pool drives the timers and the reactor,
    /// and every worker is blocked (none runs, none is idle). Then the
    /// observer fires the timers and polls the reactor (`Pool::tend`).
    fn timers_stranded(&self) -> bool {
        self.config.drives_timers
            && self.is_attended()
            && !self.is_closed()
            && self.idle.nr_running() == 0
            && self.idle.nr_idle() == 0
            && (self.timers().next_deadline().is_some() || self.has_io())
    }

    /// Whether the pool has workers to keep going: always, except for a
    /// current-thread pool nobody blocks on, whose tasks, timers and I/O
    /// wait by design for the next `block_on` (nothing starves then).
    fn is_attended(&self) -> bool {
        !self.config.current_thread || self.joined.load(SeqCst) > 0
    }

    /// Whether I/O sources are registered with the reactor.
    fn has_io(&self) -> bool {
        self.config
            .reactor
            .as_ref()
            .is_some_and(|r| r.has_sources())
    }

    /// Timers pending or I/O registered while no idle worker holds the
    /// timer role (which also sleeps in the reactor): a worker leaving
    /// `nr_running` must kick one.
    fn needs_driver(&self) -> bool {
        let timers = self.timers();
        timers.needs_timer_worker()
            || (self.config.drives_timers && self.has_io() && !timers.has_timer_worker())
    }

    /// Dispatches the I/O events already there, if any source is
    /// registered and nobody else polls now. Returns the tasks woken.
    fn poll_io_now(&self) -> usize {
        self.config.reactor.as_ref().map_or(0, |r| r.turn_now())
    }

    /// Whether any queue holds work: the injector or any worker's deque.
    fn has_work(&self) -> bool {
        !self.injector.is_empty()
            || self.workers.read().iter().any(|w| {
                !w.stealer.is_empty() || !w.lifo_stealer.is_empty() || !w.yield_stealer.is_empty()
            })
    }

    fn drain_injector(&self) {
        loop {
            match self.injector.steal() {
                crossbeam_deque::Steal::Success(runnable) => drop(runnable),
                crossbeam_deque::Steal::Retry => continue,
                crossbeam_deque::Steal::Empty => break,
            }
        }
    }

    fn is_closed(&self) -> bool {
        self.closed.load(SeqCst)
    }

    fn timers(&self) -> &Driver {
        &self.config.timers
    }

    fn next_seed(&self) -> u64 {
        self.seed.fetch_add(0x9E37_79B9_7F4A_7C15, Relaxed)
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("target", &self.shared.idle.target())
            .field("stats", &self.stats())
            .finish()
    }
}
