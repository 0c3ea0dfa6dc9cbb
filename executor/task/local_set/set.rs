//! `LocalSet` itself: spawning onto it, running it, and dropping it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll};

use pin_project_lite::pin_project;

use crate::runtime::Runtime;
use crate::task::registry::SpawnMeta;
use crate::task::JoinHandle;

use super::context::Context;
use super::current::{self, LocalEnterGuard};

/// A set of tasks run on the thread that owns the set, so that their
/// futures need not be `Send`.
///
/// Spawn with [`LocalSet::spawn_local`], or with
/// [`wq::task::spawn_local`](super::spawn_local) from inside the set. The
/// tasks run only while the set is polled, on the thread polling it:
/// - [`run_until`](LocalSet::run_until) runs them while it drives a future
///   of yours, and returns that future's output (tasks still pending stay
///   in the set, for the next run);
/// - [`block_on`](LocalSet::block_on) is `run_until` inside
///   [`Runtime::block_on`];
/// - awaiting the set itself (it is a `Future`) runs its tasks until every
///   one is done.
///
/// The tasks are polled inside the runtime context of whoever polls the
/// set (`block_on`, usually), so they may use the rest of wq: `wq::spawn`
/// onto the workers, timers, sockets. Their wakers are `Send`: a wake from
/// a worker or any other thread reaches the set, and the task runs on the
/// set's thread at its next poll. Each poll runs a bounded number of tasks
/// (61) before it yields, so a set polled next to other futures shares the
/// thread with them.
///
/// A task that panics does not bring the set down: its
/// [`JoinHandle`] resolves to a [`JoinError`](crate::task::JoinError) that
/// carries the payload. Dropping the set drops every task's future still
/// alive, exactly once, on this thread, without polling it again; their
/// handles then resolve as cancelled.
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
///
/// let rt = wq::Runtime::new().unwrap();
/// let local = wq::task::LocalSet::new();
/// let log = Rc::new(RefCell::new(Vec::new()));
/// for i in 0..3 {
///     let log = log.clone();
///     local.spawn_local(async move { log.borrow_mut().push(i) });
/// }
/// // Runs the set until all three tasks are done.
/// rt.block_on(local);
/// assert_eq!(*log.borrow(), [0, 1, 2]);
/// ```
pub struct LocalSet {
    context: Rc<Context>,
}

impl LocalSet {
    /// An empty set, owned by this thread.
    ///
    /// ```
    /// let local = wq::task::LocalSet::new();
    /// # drop(local);
    /// ```
    pub fn new() -> LocalSet {
        LocalSet {
            context: Context::new(),
        }
    }

    /// Spawns `future` onto the set and returns its [`JoinHandle`]. Unlike
    /// [`wq::task::spawn_local`](super::spawn_local) this works whether or
    /// not the set is entered; the task starts at the set's next poll.
    ///
    /// After the set has been dropped (through an
    /// [`enter`](LocalSet::enter) guard that outlived it, or from a task's
    /// destructor during the drop), the future is dropped at once and the
    /// handle resolves as cancelled.
    ///
    /// ```
    /// use std::rc::Rc;
    ///
    /// let rt = wq::Runtime::new().unwrap();
    /// let local = wq::task::LocalSet::new();
    /// let greeting = Rc::new("hello");
    /// let task = local.spawn_local(async move { *greeting });
    /// assert_eq!(local.block_on(&rt, task).unwrap(), "hello");
    /// ```
    #[track_caller]
    pub fn spawn_local<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.context.spawn(future, SpawnMeta::here())
    }

    /// Runs `future` to completion on `rt`, on this thread, driving the
    /// set's tasks meanwhile: `rt.block_on(self.run_until(future))`. Tasks
    /// the future spawns with `wq::spawn` run on the runtime's workers;
    /// those it spawns with `spawn_local` run here.
    ///
    /// # Panics
    ///
    /// Panics if called from a thread that already drives a runtime (a
    /// worker, or inside `block_on`), as [`Runtime::block_on`] does; and if
    /// `future` panics.
    ///
    /// ```
    /// use std::rc::Rc;
    ///
    /// let rt = wq::Runtime::new().unwrap();
    /// let local = wq::task::LocalSet::new();
    /// let sum = local.block_on(&rt, async {
    ///     let shared = Rc::new(20);
    ///     let remote = wq::spawn(async { 2 });
    ///     let here = wq::task::spawn_local(async move { *shared * 2 });
    ///     remote.await.unwrap() + here.await.unwrap()
    /// });
    /// assert_eq!(sum, 42);
    /// ```
    #[track_caller]
    pub fn block_on<F: Future>(&self, rt: &Runtime, future: F) -> F::Output {
        rt.block_on(self.run_until(future))
    }

    /// Runs `future` to completion with the set entered, driving the set's
    /// tasks meanwhile, and returns its output. Each poll polls `future`
    /// first, then runs a bounded number of tasks. Tasks not finished when
    /// `future` completes stay in the set: a later `run_until`, or awaiting
    /// the set, runs them on.
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    ///
    /// let rt = wq::Runtime::new().unwrap();
    /// let local = wq::task::LocalSet::new();
    /// let count = Rc::new(Cell::new(0));
    /// rt.block_on(local.run_until({
    ///     let count = count.clone();
    ///     async move {
    ///         let task = wq::task::spawn_local(async move { count.set(count.get() + 1) });
    ///         task.await.unwrap();
    ///     }
    /// }));
    /// assert_eq!(count.get(), 1);
    /// ```
    pub async fn run_until<F: Future>(&self, future: F) -> F::Output {
        RunUntil {
            local_set: self,
            future,
        }
        .await
    }

    /// Enters the set on this thread until the guard is dropped, so that
    /// [`wq::task::spawn_local`](super::spawn_local) spawns onto it from
    /// synchronous code. Entering does not run anything: the tasks run when
    /// the set is next polled.
    ///
    /// ```
    /// let rt = wq::Runtime::new().unwrap();
    /// let local = wq::task::LocalSet::new();
    /// let task = {
    ///     let _guard = local.enter();
    ///     wq::task::spawn_local(async { "spawned" })
    /// };
    /// assert_eq!(local.block_on(&rt, task).unwrap(), "spawned");
    /// ```
    pub fn enter(&self) -> LocalEnterGuard {
        LocalEnterGuard {
            _entered: current::enter(&self.context, false),
        }
    }
}

pin_project! {
    /// The future of `run_until`.
    struct RunUntil<'a, F> {
        local_set: &'a LocalSet,
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for RunUntil<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let context = &this.local_set.context;
        let _entered = context.enter_polling(cx.waker());
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(output);
        }
        if context.tick() {
            // Tasks are left: yield the thread, and come back.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

/// Runs the set's tasks until every one is done (completed, panicked or
/// aborted); see [`LocalSet`].
impl Future for LocalSet {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let context = &self.context;
        let _entered = context.enter_polling(cx.waker());
        if context.tick() {
            cx.waker().wake_by_ref();
            Poll::Pending
        } else if context.live.count() == 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Default for LocalSet {
    fn default() -> LocalSet {
        LocalSet::new()
    }
}

impl fmt::Debug for LocalSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalSet")
            .field("tasks", &self.context.live.count())
            .field("queued", &self.context.queued())
            .finish()
    }
}

impl Drop for LocalSet {
    fn drop(&mut self) {
        self.context.shutdown();
    }
}
