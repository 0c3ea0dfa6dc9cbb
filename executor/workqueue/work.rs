//! `Work` and `DelayedWork`: reusable work items, the kernel's
//! `work_struct` and `delayed_work`.
//!
//! A work item wraps an async closure. Queueing it while it is already
//! pending does nothing (and says so); queueing it while it runs makes it
//! run once more after the current run, never twice at once. The state
//! under the item's lock:
//!
//! - `pending`: queued and not started (a task exists for it, or it is to
//!   be spawned again when the current run ends: `requeue`);
//! - `running`: a run is in progress;
//! - `canceling`: `cancel_sync` calls in progress (the kernel's
//!   `WORK_OFFQ_CANCELING`). While it is not zero, queueing fails (`queue`,
//!   `queue_after` and `modify` return false) and a run that ends spawns
//!   no next run: an item that re-queues itself from its own run is
//!   stopped too, and `cancel_sync` returns with the item neither pending
//!   nor running.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

use parking_lot::Mutex;

use super::{SpawnError, Workqueue};
use crate::task::registry::SpawnMeta;
use crate::task::AbortHandle;

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
type WorkFn = dyn Fn() -> BoxFuture + Send + Sync + 'static;

/// A reusable, re-queueable unit of work around an async closure (the
/// kernel's `work_struct`). Cloning shares the item.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
///
/// # let rt = wq::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let runs = Arc::new(AtomicUsize::new(0));
/// let work = {
///     let runs = runs.clone();
///     wq::Work::new(move || {
///         let runs = runs.clone();
///         async move {
///             runs.fetch_add(1, Ordering::SeqCst);
///         }
///     })
/// };
/// let queue = wq::system();
/// assert!(work.queue(&queue));
/// work.flush().await;
/// assert_eq!(runs.load(Ordering::SeqCst), 1);
/// # });
/// ```
#[derive(Clone)]
pub struct Work {
    inner: Arc<WorkInner>,
}

struct WorkInner {
    f: Box<WorkFn>,
    state: Mutex<WorkState>,
}

#[derive(Default)]
struct WorkState {
    pending: bool,
    running: bool,
    /// Which queued task may start the pending run: bumped at every queueing,
    /// so that a task made stale (by `modify`, `cancel`) cannot run it.
    ticket: u64,
    /// The task queued for the pending run, to cancel it.
    queued: Option<AbortHandle>,
    /// Queued while running: spawn on this queue (after this delay) when
    /// the run ends.
    requeue: Option<(Workqueue, Option<Duration>)>,
    /// The task of the run in progress (`None` if none, or if it started
    /// outside a task), to refuse a wait for the run from the run itself.
    run_task: Option<crate::task::Id>,
    /// Runs finished so far.
    completed: u64,
    /// `cancel_sync` calls in progress: queueing fails while not zero.
    canceling: usize,
    /// `flush` and `cancel_sync` callers.
    waiters: Vec<Waker>,
}

