//! The monitor: tasks that block or spin inside a poll, with no annotation,
//! do not stall the runtime.
//!
//! Bounds come from the mechanism: a blocked poll is found within about 2 x
//! `blocking_threshold` (1 ms) of wall time after it starts, a hog within
//! ~`cpu_intensive_threshold` (10 ms) of CPU time, so work queued behind
//! either runs long before a 300 ms blocker returns.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use support::{captured_logs, eventually};

/// Blocks the calling thread (a worker, inside a poll) without telling wq.
fn unannotated_sleep(d: Duration) {
    std::thread::sleep(d);
}

/// Spawns a task that signals once it runs, then sleeps `d` without
/// annotation and sets `done`. Returns after the task started.
fn spawn_blocker(
    rt: &wq::Runtime,
    d: Duration,
    done: &Arc<AtomicBool>,
) -> wq::task::JoinHandle<()> {
    let (inside_tx, inside_rx) = mpsc::channel();
    let done = done.clone();
    let handle = rt.spawn(async move {
        inside_tx.send(()).unwrap();
        unannotated_sleep(d);
        done.store(true, SeqCst);
    });
    inside_rx.recv().unwrap();
    handle
}

/// `workers(1)`: one task sleeps 300 ms with no annotation; 100 tasks spawned
/// after it all complete before it does.
#[test]
fn unannotated_sleep_does_not_delay_other_tasks() {
    let rt = wq::Builder::new().workers(1).build().unwrap();
    let metrics = rt.handle().metrics();
    let blocker_done = Arc::new(AtomicBool::new(false));
    let blocker = spawn_blocker(&rt, Duration::from_millis(300), &blocker_done);
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
    });
    assert_eq!(finished_early.load(SeqCst), 100);
    assert!(
        !blocker_done.load(SeqCst),
        "the blocker returned before the others ran"
    );
    assert!(metrics.blocked_detections() >= 1, "{metrics:?}");
    rt.block_on(blocker).unwrap();
}

/// `workers(2)`: two tasks block for 300 ms; a task awaiting a oneshot sent
/// from a std thread after 20 ms completes before the blockers.
#[test]
fn oneshot_completes_while_every_worker_blocks() {
    let rt = wq::Builder::new().workers(2).build().unwrap();
    let blockers_done = Arc::new(AtomicBool::new(false));
    let (inside_tx, inside_rx) = mpsc::channel();
    let blockers: Vec<_> = (0..2)
        .map(|_| {
            let inside_tx = inside_tx.clone();
            let done = blockers_done.clone();
            rt.spawn(async move {
                inside_tx.send(()).unwrap();
                unannotated_sleep(Duration::from_millis(300));
                done.store(true, SeqCst);
            })
        })
        .collect();
    inside_rx.recv().unwrap();
    inside_rx.recv().unwrap();
    let (tx, rx) = futures::channel::oneshot::channel();
    let receiver = rt.spawn({
        let blockers_done = blockers_done.clone();
        async move {
            let value = rx.await.unwrap();
            (value, blockers_done.load(SeqCst))
        }
    });
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        tx.send(7).unwrap();
    });
    let (value, blockers_were_done) = rt.block_on(receiver).unwrap();
    assert_eq!(value, 7);
    assert!(
        !blockers_were_done,
        "the oneshot task waited for the blockers"
    );
    sender.join().unwrap();
    rt.block_on(async {
        for blocker in blockers {
            blocker.await.unwrap();
        }
    });
}

/// A task woken by the blocker just before it blocks sits on the blocked
/// worker's own queue; another worker takes it from there.
#[test]
fn queue_of_a_blocked_worker_is_taken_over() {
    let rt = wq::Builder::new().workers(1).build().unwrap();
    let blocker_done = Arc::new(AtomicBool::new(false));
    let (tx, rx) = futures::channel::oneshot::channel::<()>();
    let waiter = rt.spawn({
        let blocker_done = blocker_done.clone();
        async move {
            rx.await.unwrap();
            !blocker_done.load(SeqCst)
        }
    });
    // Let the waiter park on the channel first.
    assert!(eventually(Duration::from_secs(10), || {
        rt.handle().metrics().num_running_workers() == 0
    }));
    let blocker = rt.spawn({
        let blocker_done = blocker_done.clone();
        async move {
            // Wakes the waiter onto this worker's queue, then blocks.
            tx.send(()).unwrap();
            unannotated_sleep(Duration::from_millis(300));
            blocker_done.store(true, SeqCst);
        }
    });
    assert!(
        rt.block_on(waiter).unwrap(),
        "the woken task waited behind the blocker"
    );
    rt.block_on(blocker).unwrap();
}

