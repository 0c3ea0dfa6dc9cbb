//! Concurrency management: `wq::blocking` takes a worker out of the running
//! count and another takes its place.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Barrier};
use std::time::Duration;

use support::{eventually, threads_named};

/// With one concurrency slot, a task sleeping 200 ms inside `wq::blocking`
/// does not delay 100 other tasks: every one of them finishes while the
/// blocker still sleeps.
#[test]
fn blocked_worker_does_not_delay_other_tasks() {
    let rt = wq::Builder::new().workers(1).build().unwrap();
    let blocker_done = Arc::new(AtomicBool::new(false));
    let (inside_tx, inside_rx) = mpsc::channel();
    let blocker = rt.spawn({
        let blocker_done = blocker_done.clone();
        async move {
            wq::blocking(|| {
                inside_tx.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(200));
            });
            blocker_done.store(true, SeqCst);
        }
    });
    inside_rx.recv().unwrap();
    let finished_early = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..100)
        .map(|_| {
            let blocker_done = blocker_done.clone();
            let finished_early = finished_early.clone();
            rt.spawn(async move {
                wq::task::yield_now().await;
                if !blocker_done.load(SeqCst) {
                    finished_early.fetch_add(1, SeqCst);
                }
            })
        })
        .collect();
    rt.block_on(async {
        for handle in handles {
            handle.await.unwrap();
        }
        assert_eq!(finished_early.load(SeqCst), 100);
        blocker.await.unwrap();
    });
    assert!(blocker_done.load(SeqCst));
}

/// The running count drops by exactly one inside `wq::blocking`, nested
/// calls do not count twice, and it is restored on return.
#[test]
fn nested_blocking_counts_once() {
    let rt = wq::Builder::new().workers(1).build().unwrap();
    let metrics = rt.handle().metrics();
    let counts = rt
        .block_on(rt.spawn(async move {
            let before = metrics.num_running_workers();
            let (outer, inner) = wq::blocking(|| {
                let outer = metrics.num_running_workers();
                let inner = wq::blocking(|| metrics.num_running_workers());
                (outer, inner)
            });
            (before, outer, inner, metrics.num_running_workers())
        }))
        .unwrap();
    assert_eq!(counts, (1, 0, 0, 1));
}

/// `wq::blocking` works outside any runtime and on the `block_on` thread.
#[test]
fn blocking_outside_workers_just_calls() {
    assert_eq!(wq::blocking(|| 7), 7);
    let rt = wq::Runtime::new().unwrap();
    assert_eq!(rt.block_on(async { wq::blocking(|| 8) }), 8);
}

/// A panic inside `wq::blocking` unwinds through it and the worker counts as
/// running again.
#[test]
fn panic_inside_blocking_restores_the_count() {
    let rt = wq::Builder::new().workers(1).build().unwrap();
    let metrics = rt.handle().metrics();
    let err = rt
        .block_on(rt.spawn(async { wq::blocking(|| panic!("inside")) }))
        .unwrap_err();
    assert!(err.is_panic());
    let m = metrics.clone();
    let after = rt
        .block_on(rt.spawn(async move { m.num_running_workers() }))
        .unwrap();
    assert_eq!(after, 1);
}

/// Two tasks that can only finish together (a barrier inside blocking) do
/// finish with one concurrency slot: the second runs on a woken worker.
#[test]
fn blocked_tasks_get_replacement_workers() {
    let rt = wq::Builder::new().workers(1).build().unwrap();
    let barrier = Arc::new(Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let barrier = barrier.clone();
            rt.spawn(async move {
                wq::blocking(|| barrier.wait());
            })
        })
        .collect();
    rt.block_on(async {
        for handle in handles {
            handle.await.unwrap();
        }
    });
}

/// When blockers return, surplus workers go idle: the running count settles
/// back to zero once all work is done, and the thread count never exceeds
/// `max_workers`.
#[test]
fn surplus_workers_go_idle_and_threads_stay_capped() {
    let rt = wq::Builder::new()
        .workers(2)
        .max_workers(5)
        .thread_name("wqcap-worker")
        .build()
        .unwrap();
    let metrics = rt.handle().metrics();
    let max_seen = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..30)
        .map(|_| {
            let metrics = metrics.clone();
            let max_seen = max_seen.clone();
            rt.spawn(async move {
                wq::blocking(|| std::thread::sleep(Duration::from_millis(10)));
                max_seen.fetch_max(metrics.num_workers(), SeqCst);
                if let Some(n) = threads_named("wqcap-worker") {
                    max_seen.fetch_max(n, SeqCst);
                }
            })
        })
        .collect();
    rt.block_on(async {
        for handle in handles {
            handle.await.unwrap();
        }
    });
    assert!(
        max_seen.load(SeqCst) <= 5,
        "saw {} workers",
        max_seen.load(SeqCst)
    );
    assert!(
        eventually(Duration::from_secs(10), || metrics.num_running_workers()
            == 0),
        "running count did not settle: {metrics:?}"
    );
    assert_eq!(metrics.num_idle_workers(), metrics.num_workers());
}

