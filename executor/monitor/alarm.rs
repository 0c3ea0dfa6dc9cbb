//! The monitor thread's sleep: an alarm that any thread may set, push back
//! or fire, without waking the sleeper unless it fires.
//!
//! While workers run short polls they tick for the monitor (see `mod.rs`)
//! and push its alarm back whenever it comes due soon, so the monitor
//! thread sleeps through a busy runtime instead of waking thousands of
//! times a second; it wakes only if the workers stop ticking (every
//! running worker stuck at once), or when someone calls [`Alarm::wake`].
//!
//! On Linux the alarm is a `timerfd`: setting it is one syscall (about
//! 0.6 us, 2.5 us when it becomes the CPU's earliest timer and the timer
//! hardware is reprogrammed, as measured on a 2-vCPU KVM guest), and moving
//! a deadline never wakes the thread blocked in `read`. Elsewhere, and
//! under loom, it is a deadline under a mutex with a condition variable:
//! the same semantics, but a pushed-back deadline still wakes the sleeper
//! at the old one, to find the new one.
//!
//! # Not losing a wake
//!
//! Setting a timerfd replaces whatever it held, a pending expiry included,
//! so a [`set`](Alarm::set) racing a [`wake`](Alarm::wake) could erase the
//! wake. Hence the `woken` flag, and the same publish-then-look pattern as
//! the pool's (both SeqCst):
//!
//! - `wake`: store `woken`, then fire the timer;
//! - `set`: set the timer, then load `woken`, and fire it if set;
//! - `wait`: block until the timer fires, then clear `woken` (a swap)
//!   before the caller looks at why it was woken.
//!
//! If `set` loads `woken` as false, the waker's store, and so its firing,
//! come after the load and thus after `set`'s own setting: the firing is
//! last. If `wait` clears a `woken` the waker has not stored yet, the
//! waker's firing is still to come, or, if a `set` erased it, that `set`
//! sees the flag and fires again. The loom model below checks it.
//!
//! # Wakes that can be taken back
//!
//! While the monitor sleeps without a deadline ([`Alarm::wait_deep`]), a
//! worker that starts running does not wake it at once but asks for a
//! lazy wake ([`Alarm::wake_soon`], a token: `LAZY_LOOK` in `mod.rs`),
//! brings it forward to one tick period after it asked
//! ([`Alarm::hurry`]) once a task is queued during the run, and takes it
//! back ([`Alarm::cancel_soon`]) if it goes idle before it comes, its
//! polls all short: a task that wakes now and then costs no monitor
//! wakeup (`pool/README.md`, "The observer", has the pool's side). The
//! deadlines so asked for are kept apart from the monitor's own (the last
//! `set`), under a lock, and the timer holds the earliest of them all; a
//! hurry or a cancel changes only its own token's, and a hurry after the
//! cancel does nothing. Outside a deep wait, `wake_soon` wakes at once, as
//! `wake` does. Every change of the timer is followed by the look at
//! `woken` above.

use std::time::{Duration, Instant};

use crate::loom::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use crate::loom::Mutex;

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct Alarm {
    timer: Timer,
    /// A wake is pending: set by `wake`, cleared by `wait` once it returned.
    woken: AtomicBool,
    /// The deadlines the timer serves (see "Wakes that can be taken back").
    deadlines: Mutex<Deadlines>,
    /// The last token `wake_soon` handed out.
    tokens: AtomicU64,
}

/// What the timer is set for: the earliest of these.
#[derive(Debug, Default)]
struct Deadlines {
    /// The monitor's own (`set`), or the dead man's time a worker's tick
    /// pushed it to.
    own: Option<Instant>,
    /// The monitor sleeps without a deadline (`wait_deep`).
    deep: bool,
    /// Wakes asked for by workers during this deep wait.
    soon: Vec<Soon>,
}

/// A wake asked for by `wake_soon`.
#[derive(Debug)]
struct Soon {
    token: u64,
    /// When it was asked for.
    asked: Instant,
    /// When it is due.
    at: Instant,
}