/// Timers keep firing while the only running worker is blocked.
#[test]
fn timers_fire_while_a_worker_blocks() {
    let rt = wq::Builder::new().workers(1).build().unwrap();
    let blocker_done = Arc::new(AtomicBool::new(false));
    let blocker = spawn_blocker(&rt, Duration::from_millis(300), &blocker_done);
    let sleeper = rt.spawn({
        let blocker_done = blocker_done.clone();
        async move {
            wq::time::sleep(Duration::from_millis(20)).await;
            !blocker_done.load(SeqCst)
        }
    });
    assert!(
        rt.block_on(sleeper).unwrap(),
        "the 20 ms sleep waited for the blocker"
    );
    rt.block_on(blocker).unwrap();
}

/// With the clock paused, a poll blocked without annotation keeps the clock
/// from auto-advancing, as `wq::blocking` does: the runtime is not idle.
#[test]
fn blocked_poll_holds_a_paused_clock() {
    let rt = wq::Builder::new()
        .workers(2)
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        // Would let the clock jump an hour as soon as the runtime is idle.
        let sleeper = wq::spawn(wq::time::sleep(Duration::from_secs(3600)));
        let blocker = wq::spawn(async {
            let start = wq::time::Instant::now();
            unannotated_sleep(Duration::from_millis(100));
            start.elapsed()
        });
        let inside = blocker.await.unwrap();
        assert_eq!(
            inside,
            Duration::ZERO,
            "the clock advanced during a blocked poll"
        );
        sleeper.await.unwrap();
    });
}

/// With the monitor disabled, an unannotated blocker holds its worker: the
/// switch really switches (and the tests above really test the monitor).
#[test]
fn without_the_monitor_a_blocker_holds_its_worker() {
    let rt = wq::Builder::new()
        .workers(1)
        .monitor(false)
        .build()
        .unwrap();
    let blocker_done = Arc::new(AtomicBool::new(false));
    let blocker = spawn_blocker(&rt, Duration::from_millis(100), &blocker_done);
    let other = rt.spawn({
        let blocker_done = blocker_done.clone();
        async move { blocker_done.load(SeqCst) }
    });
    assert!(
        rt.block_on(other).unwrap(),
        "ran before the blocker returned"
    );
    rt.block_on(blocker).unwrap();
    assert_eq!(rt.handle().metrics().blocked_detections(), 0);
    assert_eq!(rt.handle().metrics().monitor_ticks(), 0);
}

/// Spins until `stop` is set, never yielding.
async fn spin_until(stop: Arc<AtomicBool>) {
    while !stop.load(SeqCst) {
        std::hint::spin_loop();
    }
}

