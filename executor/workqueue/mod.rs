//! Workqueues: named queues of tasks with a concurrency limit
//! (`max_active`), optionally ordered, flushable and drainable, like the
//! kernel's `alloc_workqueue` (see `cmwq.md`).
//!
//! A workqueue does not own threads: its tasks run on one of the runtime's
//! pools, chosen by its attributes and shared with every queue that has the
//! same ones, as in the kernel: the normal pool; the high-priority pool
//! (`highpri`: separate workers at a better nice value); or, for `unbound`
//! queues, the pool of the affinity pod of the CPU that queues the task
//! (`executor/topology/`), pinned to the pod with `affinity_strict`. Every
//! pool is concurrency-managed and watched by the monitor; only the normal
//! pool drives the timers. What a queue adds is the kernel's
//! `pool_workqueue` bookkeeping, per queue:
//!
//! - **Admission.** Each task is admitted when it is queued (at spawn, or
//!   when a delayed task's timer fires), in queue order: if fewer than
//!   `max_active` of the queue's tasks are active and none waits, it becomes
//!   active at once; otherwise it waits on the queue's inactive FIFO. An
//!   active task runs from its first poll to its completion; a waiting task
//!   is scheduled once (to learn its waker) and its future is not polled.
//!   When an active task completes (or is aborted), its slot goes straight to
//!   the first waiting task, once the task's future has been dropped (an
//!   aborted task's destructors are still that task running), so the FIFO
//!   order holds: an ordered queue (`max_active` 1) runs its tasks one at a
//!   time, in queue order. The counts are atomic: while a slot is free and
//!   nobody waits, a task is admitted and finishes without taking the
//!   queue's lock (`Inner`).
//! - **Flush.** Every queued task takes the queue's current flush colour; a
//!   flush closes the colour and waits until it and the colours before it
//!   have drained (`colors.rs`). Tasks queued later take the next colour and
//!   do not hold it up.
//! - **Drain.** While a `drain` runs, only the queue's own tasks may queue
//!   more work on it (chained work); anyone else gets `SpawnError`.
//!
//! `wq::spawn` queues on the runtime's `system` queue, which has no
//! `max_active` limit. Its tasks are not wrapped: the task registry counts
//! them in the queue's flush colours, in the shard it locks for every spawn
//! and every task end anyway (`task/registry.rs`), so `wq::spawn` pays for
//! flush and drain with a few instructions under a lock it already holds.
//!
//! Abort works in every state: a waiting task is woken by the abort, is
//! cancelled without its future ever being polled, and leaves the FIFO. A
//! waiting task handed a slot finds it at a poll that began before it knew,
//! perhaps before an abort: its future is first polled at the poll after,
//! which sees the abort.

mod builder;
mod colors;
mod gate;
#[cfg(all(test, loom))]
mod loom_tests;
mod work;

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, OnceLock, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use crate::rescuer::Rescuer;
use crate::runtime::Handle;
use crate::task::registry::{Registry, SpawnMeta};
use crate::task::stats::{QueueCounters, QueueId, QueueTable};
use crate::task::{JoinHandle, NO_RESCUER};
use crate::topology::Scope;
pub use builder::WorkqueueBuilder;
use colors::{Colors, Counts, Ring};
use gate::{Admission, Gated};
pub use work::{DelayedWork, Work};

/// The default and the bounds of `max_active` (the kernel's
/// `WQ_DFL_ACTIVE` and `WQ_MAX_ACTIVE`).
pub const DEFAULT_MAX_ACTIVE: usize = 1024;
/// The largest `max_active` accepted.
pub const MAX_MAX_ACTIVE: usize = 2048;
/// The `max_active` of [`system()`], the queue of [`wq::spawn`](crate::spawn):
/// no limit, as with tokio's `spawn`.
const UNLIMITED: usize = usize::MAX;

/// A named queue of tasks with a concurrency limit. Cloning shares the queue.
///
/// ```
/// # let rt = wq::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let queue = wq::Workqueue::builder("thumbnails").max_active(4).build().unwrap();
/// let handles: Vec<_> = (0..16).map(|i| queue.spawn(async move { i * 2 })).collect();
/// for (i, handle) in handles.into_iter().enumerate() {
///     assert_eq!(handle.await.unwrap(), i * 2);
/// }
/// queue.flush().await;
/// assert_eq!(queue.stats().completed, 16);
/// # });
/// ```
#[derive(Clone)]
pub struct Workqueue {
    inner: Arc<Inner>,
    /// The runtime the queue spawns on. Not in `Inner`: the runtime keeps
    /// its system queues, and tasks keep their queue.
    handle: Handle,
}

