//! Loom models of the flush colours (`colors.rs`): a task racing a flush's
//! close, a task queued after the close, a flush that has to wait for a
//! colour to free (the ring has two colours under loom), and a drain racing
//! a task's chained work.
//!
//! The queue lock is a loom mutex around the [`Ring`]; a waiter sleeps on a
//! condvar, and the thread whose `leave` reports a drained colour with a
//! waiter takes the lock and notifies, as `Inner::wake_waiters` does (which
//! also retries the close of a flush that could not close its own). A lost
//! wakeup shows up as a loom deadlock.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release --lib loom_colors
//! ```

use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

use super::colors::{Colors, Counts, Ring};
use crate::loom::bounded_model;

/// What the queue lock guards in the model: the drained mark, and the
/// colour of a flush that could not close its own (`Inner` finds it among
/// its waiters).
#[derive(Default)]
struct Locked {
    ring: Ring,
    open: Option<u64>,
}

/// One queue's colours and lock, and the waiters' condvar.
struct Queue {
    colors: Colors,
    lock: Mutex<Locked>,
    woken: Condvar,
}

impl Queue {
    fn new() -> Arc<Queue> {
        Arc::new(Queue {
            colors: Colors::new(),
            lock: Mutex::new(Locked::default()),
            woken: Condvar::new(),
        })
    }

    /// `enter`, and the wake it may owe.
    fn enter(&self) -> u64 {
        let (color, wake) = self.colors.enter();
        if wake {
            self.wake();
        }
        color
    }

    /// A task of `color` finishes.
    fn leave(&self, color: u64) {
        if self.colors.leave(color) {
            self.wake();
        }
    }

    /// `wake_waiters`: under the lock, retries the close of an open flush
    /// colour, then wakes every waiter (each re-checks).
    fn wake(&self) {
        let mut locked = self.lock.lock().unwrap();
        let locked = &mut *locked;
        if let Some(open) = locked.open {
            locked.ring.try_close(open, &self.colors);
        }
        self.woken.notify_all();
    }

    /// `flush`: closes at the call, then waits, registered before each
    /// check. Returns the colour it waited for.
    fn flush(&self) -> u64 {
        let mut locked = self.lock.lock().unwrap();
        let target = locked.ring.close(&self.colors);
        self.colors.waiters().fetch_add(1, SeqCst);
        loop {
            let state = &mut *locked;
            state.ring.try_close(target, &self.colors);
            state.open = (self.colors.current() == target).then_some(target);
            if state.ring.drained(&self.colors) > target {
                self.colors.waiters().fetch_sub(1, SeqCst);
                return target;
            }
            locked = self.woken.wait(locked).unwrap();
        }
    }

    /// `drain` (the `Waiter` of `WaitFor::Empty`): rounds of a flush, each
    /// over when its colour has drained, the last one when no task was
    /// queued since it began.
    fn drain(&self) {
        let mut locked = self.lock.lock().unwrap();
        self.colors.waiters().fetch_add(1, SeqCst);
        loop {
            let queued = self.colors.totals().0;
            let target = locked.ring.close(&self.colors);
            loop {
                let state = &mut *locked;
                state.ring.try_close(target, &self.colors);
                state.open = (self.colors.current() == target).then_some(target);
                if state.ring.drained(&self.colors) > target {
                    break;
                }
                locked = self.woken.wait(locked).unwrap();
            }
            if self.colors.totals().0 == queued {
                self.colors.waiters().fetch_sub(1, SeqCst);
                return;
            }
        }
    }
}

/// A task queued concurrently with a flush: if it took a colour the flush
/// covers, the flush returns only after the task finished; either way the
/// flush returns.
#[test]
fn loom_colors_task_races_flush() {
    loom::model(|| {
        let queue = Queue::new();
        let finished = Arc::new(AtomicBool::new(false));
        let color = Arc::new(AtomicU64::new(u64::MAX));
        let task = {
            let (queue, finished, color) = (queue.clone(), finished.clone(), color.clone());
            thread::spawn(move || {
                let c = queue.enter();
                color.store(c, SeqCst);
                finished.store(true, SeqCst);
                queue.leave(c);
            })
        };
        let target = queue.flush();
        let c = color.load(SeqCst);
        if c != u64::MAX && c <= target {
            assert!(
                finished.load(SeqCst),
                "flush returned before a task it covers"
            );
        }
        task.join().unwrap();
    });
}

