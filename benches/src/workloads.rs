//! The comparison workloads, each written once over [`Rt`].
//!
//! The scheduler workloads follow the shapes of tokio's own
//! `benches/rt_multi_threaded.rs`; the seed round trip follows the shape of
//! the kernel's workqueue self-test: producers outside the runtime hand one
//! item at a time to the runtime and wait for it to run.

use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::rt::Rt;
use crate::stats::percentile_sorted;

/// Tasks spawned per iteration of the `spawn_many_*` workloads.
pub const NUM_SPAWN: usize = 10_000;
/// Ping-pong pairs per iteration of `ping_pong`.
pub const NUM_PINGS: usize = 1_000;
/// Tasks per iteration of `yield_many`.
pub const YIELD_TASKS: usize = 200;
/// Yields each `yield_many` task performs.
pub const NUM_YIELD: usize = 1_000;
/// Length of the spawn chain in `chained_spawn`.
pub const CHAIN_LEN: usize = 1_000;
/// CPU time each background task of `spawn_many_remote_busy` burns between
/// yields.
pub const STALL: Duration = Duration::from_micros(10);
/// Items each producer hands over in one seed round trip run.
pub const SEED_ITEMS: usize = 50_000;
/// Producer counts the seed round trip is measured with.
pub const SEED_PRODUCERS: [usize; 3] = [1, 2, 4];

/// How long any wait for a completion signal may take before the workload is
/// declared stuck (a benchmark must fail loudly rather than hang).
const STUCK_AFTER: Duration = Duration::from_secs(60);

/// One comparison workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Inside the runtime (from `block_on`), spawn [`NUM_SPAWN`] no-op tasks
    /// whose join handles are dropped; the last task to run signals a std
    /// channel that `block_on` waits on. Measures in-runtime spawn and the
    /// scheduling of a burst of tiny tasks.
    SpawnManyLocal,
    /// From outside the runtime, spawn [`NUM_SPAWN`] empty tasks, then await
    /// all their join handles in `block_on`. Measures remote (injected) spawn
    /// and join on an otherwise idle runtime.
    SpawnManyRemoteIdle,
    /// As [`Workload::SpawnManyRemoteIdle`], spawning through a handle, while
    /// `2 x workers` background tasks loop `yield_now` + a [`STALL`] spin.
    /// Measures how promptly injected work is picked up when every worker is
    /// busy with yielding tasks.
    SpawnManyRemoteBusy,
    /// From a task, spawn [`NUM_PINGS`] tasks; each spawns a partner and the
    /// two exchange a message each way over oneshot channels. The last to
    /// finish signals a std channel. Measures spawn plus cross-task wakeups.
    PingPong,
    /// From outside, spawn [`YIELD_TASKS`] tasks that each call `yield_now`
    /// [`NUM_YIELD`] times, then signal a std channel. Measures the cost of
    /// rescheduling a yielding task.
    YieldMany,
    /// A chain of [`CHAIN_LEN`] nested spawns: each task spawns the next and
    /// exits; the last signals a std channel. Measures the latency of one
    /// spawn-to-run hop, repeated serially.
    ChainedSpawn,
    /// `producers` std threads outside the runtime each repeat, `items`
    /// times: spawn one task through a handle (only this call is timed for
    /// the latency figures), then wait on a std `Mutex` + `Condvar` until
    /// that task has run. Measures the full hand-off round trip into and out
    /// of the runtime: items/s, and the spawn call's latency.
    SeedRoundTrip {
        /// Producer threads running at once.
        producers: usize,
        /// Items each producer hands over.
        items: usize,
    },
}

/// The outcome of running a workload `reps` times in a row.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Wall time of all repetitions together.
    pub elapsed: Duration,
    /// How many times the workload ran.
    pub reps: u64,
    /// For the seed round trip: the spawn-call latencies of this run.
    pub spawn_latency: Option<SpawnLatency>,
}

impl Sample {
    /// Wall time of one repetition.
    pub fn per_rep(&self) -> Duration {
        self.elapsed.div_f64(self.reps as f64)
    }
}

/// Percentiles of the spawn-call latency over all items of one run.
#[derive(Clone, Copy, Debug)]
pub struct SpawnLatency {
    /// Median.
    pub p50: Duration,
    /// 95th percentile.
    pub p95: Duration,
}