impl Work {
    /// A work item that runs `f()` each time it is queued.
    pub fn new<F, Fut>(f: F) -> Work
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Work {
            inner: Arc::new(WorkInner {
                f: Box::new(move || Box::pin(f()) as BoxFuture),
                state: Mutex::new(WorkState::default()),
            }),
        }
    }

    /// Queues the item on `queue`. Returns false, and does nothing, if it is
    /// already pending, or while a [`cancel_sync`](Work::cancel_sync) is in
    /// progress. If it is running, it runs again once the current run ends
    /// (never twice at once).
    ///
    /// # Panics
    ///
    /// If `queue` is draining and the caller is not one of its tasks (see
    /// [`Workqueue::spawn`]). Queued while it runs, the next run is spawned
    /// when the current one ends: if `queue` is draining then (and is not
    /// the queue of that run), the next run is cancelled instead, with a
    /// warning.
    pub fn queue(&self, queue: &Workqueue) -> bool {
        self.inner.queue(queue, None, false)
    }

    /// Cancels the pending run, if any. Returns whether one was pending. A
    /// run in progress is not interrupted (see [`cancel_sync`](Work::cancel_sync)).
    pub fn cancel(&self) -> bool {
        self.inner.cancel()
    }

    /// Cancels the pending run, if any, and waits until no run is in
    /// progress. Returns whether one was pending.
    ///
    /// Until it returns, queueing the item fails, so a run that re-queues
    /// itself is stopped as well: on return the item is neither pending
    /// nor running (the kernel's `cancel_work_sync`).
    ///
    /// # Panics
    ///
    /// If awaited from the item's own run while it waits for that run (it
    /// would wait forever): await it from another task.
    pub async fn cancel_sync(&self) -> bool {
        let canceling = Canceling::new(&self.inner);
        let was_pending = self.inner.cancel();
        std::future::poll_fn(|cx| canceling.poll_idle(cx)).await;
        was_pending
    }

    /// Waits until the run pending or in progress at the call has finished
    /// (returns at once if there is none, or once it is cancelled).
    ///
    /// # Panics
    ///
    /// If awaited from the item's own run while it waits for that run (it
    /// would wait forever): await it from another task.
    pub fn flush(&self) -> impl Future<Output = ()> + Send + 'static {
        let inner = self.inner.clone();
        let target = {
            let state = inner.state.lock();
            state.completed + state.running as u64 + state.pending as u64
        };
        std::future::poll_fn(move |cx| {
            let mut state = inner.state.lock();
            if state.completed >= target || (!state.pending && !state.running) {
                Poll::Ready(())
            } else {
                if state.is_own_run() {
                    drop(state);
                    own_run_panic("flush");
                }
                state.waiters.push(cx.waker().clone());
                Poll::Pending
            }
        })
    }

    /// Whether a run is queued and not started.
    pub fn is_pending(&self) -> bool {
        self.inner.state.lock().pending
    }

    /// Whether a run is in progress.
    pub fn is_running(&self) -> bool {
        self.inner.state.lock().running
    }
}

impl WorkState {
    /// Whether the calling task is the run in progress: a wait for the run
    /// from there would never end.
    fn is_own_run(&self) -> bool {
        self.running && self.run_task.is_some() && self.run_task == crate::task::try_id()
    }
}

/// The panic of a `flush` or `cancel_sync` awaited from the item's own run
/// (the kernel's `flush_work` from the work itself deadlocks, and lockdep
/// warns of it): a clear error rather than a task that never ends.
fn own_run_panic(method: &str) -> ! {
    panic!(
        "`{method}` was awaited from the work item's own run, and waits for that run to end, \
         which would never happen: await it from another task"
    )
}

impl WorkInner {
    /// `queue_work` (`modify` false) or `mod_delayed_work` (`modify` true).
    /// Tasks are spawned and aborted outside the lock: either may drop a
    /// task's future at once (a closed runtime), whose guard takes the lock.
    fn queue(self: &Arc<Self>, queue: &Workqueue, delay: Option<Duration>, modify: bool) -> bool {
        let (was_pending, stale, spawn) = {
            let mut state = self.state.lock();
            let was_pending = state.pending;
            if state.canceling > 0 || (was_pending && !modify) {
                return false;
            }
            let stale = state.queued.take();
            state.requeue = None;
            state.pending = true;
            state.ticket += 1;
            let spawn = if state.running {
                state.requeue = Some((queue.clone(), delay));
                None
            } else {
                Some(state.ticket)
            };
            (was_pending, stale, spawn)
        };
        if let Some(stale) = stale {
            stale.abort();
        }
        if let Some(ticket) = spawn {
            if let Err(err) = self.spawn(queue, delay, ticket) {
                panic!("{err}");
            }
        }
        !modify || was_pending
    }