/// Idle workers beyond the kernel's rule are culled after `idle_timeout`;
/// at least two idle workers stay.
#[test]
fn idle_workers_are_culled_after_the_timeout() {
    let rt = wq::Builder::new()
        .workers(1)
        .max_workers(16)
        .idle_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let metrics = rt.handle().metrics();
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let barrier = barrier.clone();
            rt.spawn(async move { wq::blocking(|| barrier.wait()) })
        })
        .collect();
    rt.block_on(async {
        for handle in handles {
            handle.await.unwrap();
        }
    });
    assert!(metrics.num_workers() >= 8);
    assert!(
        eventually(Duration::from_secs(10), || metrics.num_workers() == 2),
        "workers not culled to 2: {metrics:?}"
    );
    assert_eq!(metrics.num_idle_workers(), 2);
    // The pool still works after culling.
    assert_eq!(rt.block_on(rt.spawn(async { 1 })).unwrap(), 1);
}

/// The task a blocking task spawned last sits in its worker's LIFO slot,
/// to run next; it does not wait for the blocker: `wq::blocking` hands it
/// over, and a poll found stuck by the monitor leaves it stealable.
#[test]
fn the_task_spawned_last_does_not_wait_behind_its_blocked_spawner() {
    for annotated in [true, false] {
        let rt = wq::Builder::new().workers(1).build().unwrap();
        let blocker_done = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let blocker = rt.spawn({
            let blocker_done = blocker_done.clone();
            async move {
                let next = wq::spawn({
                    let blocker_done = blocker_done.clone();
                    async move { tx.send(blocker_done.load(SeqCst)).unwrap() }
                });
                let sleep = || std::thread::sleep(Duration::from_millis(300));
                if annotated {
                    wq::blocking(sleep);
                } else {
                    sleep();
                }
                blocker_done.store(true, SeqCst);
                next.await.unwrap();
            }
        });
        let blocker_had_returned = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(
            !blocker_had_returned,
            "annotated: {annotated}: the spawned task waited for its blocked spawner"
        );
        rt.block_on(blocker).unwrap();
    }
}

/// Runs `f` on a thread of its own; `None` if it has not returned within
/// 10 s (a hang becomes a failure, not a stuck test).
fn within_10s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(10)).ok()
}

/// A worker inside `wq::blocking` (or `spawn_blocking`) has left the
/// running count: it may block on a runtime, its own included, as tokio
/// allows `Handle::block_on` inside `block_in_place` and `spawn_blocking`.
#[test]
fn block_on_inside_blocking_sections() {
    let rt = wq::Builder::new().workers(2).build().unwrap();
    let handle = rt.handle().clone();
    let from_spawn_blocking = rt
        .block_on(rt.spawn_blocking(move || handle.block_on(async { 5 })))
        .unwrap();
    assert_eq!(from_spawn_blocking, 5);
    let from_blocking = rt
        .block_on(rt.spawn(async {
            wq::blocking(|| {
                wq::Handle::current().block_on(async {
                    // Tasks still run on the other worker meanwhile.
                    wq::spawn(async { 6 }).await.unwrap()
                })
            })
        }))
        .unwrap();
    assert_eq!(from_blocking, 6);

    let current = wq::Builder::new_current_thread().build().unwrap();
    let handle = current.handle().clone();
    let on_current = current
        .block_on(current.spawn_blocking(move || handle.block_on(async { 7 })))
        .unwrap();
    assert_eq!(on_current, 7);
}

/// A runtime may be built and dropped inside a blocking section; a worker
/// may even drop its own runtime there: the shutdown waits for the other
/// workers, not for the one that called it.
#[test]
fn a_runtime_can_be_dropped_inside_a_blocking_section() {
    let rt = wq::Builder::new().workers(2).build().unwrap();
    let inner_dropped = rt
        .block_on(rt.spawn_blocking(|| {
            let inner = wq::Builder::new().workers(1).build().unwrap();
            assert_eq!(inner.block_on(async { 1 }), 1);
            drop(inner);
            true
        }))
        .unwrap();
    assert!(inner_dropped);

    let own_dropped = within_10s(|| {
        let rt = wq::Builder::new().workers(2).build().unwrap();
        let slot = Arc::new(std::sync::Mutex::new(None::<wq::Runtime>));
        let (tx, rx) = mpsc::channel();
        // A task still pending at the shutdown: its future is dropped by it.
        struct CountDrop(Arc<AtomicUsize>);
        impl Drop for CountDrop {
            fn drop(&mut self) {
                self.0.fetch_add(1, SeqCst);
            }
        }
        let pending_dropped = Arc::new(AtomicUsize::new(0));
        let guard = CountDrop(pending_dropped.clone());
        rt.spawn(async move {
            let _guard = guard;
            wq::time::sleep(Duration::from_secs(60)).await;
        });
        rt.spawn({
            let slot = slot.clone();
            async move {
                let rt = slot.lock().unwrap().take().unwrap();
                wq::blocking(move || drop(rt));
                let _ = tx.send(());
            }
        });
        *slot.lock().unwrap() = Some(rt);
        rx.recv_timeout(Duration::from_secs(5)).is_ok() && pending_dropped.load(SeqCst) == 1
    });
    assert_eq!(
        own_dropped,
        Some(true),
        "dropping its own runtime inside wq::blocking hung, or left a task's future alive"
    );
}

/// On a current-thread runtime the `block_on` thread drives the runtime
/// even inside `wq::blocking`: blocking on a runtime there still panics
/// with tokio's message rather than stall the runtime's tasks.
#[test]
#[should_panic(expected = "Cannot start a runtime from within a runtime")]
fn block_on_inside_blocking_on_the_block_on_thread_panics() {
    let rt = wq::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        wq::blocking(|| wq::Handle::current().block_on(async {}));
    });
}
