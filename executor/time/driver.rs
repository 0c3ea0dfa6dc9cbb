//! The timer driver: sharded timer wheels, and the bookkeeping that lets an
//! idle worker sleep exactly until the next deadline.
//!
//! There is no timer thread. Workers process expired timers as part of their
//! loop (see `pool/README.md`, "Timers"): a running worker every few dozen
//! tasks and before it goes idle; and one idle worker at a time, the *timer
//! worker*, parks with a timeout equal to the next deadline. A timer
//! registered earlier than the deadline the timer worker sleeps until nudges
//! it awake, so it can shorten its sleep.
//!
//! Timers are sharded (one wheel per worker slot, chosen per thread) so that
//! registration rarely contends on one lock.
//!
//! When the runtime shuts down its workers are gone, and no timer would fire
//! again: `Driver::shutdown` marks the driver shut down, empties the wheels
//! and wakes every timer in them, and from then on refuses registrations.
//! A woken `Sleep` (or any polled later) finds the driver shut down and
//! panics, as tokio's timers do, instead of waiting forever.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::task::Waker;
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use super::clock::Clock;
use super::wheel::{Key, Wheel};

/// "No timer": the largest wheel time.
const NONE: u64 = u64::MAX;

/// `parked_until` when no worker sleeps on the timers.
const NOT_PARKED: u64 = 0;

/// Where a timer is registered.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TimerHandle {
    shard: usize,
    key: Key,
}

/// The driver's runtime has shut down: a timer registered now would never
/// fire (see `Driver::shutdown`).
#[derive(Debug)]
pub(crate) struct ShutDown;

/// The fields written while timers come and go (the counters, which the
/// timer worker also writes at every park and wakeup) sit on cache lines of
/// their own (`CachePadded`, which also aligns the whole driver, and so the
/// data after the `Arc`'s reference counts, which every `Sleep` changes, to
/// 128 bytes), apart from the read-mostly fields that every registration
/// and cancellation reads (`clock`, `shards`). Sharing lines, they made a
/// registration on one CPU miss in the cache after any write on another:
/// 64 tasks on 2 workers each creating, registering and dropping sleeps
/// took 280-350 ns a sleep before, 200-230 ns after.
pub(crate) struct Driver {
    clock: Clock,
    /// Set once, by `shutdown`, before it empties the shards: a
    /// registration that locks a shard after the shard was emptied sees it
    /// and is refused, so no timer is left in a wheel nobody drives.
    shut_down: AtomicBool,
    /// Wheel time 0.
    origin: Instant,
    /// One wheel per worker (a thread picks its shard at its first
    /// registration), each on cache lines of its own: unpadded, a shard's
    /// lock shared a line with the end of the previous shard's wheel, so a
    /// registration on one worker missed in the cache after every insert
    /// or removal on the other (`timeouts_64`, 64 tasks on 2 workers arming
    /// and dropping 30 s timeouts: 122-143 ns a timeout unpadded, 68-72 ns
    /// padded).
    shards: Box<[CachePadded<Mutex<Wheel<Waker>>>]>,
    /// A lower bound of the earliest deadline over all shards (wheel ms;
    /// `NONE` if there is none). Lowered by registrations, recomputed under
    /// `next_lock` by `process`, which looks at the shards a second time
    /// after publishing it (see there).
    next: CachePadded<AtomicU64>,
    next_lock: Mutex<()>,
    /// The deadline (wheel ms) the timer worker sleeps until: `NONE` if it
    /// sleeps with no timer pending, `NOT_PARKED` if it does not sleep.
    parked_until: CachePadded<AtomicU64>,
    /// Held by the idle worker that drives the timers.
    timer_worker: CachePadded<AtomicBool>,
    /// Wakes the timer worker (installed by the pool).
    nudge: OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// Called after a registration while no worker holds the timer role
    /// (installed by the pool: it checks whether any worker can fire it).
    unowned: OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// Timers fired (for metrics).
    fired: CachePadded<AtomicU64>,
}

thread_local! {
    /// The shard this thread registers its timers in.
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };

    /// A worker thread's own reference to its pool's driver, which the
    /// timers it creates clone (`DriverRef::current`).
    static WORKER_DRIVER: std::cell::RefCell<Option<Arc<DriverRef>>> =
        const { std::cell::RefCell::new(None) };
}

