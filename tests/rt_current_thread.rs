//! The current-thread flavor: tasks, timers and I/O run on the thread that
//! blocks on the runtime, while it does; how concurrency management applies
//! to that one worker (see `Builder::new_current_thread`).

// These tests build whole runtimes, which loom's model checker cannot drive.
#![cfg(not(loom))]

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use support::{eventually, threads_named};

fn current_thread() -> wq::Runtime {
    wq::Builder::new_current_thread().build().unwrap()
}

#[test]
fn tasks_run_on_the_block_on_thread_and_no_thread_is_created() {
    let rt = wq::Builder::new_current_thread()
        .thread_name("ct-alone")
        .build()
        .unwrap();
    let here = std::thread::current().id();
    let ran_on = rt.block_on(async {
        let tasks: Vec<_> = (0..10)
            .map(|_| wq::spawn(async { std::thread::current().id() }))
            .collect();
        let mut ran_on = Vec::new();
        for task in tasks {
            ran_on.push(task.await.unwrap());
        }
        ran_on
    });
    assert!(ran_on.iter().all(|&id| id == here));
    assert_eq!(rt.handle().metrics().threads_created(), 0);
    assert_eq!(threads_named("ct-alone"), Some(0));
    assert_eq!(
        rt.handle().runtime_flavor(),
        wq::RuntimeFlavor::CurrentThread
    );
}

#[test]
fn nothing_runs_while_nobody_blocks_on_it() {
    let rt = current_thread();
    let ran = Arc::new(AtomicBool::new(false));
    let task = rt.spawn({
        let ran = ran.clone();
        async move { ran.store(true, SeqCst) }
    });
    let timer = {
        let _guard = rt.enter();
        wq::spawn(wq::time::sleep(Duration::from_millis(5)))
    };
    // A block_on that registers the timer's task and leaves at once.
    rt.block_on(async {});
    std::thread::sleep(Duration::from_millis(50));
    assert!(!ran.load(SeqCst), "a task ran with nobody in block_on");
    assert!(
        !timer.is_finished(),
        "a timer fired with nobody in block_on"
    );
    rt.block_on(async {
        task.await.unwrap();
        timer.await.unwrap();
    });
    assert!(ran.load(SeqCst));
}

#[test]
fn workers_other_than_one_is_an_error() {
    let err = wq::Builder::new_current_thread()
        .workers(2)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("`workers`"), "{err}");
    assert!(wq::Builder::new_current_thread().workers(1).build().is_ok());
}

/// With the default `max_workers(1)` nothing can take the `block_on`
/// thread's place: a task that blocks it without annotation holds up the
/// others, as on tokio's current-thread runtime, and the monitor finds it.
#[test]
fn with_one_worker_a_blocker_holds_the_runtime_and_the_monitor_finds_it() {
    let rt = current_thread();
    let blocker_done = Arc::new(AtomicBool::new(false));
    let other_ran_first = rt.block_on(async {
        let blocker = wq::spawn({
            let blocker_done = blocker_done.clone();
            async move {
                std::thread::sleep(Duration::from_millis(100));
                blocker_done.store(true, SeqCst);
            }
        });
        // The root yields: the blocker runs (and blocks) before it resumes.
        wq::task::yield_now().await;
        let other = wq::spawn({
            let blocker_done = blocker_done.clone();
            async move { !blocker_done.load(SeqCst) }
        });
        let other_ran_first = other.await.unwrap();
        blocker.await.unwrap();
        other_ran_first
    });
    assert!(!other_ran_first);
    assert_eq!(rt.handle().metrics().blocked_detections(), 1);
    assert_eq!(rt.handle().metrics().threads_created(), 0);
}

/// With `max_workers(2)`, a helper thread runs the tasks while the
/// `block_on` thread is blocked, found by the monitor or said with
/// `wq::blocking`.
#[test]
fn with_room_for_a_helper_others_run_while_the_block_on_thread_blocks() {
    for annotated in [false, true] {
        let rt = wq::Builder::new_current_thread()
            .max_workers(2)
            .build()
            .unwrap();
        let blocker_done = Arc::new(AtomicBool::new(false));
        let other_ran_first = rt.block_on(async {
            let other = wq::spawn({
                let blocker_done = blocker_done.clone();
                async move { !blocker_done.load(SeqCst) }
            });
            // The root future itself blocks.
            let sleep = || std::thread::sleep(Duration::from_millis(300));
            if annotated {
                wq::blocking(sleep);
            } else {
                sleep();
            }
            blocker_done.store(true, SeqCst);
            other.await.unwrap()
        });
        assert!(other_ran_first, "annotated: {annotated}");
        assert!(rt.handle().metrics().threads_created() >= 1);
    }
}

#[test]
fn spawn_blocking_runs_off_the_block_on_thread() {
    let rt = current_thread();
    let here = std::thread::current().id();
    let (ran_on, root_went_on) = rt.block_on(async {
        let started = Arc::new(AtomicBool::new(false));
        let blocking = wq::task::spawn_blocking({
            let started = started.clone();
            move || {
                started.store(true, SeqCst);
                std::thread::sleep(Duration::from_millis(100));
                std::thread::current().id()
            }
        });
        // The root keeps running (its timers too) while the closure blocks.
        while !started.load(SeqCst) {
            wq::time::sleep(Duration::from_millis(1)).await;
        }
        let root_went_on = !blocking.is_finished();
        (blocking.await.unwrap(), root_went_on)
    });
    assert_ne!(ran_on, here);
    assert!(root_went_on);
}