/// What a workqueue's tasks and handles share: the kernel's
/// `pool_workqueue` bookkeeping. The counters are atomic so that a task is
/// admitted and finishes without the lock while the queue has a free slot
/// and nobody waits; the lock guards the inactive FIFO and the waiters.
pub(crate) struct Inner {
    name: Arc<str>,
    attrs: Attrs,
    /// The rescuer of a `mem_reclaim` queue.
    rescuer: Option<Rescuer>,
    /// A task of a `mem_reclaim` queue flushed or drained this queue (which
    /// has no rescuer), and it was reported.
    warned_dependency: AtomicBool,
    /// The limit on active tasks; [`UNLIMITED`] (for `system` only, and
    /// for good) skips admission.
    max_active: AtomicUsize,
    /// `drain` calls in progress.
    draining: AtomicUsize,
    /// Which of the wrapped tasks each flush waits for; also counts them.
    colors: Colors,
    /// For `system`: the runtime's task registry, which counts `wq::spawn`'s
    /// tasks in the same colours (they are not wrapped).
    registry: Option<Arc<Registry>>,
    /// Admission's counts, written by every task of a limited queue.
    slots: CachePadded<Slots>,
    state: Mutex<State>,
    /// For an unbound queue, its pool for each pod of its scope, looked up
    /// once (lock-free afterwards).
    pod_pools: Box<[OnceLock<crate::pool::Pool>]>,
    /// Its index in the runtime's table of counters, which its tasks carry.
    queue: QueueId,
    /// The counters the monitor and `wq::blocking` update.
    counters: Arc<QueueCounters>,
    /// The table, to free the slot when the last task is gone.
    queues: Arc<QueueTable>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Every task holds the queue (its gate does), so none is left that
        // could count into a reused slot.
        self.queues.unregister(self.queue);
    }
}

/// The counts of admission.
struct Slots {
    /// Tasks admitted and not finished (the kernel's `nr_active`).
    active: AtomicUsize,
    /// Tasks on the inactive FIFO, or about to join it: announced before
    /// they check for a slot, so a finishing task sees them (see
    /// `Inner::queue_task`).
    waiting: AtomicUsize,
}

/// The attributes a queue was built with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Attrs {
    pub(crate) ordered: bool,
    pub(crate) highpri: bool,
    pub(crate) cpu_intensive: bool,
    pub(crate) mem_reclaim: bool,
    pub(crate) unbound: Option<Scope>,
    pub(crate) affinity_strict: bool,
}

/// What changes under the queue's lock.
#[derive(Default)]
struct State {
    /// Waiting tasks, by id, in queue order; with their waker once they
    /// have been polled.
    inactive: VecDeque<(u64, Option<Waker>)>,
    /// Waiting tasks given a slot that have not been polled since.
    handed: HashSet<u64>,
    /// The next id of a waiting task, flush or drain.
    next_id: u64,
    /// The colours drained so far.
    ring: Ring,
    /// Flushes and drains waiting.
    waiters: Vec<Waiting>,
}

/// A registered flush or drain.
struct Waiting {
    id: u64,
    /// The colour it waits for (and all below).
    color: u64,
    /// A drain: woken on every drained colour, to check for new work.
    drain: bool,
    waker: Waker,
}

impl State {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

/// Figures of one workqueue, read on demand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkqueueStats {
    /// Tasks queued since the queue was created.
    pub total: u64,
    /// Tasks active now (admitted, not finished): the kernel's `infl`.
    pub active: usize,
    /// Tasks waiting for a slot on the inactive FIFO.
    pub inactive: usize,
    /// Tasks that finished (completed, panicked or were cancelled).
    pub completed: u64,
    /// The current limit; `usize::MAX` for [`system()`], which has none
    /// unless one is set with [`Workqueue::set_max_active`].
    pub max_active: usize,
    /// Times a starving pool called this queue's rescuer (the kernel's
    /// `mayday` column): every worker was blocked, none could be created,
    /// and tasks of this queue were waiting. 0 without `mem_reclaim`.
    pub mayday: u64,
    /// Polls of this queue's tasks run by its rescuer (`rescued`). 0
    /// without `mem_reclaim`.
    pub rescued: u64,
    /// Time its tasks spent in polls that were not blocked (`CPUtime`),
    /// sampled like the kernel's: at every tick of the monitor (every half
    /// `blocking_threshold` while workers run) each poll in progress adds
    /// the time since the previous tick, or, for a poll seen at earlier
    /// ticks, the share of it that its thread ran by its CPU clock. Exact
    /// over many ticks, not per task; 0 with the monitor off.
    pub cpu_time: Duration,
    /// Polls of its tasks found using more than `cpu_intensive_threshold`
    /// of CPU and taken out of concurrency management (`CPUitsv`). 0 with
    /// the monitor off.
    pub cpu_intensive: u64,
    /// Idle workers woken because one of its tasks blocked (in
    /// `wq::blocking`, or found blocked or hogging by the monitor) while
    /// work waited: concurrency-management wakeups (`CMW`).
    pub cm_wakeups: u64,
}