/// A reference to a driver, as a timer holds it. Each worker thread has one
/// of its own, which its timers clone: the reference count they change is
/// then on a cache line that stays with that worker's CPU, where a count on
/// the driver itself would move between the CPUs at every timer created or
/// dropped on a busy runtime (a hyper server creates and drops one per
/// request). Other threads make one per timer. Measured on 2 workers, 64
/// tasks each creating, polling and dropping sleeps: hyper's sleeps 204 to
/// 160 ns, wq's 218 to 192 ns (6 alternating runs each).
#[derive(Debug)]
pub(crate) struct DriverRef {
    driver: Arc<Driver>,
}

impl std::ops::Deref for DriverRef {
    type Target = Driver;

    fn deref(&self) -> &Driver {
        &self.driver
    }
}

impl DriverRef {
    /// A reference to `driver` for a timer created on this thread: a clone
    /// of this worker thread's own if it works for `driver`, else a new one.
    pub(crate) fn current(driver: &Arc<Driver>) -> Arc<DriverRef> {
        WORKER_DRIVER.with(|own| match &*own.borrow() {
            Some(own) if Arc::ptr_eq(&own.driver, driver) => own.clone(),
            _ => Arc::new(DriverRef {
                driver: driver.clone(),
            }),
        })
    }

    /// Makes this thread a worker of `driver`'s runtime, until the guard
    /// drops (the thread's reference then goes with it).
    pub(crate) fn enter_worker(driver: &Arc<Driver>) -> WorkerDriverGuard {
        let previous = WORKER_DRIVER.with(|own| {
            own.replace(Some(Arc::new(DriverRef {
                driver: driver.clone(),
            })))
        });
        WorkerDriverGuard { previous }
    }
}

/// Restores the thread's previous driver reference (see
/// `DriverRef::enter_worker`).
pub(crate) struct WorkerDriverGuard {
    previous: Option<Arc<DriverRef>>,
}

impl Drop for WorkerDriverGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        // Dropped outside the borrow: it may be the driver's last reference.
        let _own = WORKER_DRIVER.with(|own| own.replace(previous));
    }
}

impl Driver {
    pub(crate) fn new(shards: usize, start_paused: bool) -> Driver {
        let clock = Clock::new(start_paused);
        let origin = clock.now();
        Driver {
            clock,
            shut_down: AtomicBool::new(false),
            origin,
            shards: (0..shards.max(1))
                .map(|_| CachePadded::new(Mutex::new(Wheel::new())))
                .collect(),
            next: CachePadded::new(AtomicU64::new(NONE)),
            next_lock: Mutex::new(()),
            parked_until: CachePadded::new(AtomicU64::new(NOT_PARKED)),
            timer_worker: CachePadded::new(AtomicBool::new(false)),
            nudge: OnceLock::new(),
            unowned: OnceLock::new(),
            fired: CachePadded::new(AtomicU64::new(0)),
        }
    }

    pub(crate) fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Installs the function that wakes the timer worker.
    pub(crate) fn set_nudge(&self, nudge: Box<dyn Fn() + Send + Sync>) {
        let _ = self.nudge.set(nudge);
    }

    /// Installs the function called after a registration while no worker
    /// holds the timer role.
    pub(crate) fn set_unowned(&self, unowned: Box<dyn Fn() + Send + Sync>) {
        let _ = self.unowned.set(unowned);
    }

    /// Wheel time of `deadline`, rounded up so that a timer never fires
    /// before its deadline.
    fn deadline_ms(&self, deadline: Instant) -> u64 {
        let since = deadline.saturating_duration_since(self.origin);
        // In u64: a u128 division is a library call, on every registration.
        since
            .as_secs()
            .saturating_mul(1_000)
            .saturating_add(u64::from(since.subsec_nanos().div_ceil(1_000_000)))
            .min(NONE - 1)
    }

    /// Wheel time now, rounded down.
    fn now_ms(&self) -> u64 {
        let since = self.clock.now().saturating_duration_since(self.origin);
        u64::try_from(since.as_millis()).unwrap_or(NONE - 1)
    }

    fn instant_of(&self, ms: u64) -> Instant {
        self.origin + Duration::from_millis(ms)
    }

    fn shard(&self) -> usize {
        SHARD.with(|shard| {
            let mut index = shard.get();
            if index == usize::MAX {
                static NEXT: AtomicUsize = AtomicUsize::new(0);
                index = NEXT.fetch_add(1, SeqCst);
                shard.set(index);
            }
            index % self.shards.len()
        })
    }

