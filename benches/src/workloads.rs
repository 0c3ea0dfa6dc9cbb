//! The comparison workloads, each written once over [`Rt`].
//!
//! The scheduler workloads follow the shapes of tokio's own
//! `benches/rt_multi_threaded.rs`; the seed round trip follows the shape of
//! the kernel's workqueue self-test: producers outside the runtime hand one
//! item at a time to the runtime and wait for it to run. `seed_scope_*` is
//! the same round trip through an unbound workqueue of each affinity scope
//! on wq, against tokio's plain round trip (tokio has no scopes). The timer workloads
//! measure the timer wheel alone (`timers_create_cancel`), the timeout a
//! server arms around each request on every worker at once (`timeouts_64`)
//! and sleeping tasks end to end (`sleeps_100k`). The blocking tolerance workloads
//! (`blocking_storm_*`, `hog`) stall workers behind the runtime's back and
//! measure what the other tasks see (see `blocking.rs`); `rescue` blocks
//! every worker and measures whether a task that would unblock them runs
//! at all (see `rescue.rs`). `http_hello` and `http_hello_blocking` serve
//! HTTP with hyper on each runtime under load from outside it (see
//! `http.rs`). `idle_cost` and
//! `memory_100k_pending` are measured once per runtime rather than in pairs
//! (see `footprint.rs`).

