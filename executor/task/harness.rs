//! The task cell: a user future wrapped so that it can be aborted, its panics
//! caught, and its registration dropped with it.
//!
//! The allocation, the state machine, the waker and the join slot are
//! async-task's; this file adds what a runtime needs on top: `Header` (id and
//! abort flag, shared with the handles) and `TaskFuture` (the wrapper polled
//! by the pool). The task's id is the thread's current one
//! ([`wq::task::id`](super::id)) while its future is polled or dropped.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use async_task::{ScheduleInfo, WithInfo};
use pin_project_lite::pin_project;

use super::id::{self as task_id, Id};
use super::registry::{Key, PollingCounted, Registry, SpawnMeta};
use super::{JoinError, JoinHandle};
use super::{Runnable, Tag};

/// What the handles and the wrapper share.
#[derive(Debug)]
pub(crate) struct Header {
    pub(crate) id: Id,
    /// Set by `abort`. Release on set, Acquire on read: the task sees the
    /// flag no later than the wakeup that follows it.
    aborted: AtomicBool,
    /// Set when the task's future has been dropped (it completed, panicked or
    /// was cancelled). Release on set, Acquire on read.
    finished: AtomicBool,
}

impl Header {
    pub(crate) fn abort(&self) {
        self.aborted.store(true, Ordering::Release);
    }

    fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Acquire)
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }
}

pin_project! {
    /// The future the pool runs. Its output is the JoinHandle's result.
    struct TaskFuture<F> {
        #[pin]
        future: Option<F>,
        header: Arc<Header>,
        registry: Arc<Registry>,
        key: Key,
        // Counted in the registry's flush colours (`system` tasks).
        counted: bool,
    }

    impl<F> PinnedDrop for TaskFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if this.future.is_some() {
                let _current = task_id::enter(this.header.id);
                // A panic in the user future's Drop must not unwind into the
                // runtime (which may be dropping it during shutdown).
                let _ = catch_unwind(AssertUnwindSafe(|| this.future.set(None)));
            }
            this.header.finished.store(true, Ordering::Release);
            this.registry.remove(*this.key);
        }
    }
}

impl<F: Future> Future for TaskFuture<F> {
    type Output = Result<F::Output, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let id = this.header.id;
        // `wq::task::id` for the poll, or for the drop below.
        let _current = task_id::enter(id);
        // Aborted, or the runtime is shutting down: shutdown wakes every
        // task so that it is dropped, but a task whose runnable was already
        // queued may still be run by a worker that had not seen the close.
        if this.header.is_aborted() || this.registry.is_closed() {
            return Poll::Ready(Err(match drop_future(this.future) {
                Ok(()) => JoinError::cancelled(id),
                Err(payload) => JoinError::panic(id, payload),
            }));
        }
        let future = this
            .future
            .as_mut()
            .as_pin_mut()
            .expect("task polled after completion");
        let _counted = this.counted.then(|| PollingCounted::enter(this.registry));
        match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => match drop_future(this.future) {
                Ok(()) => Poll::Ready(Ok(output)),
                Err(payload) => Poll::Ready(Err(JoinError::panic(id, payload))),
            },
            Err(payload) => {
                // The poll's panic is the one reported; a second one from
                // the destructor is dropped.
                let _ = drop_future(this.future);
                Poll::Ready(Err(JoinError::panic(id, payload)))
            }
        }
    }
}

/// Drops the user future now (not when the task cell is freed), so its
/// destructor runs on completion or abort like tokio's. A panicking
/// destructor is contained, and its payload returned: as on tokio, the
/// task's `JoinHandle` then yields a panic error, even if the future had
/// completed or was cancelled.
fn drop_future<F>(future: Pin<&mut Option<F>>) -> Result<(), Box<dyn std::any::Any + Send>> {
    let mut future = future;
    catch_unwind(AssertUnwindSafe(|| future.set(None)))
}

