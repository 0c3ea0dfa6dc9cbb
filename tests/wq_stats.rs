//! Per-workqueue figures, the kernel's wq_monitor columns (`total`, `infl`,
//! `CPUtime`, `CPUitsv`, `CMW`, `mayday`, `rescued`), against workloads
//! whose counts are known.
//!
//! Bounds come from the mechanism: a hog is found after
//! `cpu_intensive_threshold` (10 ms) of CPU in one poll; CPU time is
//! sampled every half `blocking_threshold` while workers run.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Spins until the calling thread has used `cpu` of CPU time, measured by
/// its own clock (so a preempted spin still uses `cpu`).
fn spin_for_cpu(cpu: Duration) {
    let start = thread_cpu_time();
    while thread_cpu_time() - start < cpu {
        std::hint::spin_loop();
    }
}

fn thread_cpu_time() -> Duration {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).unwrap();
    Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32)
}

/// Makes sure the runtime has an idle worker to wake: the counted wakeup is
/// the kernel's `kick_pool` waking one (with none idle, a new worker is
/// created instead, which is not a wakeup).
fn ensure_idle_worker(rt: &wq::Runtime) {
    let metrics = rt.handle().metrics();
    let blockers: Vec<_> = (0..2)
        .map(|_| rt.spawn(async { wq::blocking(|| std::thread::sleep(Duration::from_millis(50))) }))
        .collect();
    for blocker in blockers {
        rt.block_on(blocker).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while metrics.num_idle_workers() == 0 {
        assert!(
            Instant::now() < deadline,
            "no worker went idle: {metrics:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Spawns on `queue` a task that, once running, waits (spinning: it must
/// not look blocked) until the returned flag is set, then calls `then`.
/// Returns once the task runs.
fn spawn_held(
    queue: &wq::Workqueue,
    then: impl FnOnce() + Send + 'static,
) -> (Arc<AtomicBool>, wq::task::JoinHandle<()>) {
    let release = Arc::new(AtomicBool::new(false));
    let (inside_tx, inside_rx) = mpsc::channel::<()>();
    let handle = {
        let release = release.clone();
        queue.spawn(async move {
            inside_tx.send(()).unwrap();
            while !release.load(SeqCst) {
                std::hint::spin_loop();
            }
            then();
        })
    };
    inside_rx.recv().unwrap();
    (release, handle)
}

/// 1,000 tasks on a queue: `total` and `completed` are 1,000, nothing is in
/// flight, and a queue nobody used counts nothing.
#[test]
fn a_thousand_tasks_count_a_thousand() {
    let rt = wq::Builder::new().workers(2).build().unwrap();
    rt.block_on(async {
        let queue = wq::Workqueue::builder("thousand").build().unwrap();
        let untouched = wq::Workqueue::builder("untouched").build().unwrap();
        let handles: Vec<_> = (0..1_000u32)
            .map(|i| queue.spawn(async move { i }))
            .collect();
        for (i, handle) in handles.into_iter().enumerate() {
            assert_eq!(handle.await.unwrap(), i as u32);
        }
        let stats = queue.stats();
        assert_eq!((stats.total, stats.completed), (1_000, 1_000));
        assert_eq!((stats.active, stats.inactive), (0, 0));
        assert_eq!((stats.cpu_intensive, stats.cm_wakeups), (0, 0));
        let other = untouched.stats();
        assert_eq!((other.total, other.completed), (0, 0));
        assert_eq!(other.cpu_time, Duration::ZERO);
    });
}

/// A task that blocks in `wq::blocking` while another task waits: an idle
/// worker is woken in its place, and the blocking task's queue counts that
/// concurrency-management wakeup; the queue of the task that waited does
/// not.
#[test]
fn a_blocking_task_counts_a_concurrency_management_wakeup() {
    let rt = wq::Builder::new().workers(1).build().unwrap();
    let blocking = rt.block_on(async { wq::Workqueue::builder("blocking").build().unwrap() });
    let waiting = rt.block_on(async { wq::Workqueue::builder("waiting").build().unwrap() });
    // The worker blocks only once the other task is queued, so that work
    // waits when it leaves the running count.
    ensure_idle_worker(&rt);
    let (release, blocker) = spawn_held(&blocking, || {
        wq::blocking(|| std::thread::sleep(Duration::from_millis(200)))
    });
    let other = waiting.spawn(async { 7 });
    release.store(true, SeqCst);
    assert_eq!(rt.block_on(other).unwrap(), 7);
    rt.block_on(blocker).unwrap();
    assert!(
        blocking.stats().cm_wakeups >= 1,
        "no wakeup counted: {:?}",
        blocking.stats()
    );
    assert_eq!(waiting.stats().cm_wakeups, 0);
    assert_eq!(blocking.stats().cpu_intensive, 0);
}

/// The same found by the monitor: a task that sleeps without annotation
/// while another waits counts a wakeup too.
#[test]
fn an_unannotated_blocker_counts_a_concurrency_management_wakeup() {
    let rt = wq::Builder::new().workers(1).build().unwrap();
    let blocking = rt.block_on(async { wq::Workqueue::builder("sleeper").build().unwrap() });
    ensure_idle_worker(&rt);
    let (release, blocker) =
        spawn_held(&blocking, || std::thread::sleep(Duration::from_millis(300)));
    let other = rt.spawn(async { 7 });
    release.store(true, SeqCst);
    assert_eq!(rt.block_on(other).unwrap(), 7);
    rt.block_on(blocker).unwrap();
    let stats = blocking.stats();
    assert!(stats.cm_wakeups >= 1, "no wakeup counted: {stats:?}");
    assert!(rt.handle().metrics().blocked_detections() >= 1);
}

/// A poll that spins for 200 ms of CPU: one CPU-intensive violation on its
/// queue, and CPU time of the order of the spin on it (sampled: at least a
/// third of it, and no more than the wall time it took plus a tick).
#[test]
fn a_hog_counts_one_cpu_intensive_violation_and_its_cpu_time() {
    let rt = wq::Builder::new().workers(2).build().unwrap();
    let hogs = rt.block_on(async { wq::Workqueue::builder("hogs").build().unwrap() });
    let quiet = rt.block_on(async { wq::Workqueue::builder("quiet").build().unwrap() });
    let start = Instant::now();
    let spin = Duration::from_millis(200);
    rt.block_on(hogs.spawn(async move { spin_for_cpu(spin) }))
        .unwrap();
    let wall = start.elapsed();
    rt.block_on(quiet.spawn(async {})).unwrap();
    let stats = hogs.stats();
    assert_eq!(stats.cpu_intensive, 1, "{stats:?}");
    assert!(
        stats.cpu_time >= spin / 3 && stats.cpu_time <= wall + Duration::from_millis(20),
        "sampled {:?} for a {spin:?} spin that took {wall:?}",
        stats.cpu_time
    );
    let quiet = quiet.stats();
    assert_eq!(quiet.cpu_intensive, 0);
    assert!(quiet.cpu_time < Duration::from_millis(20), "{quiet:?}");
}

/// A poll that sleeps often is no hog, however much CPU it uses in all:
/// as in the kernel, CPU time counts from the last sleep. 80 rounds of a
/// 2 ms sleep and 0.5 ms of spinning use 40 ms of CPU in one poll, four
/// times the threshold, never more than about 0.5 ms of it between two
/// sleeps (the monitor, which sees the sleeps only at its ticks, would need
/// a 50 ms gap between two of them to count 10 ms).
#[test]
fn a_poll_that_sleeps_between_short_spins_is_no_hog() {
    let rt = wq::Builder::new().workers(2).build().unwrap();
    let chunks = rt.block_on(async { wq::Workqueue::builder("chunks").build().unwrap() });
    rt.block_on(chunks.spawn(async {
        for _ in 0..80 {
            std::thread::sleep(Duration::from_millis(2));
            spin_for_cpu(Duration::from_micros(500));
        }
    }))
    .unwrap();
    let stats = chunks.stats();
    assert_eq!(stats.cpu_intensive, 0, "{stats:?}");
    assert!(
        rt.handle().metrics().blocked_detections() >= 1,
        "its sleeps are seen"
    );
}

/// With twice as many spinning workers as CPUs, a workqueue's CPU time is
/// what its threads ran, not the wall time of their polls: the spinners can
/// have used at most CPUs x the wall time it all took, while their polls
/// last twice that.
#[test]
fn preempted_polls_do_not_count_as_cpu_time() {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let spinners = 2 * cpus;
    let rt = wq::Builder::new().workers(spinners).build().unwrap();
    let queue = rt.block_on(async { wq::Workqueue::builder("crowded").build().unwrap() });
    let start = Instant::now();
    let handles: Vec<_> = (0..spinners)
        .map(|_| {
            queue.spawn(async {
                let spin = Instant::now();
                while spin.elapsed() < Duration::from_millis(150) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    for handle in handles {
        rt.block_on(handle).unwrap();
    }
    let most = start.elapsed() * u32::try_from(cpus).unwrap();
    let stats = queue.stats();
    assert!(
        stats.cpu_time <= most + most / 4,
        "{:?} of CPU time counted; {cpus} CPUs can run {most:?} in that time",
        stats.cpu_time
    );
}

/// With the monitor off nothing is sampled or detected, and a blocking
/// call still counts its wakeup.
#[test]
fn without_the_monitor_only_blocking_calls_count() {
    let rt = wq::Builder::new()
        .workers(1)
        .monitor(false)
        .build()
        .unwrap();
    let queue = rt.block_on(async { wq::Workqueue::builder("plain").build().unwrap() });
    ensure_idle_worker(&rt);
    let (release, blocker) = spawn_held(&queue, || {
        wq::blocking(|| std::thread::sleep(Duration::from_millis(100)))
    });
    let other = rt.spawn(async { 1 });
    release.store(true, SeqCst);
    assert_eq!(rt.block_on(other).unwrap(), 1);
    rt.block_on(blocker).unwrap();
    let stats = queue.stats();
    assert!(stats.cm_wakeups >= 1, "{stats:?}");
    assert_eq!((stats.cpu_intensive, stats.cpu_time), (0, Duration::ZERO));
}
