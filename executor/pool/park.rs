//! The parker an idle worker sleeps on.
//!
//! A worker has its own parker rather than using `std::thread::park`, so that
//! user code running on the worker (which may use thread parking itself, e.g.
//! `futures::executor::block_on`) can neither steal nor forge the pool's wakeups.
//!
//! The token protocol is the classic one: `unpark` leaves a token that the
//! next `park` consumes, so a wakeup sent before the worker sleeps is not lost.

use std::sync::Arc;
use std::time::Duration;

use crate::loom::atomic::AtomicUsize;
use crate::loom::atomic::Ordering::{AcqRel, Acquire, Release};
use crate::loom::{Condvar, Mutex};
use crate::net::reactor::ReactorPark;

/// No token, nobody sleeping.
const EMPTY: usize = 0;
/// The owner is asleep (or about to be) on the condition variable.
const PARKED: usize = 1;
/// A token is waiting to be consumed.
const NOTIFIED: usize = 2;
/// The owner is asleep (or about to be) in the I/O reactor's poll.
const PARKED_IN_REACTOR: usize = 3;

#[derive(Debug)]
pub(crate) struct Parker {
    state: AtomicUsize,
    lock: Mutex<()>,
    cvar: Condvar,
    /// The reactor the owner may sleep in (`park_in_reactor`).
    reactor: Option<Arc<dyn ReactorPark>>,
}

impl Parker {
    pub(crate) fn new() -> Parker {
        Parker {
            state: AtomicUsize::new(EMPTY),
            lock: Mutex::new(()),
            cvar: Condvar::new(),
            reactor: None,
        }
    }

    /// A parker whose owner may also sleep in `reactor`.
    pub(crate) fn with_reactor(reactor: Option<Arc<dyn ReactorPark>>) -> Parker {
        Parker {
            reactor,
            ..Parker::new()
        }
    }

    /// Whether the owner can sleep in a reactor.
    pub(crate) fn has_reactor(&self) -> bool {
        self.reactor.is_some()
    }

    /// Sleeps in the reactor's poll, dispatching the I/O events that arrive,
    /// until a token is available, `timeout` elapses, or events arrive.
    /// Returns whether a token was consumed, and how many tasks the events
    /// woke. An `unpark` meanwhile wakes the poll (`Reactor::wake`).
    pub(crate) fn park_in_reactor(&self, timeout: Duration) -> (bool, usize) {
        let Some(reactor) = &self.reactor else {
            return (self.park_timeout(timeout), 0);
        };
        if self
            .state
            .compare_exchange(NOTIFIED, EMPTY, Acquire, Acquire)
            .is_ok()
        {
            return (true, 0);
        }
        match self
            .state
            .compare_exchange(EMPTY, PARKED_IN_REACTOR, AcqRel, Acquire)
        {
            Ok(_) => {}
            Err(NOTIFIED) => {
                self.state.swap(EMPTY, Acquire);
                return (true, 0);
            }
            Err(actual) => unreachable!("parker in state {actual} while its owner parks"),
        }
        // An unparker that swapped in NOTIFIED after our CAS wakes the
        // reactor. Its wake event may be consumed by another thread's
        // non-blocking poll before we get the poll: so once the poll is
        // ours, a token already there means "do not wait" (see
        // `Reactor::turn_unless`).
        let woken = reactor.park_turn(timeout, &|| self.state.load(Acquire) == NOTIFIED);
        let notified = self.state.swap(EMPTY, Acquire) == NOTIFIED;
        (notified, woken)
    }

    /// Sleeps until a token is available, consuming it.
    pub(crate) fn park(&self) {
        self.park_inner(None);
    }

    /// Sleeps until a token is available or `timeout` elapses. Returns
    /// whether a token was consumed.
    pub(crate) fn park_timeout(&self, timeout: Duration) -> bool {
        self.park_inner(Some(timeout))
    }

    fn park_inner(&self, timeout: Option<Duration>) -> bool {
        // Fast path: a token is already there. Acquire pairs with the
        // Release in `unpark`, so whatever the unparker wrote before it is
        // visible to us.
        if self
            .state
            .compare_exchange(NOTIFIED, EMPTY, Acquire, Acquire)
            .is_ok()
        {
            return true;
        }
        let mut guard = self.lock.lock();
        match self.state.compare_exchange(EMPTY, PARKED, AcqRel, Acquire) {
            Ok(_) => {}
            Err(NOTIFIED) => {
                // The token arrived between the fast path and the lock.
                self.state.swap(EMPTY, Acquire);
                return true;
            }
            Err(actual) => unreachable!("parker in state {actual} while its owner parks"),
        }
        loop {
            let timed_out = match timeout {
                None => {
                    guard = self.cvar.wait(guard);
                    false
                }
                Some(timeout) => {
                    let (g, timed_out) = self.cvar.wait_timeout(guard, timeout);
                    guard = g;
                    timed_out
                }
            };
            if self
                .state
                .compare_exchange(NOTIFIED, EMPTY, Acquire, Acquire)
                .is_ok()
            {
                return true;
            }
            if timed_out {
                // Withdraw. An unparker may have swapped in NOTIFIED just now
                // (it does so before taking the lock): then the token is ours.
                return self.state.swap(EMPTY, Acquire) == NOTIFIED;
            }
            // Spurious wakeup: sleep again.
        }
    }

    /// Leaves a token and wakes the owner if it sleeps.
    pub(crate) fn unpark(&self) {
        // Release pairs with the Acquire in `park_inner`.
        match self.state.swap(NOTIFIED, Release) {
            EMPTY | NOTIFIED => return,
            PARKED => {}
            PARKED_IN_REACTOR => {
                if let Some(reactor) = &self.reactor {
                    reactor.wake();
                }
                return;
            }
            actual => unreachable!("parker in unknown state {actual}"),
        }
        // The owner is asleep or between setting PARKED and waiting. Taking
        // the lock orders us after its wait began, so the notification cannot
        // slip in before it and be lost.
        drop(self.lock.lock());
        self.cvar.notify_one();
    }
}
