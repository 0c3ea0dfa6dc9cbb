//! Handles to spawned tasks: `JoinHandle` (await the output) and
//! `AbortHandle` (cancel it from anywhere).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::ptr::NonNull;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_task::{FallibleTask, Task};

use super::harness::Shared;
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
    /// `task`'s metadata (async-task keeps it in the task's allocation,
    /// and `FallibleTask` does not lend it out).
    tag: TagRef,
    id: Id,
    /// The handle has produced its result.
    done: bool,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(task: Task<Result<T, JoinError>, Tag>) -> JoinHandle<T> {
        JoinHandle {
            id: task.metadata().id,
            tag: TagRef(NonNull::from(task.metadata())),
            task: Some(task.fallible()),
            done: false,
        }
    }

    /// A handle for a spawn refused because the runtime is shut down: it
    /// resolves at once to a cancellation.
    pub(crate) fn rejected(id: Id) -> JoinHandle<T> {
        JoinHandle {
            task: None,
            tag: TagRef(NonNull::dangling()),
            id,
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
        if let Some(tag) = self.tag() {
            tag.abort();
        }
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
        let shared = match self.tag() {
            Some(tag) => tag.shared(),
            None => Shared::finished(self.id),
        };
        AbortHandle { shared }
    }

    /// The task's id.
    pub fn id(&self) -> Id {
        self.id
    }

    /// The task's metadata, while this handle holds the task.
    fn tag(&self) -> Option<&Tag> {
        // SAFETY: `tag` points to the metadata of `task`'s allocation, which
        // async-task frees only after every handle to it is gone; `task`
        // is one, so the metadata lives at least as long as `task` is
        // `Some`. It is only read (`Tag` is `Sync`).
        self.task.as_ref().map(|_| unsafe { self.tag.0.as_ref() })
    }
}

/// A `&Tag` whose lifetime is its `JoinHandle`'s `task` field.
struct TagRef(NonNull<Tag>);

// SAFETY: a `TagRef` is used as a shared reference to a `Tag`, which is
// `Sync`; so, as for `&Tag`, it may be sent to and shared with other threads.
unsafe impl Send for TagRef {}
// SAFETY: as above.
unsafe impl Sync for TagRef {}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        assert!(!self.done, "JoinHandle polled after completion");
        let unit = std::task::ready!(super::coop::poll_proceed(cx));
        let id = self.id;
        let result = match self.task.as_mut() {
            Some(task) => match Pin::new(task).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(result)) => result,
                // The task was dropped before completing: runtime shutdown,
                // or its LocalSet was dropped. A panic of the future's
                // destructor is the outcome then, as on tokio.
                Poll::Ready(None) => match self.tag().and_then(|tag| tag.state.take_drop_panic()) {
                    Some(payload) => Err(JoinError::panic(id, payload)),
                    None => Err(JoinError::cancelled(id)),
                },
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
        f.debug_struct("JoinHandle").field("id", &self.id).finish()
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
    shared: Arc<Shared>,
}

impl AbortHandle {
    /// Cancels the task; see [`JoinHandle::abort`].
    pub fn abort(&self) {
        self.shared.abort();
    }

    /// Whether the task has finished: completed, panicked or been dropped
    /// after cancellation.
    pub fn is_finished(&self) -> bool {
        self.shared.is_finished()
    }

    /// The task's id.
    pub fn id(&self) -> Id {
        self.shared.id()
    }
}

impl fmt::Debug for AbortHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortHandle")
            .field("id", &self.shared.id())
            .finish()
    }
}