/// Two threads block on one current-thread runtime: one serves as its
/// worker, the other waits on its own future, which that worker's tasks
/// complete; when the first leaves, the second takes over.
#[test]
fn two_threads_block_on_it_at_once() {
    let rt = Arc::new(current_thread());
    let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
    let first_in = Arc::new(AtomicBool::new(false));
    let first = std::thread::spawn({
        let (rt, first_in) = (rt.clone(), first_in.clone());
        move || {
            rt.block_on(async move {
                first_in.store(true, SeqCst);
                wq::time::sleep(Duration::from_millis(50)).await;
                // Leaves a task that only the second thread can still run.
                wq::spawn(async move {
                    wq::time::sleep(Duration::from_millis(50)).await;
                    tx.send(7).unwrap();
                });
            })
        }
    });
    assert!(eventually(Duration::from_secs(10), || first_in.load(SeqCst)));
    let got = rt.block_on(async { rx.await.unwrap() });
    first.join().unwrap();
    assert_eq!(got, 7);
}

/// A panic in `block_on`'s future leaves the runtime usable: the thread
/// left the pool cleanly.
#[test]
fn a_panicking_block_on_leaves_the_runtime_usable() {
    let rt = current_thread();
    let left = rt.spawn(async { 1 });
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async {
            wq::task::yield_now().await;
            panic!("root panicked");
        })
    }));
    assert!(caught.is_err());
    assert_eq!(rt.block_on(left).unwrap(), 1);
    assert_eq!(
        rt.block_on(async { wq::spawn(async { 2 }).await.unwrap() }),
        2
    );
}

#[test]
fn park_hooks_run_on_the_block_on_thread() {
    let parks = Arc::new(AtomicUsize::new(0));
    let unparks = Arc::new(AtomicUsize::new(0));
    let rt = wq::Builder::new_current_thread()
        .on_thread_park({
            let parks = parks.clone();
            move || {
                parks.fetch_add(1, SeqCst);
            }
        })
        .on_thread_unpark({
            let unparks = unparks.clone();
            move || {
                unparks.fetch_add(1, SeqCst);
            }
        })
        .build()
        .unwrap();
    rt.block_on(async {
        for _ in 0..3 {
            wq::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let (parks, unparks) = (parks.load(SeqCst), unparks.load(SeqCst));
    assert!(parks >= 3, "{parks} parks");
    assert_eq!(parks, unparks);
}

#[test]
fn shutdown_background_inside_a_task() {
    let outer = current_thread();
    let dropped = outer.block_on(async {
        let inner = current_thread();
        let counters = support::Counters::default();
        inner.spawn(counters.track(std::future::pending::<()>()));
        inner.shutdown_background();
        counters.drops()
    });
    assert_eq!(dropped, 1);
}

/// A root future that keeps yielding lets the tasks run in between, and
/// tasks that keep yielding let the root run.
#[test]
fn the_root_and_the_tasks_take_turns() {
    let rt = current_thread();
    let task_turns = Arc::new(AtomicUsize::new(0));
    let seen_by_root = rt.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let spinner = wq::spawn({
            let (stop, task_turns) = (stop.clone(), task_turns.clone());
            async move {
                while !stop.load(SeqCst) {
                    task_turns.fetch_add(1, SeqCst);
                    wq::task::yield_now().await;
                }
            }
        });
        let mut seen = Vec::new();
        for _ in 0..10 {
            wq::task::yield_now().await;
            seen.push(task_turns.load(SeqCst));
        }
        stop.store(true, SeqCst);
        spinner.await.unwrap();
        seen
    });
    // The task ran between every two polls of the root, and the root got
    // its ten turns while the task was still spinning.
    assert!(
        seen_by_root.windows(2).all(|w| w[1] > w[0]),
        "{seen_by_root:?}"
    );
}

/// A root woken while the `block_on` thread runs tasks is polled at once,
/// even when the thread goes idle before it gets to the root: a task in
/// `wq::blocking` with other tasks queued has a helper kicked, back from the
/// blocking section the thread is surplus and retires, and its park (which
/// takes the root's wake) sends it back to run a queued task first (the
/// root may wait up to 61 tasks), after which it retires again. That second
/// park used to wait for the idle timeout with the root woken.
#[test]
fn a_woken_root_is_polled_even_if_the_thread_retires_first() {
    let rt = wq::Builder::new_current_thread()
        .max_workers(2)
        .thread_keep_alive(Duration::from_secs(2))
        .build()
        .unwrap();
    let stalled = rt.block_on(async {
        for round in 0..3000 {
            let start = std::time::Instant::now();
            let queued: Vec<_> = (0..20).map(|_| wq::spawn(wq::task::yield_now())).collect();
            let sleep = || std::thread::sleep(Duration::from_micros(200));
            wq::spawn(async move { wq::blocking(sleep) }).await.unwrap();
            for task in queued {
                task.await.unwrap();
            }
            if start.elapsed() > Duration::from_secs(1) {
                return Some((round, start.elapsed()));
            }
        }
        None
    });
    assert_eq!(stalled, None, "(round, how long the root waited)");
}