use std::future::Future;
use std::sync::atomic::Ordering::{AcqRel, Relaxed, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use tokio::sync::oneshot;

use crate::blocking::{
    self, StormRun, HOG_SPAWN_EVERY, HOG_WINDOW, STORM_BLOCK, STORM_BLOCKERS, STORM_SPAN,
    STORM_TIMERS,
};
use crate::http::{BLOCK_EVERY, BLOCK_FOR, BLOCK_PATH, HTTP_CONNECTIONS};
use crate::redis::{REDIS_CLIENTS, REDIS_REQUESTS};
use crate::rescue::{RESCUE_LIMIT, RESCUE_WORKERS};
use crate::rt::{Rt, UnboundPools};
use crate::stats::{percentile_sorted, quantile};
use crate::sys::process_cpu_time;
use crate::topology::scope_name;

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
/// Producers of each `seed_scope_*` run.
pub const SEED_SCOPE_PRODUCERS: usize = 2;
/// The `seed_scope_*` workloads, in report order: each scope (narrowest
/// first) without pinning, and `cpu` and `cache_shard` also with
/// `affinity_strict`.
pub const SEED_SCOPES: [(wq::Scope, bool); 8] = [
    (wq::Scope::Cpu, false),
    (wq::Scope::Cpu, true),
    (wq::Scope::Smt, false),
    (wq::Scope::CacheShard, false),
    (wq::Scope::CacheShard, true),
    (wq::Scope::Cache, false),
    (wq::Scope::Numa, false),
    (wq::Scope::System, false),
];
/// Timers created, registered and cancelled in one `timers_create_cancel`
/// run.
pub const NUM_TIMERS: usize = 1_000_000;
/// `timers_create_cancel` deadlines are 1..=this many seconds ahead, cycled.
pub const TIMER_DEADLINES_S: u64 = 1_000;
/// Tasks of one `timeouts_64` run.
pub const TIMEOUT_TASKS: usize = 64;
/// Timeouts each `timeouts_64` task arms and drops per run.
pub const TIMEOUT_ROUNDS: usize = 5_000;
/// How far ahead a `timeouts_64` timeout is (hyper's default header-read
/// timeout): it never fires.
pub const TIMEOUT_AHEAD: Duration = Duration::from_secs(30);
/// Sleeping tasks in one `sleeps_100k` run.
pub const NUM_SLEEPS: usize = 100_000;
/// Earliest `sleeps_100k` deadline, after the run's start instant.
pub const SLEEP_MIN: Duration = Duration::from_millis(1);
/// Latest `sleeps_100k` deadline, after the run's start instant.
pub const SLEEP_MAX: Duration = Duration::from_millis(100);
/// Seed of the generator of `sleeps_100k` deadlines, so that every run, on
/// either runtime, sleeps the same sequence.
const SLEEP_SEED: u64 = 0x5eed_0000_0010_0000;
/// Wakeups of the one task of a `sleep_loop` run.
pub const SLEEP_LOOP_WAKEUPS: usize = 300;
/// How long the task of `sleep_loop` sleeps each time.
pub const SLEEP_LOOP_PERIOD: Duration = Duration::from_millis(1);
/// Pending tasks in `memory_100k_pending`.
pub const NUM_PENDING: usize = 100_000;

/// How long any wait for a completion signal may take before the workload is
/// declared stuck (a benchmark must fail loudly rather than hang).
pub const STUCK_AFTER: Duration = Duration::from_secs(60);

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
    /// As [`Workload::SeedRoundTrip`], but wq's producers spawn each item
    /// through an unbound workqueue of `scope` (`Workqueue::spawn`: the task
    /// goes to the pool of the pod of the CPU the producer runs on), with
    /// its workers pinned to the pod's CPUs if `strict`. tokio has no
    /// scopes: its producers spawn through the runtime handle, exactly as in
    /// the plain round trip, so its side is the same reference for every
    /// scope.
    SeedScope {
        /// The workqueue's affinity scope.
        scope: wq::Scope,
        /// `affinity_strict`.
        strict: bool,
        /// Producer threads running at once.
        producers: usize,
        /// Items each producer hands over.
        items: usize,
    },
    /// In one task, create `timers` sleep futures (boxed and pinned) with
    /// deadlines 1..=[`TIMER_DEADLINES_S`] s ahead, cycled; poll each once
    /// so that it registers its timer; then drop them all, cancelling every
    /// timer. Measures timer registration and cancellation.
    TimersCreateCancel {
        /// Timers per run.
        timers: usize,
    },
    /// `tasks` tasks, spawned from outside onto every worker, each
    /// `rounds` times create a sleep future (boxed and pinned) [`TIMEOUT_AHEAD`]
    /// ahead, poll it once so that it registers its timer, and drop it,
    /// cancelling the timer: the timeout a server arms around each request
    /// and drops once the request is in (hyper's header-read timeout), on
    /// every worker at once.
    Timeouts {
        /// Tasks per run.
        tasks: usize,
        /// Timeouts per task per run.
        rounds: usize,
    },
    /// From one task, spawn `tasks` tasks that each sleep until a deadline
    /// [`SLEEP_MIN`]..=[`SLEEP_MAX`] after a common start instant (taken by
    /// that task just before its first spawn), spread uniformly by a
    /// fixed-seed generator, and record how late they resumed. Compared on
    /// the process's CPU time per run; lateness is reported alongside.
    Sleeps {
        /// Sleeping tasks per run.
        tasks: usize,
    },
    /// One task on an otherwise idle runtime sleeps [`SLEEP_LOOP_PERIOD`]
    /// `wakeups` times in a row: what a periodic light load costs, each
    /// wakeup waking the runtime from idle. Compared on the process's CPU
    /// time per run.
    SleepLoop {
        /// Sleeps per run.
        wakeups: usize,
    },
    /// On runtimes with `workers` workers, `blockers` tasks each call
    /// `std::thread::sleep` for [`STORM_BLOCK`] with no annotation, while
    /// [`STORM_TIMERS`] tasks sleep with the runtime's timer until deadlines
    /// spread evenly over the first [`STORM_SPAN`]; all spawned from one task,
    /// blockers first. Compared on the timer lateness's 99th percentile;
    /// median lateness and makespan are reported alongside.
    BlockingStorm {
        /// Blocking tasks per run.
        blockers: usize,
    },
    /// One task spins without ever yielding while, for [`HOG_WINDOW`], a task
    /// spawns a small task every [`HOG_SPAWN_EVERY`]: small tasks completed
    /// per second, and for wq how long the monitor took to detect the hog.
    /// Each run on a fresh runtime (`blocking::hog`), not in the paired
    /// table.
    Hog,
    /// On runtimes with [`RESCUE_WORKERS`] workers and as many threads at
    /// most, every worker blocks on a latch; the time until a task spawned
    /// to open it runs (wq through a workqueue with and without
    /// `mem_reclaim`, tokio through its handle), or a stall if it has not
    /// within [`RESCUE_LIMIT`]. Each run on a fresh runtime
    /// (`rescue::rescue`), not in the paired table.
    Rescue,
    /// A hyper HTTP/1.1 hello-world server on loopback, the same handler on
    /// both runtimes, loaded by `wrk` with [`HTTP_CONNECTIONS`] connections:
    /// requests/s and latency percentiles. Rounds against a server per
    /// runtime, started afresh each round (`http::http_hello`), not in the
    /// paired table.
    HttpHello,
    /// The same server, whose handler blocks its worker in
    /// `std::thread::sleep` for [`BLOCK_FOR`] on [`BLOCK_PATH`], loaded by
    /// the runner's own client, which asks for that path for 1 request in
    /// [`BLOCK_EVERY`]: requests/s and the latency of the other requests
    /// (`http::http_hello_blocking`), not in the paired table.
    HttpHelloBlocking,
    /// The Redis-protocol key-value server of `examples/redis_kv.rs`, the
    /// same code on both runtimes, loaded by `redis-benchmark` with
    /// [`REDIS_CLIENTS`] connections: requests/s of `SET` and `GET`.
    /// Rounds against a server per runtime, started afresh each round
    /// (`redis::redis_kv`), not in the paired table.
    RedisKv,
    /// A runtime with no tasks, left alone: the process CPU time it costs.
    /// Measured once per runtime.
    IdleCost,
    /// RSS growth for `tasks` spawned tasks pending forever. Measured once
    /// per runtime, each on a fresh runtime.
    MemoryPending {
        /// Pending tasks.
        tasks: usize,
    },
}

