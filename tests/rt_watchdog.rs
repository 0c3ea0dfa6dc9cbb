//! The watchdog: a pool with tasks queued that starts none for
//! `watchdog_threshold` is reported at error level, with the tasks; a busy
//! healthy pool is not, and a threshold of zero turns it off.
//!
//! One test runs the scenarios in turn, because the reports of every
//! runtime in the process go to the one captured log.

mod support;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{captured_logs, eventually};

const THRESHOLD: Duration = Duration::from_millis(200);

fn reports() -> Vec<String> {
    let logs = captured_logs().lock().unwrap();
    String::from_utf8_lossy(&logs)
        .split("\n20")
        .filter(|event| event.contains("wq watchdog"))
        .map(str::to_owned)
        .collect()
}

/// A pool of one worker (`max_workers(1)`) whose task blocks without
/// annotation: the monitor finds it blocked but no other worker may start,
/// so the tasks queued behind it wait. Returns the blocker's id and the
/// means to release it, and the queued tasks.
fn wedge(
    rt: &wq::Runtime,
) -> (
    wq::task::Id,
    mpsc::Sender<()>,
    Vec<wq::task::JoinHandle<u32>>,
) {
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (inside_tx, inside_rx) = mpsc::channel::<()>();
    let blocker = wq::task::Builder::new()
        .name("wedge")
        .spawn_on(
            async move {
                inside_tx.send(()).unwrap();
                release_rx.recv().unwrap();
            },
            rt.handle(),
        )
        .unwrap();
    inside_rx.recv().unwrap();
    let id = blocker.id();
    let queued = (0..3).map(|i| rt.spawn(async move { i })).collect();
    drop(blocker);
    (id, release_tx, queued)
}

#[test]
fn watchdog_reports_a_wedged_pool_and_only_that() {
    captured_logs();

    // A busy healthy pool: short tasks and blocking ones for a second.
    let rt = wq::Builder::new()
        .workers(2)
        .watchdog_threshold(THRESHOLD)
        .build()
        .unwrap();
    let start = Instant::now();
    rt.block_on(async {
        while start.elapsed() < Duration::from_secs(1) {
            let short: Vec<_> = (0..200).map(|i| wq::spawn(async move { i })).collect();
            let blocking =
                wq::spawn(async { wq::blocking(|| std::thread::sleep(Duration::from_millis(30))) });
            for task in short {
                task.await.unwrap();
            }
            blocking.await.unwrap();
        }
    });
    drop(rt);
    assert!(
        reports().is_empty(),
        "a healthy pool was reported: {:?}",
        reports()
    );

    // Wedged, but with the watchdog off.
    let rt = wq::Builder::new()
        .workers(1)
        .max_workers(1)
        .watchdog_threshold(Duration::ZERO)
        .build()
        .unwrap();
    let (_, release, queued) = wedge(&rt);
    std::thread::sleep(THRESHOLD * 3);
    assert!(reports().is_empty(), "reported while off: {:?}", reports());
    release.send(()).unwrap();
    for (i, task) in queued.into_iter().enumerate() {
        assert_eq!(rt.block_on(task).unwrap(), i as u32);
    }
    drop(rt);

    // Wedged with the watchdog on: reported, not before the threshold, with
    // the blocked task's id, name and spawn location; the queued tasks run
    // once the blocker returns.
    let rt = wq::Builder::new()
        .workers(1)
        .max_workers(1)
        .watchdog_threshold(THRESHOLD)
        .build()
        .unwrap();
    let wedged_at = Instant::now();
    let (id, release, queued) = wedge(&rt);
    assert!(
        eventually(Duration::from_secs(10), || !reports().is_empty()),
        "no report of the wedged pool"
    );
    assert!(
        wedged_at.elapsed() >= THRESHOLD,
        "reported before the threshold"
    );
    let report = reports().remove(0);
    assert!(report.contains("ERROR"), "{report}");
    assert!(report.contains("pool `normal`"), "{report}");
    assert!(
        report.contains("in a poll for") && report.contains(&format!("task {id} `wedge`")),
        "the blocked task is not named: {report}"
    );
    assert!(
        report.contains("rt_watchdog.rs"),
        "no spawn location: {report}"
    );
    assert!(
        report.contains("workqueue `system`: 4 live task(s)"),
        "{report}"
    );
    release.send(()).unwrap();
    for (i, task) in queued.into_iter().enumerate() {
        assert_eq!(rt.block_on(task).unwrap(), i as u32);
    }
}

/// Settings the watchdog cannot honour are refused, naming the field.
#[test]
fn watchdog_settings_are_validated() {
    let err = wq::Builder::new()
        .watchdog_threshold(Duration::from_millis(1))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("`watchdog_threshold`"), "{err}");
    let err = wq::Builder::new()
        .monitor(false)
        .watchdog_threshold(Duration::from_secs(1))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("monitor(false)"), "{err}");
    wq::Builder::new()
        .monitor(false)
        .watchdog_threshold(Duration::ZERO)
        .build()
        .unwrap();
}
