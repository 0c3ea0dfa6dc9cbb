//! The monitor thread's sleep: an alarm that any thread may set, push back
//! or fire, without waking the sleeper unless it fires.
//!
//! While workers run short polls they tick for the monitor (see `mod.rs`)
//! and push its alarm back at each tick, so the monitor thread sleeps
//! through a busy runtime instead of waking thousands of times a second;
//! it wakes only if the workers stop ticking (every running worker stuck
//! at once), or when someone calls [`Alarm::wake`].
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

use std::time::Duration;

use crate::loom::atomic::{AtomicBool, Ordering::SeqCst};

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct Alarm {
    timer: Timer,
    /// A wake is pending: set by `wake`, cleared by `wait` once it returned.
    woken: AtomicBool,
}

impl Alarm {
    pub(crate) fn new() -> std::io::Result<Alarm> {
        Ok(Alarm {
            timer: Timer::new()?,
            woken: AtomicBool::new(false),
        })
    }

    /// Makes `wait` return `after` from now (`None`: only on a wake),
    /// replacing whatever deadline was set. A pending wake is kept.
    pub(crate) fn set(&self, after: Option<Duration>) {
        self.timer.set(after);
        if self.woken.load(SeqCst) {
            self.timer.set(Some(Duration::ZERO));
        }
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
            // the earlier one and finds the new one.
            if sooner {
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
}
