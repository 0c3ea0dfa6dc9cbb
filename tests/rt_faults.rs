//! Fault injection: what the runtime does when the code it runs misbehaves.
//! Each outcome here is the documented one (README, "Faults").
//!
//! - A thread hook (`on_thread_start`, `on_thread_stop`, `on_thread_park`,
//!   `on_thread_unpark`) that panics: caught, reported at error level (the
//!   1st, 2nd, 4th… time), and the thread carries on.
//! - A future whose `Drop` panics: contained; as on tokio, its `JoinHandle`
//!   yields a panic error carrying the destructor's payload, whether the
//!   future had completed, was aborted, or was dropped at shutdown.
//! - A waker woken after its runtime is gone: nothing happens.
//! - A task that wakes itself in a tight loop: it runs as a yielding task,
//!   behind everything else that is ready; it starves nobody.
//!
//! Thread creation failing is covered by `rt_forward_progress.rs`.

mod support;

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, Once};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use support::{captured_logs, threads_named, Counters};

/// Every panic raised on purpose here starts with this.
const MARK: &str = "rt_faults: intended";

/// Keeps the default panic report for unexpected panics only.
fn quiet_intended_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let text = info
                .payload()
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
                .unwrap_or("");
            if !text.starts_with(MARK) {
                default(info);
            }
        }));
    });
}

fn logged() -> String {
    String::from_utf8(captured_logs().lock().unwrap().clone()).unwrap()
}

/// How many reports of a panicking hook named `hook` were logged.
fn hook_reports(hook: &str) -> usize {
    logged()
        .lines()
        .filter(|line| line.contains("a thread hook panicked") && line.contains(hook))
        .count()
}

/// Runs `n` tasks that each sleep on the runtime's timer (so that workers
/// park and unpark between them) and returns how many completed.
fn run_sleepers(rt: &wq::Runtime, n: usize) -> usize {
    let done = Arc::new(AtomicUsize::new(0));
    rt.block_on(async {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let done = done.clone();
                wq::spawn(async move {
                    wq::time::sleep(Duration::from_millis(1 + (i % 3) as u64)).await;
                    done.fetch_add(1, SeqCst);
                })
            })
            .collect();
        for handle in handles {
            handle.await.unwrap();
        }
    });
    done.load(SeqCst)
}

#[test]
fn a_panicking_start_hook_is_reported_and_its_worker_still_works() {
    quiet_intended_panics();
    captured_logs();
    let started = Arc::new(AtomicUsize::new(0));
    let counted = started.clone();
    let rt = wq::Builder::new()
        .workers(2)
        .thread_name("faults-start")
        .on_thread_start(move || {
            counted.fetch_add(1, SeqCst);
            panic!("{MARK}: on_thread_start");
        })
        .build()
        .unwrap();
    assert_eq!(run_sleepers(&rt, 200), 200);
    // The workers that ran the tasks are the ones whose hook panicked: no
    // thread was lost and none had to be replaced. A worker is counted
    // created once its thread is spawned, before the thread runs the hook:
    // one created late in the run may still be on its way to it.
    let metrics = rt.handle().metrics();
    assert_eq!(metrics.worker_create_failures(), 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while (started.load(SeqCst) as u64) < metrics.threads_created() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(started.load(SeqCst) as u64, metrics.threads_created());
    assert!(hook_reports("on_thread_start") >= 1, "{}", logged());
}

#[test]
fn panicking_park_and_unpark_hooks_are_reported_sparingly_and_change_nothing() {
    quiet_intended_panics();
    captured_logs();
    for flavor in ["multi_thread", "current_thread"] {
        // The log is shared by both flavors: count this runtime's reports.
        let reported_before = hook_reports("on_thread_park");
        let parks = Arc::new(AtomicUsize::new(0));
        let unparks = Arc::new(AtomicUsize::new(0));
        let (p, u) = (parks.clone(), unparks.clone());
        let builder = match flavor {
            "multi_thread" => wq::Builder::new_multi_thread(),
            _ => wq::Builder::new_current_thread(),
        };
        let rt = builder
            .on_thread_park(move || {
                p.fetch_add(1, SeqCst);
                panic!("{MARK}: on_thread_park");
            })
            .on_thread_unpark(move || {
                u.fetch_add(1, SeqCst);
                panic!("{MARK}: on_thread_unpark");
            })
            .build()
            .unwrap();
        assert_eq!(run_sleepers(&rt, 300), 300, "{flavor}");
        // Sleeps one after another: each needs a park of its own, however
        // late the threads ran above (the sleepers' deadlines may all have
        // passed by the first park when the machine is busy).
        rt.block_on(async {
            for _ in 0..5 {
                wq::time::sleep(Duration::from_millis(2)).await;
            }
        });
        drop(rt);
        let (parks, unparks) = (parks.load(SeqCst), unparks.load(SeqCst));
        assert!(parks >= 2 && unparks >= 2, "{flavor}: {parks} parks");
        // Reported the 1st, 2nd, 4th… time: never once per panic.
        let reports = hook_reports("on_thread_park") - reported_before;
        assert!(reports >= 1, "{flavor}: {}", logged());
        assert!(
            reports <= 2 * (usize::BITS - parks.leading_zeros()) as usize + 2,
            "{flavor}: {reports} reports for {parks} panics"
        );
    }
}

#[test]
fn a_panicking_stop_hook_does_not_hold_up_shutdown() {
    quiet_intended_panics();
    captured_logs();
    let stopped = Arc::new(AtomicUsize::new(0));
    let counted = stopped.clone();
    let rt = wq::Builder::new()
        .workers(2)
        .thread_name("faults-stop")
        .on_thread_stop(move || {
            counted.fetch_add(1, SeqCst);
            panic!("{MARK}: on_thread_stop");
        })
        .build()
        .unwrap();
    assert_eq!(run_sleepers(&rt, 50), 50);
    let created = rt.handle().metrics().threads_created() as usize;
    rt.shutdown_timeout(Duration::from_secs(10));
    // Every worker ran its hook and exited.
    assert_eq!(stopped.load(SeqCst), created);
    assert!(support::eventually(Duration::from_secs(5), || {
        threads_named("faults-stop") == Some(0)
    }));
    assert!(hook_reports("on_thread_stop") >= 1, "{}", logged());
}

/// A future that is ready after `polls` polls (never, if `None`), or
/// panics in its first poll if `panics`; it counts its drops and panics in
/// its destructor.
struct PanicOnDrop {
    polls: Option<usize>,
    panics: bool,
    drops: Arc<AtomicUsize>,
}

impl Future for PanicOnDrop {
    type Output = u32;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        if self.panics {
            panic!("{MARK}: poll");
        }
        match &mut self.polls {
            Some(0) => Poll::Ready(7),
            Some(n) => {
                *n -= 1;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            None => Poll::Pending,
        }
    }
}

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
        panic!("{MARK}: drop");
    }
}

