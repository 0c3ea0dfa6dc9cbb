//! The task cell: a user future wrapped so that it can be aborted, its panics
//! caught, and its registration dropped with it.
//!
//! The allocation, the state machine, the waker and the join slot are
//! async-task's; this file adds what a runtime needs on top: `TaskState`
//! (abort and finished flags, the task's registration and the panic of a
//! destructor run without a poll, shared with the handles, kept in the
//! task's metadata) and `TaskFuture` (the wrapper
//! polled by the pool). The task's id is the thread's current one
//! ([`wq::task::id`](super::id)) while its future is polled or dropped.
//!
//! One allocation per task, and no reference counting for the handles:
//! the flags are in async-task's metadata, which the future borrows,
//! rather than in an `Arc` of their own, and an abort wakes the task
//! through the waker its registration holds (`Registry::wake`) rather than
//! through a waker of the `JoinHandle`'s own. That saves an allocation, its
//! free and five reference-count updates per spawn (README, "Unsafe code",
//! has the measurement). The borrow is what needs `spawn_unchecked`.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::thread::{self, ThreadId};

use async_task::{ScheduleInfo, Task, WithInfo};
use pin_project_lite::pin_project;

use super::id::{self as task_id, Id};
use super::registry::{Key, PollingCounted, Registry, SpawnMeta};
use super::stats::QueueId;
use super::{JoinError, JoinHandle};
use super::{Runnable, Tag};

/// What a task shares with its handles. It lives in the task cell, as part
/// of async-task's metadata (the [`Tag`]), so a spawn allocates once: the
/// future borrows it (see [`spawn`]), a `JoinHandle` reads it through its
/// task. An [`AbortHandle`](super::AbortHandle) cannot reach the cell, so
/// the first one made creates [`Shared`], which the task reads too. The
/// registry and key are the future's (it unregisters itself when dropped)
/// and the handles' (an abort wakes the task through its registration).
#[derive(Debug)]
pub(crate) struct TaskState {
    /// Set by `JoinHandle::abort`. Release on set, Acquire on read: the
    /// task sees the flag no later than the wakeup that follows it.
    aborted: AtomicBool,
    /// Set when the task's future has been dropped (it completed, panicked
    /// or was cancelled).
    finished: AtomicBool,
    /// The abort handles' part, made with the first abort handle.
    shared: OnceLock<Arc<Shared>>,
    /// Where the task is registered: its waker is there, for aborts.
    registry: Arc<Registry>,
    key: Key,
    /// The panic of the future's destructor when the task cell dropped it
    /// without a poll (its runnable dropped at shutdown, or by a dropped
    /// `LocalSet`): async-task then has no output to hand the `JoinHandle`,
    /// which reports this panic instead of a cancellation, as tokio does.
    drop_panic: parking_lot::Mutex<Option<Box<dyn Any + Send>>>,
}

/// What a task shares with its abort handles.
#[derive(Debug)]
pub(crate) struct Shared {
    id: Id,
    /// Set by `AbortHandle::abort`; orderings as `TaskState::aborted`.
    aborted: AtomicBool,
    /// Set when the task's future has been dropped. Release on set,
    /// Acquire on read.
    finished: AtomicBool,
    /// Where the task is registered; `None` if it never was.
    registered: Option<(Arc<Registry>, Key)>,
}

impl TaskState {
    fn new(registry: Arc<Registry>, key: Key) -> TaskState {
        TaskState {
            aborted: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            shared: OnceLock::new(),
            registry,
            key,
            drop_panic: parking_lot::Mutex::new(None),
        }
    }

    /// The destructor's panic, if the cell dropped the future and the
    /// destructor panicked (see `drop_panic`).
    pub(crate) fn take_drop_panic(&self) -> Option<Box<dyn Any + Send>> {
        self.drop_panic.lock().take()
    }

    fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Acquire)
            || self
                .shared
                .get()
                .is_some_and(|shared| shared.aborted.load(Ordering::Acquire))
    }

    /// The future was dropped: tells the abort handles, present or future.
    /// A handle made meanwhile either is seen here or sees `finished`
    /// (`shared`): each side writes, fences, then reads the other's write.
    fn set_finished(&self) {
        self.finished.store(true, Ordering::Release);
        fence(Ordering::SeqCst);
        if let Some(shared) = self.shared.get() {
            shared.finished.store(true, Ordering::Release);
        }
    }

    /// The abort handles' part of task `id`, made on first use.
    fn shared(&self, id: Id) -> Arc<Shared> {
        let shared = self
            .shared
            .get_or_init(|| {
                Arc::new(Shared {
                    id,
                    aborted: AtomicBool::new(false),
                    finished: AtomicBool::new(false),
                    registered: Some((self.registry.clone(), self.key)),
                })
            })
            .clone();
        fence(Ordering::SeqCst);
        if self.finished.load(Ordering::Acquire) {
            shared.finished.store(true, Ordering::Release);
        }
        shared
    }
}

impl Shared {
    /// Task `id`, never spawned (the runtime had shut down).
    pub(crate) fn finished(id: Id) -> Arc<Shared> {
        Arc::new(Shared {
            id,
            aborted: AtomicBool::new(false),
            finished: AtomicBool::new(true),
            registered: None,
        })
    }

    pub(crate) fn id(&self) -> Id {
        self.id
    }

    /// `AbortHandle::abort`: sets the flag, then wakes the task so that it
    /// notices the flag at its next poll.
    pub(crate) fn abort(&self) {
        self.aborted.store(true, Ordering::Release);
        if let Some((registry, key)) = &self.registered {
            registry.wake(*key, self.id);
        }
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }
}

impl Tag {
    fn new(id: Id, rescuer: u64, queue: QueueId, registry: Arc<Registry>, key: Key) -> Tag {
        Tag {
            id,
            rescuer,
            queue,
            state: TaskState::new(registry, key),
        }
    }

    /// `JoinHandle::abort`: sets the flag, then wakes the task (through
    /// the waker its registration holds) so that it notices the flag at
    /// its next poll.
    pub(crate) fn abort(&self) {
        self.state.aborted.store(true, Ordering::Release);
        self.state.registry.wake(self.state.key, self.id);
    }

    /// The abort handles' part, made on first use.
    pub(crate) fn shared(&self) -> Arc<Shared> {
        self.state.shared(self.id)
    }
}

pin_project! {
    /// The future the pool runs. Its output is the JoinHandle's result.
    struct TaskFuture<'a, F> {
        #[pin]
        future: Option<F>,
        // The task cell's metadata, which outlives the future (`spawn`).
        tag: &'a Tag,
        // Counted in the registry's flush colours (`system` tasks).
        counted: bool,
    }

    impl<'a, F> PinnedDrop for TaskFuture<'a, F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if this.future.is_some() {
                let _current = task_id::enter(this.tag.id);
                // A panic in the user future's Drop must not unwind into the
                // runtime (which may be dropping it during shutdown); kept
                // for the `JoinHandle`.
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| this.future.set(None))) {
                    *this.tag.state.drop_panic.lock() = Some(payload);
                }
            }
            this.tag.state.set_finished();
            this.tag.state.registry.remove(this.tag.state.key);
        }
    }
}

impl<F: Future> Future for TaskFuture<'_, F> {
    type Output = Result<F::Output, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let id = this.tag.id;
        // `wq::task::id` for the poll, or for the drop below.
        let _current = task_id::enter(id);
        // Aborted, or the runtime is shutting down: shutdown wakes every
        // task so that it is dropped, but a task whose runnable was already
        // queued may still be run by a worker that had not seen the close.
        let registry = &*this.tag.state.registry;
        if this.tag.state.is_aborted() || registry.is_closed() {
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
        let _counted = this.counted.then(|| PollingCounted::enter(registry));
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

pin_project! {
    /// A local task's future, checked to be polled and dropped only on the
    /// thread that spawned it (as async-task's own local tasks are). A poll
    /// elsewhere panics without touching the future; a drop elsewhere
    /// aborts the process, since dropping a `!Send` future on another
    /// thread is undefined behaviour. `LocalSet` never does either (its
    /// module documentation says how); this turns a bug there into a clear
    /// failure instead of memory unsafety.
    struct OnOwner<F> {
        owner: ThreadId,
        #[pin]
        future: F,
    }

    impl<F> PinnedDrop for OnOwner<F> {
        fn drop(this: Pin<&mut Self>) {
            if *this.project().owner != thread_id() {
                eprintln!("wq: a local task was dropped by a thread that did not spawn it");
                std::process::abort();
            }
        }
    }
}

impl<F: Future> Future for OnOwner<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        assert!(
            *this.owner == thread_id(),
            "wq: a local task was polled by a thread that did not spawn it"
        );
        this.future.poll(cx)
    }
}

