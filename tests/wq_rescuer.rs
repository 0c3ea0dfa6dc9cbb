//! Forward progress for `mem_reclaim` workqueues: when every worker is
//! blocked and no other can be had, the queue's rescuer runs its tasks.

mod support;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{captured_logs, eventually, Latch};

/// How long a blocked worker waits for its latch before the test gives up
/// (then it fails instead of hanging).
const GIVE_UP: Duration = Duration::from_secs(10);

/// A runtime of two workers that may not grow.
fn two_worker_runtime(monitor: bool) -> wq::Runtime {
    wq::Builder::new()
        .workers(2)
        .max_workers(2)
        .monitor(monitor)
        .build()
        .unwrap()
}

/// Blocks every worker of `rt` (two) in `wq::blocking` until `latch` opens;
/// returns their handles, each resolving to whether the latch opened.
fn block_both_workers(rt: &wq::Runtime, latch: &Latch) -> Vec<wq::task::JoinHandle<bool>> {
    let blockers = spawn_blockers(rt, 2, latch);
    let metrics = rt.handle().metrics();
    assert_eq!(metrics.num_workers(), 2);
    blockers
}

/// Spawns `n` tasks that block in `wq::blocking` until `latch` opens, and
/// waits until they all do and no worker runs or is idle; returns their
/// handles, each resolving to whether the latch opened.
fn spawn_blockers(rt: &wq::Runtime, n: usize, latch: &Latch) -> Vec<wq::task::JoinHandle<bool>> {
    let entered = Arc::new(AtomicUsize::new(0));
    let blockers: Vec<_> = (0..n)
        .map(|_| {
            let (latch, entered) = (latch.clone(), entered.clone());
            rt.spawn(async move {
                wq::blocking(|| {
                    entered.fetch_add(1, SeqCst);
                    latch.wait_at_most(GIVE_UP)
                })
            })
        })
        .collect();
    let metrics = rt.handle().metrics();
    assert!(
        eventually(GIVE_UP, || entered.load(SeqCst) == n
            && metrics.num_running_workers() == 0
            && metrics.num_idle_workers() == 0),
        "the workers did not all block"
    );
    blockers
}

/// A `mem_reclaim` workqueue on `rt`.
fn reclaim_queue(rt: &wq::Runtime, name: &str) -> wq::Workqueue {
    wq::Workqueue::builder(name)
        .mem_reclaim()
        .handle(rt.handle())
        .build()
        .unwrap()
}

/// Spawns on `queue` the task that opens `latch`, and waits for it and
/// for the `blockers` waiting on the latch.
fn release_through(
    rt: &wq::Runtime,
    queue: &wq::Workqueue,
    latch: &Latch,
    blockers: Vec<wq::task::JoinHandle<bool>>,
) {
    let latch = latch.clone();
    rt.block_on(queue.spawn(async move { latch.open() }))
        .unwrap();
    for blocker in blockers {
        assert!(rt.block_on(blocker).unwrap(), "a blocker gave up waiting");
    }
}

/// Both workers wait for a condition that only a task of a `mem_reclaim`
/// queue signals; no third worker may be created. The rescuer runs the
/// task, and both blockers return.
fn rescued_when_every_worker_blocks(monitor: bool) {
    let rt = two_worker_runtime(monitor);
    let latch = Latch::default();
    let blockers = block_both_workers(&rt, &latch);
    let queue = reclaim_queue(&rt, "reclaim");
    release_through(&rt, &queue, &latch, blockers);
    let stats = queue.stats();
    assert!(stats.mayday >= 1, "no mayday was sent: {stats:?}");
    assert_eq!(stats.rescued, 1, "{stats:?}");
    assert_eq!(stats.completed, 1);
}

#[test]
fn mem_reclaim_task_is_rescued_when_every_worker_blocks() {
    rescued_when_every_worker_blocks(true);
}

