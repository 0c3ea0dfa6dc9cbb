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

/// An abort handle made while its task finishes on a worker sees the task
/// finished once the join handle does: the two are told through different
/// flags (the abort handles' are made with the first of them), and neither
/// side may miss the other.
#[test]
fn abort_handles_made_as_tasks_finish_see_them_finished() {
    let rt = wq::Runtime::new().unwrap();
    for _ in 0..2_000 {
        let handle = rt.spawn(async {});
        let abort = handle.abort_handle();
        while !handle.is_finished() {
            std::thread::yield_now();
        }
        assert!(abort.is_finished());
        let late = handle.abort_handle();
        assert!(late.is_finished());
        // Aborting a finished task keeps its result.
        abort.abort();
        rt.block_on(handle).unwrap();
        assert!(late.is_finished());
    }
}

#[test]
fn abort_handle_of_an_unspawned_task_is_finished() {
    let rt = wq::Runtime::new().unwrap();
    let handle = rt.handle().clone();
    drop(rt);
    let refused = handle.spawn(async {});
    let abort = refused.abort_handle();
    assert!(abort.is_finished());
    abort.abort();
    assert_eq!(abort.id(), refused.id());
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

/// The panic message of `payload`.
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => payload.downcast_ref::<&str>().unwrap().to_string(),
    }
}

#[test]
fn join_set_spawn_blocking_and_spawn_blocking_on() {
    let rt = wq::Runtime::new().unwrap();
    let mut set = wq::task::JoinSet::new();
    let mut ids = std::collections::HashMap::new();
    for i in 0..4u32 {
        let abort = set.spawn_blocking_on(
            move || {
                std::thread::sleep(std::time::Duration::from_millis(5));
                i
            },
            rt.handle(),
        );
        ids.insert(abort.id(), i);
    }
    rt.block_on(async {
        for i in 4..8u32 {
            ids.insert(set.spawn_blocking(move || i).id(), i);
        }
        let mut joined = 0;
        while let Some(result) = set.join_next_with_id().await {
            let (id, output) = result.unwrap();
            assert_eq!(ids.remove(&id), Some(output));
            joined += 1;
        }
        assert_eq!(joined, 8);
    });
    assert!(ids.is_empty());
}

#[test]
fn join_set_spawn_local_and_spawn_local_on() {
    use std::rc::Rc;

    let rt = wq::Runtime::new().unwrap();
    let local = wq::task::LocalSet::new();
    let shared = Rc::new(10);
    let mut set = wq::task::JoinSet::new();
    let early = {
        let shared = shared.clone();
        set.spawn_local_on(async move { *shared + 1 }, &local)
    };
    let mut outputs = local.block_on(&rt, async {
        let late = {
            let shared = shared.clone();
            set.spawn_local(async move {
                wq::task::yield_now().await;
                *shared + 2
            })
        };
        assert_ne!(late.id(), early.id());
        set.join_all().await
    });
    outputs.sort_unstable();
    assert_eq!(outputs, [11, 12]);
    assert_eq!(Rc::strong_count(&shared), 1);
}

#[test]
#[should_panic(expected = "`spawn_local` called from outside of a `task::LocalSet`")]
fn join_set_spawn_local_outside_a_local_set_panics() {
    let mut set = wq::task::JoinSet::new();
    set.spawn_local(async {});
}

#[test]
fn join_next_with_id_gives_each_tasks_id() {
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let mut set = wq::task::JoinSet::new();
        let mut ids = std::collections::HashMap::new();
        for i in 0..20u32 {
            let abort = set.spawn(async move {
                wq::task::yield_now().await;
                i
            });
            ids.insert(abort.id(), i);
        }
        let panicking = set.spawn(async { panic!("boom") }).id();
        let mut errors = 0;
        while let Some(result) = set.join_next_with_id().await {
            match result {
                Ok((id, output)) => assert_eq!(ids.remove(&id), Some(output)),
                Err(err) => {
                    assert!(err.is_panic());
                    assert_eq!(err.id(), panicking);
                    errors += 1;
                }
            }
        }
        assert!(ids.is_empty());
        assert_eq!(errors, 1);
    });
}

#[test]
fn poll_join_next_with_id_gives_the_id() {
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let mut set = wq::task::JoinSet::new();
        let id = set.spawn(async { "out" }).id();
        let polled = std::future::poll_fn(|cx| set.poll_join_next_with_id(cx)).await;
        assert_eq!(polled.unwrap().unwrap(), (id, "out"));
        let empty = std::future::poll_fn(|cx| set.poll_join_next_with_id(cx)).await;
        assert!(empty.is_none());
    });
}

#[test]
fn try_join_next_returns_only_finished_tasks() {
    let rt = wq::Runtime::new().unwrap();
    let mut set = wq::task::JoinSet::new();
    assert!(set.try_join_next().is_none());
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let gated = set.spawn_on(
        async move {
            go_rx.await.unwrap();
            1
        },
        rt.handle(),
    );
    let quick = set.spawn_on(async { 2 }, rt.handle());
    // Outside any task and any runtime: no context needed.
    let mut joined = None;
    assert!(support::eventually(
        std::time::Duration::from_secs(10),
        || {
            joined = set.try_join_next_with_id();
            joined.is_some()
        }
    ));
    assert_eq!(joined.unwrap().unwrap(), (quick.id(), 2));
    assert!(set.try_join_next().is_none());
    assert_eq!(set.len(), 1);
    go_tx.send(()).unwrap();
    assert!(support::eventually(
        std::time::Duration::from_secs(10),
        || set.try_join_next().is_some()
    ));
    assert!(gated.is_finished());
    assert!(set.is_empty());
    assert!(set.try_join_next().is_none());
}