impl Deadlines {
    fn earliest(&self) -> Option<Instant> {
        self.soon.iter().map(|soon| soon.at).chain(self.own).min()
    }
}

impl Alarm {
    pub(crate) fn new() -> std::io::Result<Alarm> {
        Ok(Alarm {
            timer: Timer::new()?,
            woken: AtomicBool::new(false),
            deadlines: Mutex::new(Deadlines::default()),
            tokens: AtomicU64::new(0),
        })
    }

    /// Makes `wait` return `after` from now (`None`: only on a wake),
    /// replacing whatever deadline was set. A pending wake is kept, and so
    /// is a wake asked for by `wake_soon` and not taken back.
    pub(crate) fn set(&self, after: Option<Duration>) {
        let now = Instant::now();
        let mut deadlines = self.deadlines.lock();
        deadlines.own = after.map(|after| now + after);
        self.program(&deadlines, now);
    }

    /// Makes sure `wait` does not return for lack of a deadline within
    /// `at_least` from now: if the deadline set is sooner (or there is
    /// none), sets it to `push_to` from now; otherwise leaves the timer
    /// alone, with no syscall. Moving a timerfd's deadline later every
    /// time costs twice: the new deadline often becomes the CPU's earliest
    /// timer, and the timer hardware is reprogrammed (on a virtual machine,
    /// an exit to the hypervisor), and the CPU that held the old deadline
    /// still takes an interrupt at it, for nothing.
    pub(crate) fn push_back(&self, at_least: Duration, push_to: Duration) {
        let now = Instant::now();
        let mut deadlines = self.deadlines.lock();
        if deadlines.own.is_some_and(|own| own >= now + at_least) {
            return;
        }
        deadlines.own = Some(now + push_to);
        self.program(&deadlines, now);
    }

    /// The monitor's own deadline (the last `set` or `push_back`).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn own_deadline(&self) -> Option<Instant> {
        self.deadlines.lock().own
    }

    /// Sets the timer for the earliest deadline, then looks at `woken`
    /// (module documentation). Under the deadlines' lock, so that two
    /// threads cannot leave the timer set for a stale earliest deadline.
    fn program(&self, deadlines: &Deadlines, now: Instant) {
        let after = deadlines
            .earliest()
            .map(|at| at.saturating_duration_since(now));
        self.timer.set(after);
        if self.woken.load(SeqCst) {
            self.timer.set(Some(Duration::ZERO));
        }
    }

    /// During a deep wait, makes `wait_deep` return `after` from now (or
    /// sooner, see `hurry`) unless taken back with `cancel_soon(token)`;
    /// returns the token. Outside a deep wait, wakes at once, as `wake`,
    /// and returns `None`.
    pub(crate) fn wake_soon(&self, after: Duration) -> Option<u64> {
        let now = Instant::now();
        let mut deadlines = self.deadlines.lock();
        if !deadlines.deep {
            drop(deadlines);
            self.wake();
            return None;
        }
        let token = self.tokens.fetch_add(1, SeqCst) + 1;
        deadlines.soon.push(Soon {
            token,
            asked: now,
            at: now + after,
        });
        self.program(&deadlines, now);
        Some(token)
    }

    /// Brings the wake `wake_soon` returned `token` for forward to `after`
    /// from when it was asked for, if it is still pending and due later
    /// than that.
    pub(crate) fn hurry(&self, token: u64, after: Duration) {
        let mut deadlines = self.deadlines.lock();
        let Some(soon) = deadlines.soon.iter_mut().find(|soon| soon.token == token) else {
            return;
        };
        let at = soon.asked + after;
        if soon.at <= at {
            return;
        }
        soon.at = at;
        self.program(&deadlines, Instant::now());
    }

    /// Takes back the wake `wake_soon` returned `token` for, if it has not
    /// happened yet; other wakes, pending or asked for, stay.
    pub(crate) fn cancel_soon(&self, token: u64) {
        let mut deadlines = self.deadlines.lock();
        let before = deadlines.soon.len();
        deadlines.soon.retain(|soon| soon.token != token);
        if deadlines.soon.len() != before {
            self.program(&deadlines, Instant::now());
        }
    }

    /// `wait` for a sleep without a deadline of its own (the caller set
    /// none): wakes asked for by `wake_soon` meanwhile are kept apart, and
    /// forgotten once it returns (the caller looks at everything then).
    pub(crate) fn wait_deep(&self) -> bool {
        self.deadlines.lock().deep = true;
        let woken = self.wait();
        let mut deadlines = self.deadlines.lock();
        deadlines.deep = false;
        let soon = !deadlines.soon.is_empty();
        deadlines.soon.clear();
        woken || soon
    }

    /// Makes `wait` return now, or at once if it is not waiting. Whatever
    /// the caller published before is seen by the waiter once it returns.
    pub(crate) fn wake(&self) {
        self.woken.store(true, SeqCst);
        self.timer.set(Some(Duration::ZERO));
    }

    /// Blocks until the deadline passes or a wake; returns whether it was
    /// woken (rather than timed out, or both).
    pub(crate) fn wait(&self) -> bool {
        self.timer.wait();
        self.woken.swap(false, SeqCst)
    }
}

