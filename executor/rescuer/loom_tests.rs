//! Loom models of the mayday hand-off, run on the real rescuer (`Shared`:
//! its mayday list under its lock, its condition variable, its one-at-a-time
//! loop and its stop) with a model pool: a FIFO of tagged items under a
//! lock, popped and pushed back separately as the injector's rotation does,
//! and a count of running workers.
//!
//! Run them with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release --lib loom_mayday
//! ```
//!
//! A mayday lost between the caller and the sleeping rescuer, or a rescuer
//! that does not exit on stop, shows up as a loom deadlock; an item run
//! twice or lost fails the counts.

use std::collections::VecDeque;

use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

use super::{RescuePool, Shared};
use crate::loom::bounded_model;

const TAG: u64 = 7;
const OTHER_TAG: u64 = 9;

/// A pool whose queue holds tagged items (`(tag, index)`).
#[derive(Clone)]
struct ModelPool(Arc<PoolState>);

struct PoolState {
    queue: Mutex<VecDeque<(u64, usize)>>,
    /// Workers counted running (0: all blocked).
    running: AtomicUsize,
    /// Runs of each item, by whoever ran it.
    runs: Vec<AtomicUsize>,
    /// Items run so far, for the thread that waits on them.
    done: Mutex<usize>,
    done_cv: Condvar,
    kicks: AtomicUsize,
}

impl ModelPool {
    fn new(tags: &[u64]) -> ModelPool {
        ModelPool(Arc::new(PoolState {
            queue: Mutex::new(tags.iter().copied().zip(0..).collect()),
            running: AtomicUsize::new(0),
            runs: tags.iter().map(|_| AtomicUsize::new(0)).collect(),
            done: Mutex::new(0),
            done_cv: Condvar::new(),
            kicks: AtomicUsize::new(0),
        }))
    }

    fn ran(&self, index: usize) {
        self.0.runs[index].fetch_add(1, SeqCst);
        *self.0.done.lock().unwrap() += 1;
        self.0.done_cv.notify_all();
    }

    fn wait_done(&self, n: usize) {
        let mut done = self.0.done.lock().unwrap();
        while *done < n {
            done = self.0.done_cv.wait(done).unwrap();
        }
    }

    fn runs(&self, index: usize) -> usize {
        self.0.runs[index].load(SeqCst)
    }

    /// A worker's take: the head of the queue, whatever its tag.
    fn take_any(&self) -> Option<(u64, usize)> {
        self.0.queue.lock().unwrap().pop_front()
    }
}

impl RescuePool for ModelPool {
    type Item = (ModelPool, usize);

    fn is_starving(&self) -> bool {
        self.0.running.load(SeqCst) == 0 && !self.0.queue.lock().unwrap().is_empty()
    }

    fn rescue_lap(&self) -> usize {
        self.0.queue.lock().unwrap().len()
    }

    /// The real pool's rotation: pop the head, keep it if it matches, else
    /// push it back at the tail (two separate operations).
    fn take_rescued(&self, tag: u64, lap: &mut usize) -> Option<(ModelPool, usize)> {
        while *lap > 0 {
            *lap -= 1;
            let (item_tag, index) = self.0.queue.lock().unwrap().pop_front()?;
            if item_tag == tag {
                return Some((self.clone(), index));
            }
            self.0.queue.lock().unwrap().push_back((item_tag, index));
        }
        None
    }

    fn run((pool, index): (ModelPool, usize)) {
        pool.ran(index);
    }

    fn kick(&self) {
        self.0.kicks.fetch_add(1, SeqCst);
    }

    fn same(&self, other: &ModelPool) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Starts the rescuer's thread on the real loop; returns it with its
/// shared state.
fn start_rescuer() -> (Arc<Shared<ModelPool>>, thread::JoinHandle<()>) {
    let shared = Arc::new(Shared::<ModelPool>::new(TAG));
    let thread_shared = shared.clone();
    let thread = thread::spawn(move || {
        let _exit = super::ExitGuard(&thread_shared);
        thread_shared.run();
    });
    (shared, thread)
}

fn stop_and_join(shared: &Shared<ModelPool>, thread: thread::JoinHandle<()>) {
    shared.stop();
    thread.join().unwrap();
    assert!(shared.state.lock().exited);
}

/// A starving pool calls while the rescuer may be anywhere between its
/// check of the list and its wait: the call is not lost, and the rescuer
/// runs its item once, leaving the other workqueue's item queued.
#[test]
fn loom_mayday_reaches_the_sleeping_rescuer() {
    loom::model(|| {
        let pool = ModelPool::new(&[OTHER_TAG, TAG]);
        let (shared, rescuer) = start_rescuer();
        let caller = {
            let (shared, pool) = (shared.clone(), pool.clone());
            thread::spawn(move || {
                if pool.is_starving() {
                    shared.send_mayday(&pool);
                }
            })
        };
        caller.join().unwrap();
        pool.wait_done(1);
        stop_and_join(&shared, rescuer);
        assert_eq!((pool.runs(0), pool.runs(1)), (0, 1));
        assert_eq!(*pool.0.queue.lock().unwrap(), [(OTHER_TAG, 0)]);
        assert_eq!(shared.mayday.load(SeqCst), 1);
        assert_eq!(shared.rescued.load(SeqCst), 1);
        assert!(
            pool.0.kicks.load(SeqCst) >= 1,
            "the rescuer left without a kick"
        );
    });
}

/// A blocked worker comes back while the rescuer serves the pool and
/// takes what it finds. No item runs twice or is lost: each one ran once
/// or is still queued (one the worker missed while the rescuer's rotation
/// held it is back in the queue, and the rescuer kicked the pool as it
/// left: in the real pool that wakes a worker for it).
#[test]
fn loom_mayday_vs_returning_worker() {
    bounded_model(3).check(|| {
        let pool = ModelPool::new(&[TAG, OTHER_TAG, TAG]);
        let (shared, rescuer) = start_rescuer();
        shared.send_mayday(&pool);
        let worker = {
            let pool = pool.clone();
            thread::spawn(move || {
                pool.0.running.fetch_add(1, SeqCst);
                while let Some((_, index)) = pool.take_any() {
                    pool.ran(index);
                }
            })
        };
        worker.join().unwrap();
        stop_and_join(&shared, rescuer);
        let queue = pool.0.queue.lock().unwrap().clone();
        for index in 0..3 {
            let queued = queue.iter().filter(|(_, i)| *i == index).count();
            assert_eq!(pool.runs(index) + queued, 1, "item {index}");
        }
        if !queue.is_empty() {
            assert!(
                pool.0.kicks.load(SeqCst) >= 1,
                "left work queued without a kick"
            );
        }
    });
}

/// Stop races a mayday: the rescuer exits either way, and an item it did
/// not take is still queued (never lost).
#[test]
fn loom_mayday_vs_stop() {
    loom::model(|| {
        let pool = ModelPool::new(&[TAG]);
        let (shared, rescuer) = start_rescuer();
        let caller = {
            let (shared, pool) = (shared.clone(), pool.clone());
            thread::spawn(move || shared.send_mayday(&pool))
        };
        shared.stop();
        caller.join().unwrap();
        rescuer.join().unwrap();
        let queued = pool.0.queue.lock().unwrap().len();
        assert_eq!(pool.runs(0) + queued, 1, "the item was lost or run twice");
        assert!(shared.state.lock().maydays.is_empty());
    });
}