impl Workload {
    /// Every workload of the comparison suite, in report order.
    pub fn all() -> Vec<Self> {
        let mut all = vec![
            Self::SpawnManyLocal,
            Self::SpawnManyRemoteIdle,
            Self::SpawnManyRemoteBusy,
            Self::PingPong,
            Self::YieldMany,
            Self::ChainedSpawn,
        ];
        all.extend(SEED_PRODUCERS.map(|producers| Self::SeedRoundTrip {
            producers,
            items: SEED_ITEMS,
        }));
        all
    }

    /// The name used in reports and matched by `--filter`.
    pub fn name(self) -> String {
        match self {
            Self::SpawnManyLocal => "spawn_many_local".into(),
            Self::SpawnManyRemoteIdle => "spawn_many_remote_idle".into(),
            Self::SpawnManyRemoteBusy => "spawn_many_remote_busy".into(),
            Self::PingPong => "ping_pong".into(),
            Self::YieldMany => "yield_many".into(),
            Self::ChainedSpawn => "chained_spawn".into(),
            Self::SeedRoundTrip { producers, .. } => format!("seed_round_trip_p{producers}"),
        }
    }

    /// What one repetition of the workload consists of, for reports.
    pub fn unit(self) -> String {
        let n = grouped;
        match self {
            Self::SpawnManyLocal => format!("{} local spawns", n(NUM_SPAWN)),
            Self::SpawnManyRemoteIdle => format!("{} remote spawns + joins, idle", n(NUM_SPAWN)),
            Self::SpawnManyRemoteBusy => format!("{} remote spawns + joins, busy", n(NUM_SPAWN)),
            Self::PingPong => format!("{} ping-pong pairs", n(NUM_PINGS)),
            Self::YieldMany => format!("{} tasks x {} yields", n(YIELD_TASKS), n(NUM_YIELD)),
            Self::ChainedSpawn => format!("chain of {} spawns", n(CHAIN_LEN)),
            Self::SeedRoundTrip { producers, items } => {
                format!("{producers} x {} round trips", n(items))
            }
        }
    }

    /// Whether this is a seed round trip workload.
    pub fn is_seed(self) -> bool {
        matches!(self, Self::SeedRoundTrip { .. })
    }

    /// Runs the workload `reps` times back to back on `rt`, whose runtime has
    /// `workers` worker threads, and times it.
    ///
    /// Only the workload itself is timed: the background load of
    /// `spawn_many_remote_busy` is started before the clock starts and
    /// stopped after it stops, and producer threads of the seed round trip
    /// are started before it.
    pub fn run<R: Rt>(self, rt: &R, workers: usize, reps: u64) -> Sample {
        let timed = |body: &mut dyn FnMut()| {
            let start = Instant::now();
            for _ in 0..reps {
                body();
            }
            Sample {
                elapsed: start.elapsed(),
                reps,
                spawn_latency: None,
            }
        };
        match self {
            Self::SpawnManyLocal => timed(&mut || spawn_many_local(rt)),
            Self::SpawnManyRemoteIdle => {
                let mut handles = Vec::with_capacity(NUM_SPAWN);
                timed(&mut || spawn_many_remote_idle(rt, &mut handles))
            }
            Self::SpawnManyRemoteBusy => {
                let load = BusyLoad::start(rt, 2 * workers);
                let handle = rt.handle();
                let mut handles = Vec::with_capacity(NUM_SPAWN);
                let sample = timed(&mut || spawn_many_remote_busy::<R>(rt, &handle, &mut handles));
                load.stop(rt);
                sample
            }
            Self::PingPong => timed(&mut || ping_pong(rt)),
            Self::YieldMany => timed(&mut || yield_many(rt)),
            Self::ChainedSpawn => timed(&mut || chained_spawn(rt)),
            Self::SeedRoundTrip { producers, items } => {
                let mut elapsed = Duration::ZERO;
                let mut latencies = Vec::with_capacity(producers * items);
                for _ in 0..reps {
                    elapsed += seed_round_trip(rt, producers, items, &mut latencies);
                }
                Sample {
                    elapsed,
                    reps,
                    spawn_latency: Some(SpawnLatency::of(&mut latencies)),
                }
            }
        }
    }
}