#[cfg(all(target_os = "linux", not(loom)))]
use linux::Timer;
#[cfg(not(all(target_os = "linux", not(loom))))]
use portable::Timer;

#[cfg(all(target_os = "linux", not(loom)))]
mod linux {
    use std::io;
    use std::os::fd::OwnedFd;
    use std::time::Duration;

    use rustix::time::{
        timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags,
        TimerfdTimerFlags, Timespec,
    };

    /// A monotonic timerfd.
    #[derive(Debug)]
    pub(super) struct Timer {
        fd: OwnedFd,
    }

    impl Timer {
        pub(super) fn new() -> io::Result<Timer> {
            let fd = timerfd_create(TimerfdClockId::Monotonic, TimerfdFlags::CLOEXEC)?;
            Ok(Timer { fd })
        }

        pub(super) fn set(&self, after: Option<Duration>) {
            let value = match after {
                // A zero value would disarm the timerfd: the shortest
                // expiry fires "now".
                Some(after) if after.is_zero() => Timespec {
                    tv_sec: 0,
                    tv_nsec: 1,
                },
                Some(after) => Timespec {
                    tv_sec: after.as_secs().try_into().unwrap_or(i64::MAX),
                    tv_nsec: after.subsec_nanos().into(),
                },
                None => Timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
            };
            let spec = Itimerspec {
                it_interval: Timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: value,
            };
            // Fails only on a bad descriptor or value, neither possible here.
            let _ = timerfd_settime(&self.fd, TimerfdTimerFlags::empty(), &spec);
        }

        pub(super) fn wait(&self) {
            let mut expirations = [0u8; 8];
            loop {
                match rustix::io::read(&self.fd, &mut expirations) {
                    Ok(_) => return,
                    Err(rustix::io::Errno::INTR) => continue,
                    // Not expected; returning makes the monitor look at its
                    // state again instead of sleeping forever.
                    Err(_) => return,
                }
            }
        }
    }
}

#[cfg_attr(all(target_os = "linux", not(loom)), allow(dead_code))]
mod portable {
    use std::time::Duration;

    use crate::loom::{Condvar, Mutex};

    /// A deadline under a mutex, with a condition variable.
    #[derive(Debug)]
    pub(super) struct Timer {
        state: Mutex<State>,
        changed: Condvar,
    }

    #[derive(Debug, Default)]
    struct State {
        /// When `wait` returns; `None`: only once fired.
        deadline: Option<std::time::Instant>,
        /// Set to fire now.
        fired: bool,
    }

    impl Timer {
        pub(super) fn new() -> std::io::Result<Timer> {
            Ok(Timer {
                state: Mutex::new(State::default()),
                changed: Condvar::new(),
            })
        }

