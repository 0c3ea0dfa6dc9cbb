//! Workloads measured once per runtime rather than in pairs: what an idle
//! runtime costs in CPU time, and what pending tasks cost in memory. Both
//! read process-wide figures, so each runtime is measured alone: built
//! fresh, measured, and dropped before the other is built.

use std::io;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::rt::{MonitorCounts, Rt, Tokio, Wq};
use crate::sys::{process_cpu_time, release_free_memory, resident_bytes};

/// How long a freshly built runtime is left to settle (its workers started
/// and parked) before its idle cost is measured.
const IDLE_SETTLE: Duration = Duration::from_millis(100);
/// How long the pending tasks of `memory_100k_pending` may take to all be
/// polled before the workload is declared stuck.
const STUCK_AFTER: Duration = Duration::from_secs(60);

/// The process CPU time each runtime cost while idle.
#[derive(Clone, Copy, Debug)]
pub struct IdleCost {
    /// How long each runtime was left idle.
    pub idle: Duration,
    /// CPU time used by the process while wq's runtime was idle.
    pub wq_cpu: Duration,
    /// CPU time used by the process while tokio's runtime was idle.
    pub tokio_cpu: Duration,
    /// What wq's monitor counted while wq was idle (`None` if wq had no
    /// monitor: it has one, as built by default).
    pub wq_monitor: Option<MonitorCounts>,
}

/// Measures [`IdleCost`]: for each runtime in turn (wq first, as built by
/// default, so with its monitor), build it, run one empty task, let it
/// settle for [`IDLE_SETTLE`], then take the process CPU time (getrusage,
/// user + system) used while the main thread sleeps for `idle`.
pub fn idle_cost(workers: usize, idle: Duration) -> io::Result<IdleCost> {
    let (wq_cpu, wq_monitor) = idle_cpu::<Wq>(workers, idle)?;
    let (tokio_cpu, _) = idle_cpu::<Tokio>(workers, idle)?;
    Ok(IdleCost {
        idle,
        wq_cpu,
        tokio_cpu,
        wq_monitor,
    })
}

/// The CPU time used while `R` sat idle, and what its monitor (if any)
/// counted meanwhile.
fn idle_cpu<R: Rt>(
    workers: usize,
    idle: Duration,
) -> io::Result<(Duration, Option<MonitorCounts>)> {
    let rt = R::build(workers)?;
    rt.block_on(rt.spawn(async {}))
        .expect("empty task completes");
    thread::sleep(IDLE_SETTLE);
    let handle = rt.handle();
    let counts_before = R::monitor_counts(&handle);
    let before = process_cpu_time();
    thread::sleep(idle);
    let used = process_cpu_time().saturating_sub(before);
    let counts = R::monitor_counts(&handle)
        .zip(counts_before)
        .map(|(after, before)| after.since(before));
    drop(handle);
    drop(rt);
    Ok((used, counts))
}

/// The resident memory each runtime's pending tasks took.
#[derive(Clone, Copy, Debug)]
pub struct PendingMemory {
    /// Pending tasks.
    pub tasks: usize,
    /// RSS growth with wq's tasks pending, bytes (negative if RSS shrank).
    pub wq_growth: i64,
    /// RSS growth with tokio's tasks pending, bytes.
    pub tokio_growth: i64,
}

/// Measures [`PendingMemory`]: for each runtime in turn (wq first), build a
/// fresh runtime and run one empty task; hand cached free memory back to the
/// operating system and read the RSS; spawn `tasks` tasks from `block_on`
/// (dropping their join handles) that each count themselves as started and
/// then await `std::future::pending`; once all have started, read the RSS
/// again. Dropping the runtime then drops the tasks.
pub fn pending_memory(workers: usize, tasks: usize) -> io::Result<PendingMemory> {
    Ok(PendingMemory {
        tasks,
        wq_growth: pending_growth::<Wq>(workers, tasks)?,
        tokio_growth: pending_growth::<Tokio>(workers, tasks)?,
    })
}

fn pending_growth<R: Rt>(workers: usize, tasks: usize) -> io::Result<i64> {
    let rt = R::build(workers)?;
    rt.block_on(rt.spawn(async {}))
        .expect("empty task completes");
    release_free_memory();
    let before = resident_bytes()?;

    let started = Arc::new(AtomicUsize::new(0));
    rt.block_on(async {
        for _ in 0..tasks {
            let started = Arc::clone(&started);
            drop(R::spawn_inside(async move {
                started.fetch_add(1, Relaxed);
                std::future::pending::<()>().await;
            }));
        }
    });
    let deadline = Instant::now() + STUCK_AFTER;
    while started.load(Relaxed) < tasks {
        assert!(
            Instant::now() < deadline,
            "memory_pending: tasks not all polled within {STUCK_AFTER:?}"
        );
        thread::sleep(Duration::from_millis(1));
    }
    let after = resident_bytes()?;
    drop(rt);
    Ok(after as i64 - before as i64)
}