/// `try_join_next` polls without a waker of its own: the waker of the last
/// `poll_join_next` still receives the wake of a task that finishes later.
#[test]
fn try_join_next_keeps_the_last_pollers_wakeup() {
    let rt = wq::Runtime::new().unwrap();
    let mut set = wq::task::JoinSet::new();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    set.spawn_on(
        async move {
            go_rx.await.unwrap();
            "late"
        },
        rt.handle(),
    );
    let mut joiner = tokio_test::task::spawn(());
    assert!(joiner.enter(|cx, _| set.poll_join_next(cx)).is_pending());
    assert!(set.try_join_next().is_none());
    assert!(!joiner.is_woken());
    go_tx.send(()).unwrap();
    assert!(support::eventually(
        std::time::Duration::from_secs(10),
        || joiner.is_woken()
    ));
    let joined = joiner.enter(|cx, _| set.poll_join_next(cx));
    assert_eq!(assert_ready!(joined).unwrap().unwrap(), "late");
}

#[test]
fn join_next_after_try_join_next_is_woken() {
    let rt = wq::Runtime::new().unwrap();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let output = rt.block_on(async {
        let mut set = wq::task::JoinSet::new();
        set.spawn(async move {
            wq::blocking(|| go_rx.recv().unwrap());
            7
        });
        assert!(set.try_join_next().is_none());
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            go_tx.send(()).unwrap();
        });
        set.join_next().await.unwrap().unwrap()
    });
    assert_eq!(output, 7);
}

/// On a current-thread runtime a task's completion reaches the set before
/// `block_on`'s future runs again, so `is_finished` is enough to wait on.
#[test]
fn try_join_next_ignores_a_spent_budget() {
    let rt = wq::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let mut set = wq::task::JoinSet::new();
        let handle = set.spawn(async { 3 });
        while !handle.is_finished() {
            wq::task::yield_now().await;
        }
        // Spend this poll's budget without yielding.
        while wq::task::coop::has_budget_remaining() {
            wq::task::coop::cooperative(std::future::ready(())).await;
        }
        assert_eq!(set.try_join_next().unwrap().unwrap(), 3);
    });
}

/// Tasks that finish before the set is ever polled are still joined in
/// the order they finished, not the order they were spawned.
#[test]
fn join_all_returns_outputs_in_completion_order() {
    let rt = wq::Builder::new_current_thread().build().unwrap();
    let outputs = rt.block_on(async {
        let mut set = wq::task::JoinSet::new();
        let mut gates = Vec::new();
        let mut handles = Vec::new();
        for name in ["a", "b", "c"] {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            gates.push(Some(tx));
            handles.push(set.spawn(async move {
                rx.await.unwrap();
                name
            }));
        }
        for i in [2, 0, 1] {
            gates[i].take().unwrap().send(()).unwrap();
            while !handles[i].is_finished() {
                wq::task::yield_now().await;
            }
        }
        set.join_all().await
    });
    assert_eq!(outputs, ["c", "a", "b"]);
}

#[test]
fn join_all_resumes_a_panic_and_aborts_the_rest() {
    use futures::FutureExt;

    let counters = Counters::default();
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let mut set = wq::task::JoinSet::new();
        for _ in 0..3 {
            set.spawn(counters.track(pending::<u32>()));
        }
        set.spawn(async { panic!("boom in a task") });
        let caught = std::panic::AssertUnwindSafe(set.join_all())
            .catch_unwind()
            .await;
        assert_eq!(panic_message(caught.unwrap_err()), "boom in a task");
        while counters.drops() < 3 {
            wq::task::yield_now().await;
        }
    });
    assert_eq!(counters.drops(), 3);
    assert_eq!(counters.completions(), 0);
}

#[test]
fn join_all_panics_on_a_cancelled_task() {
    use futures::FutureExt;

    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let mut set = wq::task::JoinSet::<()>::new();
        let id = set.spawn(pending()).id();
        set.abort_all();
        let caught = std::panic::AssertUnwindSafe(set.join_all())
            .catch_unwind()
            .await;
        assert_eq!(
            panic_message(caught.unwrap_err()),
            format!("task {id} was cancelled")
        );
    });
}

#[test]
fn detach_all_leaves_the_tasks_running() {
    let counters = Counters::default();
    let rt = wq::Runtime::new().unwrap();
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    rt.block_on(async {
        let mut set = wq::task::JoinSet::new();
        for _ in 0..5 {
            let mut go_rx = go_rx.clone();
            set.spawn(counters.track(async move {
                go_rx.wait_for(|go| *go).await.unwrap();
            }));
        }
        set.detach_all();
        assert!(set.is_empty());
        assert!(set.join_next().await.is_none());
        drop(set);
        go_tx.send(true).unwrap();
        while counters.drops() < 5 {
            wq::task::yield_now().await;
        }
    });
    assert_eq!(counters.completions(), 5);
    assert_eq!(counters.drops(), 5);
}

#[test]
fn join_set_from_iterator_and_extend() {
    let rt = wq::Runtime::new().unwrap();
    let mut outputs = rt.block_on(async {
        let mut set: wq::task::JoinSet<u32> = (0..3).map(|i| async move { i }).collect();
        set.extend((3..5).map(|i| async move { i }));
        assert_eq!(set.len(), 5);
        set.join_all().await
    });
    outputs.sort_unstable();
    assert_eq!(outputs, [0, 1, 2, 3, 4]);
}
