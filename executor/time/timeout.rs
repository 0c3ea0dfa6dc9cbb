//! `Timeout`: a future with a deadline.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;

use super::error::Elapsed;
use super::{sleep_until, Instant, Sleep};
use crate::task::coop;

/// Requires `future` to complete within `duration`; otherwise it is dropped
/// and [`Elapsed`] is returned.
///
/// # Panics
///
/// Panics outside a wq runtime context. The returned future polls
/// `future` first, and then its delay, which panics if the runtime has shut
/// down (see [`sleep`](super::sleep())), as tokio's does.
///
/// ```
/// # #[wq::main] async fn main() {
/// use std::time::Duration;
/// let fast = wq::time::timeout(Duration::from_secs(1), async { 5 }).await;
/// assert_eq!(fast, Ok(5));
/// let slow = wq::time::timeout(Duration::from_millis(1), std::future::pending::<()>()).await;
/// assert!(slow.is_err());
/// # }
/// ```
#[track_caller]
pub fn timeout<F: IntoFuture>(duration: Duration, future: F) -> Timeout<F::IntoFuture> {
    timeout_at(Instant::now().saturating_add(duration), future)
}

/// Requires `future` to complete before `deadline`.
///
/// # Panics
///
/// Panics outside a wq runtime context; the returned future panics as
/// [`timeout`]'s does after the runtime has shut down.
#[track_caller]
pub fn timeout_at<F: IntoFuture>(deadline: Instant, future: F) -> Timeout<F::IntoFuture> {
    Timeout {
        value: future.into_future(),
        delay: sleep_until(deadline),
    }
}

pin_project! {
    /// The future returned by [`timeout`] and [`timeout_at`].
    #[derive(Debug)]
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct Timeout<T> {
        #[pin]
        value: T,
        #[pin]
        delay: Sleep,
    }
}

impl<T> Timeout<T> {
    /// The inner future.
    pub fn get_ref(&self) -> &T {
        &self.value
    }

    /// The inner future, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.value
    }

    /// Takes the inner future out.
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T: Future> Future for Timeout<T> {
    type Output = Result<T::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let had_budget = coop::has_budget_remaining();
        if let Poll::Ready(output) = this.value.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        let delay = this.delay;
        let poll_delay = || match delay.poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed::new())),
            Poll::Pending => Poll::Pending,
        };
        if had_budget && !coop::has_budget_remaining() {
            // The inner future spent the task's budget: the delay is looked
            // at all the same, or a future that always spends it (a loop
            // over ready sockets) would never time out (tokio does the same).
            coop::without_budget(poll_delay)
        } else {
            poll_delay()
        }
    }
}
