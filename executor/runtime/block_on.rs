//! Driving one future to completion on the calling thread.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::pool::{Joined, Parker, Pool};
use crate::time::driver::Driver;

/// Wakes the `block_on` thread. A wake also counts the thread as busy for
/// the paused clock (it will poll soon), so that auto-advance cannot jump
/// time between the wake and the poll.
struct ThreadWaker {
    parker: Parker,
    /// A wake happened since the thread last looked; it holds one inhibit.
    woken: AtomicBool,
    timers: Arc<Driver>,
}

impl ThreadWaker {
    fn wake_inner(&self) {
        if !self.woken.swap(true, SeqCst) {
            self.timers.inhibit_add();
        }
        self.parker.unpark();
    }

    /// Takes over the inhibit of a wake, if there was one.
    fn take_wake(&self) -> bool {
        self.woken.swap(false, SeqCst)
    }
}

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.wake_inner();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wake_inner();
    }
}

/// Polls `future` on this thread, parking between polls until it is woken.
/// While polling, the thread inhibits auto-advance of a paused clock.
pub(crate) fn block_on<F: Future>(future: F, timers: &Arc<Driver>) -> F::Output {
    let thread_waker = Arc::new(ThreadWaker {
        parker: Parker::new(),
        woken: AtomicBool::new(false),
        timers: timers.clone(),
    });
    let waker = Waker::from(thread_waker.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    // This thread is busy: it holds one inhibit while it polls.
    timers.inhibit_add();
    loop {
        if let Poll::Ready(output) = crate::task::coop::budget(|| future.as_mut().poll(&mut cx)) {
            if thread_waker.take_wake() {
                timers.inhibit_sub();
            }
            timers.inhibit_sub();
            return output;
        }
        if thread_waker.take_wake() {
            // Woken during the poll: poll again, dropping the wake's inhibit
            // (we hold our own).
            timers.inhibit_sub();
            continue;
        }
        timers.inhibit_sub();
        thread_waker.parker.park();
        // Unparked by a wake: its inhibit becomes ours. (The parker's token
        // is only ever left by `wake_inner`, after it set `woken`.)
        if !thread_waker.take_wake() {
            timers.inhibit_add();
        }
    }
}

/// `block_on` on a current-thread runtime: the calling thread serves as the
/// pool's worker until `future` completes (`Pool::block_on`). If another
/// thread holds the pool's worker slot (several threads block on the
/// runtime at once), this one polls its own future while it waits for the
/// slot, its progress made by the tasks that thread runs; if the pool
/// closes (the runtime shuts down meanwhile), it goes on without it (with
/// no worker to fire its timers: the shutdown's last step wakes them, and
/// they panic when polled).
pub(crate) fn block_on_current_thread<F: Future>(
    future: F,
    pool: &Pool,
    timers: &Arc<Driver>,
) -> F::Output {
    let mut future = pin!(future);
    let thread_waker = Arc::new(ThreadWaker {
        parker: Parker::new(),
        woken: AtomicBool::new(false),
        timers: timers.clone(),
    });
    let waker = Waker::from(thread_waker.clone());
    let mut cx = Context::from_waker(&waker);
    loop {
        // Registered before the attempt: a slot freed in between wakes us.
        pool.wait_for_slot(&waker);
        match pool.block_on(future.as_mut()) {
            Joined::Done(output) => return output,
            Joined::Closed => return block_on(future, timers),
            Joined::NoSlot => {}
        }
        timers.inhibit_add();
        let polled = crate::task::coop::budget(|| future.as_mut().poll(&mut cx));
        timers.inhibit_sub();
        // A wake holds one inhibit until it is taken; each action above
        // holds its own.
        let woken = thread_waker.take_wake();
        if woken {
            timers.inhibit_sub();
        }
        if let Poll::Ready(output) = polled {
            return output;
        }
        if !woken {
            thread_waker.parker.park();
            if thread_waker.take_wake() {
                timers.inhibit_sub();
            }
        }
    }
}
