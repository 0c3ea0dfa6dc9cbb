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
//!   the first waiting task, so the FIFO order holds: an ordered queue
//!   (`max_active` 1) runs its tasks one at a time, in queue order.
//! - **Flush.** Every queued task takes a sequence number; `flush` waits
//!   until no task with a smaller number than the next one at its call is
//!   left. Tasks queued later do not hold it up.
//! - **Drain.** While a `drain` runs, only the queue's own tasks may queue
//!   more work on it (chained work); anyone else gets `SpawnError`.
//!
//! Abort works in every state: a waiting task is woken by the abort, is
//! cancelled without its future ever being polled, and leaves the FIFO.

mod builder;
mod gate;
mod work;

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::task::{Poll, Waker};
use std::time::Duration;

use parking_lot::Mutex;

use crate::runtime::Handle;
use crate::task::registry::SpawnMeta;
use crate::task::JoinHandle;
use crate::topology::Scope;
pub use builder::WorkqueueBuilder;
use gate::{Admission, Gated};
pub use work::{DelayedWork, Work};

/// The default and the bounds of `max_active` (the kernel's
/// `WQ_DFL_ACTIVE` and `WQ_MAX_ACTIVE`).
pub const DEFAULT_MAX_ACTIVE: usize = 1024;
/// The largest `max_active` accepted.
pub const MAX_MAX_ACTIVE: usize = 2048;

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
}

/// What a workqueue's tasks and handles share.
pub(crate) struct Inner {
    name: String,
    /// The runtime the queue spawns on.
    handle: Handle,
    attrs: Attrs,
    state: Mutex<State>,
    /// For an unbound queue, its pool for each pod of its scope, looked up
    /// once (lock-free afterwards).
    pod_pools: Box<[OnceLock<crate::pool::Pool>]>,
    total: AtomicU64,
    completed: AtomicU64,
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

/// The queue's `pool_workqueue` state, under its lock.
struct State {
    max_active: usize,
    /// Tasks admitted and not finished.
    active: usize,
    /// Waiting tasks, by sequence number, in queue order; with their waker
    /// once they have been polled.
    inactive: VecDeque<(u64, Option<Waker>)>,
    /// Waiting tasks given a slot that have not been polled since.
    handed: HashSet<u64>,
    /// The next sequence number.
    next_seq: u64,
    /// Queued tasks not finished (active or waiting), by sequence number.
    pending: BTreeSet<u64>,
    /// Flushes waiting: each waits until no pending number is below its own.
    flushers: Vec<(u64, Waker)>,
    /// `drain` calls in progress.
    draining: usize,
    /// Wakers of the drains, woken when the queue is empty.
    drainers: Vec<Waker>,
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
    /// The current limit.
    pub max_active: usize,
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
}

impl Workqueue {
    /// Starts building a workqueue named `name`.
    pub fn builder(name: impl Into<String>) -> WorkqueueBuilder {
        WorkqueueBuilder::new(name.into())
    }

    pub(crate) fn from_parts(
        name: String,
        handle: Handle,
        attrs: Attrs,
        max_active: usize,
    ) -> Workqueue {
        let pod_pools = match attrs.unbound {
            Some(scope) => {
                let pods = handle.inner().topology().pods(scope).len();
                (0..pods.max(1)).map(|_| OnceLock::new()).collect()
            }
            None => Box::new([]) as Box<[_]>,
        };
        Workqueue {
            inner: Arc::new(Inner {
                name,
                handle,
                attrs,
                state: Mutex::new(State {
                    max_active,
                    active: 0,
                    inactive: VecDeque::new(),
                    handed: HashSet::new(),
                    next_seq: 0,
                    pending: BTreeSet::new(),
                    flushers: Vec::new(),
                    draining: 0,
                    drainers: Vec::new(),
                }),
                pod_pools,
                total: AtomicU64::new(0),
                completed: AtomicU64::new(0),
            }),
        }
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
        match self.spawn_inner(future, None, SpawnMeta::here()) {
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
        self.spawn_inner(future, None, SpawnMeta::here())
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
        match self.spawn_inner(future, Some(delay), SpawnMeta::here()) {
            Ok(handle) => handle,
            Err(err) => panic!("{err}"),
        }
    }

    fn spawn_inner<F>(
        &self,
        future: F,
        delay: Option<Duration>,
        meta: SpawnMeta,
    ) -> Result<JoinHandle<F::Output>, SpawnError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let inner = &self.inner;
        let admission = match delay {
            None => inner.admit()?,
            Some(delay) => {
                inner.check_drain()?;
                let _enter = inner.handle.enter();
                Admission::Delayed(Box::pin(crate::time::sleep(delay)))
            }
        };
        let gated = Gated::new(future, inner.clone(), admission);
        if let Some(pool) = inner.unbound_pool() {
            return Ok(inner.handle.spawn_on_pool(gated, meta, &pool));
        }
        if inner.attrs.highpri {
            // Created by `build` (or here, for `system_highpri`); if it
            // cannot be, the runtime is shutting down or out of threads:
            // the normal pool still runs the task.
            if let Ok(pool) = inner.handle.highpri_pool() {
                return Ok(inner.handle.spawn_on_pool(gated, meta, pool));
            }
        }
        Ok(inner.handle.spawn_with(gated, meta))
    }

