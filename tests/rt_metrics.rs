//! The runtime's metrics: tokio's per-worker figures, the per-pool table,
//! the list of workqueues and the JSON dump.

use std::time::{Duration, Instant};

use serde_json::Value;

/// Waits until `condition` holds, for at most 10 s.
fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    condition()
}

/// Workers that ran tasks and went idle were busy for a while and parked at
/// least once; the pool's totals are at least the live workers' sums.
#[test]
fn workers_count_parks_and_busy_time() {
    let rt = wq::Builder::new().workers(2).build().unwrap();
    let metrics = rt.handle().metrics();
    rt.block_on(async {
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                wq::spawn(async {
                    let start = Instant::now();
                    while start.elapsed() < Duration::from_millis(5) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    assert!(eventually(
        || metrics.num_idle_workers() == metrics.num_workers()
    ));
    let workers = metrics.num_workers();
    let parks: u64 = (0..workers).map(|i| metrics.worker_park_count(i)).sum();
    let busy: Duration = (0..workers)
        .map(|i| metrics.worker_total_busy_duration(i))
        .sum();
    assert!(
        parks >= workers as u64,
        "{parks} parks for {workers} workers"
    );
    assert!(busy >= Duration::from_millis(5), "busy {busy:?}");
    assert_eq!(
        metrics.worker_park_count(workers + 10),
        0,
        "past the live workers"
    );
    let pools = metrics.pools();
    assert_eq!(pools[0].label, "normal");
    assert!(pools[0].park_count >= parks && pools[0].busy_duration >= busy);
    assert_eq!(pools[0].workers, workers);
    assert!(pools[0].threads_created >= workers as u64);
}

/// A task blocked in `wq::blocking` shows as a blocked worker of the
/// normal pool while it blocks; none are afterwards.
#[test]
fn pools_show_blocked_workers() {
    let rt = wq::Builder::new().workers(1).build().unwrap();
    let metrics = rt.handle().metrics();
    let (inside_tx, inside_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let blocker = rt.spawn(async move {
        wq::blocking(|| {
            inside_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        })
    });
    inside_rx.recv().unwrap();
    let normal = &metrics.pools()[0];
    assert_eq!(normal.blocked, 1, "{normal:?}");
    assert_eq!(normal.cpu_intensive, 0, "{normal:?}");
    release_tx.send(()).unwrap();
    rt.block_on(blocker).unwrap();
    assert!(eventually(|| metrics.pools()[0].blocked == 0));
}

/// The list of workqueues has `system` first and every queue created,
/// with its figures; a dropped queue disappears once its tasks are gone.
#[test]
fn workqueues_are_listed_with_their_figures() {
    let rt = wq::Runtime::new().unwrap();
    let metrics = rt.handle().metrics();
    rt.block_on(async {
        let queue = wq::Workqueue::builder("listed")
            .max_active(4)
            .build()
            .unwrap();
        for _ in 0..10 {
            queue.spawn(async {}).await.unwrap();
        }
        let list = metrics.workqueues();
        assert_eq!(list[0].name, "system");
        let listed = list.iter().find(|q| q.name == "listed").expect("listed");
        assert_eq!((listed.stats.total, listed.stats.completed), (10, 10));
        assert_eq!(listed.stats.max_active, 4);
        drop(queue);
    });
    assert!(eventually(|| metrics
        .workqueues()
        .iter()
        .all(|q| q.name != "listed")));
}

/// The JSON dump parses, and has every runtime figure, every pool column
/// and every wq_monitor column for every workqueue, with the right values
/// for a known workload.
#[test]
fn json_dump_parses_and_has_every_column() {
    let rt = wq::Builder::new().workers(2).build().unwrap();
    let metrics = rt.handle().metrics();
    rt.block_on(async {
        let queue = wq::Workqueue::builder("json \"quoted\"\n").build().unwrap();
        for _ in 0..100 {
            queue.spawn(async {}).await.unwrap();
        }
        wq::system_highpri().spawn(async {}).await.unwrap();
        let dump: Value = serde_json::from_str(&metrics.to_json()).expect("valid JSON");
        for key in [
            "num_workers",
            "num_idle_workers",
            "num_running_workers",
            "num_alive_tasks",
            "global_queue_depth",
            "num_pending_timers",
            "threads_created",
            "worker_create_failures",
            "blocked_detections",
            "hog_detections",
            "monitor_wakeups",
        ] {
            assert!(dump[key].is_u64(), "{key} missing in {dump}");
        }
        let pools = dump["pools"].as_array().unwrap();
        assert_eq!(pools[0]["label"], "normal");
        assert!(pools.iter().any(|p| p["label"] == "highpri"), "{dump}");
        for pool in pools {
            for key in [
                "workers",
                "idle",
                "running",
                "blocked",
                "cpu_intensive",
                "queue_depth",
                "threads_created",
                "threads_culled",
                "park_count",
                "busy_us",
            ] {
                assert!(pool[key].is_u64(), "{key} missing in {pool}");
            }
        }
        let queues = dump["workqueues"].as_array().unwrap();
        assert_eq!(queues[0]["name"], "system");
        assert!(queues[0]["max_active"].is_null(), "system has no limit");
        for queue in queues {
            for key in [
                "total",
                "infl",
                "inactive",
                "completed",
                "cpu_time",
                "cpu_intensive",
                "cm_wakeup",
                "mayday",
                "rescued",
            ] {
                assert!(queue[key].is_u64(), "{key} missing in {queue}");
            }
        }
        let ours = queues
            .iter()
            .find(|q| q["name"] == "json \"quoted\"\n")
            .expect("the quoted name survives the round trip");
        assert_eq!(ours["total"], 100);
        assert_eq!(ours["completed"], 100);
        assert_eq!(ours["infl"], 0);
        assert_eq!(ours["max_active"], 1024);
    });
}

/// The pool's totals count each worker once, live or gone: while workers
/// are created (blocking tasks) and culled (a 20 ms idle timeout) over and
/// over, a reader never sees the total park count or busy time go down.
#[test]
fn pool_totals_never_go_down_as_workers_come_and_go() {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::sync::Arc;

    let rt = wq::Builder::new()
        .workers(1)
        .max_workers(32)
        .idle_timeout(Duration::from_millis(20))
        .build()
        .unwrap();
    let metrics = rt.metrics();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = std::thread::spawn({
        let metrics = metrics.clone();
        let stop = stop.clone();
        move || {
            let (mut parks, mut busy, mut reads, mut drops) = (0, Duration::ZERO, 0u64, Vec::new());
            while !stop.load(SeqCst) {
                let pool = &metrics.pools()[0];
                if pool.park_count < parks || pool.busy_duration < busy {
                    drops.push(((parks, busy), (pool.park_count, pool.busy_duration)));
                }
                (parks, busy) = (pool.park_count, pool.busy_duration);
                reads += 1;
            }
            (reads, drops)
        }
    });
    for _ in 0..10 {
        rt.block_on(async {
            let blockers: Vec<_> = (0..8)
                .map(|_| {
                    wq::spawn(async {
                        wq::blocking(|| std::thread::sleep(Duration::from_millis(50)))
                    })
                })
                .collect();
            for blocker in blockers {
                blocker.await.unwrap();
            }
        });
        // Long enough for the surplus workers to be culled.
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, SeqCst);
    let (reads, drops) = reader.join().unwrap();
    let culled = metrics.pools()[0].threads_culled;
    assert!(culled > 0, "no worker was culled: the test did not test");
    assert!(reads > 0);
    assert!(
        drops.is_empty(),
        "{culled} culled; the totals went down: {drops:?}"
    );
}
