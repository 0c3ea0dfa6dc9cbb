//! `Sleep`: a future that completes at a deadline.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;

use super::driver::{DriverRef, ShutDown, TimerHandle};
use super::Instant;

/// Waits until `duration` has elapsed. Equivalent to
/// `sleep_until(Instant::now() + duration)`.
///
/// The timer has millisecond resolution and never fires early.
///
/// # Panics
///
/// Panics outside a wq runtime context. The returned future panics when
/// polled after its runtime has shut down (a sleep waiting at the shutdown
/// is woken to do so): no worker is left to fire it, and waiting would
/// hang. tokio's timers panic the same way.
///
/// ```
/// # #[wq::main] async fn main() {
/// use std::time::Duration;
/// let start = wq::time::Instant::now();
/// wq::time::sleep(Duration::from_millis(10)).await;
/// assert!(start.elapsed() >= Duration::from_millis(10));
/// # }
/// ```
#[track_caller]
pub fn sleep(duration: Duration) -> Sleep {
    Sleep::new(Instant::now().saturating_add(duration))
}

/// Waits until `deadline`.
///
/// # Panics
///
/// Panics outside a wq runtime context; the returned future panics when
/// polled after its runtime has shut down, as [`sleep`]'s does.
///
/// ```
/// # #[wq::main] async fn main() {
/// use std::time::Duration;
/// let deadline = wq::time::Instant::now() + Duration::from_millis(5);
/// wq::time::sleep_until(deadline).await;
/// assert!(wq::time::Instant::now() >= deadline);
/// # }
/// ```
#[track_caller]
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep::new(deadline)
}

pin_project! {
    /// The future returned by [`sleep`] and [`sleep_until`].
    ///
    /// Dropping it cancels the timer and frees its entry at once, also
    /// after its runtime has shut down. Polling it then panics (see
    /// [`sleep`]).
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct Sleep {
        deadline: Instant,
        driver: Arc<DriverRef>,
        entry: Option<TimerHandle>,
        // The deadline has passed (the clock said so, at the first poll or
        // once the timer fired): polls return `Ready` until `reset`.
        elapsed: bool,
    }

    impl PinnedDrop for Sleep {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(entry) = this.entry.take() {
                this.driver.cancel(entry);
            }
        }
    }
}

impl Sleep {
    #[track_caller]
    pub(crate) fn new(deadline: Instant) -> Sleep {
        let driver = crate::runtime::current_driver_ref().unwrap_or_else(|| {
            panic!(
                "there is no wq runtime current on this thread: timers must be created \
                 from a task, inside `block_on`, or while an `enter` guard is held"
            )
        });
        Sleep {
            deadline,
            driver,
            entry: None,
            elapsed: false,
        }
    }

    /// The instant at which the sleep completes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline has passed.
    pub fn is_elapsed(&self) -> bool {
        self.driver.clock().now() >= self.deadline.into_std()
    }

    /// Moves the deadline to `deadline`, whether or not the sleep had
    /// completed. A sleep waiting on its timer is moved at once, as tokio's
    /// is: the task that polled it last is woken at the new deadline (at
    /// once if that has passed), whether or not it polls the sleep again
    /// in between.
    ///
    /// ```
    /// # #[wq::main] async fn main() {
    /// use std::time::Duration;
    /// let mut sleep = std::pin::pin!(wq::time::sleep(Duration::from_secs(3600)));
    /// sleep.as_mut().reset(wq::time::Instant::now() + Duration::from_millis(1));
    /// sleep.await;
    /// # }
    /// ```
    pub fn reset(self: Pin<&mut Self>, deadline: Instant) {
        let this = self.project();
        *this.deadline = deadline;
        *this.elapsed = false;
        let Some(entry) = this.entry.take() else {
            return;
        };
        // No waker: the timer fired meanwhile and woke its task, which
        // polls again and registers the new deadline.
        let Some(waker) = this.driver.take(entry) else {
            return;
        };
        if this.driver.clock().now() < deadline.into_std() {
            if let Ok(entry) = this.driver.register(deadline.into_std(), &waker) {
                *this.entry = Some(entry);
                return;
            }
        }
        // Due already, or the runtime shut down: the task's next poll
        // completes, or panics as any poll after shutdown does.
        waker.wake();
    }
}

impl Future for Sleep {
    type Output = ();

    /// Reads the clock at the first poll, and once the timer fired: a
    /// deadline beyond the wheel's range (about 2.2 years, see `wheel.rs`)
    /// is clamped to it, fires early, and is registered again. Between,
    /// the driver knows whether the timer fired (its entry is gone).
    ///
    /// Panics if the runtime has shut down.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let unit = std::task::ready!(crate::task::coop::poll_proceed(cx));
        let this = self.project();
        if this.driver.is_shut_down() {
            runtime_shut_down();
        }
        if !*this.elapsed {
            if let Some(entry) = *this.entry {
                if this.driver.update_waker(entry, cx.waker()) {
                    return Poll::Pending;
                }
                if this.driver.is_shut_down() {
                    // The shutdown removed it, after our look above (the
                    // shard's lock, taken by `update_waker`, orders the
                    // flag before the removal).
                    runtime_shut_down();
                }
                // Only the timer firing, or the shutdown, removes the entry
                // while we hold it: it fired.
                *this.entry = None;
            }
            let deadline = this.deadline.into_std();
            if this.driver.clock().now() < deadline {
                match this.driver.register(deadline, cx.waker()) {
                    Ok(entry) => *this.entry = Some(entry),
                    Err(ShutDown) => runtime_shut_down(),
                }
                return Poll::Pending;
            }
            *this.elapsed = true;
        }
        unit.made_progress();
        Poll::Ready(())
    }
}

/// A timer of a runtime that has shut down is polled: it can never fire.
#[cold]
fn runtime_shut_down() -> ! {
    panic!("wq: this timer's runtime has shut down, so the timer can never fire")
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .field("registered", &self.entry.is_some())
            .finish()
    }
}
