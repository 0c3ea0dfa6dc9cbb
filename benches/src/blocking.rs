//! Blocking tolerance: what happens to the other tasks when some tasks stall
//! their worker without telling the runtime, by blocking in a plain syscall
//! (`blocking_storm_*`) or by spinning without ever yielding (`hog`).
//!
//! This is what wq's monitor is for: it finds a worker stuck in one poll and
//! takes it out of concurrency management, so that another worker runs the
//! rest. tokio has no such mechanism (its answer is `block_in_place` and
//! `spawn_blocking`, which these workloads deliberately do not use), so the
//! figures show a difference in kind rather than in speed.
//!
//! `blocking_storm_*` runs in pairs on runtimes kept for all its samples,
//! like the timer workloads (`harness.rs`); `hog` needs a fresh runtime per
//! run, since its spinning task is only released after the runtime is shut
//! down, and is run by [`hog`] here.

use std::hint;
use std::io;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize};
use std::sync::mpsc::{self, SyncSender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::Config;
use crate::rt::{MonitorCounts, Rt, Tokio, Wq};
use crate::stats::quantile;
use crate::sys::thread_cpu_time;
use crate::workloads::{lateness_ns, wait_signal, STUCK_AFTER};

/// Blocker counts `blocking_storm` is measured with (`blocking_storm_b0`
/// ... `_b4`).
pub const STORM_BLOCKERS: [usize; 4] = [0, 1, 2, 4];
/// How long each blocker of `blocking_storm` blocks its worker, in
/// `std::thread::sleep`.
pub const STORM_BLOCK: Duration = Duration::from_millis(200);
/// Timer tasks in one `blocking_storm` run.
pub const STORM_TIMERS: usize = 2_000;
/// The `blocking_storm` deadlines are spread evenly over this span after the
/// start instant: timer task `i` (from 0) is due at `(i + 1) / STORM_TIMERS`
/// of it.
pub const STORM_SPAN: Duration = Duration::from_millis(100);

/// How long `hog` counts the small tasks that complete.
pub const HOG_WINDOW: Duration = Duration::from_secs(1);
/// `hog` spawns one small task per this interval, by the runtime's own
/// sleep.
pub const HOG_SPAWN_EVERY: Duration = Duration::from_millis(1);
/// How often `hog` reads wq's hog detection count.
pub const HOG_DETECTION_POLL: Duration = Duration::from_millis(1);
/// How long `hog` lets the small tasks spawned near the end of the window
/// finish before it counts the ones that never ran.
pub const HOG_GRACE: Duration = Duration::from_millis(100);
/// How long `hog` waits for a runtime's threads at shutdown; the thread
/// still spinning in the hog is left behind, then released.
const HOG_SHUTDOWN: Duration = Duration::from_millis(100);

/// What one `blocking_storm` run measured.
#[derive(Clone, Copy, Debug)]
pub struct StormRun {
    /// From the start instant until the last task (blockers included)
    /// finished.
    pub makespan: Duration,
    /// Median timer lateness (resume instant minus deadline), nanoseconds.
    pub lateness_p50_ns: f64,
    /// 99th percentile of the timer lateness, nanoseconds.
    pub lateness_p99_ns: f64,
    /// When the first blocker started, after the start instant (`None`
    /// without blockers).
    pub first_blocker: Option<Duration>,
    /// What the runtime's monitor counted during the run, for a runtime
    /// with one.
    pub monitor: Option<MonitorCounts>,
}

impl StormRun {
    /// Combines the runs of one sample: makespans and monitor counts add
    /// up, the other figures are medians.
    pub fn combine(runs: &[StormRun]) -> StormRun {
        let median = |get: fn(&StormRun) -> f64| {
            let values: Vec<f64> = runs.iter().map(get).collect();
            quantile(&values, 0.5)
        };
        let starts: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.first_blocker)
            .map(|d| d.as_secs_f64())
            .collect();
        let monitor = runs
            .iter()
            .map(|r| r.monitor)
            .reduce(|a, b| {
                let (a, b) = (a?, b?);
                Some(MonitorCounts {
                    blocked: a.blocked + b.blocked,
                    hogs: a.hogs + b.hogs,
                    ticks: a.ticks + b.ticks,
                    wakeups: a.wakeups + b.wakeups,
                    threads_created: a.threads_created + b.threads_created,
                })
            })
            .flatten();
        StormRun {
            makespan: runs.iter().map(|r| r.makespan).sum(),
            lateness_p50_ns: median(|r| r.lateness_p50_ns),
            lateness_p99_ns: median(|r| r.lateness_p99_ns),
            first_blocker: (!starts.is_empty())
                .then(|| Duration::from_secs_f64(quantile(&starts, 0.5))),
            monitor,
        }
    }
}

