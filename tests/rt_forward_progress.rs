//! Forward progress when worker threads cannot be created: failures are
//! reported and survived, and nothing queued is lost.

mod support;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use support::captured_logs;

/// A runtime whose worker creation fails while `refuse` is set, retried
/// after `cooldown`.
fn refusing_runtime(
    workers: usize,
    cooldown: Duration,
    refuse: &Arc<AtomicBool>,
    refused: &Arc<AtomicUsize>,
) -> wq::Runtime {
    let (refuse, refused) = (refuse.clone(), refused.clone());
    wq::Builder::new()
        .workers(workers)
        .create_cooldown(cooldown)
        .spawn_worker_with(move || {
            if refuse.load(SeqCst) {
                refused.fetch_add(1, SeqCst);
                return Err(io::Error::from(io::ErrorKind::WouldBlock));
            }
            Ok(())
        })
        .build()
        .unwrap()
}

/// Thread creation fails while 100 tasks block in `wq::blocking` (each
/// wants a spare worker that cannot be created): the pool goes on with the
/// workers it has, every task completes, the failures are counted and
/// reported at error level, and creation works again after the cooldown.
#[test]
fn failed_worker_creation_loses_nothing() {
    let logs = captured_logs();
    let refuse = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicUsize::new(0));
    let rt = refusing_runtime(2, Duration::from_millis(20), &refuse, &refused);
    let before = rt.handle().metrics().threads_created();
    refuse.store(true, SeqCst);

    let done = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..100)
        .map(|i| {
            let done = done.clone();
            rt.spawn(async move {
                wq::blocking(|| std::thread::sleep(Duration::from_millis(2)));
                done.fetch_add(1, SeqCst);
                i
            })
        })
        .collect();
    for (i, handle) in handles.into_iter().enumerate() {
        assert_eq!(rt.block_on(handle).unwrap(), i);
    }
    assert_eq!(done.load(SeqCst), 100, "a task was lost");
    let metrics = rt.handle().metrics();
    assert!(refused.load(SeqCst) >= 1, "no creation was attempted");
    assert_eq!(
        metrics.worker_create_failures(),
        refused.load(SeqCst) as u64
    );
    assert_eq!(
        metrics.threads_created(),
        before,
        "a refused thread was counted"
    );
    let logged = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("could not create a worker thread"),
        "the failure was not reported: {logged}"
    );

    // Creation works again once allowed and the cooldown has passed.
    refuse.store(false, SeqCst);
    std::thread::sleep(Duration::from_millis(30));
    let handles: Vec<_> = (0..10)
        .map(|_| rt.spawn(async { wq::blocking(|| std::thread::sleep(Duration::from_millis(20))) }))
        .collect();
    for handle in handles {
        rt.block_on(handle).unwrap();
    }
    assert!(
        rt.handle().metrics().threads_created() > before,
        "no worker was created after creation was allowed again"
    );
}

/// Failures are retried only after the cooldown: a burst of blocking tasks
/// against a refusing hook attempts few creations, not one per kick.
#[test]
fn failed_creation_waits_for_the_cooldown() {
    let refuse = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicUsize::new(0));
    // The first two workers are created before refusing starts.
    let rt = refusing_runtime(2, Duration::from_secs(60), &refuse, &refused);
    refuse.store(true, SeqCst);
    let handles: Vec<_> = (0..200)
        .map(|_| rt.spawn(async { wq::blocking(|| std::thread::sleep(Duration::from_millis(1))) }))
        .collect();
    for handle in handles {
        rt.block_on(handle).unwrap();
    }
    // One attempt, then nothing for the 60 s cooldown.
    assert_eq!(refused.load(SeqCst), 1);
}

/// Bad cooldowns are refused with an error naming the field.
#[test]
fn create_cooldown_is_validated() {
    let err = wq::Builder::new()
        .create_cooldown(Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("`create_cooldown`"), "{err}");
}