/// tokio #4730's shape: with `workers(2)`, one task spins forever without
/// yielding. Other tasks keep completing for a second, the hog is reported
/// through `tracing` with its id and spawn location, and `shutdown_timeout`
/// returns although the spinning task never does (it is left running on its
/// thread; here it is stopped afterwards).
#[test]
fn spinning_task_is_reported_and_does_not_stall_others() {
    let logs = captured_logs();
    let rt = wq::Builder::new().workers(2).build().unwrap();
    let metrics = rt.handle().metrics();
    let stop = Arc::new(AtomicBool::new(false));
    let hog = wq::task::Builder::new()
        .name("spinner")
        .spawn_on(spin_until(stop.clone()), rt.handle())
        .unwrap();
    let hog_id = hog.id();

    // For one second, tasks on timers keep completing.
    let completed = rt.block_on(async {
        let start = Instant::now();
        let mut completed = 0;
        while start.elapsed() < Duration::from_secs(1) {
            let tick = wq::spawn(async {
                wq::time::sleep(Duration::from_millis(10)).await;
            });
            tick.await.unwrap();
            completed += 1;
        }
        completed
    });
    // Unimpeded, about 90 such rounds fit in a second; a stalled runtime
    // completes almost none.
    assert!(completed >= 20, "only {completed} tasks completed in 1 s");

    assert!(eventually(Duration::from_secs(10), || metrics
        .hog_detections()
        >= 1));
    let report = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    let line = report
        .lines()
        .find(|line| line.contains("hogged") && line.contains(&format!("task.id={hog_id}")))
        .unwrap_or_else(|| panic!("no report of task {hog_id} in:\n{report}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains("rt_monitor.rs"),
        "no spawn location in: {line}"
    );
    assert!(
        line.contains("task.name=\"spinner\""),
        "no task name in: {line}"
    );

    rt.shutdown_timeout(Duration::from_millis(100));
    stop.store(true, SeqCst);
}

/// `workers(1)`: even the only worker spinning does not stall the others;
/// they run once the hog is found.
#[test]
fn the_only_worker_spinning_does_not_stall_others() {
    let rt = wq::Builder::new().workers(1).build().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (inside_tx, inside_rx) = mpsc::channel();
    let spinner = {
        let stop = stop.clone();
        rt.spawn(async move {
            inside_tx.send(()).unwrap();
            spin_until(stop).await;
        })
    };
    inside_rx.recv().unwrap();
    let handles: Vec<_> = (0..100).map(|i| rt.spawn(async move { i })).collect();
    let sum = rt.block_on(async {
        let mut sum = 0;
        for handle in handles {
            sum += handle.await.unwrap();
        }
        sum
    });
    assert_eq!(sum, (0..100).sum::<i32>());
    assert!(!spinner.is_finished());
    assert!(rt.handle().metrics().hog_detections() >= 1);
    stop.store(true, SeqCst);
    rt.block_on(spinner).unwrap();
}

/// Damping: 10,000 blocking calls of ~10 us each, in one long poll or one
/// per poll, do not make the pool create more than a handful of threads.
#[test]
fn tiny_blocking_calls_create_few_threads() {
    const WORKERS: usize = 2;
    let rt = wq::Builder::new().workers(WORKERS).build().unwrap();
    let metrics = rt.handle().metrics();
    rt.block_on(async {
        // All in one poll: the poll is stuck (mostly asleep) for the whole
        // loop, found once, and replaced once.
        wq::spawn(async {
            for _ in 0..10_000 {
                unannotated_sleep(Duration::from_micros(10));
            }
        })
        .await
        .unwrap();
        // One call per poll: no poll lasts a millisecond.
        wq::spawn(async {
            for _ in 0..10_000 {
                unannotated_sleep(Duration::from_micros(10));
                wq::task::yield_now().await;
            }
        })
        .await
        .unwrap();
    });
    // The initial workers, the spare kept idle so that blocking never waits
    // for a thread, and at most a couple more.
    let created = metrics.threads_created();
    assert!(
        created as usize <= WORKERS + 3,
        "{created} threads created: {metrics:?}"
    );
    assert!(metrics.num_workers() <= WORKERS + 3, "{metrics:?}");
}

/// An idle runtime's monitor sleeps: it does not tick while no worker runs,
/// even with a timer pending.
#[test]
fn idle_runtime_monitor_does_not_tick() {
    let rt = wq::Builder::new().workers(2).build().unwrap();
    let metrics = rt.handle().metrics();
    rt.block_on(async {
        for _ in 0..100 {
            wq::spawn(async { wq::task::yield_now().await })
                .await
                .unwrap();
        }
    });
    // A timer far away: the runtime is idle, not dead.
    let _sleeper = rt.spawn(async { wq::time::sleep(Duration::from_secs(3600)).await });
    assert!(eventually(Duration::from_secs(10), || {
        metrics.num_running_workers() == 0
    }));
    assert!(metrics.monitor_ticks() > 0, "the monitor never ran");
    // One last tick may follow the last worker going idle.
    std::thread::sleep(Duration::from_millis(50));
    let before = metrics.monitor_ticks();
    std::thread::sleep(Duration::from_millis(300));
    let after = metrics.monitor_ticks();
    assert_eq!(
        before, after,
        "the monitor ticked while the runtime was idle"
    );

    // And it wakes up when a worker runs for longer than a tick period
    // (500 us): a worker that starts running asks for its wake a period
    // later, and takes it back only if it goes idle first. The poll runs
    // 60 periods, so that a monitor thread that waits for a CPU (the
    // test binary's other tests run beside it) still wakes within it.
    rt.block_on(async {
        wq::spawn(async {
            let start = std::time::Instant::now();
            while start.elapsed() < Duration::from_millis(30) {
                std::hint::spin_loop();
            }
        })
        .await
        .unwrap()
    });
    assert!(eventually(Duration::from_secs(10), || metrics
        .monitor_ticks()
        > after));
}

/// Bad thresholds are errors naming the field.
#[test]
fn invalid_thresholds_are_errors() {
    let err = wq::Builder::new()
        .blocking_threshold(Duration::from_micros(10))
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("`blocking_threshold`"), "{err}");
    let err = wq::Builder::new()
        .cpu_intensive_threshold(Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains("`cpu_intensive_threshold`"),
        "{err}"
    );
}