fn panic_text(err: wq::task::JoinError) -> String {
    assert!(err.is_panic(), "not a panic: {err}");
    let payload = err.into_panic();
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap()
}

#[test]
fn a_destructor_panic_is_the_tasks_outcome_as_on_tokio() {
    quiet_intended_panics();
    let rt = wq::Builder::new().workers(2).build().unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    rt.block_on(async {
        // Completed, then its destructor panicked: the output is lost.
        let done = wq::spawn(PanicOnDrop {
            polls: Some(3),
            panics: false,
            drops: drops.clone(),
        });
        assert_eq!(panic_text(done.await.unwrap_err()), format!("{MARK}: drop"));

        // Aborted while pending.
        let aborted = wq::spawn(PanicOnDrop {
            polls: None,
            panics: false,
            drops: drops.clone(),
        });
        wq::task::yield_now().await;
        aborted.abort();
        assert_eq!(
            panic_text(aborted.await.unwrap_err()),
            format!("{MARK}: drop")
        );

        // The poll panicked first: its payload is the one reported.
        let both = wq::spawn(PanicOnDrop {
            polls: None,
            panics: true,
            drops: drops.clone(),
        });
        assert_eq!(panic_text(both.await.unwrap_err()), format!("{MARK}: poll"));

        // The workers carry on.
        assert_eq!(wq::spawn(async { 5 }).await.unwrap(), 5);
    });
    assert_eq!(drops.load(SeqCst), 3);
}

#[test]
fn shutdown_with_panicking_destructors_drops_each_once_and_resolves_every_handle() {
    quiet_intended_panics();
    for flavor in ["multi_thread", "current_thread"] {
        let rt = match flavor {
            "multi_thread" => wq::Builder::new_multi_thread(),
            _ => wq::Builder::new_current_thread(),
        }
        .build()
        .unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..100)
            .map(|i| {
                let fut = PanicOnDrop {
                    polls: None,
                    panics: false,
                    drops: drops.clone(),
                };
                // Half of them polled once before the shutdown.
                if i % 2 == 0 {
                    rt.spawn(fut)
                } else {
                    rt.spawn(async move {
                        wq::task::yield_now().await;
                        fut.await
                    })
                }
            })
            .collect();
        rt.block_on(async { wq::time::sleep(Duration::from_millis(5)).await });
        rt.shutdown_timeout(Duration::from_secs(10));
        assert_eq!(drops.load(SeqCst), 100, "{flavor}");
        for handle in handles {
            // The destructor's panic, as on tokio, whether the task was
            // polled to its cancellation or its runnable was dropped.
            let err = futures::executor::block_on(handle).unwrap_err();
            assert_eq!(panic_text(err), format!("{MARK}: drop"), "{flavor}");
        }
    }
}

/// Stores the waker of its first poll in `slot` and never completes.
fn waker_keeper(slot: Arc<Mutex<Option<Waker>>>, counters: &Counters) -> impl Future<Output = ()> {
    counters.track(poll_fn(move |cx| {
        *slot.lock().unwrap() = Some(cx.waker().clone());
        Poll::<()>::Pending
    }))
}

