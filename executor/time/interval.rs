//! `Interval`: ticks at a fixed period.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use super::{sleep_until, Instant, Sleep};

/// A stream of ticks every `period`; the first tick completes at once.
///
/// # Panics
///
/// Panics if `period` is zero, or outside a wq runtime context. A tick
/// polled after the runtime has shut down panics, as a
/// [`sleep`](super::sleep()) does.
///
/// ```
/// # #[wq::main] async fn main() {
/// use std::time::Duration;
/// let mut interval = wq::time::interval(Duration::from_millis(10));
/// let first = interval.tick().await; // at once
/// let second = interval.tick().await; // 10 ms later
/// assert_eq!(second - first, Duration::from_millis(10));
/// # }
/// ```
#[track_caller]
pub fn interval(period: Duration) -> Interval {
    assert!(!period.is_zero(), "`period` must be non-zero.");
    Interval::new(Instant::now(), period)
}

/// A stream of ticks every `period`, the first at `start`.
///
/// # Panics
///
/// Panics if `period` is zero, or outside a wq runtime context.
#[track_caller]
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    assert!(!period.is_zero(), "`period` must be non-zero.");
    Interval::new(start, period)
}

/// What an [`Interval`] does when ticks were missed (the task was not
/// polled in time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissedTickBehavior {
    /// Fire the missed ticks at once, one after another, until caught up;
    /// later ticks stay on the original schedule. The default.
    #[default]
    Burst,
    /// Fire one tick now, and schedule the next a full `period` after it:
    /// the schedule shifts.
    Delay,
    /// Fire one tick now, and skip to the next tick of the original
    /// schedule.
    Skip,
}

impl MissedTickBehavior {
    /// The next deadline after a late tick scheduled at `timeout`, fired at
    /// `now`.
    fn next_timeout(self, timeout: Instant, now: Instant, period: Duration) -> Instant {
        match self {
            MissedTickBehavior::Burst => timeout.saturating_add(period),
            MissedTickBehavior::Delay => now.saturating_add(period),
            MissedTickBehavior::Skip => {
                let late = (now - timeout).as_nanos() % period.as_nanos();
                let late = Duration::from_nanos(u64::try_from(late).unwrap_or(u64::MAX));
                now.saturating_add(period - late)
            }
        }
    }
}

/// Ticks handed out by [`interval`] and [`interval_at`].
#[derive(Debug)]
pub struct Interval {
    delay: Pin<Box<Sleep>>,
    period: Duration,
    missed_tick_behavior: MissedTickBehavior,
}

impl Interval {
    #[track_caller]
    fn new(start: Instant, period: Duration) -> Interval {
        Interval {
            delay: Box::pin(sleep_until(start)),
            period,
            missed_tick_behavior: MissedTickBehavior::default(),
        }
    }

    /// Completes at the next tick and returns its scheduled instant.
    /// Cancel safe.
    pub async fn tick(&mut self) -> Instant {
        poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick.
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        if std::future::Future::poll(self.delay.as_mut(), cx).is_pending() {
            return Poll::Pending;
        }
        let timeout = self.delay.deadline();
        let now = Instant::now();
        // Within 5 ms of the schedule counts as on time, so that ordinary
        // wakeup latency does not change the schedule.
        let next = if now > timeout.saturating_add(Duration::from_millis(5)) {
            self.missed_tick_behavior
                .next_timeout(timeout, now, self.period)
        } else {
            timeout.saturating_add(self.period)
        };
        self.delay.as_mut().reset(next);
        Poll::Ready(timeout)
    }

    /// Restarts the schedule: the next tick is a full period from now.
    pub fn reset(&mut self) {
        self.delay
            .as_mut()
            .reset(Instant::now().saturating_add(self.period));
    }

    /// The next tick completes at once; the schedule continues from now.
    pub fn reset_immediately(&mut self) {
        self.delay.as_mut().reset(Instant::now());
    }

    /// The next tick is `after` from now.
    pub fn reset_after(&mut self, after: Duration) {
        self.delay
            .as_mut()
            .reset(Instant::now().saturating_add(after));
    }

    /// The next tick is at `deadline`.
    pub fn reset_at(&mut self, deadline: Instant) {
        self.delay.as_mut().reset(deadline);
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The behavior when ticks are missed.
    pub fn missed_tick_behavior(&self) -> MissedTickBehavior {
        self.missed_tick_behavior
    }

    /// Sets the behavior when ticks are missed.
    pub fn set_missed_tick_behavior(&mut self, behavior: MissedTickBehavior) {
        self.missed_tick_behavior = behavior;
    }
}