    /// Spawns the task for the run `ticket` and records it for `cancel`.
    /// If `queue` refuses it (it is draining), the run is cancelled: the
    /// task's guard, dropped unspawned, clears `pending` and wakes the
    /// waiters. Never panics, for `EndRun`'s sake.
    fn spawn(
        self: &Arc<Self>,
        queue: &Workqueue,
        delay: Option<Duration>,
        ticket: u64,
    ) -> Result<(), SpawnError> {
        // Captured by the task, so dropped with it even if it never runs.
        let guard = Unstarted {
            inner: self.clone(),
            ticket,
            started: false,
        };
        let run = async move {
            let mut guard = guard;
            let inner = guard.inner.clone();
            if !inner.start(ticket) {
                return;
            }
            guard.started = true;
            let _end = EndRun(inner.clone());
            (inner.f)().await;
        };
        let handle = super::spawn_on(&queue.handle, &queue.inner, run, delay, SpawnMeta::here())?;
        let mut state = self.state.lock();
        if state.pending && state.ticket == ticket && !state.running {
            state.queued = Some(handle.abort_handle());
        }
        Ok(())
    }

    /// The task for `ticket` starts the pending run, unless it is stale.
    fn start(&self, ticket: u64) -> bool {
        let mut state = self.state.lock();
        if !state.pending || state.running || state.ticket != ticket {
            return false;
        }
        state.pending = false;
        state.running = true;
        state.run_task = crate::task::try_id();
        state.queued = None;
        true
    }

    fn cancel(&self) -> bool {
        let (stale, waiters) = {
            let mut state = self.state.lock();
            if !state.pending {
                return false;
            }
            state.pending = false;
            state.requeue = None;
            (state.queued.take(), std::mem::take(&mut state.waiters))
        };
        if let Some(stale) = stale {
            stale.abort();
        }
        waiters.into_iter().for_each(Waker::wake);
        true
    }
}

/// A `cancel_sync` in progress: counted in `canceling` from its creation to
/// its drop (the future may be dropped before it completes).
struct Canceling<'a> {
    inner: &'a WorkInner,
}

impl<'a> Canceling<'a> {
    fn new(inner: &'a WorkInner) -> Canceling<'a> {
        inner.state.lock().canceling += 1;
        Canceling { inner }
    }

    /// Ready once the item is neither pending nor running. A run pending
    /// here was queued before the cancel began (a queueing that started
    /// before it and spawned after): it is cancelled again.
    fn poll_idle(&self, cx: &mut std::task::Context<'_>) -> Poll<()> {
        loop {
            let mut state = self.inner.state.lock();
            if state.pending {
                drop(state);
                self.inner.cancel();
                continue;
            }
            if state.running {
                if state.is_own_run() {
                    drop(state);
                    own_run_panic("cancel_sync");
                }
                state.waiters.push(cx.waker().clone());
                return Poll::Pending;
            }
            return Poll::Ready(());
        }
    }
}

impl Drop for Canceling<'_> {
    fn drop(&mut self) {
        self.inner.state.lock().canceling -= 1;
    }
}

/// Dropped with the task of a run: if the run never started (the task was
/// aborted, or the runtime shut down) and is still the pending one, the item
/// is no longer pending.
struct Unstarted {
    inner: Arc<WorkInner>,
    ticket: u64,
    started: bool,
}

impl Drop for Unstarted {
    fn drop(&mut self) {
        if self.started {
            return;
        }
        let waiters = {
            let mut state = self.inner.state.lock();
            if !(state.pending && !state.running && state.ticket == self.ticket) {
                return;
            }
            state.pending = false;
            state.queued = None;
            std::mem::take(&mut state.waiters)
        };
        waiters.into_iter().for_each(Waker::wake);
    }
}

/// Ends a run, even if the closure panics or the task is aborted, and
/// starts the run queued meanwhile. A destructor, perhaps running while the
/// closure's panic unwinds: it must not panic. A next run that its queue
/// refuses (a queue other than the one running this task, draining) is
/// cancelled.
struct EndRun(Arc<WorkInner>);