/// `workers(1)`: the only worker blocks (in `wq::blocking`) until a queued
/// task signals it, and no thread can be created. The queued task waits
/// (nothing can run it) and is not lost; once creation works again, the
/// monitor's retry after the cooldown creates a worker, which runs it, and
/// the blocker returns.
#[test]
fn starving_pool_recovers_when_creation_works_again() {
    let refuse = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicUsize::new(0));
    let rt = refusing_runtime(1, Duration::from_millis(20), &refuse, &refused);
    refuse.store(true, SeqCst);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let blocker = rt.spawn(async move { wq::blocking(move || rx.recv().unwrap()) });
    assert!(support::eventually(Duration::from_secs(10), || {
        rt.handle().metrics().num_running_workers() == 0
    }));
    let ran = Arc::new(AtomicBool::new(false));
    let signal = {
        let ran = ran.clone();
        rt.spawn(async move {
            ran.store(true, SeqCst);
            tx.send(()).unwrap();
        })
    };
    std::thread::sleep(Duration::from_millis(150));
    assert!(!ran.load(SeqCst), "ran with no worker to run it");
    assert!(
        refused.load(SeqCst) >= 2,
        "creation was not retried: {}",
        refused.load(SeqCst)
    );
    refuse.store(false, SeqCst);
    assert!(
        support::eventually(Duration::from_secs(10), || ran.load(SeqCst)),
        "the queued task never ran after creation was allowed again"
    );
    rt.block_on(signal).unwrap();
    rt.block_on(blocker).unwrap();
    assert!(ran.load(SeqCst));
}

/// Set in the child process of `real_rlimit_nproc_in_a_child_process`.
const NPROC_CHILD: &str = "WQ_TEST_NPROC_CHILD";

/// A real `RLIMIT_NPROC`: a child process of this test binary switches to
/// an unused uid (so that its own threads are all the uid has), lowers the
/// limit to 3 threads above what it runs, and builds a 2-worker runtime
/// (2 workers and the monitor: the limit is reached). 20 tasks then block
/// in `wq::blocking`, asking for spares the kernel refuses (`EAGAIN`): all
/// complete on the workers there are, and the failures are counted and
/// reported. Root is needed to switch uids (root itself is not held to
/// the limit); without it the test is skipped, saying why.
#[cfg(target_os = "linux")]
#[test]
fn real_rlimit_nproc_in_a_child_process() {
    let exe = std::env::current_exe().unwrap();
    let output = std::process::Command::new(exe)
        .args([
            "--exact",
            "rlimit_nproc_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(NPROC_CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // libtest may print the child's lines after "test name ... ".
    let line = |tag: &str| stdout.lines().find_map(|l| l.find(tag).map(|at| &l[at..]));
    if let Some(reason) = line("wq-test-skip: ") {
        println!("skipped: {reason}");
        return;
    }
    let ok = line("wq-test-child-ok");
    assert!(
        output.status.success() && ok.is_some(),
        "the child failed:\n{stdout}\n{stderr}"
    );
    println!("{}", ok.unwrap_or_default());
}

/// The child's side of `real_rlimit_nproc_in_a_child_process`; does nothing
/// in a normal test run.
#[cfg(target_os = "linux")]
#[test]
fn rlimit_nproc_child() {
    use nix::sys::resource::{setrlimit, Resource};
    use nix::unistd::{setgid, setuid, Gid, Uid};

    if std::env::var_os(NPROC_CHILD).is_none() {
        return;
    }
    if !Uid::current().is_root() {
        println!("wq-test-skip: switching to an unused uid needs root");
        return;
    }
    let logs = captured_logs();
    // An id no account uses, so the limit counts this process's threads only.
    let unused = 54_321 + std::process::id() % 1_000;
    let threads = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("Threads:")
                .map(|n| n.trim().parse::<u64>().unwrap())
        })
        .unwrap();
    let limit = threads + 3;
    let switched = setrlimit(Resource::RLIMIT_NPROC, limit, limit)
        .and_then(|()| setgid(Gid::from_raw(unused)))
        .and_then(|()| setuid(Uid::from_raw(unused)));
    if let Err(err) = switched {
        println!("wq-test-skip: cannot lower RLIMIT_NPROC and switch uid here: {err}");
        return;
    }

    let rt = wq::Builder::new()
        .workers(2)
        .create_cooldown(Duration::from_millis(10))
        .build()
        .expect("2 workers and the monitor fit under the limit");
    let handles: Vec<_> = (0..20)
        .map(|i| {
            rt.spawn(async move {
                wq::blocking(|| std::thread::sleep(Duration::from_millis(10)));
                i
            })
        })
        .collect();
    for (i, handle) in handles.into_iter().enumerate() {
        assert_eq!(rt.block_on(handle).unwrap(), i);
    }
    let failures = rt.handle().metrics().worker_create_failures();
    assert!(failures >= 1, "no creation failed under the limit");
    let logged = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("could not create a worker thread"),
        "the failure was not reported: {logged}"
    );
    println!("wq-test-child-ok: {failures} creations refused by RLIMIT_NPROC {limit}");
}