    /// Registers a timer that wakes `waker` at `deadline`; refused once
    /// the driver has shut down.
    pub(crate) fn register(
        &self,
        deadline: Instant,
        waker: &Waker,
    ) -> Result<TimerHandle, ShutDown> {
        let ms = self.deadline_ms(deadline);
        let shard = self.shard();
        let key = {
            let mut wheel = self.shards[shard].lock();
            // Under the shard's lock: `shutdown` sets the flag before it
            // empties this shard under the same lock, so either it finds our
            // entry there or we see the flag.
            if self.shut_down.load(SeqCst) {
                return Err(ShutDown);
            }
            wheel.insert(ms, waker.clone())
        };
        if ms < self.next.load(SeqCst) {
            let _next = self.next_lock.lock();
            if ms < self.next.load(SeqCst) {
                self.next.store(ms, SeqCst);
            }
        }
        // Pairs with the timer worker's store of `parked_until` followed by
        // its load of `next` (both SeqCst): either it sees our deadline when
        // it computes its sleep, or we see its sleep and nudge it.
        if ms < self.parked_until.load(SeqCst) {
            self.nudge();
        } else if !self.timer_worker.load(SeqCst) {
            // No idle worker sleeps on the timers: fine while workers run
            // (they fire due timers), not if every one is blocked. Pairs
            // with a blocking worker's decrement, fence and
            // `needs_timer_worker` (either it sees this timer, or the hook
            // sees it blocked).
            if let Some(unowned) = self.unowned.get() {
                unowned();
            }
        }
        Ok(TimerHandle { shard, key })
    }

    /// Replaces the waker of a registered timer. Returns false if the timer
    /// has fired (or was cancelled, or the driver shut down) meanwhile: only
    /// then is its entry gone. After a false, `is_shut_down` tells a
    /// shutdown from a fire: the shard's lock taken here orders the flag's
    /// store before the entry's removal.
    pub(crate) fn update_waker(&self, handle: TimerHandle, waker: &Waker) -> bool {
        let mut wheel = self.shards[handle.shard].lock();
        match wheel.get_mut(handle.key) {
            Some(stored) => {
                if !stored.will_wake(waker) {
                    stored.clone_from(waker);
                }
                true
            }
            None => false,
        }
    }

    /// Cancels a timer, freeing its entry. A no-op if it fired already.
    pub(crate) fn cancel(&self, handle: TimerHandle) {
        // Dropped outside the lock.
        drop(self.take(handle));
    }

    /// Removes a timer's entry and returns its waker: `None` if it fired
    /// (or the driver shut down) already, having woken it.
    pub(crate) fn take(&self, handle: TimerHandle) -> Option<Waker> {
        self.shards[handle.shard].lock().remove(handle.key)
    }

    /// Fires every timer whose deadline has passed. Returns how many fired.
    /// Cheap when nothing is due: one atomic load and a clock read.
    pub(crate) fn process(&self) -> usize {
        let now = self.now_ms();
        if self.next.load(SeqCst) > now {
            return 0;
        }
        let mut expired = Vec::new();
        {
            let _next = self.next_lock.lock();
            let mut next = NONE;
            for shard in self.shards.iter() {
                let mut wheel = shard.lock();
                wheel.poll(now, &mut expired);
                if let Some(at) = wheel.next_expiration() {
                    next = next.min(at);
                }
            }
            self.next.store(next, SeqCst);
            // A second look. A registration compares its deadline with
            // `next` after inserting, and leaves `next` alone if it is not
            // lower: while we scanned, `next` still held the old, due
            // deadline, so a timer inserted into a shard we had already
            // scanned was left to us, and the store above missed it (the
            // timer worker would then sleep past its deadline). One that
            // inserts after this look locked its shard reads the `next`
            // stored above or later, and lowers it itself if it must.
            let again = self.earliest_in_wheels();
            if again < next {
                self.next.store(again, SeqCst);
                // The timer worker may have computed its sleep from the
                // store above: as a registration would, nudge it if it
                // sleeps past the lowered deadline (the SeqCst store and
                // load pair with its store of `parked_until` and load of
                // `next` in `park_timeout`).
                if again < self.parked_until.load(SeqCst) {
                    self.nudge();
                }
            }
        }
        let n = expired.len();
        self.fired.fetch_add(n as u64, SeqCst);
        for waker in expired {
            waker.wake();
        }
        n
    }