/// Why a workqueue refused a task.
#[derive(Debug)]
pub struct SpawnError {
    name: String,
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "workqueue `{}` is draining: only its own tasks may queue work on it until the drain ends",
            self.name
        )
    }
}

impl std::error::Error for SpawnError {}

thread_local! {
    /// The workqueue whose task this thread is polling, for `drain`.
    static CURRENT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// The name of the `mem_reclaim` workqueue whose task this thread is
    /// polling, for the flush dependency check.
    static RECLAIMING: std::cell::RefCell<Option<Arc<str>>> =
        const { std::cell::RefCell::new(None) };
}

impl Workqueue {
    /// Starts building a workqueue named `name`.
    pub fn builder(name: impl Into<String>) -> WorkqueueBuilder {
        WorkqueueBuilder::new(name.into())
    }

    /// Creates the queue, with its rescuer thread if `mem_reclaim`.
    pub(crate) fn from_parts(
        name: String,
        handle: Handle,
        attrs: Attrs,
        max_active: usize,
    ) -> io::Result<Workqueue> {
        let mut inner = Inner::new(name, &handle, attrs, max_active, None);
        if attrs.mem_reclaim {
            let rescuer = handle.inner().start_rescuer(&inner.name).map_err(|err| {
                io::Error::new(
                    err.kind(),
                    format!(
                        "workqueue `{}`: could not create the rescuer thread that \
                         `mem_reclaim` asks for: {err}",
                        inner.name
                    ),
                )
            })?;
            inner.rescuer = Some(rescuer);
        }
        let inner = Arc::new(inner);
        handle.system_queues().listed(&inner);
        Ok(Workqueue { inner, handle })
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Queues `future` on this workqueue. It runs once one of the queue's
    /// `max_active` slots is free, after the tasks queued before it got one.
    ///
    /// # Panics
    ///
    /// Panics if a [`drain`](Workqueue::drain) is in progress and the caller
    /// is not one of this queue's tasks; see [`try_spawn`](Workqueue::try_spawn).
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match spawn_on(&self.handle, &self.inner, future, None, SpawnMeta::here()) {
            Ok(handle) => handle,
            Err(err) => panic!("{err}"),
        }
    }