    /// Waits until every task queued on this workqueue before the call has
    /// finished. Tasks queued after the call do not delay it. The set of
    /// tasks waited for is fixed when `flush` is called, not when the
    /// returned future is first polled.
    pub fn flush(&self) -> impl Future<Output = ()> + Send + 'static {
        let inner = self.inner.clone();
        let target = inner.state.lock().next_seq;
        std::future::poll_fn(move |cx| {
            let mut state = inner.state.lock();
            match state.pending.first() {
                Some(&oldest) if oldest < target => {
                    state.flushers.push((target, cx.waker().clone()));
                    Poll::Pending
                }
                _ => Poll::Ready(()),
            }
        })
    }

    /// Waits until the queue is empty, refusing work from anyone but the
    /// queue's own tasks meanwhile (their chained work is accepted, and
    /// waited for too). Other spawns fail with [`SpawnError`]. The refusal
    /// starts when `drain` is called and ends when the returned future
    /// completes or is dropped.
    pub fn drain(&self) -> impl Future<Output = ()> + Send + 'static {
        struct Draining(Arc<Inner>);
        impl Drop for Draining {
            fn drop(&mut self) {
                self.0.state.lock().draining -= 1;
            }
        }
        self.inner.state.lock().draining += 1;
        let draining = Draining(self.inner.clone());
        std::future::poll_fn(move |cx| {
            let mut state = draining.0.state.lock();
            if state.pending.is_empty() {
                Poll::Ready(())
            } else {
                state.drainers.push(cx.waker().clone());
                Poll::Pending
            }
        })
    }

    /// Changes the concurrency limit. Raising it starts waiting tasks at
    /// once; lowering it lets active tasks finish.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if the queue is ordered, or `n` is outside
    /// `1..=2048`.
    pub fn set_max_active(&self, n: usize) -> io::Result<()> {
        if self.inner.attrs.ordered {
            return Err(invalid(
                &self.inner.name,
                "max_active",
                "an ordered workqueue runs one task at a time",
            ));
        }
        validate_max_active(&self.inner.name, n)?;
        let wakers = {
            let mut state = self.inner.state.lock();
            state.max_active = n;
            let mut wakers = Vec::new();
            while state.active < state.max_active {
                match state.hand_next() {
                    Some(waker) => wakers.extend(waker),
                    None => break,
                }
            }
            wakers
        };
        wakers.into_iter().for_each(Waker::wake);
        Ok(())
    }

    /// The queue's figures now.
    pub fn stats(&self) -> WorkqueueStats {
        let state = self.inner.state.lock();
        WorkqueueStats {
            total: self.inner.total.load(Relaxed),
            active: state.active,
            inactive: state.inactive.len(),
            completed: self.inner.completed.load(Relaxed),
            max_active: state.max_active,
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

impl Inner {
    /// For an unbound queue, the pool of the pod of the CPU the caller runs
    /// on; `None` for other queues (or if the pool cannot be created: then
    /// the normal pool runs the task).
    fn unbound_pool(&self) -> Option<crate::pool::Pool> {
        let scope = self.attrs.unbound?;
        let runtime = self.handle.inner();
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

    fn check_drain(&self) -> Result<(), SpawnError> {
        let state = self.state.lock();
        self.check_drain_locked(&state)
    }

    fn check_drain_locked(&self, state: &State) -> Result<(), SpawnError> {
        if state.draining > 0 && CURRENT.with(|c| c.get()) != self.id() {
            return Err(SpawnError {
                name: self.name.clone(),
            });
        }
        Ok(())
    }

    /// Queues one task: gives it a sequence number and a slot if one is free
    /// and nobody waits, or a place on the inactive FIFO.
    fn admit(&self) -> Result<Admission, SpawnError> {
        let mut state = self.state.lock();
        self.check_drain_locked(&state)?;
        Ok(self.admit_locked(&mut state))
    }

    /// `admit` for a delayed task whose timer fired: it was accepted when
    /// it was spawned, so a drain since does not refuse it.
    fn admit_delayed(&self) -> Admission {
        let mut state = self.state.lock();
        self.admit_locked(&mut state)
    }

    fn admit_locked(&self, state: &mut State) -> Admission {
        let seq = state.next_seq;
        state.next_seq += 1;
        state.pending.insert(seq);
        self.total.fetch_add(1, Relaxed);
        if state.active < state.max_active && state.inactive.is_empty() {
            state.active += 1;
            Admission::Active(seq)
        } else {
            state.inactive.push_back((seq, None));
            Admission::Waiting(seq)
        }
    }

    /// A task `seq` finished (or was dropped). `held_slot` says whether it
    /// was active (or had been handed a slot it never used).
    fn finish(&self, seq: u64, held_slot: bool) {
        let mut wake = Vec::new();
        {
            let mut state = self.state.lock();
            if held_slot {
                state.active -= 1;
                if state.active < state.max_active {
                    if let Some(waker) = state.hand_next() {
                        wake.extend(waker);
                    }
                }
            } else if let Some(pos) = state.inactive.iter().position(|(s, _)| *s == seq) {
                state.inactive.remove(pos);
            }
            state.pending.remove(&seq);
            let oldest = state.pending.first().copied();
            let mut i = 0;
            while i < state.flushers.len() {
                if oldest.map_or(true, |oldest| oldest >= state.flushers[i].0) {
                    wake.push(state.flushers.swap_remove(i).1);
                } else {
                    i += 1;
                }
            }
            if state.pending.is_empty() {
                wake.append(&mut state.drainers);
            }
        }
        self.completed.fetch_add(1, Relaxed);
        wake.into_iter().for_each(Waker::wake);
    }
}

impl State {
    /// Gives a slot to the first waiting task; returns its waker to wake
    /// (outside the lock), if it was polled already.
    fn hand_next(&mut self) -> Option<Option<Waker>> {
        let (seq, waker) = self.inactive.pop_front()?;
        self.active += 1;
        self.handed.insert(seq);
        Some(waker)
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

/// The runtime's system workqueues, created on first use.
#[derive(Default)]
pub(crate) struct SystemQueues {
    system: OnceLock<Workqueue>,
    highpri: OnceLock<Workqueue>,
    long: OnceLock<Workqueue>,
    unbound: OnceLock<Workqueue>,
}

impl fmt::Debug for SystemQueues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SystemQueues").finish_non_exhaustive()
    }
}

fn system_queue(
    pick: impl Fn(&SystemQueues) -> &OnceLock<Workqueue>,
    name: &str,
    attrs: Attrs,
) -> Workqueue {
    let handle = Handle::current();
    let queues = handle.system_queues();
    pick(queues)
        .get_or_init(|| {
            Workqueue::from_parts(name.to_owned(), handle.clone(), attrs, DEFAULT_MAX_ACTIVE)
        })
        .clone()
}

const PLAIN: Attrs = Attrs {
    ordered: false,
    highpri: false,
    cpu_intensive: false,
    mem_reclaim: false,
    unbound: None,
    affinity_strict: false,
};

/// The current runtime's general-purpose workqueue (the kernel's
/// `system_wq`).
///
/// # Panics
///
/// Outside a runtime context, like [`wq::spawn`](crate::spawn).
pub fn system() -> Workqueue {
    system_queue(|q| &q.system, "system", PLAIN)
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
            unbound: Some(Scope::CacheShard),
            ..PLAIN
        },
    )
}