    /// The runtime shuts down (its workers have exited): no timer will
    /// fire any more. Marks the driver shut down, so that registrations are
    /// refused from now on, then empties every shard and wakes the timers it
    /// held, whose owners find the driver shut down when polled. A timer's
    /// cancellation (`cancel`) still works: its entry is merely gone.
    pub(crate) fn shutdown(&self) {
        // Before the shards are locked below (see `register`).
        self.shut_down.store(true, SeqCst);
        let mut woken = Vec::new();
        {
            let _next = self.next_lock.lock();
            for shard in self.shards.iter() {
                shard.lock().poll(u64::MAX, &mut woken);
            }
            self.next.store(NONE, SeqCst);
        }
        // Woken outside the locks, as in `process`.
        for waker in woken {
            waker.wake();
        }
    }

    /// Whether the runtime has shut down (see `shutdown`).
    pub(crate) fn is_shut_down(&self) -> bool {
        self.shut_down.load(SeqCst)
    }

    /// The instant of the earliest pending timer (a lower bound), if any.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        match self.next.load(SeqCst) {
            NONE => None,
            ms => Some(self.instant_of(ms)),
        }
    }

    /// How long the timer worker may sleep: until the next deadline, at most
    /// `limit`. Records the deadline so that an earlier registration nudges
    /// it. `None` means "no timer": sleep up to `limit`.
    pub(crate) fn park_timeout(&self, limit: Duration) -> Option<Duration> {
        let mut next = self.next.load(SeqCst);
        loop {
            self.parked_until.store(next, SeqCst);
            // Re-read after publishing (see `register`): a registration that
            // lowered `next` before our store is seen here; one after it sees
            // our `parked_until` and nudges us.
            let again = self.next.load(SeqCst);
            if again == next {
                break;
            }
            next = again;
        }
        if next == NONE {
            return None;
        }
        let now = self.clock.now();
        let wait = self.instant_of(next).saturating_duration_since(now);
        Some(wait.min(limit))
    }

    /// The timer worker stopped sleeping on the timers.
    pub(crate) fn unparked(&self) {
        self.parked_until.store(NOT_PARKED, SeqCst);
    }

    /// Takes the timer worker role; false if another worker holds it.
    pub(crate) fn try_become_timer_worker(&self) -> bool {
        !self.timer_worker.swap(true, SeqCst)
    }

    pub(crate) fn release_timer_worker(&self) {
        self.unparked();
        self.timer_worker.store(false, SeqCst);
    }

    /// The earliest expiration the wheels hold (`NONE` if none), each
    /// shard locked in turn.
    fn earliest_in_wheels(&self) -> u64 {
        self.shards
            .iter()
            .filter_map(|shard| shard.lock().next_expiration())
            .min()
            .unwrap_or(NONE)
    }

    /// With the clock paused and the runtime idle: jump to the next deadline
    /// and fire what is due. Returns how many timers fired.
    pub(crate) fn auto_advance(&self) -> usize {
        if !self.clock.is_paused() || self.clock.auto_advance_inhibited() {
            return 0;
        }
        // `next` may still hold the deadline of a timer since cancelled
        // (`cancel` leaves it, a wakeup too early being harmless): read the
        // wheels, so that the clock never jumps to a deadline nobody waits
        // for. A second look, as in `process`, for a timer registered into
        // a shard already read.
        {
            let _next = self.next_lock.lock();
            let next = self.earliest_in_wheels();
            self.next.store(next, SeqCst);
            let again = self.earliest_in_wheels();
            if again < next {
                self.next.store(again, SeqCst);
            }
        }
        // `next` is a lower bound (a higher wheel level reports its slot's
        // start): advancing to it may only cascade timers down, firing none.
        // Each round makes it more precise; at most one round per level.
        while let Some(at) = self.next_deadline() {
            self.clock.advance_to(at);
            let fired = self.process();
            if fired > 0 {
                return fired;
            }
        }
        0
    }

    /// Whether an idle worker holds the timer role.
    pub(crate) fn has_timer_worker(&self) -> bool {
        self.timer_worker.load(SeqCst)
    }

    /// Whether timers are pending while no idle worker sleeps on them.
    pub(crate) fn needs_timer_worker(&self) -> bool {
        self.next.load(SeqCst) != NONE && !self.timer_worker.load(SeqCst)
    }

    /// Wakes the timer worker so that it re-examines its timers (and, with a
    /// paused clock, whether it may auto-advance).
    pub(crate) fn nudge(&self) {
        if let Some(nudge) = self.nudge.get() {
            nudge();
        }
    }

    /// A thread starts doing something during which a paused clock must
    /// not auto-advance (polling a `block_on` future, a blocking closure).
    pub(crate) fn inhibit_add(&self) {
        self.clock.inhibit_add();
    }

    /// The inhibiting work is over; the timer worker may auto-advance.
    pub(crate) fn inhibit_sub(&self) {
        if self.clock.inhibit_sub() && self.clock.is_paused() {
            self.nudge();
        }
    }

    /// Timers registered and not yet fired or cancelled.
    pub(crate) fn pending(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    pub(crate) fn fired_total(&self) -> u64 {
        self.fired.load(SeqCst)
    }
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("clock", &self.clock)
            .field("next", &self.next_deadline())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::task::Waker;

    /// Spins until `done`, yielding now and then (the test suite may run
    /// more threads than there are CPUs).
    fn wait_until(done: impl Fn() -> bool) {
        let mut spins = 0u32;
        while !done() {
            spins += 1;
            if spins.is_multiple_of(64) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }

    /// Shutdown wakes every registered timer once and empties the wheels;
    /// later registrations are refused, and cancelling a timer that was
    /// registered before still works.
    #[test]
    fn shutdown_wakes_every_timer_and_refuses_new_ones() {
        struct Count(AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, SeqCst);
            }
        }
        let driver = Driver::new(4, false);
        let woken = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(woken.clone());
        let now = driver.clock().now();
        let handles: Vec<_> = [0, 5, 3_600_000, u64::from(u32::MAX)]
            .into_iter()
            .map(|ms| {
                driver
                    .register(now + Duration::from_millis(ms), &waker)
                    .unwrap()
            })
            .collect();
        assert!(!driver.is_shut_down());
        driver.shutdown();
        assert!(driver.is_shut_down());
        assert_eq!(woken.0.load(SeqCst), 4);
        assert_eq!(driver.pending(), 0);
        assert_eq!(driver.next_deadline(), None);
        assert!(driver.register(now, &waker).is_err());
        for handle in handles {
            assert!(!driver.update_waker(handle, &waker));
            driver.cancel(handle);
        }
        assert_eq!(woken.0.load(SeqCst), 4);
        assert_eq!(driver.fired_total(), 0);
    }

    /// `next` stays a lower bound of every pending deadline when a timer
    /// is registered while `process` fires due ones on another thread: a
    /// registration that lands in a shard `process` has already scanned,
    /// before it publishes the new `next`, must not be left out of it (the
    /// timer worker would sleep past the deadline, or for good).
    #[test]
    fn next_stays_a_lower_bound_while_process_races_a_registration() {
        const ROUNDS: usize = 20_000;
        // Many shards: the scan takes long enough for registrations to
        // land in shards it has passed.
        let driver = Arc::new(Driver::new(64, false));
        // Spin-waited rounds, so that both sides start together (a
        // blocking barrier wakes its sleeper tens of microseconds late).
        let started = Arc::new(AtomicUsize::new(0));
        let processed = Arc::new(AtomicUsize::new(0));
        let processor = {
            let (driver, started, processed) = (driver.clone(), started.clone(), processed.clone());
            std::thread::spawn(move || {
                for round in 1..=ROUNDS {
                    wait_until(|| started.load(SeqCst) == round);
                    driver.process();
                    processed.store(round, SeqCst);
                }
            })
        };
        let mut violations = 0;
        for round in 1..=ROUNDS {
            // Due at once (wheel time 0): `process` has work and rescans.
            let _due = driver.register(driver.origin, Waker::noop()).unwrap();
            started.store(round, SeqCst);
            // A few registrations in a row, to overlap the scan.
            let base = driver.clock().now() + Duration::from_secs(3600);
            let far: Vec<_> = (0..16u64)
                .map(|i| {
                    let deadline = base + Duration::from_secs(16 - i);
                    (driver.register(deadline, Waker::noop()).unwrap(), deadline)
                })
                .collect();
            wait_until(|| processed.load(SeqCst) == round);
            // In wheel time: `deadline_ms` rounds up.
            let earliest = far.iter().map(|&(_, d)| driver.deadline_ms(d)).min();
            if Some(driver.next.load(SeqCst)) > earliest {
                violations += 1;
            }
            for (handle, _) in far {
                driver.cancel(handle);
            }
        }
        processor.join().unwrap();
        assert_eq!(
            violations, 0,
            "{violations} of {ROUNDS} rounds left a registration out of `next`"
        );
    }
}
