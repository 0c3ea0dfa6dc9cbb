//! `TaskLocalFuture`: a future run inside a scope of a task-local key.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::LocalKey;

pin_project! {
    /// A future that sets a task-local key while it runs: returned by
    /// [`LocalKey::scope`].
    ///
    /// Each poll swaps the value into the key, polls the inner future, and
    /// swaps it back out, also if the inner poll panics. The inner future is
    /// dropped inside the scope too: when it completes, and when this future
    /// is dropped before that, so its destructor can read the value. The
    /// value itself is dropped with this future.
    ///
    /// ```
    /// wq::task_local! {
    ///     static TRACE: u64;
    /// }
    ///
    /// # let rt = wq::Runtime::new().unwrap();
    /// # rt.block_on(async {
    /// let traced: wq::task::futures::TaskLocalFuture<u64, _> =
    ///     TRACE.scope(99, async { TRACE.get() });
    /// assert_eq!(wq::spawn(traced).await.unwrap(), 99);
    /// # });
    /// ```
    pub struct TaskLocalFuture<T, F>
    where
        T: 'static,
    {
        key: &'static LocalKey<T>,
        // The value while the future is not being polled.
        slot: Option<T>,
        // `None` once it has completed.
        #[pin]
        future: Option<F>,
    }

    impl<T, F> PinnedDrop for TaskLocalFuture<T, F>
    where
        T: 'static,
    {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if std::mem::needs_drop::<F>() && this.future.is_some() {
                let mut future = this.future;
                // Inside `with` of the same key, or while the thread's locals
                // are destroyed, the scope cannot be entered: the future is
                // then dropped without its value, with this one's fields.
                let _ = this.key.enter(this.slot, || future.set(None));
            }
        }
    }
}

impl<T: 'static, F> TaskLocalFuture<T, F> {
    pub(super) fn new(key: &'static LocalKey<T>, value: T, future: F) -> TaskLocalFuture<T, F> {
        TaskLocalFuture {
            key,
            slot: Some(value),
            future: Some(future),
        }
    }

    /// Takes the value out of this future: `Some` the first time, `None`
    /// after. If the inner future has not completed yet, its next polls run
    /// without the value (reading the key there panics).
    ///
    /// ```
    /// use std::pin::pin;
    ///
    /// wq::task_local! {
    ///     static BUFFER: Vec<u8>;
    /// }
    ///
    /// # let rt = wq::Runtime::new().unwrap();
    /// # rt.block_on(async {
    /// let mut scoped = pin!(BUFFER.scope(Vec::new(), async {
    ///     // Reading (or, through interior mutability, filling) the value.
    ///     BUFFER.with(|buffer| buffer.len())
    /// }));
    /// assert_eq!(scoped.as_mut().await, 0);
    /// assert_eq!(scoped.as_mut().take_value(), Some(Vec::new()));
    /// assert_eq!(scoped.take_value(), None);
    /// # });
    /// ```
    pub fn take_value(self: Pin<&mut Self>) -> Option<T> {
        self.project().slot.take()
    }
}

impl<T: 'static, F: Future> Future for TaskLocalFuture<T, F> {
    type Output = F::Output;

    #[track_caller]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let mut future = this.future;
        let polled = this.key.enter(this.slot, || {
            let inner = future.as_mut().as_pin_mut()?;
            let poll = inner.poll(cx);
            if poll.is_ready() {
                // Dropped while the value is still set.
                future.set(None);
            }
            Some(poll)
        });
        match polled {
            Ok(Some(poll)) => poll,
            Ok(None) => panic!("`TaskLocalFuture` polled after completion"),
            Err(err) => err.panic(),
        }
    }
}

impl<T: fmt::Debug + 'static, F> fmt::Debug for TaskLocalFuture<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskLocalFuture")
            .field("value", &self.slot)
            .field("completed", &self.future.is_none())
            .finish()
    }
}
