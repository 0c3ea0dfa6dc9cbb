//! The runtime's clock: real time, or a paused clock for tests.
//!
//! While paused, time moves only through `advance` or auto-advance: when the
//! runtime has nothing to do (no worker running or blocked, no `block_on`
//! thread busy, no queued task), the worker that drives the timers jumps the
//! clock to the next timer's deadline instead of sleeping.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

/// A clock shared by a runtime's timers.
#[derive(Debug)]
pub(crate) struct Clock {
    /// Fast path: not paused means real time.
    paused: AtomicBool,
    /// The frozen instant while paused.
    frozen: Mutex<std::time::Instant>,
    /// While running: how far (ns) this clock is ahead of the real clock
    /// (negative: behind), set by `resume` so that time runs on from the
    /// frozen instant: ahead by the time it was advanced while paused,
    /// behind by the real time that passed meanwhile. Zero unless it was
    /// ever paused. Written under `frozen`'s lock.
    offset_nanos: AtomicI64,
    /// Threads that must see time stand still (a `block_on` future being
    /// polled, a blocking closure running). Auto-advance waits for zero.
    inhibit: AtomicUsize,
}

impl Clock {
    pub(crate) fn new(start_paused: bool) -> Clock {
        Clock {
            paused: AtomicBool::new(start_paused),
            frozen: Mutex::new(std::time::Instant::now()),
            offset_nanos: AtomicI64::new(0),
            inhibit: AtomicUsize::new(0),
        }
    }

    pub(crate) fn now(&self) -> std::time::Instant {
        // Acquire pairs with the Release in `pause`: a reader that sees the
        // flag also sees the frozen instant set before it.
        if self.paused.load(Ordering::Acquire) {
            *self.frozen.lock()
        } else {
            self.running_now()
        }
    }

    fn running_now(&self) -> std::time::Instant {
        let real = std::time::Instant::now();
        // Relaxed: published before `paused` is cleared (Release in
        // `resume`), which `now` loads with Acquire.
        let offset = self.offset_nanos.load(Ordering::Relaxed);
        let by = Duration::from_nanos(offset.unsigned_abs());
        if offset >= 0 {
            real + by
        } else {
            // Never before the instant frozen at the last `pause`, itself
            // a real instant or later.
            real.checked_sub(by).unwrap_or(real)
        }
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    /// Freezes the clock at the current instant.
    ///
    /// # Panics
    ///
    /// Panics if the clock is already paused.
    #[track_caller]
    pub(crate) fn pause(&self) {
        let mut frozen = self.frozen.lock();
        assert!(
            !self.paused.load(Ordering::Acquire),
            "time is already frozen: `wq::time::pause` called twice"
        );
        *frozen = self.running_now();
        self.paused.store(true, Ordering::Release);
    }

    /// Lets time run again, on from the frozen instant: what it was advanced
    /// by counts, the real time that passed while paused does not (as with
    /// tokio).
    ///
    /// # Panics
    ///
    /// Panics if the clock is not paused.
    #[track_caller]
    pub(crate) fn resume(&self) {
        let frozen = self.frozen.lock();
        assert!(
            self.paused.load(Ordering::Acquire),
            "time is not frozen: `wq::time::resume` called without `pause`"
        );
        let real = std::time::Instant::now();
        let nanos = |by: Duration| i64::try_from(by.as_nanos()).unwrap_or(i64::MAX);
        let offset = match frozen.checked_duration_since(real) {
            Some(ahead) => nanos(ahead),
            None => -nanos(real.duration_since(*frozen)),
        };
        self.offset_nanos.store(offset, Ordering::Relaxed);
        self.paused.store(false, Ordering::Release);
    }

    /// Moves the paused clock forward by `by`.
    ///
    /// # Panics
    ///
    /// Panics if the clock is not paused.
    #[track_caller]
    pub(crate) fn advance(&self, by: Duration) {
        let mut frozen = self.frozen.lock();
        assert!(
            self.paused.load(Ordering::Acquire),
            "time is not frozen: `wq::time::advance` needs `wq::time::pause` first"
        );
        *frozen += by;
    }

    /// Moves the paused clock forward to `to`, if that is later.
    pub(crate) fn advance_to(&self, to: std::time::Instant) {
        let mut frozen = self.frozen.lock();
        if self.paused.load(Ordering::Acquire) && to > *frozen {
            *frozen = to;
        }
    }

    /// One more thread must see time stand still.
    pub(crate) fn inhibit_add(&self) {
        self.inhibit.fetch_add(1, Ordering::SeqCst);
    }

    /// One thread fewer; returns whether none is left.
    pub(crate) fn inhibit_sub(&self) -> bool {
        self.inhibit.fetch_sub(1, Ordering::SeqCst) == 1
    }

    pub(crate) fn auto_advance_inhibited(&self) -> bool {
        self.inhibit.load(Ordering::SeqCst) != 0
    }
}