    /// Queues `future`, or returns an error if a drain is in progress and the
    /// caller is not one of this queue's tasks.
    #[track_caller]
    pub fn try_spawn<F>(&self, future: F) -> Result<JoinHandle<F::Output>, SpawnError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        spawn_on(&self.handle, &self.inner, future, None, SpawnMeta::here())
    }

    /// Queues `future` once `delay` has passed (the kernel's delayed work):
    /// until then it is neither pending for `flush` nor counted active.
    ///
    /// # Panics
    ///
    /// Like [`spawn`](Workqueue::spawn), if the queue is draining.
    #[track_caller]
    pub fn spawn_after<F>(&self, delay: Duration, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match spawn_on(
            &self.handle,
            &self.inner,
            future,
            Some(delay),
            SpawnMeta::here(),
        ) {
            Ok(handle) => handle,
            Err(err) => panic!("{err}"),
        }
    }

    /// Waits until every task queued on this workqueue before the call has
    /// finished. Tasks queued after the call do not delay it. The set of
    /// tasks waited for is fixed when `flush` is called, not when the
    /// returned future is first polled.
    ///
    /// (The one exception: while 15 earlier flushes still wait, each for a
    /// different set, this one's set stays open until the oldest of them
    /// completes, and also takes in the tasks queued until then.)
    pub fn flush(&self) -> impl Future<Output = ()> + Send + 'static {
        self.inner.check_flush_dependency("flushing");
        let inner = self.inner.clone();
        let (id, color) = {
            let mut state = inner.state.lock();
            let color = state.ring.close(&*inner);
            (state.id(), color)
        };
        Waiter {
            inner,
            id,
            kind: WaitFor::Flush(color),
        }
    }

    /// Waits until the queue is empty, refusing work from anyone but the
    /// queue's own tasks meanwhile (their chained work is accepted, and
    /// waited for too). Other spawns fail with [`SpawnError`] (and
    /// [`spawn`](Workqueue::spawn) panics; on [`system()`] that includes
    /// [`wq::spawn`](crate::spawn) from outside its tasks). The refusal
    /// starts when `drain` is called and ends when the returned future
    /// completes or is dropped.
    ///
    /// It flushes until a flush finds that nothing was queued since it
    /// began, as the kernel's `drain_workqueue` does.
    pub fn drain(&self) -> impl Future<Output = ()> + Send + 'static {
        self.inner.check_flush_dependency("draining");
        let inner = self.inner.clone();
        inner.draining.fetch_add(1, SeqCst);
        let id = inner.state.lock().id();
        Waiter {
            inner,
            id,
            kind: WaitFor::Empty(None),
        }
    }

    /// Changes the concurrency limit. Raising it starts waiting tasks at
    /// once; lowering it lets active tasks finish.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if the queue is ordered or is [`system()`], or `n` is
    /// outside `1..=2048`.
    pub fn set_max_active(&self, n: usize) -> io::Result<()> {
        if self.inner.attrs.ordered {
            return Err(invalid(
                &self.inner.name,
                "max_active",
                "an ordered workqueue runs one task at a time",
            ));
        }
        if self.inner.is_unlimited() {
            return Err(invalid(
                &self.inner.name,
                "max_active",
                "the system workqueue has no limit, so that `wq::spawn` never makes a task \
                 wait for another; build a workqueue with `.max_active(n)` to bound tasks",
            ));
        }
        validate_max_active(&self.inner.name, n)?;
        let wakers = {
            let mut state = self.inner.state.lock();
            self.inner.max_active.store(n, SeqCst);
            self.inner.pump(&mut state)
        };
        wakers.into_iter().for_each(Waker::wake);
        Ok(())
    }

    /// The queue's figures now (each read on its own: under load they may
    /// not add up exactly).
    pub fn stats(&self) -> WorkqueueStats {
        let inner = &self.inner;
        let (total, pending) = inner.totals();
        let (active, inactive) = if inner.is_unlimited() {
            (pending as usize, 0)
        } else {
            (
                inner.slots.active.load(Relaxed),
                inner.slots.waiting.load(Relaxed),
            )
        };
        WorkqueueStats {
            total,
            active,
            inactive,
            completed: total.saturating_sub(pending),
            max_active: inner.max_active.load(Relaxed),
            mayday: inner.rescuer.as_ref().map_or(0, Rescuer::mayday),
            rescued: inner.rescuer.as_ref().map_or(0, Rescuer::rescued),
            cpu_time: inner.counters.cpu_time(),
            cpu_intensive: inner.counters.cpu_intensive(),
            cm_wakeups: inner.counters.cm_wakeups(),
        }
    }

    /// Whether the queue was built with `.ordered()`.
    pub fn is_ordered(&self) -> bool {
        self.inner.attrs.ordered
    }

    /// Whether the queue was built with `.mem_reclaim()`.
    pub fn is_mem_reclaim(&self) -> bool {
        self.inner.attrs.mem_reclaim
    }
}

/// Queues `future` on `queue`, a queue of the runtime of `handle`.
#[track_caller]
fn spawn_on<F>(
    handle: &Handle,
    queue: &Arc<Inner>,
    future: F,
    delay: Option<Duration>,
    meta: SpawnMeta,
) -> Result<JoinHandle<F::Output>, SpawnError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    queue.check_drain()?;
    let meta = SpawnMeta {
        queue: queue.queue,
        ..meta
    };
    let admission = match delay {
        // `system`: counted by the registry, not wrapped.
        None if queue.registry.is_some() => {
            let pool = &handle.inner().pool;
            return Ok(handle.spawn_on_pool(future, meta, pool, true, NO_RESCUER));
        }
        None => queue.queue_task(),
        Some(delay) => {
            let _enter = handle.enter();
            Admission::Delayed(Box::pin(crate::time::sleep(delay)))
        }
    };
    let gated = Gated::new(future, queue.clone(), admission);
    let rescuer = queue.rescuer.as_ref().map_or(NO_RESCUER, Rescuer::tag);
    if let Some(pool) = queue.unbound_pool(handle) {
        return Ok(handle.spawn_on_pool(gated, meta, &pool, false, rescuer));
    }
    if queue.attrs.highpri {
        // Created by `build` (or here, for `system_highpri`); if it
        // cannot be, the runtime is shutting down or out of threads:
        // the normal pool still runs the task.
        if let Ok(pool) = handle.highpri_pool() {
            return Ok(handle.spawn_on_pool(gated, meta, pool, false, rescuer));
        }
    }
    let pool = &handle.inner().pool;
    Ok(handle.spawn_on_pool(gated, meta, pool, false, rescuer))
}

