//! Spawning, block_on and the runtime context.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use support::Counters;

#[test]
fn every_task_runs_and_drops_exactly_once() {
    let counters = Counters::default();
    let rt = wq::Builder::new().workers(2).build().unwrap();
    let sum = rt.block_on({
        let counters = counters.clone();
        async move {
            let mut handles = Vec::new();
            for i in 0..10_000u64 {
                let inner = counters.clone();
                handles.push(wq::spawn(counters.track(async move {
                    // Nested spawns count too.
                    if i % 10 == 0 {
                        wq::spawn(inner.track(async {})).await.unwrap();
                    }
                    wq::task::yield_now().await;
                    i
                })));
            }
            let mut sum = 0;
            for handle in handles {
                sum += handle.await.unwrap();
            }
            sum
        }
    });
    assert_eq!(sum, 10_000 * 9_999 / 2);
    drop(rt);
    assert_eq!(counters.completions(), 11_000);
    assert_eq!(counters.drops(), 11_000);
}

#[test]
fn spawn_from_outside_through_runtime_and_handle() {
    let rt = wq::Runtime::new().unwrap();
    let a = rt.spawn(async { 1 });
    let b = rt.handle().spawn(async { 2 });
    let c = std::thread::spawn({
        let handle = rt.handle().clone();
        move || handle.spawn(async { 3 })
    })
    .join()
    .unwrap();
    let total = rt.block_on(async { a.await.unwrap() + b.await.unwrap() + c.await.unwrap() });
    assert_eq!(total, 6);
}

#[test]
#[should_panic(expected = "`wq::spawn` called outside of a wq runtime")]
fn spawn_outside_a_runtime_panics() {
    drop(wq::spawn(async {}));
}

#[test]
#[should_panic(expected = "Cannot start a runtime from within a runtime")]
fn nested_block_on_panics() {
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let inner = wq::Runtime::new().unwrap();
        inner.block_on(async {});
    });
}

#[test]
fn block_on_inside_a_task_fails_that_task_only() {
    let rt = wq::Builder::new().workers(1).build().unwrap();
    let handle = rt.handle().clone();
    let err = rt
        .block_on(rt.spawn(async move { handle.block_on(async {}) }))
        .unwrap_err();
    assert!(err.is_panic());
    let message = err.to_string();
    assert!(
        message.contains("Cannot start a runtime from within a runtime"),
        "{message}"
    );
    // The worker lives on.
    assert_eq!(rt.block_on(rt.spawn(async { 9 })).unwrap(), 9);
}

#[test]
fn handle_current_inside_and_outside() {
    assert!(wq::Handle::try_current().is_err());
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        assert!(wq::Handle::try_current().is_ok());
        let in_task = wq::spawn(async { wq::Handle::try_current().is_ok() });
        assert!(in_task.await.unwrap());
    });
    assert!(wq::Handle::try_current().is_err());
    {
        let _guard = rt.enter();
        let handle = wq::Handle::current();
        let task = wq::spawn(async { 4 });
        assert_eq!(handle.block_on(task).unwrap(), 4);
    }
    assert!(wq::Handle::try_current().is_err());
}

#[test]
#[should_panic(expected = "there is no wq runtime current on this thread")]
fn handle_current_outside_panics() {
    let _ = wq::Handle::current();
}

#[test]
fn panicking_task_yields_panic_error_and_worker_survives() {
    let rt = wq::Builder::new()
        .workers(1)
        .max_workers(1)
        .build()
        .unwrap();
    rt.block_on(async {
        for i in 0..10 {
            let err = wq::spawn(async move {
                if i >= 0 {
                    panic!("task {i} failed");
                }
            })
            .await
            .unwrap_err();
            assert!(err.is_panic());
            let payload = err.into_panic();
            assert_eq!(
                payload.downcast_ref::<String>().unwrap(),
                &format!("task {i} failed")
            );
        }
        // The only worker still runs tasks.
        assert_eq!(wq::spawn(async { 5 }).await.unwrap(), 5);
    });
    assert_eq!(rt.handle().metrics().num_workers(), 1);
}

#[test]
fn thread_hooks_run_once_per_worker() {
    let started = Arc::new(AtomicUsize::new(0));
    let stopped = Arc::new(AtomicUsize::new(0));
    let rt = wq::Builder::new()
        .workers(2)
        .on_thread_start({
            let started = started.clone();
            move || {
                started.fetch_add(1, SeqCst);
            }
        })
        .on_thread_stop({
            let stopped = stopped.clone();
            move || {
                stopped.fetch_add(1, SeqCst);
            }
        })
        .build()
        .unwrap();
    rt.block_on(async {
        for _ in 0..100 {
            wq::spawn(async {}).await.unwrap();
        }
    });
    drop(rt);
    assert!(started.load(SeqCst) >= 2);
    assert_eq!(started.load(SeqCst), stopped.load(SeqCst));
}

#[test]
fn worker_threads_carry_the_configured_name() {
    let rt = wq::Builder::new()
        .thread_name("named-worker")
        .build()
        .unwrap();
    let name = rt
        .block_on(rt.spawn(async { std::thread::current().name().map(str::to_owned) }))
        .unwrap();
    assert_eq!(name.as_deref(), Some("named-worker"));
}

/// A task spawned (or woken) by a running task goes to its worker's LIFO
/// slot and runs next, but never more than three in a row: two tasks that
/// keep waking each other on one worker do not starve a task queued behind
/// them on the same worker.
#[test]
fn tasks_waking_each_other_do_not_starve_the_queue() {
    use futures::channel::mpsc;
    use futures::{SinkExt as _, StreamExt as _};

    const EXCHANGES: usize = 10_000;
    const BYSTANDER_AT: usize = 100;
    let rt = wq::Builder::new().workers(1).build().unwrap();
    let seen = rt.block_on(async {
        wq::spawn(async {
            let exchanges = Arc::new(AtomicUsize::new(0));
            let (mut to_b, mut b_rx) = mpsc::channel::<()>(0);
            let (mut to_a, mut a_rx) = mpsc::channel::<()>(0);
            let b = wq::spawn(async move {
                while b_rx.next().await.is_some() {
                    if to_a.send(()).await.is_err() {
                        break;
                    }
                }
            });
            let a = wq::spawn({
                let exchanges = exchanges.clone();
                async move {
                    let mut bystander = None;
                    for i in 0..EXCHANGES {
                        to_b.send(()).await.unwrap();
                        if i == BYSTANDER_AT {
                            // Into the LIFO slot, from which waking B at
                            // the next line sends it to the back of this
                            // worker's queue.
                            let exchanges = exchanges.clone();
                            bystander = Some(wq::spawn(async move { exchanges.load(SeqCst) }));
                        }
                        a_rx.next().await.unwrap();
                        exchanges.fetch_add(1, SeqCst);
                    }
                    bystander
                }
            });
            let bystander = a.await.unwrap().expect("spawned at BYSTANDER_AT");
            b.await.unwrap();
            bystander.await.unwrap()
        })
        .await
        .unwrap()
    });
    // A and B get three runs from the LIFO slot in a row, then the queue's
    // head (the bystander) runs: within a couple of exchanges.
    assert!(
        seen < BYSTANDER_AT + 10,
        "the bystander ran after {seen} of {EXCHANGES} exchanges, queued at {BYSTANDER_AT}"
    );
}