/// Mayday does not depend on the detection of stuck polls.
#[test]
fn mem_reclaim_task_is_rescued_without_the_poll_monitor() {
    rescued_when_every_worker_blocks(false);
}

/// The same scenario on a queue without `mem_reclaim`: the task waits
/// until a worker frees, and then runs.
#[test]
fn without_mem_reclaim_the_task_waits_for_a_worker() {
    let rt = two_worker_runtime(true);
    let latch = Latch::default();
    let blockers = block_both_workers(&rt, &latch);
    let queue = rt.block_on(async { wq::Workqueue::builder("plain").build().unwrap() });
    let ran = Arc::new(AtomicBool::new(false));
    let task = queue.spawn({
        let ran = ran.clone();
        async move { ran.store(true, SeqCst) }
    });
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !ran.load(SeqCst),
        "the task ran although every worker was blocked"
    );
    latch.open();
    rt.block_on(task).unwrap();
    assert!(ran.load(SeqCst));
    for blocker in blockers {
        assert!(rt.block_on(blocker).unwrap());
    }
    let stats = queue.stats();
    assert_eq!((stats.mayday, stats.rescued), (0, 0), "{stats:?}");
}

/// Three rescued tasks; the first opens the latch and then blocks for
/// 300 ms on the rescuer's thread. The rescuer took only that one: the
/// other two stay queued and the workers, back from their blockers, run
/// them before the first returns.
#[test]
fn a_blocking_rescued_task_does_not_hold_up_the_others() {
    let rt = two_worker_runtime(true);
    let latch = Latch::default();
    let blockers = block_both_workers(&rt, &latch);
    let queue = reclaim_queue(&rt, "reclaim");
    let finished = Arc::new(Mutex::new(Vec::new()));
    let first = queue.spawn({
        let (latch, finished) = (latch.clone(), finished.clone());
        async move {
            latch.open();
            std::thread::sleep(Duration::from_millis(300));
            finished.lock().unwrap().push(1);
        }
    });
    let others: Vec<_> = [2, 3]
        .into_iter()
        .map(|n| {
            let finished = finished.clone();
            queue.spawn(async move { finished.lock().unwrap().push(n) })
        })
        .collect();
    rt.block_on(first).unwrap();
    for other in others {
        rt.block_on(other).unwrap();
    }
    for blocker in blockers {
        assert!(rt.block_on(blocker).unwrap());
    }
    let finished = finished.lock().unwrap().clone();
    assert_eq!(finished.len(), 3);
    assert_eq!(
        finished.last(),
        Some(&1),
        "a rescued task waited behind the blocking one: {finished:?}"
    );
    assert_eq!(queue.stats().rescued, 1, "{:?}", queue.stats());
}

/// Thread creation fails (not `max_workers`): the only worker blocks, and
/// the rescuer runs the task that releases it.
#[test]
fn rescued_when_thread_creation_fails() {
    // Two creations succeed (the first worker, and the spare the first
    // kick makes); every later one fails.
    let allowed = Arc::new(AtomicUsize::new(2));
    let refused = Arc::new(AtomicUsize::new(0));
    let rt = {
        let (allowed, refused) = (allowed.clone(), refused.clone());
        wq::Builder::new()
            .workers(1)
            .spawn_worker_with(move || {
                if allowed
                    .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                    .is_err()
                {
                    refused.fetch_add(1, SeqCst);
                    return Err(io::Error::from(io::ErrorKind::WouldBlock));
                }
                Ok(())
            })
            .build()
            .unwrap()
    };
    let queue = reclaim_queue(&rt, "reclaim");
    rt.block_on(rt.spawn(async {})).unwrap();
    let metrics = rt.handle().metrics();
    assert!(eventually(GIVE_UP, || metrics.num_workers() == 2
        && metrics.num_idle_workers() == 2));
    let latch = Latch::default();
    let blockers = spawn_blockers(&rt, 2, &latch);
    release_through(&rt, &queue, &latch, blockers);
    assert!(refused.load(SeqCst) >= 1, "no creation was attempted");
    assert_eq!(queue.stats().rescued, 1, "{:?}", queue.stats());
}