/// `wq::spawn` and `Handle::spawn`: queues `future` on the runtime's
/// [`system()`] queue.
///
/// # Panics
///
/// If `system()` is draining and the caller is not one of its tasks.
#[track_caller]
pub(crate) fn spawn_system<F>(handle: &Handle, future: F, meta: SpawnMeta) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let queue = handle.system_queues().system(handle);
    if let Err(err) = queue.check_drain() {
        panic!("{err}");
    }
    handle.spawn_on_pool(future, meta, &handle.inner().pool, true, NO_RESCUER)
}

/// What a [`Waiter`] waits for.
enum WaitFor {
    /// The colour a flush closed: every task of it and of the colours
    /// below has finished.
    Flush(u64),
    /// The queue is empty (a drain): flushes in rounds, each round the
    /// colour it closed and the count of tasks ever queued when it did.
    Empty(Option<(u64, u64)>),
}

/// The future of `flush` and `drain`.
struct Waiter {
    inner: Arc<Inner>,
    id: u64,
    kind: WaitFor,
}

impl Future for Waiter {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let inner = &*this.inner;
        let mut state = inner.state.lock();
        loop {
            let color = match this.kind {
                WaitFor::Flush(color) | WaitFor::Empty(Some((color, _))) => color,
                WaitFor::Empty(None) => {
                    // A round: tasks queued from now on take a later colour;
                    // if none was queued by the time this one has drained,
                    // the queue is empty. A task the total counts has its
                    // colour already (`colors.rs`; the registry takes both
                    // under one shard lock), so it is this one or earlier.
                    let queued = inner.totals().0;
                    this.kind = WaitFor::Empty(Some((state.ring.close(inner), queued)));
                    continue;
                }
            };
            // Registered before checking, so a task that drains the colour
            // meanwhile sees a waiter (see `colors`).
            this.register(&mut state, color, cx.waker());
            state.ring.try_close(color, inner);
            if state.ring.drained(inner) <= color {
                return Poll::Pending;
            }
            if let WaitFor::Empty(Some((_, queued))) = this.kind {
                if inner.totals().0 != queued {
                    this.kind = WaitFor::Empty(None);
                    continue;
                }
            }
            this.unregister(&mut state);
            return Poll::Ready(());
        }
    }
}

impl Waiter {
    /// Puts (or refreshes) this waiter on the queue's list.
    fn register(&self, state: &mut State, color: u64, waker: &Waker) {
        match state.waiters.iter_mut().find(|w| w.id == self.id) {
            Some(entry) => {
                entry.color = color;
                entry.waker.clone_from(waker);
            }
            None => {
                self.inner.add_waiter();
                state.waiters.push(Waiting {
                    id: self.id,
                    color,
                    drain: matches!(self.kind, WaitFor::Empty(_)),
                    waker: waker.clone(),
                });
            }
        }
    }

    fn unregister(&self, state: &mut State) {
        if let Some(pos) = state.waiters.iter().position(|w| w.id == self.id) {
            state.waiters.swap_remove(pos);
            self.inner.remove_waiters(1);
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.unregister(&mut self.inner.state.lock());
        if let WaitFor::Empty(_) = self.kind {
            self.inner.draining.fetch_sub(1, SeqCst);
        }
    }
}

/// The colours of a queue: its wrapped tasks' and, for `system`, the
/// registry's, kept on the same colour.
impl Counts for Inner {
    fn current(&self) -> u64 {
        self.colors.current()
    }

    fn open(&self, color: u64) {
        if let Some(registry) = &self.registry {
            registry.open_counted_color(color);
        }
        self.colors.open(color);
    }