/// Creates a task for `future` spawned as `meta` says, registered in
/// `registry`, whose wakes call
/// `schedule(runnable, woken_while_running)`; the flag is set when the task
/// woke itself during its own poll (a yield). Returns the runnable to be
/// scheduled for the first poll, or `None` (and a handle that resolves to a
/// cancellation) if the registry is closed. A `counted` task is counted in
/// the registry's flush colours (the `system` workqueue's tasks); `rescuer`
/// tags the runnable for the rescuer of its workqueue, if it has one.
pub(crate) fn spawn<F, S>(
    future: F,
    meta: SpawnMeta,
    counted: bool,
    rescuer: u64,
    registry: &Arc<Registry>,
    schedule: S,
) -> (Option<Runnable>, JoinHandle<F::Output>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Fn(Runnable, bool) + Send + Sync + 'static,
{
    let id = Id::next();
    let queue = meta.queue;
    let header = Arc::new(Header {
        id,
        aborted: AtomicBool::new(false),
        finished: AtomicBool::new(false),
    });
    // If the registry is closed `future` is handed back and dropped here,
    // outside the shard lock.
    let mut future = Some(future);
    let spawned = registry.insert(id, meta, counted, |key| {
        let wrapped = TaskFuture {
            future: future.take(),
            header: header.clone(),
            registry: registry.clone(),
            key,
            counted,
        };
        let schedule = WithInfo(move |runnable, info: ScheduleInfo| {
            schedule(runnable, info.woken_while_running)
        });
        // The runnable carries the task's id, for the pool to publish while
        // it polls the task, and its rescuer, for the pool to call for.
        let (runnable, task) = async_task::Builder::new()
            .metadata(Tag { id, rescuer, queue })
            .spawn(move |_| wrapped, schedule);
        let waker = runnable.waker();
        ((runnable, task), waker)
    });
    match spawned {
        Some((runnable, task)) => {
            let waker = runnable.waker();
            let handle = JoinHandle::new(task.fallible(), header, waker);
            (Some(runnable), handle)
        }
        None => {
            drop(future);
            header.finished.store(true, Ordering::Release);
            (None, JoinHandle::rejected(header))
        }
    }
}

/// Creates a local task: [`spawn`] for a future that need not be `Send`,
/// uncounted and without a rescuer. async-task's `spawn_local` checks that
/// the task is polled and dropped only on the thread that calls this (it
/// panics otherwise); keeping every runnable on that thread is the
/// caller's part. Wakes, from any thread, call `schedule(runnable)`.
pub(crate) fn spawn_local<F, S>(
    future: F,
    meta: SpawnMeta,
    registry: &Arc<Registry>,
    schedule: S,
) -> (Option<Runnable>, JoinHandle<F::Output>)
where
    F: Future + 'static,
    F::Output: 'static,
    S: Fn(Runnable) + Send + Sync + 'static,
{
    let id = Id::next();
    let queue = meta.queue;
    let header = Arc::new(Header {
        id,
        aborted: AtomicBool::new(false),
        finished: AtomicBool::new(false),
    });
    // As in `spawn`: a refused future is dropped here, outside the lock.
    let mut future = Some(future);
    let spawned = registry.insert(id, meta, false, |key| {
        let wrapped = TaskFuture {
            future: future.take(),
            header: header.clone(),
            registry: registry.clone(),
            key,
            counted: false,
        };
        let tag = Tag {
            id,
            rescuer: super::NO_RESCUER,
            queue,
        };
        let (runnable, task) = async_task::Builder::new()
            .metadata(tag)
            .spawn_local(move |_| wrapped, schedule);
        let waker = runnable.waker();
        ((runnable, task), waker)
    });
    match spawned {
        Some((runnable, task)) => {
            let waker = runnable.waker();
            let handle = JoinHandle::new(task.fallible(), header, waker);
            (Some(runnable), handle)
        }
        None => {
            drop(future);
            header.finished.store(true, Ordering::Release);
            (None, JoinHandle::rejected(header))
        }
    }
}