#[test]
fn wakers_woken_after_their_runtime_is_gone_do_nothing() {
    let counters = Counters::default();
    let slots: Vec<Arc<Mutex<Option<Waker>>>> = (0..3).map(|_| Arc::default()).collect();
    let rt = wq::Builder::new().workers(2).build().unwrap();
    let pool_task = rt.spawn(waker_keeper(slots[0].clone(), &counters));
    let local_slot = slots[1].clone();
    let local_counters = counters.clone();
    rt.block_on(async {
        let local = wq::task::LocalSet::new();
        local
            .run_until(async {
                drop(wq::task::spawn_local(waker_keeper(
                    local_slot,
                    &local_counters,
                )));
                wq::task::yield_now().await;
            })
            .await;
        // The set and its task are gone with the set.
    });
    let current = wq::Builder::new_current_thread().build().unwrap();
    let current_task = current.spawn(waker_keeper(slots[2].clone(), &counters));
    current.block_on(wq::task::yield_now());
    assert!(support::eventually(Duration::from_secs(5), || slots
        .iter()
        .all(|slot| slot.lock().unwrap().is_some())));

    drop(rt);
    drop(current);
    assert_eq!(counters.drops(), 3, "each future dropped once");
    for slot in &slots {
        let waker = slot.lock().unwrap().take().unwrap();
        waker.wake_by_ref();
        let other = std::thread::spawn(move || waker.wake());
        other.join().unwrap();
    }
    assert_eq!(counters.drops(), 3);
    assert_eq!(counters.completions(), 0);
    assert!(futures::executor::block_on(pool_task)
        .unwrap_err()
        .is_cancelled());
    assert!(futures::executor::block_on(current_task)
        .unwrap_err()
        .is_cancelled());
}

/// Wakes itself and returns `Pending` on every poll, forever.
async fn wake_self_forever(polls: Arc<AtomicUsize>) {
    poll_fn(|cx| {
        polls.fetch_add(1, SeqCst);
        cx.waker().wake_by_ref();
        Poll::<()>::Pending
    })
    .await
}

#[test]
fn a_task_waking_itself_in_a_tight_loop_starves_nobody() {
    for flavor in ["multi_thread", "current_thread"] {
        let builder = match flavor {
            "multi_thread" => wq::Builder::new_multi_thread().worker_threads(1),
            _ => wq::Builder::new_current_thread(),
        };
        let rt = builder.build().unwrap();
        let polls = Arc::new(AtomicUsize::new(0));
        let spinner = rt.spawn(wake_self_forever(polls.clone()));
        let start = Instant::now();
        rt.block_on(async {
            // Tasks, a timer and I/O all get through.
            let tasks: Vec<_> = (0..200u32).map(|i| wq::spawn(async move { i })).collect();
            for (i, task) in tasks.into_iter().enumerate() {
                assert_eq!(task.await.unwrap(), i as u32);
            }
            wq::time::sleep(Duration::from_millis(20)).await;
            let listener = wq::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = wq::spawn(async move {
                let (socket, _) = listener.accept().await.unwrap();
                support::echo_connection(socket).await;
            });
            let client = wq::net::TcpStream::connect(addr).await.unwrap();
            let sent = vec![42u8; 10_000];
            assert_eq!(support::echo_round_trip(client, &sent).await, sent);
            server.await.unwrap();
        });
        assert!(start.elapsed() >= Duration::from_millis(20));
        let before = polls.load(SeqCst);
        assert!(before > 0, "{flavor}: the spinner never ran");
        // It still runs (on the current-thread flavor, only while a thread
        // blocks on the runtime), and aborting it ends it.
        if flavor == "current_thread" {
            rt.block_on(async { wq::time::sleep(Duration::from_millis(5)).await });
        }
        assert!(support::eventually(Duration::from_secs(5), || polls
            .load(SeqCst)
            > before));
        spinner.abort();
        assert!(rt.block_on(spinner).unwrap_err().is_cancelled(), "{flavor}");
        let after_abort = polls.load(SeqCst);
        rt.block_on(async { wq::time::sleep(Duration::from_millis(10)).await });
        assert_eq!(
            polls.load(SeqCst),
            after_abort,
            "{flavor}: polled after abort"
        );
    }
}

/// A spinner like the above on a runtime that is then dropped: the drop
/// returns (the task is dropped at its next poll's end) and the future is
/// dropped once.
#[test]
fn a_runtime_with_a_self_waking_task_shuts_down() {
    let counters = Counters::default();
    let rt = wq::Builder::new().workers(2).build().unwrap();
    let polls = Arc::new(AtomicUsize::new(0));
    let handle = rt.spawn(counters.track(wake_self_forever(polls.clone())));
    assert!(support::eventually(Duration::from_secs(5), || polls
        .load(SeqCst)
        > 1000));
    rt.shutdown_timeout(Duration::from_secs(10));
    assert_eq!(counters.drops(), 1);
    assert!(futures::executor::block_on(handle)
        .unwrap_err()
        .is_cancelled());
}