    fn in_flight(&self, color: u64) -> u64 {
        let counted = self
            .registry
            .as_ref()
            .map_or(0, |r| r.counted_in_flight(color));
        self.colors.in_flight(color) + counted
    }
}

impl Inner {
    fn new(
        name: impl Into<Arc<str>>,
        handle: &Handle,
        attrs: Attrs,
        max_active: usize,
        registry: Option<Arc<Registry>>,
    ) -> Inner {
        let pod_pools = match attrs.unbound {
            Some(scope) => {
                let pods = handle.inner().topology().pods(scope).len();
                (0..pods.max(1)).map(|_| OnceLock::new()).collect()
            }
            None => Box::new([]) as Box<[_]>,
        };
        let name: Arc<str> = name.into();
        let queues = handle.inner().queues.clone();
        let (queue, counters) = if registry.is_some() {
            (QueueId::SYSTEM, queues.system())
        } else {
            queues.register(name.clone())
        };
        Inner {
            name,
            attrs,
            rescuer: None,
            warned_dependency: AtomicBool::new(false),
            max_active: AtomicUsize::new(max_active),
            draining: AtomicUsize::new(0),
            colors: Colors::new(),
            registry,
            slots: CachePadded::new(Slots {
                active: AtomicUsize::new(0),
                waiting: AtomicUsize::new(0),
            }),
            state: Mutex::new(State::default()),
            pod_pools,
            queue,
            counters,
            queues,
        }
    }

    /// For an unbound queue, the pool of the pod of the CPU the caller runs
    /// on; `None` for other queues (or if the pool cannot be created: then
    /// the normal pool runs the task).
    fn unbound_pool(&self, handle: &Handle) -> Option<crate::pool::Pool> {
        let scope = self.attrs.unbound?;
        let runtime = handle.inner();
        let pod = runtime.current_pod(scope);
        let slot = self.pod_pools.get(pod)?;
        if let Some(pool) = slot.get() {
            return Some(pool.clone());
        }
        let pool = runtime
            .unbound_pool_of(scope, pod, self.attrs.affinity_strict, self.attrs.highpri)
            .ok()?;
        Some(slot.get_or_init(|| pool).clone())
    }

    fn id(&self) -> usize {
        self as *const Inner as usize
    }

    /// The kernel's `check_flush_dependency`: a task of a `mem_reclaim`
    /// queue that waits for a queue without a rescuer may wait forever when
    /// no worker can be had (the rescuer runs only its own queue's tasks).
    /// Reported once per flushed queue.
    fn check_flush_dependency(&self, what: &str) {
        if self.rescuer.is_some() {
            return;
        }
        let Some(reclaiming) = RECLAIMING.with(|r| r.borrow().clone()) else {
            return;
        };
        if !self.warned_dependency.swap(true, Relaxed) {
            tracing::warn!(
                workqueue = %self.name,
                from = %reclaiming,
                "wq: a task of the mem_reclaim workqueue `{reclaiming}` is {what} `{}`, which \
                 has no rescuer: if no worker can be created, that wait may never end. Queue \
                 the work it depends on on a mem_reclaim workqueue too",
                self.name
            );
        }
    }

    fn check_drain(&self) -> Result<(), SpawnError> {
        if self.draining.load(SeqCst) == 0
            || CURRENT.with(|c| c.get()) == self.id()
            || self.registry.as_ref().is_some_and(|r| r.polling_counted())
        {
            return Ok(());
        }
        Err(SpawnError {
            name: self.name.to_string(),
        })
    }

    /// Tasks ever queued, and queued and not finished.
    fn totals(&self) -> (u64, u64) {
        let (queued, pending) = self.colors.totals();
        let (counted, counted_pending) = self
            .registry
            .as_ref()
            .map_or((0, 0), |r| r.counted_totals());
        (queued + counted, pending + counted_pending)
    }

    fn add_waiter(&self) {
        self.colors.waiters().fetch_add(1, SeqCst);
        if let Some(registry) = &self.registry {
            registry.counted_waiters().fetch_add(1, SeqCst);
        }
    }

    fn remove_waiters(&self, n: usize) {
        if n > 0 {
            self.colors.waiters().fetch_sub(n, SeqCst);
            if let Some(registry) = &self.registry {
                registry.counted_waiters().fetch_sub(n, SeqCst);
            }
        }
    }

