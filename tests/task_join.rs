//! JoinHandle, AbortHandle, JoinError, JoinSet, yield_now, spawn_blocking.

mod support;

use std::collections::HashSet;
use std::future::pending;
use std::sync::{mpsc, Arc, Mutex};

use support::Counters;
use tokio_test::{assert_pending, assert_ready};

#[test]
fn abort_cancels_a_pending_task_and_drops_it() {
    let counters = Counters::default();
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let handle = wq::spawn(counters.track(pending::<()>()));
        // Let it be polled once and go idle.
        while counters.polls() == 0 {
            wq::task::yield_now().await;
        }
        handle.abort();
        let err = handle.await.unwrap_err();
        assert!(err.is_cancelled());
        assert!(!err.is_panic());
    });
    assert_eq!(counters.polls(), 1);
    assert_eq!(counters.drops(), 1);
}

#[test]
fn abort_before_first_poll_never_polls() {
    let counters = Counters::default();
    let rt = wq::Builder::new().workers(1).build().unwrap();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    // Occupy the only concurrency slot so the next task waits in the queue.
    let gate = rt.spawn(async move {
        // Busy (not blocking): concurrency management keeps others waiting.
        release_rx.recv().unwrap();
    });
    let handle = rt.spawn(counters.track(async { 1 }));
    handle.abort();
    release_tx.send(()).unwrap();
    rt.block_on(async {
        gate.await.unwrap();
        assert!(handle.await.unwrap_err().is_cancelled());
    });
    assert_eq!(counters.polls(), 0);
    assert_eq!(counters.drops(), 1);
}

#[test]
fn abort_after_completion_keeps_the_result() {
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let handle = wq::spawn(async { 5 });
        while !handle.is_finished() {
            wq::task::yield_now().await;
        }
        handle.abort();
        assert_eq!(handle.await.unwrap(), 5);
    });
}

#[test]
fn abort_handle_works_from_another_thread() {
    let counters = Counters::default();
    let rt = wq::Runtime::new().unwrap();
    let handle = rt.spawn(counters.track(pending::<()>()));
    let abort = handle.abort_handle();
    assert_eq!(abort.id(), handle.id());
    assert!(!abort.is_finished());
    std::thread::spawn(move || abort.abort()).join().unwrap();
    assert!(rt.block_on(handle).unwrap_err().is_cancelled());
    assert_eq!(counters.drops(), 1);
}

#[test]
fn join_error_reports_panics() {
    let rt = wq::Runtime::new().unwrap();
    let n = std::hint::black_box(1);
    let err = rt
        .block_on(rt.spawn(async move { panic!("boom {n}") }))
        .unwrap_err();
    assert!(err.is_panic());
    assert!(!err.is_cancelled());
    let id = err.id();
    assert_eq!(
        err.to_string(),
        format!("task {id} panicked with message \"boom 1\"")
    );
    let payload = err.into_panic();
    assert_eq!(payload.downcast_ref::<String>().unwrap(), "boom 1");

    let err = rt.block_on(async {
        let h = wq::spawn(pending::<()>());
        h.abort();
        h.await.unwrap_err()
    });
    assert_eq!(err.to_string(), format!("task {} was cancelled", err.id()));
    assert!(err.try_into_panic().is_err());
}

#[test]
fn dropping_the_handle_detaches() {
    let rt = wq::Runtime::new().unwrap();
    let (tx, rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let handle = rt.spawn(async move {
        wq::blocking(|| go_rx.recv().unwrap());
        tx.send(42).unwrap();
    });
    drop(handle);
    go_tx.send(()).unwrap();
    assert_eq!(rx.recv().unwrap(), 42);
}

#[test]
fn join_handle_wakes_its_awaiter() {
    let rt = wq::Runtime::new().unwrap();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let handle = rt.spawn(async move {
        wq::blocking(|| go_rx.recv().unwrap());
        "finished"
    });
    let mut join = tokio_test::task::spawn(handle);
    assert_pending!(join.poll());
    go_tx.send(()).unwrap();
    assert!(support::eventually(
        std::time::Duration::from_secs(10),
        || join.is_woken()
    ));
    assert_eq!(assert_ready!(join.poll()).unwrap(), "finished");
}

#[test]
fn ids_are_unique() {
    let rt = wq::Runtime::new().unwrap();
    let ids: HashSet<_> = (0..1000).map(|_| rt.spawn(async {}).id()).collect();
    assert_eq!(ids.len(), 1000);
}

#[test]
fn join_set_returns_every_result() {
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let mut set = wq::task::JoinSet::new();
        for i in 0..100u32 {
            set.spawn(async move {
                wq::task::yield_now().await;
                i
            });
        }
        assert_eq!(set.len(), 100);
        let mut seen = HashSet::new();
        while let Some(result) = set.join_next().await {
            assert!(seen.insert(result.unwrap()));
        }
        assert_eq!(seen, (0..100).collect());
        assert!(set.is_empty());
        assert!(set.join_next().await.is_none());
    });
}

#[test]
fn join_set_abort_all_and_shutdown() {
    let counters = Counters::default();
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let mut set = wq::task::JoinSet::new();
        for _ in 0..50 {
            set.spawn(counters.track(pending::<()>()));
        }
        set.abort_all();
        let mut cancelled = 0;
        while let Some(result) = set.join_next().await {
            assert!(result.unwrap_err().is_cancelled());
            cancelled += 1;
        }
        assert_eq!(cancelled, 50);

        for _ in 0..50 {
            set.spawn(counters.track(pending::<()>()));
        }
        set.shutdown().await;
        assert!(set.is_empty());
    });
    assert_eq!(counters.drops(), 100);
}

#[test]
fn dropping_a_join_set_aborts_its_tasks() {
    let counters = Counters::default();
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let mut set = wq::task::JoinSet::new();
        for _ in 0..20 {
            set.spawn(counters.track(pending::<()>()));
        }
        drop(set);
        while counters.drops() < 20 {
            wq::task::yield_now().await;
        }
    });
    assert_eq!(counters.drops(), 20);
}

#[test]
fn yield_now_lets_other_tasks_run() {
    let rt = wq::Builder::new().workers(1).build().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    // Neither starts logging before both are spawned: on a loaded machine
    // the first could otherwise finish before the second is queued.
    let go = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spawn = |name: char| {
        let log = log.clone();
        let go = go.clone();
        rt.spawn(async move {
            while !go.load(std::sync::atomic::Ordering::SeqCst) {
                wq::task::yield_now().await;
            }
            for _ in 0..5 {
                log.lock().unwrap().push(name);
                wq::task::yield_now().await;
            }
        })
    };
    // Both are queued before a worker picks either.
    let (a, b) = {
        let _guard = rt.enter();
        (spawn('a'), spawn('b'))
    };
    go.store(true, std::sync::atomic::Ordering::SeqCst);
    rt.block_on(async {
        a.await.unwrap();
        b.await.unwrap();
    });
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 10);
    let first_b = log.iter().position(|&c| c == 'b').unwrap();
    let last_a = log.iter().rposition(|&c| c == 'a').unwrap();
    assert!(first_b < last_a, "tasks did not interleave: {log:?}");
}

#[test]
fn spawn_blocking_returns_value_and_panics() {
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let v = wq::task::spawn_blocking(|| 21 * 2).await.unwrap();
        assert_eq!(v, 42);
        let err = wq::task::spawn_blocking(|| panic!("in closure"))
            .await
            .unwrap_err();
        assert!(err.is_panic());
    });
}