/// A rescued task that awaits: each poll is rescued in turn (the task goes
/// back to its pool when woken, and the next mayday rescues it again), and
/// a chain of `mem_reclaim` queues makes progress.
#[test]
fn a_chain_of_rescued_queues_makes_progress() {
    let rt = two_worker_runtime(true);
    let latch = Latch::default();
    let blockers = block_both_workers(&rt, &latch);
    let (first, second) = rt.block_on(async {
        let first = wq::Workqueue::builder("first").mem_reclaim().build();
        let second = wq::Workqueue::builder("second").mem_reclaim().build();
        (first.unwrap(), second.unwrap())
    });
    let (tx, rx) = futures::channel::oneshot::channel::<u32>();
    let waiter = first.spawn({
        let latch = latch.clone();
        async move {
            let n = rx.await.unwrap();
            latch.open();
            n
        }
    });
    let start = Instant::now();
    let sender = second.spawn(async move { tx.send(7).unwrap() });
    assert_eq!(rt.block_on(waiter).unwrap(), 7);
    rt.block_on(sender).unwrap();
    for blocker in blockers {
        assert!(rt.block_on(blocker).unwrap());
    }
    assert!(
        first.stats().rescued >= 1 && second.stats().rescued >= 1,
        "{:?} {:?}",
        first.stats(),
        second.stats()
    );
    // Not a speed assertion: a bound far above the mechanism's (a few
    // 100 ms maydays), to catch a rescue that only happened by timeout.
    assert!(start.elapsed() < GIVE_UP);
}

/// A task of a `mem_reclaim` queue that flushes a queue without a rescuer
/// is reported, as the kernel's `check_flush_dependency` does.
#[test]
fn flushing_a_queue_without_rescuer_from_a_rescued_queue_warns() {
    let logs = captured_logs();
    let rt = wq::Runtime::new().unwrap();
    rt.block_on(async {
        let reclaim = wq::Workqueue::builder("pageout")
            .mem_reclaim()
            .build()
            .unwrap();
        let plain = wq::Workqueue::builder("plain-log").build().unwrap();
        let rescued = wq::Workqueue::builder("other-reclaim")
            .mem_reclaim()
            .build()
            .unwrap();
        reclaim
            .spawn(async move {
                rescued.flush().await;
                plain.flush().await;
            })
            .await
            .unwrap();
    });
    let logged = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("`pageout` is flushing `plain-log`, which has no rescuer"),
        "not reported: {logged}"
    );
    assert!(
        !logged.contains("`other-reclaim`, which has no rescuer"),
        "a queue with a rescuer was reported: {logged}"
    );
}

/// Each `mem_reclaim` queue has its rescuer thread from the start, named
/// after it; it goes away with the queue, and at shutdown.
#[test]
fn a_rescuer_thread_per_mem_reclaim_queue() {
    let rt = wq::Runtime::new().unwrap();
    let (a, b, plain) = rt.block_on(async {
        (
            wq::Workqueue::builder("resc-a")
                .mem_reclaim()
                .build()
                .unwrap(),
            wq::Workqueue::builder("resc-b")
                .mem_reclaim()
                .build()
                .unwrap(),
            wq::Workqueue::builder("resc-c").build().unwrap(),
        )
    });
    if support::threads_named("wq-R-resc-").is_none() {
        println!("wq-test-skip: thread names are not readable here");
        return;
    }
    // A thread names itself as it starts.
    assert!(eventually(GIVE_UP, || support::threads_named("wq-R-resc-") == Some(2)));
    assert!(a.is_mem_reclaim() && !plain.is_mem_reclaim());
    drop(a);
    assert!(eventually(GIVE_UP, || support::threads_named("wq-R-resc-") == Some(1)));
    drop(rt);
    assert!(eventually(GIVE_UP, || support::threads_named("wq-R-resc-") == Some(0)));
    drop(b);
}