impl SpawnLatency {
    fn of(latencies: &mut [Duration]) -> Self {
        latencies.sort_unstable();
        Self {
            p50: percentile_sorted(latencies, 0.50),
            p95: percentile_sorted(latencies, 0.95),
        }
    }
}

/// Formats `n` with a comma between groups of three digits.
pub fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Waits for one completion signal from a workload's tasks.
fn wait_signal(rx: &Receiver<()>, workload: &str) {
    if let Err(err) = rx.recv_timeout(STUCK_AFTER) {
        panic!("{workload}: no completion signal within {STUCK_AFTER:?} ({err})");
    }
}

/// One iteration of [`Workload::SpawnManyLocal`].
fn spawn_many_local<R: Rt>(rt: &R) {
    let (tx, rx) = mpsc::sync_channel(1);
    let rem = Arc::new(AtomicUsize::new(NUM_SPAWN));
    rt.block_on(async {
        for _ in 0..NUM_SPAWN {
            let tx = tx.clone();
            let rem = Arc::clone(&rem);
            drop(R::spawn_inside(async move {
                if rem.fetch_sub(1, Relaxed) == 1 {
                    tx.send(()).expect("receiver alive");
                }
            }));
        }
        wait_signal(&rx, "spawn_many_local");
    });
}

/// One iteration of [`Workload::SpawnManyRemoteIdle`].
fn spawn_many_remote_idle<R: Rt>(rt: &R, handles: &mut Vec<R::Join<()>>) {
    for _ in 0..NUM_SPAWN {
        handles.push(rt.spawn(async {}));
    }
    join_all::<R>(rt, handles);
}

/// One iteration of [`Workload::SpawnManyRemoteBusy`].
fn spawn_many_remote_busy<R: Rt>(rt: &R, handle: &R::Handle, handles: &mut Vec<R::Join<()>>) {
    for _ in 0..NUM_SPAWN {
        handles.push(R::spawn_on(handle, async {}));
    }
    join_all::<R>(rt, handles);
}

/// Awaits (and empties) `handles` from `block_on`.
fn join_all<R: Rt>(rt: &R, handles: &mut Vec<R::Join<()>>) {
    rt.block_on(async {
        for handle in handles.drain(..) {
            handle.await.expect("empty task completes");
        }
    });
}

/// Background tasks that keep every worker busy: each loops `yield_now`
/// followed by a [`STALL`] of spinning, until stopped.
struct BusyLoad<R: Rt> {
    stop: Arc<AtomicBool>,
    tasks: Vec<R::Join<()>>,
}

impl<R: Rt> BusyLoad<R> {
    /// Spawns `tasks` busy tasks and returns once each has started running.
    fn start(rt: &R, tasks: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicUsize::new(0));
        let tasks = (0..tasks)
            .map(|_| {
                let stop = Arc::clone(&stop);
                let started = Arc::clone(&started);
                rt.spawn(async move {
                    started.fetch_add(1, SeqCst);
                    while !stop.load(Relaxed) {
                        R::yield_now().await;
                        stall();
                    }
                })
            })
            .collect::<Vec<_>>();
        let deadline = Instant::now() + STUCK_AFTER;
        while started.load(SeqCst) < tasks.len() {
            assert!(
                Instant::now() < deadline,
                "spawn_many_remote_busy: background load did not start within {STUCK_AFTER:?}"
            );
            thread::yield_now();
        }
        Self { stop, tasks }
    }

    /// Stops the busy tasks and waits for them to finish.
    fn stop(mut self, rt: &R) {
        self.stop.store(true, Relaxed);
        join_all::<R>(rt, &mut self.tasks);
    }
}

/// Burns [`STALL`] of CPU time, letting the OS schedule others in between.
fn stall() {
    let start = Instant::now();
    while start.elapsed() < STALL {
        thread::yield_now();
    }
}

/// One iteration of [`Workload::PingPong`].
fn ping_pong<R: Rt>(rt: &R) {
    let (done_tx, done_rx) = mpsc::sync_channel(1);
    let rem = Arc::new(AtomicUsize::new(NUM_PINGS));
    rt.block_on(async {
        drop(R::spawn_inside(async move {
            for _ in 0..NUM_PINGS {
                let rem = Arc::clone(&rem);
                let done_tx = done_tx.clone();
                drop(R::spawn_inside(async move {
                    let (tx1, rx1) = oneshot::channel();
                    let (tx2, rx2) = oneshot::channel();
                    drop(R::spawn_inside(async move {
                        rx1.await.expect("ping sent");
                        tx2.send(()).expect("pong receiver alive");
                    }));
                    tx1.send(()).expect("ping receiver alive");
                    rx2.await.expect("pong sent");
                    if rem.fetch_sub(1, Relaxed) == 1 {
                        done_tx.send(()).expect("receiver alive");
                    }
                }));
            }
        }));
        wait_signal(&done_rx, "ping_pong");
    });
}

