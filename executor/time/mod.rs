//! Time: sleeping, timeouts, intervals, and a clock that tests can pause.
//!
//! Timers live in hierarchical timer wheels (1 ms resolution, 6 levels of
//! 64 slots; O(1) insert and cancel), one per shard so that registration
//! rarely contends. There is no timer thread: the pool's workers fire due
//! timers as part of their loop, and one idle worker sleeps exactly until
//! the next deadline (see `pool/README.md`).
//!
//! ```
//! # #[wq::main] async fn main() {
//! use std::time::Duration;
//! use wq::time::{sleep, timeout};
//!
//! sleep(Duration::from_millis(1)).await;
//! let result = timeout(Duration::from_millis(1), std::future::pending::<()>()).await;
//! assert!(result.is_err());
//! # }
//! ```

mod clock;
pub(crate) mod driver;
pub mod error;
mod instant;
mod interval;
mod sleep;
mod timeout;
mod wheel;

pub use instant::Instant;
pub use interval::{interval, interval_at, Interval, MissedTickBehavior};
pub use sleep::{sleep, sleep_until, Sleep};
pub use timeout::{timeout, timeout_at, Timeout};

use std::time::Duration;

/// Freezes the current runtime's clock: from now on time moves only with
/// [`advance`], or by auto-advance, which jumps to the next timer's
/// millisecond tick whenever the runtime has nothing else to do (no worker
/// running or blocked, no `block_on` future being polled). A runtime built
/// with `start_paused` has its ticks aligned with its start, so there the
/// jumps land exactly on deadlines that are whole milliseconds from it.
///
/// # Panics
///
/// Panics outside a runtime context or if the clock is already paused.
///
/// ```
/// # #[wq::main] async fn main() {
/// use std::time::Duration;
/// wq::time::pause();
/// let start = wq::time::Instant::now();
/// wq::time::sleep(Duration::from_secs(3600)).await; // returns at once
/// // The clock jumped to the timer's millisecond tick.
/// assert!(start.elapsed() >= Duration::from_secs(3600));
/// assert!(start.elapsed() < Duration::from_secs(3601));
/// # }
/// ```
#[track_caller]
pub fn pause() {
    current_driver("pause").clock().pause();
}

/// Lets the current runtime's clock run again, on from the instant it was
/// frozen at (advances included): the real time that passed while it was
/// paused is not added, as with tokio.
///
/// ```
/// # #[wq::main] async fn main() {
/// use std::time::Duration;
/// wq::time::pause();
/// let frozen = wq::time::Instant::now();
/// std::thread::sleep(Duration::from_millis(100));
/// wq::time::advance(Duration::from_millis(5)).await;
/// wq::time::resume();
/// let passed = frozen.elapsed();
/// assert!(passed >= Duration::from_millis(5) && passed < Duration::from_millis(100));
/// # }
/// ```
///
/// # Panics
///
/// Panics outside a runtime context or if the clock is not paused.
#[track_caller]
pub fn resume() {
    let driver = current_driver("resume");
    driver.clock().resume();
    // The timer worker sleeps until nudged while the clock is paused: it
    // must look at its timers again, in real time now.
    driver.nudge();
}

/// Moves the paused clock forward by `duration`, fires the timers that are
/// now due, and yields so that the tasks they woke can run.
///
/// # Panics
///
/// Panics outside a runtime context or if the clock is not paused.
///
/// ```
/// # #[wq::main] async fn main() {
/// use std::time::Duration;
/// wq::time::pause();
/// let start = wq::time::Instant::now();
/// wq::time::advance(Duration::from_secs(5)).await;
/// assert_eq!(start.elapsed(), Duration::from_secs(5));
/// # }
/// ```
pub async fn advance(duration: Duration) {
    let driver = current_driver("advance");
    driver.clock().advance(duration);
    driver.process();
    crate::task::yield_now().await;
}

#[track_caller]
fn current_driver(function: &str) -> std::sync::Arc<driver::Driver> {
    crate::runtime::current_time_driver()
        .unwrap_or_else(|| panic!("`wq::time::{function}` called outside of a wq runtime"))
}
