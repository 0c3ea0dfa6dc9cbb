//! Timers of a runtime that has shut down: a sleep waiting at shutdown is
//! woken, and polling a timer of a shut-down runtime panics (as tokio's do)
//! rather than wait for a driver that is gone. Shutdown itself drops the
//! tasks that own timers without a panic.

use std::any::Any;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use futures::FutureExt;
use wq::time::{interval, sleep, timeout};

const SHUT_DOWN: &str = "this timer's runtime has shut down, so the timer can never fire";

/// Runs `f` on a thread of its own and returns what it returned, or the
/// text of its panic; `None` if it has not finished within 5 s (the thread
/// is left behind: a timer that never fires would hold it forever).
fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<Result<T, String>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(result.map_err(panic_text));
    });
    rx.recv_timeout(Duration::from_secs(5)).ok()
}

fn panic_text(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(text) => *text,
        Err(payload) => payload
            .downcast_ref::<&str>()
            .map(|text| text.to_string())
            .unwrap_or_default(),
    }
}

fn assert_shut_down_panic<T: std::fmt::Debug>(outcome: Option<Result<T, String>>) {
    match outcome {
        None => panic!("the timer was still waiting 5 s after its runtime shut down"),
        Some(Ok(value)) => panic!("the timer completed ({value:?}) after its runtime shut down"),
        Some(Err(text)) => assert!(text.contains(SHUT_DOWN), "unexpected panic: {text:?}"),
    }
}

/// A thread in `block_on` on a sleep of `rt` (registered) while `rt` is
/// dropped: the sleep is woken and panics.
fn sleep_in_block_on_while_dropped(rt: wq::Runtime) {
    let handle = rt.handle().clone();
    let (registered_tx, registered_rx) = mpsc::channel();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            handle.block_on(async {
                let mut sleep = std::pin::pin!(sleep(Duration::from_secs(3600)));
                assert!((&mut sleep).now_or_never().is_none());
                registered_tx.send(()).unwrap();
                sleep.await;
            })
        }));
        let _ = tx.send(result.map_err(panic_text));
    });
    registered_rx.recv().unwrap();
    drop(rt);
    assert_shut_down_panic(rx.recv_timeout(Duration::from_secs(5)).ok());
}

#[test]
fn a_sleep_in_block_on_while_the_runtime_is_dropped_panics() {
    sleep_in_block_on_while_dropped(wq::Builder::new().workers(1).build().unwrap());
}

#[test]
fn a_sleep_in_current_thread_block_on_while_the_runtime_is_dropped_panics() {
    sleep_in_block_on_while_dropped(wq::Builder::new_current_thread().build().unwrap());
}

#[test]
fn block_on_a_sleep_after_the_runtime_is_dropped_panics() {
    let rt = wq::Builder::new().workers(1).build().unwrap();
    let handle = rt.handle().clone();
    drop(rt);
    assert_shut_down_panic(bounded(move || {
        handle.block_on(async { sleep(Duration::from_millis(10)).await })
    }));
}

#[test]
fn current_thread_block_on_a_sleep_after_the_runtime_is_dropped_panics() {
    let rt = wq::Builder::new_current_thread().build().unwrap();
    let handle = rt.handle().clone();
    drop(rt);
    assert_shut_down_panic(bounded(move || {
        handle.block_on(async { sleep(Duration::from_millis(10)).await })
    }));
}

#[test]
fn a_sleep_of_a_dropped_runtime_panics_when_awaited_on_another() {
    let a = wq::Builder::new().workers(1).build().unwrap();
    let sleep = {
        let _guard = a.enter();
        sleep(Duration::from_millis(10))
    };
    drop(a);
    assert_shut_down_panic(bounded(move || {
        let b = wq::Builder::new().workers(1).build().unwrap();
        b.block_on(sleep)
    }));
}