/// How a workload is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Pairs of samples of calibrated repetitions (scheduler workloads).
    Scheduler,
    /// Pairs of samples of one full run each (seed round trips).
    Seed,
    /// Pairs of samples of one full run each (timer workloads).
    Timer,
    /// Pairs of samples of one full run each (`blocking_storm_*`).
    Blocking,
    /// Runs each on a fresh runtime (`hog`, in `blocking.rs`; `rescue`, in
    /// `rescue.rs`).
    Fresh,
    /// Rounds of load from outside the runtimes against a server on each,
    /// started on a fresh runtime each round (`http_hello*`, in `http.rs`;
    /// `redis_kv`, in `redis.rs`).
    Server,
    /// One measurement per runtime, not in pairs (`footprint.rs`).
    Once,
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
    /// For `seed_scope_*` on wq: the unbound pools alive after the run.
    pub pools: Option<UnboundPools>,
    /// For `sleeps_100k`: CPU time and lateness of this run.
    pub sleeps: Option<SleepRun>,
    /// For `blocking_storm_*`: timer lateness and makespan of this run.
    pub storm: Option<StormRun>,
}

impl Sample {
    /// Wall time of one repetition.
    pub fn per_rep(&self) -> Duration {
        self.elapsed.div_f64(self.reps as f64)
    }

    /// The figure the runtimes are compared on, per repetition: the wall
    /// time, except for `sleeps_100k`, whose runs are compared on the
    /// process's CPU time, and `blocking_storm_*`, compared on the 99th
    /// percentile of the timer lateness (0 if even that was early).
    pub fn measured(&self) -> Duration {
        match (self.sleeps, self.storm) {
            (Some(run), _) => run.cpu.div_f64(self.reps as f64),
            (None, Some(run)) => Duration::from_nanos(run.lateness_p99_ns.max(0.0) as u64),
            (None, None) => self.per_rep(),
        }
    }
}