impl Drop for EndRun {
    fn drop(&mut self) {
        let inner = &self.0;
        let (requeue, waiters) = {
            let mut state = inner.state.lock();
            state.running = false;
            state.run_task = None;
            state.completed += 1;
            let mut requeue = state.requeue.take();
            // A `cancel_sync` in progress: no next run (its `cancel` took
            // the requeue of the time, and queueing fails since; this holds
            // whatever the order).
            if state.canceling > 0 && requeue.take().is_some() {
                state.pending = false;
            }
            let requeue = requeue.map(|(queue, delay)| {
                state.ticket += 1;
                (queue, delay, state.ticket)
            });
            (requeue, std::mem::take(&mut state.waiters))
        };
        if let Some((queue, delay, ticket)) = requeue {
            if let Err(err) = inner.spawn(&queue, delay, ticket) {
                tracing::warn!(
                    workqueue = %queue.name(),
                    "wq: a work item queued on `{}` while it ran was not run again: {err}",
                    queue.name()
                );
            }
        }
        waiters.into_iter().for_each(Waker::wake);
    }
}

/// A work item queued after a delay (the kernel's `delayed_work`).
///
/// ```
/// use std::time::Duration;
///
/// # let rt = wq::Builder::new().start_paused(true).build().unwrap();
/// # rt.block_on(async {
/// let work = wq::DelayedWork::new(|| async {});
/// let queue = wq::system();
/// assert!(work.queue_after(&queue, Duration::from_secs(5)));
/// // Pending: push the deadline back instead.
/// assert!(work.modify(&queue, Duration::from_secs(10)));
/// assert!(work.cancel());
/// assert!(!work.is_pending());
/// # });
/// ```
#[derive(Clone)]
pub struct DelayedWork {
    work: Work,
}

impl DelayedWork {
    /// A delayed work item that runs `f()` each time its timer fires.
    pub fn new<F, Fut>(f: F) -> DelayedWork
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        DelayedWork { work: Work::new(f) }
    }

    /// Queues the item on `queue` once `delay` has passed. Returns false,
    /// and does nothing, if it is already pending, or while a
    /// [`cancel_sync`](DelayedWork::cancel_sync) is in progress.
    pub fn queue_after(&self, queue: &Workqueue, delay: Duration) -> bool {
        self.work.inner.queue(queue, Some(delay), false)
    }

    /// Queues the item on `queue` after `delay` whether or not it is
    /// pending, replacing the pending run's timer (`mod_delayed_work`).
    /// Returns whether it was pending; false, doing nothing, while a
    /// [`cancel_sync`](DelayedWork::cancel_sync) is in progress.
    pub fn modify(&self, queue: &Workqueue, delay: Duration) -> bool {
        self.work.inner.queue(queue, Some(delay), true)
    }

    /// Cancels the pending run (its timer, or its queued task). Returns
    /// whether one was pending.
    pub fn cancel(&self) -> bool {
        self.work.cancel()
    }

    /// Cancels the pending run and waits until no run is in progress.
    /// Returns whether one was pending. Until it returns, queueing the item
    /// fails, so a run that re-arms its own timer is stopped as well: on
    /// return the item is neither pending nor running.
    ///
    /// # Panics
    ///
    /// As [`Work::cancel_sync`], if awaited from the item's own run.
    pub async fn cancel_sync(&self) -> bool {
        self.work.cancel_sync().await
    }

    /// Waits until the run pending or in progress at the call has finished.
    ///
    /// # Panics
    ///
    /// As [`Work::flush`], if awaited from the item's own run.
    pub fn flush(&self) -> impl Future<Output = ()> + Send + 'static {
        self.work.flush()
    }

    /// Whether a run is queued (or its timer set) and not started.
    pub fn is_pending(&self) -> bool {
        self.work.is_pending()
    }

    /// Whether a run is in progress.
    pub fn is_running(&self) -> bool {
        self.work.is_running()
    }
}

impl std::fmt::Debug for Work {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.inner.state.lock();
        f.debug_struct("Work")
            .field("pending", &state.pending)
            .field("running", &state.running)
            .field("completed", &state.completed)
            .finish()
    }
}

impl std::fmt::Debug for DelayedWork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DelayedWork").field(&self.work).finish()
    }
}