/// A rescued task that sleeps on the runtime's timer: with every worker
/// blocked no worker drives the timers, so the starving pool's mayday timer
/// fires them, and the task is rescued again when its sleep ends.
#[test]
fn a_rescued_task_can_sleep() {
    let rt = two_worker_runtime(true);
    let latch = Latch::default();
    let blockers = block_both_workers(&rt, &latch);
    let queue = reclaim_queue(&rt, "sleeper");
    let sleeper = queue.spawn({
        let latch = latch.clone();
        async move {
            wq::time::sleep(Duration::from_millis(20)).await;
            latch.open();
        }
    });
    rt.block_on(sleeper).unwrap();
    for blocker in blockers {
        assert!(rt.block_on(blocker).unwrap(), "a blocker gave up waiting");
    }
    assert!(queue.stats().rescued >= 2, "{:?}", queue.stats());
}

/// With every worker blocked, a timer registered from outside the pool (a
/// `block_on` thread) still fires: the monitor thread fires stranded
/// timers.
#[test]
fn timers_fire_while_every_worker_is_blocked() {
    let rt = two_worker_runtime(false);
    let latch = Latch::default();
    let blockers = block_both_workers(&rt, &latch);
    // Long enough for the monitor thread to go to sleep: the registration
    // must wake it.
    std::thread::sleep(Duration::from_millis(50));
    rt.block_on(async { wq::time::sleep(Duration::from_millis(20)).await });
    let metrics = rt.handle().metrics();
    assert_eq!(
        metrics.num_running_workers() + metrics.num_idle_workers(),
        0,
        "a worker came back before the timer fired"
    );
    latch.open();
    for blocker in blockers {
        assert!(rt.block_on(blocker).unwrap());
    }
}

/// With every worker blocked, a socket registered from outside the pool
/// (a `block_on` thread) is still polled: registering wakes the monitor
/// thread, which polls the reactor while no worker can.
#[test]
fn io_is_polled_while_every_worker_is_blocked() {
    use futures::io::AsyncReadExt;
    use std::io::Write;

    let rt = two_worker_runtime(false);
    let latch = Latch::default();
    let blockers = block_both_workers(&rt, &latch);
    // Long enough for the monitor thread to go to sleep.
    std::thread::sleep(Duration::from_millis(50));
    let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let got = rt.block_on(async move {
        let mut theirs = wq::net::UnixStream::from_std(theirs).unwrap();
        ours.write_all(b"polled").unwrap();
        let mut buf = [0u8; 6];
        theirs.read_exact(&mut buf).await.unwrap();
        buf
    });
    assert_eq!(&got, b"polled");
    let metrics = rt.handle().metrics();
    assert_eq!(
        metrics.num_running_workers() + metrics.num_idle_workers(),
        0,
        "a worker came back before the read completed"
    );
    latch.open();
    for blocker in blockers {
        assert!(rt.block_on(blocker).unwrap());
    }
}

/// A task run by the rescuer knows its id, as on a worker.
#[test]
fn a_rescued_task_sees_its_own_id() {
    let rt = two_worker_runtime(true);
    let latch = Latch::default();
    let blockers = block_both_workers(&rt, &latch);
    let queue = reclaim_queue(&rt, "reclaim-id");
    let task = queue.spawn({
        let latch = latch.clone();
        async move {
            let id = wq::task::try_id();
            latch.open();
            id
        }
    });
    let id = task.id();
    assert_eq!(rt.block_on(task).unwrap(), Some(id));
    for blocker in blockers {
        assert!(rt.block_on(blocker).unwrap(), "a blocker gave up waiting");
    }
    assert_eq!(queue.stats().rescued, 1);
}