/// What one `sleeps_100k` run cost and how late its sleepers woke.
#[derive(Clone, Copy, Debug)]
pub struct SleepRun {
    /// Process CPU time (user + system, all threads) from just before the
    /// spawning task is spawned until the last task resumed.
    pub cpu: Duration,
    /// Wall time to spawn all the tasks.
    pub spawn: Duration,
    /// Median lateness (resume instant minus deadline), nanoseconds.
    /// Negative would mean early.
    pub lateness_p50_ns: f64,
    /// 99th percentile of the lateness, nanoseconds.
    pub lateness_p99_ns: f64,
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
        all.extend(SEED_SCOPES.map(|(scope, strict)| Self::SeedScope {
            scope,
            strict,
            producers: SEED_SCOPE_PRODUCERS,
            items: SEED_ITEMS,
        }));
        all.extend([
            Self::TimersCreateCancel { timers: NUM_TIMERS },
            Self::Timeouts {
                tasks: TIMEOUT_TASKS,
                rounds: TIMEOUT_ROUNDS,
            },
            Self::Sleeps { tasks: NUM_SLEEPS },
            Self::SleepLoop {
                wakeups: SLEEP_LOOP_WAKEUPS,
            },
        ]);
        all.extend(STORM_BLOCKERS.map(|blockers| Self::BlockingStorm { blockers }));
        all.extend([
            Self::Hog,
            Self::Rescue,
            Self::HttpHello,
            Self::HttpHelloBlocking,
            Self::RedisKv,
            Self::IdleCost,
            Self::MemoryPending { tasks: NUM_PENDING },
        ]);
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
            Self::SeedScope { scope, strict, .. } => format!(
                "seed_scope_{}{}",
                scope_name(scope),
                if strict { "_strict" } else { "" }
            ),
            Self::TimersCreateCancel { .. } => "timers_create_cancel".into(),
            Self::Timeouts { tasks, .. } => format!("timeouts_{tasks}"),
            Self::Sleeps { tasks } => format!("sleeps_{}", short_count(tasks)),
            Self::SleepLoop { .. } => "sleep_loop".into(),
            Self::BlockingStorm { blockers } => format!("blocking_storm_b{blockers}"),
            Self::Hog => "hog".into(),
            Self::Rescue => "rescue".into(),
            Self::HttpHello => "http_hello".into(),
            Self::HttpHelloBlocking => "http_hello_blocking".into(),
            Self::RedisKv => "redis_kv".into(),
            Self::IdleCost => "idle_cost".into(),
            Self::MemoryPending { tasks } => format!("memory_{}_pending", short_count(tasks)),
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
            Self::SeedScope {
                scope,
                strict,
                producers,
                items,
            } => format!(
                "{producers} x {} round trips; wq via unbound {} queue{}",
                n(items),
                scope_name(scope),
                if strict { ", strict" } else { "" }
            ),
            Self::TimersCreateCancel { timers } => {
                format!("{} timers created, registered, cancelled", n(timers))
            }
            Self::Timeouts { tasks, rounds } => format!(
                "{tasks} tasks x {} timeouts of {} s armed and dropped, on every worker",
                n(rounds),
                TIMEOUT_AHEAD.as_secs()
            ),
            Self::Sleeps { tasks } => format!(
                "{} sleeps of {}-{} ms, CPU time",
                n(tasks),
                SLEEP_MIN.as_millis(),
                SLEEP_MAX.as_millis()
            ),
            Self::SleepLoop { wakeups } => format!(
                "1 task x {} sleeps of {} ms, idle runtime, CPU time",
                n(wakeups),
                SLEEP_LOOP_PERIOD.as_millis()
            ),
            Self::BlockingStorm { blockers } => format!(
                "{blockers} x {} ms blocked + {} timers over {} ms, p99 lateness",
                STORM_BLOCK.as_millis(),
                n(STORM_TIMERS),
                STORM_SPAN.as_millis()
            ),
            Self::Hog => format!(
                "1 task spinning; a task spawned every {} ms for {} s",
                HOG_SPAWN_EVERY.as_millis(),
                HOG_WINDOW.as_secs()
            ),
            Self::Rescue => format!(
                "{RESCUE_WORKERS} of {RESCUE_WORKERS} workers blocked; spawn to run of the task \
                 that unblocks them, stalled after {} s",
                RESCUE_LIMIT.as_secs()
            ),
            Self::HttpHello => format!(
                "hyper hello world under wrk, {HTTP_CONNECTIONS} connections; requests/s, p99"
            ),
            Self::HttpHelloBlocking => format!(
                "hyper hello world, {HTTP_CONNECTIONS} connections, 1 request in {BLOCK_EVERY} \
                 blocks {} ms ({BLOCK_PATH}); p99 of the others",
                BLOCK_FOR.as_millis()
            ),
            Self::RedisKv => format!(
                "RESP key-value server under redis-benchmark, {REDIS_CLIENTS} connections, {} \
                 SETs then GETs; requests/s",
                grouped(REDIS_REQUESTS)
            ),
            Self::IdleCost => "no tasks; CPU time while idle".into(),
            Self::MemoryPending { tasks } => format!("{} pending tasks; RSS growth", n(tasks)),
        }
    }

    /// How the workload is measured.
    pub fn kind(self) -> Kind {
        match self {
            Self::SpawnManyLocal
            | Self::SpawnManyRemoteIdle
            | Self::SpawnManyRemoteBusy
            | Self::PingPong
            | Self::YieldMany
            | Self::ChainedSpawn => Kind::Scheduler,
            Self::SeedRoundTrip { .. } | Self::SeedScope { .. } => Kind::Seed,
            Self::TimersCreateCancel { .. }
            | Self::Timeouts { .. }
            | Self::Sleeps { .. }
            | Self::SleepLoop { .. } => Kind::Timer,
            Self::BlockingStorm { .. } => Kind::Blocking,
            Self::Hog | Self::Rescue => Kind::Fresh,
            Self::HttpHello | Self::HttpHelloBlocking | Self::RedisKv => Kind::Server,
            Self::IdleCost | Self::MemoryPending { .. } => Kind::Once,
        }
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
                pools: None,
                sleeps: None,
                storm: None,
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
                    let target = ViaHandle::<R>(rt.handle());
                    elapsed += seed_round_trip(&target, producers, items, &mut latencies);
                }
                Sample {
                    elapsed,
                    reps,
                    spawn_latency: Some(SpawnLatency::of(&mut latencies)),
                    pools: None,
                    sleeps: None,
                    storm: None,
                }
            }
            Self::SeedScope {
                scope,
                strict,
                producers,
                items,
            } => {
                let mut elapsed = Duration::ZERO;
                let mut latencies = Vec::with_capacity(producers * items);
                for _ in 0..reps {
                    let scoped = rt.scoped(scope, strict).unwrap_or_else(|err| {
                        panic!("{}: cannot build the workqueue: {err}", self.name())
                    });
                    let target = ViaScoped::<R>(scoped);
                    elapsed += seed_round_trip(&target, producers, items, &mut latencies);
                }
                Sample {
                    elapsed,
                    reps,
                    spawn_latency: Some(SpawnLatency::of(&mut latencies)),
                    pools: R::unbound_pools(),
                    sleeps: None,
                    storm: None,
                }
            }
            Self::TimersCreateCancel { timers } => timed(&mut || timers_create_cancel(rt, timers)),
            Self::Timeouts { tasks, rounds } => timed(&mut || timeouts(rt, tasks, rounds)),
            Self::Sleeps { tasks } => {
                let offsets = sleep_offsets(tasks);
                sleep_sample(reps, || sleeps(rt, &offsets))
            }
            Self::SleepLoop { wakeups } => sleep_sample(reps, || sleep_loop(rt, wakeups)),
            Self::BlockingStorm { blockers } => {
                let runs: Vec<StormRun> = (0..reps)
                    .map(|_| blocking::blocking_storm(rt, blockers))
                    .collect();
                let run = StormRun::combine(&runs);
                Sample {
                    elapsed: run.makespan,
                    reps,
                    spawn_latency: None,
                    pools: None,
                    sleeps: None,
                    storm: Some(run),
                }
            }
            Self::Hog | Self::Rescue => {
                panic!("{} needs a fresh runtime per run", self.name())
            }
            Self::HttpHello | Self::HttpHelloBlocking | Self::RedisKv => {
                panic!("{} is run against servers, not in pairs", self.name())
            }
            Self::IdleCost | Self::MemoryPending { .. } => {
                panic!("{} is measured once per runtime, not in pairs", self.name())
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

impl SleepRun {
    /// Adds up the CPU and spawn times of `runs` and takes the median of
    /// their lateness percentiles.
    fn sum(runs: &[SleepRun]) -> Self {
        let p50: Vec<f64> = runs.iter().map(|r| r.lateness_p50_ns).collect();
        let p99: Vec<f64> = runs.iter().map(|r| r.lateness_p99_ns).collect();
        Self {
            cpu: runs.iter().map(|r| r.cpu).sum(),
            spawn: runs.iter().map(|r| r.spawn).sum(),
            lateness_p50_ns: quantile(&p50, 0.5),
            lateness_p99_ns: quantile(&p99, 0.5),
        }
    }
}

/// `100_000` as `100k`, `2_000_000` as `2m`; other counts in full.
fn short_count(n: usize) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}m", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// Formats `n` with a comma between groups of three digits.
pub fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Waits for one completion signal from a workload's tasks.
pub fn wait_signal(rx: &Receiver<()>, workload: &str) {
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

/// Where seed round trip producers spawn their items: [`ViaHandle`] for
/// [`Workload::SeedRoundTrip`], [`ViaScoped`] for [`Workload::SeedScope`].
trait SeedTarget<R: Rt>: Clone + Send {
    /// Spawns one item's task.
    fn spawn_item<F>(&self, fut: F) -> R::Join<()>
    where
        F: Future<Output = ()> + Send + 'static;
}

/// Spawns through a runtime handle ([`Rt::spawn_on`]).
struct ViaHandle<R: Rt>(R::Handle);

impl<R: Rt> Clone for ViaHandle<R> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<R: Rt> SeedTarget<R> for ViaHandle<R> {
    fn spawn_item<F>(&self, fut: F) -> R::Join<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        R::spawn_on(&self.0, fut)
    }
}