/// A timeout polls its future first, as tokio's does: a ready future
/// still wins; a pending one leads to the delay, which panics.
#[test]
fn a_timeout_of_a_dropped_runtime_panics_unless_its_future_is_ready() {
    let rt = wq::Builder::new().workers(1).build().unwrap();
    let (ready, pending) = {
        let _guard = rt.enter();
        (
            timeout(Duration::from_millis(10), async { 7 }),
            timeout(Duration::from_millis(10), std::future::pending::<()>()),
        )
    };
    drop(rt);
    let other = wq::Builder::new().workers(1).build().unwrap();
    assert_eq!(other.block_on(ready), Ok(7));
    assert_shut_down_panic(bounded(move || other.block_on(pending)));
}

#[test]
fn an_interval_of_a_dropped_runtime_panics() {
    let rt = wq::Builder::new().workers(1).build().unwrap();
    let mut ticks = {
        let _guard = rt.enter();
        interval(Duration::from_millis(10))
    };
    drop(rt);
    assert_shut_down_panic(bounded(move || {
        let other = wq::Builder::new().workers(1).build().unwrap();
        other.block_on(ticks.tick())
    }));
}

/// Tasks waiting on timers are dropped by shutdown, each exactly once, and
/// their handles report a cancellation, not a panic: dropping a timer of a
/// shut-down runtime is fine, only polling one panics. All are dropped
/// before the runtime's drop returns, even when the last worker to exit
/// shuts the timers down (and so drops the tasks) before the runtime's own
/// shutdown gets to them: 100 rounds, since that race shows in a few.
#[test]
fn shutdown_drops_the_tasks_that_sleep() {
    const TASKS: usize = 50;
    struct CountDrop(Arc<AtomicUsize>);
    impl Drop for CountDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }
    for round in 0..100 {
        let rt = wq::Builder::new().workers(2).build().unwrap();
        let dropped = Arc::new(AtomicUsize::new(0));
        let slept = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..TASKS)
            .map(|_| {
                let guard = CountDrop(dropped.clone());
                let slept = slept.clone();
                rt.spawn(async move {
                    let _guard = guard;
                    // Registered, not yet fired.
                    slept.fetch_add(1, SeqCst);
                    sleep(Duration::from_secs(3600)).await;
                })
            })
            .collect();
        while slept.load(SeqCst) < TASKS {
            std::thread::yield_now();
        }
        // A sleep outside any task, registered, dropped after the shutdown.
        let mut idle = Box::pin({
            let _guard = rt.enter();
            sleep(Duration::from_secs(3600))
        });
        assert!(rt.block_on(async { (&mut idle).now_or_never() }).is_none());
        drop(rt);
        assert_eq!(
            dropped.load(SeqCst),
            TASKS,
            "round {round}: dropped when the drop returned"
        );
        drop(idle);
        let other = wq::Builder::new().workers(1).build().unwrap();
        for handle in handles {
            let err = other.block_on(handle).unwrap_err();
            assert!(err.is_cancelled(), "{err:?}");
        }
    }
}

/// A shutdown that does not wait (`shutdown_background`) leaves a task in
/// its poll: that poll may still arm a timer, since the timers shut down
/// only when the last worker exits. The task is then cancelled, as any task
/// of a closed runtime, rather than panic; and a sleep of that runtime
/// polled afterwards panics as after a drop.
#[test]
fn a_poll_left_running_by_shutdown_background_may_still_arm_a_timer() {
    let rt = wq::Builder::new()
        .workers(1)
        .monitor(false)
        .build()
        .unwrap();
    let handle = rt.handle().clone();
    let (polling_tx, polling_rx) = mpsc::channel();
    let task = rt.spawn(async move {
        polling_tx.send(()).unwrap();
        // Still in this poll when the runtime shuts down.
        std::thread::sleep(Duration::from_millis(200));
        sleep(Duration::from_millis(1)).await;
    });
    polling_rx.recv().unwrap();
    rt.shutdown_background();
    let joined = bounded(move || futures::executor::block_on(task));
    match joined {
        Some(Ok(Err(err))) => assert!(err.is_cancelled(), "the task ended with {err:?}"),
        other => panic!("the task left running was not cancelled: {other:?}"),
    }
    // The worker has exited by now (its task is gone): the timers too.
    assert_shut_down_panic(bounded(move || {
        handle.block_on(async { sleep(Duration::from_millis(1)).await })
    }));
}
