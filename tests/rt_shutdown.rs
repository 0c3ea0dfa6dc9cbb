//! Shutdown: every pending task dropped exactly once, handles resolved,
//! blocking closures finished, bounded waits.

mod support;

use std::future::pending;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use support::Counters;

#[test]
fn shutdown_drops_all_10_000_pending_tasks() {
    let counters = Counters::default();
    let rt = wq::Builder::new().workers(2).build().unwrap();
    let mut handles = Vec::new();
    for _ in 0..10_000 {
        handles.push(rt.spawn(counters.track(pending::<()>())));
    }
    // Let some of them be polled (and go idle), the rest stay queued.
    rt.block_on(async {
        for _ in 0..10 {
            wq::task::yield_now().await;
        }
    });
    assert_eq!(rt.handle().metrics().num_alive_tasks(), 10_000);
    drop(rt);
    assert_eq!(counters.drops(), 10_000);
    assert_eq!(counters.completions(), 0);
    for handle in handles {
        let err = futures::executor::block_on(handle).unwrap_err();
        assert!(err.is_cancelled());
    }
}

#[test]
fn spawn_after_shutdown_returns_a_cancelled_handle() {
    let counters = Counters::default();
    let rt = wq::Runtime::new().unwrap();
    let handle = rt.handle().clone();
    drop(rt);
    let task = handle.spawn(counters.track(async { 1 }));
    assert!(task.is_finished());
    let err = futures::executor::block_on(task).unwrap_err();
    assert!(err.is_cancelled());
    assert_eq!(counters.polls(), 0);
    assert_eq!(counters.drops(), 1);
}

#[test]
fn shutdown_lets_running_blocking_closures_finish() {
    let rt = wq::Runtime::new().unwrap();
    let finished = Arc::new(AtomicBool::new(false));
    let (started_tx, started_rx) = mpsc::channel();
    let _task = rt.spawn_blocking({
        let finished = finished.clone();
        move || {
            started_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(100));
            finished.store(true, SeqCst);
        }
    });
    started_rx.recv().unwrap();
    drop(rt);
    assert!(finished.load(SeqCst));
}

#[test]
fn shutdown_timeout_bounds_the_wait() {
    let rt = wq::Runtime::new().unwrap();
    let (started_tx, started_rx) = mpsc::channel();
    let _task = rt.spawn_blocking(move || {
        started_tx.send(()).unwrap();
        std::thread::sleep(Duration::from_secs(3));
    });
    started_rx.recv().unwrap();
    let start = Instant::now();
    rt.shutdown_timeout(Duration::from_millis(50));
    // The closure sleeps 3 s; shutdown gave up long before.
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
fn tasks_running_at_shutdown_are_dropped_at_their_next_yield() {
    let counters = Counters::default();
    let rt = wq::Builder::new().workers(2).build().unwrap();
    let (inside_tx, inside_rx) = mpsc::channel();
    let handle = rt.spawn(counters.track(async move {
        wq::blocking(|| {
            inside_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(50));
        });
        // Shutdown happened meanwhile: this yield is the last poll.
        wq::task::yield_now().await;
        unreachable!("a task must not be polled after its runtime shut down");
    }));
    inside_rx.recv().unwrap();
    drop(rt);
    assert_eq!(counters.drops(), 1);
    assert_eq!(counters.completions(), 0);
    assert!(futures::executor::block_on(handle)
        .unwrap_err()
        .is_cancelled());
}

#[test]
fn shutdown_with_no_tasks_is_prompt_and_leaves_no_threads() {
    let rt = wq::Builder::new()
        .workers(2)
        .thread_name("wqidle-shutdown")
        .build()
        .unwrap();
    rt.block_on(async {});
    drop(rt);
    if let Some(n) = support::threads_named("wqidle-shutdown") {
        // Threads decrement the alive count as their very last step; give
        // the OS a moment to reap them.
        assert!(
            support::eventually(Duration::from_secs(5), || {
                support::threads_named("wqidle-shutdown") == Some(0)
            }),
            "{n} threads left"
        );
    }
}

/// A timer waker that holds the worker firing it until the shutdown has
/// woken the registered tasks (see the test below).
struct Gate {
    entered: AtomicBool,
    released: AtomicBool,
}

impl std::task::Wake for Gate {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.entered.store(true, SeqCst);
        while !self.released.load(SeqCst) {
            std::thread::yield_now();
        }
        // The shutdown wakes the registered tasks in one loop; the setup
        // task (whose drop released us) is one of them. Let it reach the
        // others.
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct OpenOnDrop(Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.released.store(true, SeqCst);
    }
}

/// A task whose runnable is already queued when the shutdown wakes every
/// task (then the wake does nothing) may still be taken by a worker that had
/// not yet seen the close. It must be cancelled, not polled: polled, it would
/// return `Pending` with nothing left to wake it, its future would outlive
/// the runtime and its handle never resolve.
///
/// To hold the worker between its check of the close and its next task: the
/// worker fires due timers every so many tasks, before it pops its queue, and
/// a due timer whose waker is `Gate` blocks it there until the shutdown has
/// begun, with never-polled children at the head of its queue.
#[test]
fn task_queued_during_shutdown_is_cancelled_not_polled() {
    const CHILDREN: usize = 200;
    let gate = Arc::new(Gate {
        entered: AtomicBool::new(false),
        released: AtomicBool::new(false),
    });
    let counters = Counters::default();
    let handles = Arc::new(std::sync::Mutex::new(Vec::new()));
    // One worker and no room for another: every task runs on it.
    let rt = wq::Builder::new()
        .workers(1)
        .max_workers(1)
        .build()
        .unwrap();
    let setup = {
        let (gate, counters, handles) = (gate.clone(), counters.clone(), handles.clone());
        async move {
            let _open = OpenOnDrop(gate.clone());
            let mut sleep = Box::pin(wq::time::sleep(Duration::from_millis(1)));
            {
                let waker = std::task::Waker::from(gate);
                let mut cx = std::task::Context::from_waker(&waker);
                assert!(std::future::Future::poll(sleep.as_mut(), &mut cx).is_pending());
            }
            // Let the timer fall due while this poll holds the only worker.
            let until = Instant::now() + Duration::from_millis(5);
            while Instant::now() < until {
                std::hint::spin_loop();
            }
            // Spawned from the worker, the children go on its own queue.
            {
                let mut handles = handles.lock().unwrap();
                for _ in 0..CHILDREN {
                    handles.push(wq::spawn(counters.track(pending::<()>())));
                }
            }
            let _sleep = sleep;
            pending::<()>().await
        }
    };
    drop(rt.spawn(setup));
    while !gate.entered.load(SeqCst) {
        std::thread::yield_now();
    }
    drop(rt);
    assert_eq!(counters.drops(), CHILDREN, "a future outlived the runtime");
    let handles = std::mem::take(&mut *handles.lock().unwrap());
    assert!(handles.iter().all(|h| h.is_finished()));
}