/// Spawns through a scope's target ([`Rt::spawn_scoped`]): an unbound
/// workqueue on wq, the runtime handle on tokio.
struct ViaScoped<R: Rt>(R::Scoped);

impl<R: Rt> Clone for ViaScoped<R> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<R: Rt> SeedTarget<R> for ViaScoped<R> {
    fn spawn_item<F>(&self, fut: F) -> R::Join<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        R::spawn_scoped(&self.0, fut)
    }
}

/// One run of [`Workload::SeedRoundTrip`] or [`Workload::SeedScope`]
/// through `target`: returns the makespan (from the moment all producers
/// are released until the last one has seen its last item run) and appends
/// every spawn-call latency to `latencies`.
fn seed_round_trip<R: Rt, T: SeedTarget<R>>(
    target: &T,
    producers: usize,
    items: usize,
    latencies: &mut Vec<Duration>,
) -> Duration {
    let go = Barrier::new(producers + 1);
    thread::scope(|scope| {
        let threads = (0..producers)
            .map(|_| {
                let target = target.clone();
                let go = &go;
                scope.spawn(move || produce::<R, T>(&target, items, go))
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
fn produce<R: Rt, T: SeedTarget<R>>(
    target: &T,
    items: usize,
    go: &Barrier,
) -> (Vec<Duration>, Instant) {
    let ran = Arc::new(Ran::default());
    let mut latencies = Vec::with_capacity(items);
    go.wait();
    for _ in 0..items {
        let task_ran = Arc::clone(&ran);
        let task = async move { task_ran.set() };
        let start = Instant::now();
        let join = target.spawn_item(task);
        latencies.push(start.elapsed());
        ran.wait_and_reset();
        drop(join);
    }
    (latencies, Instant::now())
}

/// One run of [`Workload::TimersCreateCancel`], in one spawned task.
fn timers_create_cancel<R: Rt>(rt: &R, timers: usize) {
    let task = rt.spawn(async move {
        let pending_before = R::pending_timers();
        let base = Instant::now();
        let mut sleeps = Vec::with_capacity(timers);
        for i in 0..timers {
            let ahead = Duration::from_secs(1 + i as u64 % TIMER_DEADLINES_S);
            let mut sleep = Box::pin(R::sleep_until(base + ahead));
            // One poll registers the timer; it is at least a second away.
            assert!(
                sleep.as_mut().now_or_never().is_none(),
                "timers_create_cancel: a sleep completed a second early"
            );
            sleeps.push(sleep);
        }
        let registered = R::pending_timers();
        drop(sleeps);
        let after = R::pending_timers();
        if let (Some(before), Some(registered), Some(after)) = (pending_before, registered, after) {
            assert_eq!(
                registered.checked_sub(before),
                Some(timers),
                "timers_create_cancel: not every sleep registered a timer"
            );
            assert_eq!(
                after, before,
                "timers_create_cancel: dropping the sleeps did not cancel their timers"
            );
        }
    });
    rt.block_on(task)
        .expect("timers_create_cancel task completes");
}

/// One run of [`Workload::Timeouts`].
fn timeouts<R: Rt>(rt: &R, tasks: usize, rounds: usize) {
    let (tx, rx) = mpsc::sync_channel(tasks);
    for _ in 0..tasks {
        let tx = tx.clone();
        drop(rt.spawn(async move {
            for round in 0..rounds {
                let mut timeout = Box::pin(R::sleep_until(Instant::now() + TIMEOUT_AHEAD));
                assert!(
                    timeout.as_mut().now_or_never().is_none(),
                    "timeouts: a {} s sleep completed at once",
                    TIMEOUT_AHEAD.as_secs()
                );
                // Once per task (the count locks every wheel): the poll
                // registered the timer, which stays pending until dropped.
                if round == 0 {
                    assert_ne!(
                        R::pending_timers(),
                        Some(0),
                        "timeouts: polling the sleep registered no timer"
                    );
                }
                drop(timeout);
            }
            tx.send(()).expect("receiver alive");
        }));
    }
    for _ in 0..tasks {
        wait_signal(&rx, "timeouts");
    }
}

/// The `sleeps_100k` deadlines, as offsets from the start instant: uniform
/// over [`SLEEP_MIN`]..=[`SLEEP_MAX`] in microsecond steps, from a fixed
/// seed, so identical for every run on both runtimes.
fn sleep_offsets(tasks: usize) -> Arc<[Duration]> {
    let span = (SLEEP_MAX - SLEEP_MIN).as_micros() as u64 + 1;
    let mut rng = SplitMix64(SLEEP_SEED);
    (0..tasks)
        .map(|_| SLEEP_MIN + Duration::from_micros(rng.below(span)))
        .collect()
}

/// The SplitMix64 generator: tiny, fast and deterministic.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..bound`, by Lemire's multiply-shift (the bias is below
    /// 2^-40 for the bounds used here).
    fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }
}

/// What the tasks of one `sleeps_100k` run share.
struct SleepShared {
    /// Each task's lateness in nanoseconds, by task index.
    lateness_ns: Box<[AtomicI64]>,
    /// Tasks yet to resume.
    remaining: AtomicUsize,
    /// Signalled by the last task to resume.
    done: SyncSender<()>,
}

/// One run of [`Workload::Sleeps`]: returns the makespan (start instant to
/// the last task's resumption) and the run's figures. The CPU time runs from
/// just before the spawning task is spawned until the last task resumed.
fn sleeps<R: Rt>(rt: &R, offsets: &Arc<[Duration]>) -> (Duration, SleepRun) {
    let (done, done_rx) = mpsc::sync_channel(1);
    let shared = Arc::new(SleepShared {
        lateness_ns: offsets.iter().map(|_| AtomicI64::new(0)).collect(),
        remaining: AtomicUsize::new(offsets.len()),
        done,
    });

    let cpu_before = process_cpu_time();
    let spawner = {
        let offsets = Arc::clone(offsets);
        let shared = Arc::clone(&shared);
        rt.spawn(async move {
            let start = Instant::now();
            for (index, &offset) in offsets.iter().enumerate() {
                let deadline = start + offset;
                let shared = Arc::clone(&shared);
                drop(R::spawn_inside(async move {
                    R::sleep_until(deadline).await;
                    let late_ns = lateness_ns(Instant::now(), deadline);
                    shared.lateness_ns[index].store(late_ns, Relaxed);
                    // AcqRel: the last decrement sees every task's lateness,
                    // and hands it on to the runner through the channel.
                    if shared.remaining.fetch_sub(1, AcqRel) == 1 {
                        shared.done.send(()).expect("receiver alive");
                    }
                }));
            }
            (start, start.elapsed())
        })
    };
    let (start, spawn) = rt.block_on(spawner).expect("sleeps spawner completes");
    wait_signal(&done_rx, "sleeps");
    let makespan = start.elapsed();
    let cpu = process_cpu_time().saturating_sub(cpu_before);

    let lateness: Vec<f64> = shared
        .lateness_ns
        .iter()
        .map(|ns| ns.load(Relaxed) as f64)
        .collect();
    let run = SleepRun {
        cpu,
        spawn,
        lateness_p50_ns: quantile(&lateness, 0.50),
        lateness_p99_ns: quantile(&lateness, 0.99),
    };
    (makespan, run)
}

/// The sample of `reps` runs of a workload compared on CPU time
/// (`sleeps_100k`, `sleep_loop`): `run` returns a run's wall time and
/// figures.
fn sleep_sample(reps: u64, mut run: impl FnMut() -> (Duration, SleepRun)) -> Sample {
    let mut elapsed = Duration::ZERO;
    let mut runs = Vec::with_capacity(reps as usize);
    for _ in 0..reps {
        let (wall, figures) = run();
        elapsed += wall;
        runs.push(figures);
    }
    Sample {
        elapsed,
        reps,
        spawn_latency: None,
        pools: None,
        sleeps: Some(SleepRun::sum(&runs)),
        storm: None,
    }
}

/// One run of [`Workload::SleepLoop`]: returns its wall time and its
/// process CPU time (user + system, all threads, the idle runtime of the
/// pair included), from just before the task is spawned until it is
/// joined. Its lateness is not measured (zero in the figures).
fn sleep_loop<R: Rt>(rt: &R, wakeups: usize) -> (Duration, SleepRun) {
    let cpu_before = process_cpu_time();
    let start = Instant::now();
    let task = rt.spawn(async move {
        for _ in 0..wakeups {
            R::sleep_until(Instant::now() + SLEEP_LOOP_PERIOD).await;
        }
    });
    rt.block_on(task).expect("sleep loop completes");
    let wall = start.elapsed();
    let run = SleepRun {
        cpu: process_cpu_time().saturating_sub(cpu_before),
        spawn: Duration::ZERO,
        lateness_p50_ns: 0.0,
        lateness_p99_ns: 0.0,
    };
    (wall, run)
}

/// How late (positive) or early (negative) `resumed` is for `deadline`, in
/// nanoseconds.
pub fn lateness_ns(resumed: Instant, deadline: Instant) -> i64 {
    let ns = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    match resumed.checked_duration_since(deadline) {
        Some(late) => ns(late),
        None => -ns(deadline - resumed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_digits() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(200_000), "200,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }

    #[test]
    fn short_counts() {
        assert_eq!(short_count(100_000), "100k");
        assert_eq!(short_count(1_000_000), "1m");
        assert_eq!(short_count(1_500), "1500");
    }

    #[test]
    fn timers_are_registered_and_cancelled() {
        use crate::rt::{Tokio, Wq};
        let wq = Wq::build(2).unwrap();
        let pending = wq.block_on(wq.spawn(async { Wq::pending_timers() }));
        assert_eq!(pending.unwrap(), Some(0), "wq reports its pending timers");
        timers_create_cancel(&wq, 5_000);
        timers_create_cancel(&Tokio::build(2).unwrap(), 5_000);
    }

    #[test]
    fn sleepers_record_their_lateness() {
        let offsets = sleep_offsets(1_000);
        let (makespan, run) = sleeps(&crate::rt::Tokio::build(2).unwrap(), &offsets);
        assert!(makespan >= SLEEP_MIN, "{makespan:?}");
        assert!(run.lateness_p50_ns >= 0.0, "{run:?}");
        assert!(run.lateness_p99_ns >= run.lateness_p50_ns, "{run:?}");
        assert!(run.cpu > Duration::ZERO, "{run:?}");
    }

    #[test]
    fn signed_lateness() {
        let t = Instant::now();
        let ms = Duration::from_millis(1);
        assert_eq!(lateness_ns(t + ms, t), 1_000_000);
        assert_eq!(lateness_ns(t, t + ms), -1_000_000);
        assert_eq!(lateness_ns(t, t), 0);
    }

    #[test]
    fn sleep_offsets_are_fixed_and_in_range() {
        let offsets = sleep_offsets(NUM_SLEEPS);
        assert_eq!(offsets, sleep_offsets(NUM_SLEEPS));
        assert!(offsets
            .iter()
            .all(|&o| (SLEEP_MIN..=SLEEP_MAX).contains(&o)));
        let mean = offsets.iter().sum::<Duration>() / NUM_SLEEPS as u32;
        let mid = (SLEEP_MIN + SLEEP_MAX) / 2;
        let off = mean.abs_diff(mid);
        assert!(off < Duration::from_millis(1), "mean offset {mean:?}");
    }
}