/// The deadline of timer task `index` of `blocking_storm`, after the start
/// instant.
fn storm_offset(index: usize) -> Duration {
    STORM_SPAN.mul_f64((index + 1) as f64 / STORM_TIMERS as f64)
}

/// What the tasks of one `blocking_storm` run share.
struct StormShared {
    /// Each timer task's lateness in nanoseconds, by task index.
    lateness_ns: Box<[AtomicI64]>,
    /// The latest instant any task finished, nanoseconds after the start.
    last_end_ns: AtomicU64,
    /// The earliest instant a blocker started, nanoseconds after the start
    /// (`u64::MAX` until one does).
    first_blocker_ns: AtomicU64,
    /// Tasks yet to finish, blockers and timer tasks.
    remaining: AtomicUsize,
    /// Signalled by the last task to finish.
    done: SyncSender<()>,
}

impl StormShared {
    /// Called by every task as its last act.
    fn finish(&self, start: Instant) {
        self.last_end_ns.fetch_max(nanos(start.elapsed()), Relaxed);
        // AcqRel: the last decrement sees every task's figures, and hands
        // them on to the runner through the channel.
        if self.remaining.fetch_sub(1, AcqRel) == 1 {
            self.done.send(()).expect("receiver alive");
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// One run of `blocking_storm` with `blockers` blockers.
///
/// One spawned task takes the start instant, then spawns, from inside the
/// runtime, first the blockers, each of which calls `std::thread::sleep`
/// for [`STORM_BLOCK`] with no annotation, then [`STORM_TIMERS`] timer
/// tasks, each of which sleeps with the runtime's timer until its deadline
/// ([`storm_offset`]) and records its lateness. Blockers go first so that
/// they hold their workers before the timers are due (the run records when
/// the first one started). The run ends when every task has finished.
pub fn blocking_storm<R: Rt>(rt: &R, blockers: usize) -> StormRun {
    let (done, done_rx) = mpsc::sync_channel(1);
    let shared = Arc::new(StormShared {
        lateness_ns: (0..STORM_TIMERS).map(|_| AtomicI64::new(0)).collect(),
        last_end_ns: AtomicU64::new(0),
        first_blocker_ns: AtomicU64::new(u64::MAX),
        remaining: AtomicUsize::new(blockers + STORM_TIMERS),
        done,
    });
    let handle = rt.handle();
    let counts_before = R::monitor_counts(&handle);

    let spawner = {
        let shared = Arc::clone(&shared);
        rt.spawn(async move {
            let start = Instant::now();
            for _ in 0..blockers {
                let shared = Arc::clone(&shared);
                drop(R::spawn_inside(async move {
                    shared
                        .first_blocker_ns
                        .fetch_min(nanos(start.elapsed()), Relaxed);
                    // Blocks the worker without telling the runtime: what
                    // the workload is about.
                    thread::sleep(STORM_BLOCK);
                    shared.finish(start);
                }));
            }
            for index in 0..STORM_TIMERS {
                let deadline = start + storm_offset(index);
                let shared = Arc::clone(&shared);
                drop(R::spawn_inside(async move {
                    R::sleep_until(deadline).await;
                    let late_ns = lateness_ns(Instant::now(), deadline);
                    shared.lateness_ns[index].store(late_ns, Relaxed);
                    shared.finish(start);
                }));
            }
        })
    };
    rt.block_on(spawner)
        .expect("blocking_storm spawner completes");
    wait_signal(&done_rx, "blocking_storm");
    let counts_after = R::monitor_counts(&handle);

    let lateness: Vec<f64> = shared
        .lateness_ns
        .iter()
        .map(|ns| ns.load(Relaxed) as f64)
        .collect();
    let first_blocker = shared.first_blocker_ns.load(Relaxed);
    StormRun {
        makespan: Duration::from_nanos(shared.last_end_ns.load(Relaxed)),
        lateness_p50_ns: quantile(&lateness, 0.50),
        lateness_p99_ns: quantile(&lateness, 0.99),
        first_blocker: (first_blocker != u64::MAX).then(|| Duration::from_nanos(first_blocker)),
        monitor: counts_after
            .zip(counts_before)
            .map(|(after, before)| after.since(before)),
    }
}

/// What one `hog` run measured.
#[derive(Clone, Copy, Debug)]
pub struct HogRun {
    /// Small tasks spawned within the window.
    pub spawned: usize,
    /// Small tasks that ran within the window.
    pub completed: usize,
    /// Small tasks that had still not run [`HOG_GRACE`] after the window.
    pub never_ran: usize,
    /// From the hog's first poll until its detection was seen in the
    /// runtime's metrics (read every [`HOG_DETECTION_POLL`], so up to about
    /// that much late); `None` without a monitor or if the hog was not
    /// detected before the window ended.
    pub detection: Option<Duration>,
    /// The CPU time the hog's thread had used in the hog's poll when it saw
    /// the detection noted (the monitor judges a hog by CPU time, so under
    /// contention for the CPUs this is the steadier figure).
    pub detection_cpu: Option<Duration>,
}

/// The runs of `hog` on both runtimes; `wq[i]` and `tokio[i]` are pair
/// `i`, taken back to back.
#[derive(Clone, Debug)]
pub struct HogComparison {
    /// Worker threads of each runtime.
    pub workers: usize,
    /// wq's runs.
    pub wq: Vec<HogRun>,
    /// tokio's runs.
    pub tokio: Vec<HogRun>,
}

/// Measures `hog` on wq and tokio: `config.timer_samples` pairs of runs,
/// alternating which runtime goes first, each run on a fresh runtime. No
/// warm-up: each run starts its window only once the hog is running.
pub fn hog(config: &Config, mut progress: impl FnMut(&str)) -> io::Result<HogComparison> {
    let pairs = config.timer_samples;
    let mut comparison = HogComparison {
        workers: config.workers,
        wq: Vec::with_capacity(pairs),
        tokio: Vec::with_capacity(pairs),
    };
    for pair in 0..pairs {
        progress(&format!(
            "pair {}/{pairs} (a fresh runtime per run)",
            pair + 1
        ));
        if pair % 2 == 0 {
            comparison.wq.push(hog_run::<Wq>(config.workers)?);
            comparison.tokio.push(hog_run::<Tokio>(config.workers)?);
        } else {
            comparison.tokio.push(hog_run::<Tokio>(config.workers)?);
            comparison.wq.push(hog_run::<Wq>(config.workers)?);
        }
    }
    Ok(comparison)
}

/// One run of `hog` on a fresh runtime of `R` with `workers` workers.
///
/// 1. Spawn the hog: a task that records when it was first polled, then
///    spins on a stop flag without ever yielding (noting its thread's CPU
///    time when it sees the detection flag of step 2 set).
/// 2. Once it runs, start a side thread that reads the runtime's hog
///    detection count every [`HOG_DETECTION_POLL`] and notes when it first
///    rises, setting the detection flag (runtimes with a monitor only).
/// 3. Spawn a spawner task: for [`HOG_WINDOW`] from now, it sleeps with the
///    runtime's timer until the next multiple of [`HOG_SPAWN_EVERY`] and
///    spawns a small task, which counts itself if it runs within the
///    window.
/// 4. After the window and a grace for the last small tasks, shut the
///    runtime down with a timeout (the hog's thread cannot stop), then set
///    the stop flag, which releases that thread.
fn hog_run<R: Rt>(workers: usize) -> io::Result<HogRun> {
    let rt = R::build(workers)?;
    let handle = rt.handle();
    let counts_before = R::monitor_counts(&handle);
    let stop = Arc::new(AtomicBool::new(false));
    let detected = Arc::new(AtomicBool::new(false));
    let detection_cpu_ns = Arc::new(AtomicU64::new(u64::MAX));

    let (started_tx, started_rx) = mpsc::sync_channel(1);
    drop(rt.spawn({
        let (stop, detected) = (Arc::clone(&stop), Arc::clone(&detected));
        let detection_cpu_ns = Arc::clone(&detection_cpu_ns);
        async move {
            let cpu_start = thread_cpu_time();
            started_tx.send(Instant::now()).expect("runner waits");
            // Never yields: spins until the runner, done with the runtime,
            // sets the flag.
            let mut noted = false;
            while !stop.load(Relaxed) {
                if !noted && detected.load(Relaxed) {
                    let used = thread_cpu_time().saturating_sub(cpu_start);
                    detection_cpu_ns.store(nanos(used), Relaxed);
                    noted = true;
                }
                hint::spin_loop();
            }
        }
    }));
    let hog_start = started_rx
        .recv_timeout(STUCK_AFTER)
        .unwrap_or_else(|err| panic!("hog: the hog did not start within {STUCK_AFTER:?} ({err})"));

    let window_over = AtomicBool::new(false);
    let run = thread::scope(|scope| {
        let watcher = counts_before.map(|before| {
            let (handle, window_over, detected) = (&handle, &window_over, &detected);
            scope.spawn(move || loop {
                let now = Instant::now();
                if R::monitor_counts(handle).is_some_and(|c| c.hogs > before.hogs) {
                    detected.store(true, Relaxed);
                    return Some(now);
                }
                if window_over.load(Relaxed) {
                    return None;
                }
                thread::sleep(HOG_DETECTION_POLL);
            })
        });

        let completed = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        let window_start = Instant::now();
        let window_end = window_start + HOG_WINDOW;
        let spawner = {
            let completed = Arc::clone(&completed);
            let finished = Arc::clone(&finished);
            rt.spawn(async move {
                let mut spawned = 0;
                loop {
                    let next = window_start + HOG_SPAWN_EVERY * spawned as u32;
                    if next >= window_end {
                        break;
                    }
                    R::sleep_until(next).await;
                    if Instant::now() >= window_end {
                        break;
                    }
                    let completed = Arc::clone(&completed);
                    let finished = Arc::clone(&finished);
                    drop(R::spawn_inside(async move {
                        if Instant::now() < window_end {
                            completed.fetch_add(1, Relaxed);
                        }
                        // Release: pairs with the runner's Acquire loads, so
                        // that a task seen finished is seen counted.
                        finished.fetch_add(1, Release);
                    }));
                    spawned += 1;
                }
                spawned
            })
        };
        let spawned = rt.block_on(spawner).expect("hog spawner completes");
        let grace_end = Instant::now().max(window_end) + HOG_GRACE;
        while finished.load(Acquire) < spawned && Instant::now() < grace_end {
            thread::sleep(HOG_DETECTION_POLL);
        }
        window_over.store(true, Relaxed);
        let detected_at = watcher.and_then(|w| w.join().expect("hog watcher thread"));
        let finished = finished.load(Acquire);
        // The hog notes its CPU time within a spin of seeing the flag; give
        // it a moment if it has not yet (it may be waiting for a CPU).
        let noted_by = Instant::now() + HOG_GRACE;
        while detected_at.is_some()
            && detection_cpu_ns.load(Relaxed) == u64::MAX
            && Instant::now() < noted_by
        {
            thread::sleep(HOG_DETECTION_POLL);
        }
        let cpu_ns = detection_cpu_ns.load(Relaxed);
        HogRun {
            spawned,
            completed: completed.load(Relaxed),
            never_ran: spawned - finished.min(spawned),
            detection: detected_at.map(|at| at.saturating_duration_since(hog_start)),
            detection_cpu: (cpu_ns != u64::MAX).then(|| Duration::from_nanos(cpu_ns)),
        }
    });

    drop(handle);
    // The hog still spins: wait for the other threads only so long, then
    // release the hog's thread so that it does not burn a CPU through the
    // rest of the runner.
    rt.shutdown_timeout(HOG_SHUTDOWN);
    stop.store(true, Relaxed);
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storm_deadlines_span_the_first_100_ms() {
        assert_eq!(storm_offset(0), STORM_SPAN / STORM_TIMERS as u32);
        assert_eq!(storm_offset(STORM_TIMERS - 1), STORM_SPAN);
        assert!((1..STORM_TIMERS).all(|i| storm_offset(i) > storm_offset(i - 1)));
    }

    #[test]
    fn storm_records_timers_and_blockers() {
        let tokio = Tokio::build(2).unwrap();
        let run = blocking_storm(&tokio, 1);
        assert!(run.makespan >= STORM_BLOCK, "{run:?}");
        assert!(run.first_blocker.is_some_and(|d| d < STORM_SPAN), "{run:?}");
        assert!(run.lateness_p99_ns >= run.lateness_p50_ns, "{run:?}");
        assert!(run.monitor.is_none(), "tokio has no monitor");

        let wq = Wq::build(2).unwrap();
        let run = blocking_storm(&wq, 0);
        assert!(run.first_blocker.is_none(), "{run:?}");
        assert!(run.makespan >= STORM_SPAN, "{run:?}");
        // No blocker, but on a loaded machine a poll may still wait over a
        // millisecond on a lock and be counted: only the presence is fixed.
        assert!(run.monitor.is_some(), "wq reports its monitor's counts");
    }
}