    /// Queues one task (at spawn, or when a delayed task's timer fires:
    /// then a drain since does not refuse it, it was accepted before):
    /// counts it in the current flush colour, and gives it a slot if one is
    /// free and nobody waits, or a place on the inactive FIFO.
    fn queue_task(&self) -> Admission {
        let (color, wake) = self.colors.enter();
        if wake {
            self.wake_waiters();
        }
        if self.is_unlimited() || (self.slots.waiting.load(SeqCst) == 0 && self.try_activate()) {
            return Admission::Active(color);
        }
        // Announced in `waiting` before looking for a slot: a task that
        // frees one either is seen here, or sees `waiting` and hands it on.
        let (id, handed, wakers) = {
            let mut state = self.state.lock();
            let id = state.id();
            self.slots.waiting.fetch_add(1, SeqCst);
            state.inactive.push_back((id, None));
            let wakers = self.pump(&mut state);
            (id, state.handed.remove(&id), wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
        if handed {
            Admission::Active(color)
        } else {
            Admission::Waiting { id, color }
        }
    }

    /// `system`: no admission, no slots counted.
    fn is_unlimited(&self) -> bool {
        self.max_active.load(Relaxed) == UNLIMITED
    }

    /// Takes a slot if one is free (limited queues).
    fn try_activate(&self) -> bool {
        let max = self.max_active.load(SeqCst);
        self.slots
            .active
            .fetch_update(SeqCst, SeqCst, |active| {
                (active < max).then_some(active + 1)
            })
            .is_ok()
    }

    /// Hands free slots to the first waiting tasks, in order; returns the
    /// wakers to wake (outside the lock) of those polled already.
    fn pump(&self, state: &mut State) -> Vec<Waker> {
        let mut wakers = Vec::new();
        while !state.inactive.is_empty() && self.try_activate() {
            let Some((id, waker)) = state.inactive.pop_front() else {
                break;
            };
            self.slots.waiting.fetch_sub(1, SeqCst);
            state.handed.insert(id);
            wakers.extend(waker);
        }
        wakers
    }

    /// An active task of `color` finished (or was dropped).
    fn finish_active(&self, color: u64) {
        if !self.is_unlimited() {
            self.slots.active.fetch_sub(1, SeqCst);
            if self.slots.waiting.load(SeqCst) > 0 {
                let wakers = self.pump(&mut self.state.lock());
                wakers.into_iter().for_each(Waker::wake);
            }
        }
        self.finish(color);
    }

    /// A waiting task was dropped (aborted, or its runtime shut down).
    fn finish_waiting(&self, id: u64, color: u64) {
        let held_slot = {
            let mut state = self.state.lock();
            // A slot handed to it but never used goes on to the next.
            let handed = state.handed.remove(&id);
            if !handed {
                if let Some(pos) = state.inactive.iter().position(|(i, _)| *i == id) {
                    state.inactive.remove(pos);
                    self.slots.waiting.fetch_sub(1, SeqCst);
                }
            }
            handed
        };
        if held_slot {
            self.finish_active(color);
        } else {
            self.finish(color);
        }
    }

    fn finish(&self, color: u64) {
        if self.colors.leave(color) {
            self.wake_waiters();
        }
    }

    /// A colour drained while flushes or drains wait: wakes those done (and
    /// every drain, to check for new work), and closes the colour of a
    /// waiter that could not close its own.
    fn wake_waiters(&self) {
        let mut wakers = Vec::new();
        {
            let mut state = self.state.lock();
            let state = &mut *state;
            if let Some(open) = state.waiters.iter().map(|w| w.color).max() {
                state.ring.try_close(open, self);
            }
            let below = state.ring.drained(self);
            let mut woken = 0;
            let mut i = 0;
            while i < state.waiters.len() {
                if state.waiters[i].color < below && !state.waiters[i].drain {
                    wakers.push(state.waiters.swap_remove(i).waker);
                    woken += 1;
                } else {
                    if state.waiters[i].color < below {
                        wakers.push(state.waiters[i].waker.clone());
                    }
                    i += 1;
                }
            }
            self.remove_waiters(woken);
        }
        wakers.into_iter().for_each(Waker::wake);
    }
}

fn validate_max_active(name: &str, n: usize) -> io::Result<()> {
    if !(1..=MAX_MAX_ACTIVE).contains(&n) {
        return Err(invalid(
            name,
            "max_active",
            format!("must be in 1..={MAX_MAX_ACTIVE}, got {n}"),
        ));
    }
    Ok(())
}

fn invalid(name: &str, field: &str, reason: impl fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("invalid workqueue `{name}` setting `{field}`: {reason}"),
    )
}

impl fmt::Debug for Workqueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workqueue")
            .field("name", &self.inner.name)
            .field("attrs", &self.inner.attrs)
            .field("stats", &self.stats())
            .finish()
    }
}

/// The runtime's system workqueues, created on first use. Kept without
/// their handle: the runtime owns them.
#[derive(Default)]
pub(crate) struct SystemQueues {
    system: OnceLock<Arc<Inner>>,
    highpri: OnceLock<Arc<Inner>>,
    long: OnceLock<Arc<Inner>>,
    unbound: OnceLock<Arc<Inner>>,
    /// Every queue of the runtime, in creation order, for the metrics.
    all: Mutex<Vec<Weak<Inner>>>,
}