/// Runs `tasks` tasks that yield in a loop (short polls, all the time)
/// until `stop` is set.
fn spawn_yielders(
    rt: &wq::Runtime,
    tasks: usize,
    stop: &Arc<AtomicBool>,
) -> Vec<wq::task::JoinHandle<u64>> {
    (0..tasks)
        .map(|_| {
            let stop = stop.clone();
            rt.spawn(async move {
                let mut polls = 0;
                while !stop.load(SeqCst) {
                    wq::task::yield_now().await;
                    polls += 1;
                }
                polls
            })
        })
        .collect()
}

/// While workers run short polls they take the monitor's ticks themselves,
/// between two polls, and the monitor thread sleeps: over 500 ms of two
/// workers yielding without pause, at most a few of the ~1,000 ticks (one
/// every 500 us) are the monitor thread's own. The bound is loose (half the
/// ticks) because a loaded machine may deschedule both workers for over a
/// millisecond, and then the monitor thread does wake, as it should.
#[test]
fn busy_workers_tick_for_the_monitor() {
    let rt = wq::Builder::new().workers(2).build().unwrap();
    let metrics = rt.handle().metrics();
    let stop = Arc::new(AtomicBool::new(false));
    let yielders = spawn_yielders(&rt, 2, &stop);
    std::thread::sleep(Duration::from_millis(50));
    let (ticks, wakeups) = (metrics.monitor_ticks(), metrics.monitor_wakeups());
    std::thread::sleep(Duration::from_millis(500));
    let ticks = metrics.monitor_ticks() - ticks;
    let wakeups = metrics.monitor_wakeups() - wakeups;
    stop.store(true, SeqCst);
    for yielder in yielders {
        assert!(rt.block_on(yielder).unwrap() > 0);
    }
    assert!(ticks >= 50, "only {ticks} ticks in 500 ms");
    assert!(
        wakeups * 2 < ticks,
        "the monitor thread woke {wakeups} times for {ticks} ticks"
    );
}

/// A worker's tick detects too: with one worker blocked without annotation
/// and the other running short polls (so it takes the ticks), the task
/// queued behind the blocker runs long before the blocker returns.
#[test]
fn a_blocked_poll_is_found_by_another_workers_tick() {
    let rt = wq::Builder::new().workers(2).build().unwrap();
    let metrics = rt.handle().metrics();
    let stop = Arc::new(AtomicBool::new(false));
    let yielders = spawn_yielders(&rt, 1, &stop);
    let blocker_done = Arc::new(AtomicBool::new(false));
    let blocker = spawn_blocker(&rt, Duration::from_millis(300), &blocker_done);
    assert!(eventually(Duration::from_secs(10), || {
        metrics.blocked_detections() == 1
    }));
    let other = rt.spawn({
        let blocker_done = blocker_done.clone();
        async move { blocker_done.load(SeqCst) }
    });
    assert!(
        !rt.block_on(other).unwrap(),
        "a task spawned after the detection waited for the blocker"
    );
    stop.store(true, SeqCst);
    for yielder in yielders {
        rt.block_on(yielder).unwrap();
    }
    rt.block_on(blocker).unwrap();
}