/// One iteration of [`Workload::YieldMany`].
fn yield_many<R: Rt>(rt: &R) {
    let (tx, rx) = mpsc::sync_channel(YIELD_TASKS);
    for _ in 0..YIELD_TASKS {
        let tx = tx.clone();
        drop(rt.spawn(async move {
            for _ in 0..NUM_YIELD {
                R::yield_now().await;
            }
            tx.send(()).expect("receiver alive");
        }));
    }
    for _ in 0..YIELD_TASKS {
        wait_signal(&rx, "yield_many");
    }
}

/// One iteration of [`Workload::ChainedSpawn`].
fn chained_spawn<R: Rt>(rt: &R) {
    fn link<R: Rt>(done: SyncSender<()>, remaining: usize) {
        if remaining == 0 {
            done.send(()).expect("receiver alive");
        } else {
            drop(R::spawn_inside(
                async move { link::<R>(done, remaining - 1) },
            ));
        }
    }

    let (done_tx, done_rx) = mpsc::sync_channel(1);
    rt.block_on(async {
        drop(R::spawn_inside(
            async move { link::<R>(done_tx, CHAIN_LEN) },
        ));
        wait_signal(&done_rx, "chained_spawn");
    });
}

/// A one-slot "item has run" flag a producer sleeps on.
#[derive(Default)]
struct Ran {
    flag: Mutex<bool>,
    cond: Condvar,
}

impl Ran {
    /// Called by the task: marks the item as run and wakes the producer.
    fn set(&self) {
        *self.flag.lock().expect("flag lock") = true;
        self.cond.notify_one();
    }

    /// Called by the producer: sleeps until the item has run, then re-arms.
    fn wait_and_reset(&self) {
        let guard = self.flag.lock().expect("flag lock");
        let (mut ran, timeout) = self
            .cond
            .wait_timeout_while(guard, STUCK_AFTER, |ran| !*ran)
            .expect("flag lock");
        assert!(
            !timeout.timed_out(),
            "seed_round_trip: item did not run within {STUCK_AFTER:?}"
        );
        *ran = false;
    }
}

/// One run of [`Workload::SeedRoundTrip`]: returns the makespan (from the
/// moment all producers are released until the last one has seen its last
/// item run) and appends every spawn-call latency to `latencies`.
fn seed_round_trip<R: Rt>(
    rt: &R,
    producers: usize,
    items: usize,
    latencies: &mut Vec<Duration>,
) -> Duration {
    let handle = rt.handle();
    let go = Barrier::new(producers + 1);
    thread::scope(|scope| {
        let threads = (0..producers)
            .map(|_| {
                let handle = handle.clone();
                let go = &go;
                scope.spawn(move || produce::<R>(&handle, items, go))
            })
            .collect::<Vec<_>>();
        go.wait();
        let start = Instant::now();
        let mut end = start;
        for thread in threads {
            let (own, finished) = thread.join().expect("producer thread");
            latencies.extend(own);
            end = end.max(finished);
        }
        end - start
    })
}

/// One seed round trip producer: hands over `items` items one at a time.
/// Returns the spawn-call latencies and when the last item was seen to run.
fn produce<R: Rt>(handle: &R::Handle, items: usize, go: &Barrier) -> (Vec<Duration>, Instant) {
    let ran = Arc::new(Ran::default());
    let mut latencies = Vec::with_capacity(items);
    go.wait();
    for _ in 0..items {
        let task_ran = Arc::clone(&ran);
        let task = async move { task_ran.set() };
        let start = Instant::now();
        let join = R::spawn_on(handle, task);
        latencies.push(start.elapsed());
        ran.wait_and_reset();
        drop(join);
    }
    (latencies, Instant::now())
}

#[cfg(test)]
mod tests {
    use super::grouped;

    #[test]
    fn groups_digits() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(200_000), "200,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }
}