/// A task queued after a flush's call (here: after the task queued before
/// it) never holds the flush up: the later task only finishes once the
/// flush has returned, so a flush that waited for it would deadlock.
#[test]
fn loom_colors_later_task_does_not_hold_flush() {
    loom::model(|| {
        let queue = Queue::new();
        let flushed = Arc::new(AtomicBool::new(false));
        let early = queue.enter();
        let target = Arc::new(AtomicU64::new(u64::MAX));
        let flusher = {
            let (queue, flushed, target) = (queue.clone(), flushed.clone(), target.clone());
            thread::spawn(move || {
                let t = queue.flush();
                target.store(t, SeqCst);
                flushed.store(true, SeqCst);
            })
        };
        let early_task = {
            let queue = queue.clone();
            thread::spawn(move || queue.leave(early))
        };
        // Wait for the flush's call to close the colour, then queue.
        while queue.colors.current() == early {
            thread::yield_now();
        }
        let late = queue.enter();
        assert!(late > early);
        early_task.join().unwrap();
        flusher.join().unwrap();
        assert!(flushed.load(SeqCst));
        assert!(target.load(SeqCst) < late);
        queue.leave(late);
    });
}

/// The ring is full (two colours): the second flush cannot close its
/// colour while the first colour's task runs, and it is closed once that
/// task finishes (by `wake_waiters`, or by the flush's own re-check); each
/// flush returns only after the tasks queued before its call.
#[test]
fn loom_colors_full_ring_closes_later() {
    bounded_model(3).check(|| {
        let queue = Queue::new();
        let first_done = Arc::new(AtomicBool::new(false));
        let second_done = Arc::new(AtomicBool::new(false));
        let first = queue.enter();
        let flush_a = {
            let (queue, first_done) = (queue.clone(), first_done.clone());
            thread::spawn(move || {
                queue.flush();
                assert!(first_done.load(SeqCst), "flush A passed the first task");
            })
        };
        while queue.colors.current() == first {
            thread::yield_now();
        }
        let second = queue.enter();
        let flush_b = {
            let (queue, first_done, second_done) =
                (queue.clone(), first_done.clone(), second_done.clone());
            thread::spawn(move || {
                queue.flush();
                assert!(first_done.load(SeqCst), "flush B passed the first task");
                assert!(second_done.load(SeqCst), "flush B passed the second task");
            })
        };
        let first_task = {
            let (queue, first_done) = (queue.clone(), first_done.clone());
            thread::spawn(move || {
                first_done.store(true, SeqCst);
                queue.leave(first);
            })
        };
        second_done.store(true, SeqCst);
        queue.leave(second);
        first_task.join().unwrap();
        flush_a.join().unwrap();
        flush_b.join().unwrap();
    });
}

/// A drain racing a task that queues a chained task and then finishes: the
/// drain returns only after the chained task finished too, whichever colour
/// it took (the round's close may come between its count in the tasks ever
/// queued and its colour).
#[test]
fn loom_colors_drain_waits_for_chained_task() {
    loom::model(|| {
        let queue = Queue::new();
        let chained_done = Arc::new(AtomicBool::new(false));
        let parent = queue.enter();
        let task = {
            let (queue, chained_done) = (queue.clone(), chained_done.clone());
            thread::spawn(move || {
                let chained = queue.enter();
                queue.leave(parent);
                chained_done.store(true, SeqCst);
                queue.leave(chained);
            })
        };
        queue.drain();
        assert!(
            chained_done.load(SeqCst),
            "drain returned before a chained task finished"
        );
        task.join().unwrap();
    });
}
