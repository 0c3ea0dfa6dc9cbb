//! `#[wq::test]` functions run on a real runtime and see its effects.

// These tests build whole runtimes, which loom's model checker cannot drive.
#![cfg(not(loom))]

use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

#[wq::test]
async fn spawned_task_result_is_returned() {
    let answer = wq::spawn(async { 40 + 2 }).await.unwrap();
    assert_eq!(answer, 42);
}

/// A meeting point for two threads, like `std::sync::Barrier`, except that
/// it gives up after a timeout so that a runtime that cannot run both sides
/// at once fails the test instead of hanging it.
#[derive(Default)]
struct Rendezvous {
    arrived: Mutex<usize>,
    all_here: Condvar,
}

impl Rendezvous {
    /// Waits until `parties` threads have arrived; false on timeout.
    fn wait(&self, parties: usize, timeout: Duration) -> bool {
        let mut arrived = self.arrived.lock().unwrap();
        *arrived += 1;
        if *arrived == parties {
            self.all_here.notify_all();
            return true;
        }
        let (_arrived, result) = self
            .all_here
            .wait_timeout_while(arrived, timeout, |arrived| *arrived < parties)
            .unwrap();
        !result.timed_out()
    }
}

#[wq::test(workers = 2)]
async fn two_workers_run_two_blocked_tasks_at_once() {
    // Each task waits until the other one arrives, so both can only get
    // through if they run on two threads at the same time.
    let rendezvous = Arc::new(Rendezvous::default());
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let rendezvous = Arc::clone(&rendezvous);
            wq::spawn(async move { wq::blocking(|| rendezvous.wait(2, Duration::from_secs(30))) })
        })
        .collect();

    for task in tasks {
        assert!(task.await.unwrap(), "the other task never ran alongside");
    }
}

#[wq::test]
async fn result_returning_test_returns_ok() -> Result<(), String> {
    let value = wq::spawn(async { "wq" }).await.map_err(|e| e.to_string())?;
    if value != "wq" {
        return Err(format!("unexpected value {value:?}"));
    }
    Ok(())
}

#[wq::test]
async fn early_return_leaves_the_body() {
    let mut reached_end = false;
    for i in 0.. {
        if i == 3 {
            return;
        }
        reached_end = i > 3;
    }
    assert!(reached_end, "the loop only ends through the early return");
}

#[wq::test(workers = 1)]
async fn many_tasks_complete_with_a_single_worker() {
    let tasks: Vec<_> = (0..100u64)
        .map(|i| wq::spawn(async move { i * 2 }))
        .collect();
    let mut sum = 0;
    for task in tasks {
        sum += task.await.unwrap();
    }
    assert_eq!(sum, 2 * (0..100).sum::<u64>());
}

#[wq::test]
#[should_panic(expected = "the body's panic reaches the test harness")]
async fn panics_in_the_body_fail_the_test() {
    panic!("the body's panic reaches the test harness");
}

#[wq::test]
async fn blocking_work_does_not_stall_the_body() {
    let slept = wq::spawn(async {
        wq::blocking(|| {
            thread::sleep(Duration::from_millis(10));
            true
        })
    })
    .await
    .unwrap();
    assert!(slept);
}