impl SystemQueues {
    /// The queue of `wq::spawn`, on the runtime of `handle`.
    fn system(&self, handle: &Handle) -> &Arc<Inner> {
        self.system.get_or_init(|| {
            let registry = handle.inner().tasks.clone();
            let inner = Arc::new(Inner::new(
                "system",
                handle,
                PLAIN,
                UNLIMITED,
                Some(registry.clone()),
            ));
            let weak: Weak<Inner> = Arc::downgrade(&inner);
            registry.set_on_drained(Box::new(move || {
                if let Some(inner) = weak.upgrade() {
                    inner.wake_waiters();
                }
            }));
            self.listed(&inner);
            inner
        })
    }

    /// Adds a new queue to the list of the runtime's queues.
    fn listed(&self, inner: &Arc<Inner>) {
        let mut all = self.all.lock();
        all.retain(|queue| queue.strong_count() > 0);
        all.push(Arc::downgrade(inner));
    }

    /// The runtime's live workqueues, `system` first.
    fn list(&self, handle: &Handle) -> Vec<Arc<Inner>> {
        let system = self.system(handle).clone();
        let others = self
            .all
            .lock()
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|queue| !Arc::ptr_eq(queue, &system))
            .collect::<Vec<_>>();
        std::iter::once(system).chain(others).collect()
    }
}

/// The live workqueues of the runtime of `handle`, `system` first, in
/// creation order.
pub(crate) fn all(handle: &Handle) -> Vec<Workqueue> {
    handle
        .system_queues()
        .list(handle)
        .into_iter()
        .map(|inner| Workqueue {
            inner,
            handle: handle.clone(),
        })
        .collect()
}

impl fmt::Debug for SystemQueues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SystemQueues").finish_non_exhaustive()
    }
}

fn system_queue(
    pick: impl Fn(&SystemQueues) -> &OnceLock<Arc<Inner>>,
    name: &str,
    attrs: Attrs,
) -> Workqueue {
    let handle = Handle::current();
    let inner = pick(handle.system_queues())
        .get_or_init(|| {
            let inner = Inner::new(name.to_owned(), &handle, attrs, DEFAULT_MAX_ACTIVE, None);
            let inner = Arc::new(inner);
            handle.system_queues().listed(&inner);
            inner
        })
        .clone();
    Workqueue { inner, handle }
}

/// No attribute set: what a builder starts from, and `system()`'s.
const PLAIN: Attrs = Attrs {
    ordered: false,
    highpri: false,
    cpu_intensive: false,
    mem_reclaim: false,
    unbound: None,
    affinity_strict: false,
};

/// The current runtime's general-purpose workqueue (the kernel's
/// `system_wq`): the queue of [`wq::spawn`](crate::spawn),
/// [`Handle::spawn`](crate::Handle::spawn) and everything built on them
/// (`JoinSet`, `task::Builder`, `spawn_blocking`), so its
/// [`stats`](Workqueue::stats) count them, and [`flush`](Workqueue::flush)
/// and [`drain`](Workqueue::drain) wait for them.
///
/// Unlike the kernel's, it has no `max_active` limit, and none can be set:
/// a task that awaits costs no thread, and tokio code that spawns one task
/// per connection must not find its 1,025th connection waiting behind the
/// others. Build a workqueue with a limit for tasks that need one.
///
/// ```
/// # let rt = wq::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let before = wq::system().stats().total;
/// wq::spawn(async {}).await.unwrap();
/// assert_eq!(wq::system().stats().total, before + 1);
/// assert_eq!(wq::system().stats().max_active, usize::MAX);
/// # });
/// ```
///
/// # Panics
///
/// Outside a runtime context, like [`wq::spawn`](crate::spawn).
pub fn system() -> Workqueue {
    let handle = Handle::current();
    let inner = handle.system_queues().system(&handle).clone();
    Workqueue { inner, handle }
}

/// The current runtime's high-priority workqueue (`system_highpri_wq`).
pub fn system_highpri() -> Workqueue {
    system_queue(
        |q| &q.highpri,
        "system_highpri",
        Attrs {
            highpri: true,
            ..PLAIN
        },
    )
}

/// The current runtime's workqueue for long-running tasks
/// (`system_long_wq`).
pub fn system_long() -> Workqueue {
    system_queue(|q| &q.long, "system_long", PLAIN)
}

/// The current runtime's unbound workqueue (`system_unbound_wq`).
pub fn system_unbound() -> Workqueue {
    system_queue(
        |q| &q.unbound,
        "system_unbound",
        Attrs {
            unbound: Some(Scope::default()),
            ..PLAIN
        },
    )
}