/// A poll that gets stuck just after the pool went without a running
/// worker for a moment, with work queued, is found as promptly as any: the
/// monitor thread, having seen no worker running but tasks queued at its
/// last look, used to sleep until the watchdog's next look (a quarter of
/// `watchdog_threshold`, 7.5 s by default) without telling the pool, so
/// that the next worker to run did not wake it. Here the only running
/// worker spawns a task and blocks in `wq::blocking`: the task is queued
/// while nobody runs, until the idle worker kicked for it takes it, and it
/// sleeps without a word until a stuck poll is found. Racy by nature: it
/// repeats for 3 s (before the fix, a stall of 1 s came within about 1000
/// rounds).
#[test]
fn a_stuck_poll_is_found_promptly_after_a_moment_without_running_workers() {
    let rt = wq::Builder::new()
        .workers(1)
        .max_workers(4)
        .blocking_threshold(Duration::from_micros(100))
        .watchdog_threshold(Duration::from_secs(4))
        .build()
        .unwrap();
    let metrics = rt.handle().metrics();
    let start = Instant::now();
    let mut worst = Duration::ZERO;
    while start.elapsed() < Duration::from_secs(3) && worst < Duration::from_millis(300) {
        let metrics = metrics.clone();
        let waited = rt
            .block_on(rt.spawn(async move {
                let stuck = wq::spawn(async move {
                    let found = || metrics.blocked_detections() + metrics.hog_detections();
                    let before = found();
                    let start = Instant::now();
                    while found() == before && start.elapsed() < Duration::from_secs(3) {
                        unannotated_sleep(Duration::from_micros(100));
                    }
                    start.elapsed()
                });
                wq::blocking(|| std::thread::sleep(Duration::from_micros(50)));
                stuck.await.unwrap()
            }))
            .unwrap();
        worst = worst.max(waited);
    }
    assert!(
        worst < Duration::from_millis(300),
        "a stuck poll waited {worst:?} to be found"
    );
}

/// After the workers have ticked for the monitor without a pause for a
/// while (the monitor thread then sleeps up to four thresholds past their
/// last tick, `DeadMan::steady`), every worker getting stuck at once is
/// still found: a task spawned once both are stuck runs long before they
/// return (after about 4.5 ms; 2.8 ms when the monitor thread slept at
/// most two thresholds past the last tick).
#[test]
fn every_worker_stuck_after_a_steady_run_is_found() {
    let rt = wq::Builder::new().workers(2).build().unwrap();
    let metrics = rt.handle().metrics();
    let stop = Arc::new(AtomicBool::new(false));
    let (stuck, done) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let blockers: Vec<_> = (0..2)
        .map(|_| {
            let (stop, stuck, done) = (stop.clone(), stuck.clone(), done.clone());
            rt.spawn(async move {
                while !stop.load(SeqCst) {
                    wq::task::yield_now().await;
                }
                stuck.fetch_add(1, SeqCst);
                unannotated_sleep(Duration::from_millis(300));
                done.fetch_add(1, SeqCst);
            })
        })
        .collect();
    // Well past the 50 ms after which the monitor thread sleeps longest.
    std::thread::sleep(Duration::from_millis(200));
    let before = metrics.blocked_detections();
    stop.store(true, SeqCst);
    assert!(eventually(Duration::from_secs(10), || stuck.load(SeqCst) == 2));
    let other = rt.spawn({
        let done = done.clone();
        async move { done.load(SeqCst) }
    });
    assert_eq!(
        rt.block_on(other).unwrap(),
        0,
        "a task spawned once every worker was stuck waited for the blockers"
    );
    assert!(metrics.blocked_detections() > before);
    for blocker in blockers {
        rt.block_on(blocker).unwrap();
    }
}
