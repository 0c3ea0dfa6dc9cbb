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
