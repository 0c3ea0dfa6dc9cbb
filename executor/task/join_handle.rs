//! Handles to spawned tasks: `JoinHandle` (await the output) and
//! `AbortHandle` (cancel it from anywhere).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use async_task::FallibleTask;

use super::harness::Header;
use super::{Id, JoinError, Tag};

/// An owned permission to join a task: awaiting it yields the task's output,
/// or a [`JoinError`] if the task panicked or was cancelled.
///
/// Dropping a `JoinHandle` detaches the task: it keeps running and its output
/// is dropped. Use [`abort`](JoinHandle::abort) to cancel it.
///
/// ```
/// # let rt = wq::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let handle = wq::spawn(async { 6 * 7 });
/// assert_eq!(handle.await.unwrap(), 42);
/// # });
/// ```
pub struct JoinHandle<T> {
    task: Option<FallibleTask<Result<T, JoinError>, Tag>>,
    header: Arc<Header>,
    /// Wakes the task so that it notices an abort. `None` for a task that was
    /// never spawned (the runtime had shut down).
    waker: Option<Waker>,
    /// The handle has produced its result.
    done: bool,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(
        task: FallibleTask<Result<T, JoinError>, Tag>,
        header: Arc<Header>,
        waker: Waker,
    ) -> JoinHandle<T> {
        JoinHandle {
            task: Some(task),
            header,
            waker: Some(waker),
            done: false,
        }
    }

    /// A handle for a spawn refused because the runtime is shut down: it
    /// resolves at once to a cancellation.
    pub(crate) fn rejected(header: Arc<Header>) -> JoinHandle<T> {
        JoinHandle {
            task: None,
            header,
            waker: None,
            done: false,
        }
    }

    /// Cancels the task. A task not yet finished is dropped at its next
    /// scheduling point (before its next poll), and awaiting the handle then
    /// yields a cancelled [`JoinError`]. A task that already finished keeps
    /// its result. Aborting twice is harmless.
    ///
    /// ```
    /// # let rt = wq::Runtime::new().unwrap();
    /// # rt.block_on(async {
    /// let handle = wq::spawn(std::future::pending::<()>());
    /// handle.abort();
    /// assert!(handle.await.unwrap_err().is_cancelled());
    /// # });
    /// ```
    pub fn abort(&self) {
        abort(&self.header, self.waker.as_ref());
    }

    /// Whether the task has finished (completed, panicked or been
    /// cancelled). Never blocks.
    ///
    /// ```
    /// # let rt = wq::Runtime::new().unwrap();
    /// # rt.block_on(async {
    /// let handle = wq::spawn(async {});
    /// while !handle.is_finished() {
    ///     wq::task::yield_now().await;
    /// }
    /// # });
    /// ```
    pub fn is_finished(&self) -> bool {
        match &self.task {
            Some(task) => task.is_finished(),
            None => true,
        }
    }

    /// A handle that can abort the task without owning the output.
    ///
    /// ```
    /// # let rt = wq::Runtime::new().unwrap();
    /// # rt.block_on(async {
    /// let handle = wq::spawn(std::future::pending::<()>());
    /// let abort = handle.abort_handle();
    /// std::thread::spawn(move || abort.abort()).join().unwrap();
    /// assert!(handle.await.unwrap_err().is_cancelled());
    /// # });
    /// ```
    pub fn abort_handle(&self) -> AbortHandle {
        AbortHandle {
            header: self.header.clone(),
            waker: self.waker.clone(),
        }
    }

    /// The task's id.
    pub fn id(&self) -> Id {
        self.header.id
    }
}

fn abort(header: &Header, waker: Option<&Waker>) {
    header.abort();
    if let Some(waker) = waker {
        // The task notices the flag at its next poll; make sure there is one.
        waker.wake_by_ref();
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        assert!(!self.done, "JoinHandle polled after completion");
        let unit = std::task::ready!(super::coop::poll_proceed(cx));
        let id = self.header.id;
        let result = match self.task.as_mut() {
            Some(task) => match Pin::new(task).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(result)) => result,
                // The task was dropped before completing: runtime shutdown,
                // or its LocalSet was dropped.
                Poll::Ready(None) => Err(JoinError::cancelled(id)),
            },
            None => Err(JoinError::cancelled(id)),
        };
        self.task = None;
        self.done = true;
        unit.made_progress();
        Poll::Ready(result)
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.detach();
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.header.id)
            .finish()
    }
}

/// Cancels a task without owning its output. Cloneable, `Send` and `Sync`.
///
/// ```
/// # let rt = wq::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let handle = wq::spawn(std::future::pending::<()>());
/// let abort = handle.abort_handle();
/// assert!(!abort.is_finished());
/// abort.abort();
/// assert!(handle.await.unwrap_err().is_cancelled());
/// # });
/// ```
#[derive(Clone)]
pub struct AbortHandle {
    header: Arc<Header>,
    waker: Option<Waker>,
}

impl AbortHandle {
    /// Cancels the task; see [`JoinHandle::abort`].
    pub fn abort(&self) {
        abort(&self.header, self.waker.as_ref());
    }

    /// Whether the task has finished: completed, panicked or been dropped
    /// after cancellation.
    pub fn is_finished(&self) -> bool {
        self.header.is_finished()
    }

    /// The task's id.
    pub fn id(&self) -> Id {
        self.header.id
    }
}

impl fmt::Debug for AbortHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortHandle")
            .field("id", &self.header.id)
            .finish()
    }
}