        /// As a timerfd: replaces the deadline and any pending firing.
        pub(super) fn set(&self, after: Option<Duration>) {
            let mut state = self.state.lock();
            let sooner = match after {
                Some(after) if after.is_zero() => {
                    state.fired = true;
                    state.deadline = None;
                    true
                }
                _ => {
                    let deadline = after.map(|after| std::time::Instant::now() + after);
                    let sooner = match (deadline, state.deadline) {
                        (Some(new), Some(old)) => new < old,
                        (Some(_), None) => true,
                        (None, _) => false,
                    };
                    state.fired = false;
                    state.deadline = deadline;
                    sooner
                }
            };
            drop(state);
            // A later deadline needs no notification: the waiter wakes at
            // the earlier one and finds the new one. Under loom, always:
            // whether a deadline is sooner depends on the real clock, which
            // a model must not branch on.
            if sooner || cfg!(loom) {
                self.changed.notify_one();
            }
        }

        pub(super) fn wait(&self) {
            let mut state = self.state.lock();
            loop {
                if std::mem::take(&mut state.fired) {
                    return;
                }
                match state.deadline {
                    None => state = self.changed.wait(state),
                    Some(deadline) => {
                        let now = std::time::Instant::now();
                        if now >= deadline {
                            state.deadline = None;
                            return;
                        }
                        // Under loom a timed wait never times out: a
                        // deadline in the future never passes, the worst
                        // case for the wake protocol.
                        state = self.changed.wait_timeout(state, deadline - now).0;
                    }
                }
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn a_deadline_fires_and_a_pushed_one_fires_later() {
        let alarm = Alarm::new().unwrap();
        let start = Instant::now();
        alarm.set(Some(Duration::from_millis(20)));
        alarm.set(Some(Duration::from_millis(60)));
        assert!(!alarm.wait());
        assert!(start.elapsed() >= Duration::from_millis(60));
    }

    #[test]
    fn a_push_back_moves_only_a_deadline_due_too_soon() {
        let alarm = Alarm::new().unwrap();
        let start = Instant::now();
        // No deadline: the push sets one.
        alarm.push_back(Duration::from_millis(20), Duration::from_millis(40));
        let set = alarm.own_deadline().expect("the push set a deadline");
        assert!(set >= start + Duration::from_millis(40));
        // Due in about 40 ms, not within 20 (unless this thread slept
        // 20 ms since): left alone.
        alarm.push_back(Duration::from_millis(20), Duration::from_millis(300));
        if Instant::now() < start + Duration::from_millis(20) {
            assert_eq!(alarm.own_deadline(), Some(set));
        }
        assert!(!alarm.wait());
        let fired = start.elapsed();
        assert!(fired >= Duration::from_millis(40), "fired after {fired:?}");
        // Due within 80 ms (in 20): moved to 100 ms from now.
        alarm.set(Some(Duration::from_millis(20)));
        let pushed = Instant::now();
        alarm.push_back(Duration::from_millis(80), Duration::from_millis(100));
        assert!(alarm.own_deadline() >= Some(pushed + Duration::from_millis(100)));
        assert!(!alarm.wait());
        let fired = pushed.elapsed();
        assert!(fired >= Duration::from_millis(100), "fired after {fired:?}");
    }

    /// A lazy wake asked for during a deep wait is brought forward by
    /// `hurry` to the given time after it was asked for, never later, and
    /// not once taken back; the deep wait then ends at the hurried time.
    #[test]
    fn a_hurried_wake_comes_sooner_and_a_taken_back_one_not_at_all() {
        let alarm = Arc::new(Alarm::new().unwrap());
        alarm.set(None);
        alarm.deadlines.lock().deep = true;
        let asked = Instant::now();
        let token = alarm.wake_soon(Duration::from_secs(3600)).unwrap();
        let due = |token| {
            let deadlines = alarm.deadlines.lock();
            deadlines
                .soon
                .iter()
                .find(|s| s.token == token)
                .map(|s| s.at)
        };
        assert!(due(token) >= Some(asked + Duration::from_secs(3600)));
        alarm.hurry(token, Duration::from_millis(30));
        let hurried = due(token).expect("still asked for");
        assert!(hurried >= asked + Duration::from_millis(30));
        assert!(hurried < asked + Duration::from_secs(1));
        // Never later.
        alarm.hurry(token, Duration::from_secs(60));
        assert_eq!(due(token), Some(hurried));
        // Taken back: a hurry does not bring it back.
        let other = alarm.wake_soon(Duration::from_secs(3600)).unwrap();
        alarm.cancel_soon(other);
        alarm.hurry(other, Duration::ZERO);
        assert_eq!(due(other), None);
        assert!(alarm.wait_deep());
        assert!(asked.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn a_wake_survives_a_later_set() {
        let alarm = Alarm::new().unwrap();
        alarm.wake();
        alarm.set(Some(Duration::from_secs(3600)));
        alarm.set(None);
        assert!(alarm.wait());
    }

    #[test]
    fn a_wake_from_another_thread_ends_an_unbounded_wait() {
        let alarm = Arc::new(Alarm::new().unwrap());
        alarm.set(None);
        let waker = {
            let alarm = alarm.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                alarm.wake();
            })
        };
        assert!(alarm.wait());
        waker.join().unwrap();
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::atomic::AtomicBool;
    use loom::sync::Arc;
    use loom::thread;

    /// A waker publishes something and wakes the waiting monitor while a
    /// worker pushes the alarm back (a deadline that, under loom, never
    /// passes) and the monitor itself sets its next deadline between two
    /// waits. The monitor must see what was published without relying on a
    /// deadline: if the wake were erased by a `set`, loom reports the
    /// monitor blocked forever (it does if `set` skips its look at
    /// `woken`).
    #[test]
    fn loom_alarm_wake_not_lost() {
        loom::model(|| {
            let alarm = Arc::new(Alarm::new().unwrap());
            let published = Arc::new(AtomicBool::new(false));
            alarm.set(Some(Duration::from_secs(1)));
            let waker = {
                let (alarm, published) = (alarm.clone(), published.clone());
                thread::spawn(move || {
                    published.store(true, SeqCst);
                    alarm.wake();
                })
            };
            let pusher = {
                let alarm = alarm.clone();
                thread::spawn(move || alarm.set(Some(Duration::from_secs(1))))
            };
            loop {
                alarm.wait();
                if published.load(SeqCst) {
                    break;
                }
                alarm.set(Some(Duration::from_secs(1)));
            }
            waker.join().unwrap();
            pusher.join().unwrap();
        });
    }

    use crate::pool::LAZY;

    /// A pool's side of "Wakes that can be taken back", as in
    /// `Shared::wake_polls_observer`, `Shared::hurry_polls_observer` and
    /// `Shared::take_back_polls_observer_wake`.
    struct PoolSide {
        nr_running: loom::sync::atomic::AtomicUsize,
        asleep: AtomicBool,
        soon: loom::sync::atomic::AtomicU64,
    }

    impl PoolSide {
        fn new() -> PoolSide {
            PoolSide {
                nr_running: loom::sync::atomic::AtomicUsize::new(0),
                asleep: AtomicBool::new(false),
                soon: loom::sync::atomic::AtomicU64::new(0),
            }
        }

        /// A worker starts running (counted first, as a kick counts it).
        fn start(&self, alarm: &Alarm) {
            self.nr_running.fetch_add(1, SeqCst);
            crate::loom::atomic::fence(SeqCst);
            if self.asleep.load(SeqCst) && self.asleep.swap(false, SeqCst) {
                // A deadline that never passes while the model runs.
                if let Some(token) = alarm.wake_soon(Duration::from_secs(3600)) {
                    self.soon.store(token | LAZY, SeqCst);
                }
            }
        }

        /// A task is queued: a lazy wake pending is brought forward, once.
        fn queued(&self, alarm: &Alarm) {
            let soon = self.soon.load(SeqCst);
            if soon & LAZY != 0
                && self
                    .soon
                    .compare_exchange(soon, soon & !LAZY, SeqCst, SeqCst)
                    .is_ok()
            {
                alarm.hurry(soon & !LAZY, Duration::from_secs(1800));
            }
        }

        /// The observer's `observer_may_sleep` (no starvation here).
        fn may_sleep(&self) -> bool {
            self.asleep.store(true, SeqCst);
            crate::loom::atomic::fence(SeqCst);
            if self.nr_running.load(SeqCst) > 0 {
                self.asleep.store(false, SeqCst);
                return false;
            }
            true
        }

        /// A worker goes idle, then takes the wake back if it may.
        fn stop(&self, alarm: &Alarm) {
            self.nr_running.fetch_sub(1, SeqCst);
            crate::loom::atomic::fence(SeqCst);
            if self.soon.load(SeqCst) == 0 || self.nr_running.load(SeqCst) != 0 {
                return;
            }
            let token = self.soon.swap(0, SeqCst) & !LAZY;
            if token != 0 && self.may_sleep() {
                alarm.cancel_soon(token);
            }
        }
    }

    /// A worker that started running while the monitor slept without a
    /// deadline goes idle and takes its wake back, while a second worker
    /// starts and stays running. Whatever the interleaving, the monitor
    /// must not sleep on with that worker running: it stays awake, or a
    /// wake is pending for it, fired or asked for and not taken back. Under
    /// loom deadlines never pass, so once both workers are done the time of
    /// the wakes asked for is made to come (the timer fired), and a monitor
    /// left asleep is a deadlock of the final join. It is one if the
    /// take-back skips its look at `nr_running`, or takes back every wake
    /// asked for rather than its own token's.
    #[test]
    fn loom_alarm_take_back_keeps_a_new_starts_wake() {
        crate::loom::bounded_model(3).check(|| {
            let alarm = Arc::new(Alarm::new().unwrap());
            let pool = Arc::new(PoolSide::new());
            let monitor = {
                let (alarm, pool) = (alarm.clone(), pool.clone());
                thread::spawn(move || {
                    alarm.set(None);
                    if pool.may_sleep() {
                        alarm.wait_deep();
                        pool.asleep.store(false, SeqCst);
                    }
                })
            };
            let first = {
                let (alarm, pool) = (alarm.clone(), pool.clone());
                thread::spawn(move || {
                    pool.start(&alarm);
                    pool.stop(&alarm);
                })
            };
            pool.start(&alarm);
            first.join().unwrap();
            assert_eq!(pool.nr_running.load(SeqCst), 1);
            // Time passes: the wakes asked for and not taken back come due.
            if !alarm.deadlines.lock().soon.is_empty() {
                alarm.timer.set(Some(Duration::ZERO));
            }
            monitor.join().unwrap();
        });
    }

    /// A task queued during a run that started while the monitor slept
    /// without a deadline brings that run's lazy wake forward, racing with
    /// the run's end, which takes the wake back. Whatever the
    /// interleaving, once the run has ended and the monitor sleeps on, no
    /// wake is left asked for: a hurry after the take-back must not bring
    /// back a wake that was taken back, and one before must not keep it
    /// from being taken back. (Under loom the monitor's `wait_deep` would
    /// block forever: it is left out, the monitor having gone to sleep
    /// before the run.)
    #[test]
    fn loom_alarm_hurry_never_outlives_the_take_back() {
        crate::loom::bounded_model(3).check(|| {
            let alarm = Arc::new(Alarm::new().unwrap());
            let pool = Arc::new(PoolSide::new());
            alarm.set(None);
            alarm.deadlines.lock().deep = true;
            assert!(pool.may_sleep());
            pool.start(&alarm);
            let pusher = {
                let (alarm, pool) = (alarm.clone(), pool.clone());
                thread::spawn(move || pool.queued(&alarm))
            };
            pool.stop(&alarm);
            pusher.join().unwrap();
            assert_eq!(pool.nr_running.load(SeqCst), 0);
            assert_eq!(pool.soon.load(SeqCst), 0);
            assert!(alarm.deadlines.lock().soon.is_empty());
        });
    }
}