/// The calling thread's id, cached.
fn thread_id() -> ThreadId {
    thread_local! {
        static ID: ThreadId = thread::current().id();
    }
    ID.try_with(|id| *id)
        .unwrap_or_else(|_| thread::current().id())
}

/// Drops the user future now (not when the task cell is freed), so its
/// destructor runs on completion or abort like tokio's. A panicking
/// destructor is contained, and its payload returned: as on tokio, the
/// task's `JoinHandle` then yields a panic error, even if the future had
/// completed or was cancelled.
fn drop_future<F>(future: Pin<&mut Option<F>>) -> Result<(), Box<dyn Any + Send>> {
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
    let queue = meta.queue;
    register(future, meta, counted, registry, |future, id, key| {
        let schedule = WithInfo(move |runnable, info: ScheduleInfo| {
            schedule(runnable, info.woken_while_running)
        });
        // The runnable carries the task's id, for the pool to publish while
        // it polls the task, and its rescuer, for the pool to call for.
        let tag = Tag::new(id, rescuer, queue, registry.clone(), key);
        let builder = async_task::Builder::new().metadata(tag);
        // SAFETY: `spawn_unchecked` is `spawn` without its bounds. The
        // future is `Send` (`F: Send`, and `&Tag` is `Send` since `Tag` is
        // `Sync`), and so is the schedule function, which is `'static`. The
        // future is not `'static`: it borrows the task's metadata, which
        // async-task allows ("borrowed non-metadata variables must outlive
        // its Runnable"): the metadata lives in the task's allocation and
        // is dropped after the future.
        unsafe {
            builder.spawn_unchecked(
                move |tag| TaskFuture {
                    future: Some(future),
                    tag,
                    counted,
                },
                schedule,
            )
        }
    })
}

/// Creates a local task: [`spawn`] for a future that need not be `Send`,
/// uncounted and without a rescuer. The task checks that it is polled and
/// dropped only on the thread that calls this ([`OnOwner`]); keeping every
/// runnable on that thread is the caller's part. Wakes, from any thread,
/// call `schedule(runnable)`.
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
    let queue = meta.queue;
    register(future, meta, false, registry, |future, id, key| {
        let owner = thread_id();
        let tag = Tag::new(id, super::NO_RESCUER, queue, registry.clone(), key);
        let builder = async_task::Builder::new().metadata(tag);
        // SAFETY: as in `spawn` for the borrowed metadata and the schedule
        // function (`Send`, `Sync`, `'static`). The future may not be
        // `Send`: its runnable must be used and dropped on this thread.
        // `OnOwner` makes sure of it: it panics before a poll on another
        // thread and aborts the process before a drop on another thread.
        unsafe {
            builder.spawn_unchecked(
                move |tag| OnOwner {
                    owner,
                    future: TaskFuture {
                        future: Some(future),
                        tag,
                        counted: false,
                    },
                },
                schedule,
            )
        }
    })
}

/// What [`spawn`] and [`spawn_local`] share: takes an id and registers the
/// task, `make` building its cell (given the future, the id and the
/// registration's key) under the shard lock. Returns the runnable and the
/// handle, or, if the registry is closed, no runnable and a handle that
/// resolves to a cancellation (the future dropped here, outside the lock).
fn register<F: Future>(
    future: F,
    meta: SpawnMeta,
    counted: bool,
    registry: &Registry,
    make: impl FnOnce(F, Id, Key) -> (Runnable, Task<Result<F::Output, JoinError>, Tag>),
) -> (Option<Runnable>, JoinHandle<F::Output>) {
    let id = Id::next();
    let mut future = Some(future);
    let spawned = registry.insert(id, meta, counted, |key| {
        let future = future.take().expect("the registry calls `make` once");
        let (runnable, task) = make(future, id, key);
        let waker = runnable.waker();
        ((runnable, task), waker)
    });
    match spawned {
        Some((runnable, task)) => (Some(runnable), JoinHandle::new(task)),
        None => {
            drop(future);
            (None, JoinHandle::rejected(id))
        }
    }
}
