//! Turns comparisons into a table, Markdown, JSON and an SVG plot.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::blocking::{
    HogComparison, HogRun, StormRun, HOG_DETECTION_POLL, HOG_GRACE, HOG_SPAWN_EVERY, HOG_WINDOW,
    STORM_BLOCK, STORM_SPAN, STORM_TIMERS,
};
use crate::footprint::{IdleCost, PendingMemory};
use crate::harness::{Comparison, Config, MonitorCost};
use crate::http::{
    HttpComparison, LoadRun, Run, RunCpu, WrkRun, BLOCK_EVERY, BLOCK_FOR, BLOCK_PATH, HTTP_BODY,
    HTTP_CONNECTIONS,
};
use crate::machine::Machine;
use crate::rescue::{RescueComparison, RescueRun, RescueVariant, RESCUE_LIMIT, RESCUE_SETTLE};
use crate::stats::{median, quantile};
use crate::suite::Entry;
use crate::topology::{scope_name, PodCounts, SCOPES};
use crate::workloads::{grouped, Sample, Workload};

/// What the monitor may cost, at most: the target for every on/off ratio
/// of the monitor cost table.
pub const MONITOR_COST_TARGET: f64 = 1.03;
/// The target for wq's timer lateness, 99th percentile, in every
/// `blocking_storm` run, nanoseconds.
pub const STORM_TARGET_P99_NS: f64 = 5e6;
/// The target for wq's `blocking_storm` makespan, as a multiple of one
/// blocker's sleep: the blockers must not wait for each other.
pub const STORM_TARGET_MAKESPAN: f64 = 1.1;

/// Everything one run of the runner produced.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Where the figures come from.
    pub machine: Machine,
    /// How they were taken.
    pub run: RunInfo,
    /// One entry per workload measured in pairs, in run order.
    pub workloads: Vec<WorkloadReport>,
    /// `idle_cost`, if it was run.
    pub idle: Option<IdleReport>,
    /// `memory_100k_pending`, if it was run.
    pub memory: Option<MemoryReport>,
    /// `hog`, if it was run.
    pub hog: Option<HogReport>,
    /// `rescue`, if it was run.
    pub rescue: Option<RescueReport>,
    /// `http_hello`, if it was run (not when `wrk` was missing).
    pub http: Option<HttpReport>,
    /// `http_hello_blocking`, if it was run.
    pub http_blocking: Option<HttpBlockingReport>,
    /// `redis_kv`, if it was run (not when `redis-benchmark` was missing).
    pub redis: Option<crate::redis::RedisReport>,
    /// The `monitor_cost/*` entries run: wq with its monitor against wq
    /// without.
    pub monitor_cost: Vec<MonitorCostReport>,
    /// The pods of each affinity scope on this machine, if a `seed_scope_*`
    /// workload was run.
    pub scope_pods: Option<PodCounts>,
}

/// The settings of the run.
#[derive(Clone, Debug, Serialize)]
pub struct RunInfo {
    /// Worker threads of each runtime.
    pub workers: usize,
    /// Pairs per scheduler workload.
    pub samples: usize,
    /// Pairs per seed round trip workload.
    pub seed_samples: usize,
    /// Pairs per timer workload.
    pub timer_samples: usize,
    /// How long each runtime was left idle by `idle_cost`, seconds.
    pub idle_secs: f64,
    /// How long each load run of `http_hello*` lasted, seconds.
    pub http_secs: f64,
    /// Rounds of `http_hello*`.
    pub http_rounds: usize,
    /// Warm-up per scheduler workload, milliseconds.
    pub warmup_ms: f64,
    /// Target duration of a scheduler sample, milliseconds.
    pub sample_time_ms: f64,
    /// The runner's arguments.
    pub args: Vec<String>,
}

impl RunInfo {
    /// Records `config` and the command-line arguments.
    pub fn new(config: &Config, args: Vec<String>) -> Self {
        Self {
            workers: config.workers,
            samples: config.samples,
            seed_samples: config.seed_samples,
            timer_samples: config.timer_samples,
            idle_secs: config.idle.as_secs_f64(),
            http_secs: config.http_secs.as_secs_f64(),
            http_rounds: config.http_rounds,
            warmup_ms: config.warmup.as_secs_f64() * 1e3,
            sample_time_ms: config.sample_time.as_secs_f64() * 1e3,
            args,
        }
    }
}

/// The figures for one workload measured in pairs. Times are per repetition
/// of the workload, in nanoseconds: wall time, except for `sleeps_100k`,
/// whose samples and ratios are the process's CPU time, and
/// `blocking_storm_*`, whose are the timer lateness's 99th percentile (see
/// `measure`).
#[derive(Clone, Debug, Serialize)]
pub struct WorkloadReport {
    /// Workload name.
    pub name: String,
    /// What one repetition is.
    pub unit: String,
    /// What the samples and ratios measure: `"wall time"`, `"CPU time"` or
    /// `"p99 lateness"`.
    pub measure: String,
    /// Repetitions timed together in each sample.
    pub reps_per_sample: u64,
    /// Number of (wq, tokio) pairs.
    pub pairs: usize,
    /// Median wq time per repetition.
    pub wq_median_ns: f64,
    /// Median tokio time per repetition.
    pub tokio_median_ns: f64,
    /// Median of the per-pair wq/tokio ratios (< 1.0: wq faster).
    pub ratio_median: f64,
    /// 25th percentile of the per-pair ratios.
    pub ratio_p25: f64,
    /// 75th percentile of the per-pair ratios.
    pub ratio_p75: f64,
    /// Every wq sample, per repetition.
    pub wq_samples_ns: Vec<f64>,
    /// Every tokio sample, per repetition.
    pub tokio_samples_ns: Vec<f64>,
    /// Every per-pair ratio.
    pub ratios: Vec<f64>,
    /// Throughput and spawn latency, for the seed round trip.
    pub seed: Option<SeedReport>,
    /// Throughput, spawn latency and pools, for `seed_scope_*`.
    pub scope: Option<ScopeReport>,
    /// Time per timer, for `timers_create_cancel`.
    pub timers: Option<TimersReport>,
    /// Lateness and times, for `sleeps_100k`.
    pub sleeps: Option<SleepsReport>,
    /// Lateness, makespan and the monitor's counts, for `blocking_storm_*`.
    pub storm: Option<StormReport>,
}

/// `blocking_storm_*` figures. Lateness percentiles are per run (over all
/// timer tasks), then the median across runs; makespans and the monitor's
/// counts are medians across runs.
#[derive(Clone, Debug, Serialize)]
pub struct StormReport {
    /// Blocking tasks per run.
    pub blockers: usize,
    /// Timer tasks per run.
    pub timers: usize,
    /// How long each blocker blocks, milliseconds.
    pub block_ms: f64,
    /// The timer deadlines are spread over this many milliseconds.
    pub span_ms: f64,
    /// wq timer lateness, median.
    pub wq_lateness_p50_ns: f64,
    /// wq timer lateness, 99th percentile.
    pub wq_lateness_p99_ns: f64,
    /// tokio timer lateness, median.
    pub tokio_lateness_p50_ns: f64,
    /// tokio timer lateness, 99th percentile.
    pub tokio_lateness_p99_ns: f64,
    /// wq time from the start instant until the last task finished.
    pub wq_makespan_ns: f64,
    /// tokio makespan.
    pub tokio_makespan_ns: f64,
    /// When wq's first blocker started, after the start instant (`None`
    /// without blockers).
    pub wq_first_blocker_ns: Option<f64>,
    /// When tokio's first blocker started.
    pub tokio_first_blocker_ns: Option<f64>,
    /// Polls wq's monitor found blocked, per run.
    pub wq_blocked_detections: Option<f64>,
    /// Worker threads wq created, per run.
    pub wq_threads_created: Option<f64>,
    /// The target for wq's lateness p99, nanoseconds.
    pub target_lateness_p99_ns: f64,
    /// The target for wq's makespan, nanoseconds.
    pub target_makespan_ns: f64,
    /// Whether wq's medians meet both targets.
    pub wq_meets_targets: bool,
    /// Every wq run's lateness median.
    pub wq_lateness_p50_samples_ns: Vec<f64>,
    /// Every wq run's lateness 99th percentile.
    pub wq_lateness_p99_samples_ns: Vec<f64>,
    /// Every tokio run's lateness median.
    pub tokio_lateness_p50_samples_ns: Vec<f64>,
    /// Every tokio run's lateness 99th percentile.
    pub tokio_lateness_p99_samples_ns: Vec<f64>,
    /// Every wq run's makespan.
    pub wq_makespan_samples_ns: Vec<f64>,
    /// Every tokio run's makespan.
    pub tokio_makespan_samples_ns: Vec<f64>,
}

impl StormReport {
    fn new(blockers: usize, comparison: &Comparison) -> Self {
        let runs = |samples: &[Sample]| -> Vec<StormRun> {
            samples.iter().filter_map(|s| s.storm).collect()
        };
        let (wq, tokio) = (runs(&comparison.wq), runs(&comparison.tokio));
        let field = |runs: &[StormRun], get: fn(&StormRun) -> f64| -> Vec<f64> {
            runs.iter().map(get).collect()
        };
        let optional = |runs: &[StormRun], get: fn(&StormRun) -> Option<f64>| {
            let values: Vec<f64> = runs.iter().filter_map(get).collect();
            (!values.is_empty()).then(|| median(&values))
        };
        let p50 = |r: &StormRun| r.lateness_p50_ns;
        let p99 = |r: &StormRun| r.lateness_p99_ns;
        let makespan = |r: &StormRun| r.makespan.as_secs_f64() * 1e9;
        let first_blocker = |r: &StormRun| r.first_blocker.map(|d| d.as_secs_f64() * 1e9);
        let blocked = |r: &StormRun| r.monitor.map(|m| m.blocked as f64);
        let threads = |r: &StormRun| r.monitor.map(|m| m.threads_created as f64);

        let wq_p99 = field(&wq, p99);
        let wq_makespan = field(&wq, makespan);
        let target_makespan_ns = STORM_BLOCK.as_secs_f64() * 1e9 * STORM_TARGET_MAKESPAN;
        let wq_lateness_p99_ns = median(&wq_p99);
        let wq_makespan_ns = median(&wq_makespan);
        Self {
            blockers,
            timers: STORM_TIMERS,
            block_ms: STORM_BLOCK.as_secs_f64() * 1e3,
            span_ms: STORM_SPAN.as_secs_f64() * 1e3,
            wq_lateness_p50_ns: median(&field(&wq, p50)),
            wq_lateness_p99_ns,
            tokio_lateness_p50_ns: median(&field(&tokio, p50)),
            tokio_lateness_p99_ns: median(&field(&tokio, p99)),
            wq_makespan_ns,
            tokio_makespan_ns: median(&field(&tokio, makespan)),
            wq_first_blocker_ns: optional(&wq, first_blocker),
            tokio_first_blocker_ns: optional(&tokio, first_blocker),
            wq_blocked_detections: optional(&wq, blocked),
            wq_threads_created: optional(&wq, threads),
            target_lateness_p99_ns: STORM_TARGET_P99_NS,
            target_makespan_ns,
            wq_meets_targets: wq_lateness_p99_ns <= STORM_TARGET_P99_NS
                && wq_makespan_ns <= target_makespan_ns,
            wq_lateness_p50_samples_ns: field(&wq, p50),
            wq_lateness_p99_samples_ns: wq_p99,
            tokio_lateness_p50_samples_ns: field(&tokio, p50),
            tokio_lateness_p99_samples_ns: field(&tokio, p99),
            wq_makespan_samples_ns: wq_makespan,
            tokio_makespan_samples_ns: field(&tokio, makespan),
        }
    }
}

/// `hog` figures: per-run figures, then medians across runs. Rates are per
/// second of the window.
#[derive(Clone, Debug, Serialize)]
pub struct HogReport {
    /// Workload name.
    pub name: String,
    /// Worker threads of each runtime.
    pub workers: usize,
    /// How long the small tasks were spawned and counted, milliseconds.
    pub window_ms: f64,
    /// One small task was spawned per this many milliseconds.
    pub spawn_every_ms: f64,
    /// How long after the window small tasks were still waited for before
    /// those not run were counted as never run, milliseconds.
    pub grace_ms: f64,
    /// How often wq's hog detection count was read, milliseconds.
    pub detection_poll_ms: f64,
    /// Pairs of runs, each on a fresh runtime.
    pub pairs: usize,
    /// wq small tasks completed within the window, per second.
    pub wq_completed_per_s: f64,
    /// tokio small tasks completed within the window, per second.
    pub tokio_completed_per_s: f64,
    /// wq small tasks spawned within the window, per second.
    pub wq_spawned_per_s: f64,
    /// tokio small tasks spawned within the window, per second.
    pub tokio_spawned_per_s: f64,
    /// wq: from the hog's first poll until the monitor's hog detection was
    /// seen in the metrics, median over the runs where it was; `None` if in
    /// none.
    pub wq_detection_ns: Option<f64>,
    /// wq: the CPU time the hog had used in its poll when it saw the
    /// detection noted, median over the runs where it did.
    pub wq_detection_cpu_ns: Option<f64>,
    /// wq runs in which the hog was detected within the window.
    pub wq_detected_runs: usize,
    /// tokio has no monitor: always `None`.
    pub tokio_detection_ns: Option<f64>,
    /// Every wq run.
    pub wq_runs: Vec<HogRunReport>,
    /// Every tokio run.
    pub tokio_runs: Vec<HogRunReport>,
}

/// One `hog` run.
#[derive(Clone, Debug, Serialize)]
pub struct HogRunReport {
    /// Small tasks spawned within the window.
    pub spawned: usize,
    /// Small tasks that ran within the window.
    pub completed: usize,
    /// Small tasks that had still not run shortly after the window.
    pub never_ran: usize,
    /// Time from the hog's first poll to its detection, if detected.
    pub detection_ns: Option<f64>,
    /// The hog's CPU time in its poll when it saw the detection, if so.
    pub detection_cpu_ns: Option<f64>,
}

impl HogReport {
    /// Summarises the runs of `hog`.
    pub fn new(name: String, hog: &HogComparison) -> Self {
        let window = HOG_WINDOW.as_secs_f64();
        let rate = |runs: &[HogRun], get: fn(&HogRun) -> usize| -> f64 {
            let values: Vec<f64> = runs.iter().map(|r| get(r) as f64 / window).collect();
            median(&values)
        };
        let median_of = |runs: &[HogRun], get: fn(&HogRun) -> Option<Duration>| {
            let values: Vec<f64> = runs
                .iter()
                .filter_map(get)
                .map(|d| d.as_secs_f64() * 1e9)
                .collect();
            (!values.is_empty()).then(|| median(&values))
        };
        let each = |runs: &[HogRun]| -> Vec<HogRunReport> {
            runs.iter()
                .map(|r| HogRunReport {
                    spawned: r.spawned,
                    completed: r.completed,
                    never_ran: r.never_ran,
                    detection_ns: r.detection.map(|d| d.as_secs_f64() * 1e9),
                    detection_cpu_ns: r.detection_cpu.map(|d| d.as_secs_f64() * 1e9),
                })
                .collect()
        };
        Self {
            name,
            workers: hog.workers,
            window_ms: window * 1e3,
            spawn_every_ms: HOG_SPAWN_EVERY.as_secs_f64() * 1e3,
            grace_ms: HOG_GRACE.as_secs_f64() * 1e3,
            detection_poll_ms: HOG_DETECTION_POLL.as_secs_f64() * 1e3,
            pairs: hog.wq.len(),
            wq_completed_per_s: rate(&hog.wq, |r| r.completed),
            tokio_completed_per_s: rate(&hog.tokio, |r| r.completed),
            wq_spawned_per_s: rate(&hog.wq, |r| r.spawned),
            tokio_spawned_per_s: rate(&hog.tokio, |r| r.spawned),
            wq_detection_ns: median_of(&hog.wq, |r| r.detection),
            wq_detection_cpu_ns: median_of(&hog.wq, |r| r.detection_cpu),
            wq_detected_runs: hog.wq.iter().filter(|r| r.detection.is_some()).count(),
            tokio_detection_ns: median_of(&hog.tokio, |r| r.detection),
            wq_runs: each(&hog.wq),
            tokio_runs: each(&hog.tokio),
        }
    }

    /// Small tasks that never ran, over all runs: (wq, tokio).
    fn never_ran(&self) -> (usize, usize) {
        let total = |runs: &[HogRunReport]| runs.iter().map(|r| r.never_ran).sum();
        (total(&self.wq_runs), total(&self.tokio_runs))
    }
}

/// `rescue` figures: one row per variant, medians across its runs.
#[derive(Clone, Debug, Serialize)]
pub struct RescueReport {
    /// Workload name.
    pub name: String,
    /// Workers of each runtime, which is also the cap on its worker threads
    /// and the number of blockers.
    pub workers: usize,
    /// How long the unblocking task was waited for before the run counted
    /// as stalled, milliseconds.
    pub limit_ms: f64,
    /// How long the runtime was left to settle once the blockers were
    /// blocked, before the task was spawned, milliseconds.
    pub settle_ms: f64,
    /// Runs per variant, each on a fresh runtime.
    pub runs_per_variant: usize,
    /// wq through a `mem_reclaim` workqueue, wq through a workqueue without
    /// it, and tokio through `Handle::spawn`, in that order.
    pub variants: Vec<RescueVariantReport>,
}

/// One variant of `rescue`: a runtime and what the unblocking task was
/// spawned through.
#[derive(Clone, Debug, Serialize)]
pub struct RescueVariantReport {
    /// `wq mem_reclaim`, `wq without mem_reclaim` or `tokio`.
    pub variant: String,
    /// What the unblocking task was spawned through.
    pub spawned_through: String,
    /// From the spawn until the task ran, median over the runs in which it
    /// ran within the limit; `None` if it did in none.
    pub time_to_run_ns: Option<f64>,
    /// Runs in which the task ran within the limit.
    pub ran: usize,
    /// Runs in which it had not (stalled).
    pub stalled: usize,
    /// The workqueue's mayday count per run, median (wq only).
    pub mayday: Option<f64>,
    /// The workqueue's rescued polls per run, median (wq only).
    pub rescued: Option<f64>,
    /// Every run.
    pub runs: Vec<RescueRunReport>,
}

/// One `rescue` run.
#[derive(Clone, Debug, Serialize)]
pub struct RescueRunReport {
    /// From the spawn until the task ran, if within the limit.
    pub time_to_run_ns: Option<f64>,
    /// The workqueue's `stats().mayday` after the run (wq only).
    pub mayday: Option<u64>,
    /// The workqueue's `stats().rescued` after the run (wq only).
    pub rescued: Option<u64>,
}

impl RescueReport {
    /// Summarises the runs of `rescue`.
    pub fn new(name: String, rescue: &RescueComparison) -> Self {
        let variants: Vec<RescueVariantReport> = RescueVariant::ALL
            .into_iter()
            .map(|variant| RescueVariantReport::new(variant, rescue.runs(variant)))
            .collect();
        Self {
            name,
            workers: crate::rescue::RESCUE_WORKERS,
            limit_ms: RESCUE_LIMIT.as_secs_f64() * 1e3,
            settle_ms: RESCUE_SETTLE.as_secs_f64() * 1e3,
            runs_per_variant: variants.iter().map(|v| v.runs.len()).max().unwrap_or(0),
            variants,
        }
    }
}

impl RescueVariantReport {
    fn new(variant: RescueVariant, runs: &[RescueRun]) -> Self {
        let median_of = |values: Vec<f64>| (!values.is_empty()).then(|| median(&values));
        let times: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.time_to_run)
            .map(|d| d.as_secs_f64() * 1e9)
            .collect();
        let ran = times.len();
        let count = |get: fn(&RescueRun) -> Option<u64>| {
            median_of(runs.iter().filter_map(get).map(|n| n as f64).collect())
        };
        Self {
            variant: variant.label().to_owned(),
            spawned_through: variant.spawned_through().to_owned(),
            time_to_run_ns: median_of(times),
            ran,
            stalled: runs.len() - ran,
            mayday: count(|r| r.mayday),
            rescued: count(|r| r.rescued),
            runs: runs
                .iter()
                .map(|r| RescueRunReport {
                    time_to_run_ns: r.time_to_run.map(|d| d.as_secs_f64() * 1e9),
                    mayday: r.mayday,
                    rescued: r.rescued,
                })
                .collect(),
        }
    }

    /// Stalled runs of all, as `stalled/runs`.
    fn stalled_of(&self) -> String {
        format!("{}/{}", self.stalled, self.runs.len())
    }

    /// The workqueue's median mayday and rescued counts, as `mayday /
    /// rescued`; `n/a` without a workqueue (tokio).
    fn mayday_rescued(&self) -> String {
        match (self.mayday, self.rescued) {
            (Some(mayday), Some(rescued)) => format!(
                "{} / {}",
                fmt_opt_count(Some(mayday)),
                fmt_opt_count(Some(rescued))
            ),
            _ => "n/a".to_owned(),
        }
    }
}

/// The one-line summary of `rescue` printed on stderr as it finishes: per
/// variant, the median time to run (`-` if the task ran in no run), the
/// stalled runs and, for wq, the workqueue's mayday and rescued counts.
pub fn rescue_line(rescue: &RescueReport) -> String {
    let variants: Vec<String> = rescue
        .variants
        .iter()
        .map(|v| {
            let counts = match (v.mayday, v.rescued) {
                (Some(_), Some(_)) => format!("; mayday / rescued {}", v.mayday_rescued()),
                _ => String::new(),
            };
            format!(
                "{} {} (stalled {}{counts})",
                v.variant,
                fmt_opt_ns(v.time_to_run_ns),
                v.stalled_of()
            )
        })
        .collect();
    format!("time to run: {}", variants.join(", "))
}

/// The target for `http_hello`'s requests/s, wq/tokio: at least this
/// (**higher is better**).
pub const HTTP_TARGET_REQUESTS_RATIO: f64 = 1.0;
/// The target for `http_hello`'s 99th percentile latency, wq/tokio: at most
/// this (lower is better), that is wq's p99 no higher than tokio's.
pub const HTTP_TARGET_P99_RATIO: f64 = 1.0;

/// `http_hello` figures: what `wrk` reported, medians over rounds per
/// runtime, and the medians of the per-round wq/tokio ratios.
#[derive(Clone, Debug, Serialize)]
pub struct HttpReport {
    /// Workload name.
    pub name: String,
    /// Worker threads of each runtime.
    pub workers: usize,
    /// The load, as the `wrk` command line (without the address).
    pub client: String,
    /// How long each `wrk` run lasted, seconds.
    pub secs: f64,
    /// Rounds, each one `wrk` run per runtime.
    pub rounds: usize,
    /// wq: requests/s, median over rounds.
    pub wq_requests_per_s: f64,
    /// tokio: requests/s, median over rounds.
    pub tokio_requests_per_s: f64,
    /// wq: median latency, median over rounds, nanoseconds.
    pub wq_p50_ns: f64,
    /// tokio: median latency, median over rounds, nanoseconds.
    pub tokio_p50_ns: f64,
    /// wq: 99th percentile latency, median over rounds, nanoseconds.
    pub wq_p99_ns: f64,
    /// tokio: 99th percentile latency, median over rounds, nanoseconds.
    pub tokio_p99_ns: f64,
    /// Requests/s wq/tokio, median of the per-round ratios: **higher is
    /// better**. `None` if tokio served nothing.
    pub requests_ratio: Option<f64>,
    /// p99 latency wq/tokio, median of the per-round ratios: lower is
    /// better.
    pub p99_ratio: Option<f64>,
    /// 25th and 75th percentiles of the per-round requests/s ratios.
    pub requests_ratio_p25_p75: Option<(f64, f64)>,
    /// wq's monitor thread wakeups per second of load, median over rounds
    /// (the workers tick for it while they run short polls).
    pub wq_monitor_wakeups_per_s: Option<f64>,
    /// CPU per response of the server under load (this process, user +
    /// system) and of `wrk`, medians over rounds; `None` if not measured.
    pub wq_cpu_per_request: Option<CpuPerRequest>,
    /// tokio: the same.
    pub tokio_cpu_per_request: Option<CpuPerRequest>,
    /// Whether `requests_ratio` is at least [`HTTP_TARGET_REQUESTS_RATIO`].
    pub requests_target_met: bool,
    /// Whether `p99_ratio` is at most [`HTTP_TARGET_P99_RATIO`].
    pub p99_target_met: bool,
    /// wq: socket errors and non-2xx/3xx responses `wrk` reported, all runs.
    pub wq_errors: u64,
    /// tokio: the same.
    pub tokio_errors: u64,
    /// Every wq run.
    pub wq_runs: Vec<WrkRunReport>,
    /// Every tokio run.
    pub tokio_runs: Vec<WrkRunReport>,
}

/// One `wrk` run of `http_hello`.
#[derive(Clone, Debug, Serialize)]
pub struct WrkRunReport {
    /// `wrk`'s requests/s.
    pub requests_per_s: f64,
    /// Responses `wrk` received.
    pub requests: u64,
    /// `wrk`'s latency distribution: 50 %, nanoseconds.
    pub p50_ns: f64,
    /// 75 %, nanoseconds.
    pub p75_ns: f64,
    /// 90 %, nanoseconds.
    pub p90_ns: f64,
    /// 99 %, nanoseconds.
    pub p99_ns: f64,
    /// Socket errors (connect, read, write, timeout).
    pub socket_errors: u64,
    /// Responses other than 2xx or 3xx.
    pub non_2xx: u64,
    /// Requests the server's handler answered during the run.
    pub server_requests: u64,
    /// Polls wq's monitor found blocked during the run (wq only).
    pub monitor_blocked: Option<u64>,
    /// Times wq's monitor thread woke during the run (wq only).
    pub monitor_wakeups: Option<u64>,
    /// CPU this process (the loaded server) used in user mode during the
    /// run, nanoseconds.
    pub server_user_ns: Option<f64>,
    /// The same, in the kernel.
    pub server_system_ns: Option<f64>,
    /// CPU `wrk` used during the run, user and system, nanoseconds.
    pub client_cpu_ns: Option<f64>,
}

/// CPU time per response `wrk` received in a run, nanoseconds: medians
/// over rounds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CpuPerRequest {
    /// The server (this process) in user mode.
    pub server_user_ns: f64,
    /// The server in the kernel.
    pub server_system_ns: f64,
    /// `wrk`, user and system.
    pub client_ns: f64,
}

impl CpuPerRequest {
    /// The medians over `runs` of their CPU per response, if every run
    /// has its CPU measured and received responses.
    fn of(runs: &[Run<WrkRun>]) -> Option<CpuPerRequest> {
        let per = |get: fn(&RunCpu) -> Duration| -> Option<f64> {
            let values: Option<Vec<f64>> = runs
                .iter()
                .map(|r| {
                    let cpu = r.load.cpu?;
                    (r.load.requests > 0).then(|| nanos_f64(get(&cpu)) / r.load.requests as f64)
                })
                .collect();
            values.filter(|v| !v.is_empty()).map(|v| median(&v))
        };
        Some(CpuPerRequest {
            server_user_ns: per(|c| c.server.user)?,
            server_system_ns: per(|c| c.server.system)?,
            client_ns: per(|c| c.client.total())?,
        })
    }
}

/// Nanoseconds of `d`, as the reports keep them.
fn nanos_f64(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

/// The median of the per-round ratios `wq / tokio` of `get`, over the
/// rounds in which tokio's figure is positive; `None` if in none.
fn round_ratio<T>(wq: &[Run<T>], tokio: &[Run<T>], get: impl Fn(&T) -> f64) -> Option<f64> {
    let ratios: Vec<f64> = wq
        .iter()
        .zip(tokio)
        .filter_map(|(w, t)| ratio_of(get(&w.load), get(&t.load)))
        .collect();
    (!ratios.is_empty()).then(|| median(&ratios))
}

/// The median over `runs` of `get`.
fn run_median<T>(runs: &[Run<T>], get: impl Fn(&Run<T>) -> f64) -> f64 {
    let values: Vec<f64> = runs.iter().map(get).collect();
    median(&values)
}

impl HttpReport {
    /// Summarises the runs of `http_hello`.
    pub fn new(name: String, http: &HttpComparison<WrkRun>) -> Self {
        let each = |runs: &[Run<WrkRun>]| -> Vec<WrkRunReport> {
            runs.iter()
                .map(|r| WrkRunReport {
                    requests_per_s: r.load.requests_per_s,
                    requests: r.load.requests,
                    p50_ns: nanos_f64(r.load.p50),
                    p75_ns: nanos_f64(r.load.p75),
                    p90_ns: nanos_f64(r.load.p90),
                    p99_ns: nanos_f64(r.load.p99),
                    socket_errors: r.load.socket_errors,
                    non_2xx: r.load.non_2xx,
                    server_requests: r.server.requests,
                    monitor_blocked: r.server.monitor.map(|m| m.blocked),
                    monitor_wakeups: r.server.monitor.map(|m| m.wakeups),
                    server_user_ns: r.load.cpu.map(|c| nanos_f64(c.server.user)),
                    server_system_ns: r.load.cpu.map(|c| nanos_f64(c.server.system)),
                    client_cpu_ns: r.load.cpu.map(|c| nanos_f64(c.client.total())),
                })
                .collect()
        };
        let errors = |runs: &[Run<WrkRun>]| {
            runs.iter()
                .map(|r| r.load.socket_errors + r.load.non_2xx)
                .sum()
        };
        let requests_ratio = round_ratio(&http.wq, &http.tokio, |r| r.requests_per_s);
        let p99_ratio = round_ratio(&http.wq, &http.tokio, |r| nanos_f64(r.p99));
        let round_ratios: Vec<f64> = http
            .wq
            .iter()
            .zip(&http.tokio)
            .filter_map(|(w, t)| ratio_of(w.load.requests_per_s, t.load.requests_per_s))
            .collect();
        let requests_ratio_p25_p75 = (!round_ratios.is_empty())
            .then(|| (quantile(&round_ratios, 0.25), quantile(&round_ratios, 0.75)));
        let wakeups: Vec<f64> = http
            .wq
            .iter()
            .filter_map(|r| {
                let wakeups = r.server.monitor?.wakeups as f64;
                Some(wakeups / http.secs.as_secs_f64().max(f64::MIN_POSITIVE))
            })
            .collect();
        let wq_monitor_wakeups_per_s = (!wakeups.is_empty()).then(|| median(&wakeups));
        Self {
            name,
            workers: http.workers,
            client: format!(
                "wrk -t{} -c{HTTP_CONNECTIONS} -d{}s --latency",
                http.client_threads,
                http.secs.as_secs()
            ),
            secs: http.secs.as_secs_f64(),
            rounds: http.wq.len(),
            wq_requests_per_s: run_median(&http.wq, |r| r.load.requests_per_s),
            tokio_requests_per_s: run_median(&http.tokio, |r| r.load.requests_per_s),
            wq_p50_ns: run_median(&http.wq, |r| nanos_f64(r.load.p50)),
            tokio_p50_ns: run_median(&http.tokio, |r| nanos_f64(r.load.p50)),
            wq_p99_ns: run_median(&http.wq, |r| nanos_f64(r.load.p99)),
            tokio_p99_ns: run_median(&http.tokio, |r| nanos_f64(r.load.p99)),
            requests_ratio,
            p99_ratio,
            requests_ratio_p25_p75,
            wq_monitor_wakeups_per_s,
            wq_cpu_per_request: CpuPerRequest::of(&http.wq),
            tokio_cpu_per_request: CpuPerRequest::of(&http.tokio),
            requests_target_met: requests_ratio.is_some_and(|r| r >= HTTP_TARGET_REQUESTS_RATIO),
            p99_target_met: p99_ratio.is_some_and(|r| r <= HTTP_TARGET_P99_RATIO),
            wq_errors: errors(&http.wq),
            tokio_errors: errors(&http.tokio),
            wq_runs: each(&http.wq),
            tokio_runs: each(&http.tokio),
        }
    }
}

/// `met` or `MISSED` (in text; `**missed**` in Markdown).
fn met(met: bool, missed: &'static str) -> &'static str {
    if met {
        "met"
    } else {
        missed
    }
}

/// The ratios of `http_hello` with their direction and targets.
fn http_ratios(h: &HttpReport, missed: &'static str) -> String {
    let spread = h
        .requests_ratio_p25_p75
        .map_or_else(String::new, |(p25, p75)| {
            format!(", per-round p25-p75 {}-{}", fmt_ratio(p25), fmt_ratio(p75))
        });
    format!(
        "requests/s wq/tokio {}{spread} (higher is better; target >= {:.2}: {}), p99 wq/tokio {} \
         (lower is better; target <= {:.2}: {})",
        fmt_opt_ratio(h.requests_ratio),
        HTTP_TARGET_REQUESTS_RATIO,
        met(h.requests_target_met, missed),
        fmt_opt_ratio(h.p99_ratio),
        HTTP_TARGET_P99_RATIO,
        met(h.p99_target_met, missed)
    )
}

/// `1 round`, `3 rounds`.
fn fmt_rounds(rounds: usize) -> String {
    if rounds == 1 {
        "1 round".to_owned()
    } else {
        format!("{rounds} rounds")
    }
}

/// CPU per response of both runtimes' runs, or `None` if either was not
/// measured.
fn http_cpu(h: &HttpReport) -> Option<String> {
    let (wq, tokio) = (h.wq_cpu_per_request?, h.tokio_cpu_per_request?);
    let us = |ns: f64| format!("{:.2} us", ns / 1e3);
    Some(format!(
        "CPU per response, medians over rounds: server (this process) wq {} user + {} \
         system, tokio {} user + {} system; wrk {} on wq, {} on tokio",
        us(wq.server_user_ns),
        us(wq.server_system_ns),
        us(tokio.server_user_ns),
        us(tokio.server_system_ns),
        us(wq.client_ns),
        us(tokio.client_ns)
    ))
}

/// The one-line summary of `http_hello` printed on stderr as it finishes.
pub fn http_line(h: &HttpReport) -> String {
    format!(
        "requests/s wq {}, tokio {}; p99 wq {}, tokio {}; {}",
        fmt_rate(h.wq_requests_per_s),
        fmt_rate(h.tokio_requests_per_s),
        fmt_ns(h.wq_p99_ns),
        fmt_ns(h.tokio_p99_ns),
        http_ratios(h, "MISSED")
    )
}

/// `http_hello_blocking` figures: what the load generator measured,
/// medians over rounds per runtime, and the medians of the per-round
/// wq/tokio ratios. Latencies are those of the requests that did not
/// block (for `/`), unless named after the blocking path.
#[derive(Clone, Debug, Serialize)]
pub struct HttpBlockingReport {
    /// Workload name.
    pub name: String,
    /// Worker threads of each runtime.
    pub workers: usize,
    /// Keep-alive connections of the load generator.
    pub connections: usize,
    /// Its threads, each a current-thread tokio runtime.
    pub client_threads: usize,
    /// How long each load run lasted, seconds.
    pub secs: f64,
    /// Rounds, each one load run per runtime.
    pub rounds: usize,
    /// The path on which the handler blocks.
    pub block_path: String,
    /// The client asks for it for 1 request in this many.
    pub block_every: u64,
    /// How long the handler blocks there, milliseconds.
    pub block_ms: f64,
    /// wq: responses per second of the window (both paths), median over
    /// rounds.
    pub wq_requests_per_s: f64,
    /// tokio: the same.
    pub tokio_requests_per_s: f64,
    /// wq: median latency of the requests for `/`, median over rounds,
    /// nanoseconds.
    pub wq_p50_ns: f64,
    /// tokio: the same.
    pub tokio_p50_ns: f64,
    /// wq: 99th percentile latency of the requests for `/`, median over
    /// rounds, nanoseconds.
    pub wq_p99_ns: f64,
    /// tokio: the same.
    pub tokio_p99_ns: f64,
    /// wq: median latency of the requests for the blocking path, median
    /// over the rounds that had any, nanoseconds.
    pub wq_block_p50_ns: Option<f64>,
    /// tokio: the same.
    pub tokio_block_p50_ns: Option<f64>,
    /// wq: requests the handler blocked on per run, median.
    pub wq_blocked_per_run: f64,
    /// tokio: the same.
    pub tokio_blocked_per_run: f64,
    /// wq: polls its monitor found blocked per run, median.
    pub wq_monitor_blocked: Option<f64>,
    /// Requests/s wq/tokio, median of the per-round ratios: **higher is
    /// better**.
    pub requests_ratio: Option<f64>,
    /// p99 latency of the requests for `/`, wq/tokio, median of the
    /// per-round ratios: lower is better.
    pub p99_ratio: Option<f64>,
    /// Every wq run.
    pub wq_runs: Vec<LoadRunReport>,
    /// Every tokio run.
    pub tokio_runs: Vec<LoadRunReport>,
}

/// One load generator run of `http_hello_blocking`.
#[derive(Clone, Debug, Serialize)]
pub struct LoadRunReport {
    /// Responses (both paths) per second of the window.
    pub requests_per_s: f64,
    /// Requests for `/` timed.
    pub fast_requests: usize,
    /// Their median latency, nanoseconds.
    pub fast_p50_ns: f64,
    /// Their 99th percentile latency, nanoseconds.
    pub fast_p99_ns: f64,
    /// Requests for the blocking path timed.
    pub block_requests: usize,
    /// Their median latency, nanoseconds, if there were any.
    pub block_p50_ns: Option<f64>,
    /// Requests the server's handler answered during the run.
    pub server_requests: u64,
    /// Of which, requests it blocked on.
    pub server_blocked: u64,
    /// Polls wq's monitor found blocked during the run (wq only).
    pub monitor_blocked: Option<u64>,
}

impl HttpBlockingReport {
    /// Summarises the runs of `http_hello_blocking`.
    pub fn new(name: String, http: &HttpComparison<LoadRun>) -> Self {
        let each = |runs: &[Run<LoadRun>]| -> Vec<LoadRunReport> {
            runs.iter()
                .map(|r| LoadRunReport {
                    requests_per_s: r.load.requests_per_s(),
                    fast_requests: r.load.fast_requests,
                    fast_p50_ns: nanos_f64(r.load.fast_p50),
                    fast_p99_ns: nanos_f64(r.load.fast_p99),
                    block_requests: r.load.block_requests,
                    block_p50_ns: r.load.block_p50.map(nanos_f64),
                    server_requests: r.server.requests,
                    server_blocked: r.server.blocked,
                    monitor_blocked: r.server.monitor.map(|m| m.blocked),
                })
                .collect()
        };
        let optional_median = |values: Vec<f64>| (!values.is_empty()).then(|| median(&values));
        let block_p50 = |runs: &[Run<LoadRun>]| {
            optional_median(
                runs.iter()
                    .filter_map(|r| r.load.block_p50.map(nanos_f64))
                    .collect(),
            )
        };
        Self {
            name,
            workers: http.workers,
            connections: HTTP_CONNECTIONS,
            client_threads: http.client_threads,
            secs: http.secs.as_secs_f64(),
            rounds: http.wq.len(),
            block_path: BLOCK_PATH.to_owned(),
            block_every: BLOCK_EVERY,
            block_ms: BLOCK_FOR.as_secs_f64() * 1e3,
            wq_requests_per_s: run_median(&http.wq, |r| r.load.requests_per_s()),
            tokio_requests_per_s: run_median(&http.tokio, |r| r.load.requests_per_s()),
            wq_p50_ns: run_median(&http.wq, |r| nanos_f64(r.load.fast_p50)),
            tokio_p50_ns: run_median(&http.tokio, |r| nanos_f64(r.load.fast_p50)),
            wq_p99_ns: run_median(&http.wq, |r| nanos_f64(r.load.fast_p99)),
            tokio_p99_ns: run_median(&http.tokio, |r| nanos_f64(r.load.fast_p99)),
            wq_block_p50_ns: block_p50(&http.wq),
            tokio_block_p50_ns: block_p50(&http.tokio),
            wq_blocked_per_run: run_median(&http.wq, |r| r.server.blocked as f64),
            tokio_blocked_per_run: run_median(&http.tokio, |r| r.server.blocked as f64),
            wq_monitor_blocked: optional_median(
                http.wq
                    .iter()
                    .filter_map(|r| r.server.monitor.map(|m| m.blocked as f64))
                    .collect(),
            ),
            requests_ratio: round_ratio(&http.wq, &http.tokio, LoadRun::requests_per_s),
            p99_ratio: round_ratio(&http.wq, &http.tokio, |r| nanos_f64(r.fast_p99)),
            wq_runs: each(&http.wq),
            tokio_runs: each(&http.tokio),
        }
    }
}

/// The ratios of `http_hello_blocking` with their direction.
fn http_blocking_ratios(h: &HttpBlockingReport) -> String {
    format!(
        "requests/s wq/tokio {} (higher is better), p99 of the non-blocking requests \
         wq/tokio {} (lower is better)",
        fmt_opt_ratio(h.requests_ratio),
        fmt_opt_ratio(h.p99_ratio)
    )
}

/// The one-line summary of `http_hello_blocking` printed on stderr as it
/// finishes.
pub fn http_blocking_line(h: &HttpBlockingReport) -> String {
    format!(
        "non-blocking requests p50 / p99 wq {} / {}, tokio {} / {}; requests/s wq {}, \
         tokio {}; {}",
        fmt_ns(h.wq_p50_ns),
        fmt_ns(h.wq_p99_ns),
        fmt_ns(h.tokio_p50_ns),
        fmt_ns(h.tokio_p99_ns),
        fmt_rate(h.wq_requests_per_s),
        fmt_rate(h.tokio_requests_per_s),
        http_blocking_ratios(h)
    )
}

/// One `monitor_cost/*` entry: a scheduler workload on wq with its monitor
/// and without, in pairs. Times are wall time per repetition, nanoseconds.
#[derive(Clone, Debug, Serialize)]
pub struct MonitorCostReport {
    /// Entry name (`monitor_cost/` and the workload's).
    pub name: String,
    /// What one repetition is.
    pub unit: String,
    /// Repetitions timed together in each sample.
    pub reps_per_sample: u64,
    /// Number of (on, off) pairs.
    pub pairs: usize,
    /// Median time with the monitor on.
    pub on_median_ns: f64,
    /// Median time with the monitor off.
    pub off_median_ns: f64,
    /// Median of the per-pair on/off ratios (> 1.0: what the monitor costs).
    pub ratio_median: f64,
    /// 25th percentile of the per-pair ratios.
    pub ratio_p25: f64,
    /// 75th percentile of the per-pair ratios.
    pub ratio_p75: f64,
    /// The most the ratio should be.
    pub target: f64,
    /// Every sample with the monitor on, per repetition.
    pub on_samples_ns: Vec<f64>,
    /// Every sample with the monitor off, per repetition.
    pub off_samples_ns: Vec<f64>,
    /// Every per-pair ratio.
    pub ratios: Vec<f64>,
}

impl MonitorCostReport {
    /// Summarises one monitor cost measurement.
    pub fn new(cost: &MonitorCost) -> Self {
        let per_rep_ns = |samples: &[Sample]| -> Vec<f64> {
            samples
                .iter()
                .map(|s| s.measured().as_secs_f64() * 1e9)
                .collect()
        };
        let on_samples_ns = per_rep_ns(&cost.on);
        let off_samples_ns = per_rep_ns(&cost.off);
        let ratios = cost.ratios();
        Self {
            name: Entry::MonitorCost(cost.workload).name(),
            unit: cost.workload.unit(),
            reps_per_sample: cost.reps,
            pairs: ratios.len(),
            on_median_ns: median(&on_samples_ns),
            off_median_ns: median(&off_samples_ns),
            ratio_median: median(&ratios),
            ratio_p25: quantile(&ratios, 0.25),
            ratio_p75: quantile(&ratios, 0.75),
            target: MONITOR_COST_TARGET,
            on_samples_ns,
            off_samples_ns,
            ratios,
        }
    }
}

/// `timers_create_cancel` per timer: the median run time divided by the
/// timers in a run.
#[derive(Clone, Debug, Serialize)]
pub struct TimersReport {
    /// Timers per run.
    pub timers: usize,
    /// wq time to create, register and cancel one timer.
    pub wq_ns_per_timer: f64,
    /// tokio time to create, register and cancel one timer.
    pub tokio_ns_per_timer: f64,
}

/// `sleeps_100k` figures. Lateness is the resume instant minus the
/// deadline; its percentiles are per run (over all tasks), then the median
/// across runs. CPU time is the whole process's (getrusage), per run.
#[derive(Clone, Debug, Serialize)]
pub struct SleepsReport {
    /// Sleeping tasks per run.
    pub tasks: usize,
    /// wq lateness, median.
    pub wq_lateness_p50_ns: f64,
    /// wq lateness, 99th percentile.
    pub wq_lateness_p99_ns: f64,
    /// tokio lateness, median.
    pub tokio_lateness_p50_ns: f64,
    /// tokio lateness, 99th percentile.
    pub tokio_lateness_p99_ns: f64,
    /// wq CPU time per run, median.
    pub wq_cpu_ns: f64,
    /// tokio CPU time per run, median.
    pub tokio_cpu_ns: f64,
    /// wq wall time from the start instant until the last task resumed,
    /// median.
    pub wq_makespan_ns: f64,
    /// tokio makespan, median.
    pub tokio_makespan_ns: f64,
    /// wq wall time to spawn the tasks, median.
    pub wq_spawn_ns: f64,
    /// tokio wall time to spawn the tasks, median.
    pub tokio_spawn_ns: f64,
    /// Every wq run's lateness median.
    pub wq_lateness_p50_samples_ns: Vec<f64>,
    /// Every wq run's lateness 99th percentile.
    pub wq_lateness_p99_samples_ns: Vec<f64>,
    /// Every tokio run's lateness median.
    pub tokio_lateness_p50_samples_ns: Vec<f64>,
    /// Every tokio run's lateness 99th percentile.
    pub tokio_lateness_p99_samples_ns: Vec<f64>,
}

impl SleepsReport {
    fn new(tasks: usize, comparison: &Comparison) -> Self {
        let field = |samples: &[Sample], get: fn(&Sample) -> f64| -> Vec<f64> {
            samples.iter().map(get).collect()
        };
        let p50 = |s: &Sample| s.sleeps.map_or(f64::NAN, |r| r.lateness_p50_ns);
        let p99 = |s: &Sample| s.sleeps.map_or(f64::NAN, |r| r.lateness_p99_ns);
        let cpu = |s: &Sample| s.measured().as_secs_f64() * 1e9;
        let makespan = |s: &Sample| s.per_rep().as_secs_f64() * 1e9;
        let spawn = |s: &Sample| {
            s.sleeps.map_or(f64::NAN, |r| {
                r.spawn.div_f64(s.reps as f64).as_secs_f64() * 1e9
            })
        };
        let (wq, tokio) = (&comparison.wq, &comparison.tokio);
        let wq_p50 = field(wq, p50);
        let wq_p99 = field(wq, p99);
        let tokio_p50 = field(tokio, p50);
        let tokio_p99 = field(tokio, p99);
        Self {
            tasks,
            wq_lateness_p50_ns: median(&wq_p50),
            wq_lateness_p99_ns: median(&wq_p99),
            tokio_lateness_p50_ns: median(&tokio_p50),
            tokio_lateness_p99_ns: median(&tokio_p99),
            wq_cpu_ns: median(&field(wq, cpu)),
            tokio_cpu_ns: median(&field(tokio, cpu)),
            wq_makespan_ns: median(&field(wq, makespan)),
            tokio_makespan_ns: median(&field(tokio, makespan)),
            wq_spawn_ns: median(&field(wq, spawn)),
            tokio_spawn_ns: median(&field(tokio, spawn)),
            wq_lateness_p50_samples_ns: wq_p50,
            wq_lateness_p99_samples_ns: wq_p99,
            tokio_lateness_p50_samples_ns: tokio_p50,
            tokio_lateness_p99_samples_ns: tokio_p99,
        }
    }
}

/// `idle_cost`: process CPU time while each runtime sat idle, measured once
/// per runtime.
#[derive(Clone, Debug, Serialize)]
pub struct IdleReport {
    /// Workload name.
    pub name: String,
    /// How long each runtime was idle, seconds.
    pub idle_secs: f64,
    /// Process CPU time (user + system) while wq was idle.
    pub wq_cpu_ns: f64,
    /// Process CPU time while tokio was idle.
    pub tokio_cpu_ns: f64,
    /// wq/tokio; `None` when tokio used no measurable CPU time.
    pub ratio: Option<f64>,
    /// Times wq's monitor woke while wq was idle; `None` if wq ran without
    /// a monitor (it runs with one, as built by default).
    pub wq_monitor_ticks: Option<u64>,
}

impl IdleReport {
    /// Summarises one measurement.
    pub fn new(name: String, idle: &IdleCost) -> Self {
        let wq = idle.wq_cpu.as_secs_f64() * 1e9;
        let tokio = idle.tokio_cpu.as_secs_f64() * 1e9;
        Self {
            name,
            idle_secs: idle.idle.as_secs_f64(),
            wq_cpu_ns: wq,
            tokio_cpu_ns: tokio,
            ratio: ratio_of(wq, tokio),
            wq_monitor_ticks: idle.wq_monitor.map(|m| m.wakeups),
        }
    }
}

/// `memory_100k_pending`: RSS growth with the tasks pending, measured once
/// per runtime.
#[derive(Clone, Debug, Serialize)]
pub struct MemoryReport {
    /// Workload name.
    pub name: String,
    /// Pending tasks.
    pub tasks: usize,
    /// wq RSS growth, bytes.
    pub wq_rss_growth_bytes: i64,
    /// tokio RSS growth, bytes.
    pub tokio_rss_growth_bytes: i64,
    /// wq RSS growth per task, bytes.
    pub wq_bytes_per_task: f64,
    /// tokio RSS growth per task, bytes.
    pub tokio_bytes_per_task: f64,
    /// wq/tokio; `None` when tokio's RSS did not grow.
    pub ratio: Option<f64>,
}

impl MemoryReport {
    /// Summarises one measurement.
    pub fn new(name: String, memory: &PendingMemory) -> Self {
        let per_task = |bytes: i64| bytes as f64 / memory.tasks as f64;
        Self {
            name,
            tasks: memory.tasks,
            wq_rss_growth_bytes: memory.wq_growth,
            tokio_rss_growth_bytes: memory.tokio_growth,
            wq_bytes_per_task: per_task(memory.wq_growth),
            tokio_bytes_per_task: per_task(memory.tokio_growth),
            ratio: ratio_of(memory.wq_growth as f64, memory.tokio_growth as f64),
        }
    }
}

/// `wq / tokio`, or `None` if `tokio` is not positive.
fn ratio_of(wq: f64, tokio: f64) -> Option<f64> {
    (tokio > 0.0).then(|| wq / tokio)
}

/// Seed round trip figures. Throughput is taken from the median run time;
/// latency percentiles are per run (over all its items), then the median
/// across runs.
#[derive(Clone, Debug, Serialize)]
pub struct SeedReport {
    /// Producer threads.
    pub producers: usize,
    /// Items in one run, all producers together.
    pub items: usize,
    /// wq round trips per second.
    pub wq_items_per_s: f64,
    /// tokio round trips per second.
    pub tokio_items_per_s: f64,
    /// wq spawn-call latency, median.
    pub wq_spawn_p50_ns: f64,
    /// wq spawn-call latency, 95th percentile.
    pub wq_spawn_p95_ns: f64,
    /// tokio spawn-call latency, median.
    pub tokio_spawn_p50_ns: f64,
    /// tokio spawn-call latency, 95th percentile.
    pub tokio_spawn_p95_ns: f64,
}

/// `seed_scope_*` figures: the seed round trip with wq's producers spawning
/// through an unbound workqueue of one affinity scope; tokio (no scopes)
/// runs the plain round trip, the same reference in every row.
#[derive(Clone, Debug, Serialize)]
pub struct ScopeReport {
    /// The scope (`cpu`, `smt`, `cache_shard`, `cache`, `numa`, `system`).
    pub scope: String,
    /// Whether the queue was `affinity_strict` (workers pinned to their
    /// pod's CPUs).
    pub strict: bool,
    /// Pods of the scope on this machine (read from sysfs by the runner);
    /// `None` if unknown.
    pub pods: Option<usize>,
    /// Unbound pools (one per pod that got a task) wq's threads showed after
    /// its last sample.
    pub wq_pools: Option<usize>,
    /// Their worker threads, together.
    pub wq_pool_threads: Option<usize>,
    /// Throughput and spawn-call latency, as for the seed round trip.
    pub seed: SeedReport,
}

/// Items per second and spawn-call latency of a seed round trip comparison
/// (`seed_round_trip_*` or `seed_scope_*`) with `producers` x `items` items
/// per run; `wq_ns` and `tokio_ns` are the per-run times.
fn seed_figures(
    comparison: &Comparison,
    producers: usize,
    items: usize,
    wq_ns: &[f64],
    tokio_ns: &[f64],
) -> SeedReport {
    let total = producers * items;
    let latency = |samples: &[Sample], p95: bool| -> f64 {
        let values: Vec<f64> = samples
            .iter()
            .filter_map(|s| s.spawn_latency)
            .map(|l| if p95 { l.p95 } else { l.p50 }.as_secs_f64() * 1e9)
            .collect();
        median(&values)
    };
    SeedReport {
        producers,
        items: total,
        wq_items_per_s: total as f64 / (median(wq_ns) / 1e9),
        tokio_items_per_s: total as f64 / (median(tokio_ns) / 1e9),
        wq_spawn_p50_ns: latency(&comparison.wq, false),
        wq_spawn_p95_ns: latency(&comparison.wq, true),
        tokio_spawn_p50_ns: latency(&comparison.tokio, false),
        tokio_spawn_p95_ns: latency(&comparison.tokio, true),
    }
}

impl WorkloadReport {
    /// Summarises one comparison.
    pub fn new(comparison: &Comparison) -> Self {
        let per_rep_ns = |samples: &[Sample]| -> Vec<f64> {
            samples
                .iter()
                .map(|s| s.measured().as_secs_f64() * 1e9)
                .collect()
        };
        let wq_samples_ns = per_rep_ns(&comparison.wq);
        let tokio_samples_ns = per_rep_ns(&comparison.tokio);
        let ratios = comparison.ratios();
        let workload = comparison.workload;

        let seed = match workload {
            Workload::SeedRoundTrip { producers, items } => Some(seed_figures(
                comparison,
                producers,
                items,
                &wq_samples_ns,
                &tokio_samples_ns,
            )),
            _ => None,
        };
        let scope = match workload {
            Workload::SeedScope {
                scope,
                strict,
                producers,
                items,
            } => {
                let pools = comparison.wq.iter().rev().find_map(|s| s.pools);
                Some(ScopeReport {
                    scope: scope_name(scope).to_owned(),
                    strict,
                    pods: PodCounts::detect().of(scope),
                    wq_pools: pools.map(|p| p.pools),
                    wq_pool_threads: pools.map(|p| p.threads),
                    seed: seed_figures(
                        comparison,
                        producers,
                        items,
                        &wq_samples_ns,
                        &tokio_samples_ns,
                    ),
                })
            }
            _ => None,
        };
        let timers = match workload {
            Workload::TimersCreateCancel { timers } => Some(TimersReport {
                timers,
                wq_ns_per_timer: median(&wq_samples_ns) / timers as f64,
                tokio_ns_per_timer: median(&tokio_samples_ns) / timers as f64,
            }),
            _ => None,
        };
        let sleeps = match workload {
            Workload::Sleeps { tasks } => Some(SleepsReport::new(tasks, comparison)),
            _ => None,
        };
        let storm = match workload {
            Workload::BlockingStorm { blockers } => Some(StormReport::new(blockers, comparison)),
            _ => None,
        };

        Self {
            name: workload.name(),
            unit: workload.unit(),
            measure: if sleeps.is_some() {
                "CPU time"
            } else if storm.is_some() {
                "p99 lateness"
            } else {
                "wall time"
            }
            .into(),
            reps_per_sample: comparison.reps,
            pairs: ratios.len(),
            wq_median_ns: median(&wq_samples_ns),
            tokio_median_ns: median(&tokio_samples_ns),
            ratio_median: median(&ratios),
            ratio_p25: quantile(&ratios, 0.25),
            ratio_p75: quantile(&ratios, 0.75),
            wq_samples_ns,
            tokio_samples_ns,
            ratios,
            seed,
            scope,
            timers,
            sleeps,
            storm,
        }
    }
}

/// Formats nanoseconds with three significant digits and a fitting unit.
pub fn fmt_ns(ns: f64) -> String {
    let (value, unit) = if ns >= 1e9 {
        (ns / 1e9, "s")
    } else if ns >= 1e6 {
        (ns / 1e6, "ms")
    } else if ns >= 1e3 {
        (ns / 1e3, "µs")
    } else {
        (ns, "ns")
    };
    format!("{} {unit}", three_digits(value))
}

/// Formats a CPU time read from getrusage (microsecond resolution) like
/// [`fmt_ns`], showing none at all as `0 µs`.
pub fn fmt_cpu(ns: f64) -> String {
    if ns == 0.0 {
        "0 µs".to_owned()
    } else {
        fmt_ns(ns)
    }
}

/// Formats a signed number of nanoseconds like [`fmt_ns`].
pub fn fmt_signed_ns(ns: f64) -> String {
    if ns < 0.0 {
        format!("-{}", fmt_ns(-ns))
    } else {
        fmt_ns(ns)
    }
}

/// Formats a signed number of bytes with three significant digits and a
/// binary unit.
pub fn fmt_bytes(bytes: f64) -> String {
    let sign = if bytes < 0.0 { "-" } else { "" };
    let abs = bytes.abs();
    let (value, unit) = if abs >= 1024.0 * 1024.0 * 1024.0 {
        (abs / (1024.0 * 1024.0 * 1024.0), "GiB")
    } else if abs >= 1024.0 * 1024.0 {
        (abs / (1024.0 * 1024.0), "MiB")
    } else if abs >= 1024.0 {
        (abs / 1024.0, "KiB")
    } else {
        (abs, "B")
    };
    format!("{sign}{} {unit}", three_digits(value))
}

/// Formats an optional ratio; `n/a` when there is none.
pub fn fmt_opt_ratio(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "n/a".to_owned(), fmt_ratio)
}

/// Formats a rate (per second) with three significant digits.
pub fn fmt_rate(per_s: f64) -> String {
    let (value, unit) = if per_s >= 1e6 {
        (per_s / 1e6, "M/s")
    } else if per_s >= 1e3 {
        (per_s / 1e3, "k/s")
    } else {
        (per_s, "/s")
    };
    format!("{} {unit}", three_digits(value))
}

/// Formats a ratio: two decimals, fewer once it is large.
pub fn fmt_ratio(ratio: f64) -> String {
    if ratio >= 100.0 {
        format!("{ratio:.0}")
    } else if ratio >= 10.0 {
        format!("{ratio:.1}")
    } else {
        format!("{ratio:.2}")
    }
}

fn three_digits(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// Note on what the process-wide CPU figures include.
const CPU_SCOPE_NOTE: &str = "getrusage counts the whole process, so the figure also \
                              includes the runner itself, whose main thread only sleeps";

/// The plain-text tables printed on stdout.
pub fn text(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "machine: {}", report.machine.summary());
    if report.workloads.is_empty() {
        let _ = writeln!(out, "workers: {}", report.run.workers);
    } else {
        let _ = writeln!(
            out,
            "workers: {}; ratio = median of per-pair wq/tokio figures (< 1.00: wq better)",
            report.run.workers
        );
    }

    if !report.workloads.is_empty() {
        // `seed_scope_cache_shard_strict` is longer than the others.
        let width = report
            .workloads
            .iter()
            .map(|w| w.name.len())
            .fold(24, usize::max);
        let _ = writeln!(
            out,
            "\n{:<width$} {:>11} {:>11} {:>9} {:>13}  {:<5}  one repetition",
            "workload", "wq", "tokio", "wq/tokio", "ratio p25-p75", "pairs"
        );
        for w in &report.workloads {
            let _ = writeln!(
                out,
                "{:<width$} {:>11} {:>11} {:>9} {:>13}  {:<5}  {}",
                w.name,
                fmt_ns(w.wq_median_ns),
                fmt_ns(w.tokio_median_ns),
                fmt_ratio(w.ratio_median),
                format!("{}-{}", fmt_ratio(w.ratio_p25), fmt_ratio(w.ratio_p75)),
                w.pairs,
                w.unit
            );
        }
    }

    let seeds: Vec<_> = report
        .workloads
        .iter()
        .filter_map(|w| w.seed.as_ref())
        .collect();
    if !seeds.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<10} {:>8} {:>12} {:>12} {:>21} {:>21}",
            "producers",
            "items",
            "wq items/s",
            "tokio items/s",
            "wq spawn p50/p95",
            "tokio spawn p50/p95"
        );
        for s in seeds {
            let _ = writeln!(
                out,
                "{:<10} {:>8} {:>12} {:>12} {:>21} {:>21}",
                s.producers,
                grouped(s.items),
                fmt_rate(s.wq_items_per_s),
                fmt_rate(s.tokio_items_per_s),
                format!(
                    "{} / {}",
                    fmt_ns(s.wq_spawn_p50_ns),
                    fmt_ns(s.wq_spawn_p95_ns)
                ),
                format!(
                    "{} / {}",
                    fmt_ns(s.tokio_spawn_p50_ns),
                    fmt_ns(s.tokio_spawn_p95_ns)
                ),
            );
        }
    }

    let scopes: Vec<_> = report
        .workloads
        .iter()
        .filter_map(|w| w.scope.as_ref().map(|s| (w, s)))
        .collect();
    if let Some((_, first)) = scopes.first() {
        let _ = writeln!(
            out,
            "\nseed_scope: {} producers x {} items; wq spawns each item through an unbound \
             workqueue of the scope; {TOKIO_SCOPE_NOTE}",
            first.seed.producers,
            grouped(first.seed.items / first.seed.producers.max(1)),
        );
        if let Some(pods) = &report.scope_pods {
            let _ = writeln!(out, "{}", scope_topology_note(pods));
        }
        let _ = writeln!(
            out,
            "{:<18} {:>4} {:>10} {:>12} {:>13} {:>21} {:>21} {:>9}",
            "scope",
            "pods",
            "wq pools",
            "wq items/s",
            "tokio items/s",
            "wq spawn p50/p95",
            "tokio spawn p50/p95",
            "wq/tokio"
        );
        for (w, s) in scopes {
            let _ = writeln!(
                out,
                "{:<18} {:>4} {:>10} {:>12} {:>13} {:>21} {:>21} {:>9}",
                scope_label(s),
                fmt_opt_usize(s.pods),
                fmt_pools(s),
                fmt_rate(s.seed.wq_items_per_s),
                fmt_rate(s.seed.tokio_items_per_s),
                format!(
                    "{} / {}",
                    fmt_ns(s.seed.wq_spawn_p50_ns),
                    fmt_ns(s.seed.wq_spawn_p95_ns)
                ),
                format!(
                    "{} / {}",
                    fmt_ns(s.seed.tokio_spawn_p50_ns),
                    fmt_ns(s.seed.tokio_spawn_p95_ns)
                ),
                fmt_ratio(w.ratio_median)
            );
        }
        let _ = writeln!(
            out,
            "(wq pools: unbound pools / their worker threads after wq's last sample; \
             wq/tokio: median of per-pair makespan ratios)"
        );
    }

    for t in report.workloads.iter().filter_map(|w| w.timers.as_ref()) {
        let _ = writeln!(
            out,
            "\n{:<10} {:>14} {:>16}",
            "timers", "wq per timer", "tokio per timer"
        );
        let _ = writeln!(
            out,
            "{:<10} {:>14} {:>16}",
            grouped(t.timers),
            fmt_ns(t.wq_ns_per_timer),
            fmt_ns(t.tokio_ns_per_timer)
        );
    }

    for s in report.workloads.iter().filter_map(|w| w.sleeps.as_ref()) {
        let _ = writeln!(
            out,
            "\n{:<8} {:>23} {:>23} {:>9} {:>9} {:>12} {:>12}",
            "sleepers",
            "wq lateness p50/p99",
            "tokio lateness p50/p99",
            "wq CPU",
            "tokio CPU",
            "wq makespan",
            "tokio makespan"
        );
        let _ = writeln!(
            out,
            "{:<8} {:>23} {:>23} {:>9} {:>9} {:>12} {:>12}",
            grouped(s.tasks),
            format!(
                "{} / {}",
                fmt_signed_ns(s.wq_lateness_p50_ns),
                fmt_signed_ns(s.wq_lateness_p99_ns)
            ),
            format!(
                "{} / {}",
                fmt_signed_ns(s.tokio_lateness_p50_ns),
                fmt_signed_ns(s.tokio_lateness_p99_ns)
            ),
            fmt_ns(s.wq_cpu_ns),
            fmt_ns(s.tokio_cpu_ns),
            fmt_ns(s.wq_makespan_ns),
            fmt_ns(s.tokio_makespan_ns)
        );
    }

    let storms: Vec<_> = report
        .workloads
        .iter()
        .filter_map(|w| w.storm.as_ref())
        .collect();
    if let Some(first) = storms.first() {
        let _ = writeln!(
            out,
            "\nblocking_storm: {} timer tasks due over {} ms while B tasks block {} ms each \
             (std::thread::sleep, no annotation); medians of {} runs",
            grouped(first.timers),
            first.span_ms,
            first.block_ms,
            report.run.timer_samples
        );
        let _ = writeln!(
            out,
            "targets for wq: lateness p99 <= {}, makespan <= {} ({} x {} ms)",
            fmt_ns(first.target_lateness_p99_ns),
            fmt_ns(first.target_makespan_ns),
            STORM_TARGET_MAKESPAN,
            first.block_ms
        );
        let _ = writeln!(
            out,
            "{:<3} {:>21} {:>23} {:>12} {:>14} {:>21} {:>14} {:>11}",
            "B",
            "wq lateness p50/p99",
            "tokio lateness p50/p99",
            "wq makespan",
            "tokio makespan",
            "1st blocker wq/tokio",
            "wq blocked/thr",
            "wq targets"
        );
        for s in storms {
            let _ = writeln!(
                out,
                "{:<3} {:>21} {:>23} {:>12} {:>14} {:>21} {:>14} {:>11}",
                s.blockers,
                format!(
                    "{} / {}",
                    fmt_signed_ns(s.wq_lateness_p50_ns),
                    fmt_signed_ns(s.wq_lateness_p99_ns)
                ),
                format!(
                    "{} / {}",
                    fmt_signed_ns(s.tokio_lateness_p50_ns),
                    fmt_signed_ns(s.tokio_lateness_p99_ns)
                ),
                fmt_ns(s.wq_makespan_ns),
                fmt_ns(s.tokio_makespan_ns),
                format!(
                    "{} / {}",
                    fmt_opt_ns(s.wq_first_blocker_ns),
                    fmt_opt_ns(s.tokio_first_blocker_ns)
                ),
                format!(
                    "{} / {}",
                    fmt_opt_count(s.wq_blocked_detections),
                    fmt_opt_count(s.wq_threads_created)
                ),
                if s.wq_meets_targets { "met" } else { "MISSED" }
            );
        }
        let _ = writeln!(
            out,
            "(wq blocked/thr: polls wq's monitor found blocked / worker threads wq created, per run)"
        );
    }

    if let Some(h) = &report.hog {
        let _ = writeln!(
            out,
            "\n{}: one task spins without yielding on {} workers; a small task is spawned \
             every {} ms for {} ms; medians of {} runs, each on a fresh runtime",
            h.name, h.workers, h.spawn_every_ms, h.window_ms, h.pairs
        );
        let _ = writeln!(
            out,
            "{:<8} {:>12} {:>12} {:>10}  hog detected after",
            "runtime", "completed/s", "spawned/s", "never ran"
        );
        let (wq_never, tokio_never) = h.never_ran();
        for (runtime, completed, spawned, never_ran, detection) in [
            (
                "wq",
                h.wq_completed_per_s,
                h.wq_spawned_per_s,
                wq_never,
                hog_detection(h),
            ),
            (
                "tokio",
                h.tokio_completed_per_s,
                h.tokio_spawned_per_s,
                tokio_never,
                "n/a (no monitor)".to_owned(),
            ),
        ] {
            let _ = writeln!(
                out,
                "{:<8} {:>12} {:>12} {:>10}  {}",
                runtime,
                fmt_per_s(completed),
                fmt_per_s(spawned),
                never_ran,
                detection
            );
        }
    }

    if let Some(r) = &report.rescue {
        let _ = writeln!(
            out,
            "\n{}: {} of {} workers (no more allowed) block on a latch; the task that opens it \
             is spawned, and the run stalls if it has not run within {} ms; {} runs per \
             variant, each on a fresh runtime",
            r.name, r.workers, r.workers, r.limit_ms, r.runs_per_variant
        );
        let _ = writeln!(
            out,
            "{:<23} {:>12} {:>8}  mayday / rescued",
            "variant", "time to run", "stalled"
        );
        for v in &r.variants {
            let _ = writeln!(
                out,
                "{:<23} {:>12} {:>8}  {}",
                v.variant,
                fmt_opt_ns(v.time_to_run_ns),
                v.stalled_of(),
                v.mayday_rescued()
            );
        }
        let _ = writeln!(
            out,
            "(time to run: spawn to first poll, median over the runs that ran in time; \
             mayday / rescued: the workqueue's stats, median per run)"
        );
    }

    if let Some(h) = &report.http {
        let _ = writeln!(
            out,
            "\n{}: hyper HTTP/1.1 hello world on loopback, {} workers each; `{}` against each \
             runtime once per round, {}, which runtime goes first alternating; medians over \
             rounds",
            h.name,
            h.workers,
            h.client,
            fmt_rounds(h.rounds)
        );
        let _ = writeln!(
            out,
            "{:<8} {:>12} {:>10} {:>10} {:>7}",
            "runtime", "requests/s", "p50", "p99", "errors"
        );
        for (runtime, per_s, p50, p99, errors) in [
            (
                "wq",
                h.wq_requests_per_s,
                h.wq_p50_ns,
                h.wq_p99_ns,
                h.wq_errors,
            ),
            (
                "tokio",
                h.tokio_requests_per_s,
                h.tokio_p50_ns,
                h.tokio_p99_ns,
                h.tokio_errors,
            ),
        ] {
            let _ = writeln!(
                out,
                "{:<8} {:>12} {:>10} {:>10} {:>7}",
                runtime,
                fmt_rate(per_s),
                fmt_ns(p50),
                fmt_ns(p99),
                errors
            );
        }
        let _ = writeln!(out, "{}", http_ratios(h, "MISSED"));
        if let Some(cpu) = http_cpu(h) {
            let _ = writeln!(out, "{cpu}");
        }
        let _ = writeln!(
            out,
            "(latency: wrk's, from writing a request to reading its response; ratios: median \
             of the per-round ratios; errors: wrk's socket errors and non-2xx/3xx responses, \
             all runs; CPU: getrusage of this process, which runs no other server meanwhile, \
             and of wrk)"
        );
    }

    if let Some(h) = &report.http_blocking {
        let _ = writeln!(
            out,
            "\n{}: the same server, its handler blocking in std::thread::sleep({}) on {}, which \
             the runner's load generator ({} threads, {} keep-alive connections, {} s) asks \
             for 1 request in {}; {}, which runtime goes first alternating; medians over \
             rounds",
            h.name,
            fmt_ns(h.block_ms * 1e6),
            h.block_path,
            h.client_threads,
            h.connections,
            h.secs,
            h.block_every,
            fmt_rounds(h.rounds)
        );
        let _ = writeln!(
            out,
            "{:<8} {:>12} {:>10} {:>10} {:>11} {:>11}  wq blocked",
            "runtime", "requests/s", "p50", "p99", "/block p50", "blocked/run"
        );
        for (runtime, per_s, p50, p99, block_p50, blocked, monitor) in [
            (
                "wq",
                h.wq_requests_per_s,
                h.wq_p50_ns,
                h.wq_p99_ns,
                h.wq_block_p50_ns,
                h.wq_blocked_per_run,
                fmt_opt_count(h.wq_monitor_blocked),
            ),
            (
                "tokio",
                h.tokio_requests_per_s,
                h.tokio_p50_ns,
                h.tokio_p99_ns,
                h.tokio_block_p50_ns,
                h.tokio_blocked_per_run,
                "n/a (no monitor)".to_owned(),
            ),
        ] {
            let _ = writeln!(
                out,
                "{:<8} {:>12} {:>10} {:>10} {:>11} {:>11}  {}",
                runtime,
                fmt_rate(per_s),
                fmt_ns(p50),
                fmt_ns(p99),
                fmt_opt_ns(block_p50),
                blocked,
                monitor
            );
        }
        let _ = writeln!(out, "{}", http_blocking_ratios(h));
        let _ = writeln!(
            out,
            "(p50, p99: latency of the requests for / only, from writing the request to reading \
             the whole response; /block p50: of the blocking ones; blocked/run: requests the \
             handler blocked on; wq blocked: polls wq's monitor found blocked, per run)"
        );
    }

    if let Some(r) = &report.redis {
        crate::redis::text(r, &mut out);
    }

    if let Some(i) = &report.idle {
        let _ = writeln!(
            out,
            "\n{}: process CPU time over {} s with an idle runtime, measured once each",
            i.name, i.idle_secs
        );
        let _ = writeln!(out, "({CPU_SCOPE_NOTE}; {})", idle_monitor_note(i));
        let _ = writeln!(
            out,
            "{:>11} {:>11} {:>9}",
            "wq CPU", "tokio CPU", "wq/tokio"
        );
        let _ = writeln!(
            out,
            "{:>11} {:>11} {:>9}",
            fmt_cpu(i.wq_cpu_ns),
            fmt_cpu(i.tokio_cpu_ns),
            fmt_opt_ratio(i.ratio)
        );
    }

    if let Some(m) = &report.memory {
        let _ = writeln!(
            out,
            "\n{:<8} {:>14} {:>16} {:>12} {:>14} {:>9}",
            "pending",
            "wq RSS growth",
            "tokio RSS growth",
            "wq per task",
            "tokio per task",
            "wq/tokio"
        );
        let _ = writeln!(
            out,
            "{:<8} {:>14} {:>16} {:>12} {:>14} {:>9}",
            grouped(m.tasks),
            fmt_bytes(m.wq_rss_growth_bytes as f64),
            fmt_bytes(m.tokio_rss_growth_bytes as f64),
            format!("{:.0} B", m.wq_bytes_per_task),
            format!("{:.0} B", m.tokio_bytes_per_task),
            fmt_opt_ratio(m.ratio)
        );
    }

    if !report.monitor_cost.is_empty() {
        let _ = writeln!(
            out,
            "\nmonitor on/off, target <= {MONITOR_COST_TARGET:.2}: wq with its monitor (as built \
             by default) vs wq with .monitor(false), alternating pairs; ratio = median of \
             per-pair on/off wall times"
        );
        let _ = writeln!(
            out,
            "{:<37} {:>11} {:>11} {:>7} {:>13}  {:<5}  within target",
            "workload", "on", "off", "on/off", "ratio p25-p75", "pairs"
        );
        for c in &report.monitor_cost {
            let _ = writeln!(
                out,
                "{:<37} {:>11} {:>11} {:>7} {:>13}  {:<5}  {}",
                c.name,
                fmt_ns(c.on_median_ns),
                fmt_ns(c.off_median_ns),
                fmt_ratio(c.ratio_median),
                format!("{}-{}", fmt_ratio(c.ratio_p25), fmt_ratio(c.ratio_p75)),
                c.pairs,
                if c.ratio_median <= c.target {
                    "yes"
                } else {
                    "no"
                }
            );
        }
    }
    out
}

/// Formats an optional number of nanoseconds; `-` when there is none.
fn fmt_opt_ns(ns: Option<f64>) -> String {
    ns.map_or_else(|| "-".to_owned(), fmt_ns)
}

/// Formats an optional count (a median, so possibly a half); `-` when
/// there is none.
fn fmt_opt_count(count: Option<f64>) -> String {
    count.map_or_else(|| "-".to_owned(), |c| format!("{c}"))
}

/// wq's hog detection time (wall, and the hog's CPU time), with in how
/// many runs it was detected.
fn hog_detection(hog: &HogReport) -> String {
    let runs = format!("{}/{} runs", hog.wq_detected_runs, hog.pairs);
    match (hog.wq_detection_ns, hog.wq_detection_cpu_ns) {
        (Some(wall), Some(cpu)) => format!("{} (CPU {}; {runs})", fmt_ns(wall), fmt_ns(cpu)),
        (Some(wall), None) => format!("{} ({runs})", fmt_ns(wall)),
        (None, _) => format!("not detected ({runs})"),
    }
}

/// Formats a rate per second with one decimal, for rates that should all
/// be near the same round figure.
pub fn fmt_per_s(per_s: f64) -> String {
    format!("{per_s:.1} /s")
}

/// Whether wq's idle cost includes its monitor, and how often it woke.
fn idle_monitor_note(idle: &IdleReport) -> String {
    match idle.wq_monitor_ticks {
        Some(ticks) => format!("wq's monitor is on; it woke {ticks} times while idle"),
        None => "wq ran without its monitor".to_owned(),
    }
}

/// What tokio's side of `seed_scope_*` is.
const TOKIO_SCOPE_NOTE: &str = "tokio has no affinity scopes, so its side is the plain \
                                seed round trip (spawned through the runtime handle), \
                                the same reference in every row, re-measured as each \
                                row's pair partner";

/// A `seed_scope_*` row's scope, with `_strict` for pinned workers.
fn scope_label(scope: &ScopeReport) -> String {
    format!(
        "{}{}",
        scope.scope,
        if scope.strict { "_strict" } else { "" }
    )
}

/// Formats an optional count; `?` when unknown.
fn fmt_opt_usize(n: Option<usize>) -> String {
    n.map_or_else(|| "?".to_owned(), |n| n.to_string())
}

/// wq's unbound pools and their threads, as `pools / threads`.
fn fmt_pools(scope: &ScopeReport) -> String {
    match (scope.wq_pools, scope.wq_pool_threads) {
        (Some(pools), Some(threads)) => format!("{pools} / {threads}"),
        _ => "?".to_owned(),
    }
}

/// How many pods each scope has on this machine, and what that means for
/// `seed_scope_*`.
fn scope_topology_note(pods: &PodCounts) -> String {
    let plural = |n: usize, one: &str, many: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {many}")
        }
    };
    let mut machine = Vec::new();
    if let Some(cpus) = pods.cpu {
        machine.push(plural(cpus, "CPU", "CPUs"));
    }
    match (pods.cpu, pods.smt) {
        (Some(cpus), Some(cores)) if cpus == cores => machine.push("no SMT".to_owned()),
        (_, Some(cores)) => machine.push(plural(cores, "core", "cores")),
        _ => {}
    }
    if let Some(llcs) = pods.cache {
        machine.push(plural(llcs, "last-level cache", "last-level caches"));
    }
    if let Some(nodes) = pods.numa {
        machine.push(plural(nodes, "NUMA node", "NUMA nodes"));
    }
    // Scopes grouped by pod count, most pods first.
    let mut groups: Vec<(Option<usize>, Vec<&str>)> = Vec::new();
    for (scope, name) in SCOPES {
        let n = pods.of(scope);
        match groups.iter_mut().find(|(count, _)| *count == n) {
            Some((_, names)) => names.push(name),
            None => groups.push((n, vec![name])),
        }
    }
    groups.sort_by_key(|(count, _)| std::cmp::Reverse(*count));
    let groups: Vec<String> = groups
        .into_iter()
        .map(|(count, names)| {
            let pods = match count {
                Some(n) => plural(n, "pod", "pods"),
                None => "an unknown number of pods".to_owned(),
            };
            let scopes = if names.len() == 1 {
                "scope gives"
            } else {
                "scopes give"
            };
            format!("the {} {scopes} {pods}", join_and(&names))
        })
        .collect();
    format!(
        "topology: {}, so {}. One pod means one unbound pool with as many workers running \
         as the machine has CPUs; several mean a pool per pod, with as many running as the \
         pod has CPUs, and each item goes to the pool of the CPU its producer was on.",
        machine.join(", "),
        groups.join("; ")
    )
}

/// `a`, `a and b`, `a, b and c`.
fn join_and(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The Markdown report (the contents of `BENCHMARKS.md`).
pub fn markdown(report: &Report, plot_path: &str) -> String {
    let m = &report.machine;
    let r = &report.run;
    let mut out = String::new();
    let _ = writeln!(out, "# Benchmarks\n");
    let _ = writeln!(
        out,
        "wq against tokio's multi-thread runtime, both with {} worker threads, \
         measured side by side in one run: for each workload the two runtimes \
         alternate in pairs of samples. The ratio is the median of the per-pair \
         ratios of wq's figure to tokio's; **below 1.00 wq is better**. Figures \
         are medians per repetition of the workload: wall time, except where \
         CPU time or lateness is stated. Idle cost and memory are measured once \
         per runtime instead of in pairs, `hog` and `rescue` on a fresh runtime \
         per run, the HTTP servers in rounds of load from outside the runtimes, \
         and the monitor cost table compares wq with itself, its monitor on and \
         off.\n",
        r.workers
    );
    let _ = writeln!(out, "| | |\n| --- | --- |");
    let _ = writeln!(out, "| CPU | {} |", m.cpu);
    let _ = writeln!(out, "| cores | {} |", m.cores);
    let _ = writeln!(out, "| kernel | {} |", m.kernel);
    let _ = writeln!(out, "| compiler | {} |", m.rustc);
    if !m.optimized {
        let _ = writeln!(out, "| build | unoptimized |");
    }
    let _ = writeln!(out, "| date | {} |", m.date);
    let _ = writeln!(
        out,
        "| pairs | {} per scheduler workload, {} per seed round trip, {} per timer and blocking workload |",
        r.samples, r.seed_samples, r.timer_samples
    );
    let args = if r.args.is_empty() {
        String::new()
    } else {
        format!(" -- {}", r.args.join(" "))
    };
    let _ = writeln!(
        out,
        "| command | `cargo run --release -p wq-bench --bin bench{args}` |\n"
    );

    if !report.workloads.is_empty() {
        let _ = writeln!(out, "## Paired workloads\n");
        let _ = writeln!(
            out,
            "| workload | one repetition | wq | tokio | wq/tokio | ratio p25–p75 |"
        );
        let _ = writeln!(out, "| --- | --- | ---: | ---: | ---: | ---: |");
        for w in &report.workloads {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | **{}** | {}–{} |",
                w.name,
                w.unit,
                fmt_ns(w.wq_median_ns),
                fmt_ns(w.tokio_median_ns),
                fmt_ratio(w.ratio_median),
                fmt_ratio(w.ratio_p25),
                fmt_ratio(w.ratio_p75)
            );
        }
    }

    let seeds: Vec<_> = report
        .workloads
        .iter()
        .filter_map(|w| w.seed.as_ref())
        .collect();
    if !seeds.is_empty() {
        let _ = writeln!(out, "\n## Seed round trip throughput and spawn latency\n");
        let _ = writeln!(
            out,
            "Producers are threads outside the runtime; each spawns one task through a \
             handle and waits for it to run before the next. Latency is the spawn call \
             alone (per run over all items, median across runs).\n"
        );
        let _ = writeln!(
            out,
            "| producers | items per run | wq items/s | tokio items/s | wq spawn p50 / p95 | tokio spawn p50 / p95 |"
        );
        let _ = writeln!(out, "| ---: | ---: | ---: | ---: | ---: | ---: |");
        for s in seeds {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} / {} | {} / {} |",
                s.producers,
                grouped(s.items),
                fmt_rate(s.wq_items_per_s),
                fmt_rate(s.tokio_items_per_s),
                fmt_ns(s.wq_spawn_p50_ns),
                fmt_ns(s.wq_spawn_p95_ns),
                fmt_ns(s.tokio_spawn_p50_ns),
                fmt_ns(s.tokio_spawn_p95_ns)
            );
        }
    }

    let scopes: Vec<_> = report
        .workloads
        .iter()
        .filter_map(|w| w.scope.as_ref().map(|s| (w, s)))
        .collect();
    if let Some((_, first)) = scopes.first() {
        let _ = writeln!(out, "\n## Seed round trip by affinity scope\n");
        let _ = writeln!(
            out,
            "The seed round trip with {} producers, like the kernel's `test_workqueue`: \
             on wq each item is spawned through an unbound workqueue of the scope \
             (`Workqueue::builder(..).unbound(scope)`, `affinity_strict` only in the \
             `_strict` rows), which sends it to the pool of the pod of the CPU the \
             producer runs on. Note: {TOKIO_SCOPE_NOTE}. Items/s come from the median \
             makespan; spawn latency is the spawn call alone (per run over all items, \
             median across runs); wq/tokio is the median of the per-pair makespan \
             ratios. Pods are read from sysfs; wq pools are the unbound pools (and \
             their worker threads) wq had started by the end of its last sample.\n",
            first.seed.producers
        );
        if let Some(pods) = &report.scope_pods {
            let _ = writeln!(out, "{}\n", scope_topology_note(pods));
        }
        let _ = writeln!(
            out,
            "| workload | pods | wq pools / threads | wq items/s | tokio items/s | wq spawn p50 / p95 | tokio spawn p50 / p95 | wq/tokio |"
        );
        let _ = writeln!(
            out,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for (w, s) in scopes {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | {} / {} | {} / {} | **{}** |",
                w.name,
                fmt_opt_usize(s.pods),
                fmt_pools(s),
                fmt_rate(s.seed.wq_items_per_s),
                fmt_rate(s.seed.tokio_items_per_s),
                fmt_ns(s.seed.wq_spawn_p50_ns),
                fmt_ns(s.seed.wq_spawn_p95_ns),
                fmt_ns(s.seed.tokio_spawn_p50_ns),
                fmt_ns(s.seed.tokio_spawn_p95_ns),
                fmt_ratio(w.ratio_median)
            );
        }
    }

    for t in report.workloads.iter().filter_map(|w| w.timers.as_ref()) {
        let _ = writeln!(out, "\n## Timer create, register, cancel\n");
        let _ = writeln!(
            out,
            "One task creates {} sleep futures (boxed) with deadlines 1 to 1,000 s \
             ahead, polls each once so that its timer is registered, then drops them \
             all. Time per timer is the median run time divided by {}.\n",
            grouped(t.timers),
            grouped(t.timers)
        );
        let _ = writeln!(out, "| timers per run | wq per timer | tokio per timer |");
        let _ = writeln!(out, "| ---: | ---: | ---: |");
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            grouped(t.timers),
            fmt_ns(t.wq_ns_per_timer),
            fmt_ns(t.tokio_ns_per_timer)
        );
    }

    for s in report.workloads.iter().filter_map(|w| w.sleeps.as_ref()) {
        let _ = writeln!(out, "\n## Sleeping tasks: lateness and CPU time\n");
        let _ = writeln!(
            out,
            "{} tasks, spawned by one task, each sleep until a deadline spread \
             uniformly over 1–100 ms after a common start instant (the same sequence \
             on both runtimes). Lateness is the instant a task resumed minus its \
             deadline: percentiles per run over all tasks, median across runs. The \
             start instant is taken by the spawning task just before its first \
             spawn, so lateness also covers the spawn burst (the time to spawn all \
             the tasks). CPU time is the whole process's (getrusage, user + system), \
             including the other runtime of the pair, idle meanwhile, from before \
             the spawning task is spawned until the last task resumed, median per \
             run; the paired table's ratio for this workload is of CPU time.\n",
            grouped(s.tasks)
        );
        let _ = writeln!(
            out,
            "| | lateness p50 | lateness p99 | CPU time | makespan | spawn burst |"
        );
        let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: | ---: |");
        for (runtime, p50, p99, cpu, makespan, spawn) in [
            (
                "wq",
                s.wq_lateness_p50_ns,
                s.wq_lateness_p99_ns,
                s.wq_cpu_ns,
                s.wq_makespan_ns,
                s.wq_spawn_ns,
            ),
            (
                "tokio",
                s.tokio_lateness_p50_ns,
                s.tokio_lateness_p99_ns,
                s.tokio_cpu_ns,
                s.tokio_makespan_ns,
                s.tokio_spawn_ns,
            ),
        ] {
            let _ = writeln!(
                out,
                "| {runtime} | {} | {} | {} | {} | {} |",
                fmt_signed_ns(p50),
                fmt_signed_ns(p99),
                fmt_ns(cpu),
                fmt_ns(makespan),
                fmt_ns(spawn)
            );
        }
    }

    let storms: Vec<_> = report
        .workloads
        .iter()
        .filter_map(|w| w.storm.as_ref())
        .collect();
    if let Some(first) = storms.first() {
        let _ = writeln!(
            out,
            "\n## Blocking storm: timers while workers are blocked\n"
        );
        let _ = writeln!(
            out,
            "One task takes a start instant, then spawns B blockers, each of which \
             calls `std::thread::sleep({} ms)` with no annotation, then {} timer tasks, \
             each of which sleeps with the runtime's timer until a deadline spread \
             evenly over the first {} ms after the start, and records its lateness \
             (resume instant minus deadline). Blockers are spawned first so that they \
             hold workers before the timers are due (\"first blocker\" is when the \
             first one started). Makespan runs from the start instant until the last \
             task, blockers included, finished. Lateness percentiles are per run over \
             all timer tasks; every figure is the median across runs. The paired \
             table's ratio for these workloads is of lateness p99. Targets for wq: \
             lateness p99 at most {} and makespan at most {} x {} ms = {}, for every \
             B. \"wq blocked\" is how many polls wq's monitor found blocked per run, \
             \"wq threads\" how many worker threads wq created per run.\n",
            first.block_ms,
            grouped(first.timers),
            first.span_ms,
            fmt_ns(first.target_lateness_p99_ns),
            STORM_TARGET_MAKESPAN,
            first.block_ms,
            fmt_ns(first.target_makespan_ns)
        );
        let _ = writeln!(
            out,
            "| blockers | | lateness p50 | lateness p99 | makespan | first blocker | wq blocked | wq threads | wq targets |"
        );
        let _ = writeln!(
            out,
            "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
        );
        for s in storms {
            let _ = writeln!(
                out,
                "| {} | wq | {} | **{}** | {} | {} | {} | {} | {} |",
                s.blockers,
                fmt_signed_ns(s.wq_lateness_p50_ns),
                fmt_signed_ns(s.wq_lateness_p99_ns),
                fmt_ns(s.wq_makespan_ns),
                fmt_opt_ns(s.wq_first_blocker_ns),
                fmt_opt_count(s.wq_blocked_detections),
                fmt_opt_count(s.wq_threads_created),
                if s.wq_meets_targets {
                    "met"
                } else {
                    "**missed**"
                }
            );
            let _ = writeln!(
                out,
                "| {} | tokio | {} | **{}** | {} | {} | | | |",
                s.blockers,
                fmt_signed_ns(s.tokio_lateness_p50_ns),
                fmt_signed_ns(s.tokio_lateness_p99_ns),
                fmt_ns(s.tokio_makespan_ns),
                fmt_opt_ns(s.tokio_first_blocker_ns)
            );
        }
    }

    if let Some(h) = &report.hog {
        let _ = writeln!(out, "\n## Hog: a task that never yields\n");
        let _ = writeln!(
            out,
            "On {} workers, one task spins on a flag without ever yielding. Once it \
             runs, a task sleeps with the runtime's timer until each next multiple of \
             {} ms, for {} ms, and spawns a small task there, which counts itself if \
             it runs within that window; rates are per second of the window, \
             \"never ran\" counts small tasks (over all runs) still not run {} ms \
             after it. For wq, a side thread reads the hog detection count of the \
             runtime's metrics (`hog_detections()`) every {} ms; the detection time \
             runs from the hog's first poll until the count was seen to rise (so up to \
             about {} ms late), and \"CPU\" is the CPU time the hog's thread had used \
             in that poll when it saw the detection (the monitor judges a hog by CPU \
             time: its threshold is 10 ms by default). tokio has no such detection. Each run is on a fresh \
             runtime, shut down with a timeout before the hog is released; medians of \
             {} runs per runtime.\n",
            h.workers,
            h.spawn_every_ms,
            h.window_ms,
            h.grace_ms,
            h.detection_poll_ms,
            h.detection_poll_ms,
            h.pairs
        );
        let _ = writeln!(
            out,
            "| | completed/s | spawned/s | never ran | hog detected after |"
        );
        let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: |");
        let (wq_never, tokio_never) = h.never_ran();
        let _ = writeln!(
            out,
            "| wq | **{}** | {} | {} | {} |",
            fmt_per_s(h.wq_completed_per_s),
            fmt_per_s(h.wq_spawned_per_s),
            wq_never,
            hog_detection(h)
        );
        let _ = writeln!(
            out,
            "| tokio | **{}** | {} | {} | n/a (no monitor) |",
            fmt_per_s(h.tokio_completed_per_s),
            fmt_per_s(h.tokio_spawned_per_s),
            tokio_never
        );
    }

    if let Some(r) = &report.rescue {
        let _ = writeln!(
            out,
            "\n## Rescue: forward progress with every worker blocked\n"
        );
        let _ = writeln!(
            out,
            "On a fresh runtime with {w} workers and at most {w} worker threads (wq \
             built with `.workers({w}).max_workers({w})`, tokio with {w} worker \
             threads), {w} tasks block every worker on a std `Mutex` + `Condvar` \
             latch: on wq inside `wq::blocking`, as a wq user would write it; on \
             tokio as a plain blocking call (tokio has no forward-progress mechanism; \
             its `block_in_place` and `spawn_blocking` move work to other threads, \
             which is not the situation measured). Once the blockers have counted \
             themselves blocked, the runner lets the runtime settle for {settle} (so \
             that wq's mayday timer no longer counts a moment of starvation from \
             while the blockers were being picked up), then takes an instant and \
             spawns, from its own thread, the task that opens the latch: on wq through a workqueue built \
             with `.mem_reclaim()`, or through one built without it; on tokio through \
             `Handle::spawn`. Time to run is from that instant until the task runs \
             (its own `Instant::now()` at its first poll), median over the runs in \
             which it ran within {limit}; a run in which it had not is counted as \
             stalled, and the runner then opens the latch itself so that the blockers \
             return, the task runs and the runtime shuts down cleanly (with a \
             timeout). With `mem_reclaim` the expected figure is 10 ms to about 20 ms: \
             the pool sends mayday once it has starved for 10 ms, checked every 10 ms \
             by wq's monitor thread, and the queue's rescuer thread then polls the \
             task. Without `mem_reclaim` the queue has no rescuer, and the task waits \
             for a worker like tokio's. Mayday and rescued are the workqueue's \
             `stats()` once the blockers have returned, median per run (always 0 for a \
             queue without `mem_reclaim`). {runs} runs per variant, each on a fresh \
             runtime, the order of the variants rotated from run to run; not in \
             pairs, and not in the plot.\n",
            w = r.workers,
            limit = fmt_ns(r.limit_ms * 1e6),
            settle = fmt_ns(r.settle_ms * 1e6),
            runs = r.runs_per_variant
        );
        let _ = writeln!(
            out,
            "| | spawned through | time to run | stalled | mayday / rescued |"
        );
        let _ = writeln!(out, "| --- | --- | ---: | ---: | ---: |");
        for v in &r.variants {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                v.variant,
                v.spawned_through,
                v.time_to_run_ns
                    .map_or_else(|| "-".to_owned(), |ns| format!("**{}**", fmt_ns(ns))),
                v.stalled_of(),
                v.mayday_rescued()
            );
        }
    }

    if let Some(h) = &report.http {
        let _ = writeln!(out, "\n## HTTP: hello world under wrk\n");
        let _ = writeln!(
            out,
            "A hyper 1.x HTTP/1.1 server on loopback answers every request with a fixed \
             {}-byte body, the same handler on both runtimes, each with {} workers and in \
             the runner's process: on wq its `TcpListener`, each connection spawned with \
             `wq::spawn` and served by hyper with `WqTimer`; on tokio its `TcpListener`, \
             `tokio::spawn` and hyper-util's `TokioTimer`; `TCP_NODELAY` on every \
             connection. `{}` loads each server, started on a fresh runtime for the \
             round, once per round, {}, which runtime goes first alternating; figures are wrk's (latency from writing a request to \
             reading its response, one request at a time per connection), medians over \
             rounds. The ratios are the medians of the per-round ratios: for requests/s \
             **higher is better** (target >= {:.2}), for p99 lower is better (target <= \
             {:.2}). Errors are wrk's socket errors and non-2xx/3xx responses over all \
             runs. Not in the plot.\n",
            HTTP_BODY.len(),
            h.workers,
            h.client,
            fmt_rounds(h.rounds),
            HTTP_TARGET_REQUESTS_RATIO,
            HTTP_TARGET_P99_RATIO
        );
        let _ = writeln!(out, "| | requests/s | p50 | p99 | errors |");
        let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: |");
        let _ = writeln!(
            out,
            "| wq | **{}** | {} | **{}** | {} |",
            fmt_rate(h.wq_requests_per_s),
            fmt_ns(h.wq_p50_ns),
            fmt_ns(h.wq_p99_ns),
            h.wq_errors
        );
        let _ = writeln!(
            out,
            "| tokio | **{}** | {} | **{}** | {} |",
            fmt_rate(h.tokio_requests_per_s),
            fmt_ns(h.tokio_p50_ns),
            fmt_ns(h.tokio_p99_ns),
            h.tokio_errors
        );
        let _ = writeln!(out, "\n{}.", http_ratios(h, "**missed**"));
        if let Some(cpu) = http_cpu(h) {
            let _ = writeln!(
                out,
                "\n{cpu} (getrusage of the bench process, which runs no other server \
                 meanwhile, and of wrk)."
            );
        }
        if let Some(wakeups) = h.wq_monitor_wakeups_per_s {
            let _ = writeln!(
                out,
                "\nwq's monitor was on; its thread woke {wakeups:.0} times a second under this \
                 load (median over rounds): the workers, running short polls, took its ticks."
            );
        }
    }

    if let Some(h) = &report.http_blocking {
        let _ = writeln!(out, "\n## HTTP: 1 request in {} blocks\n", h.block_every);
        let _ = writeln!(
            out,
            "The same server, whose handler, on `{path}`, first blocks its worker in \
             `std::thread::sleep({block})` with no annotation (wq's monitor has to find it; \
             tokio has no such mechanism). wrk cannot tell requests apart, so the load comes \
             from the runner's own client: {threads} threads, each a current-thread tokio \
             runtime, with {connections} keep-alive connections in all, opened before the \
             clock starts. Each connection sends one request at a time for {secs} s; requests \
             are numbered across all connections as they are issued, and request n asks for \
             `{path}` if n % {every} == {last}, for `/` otherwise. Latency is from just \
             before a request is written until its whole response (head and Content-Length \
             bytes of body) has been read; p50 and p99 are over the requests for `/` only, \
             per run, and \"/block p50\" over the blocking ones. Requests/s counts the \
             responses of both kinds received within the {secs} s. \"Blocked/run\" is what \
             the handler counted, \"wq blocked\" the polls wq's monitor found blocked, per \
             run. {rounds}, which runtime goes first alternating; medians over rounds. \
             The ratios are medians of the per-round ratios: for requests/s **higher is \
             better**, for p99 lower is better. Not in the plot.\n",
            path = h.block_path,
            block = fmt_ns(h.block_ms * 1e6),
            threads = h.client_threads,
            connections = h.connections,
            secs = h.secs,
            every = h.block_every,
            last = h.block_every - 1,
            rounds = fmt_rounds(h.rounds)
        );
        let _ = writeln!(
            out,
            "| | requests/s | p50 | p99 | /block p50 | blocked/run | wq blocked |"
        );
        let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        let _ = writeln!(
            out,
            "| wq | {} | {} | **{}** | {} | {} | {} |",
            fmt_rate(h.wq_requests_per_s),
            fmt_ns(h.wq_p50_ns),
            fmt_ns(h.wq_p99_ns),
            fmt_opt_ns(h.wq_block_p50_ns),
            h.wq_blocked_per_run,
            fmt_opt_count(h.wq_monitor_blocked)
        );
        let _ = writeln!(
            out,
            "| tokio | {} | {} | **{}** | {} | {} | n/a (no monitor) |",
            fmt_rate(h.tokio_requests_per_s),
            fmt_ns(h.tokio_p50_ns),
            fmt_ns(h.tokio_p99_ns),
            fmt_opt_ns(h.tokio_block_p50_ns),
            h.tokio_blocked_per_run
        );
        let _ = writeln!(out, "\n{}.", http_blocking_ratios(h));
    }

    if let Some(r) = &report.redis {
        crate::redis::markdown(r, &mut out);
    }

    if let Some(i) = &report.idle {
        let _ = writeln!(out, "\n## Idle cost\n");
        let _ = writeln!(
            out,
            "Each runtime in turn is built, runs one empty task, settles for 100 ms, \
             and is then left with no tasks while the main thread sleeps {} s; the \
             figure is the process CPU time (user + system) used meanwhile. Measured \
             once per runtime, not in pairs. Note: {CPU_SCOPE_NOTE}; {}.\n",
            i.idle_secs,
            idle_monitor_note(i)
        );
        let _ = writeln!(out, "| idle for | wq CPU | tokio CPU | wq/tokio |");
        let _ = writeln!(out, "| ---: | ---: | ---: | ---: |");
        let _ = writeln!(
            out,
            "| {} s | {} | {} | **{}** |",
            i.idle_secs,
            fmt_cpu(i.wq_cpu_ns),
            fmt_cpu(i.tokio_cpu_ns),
            fmt_opt_ratio(i.ratio)
        );
    }

    if let Some(mem) = &report.memory {
        let _ = writeln!(out, "\n## Memory per pending task\n");
        let _ = writeln!(
            out,
            "On a fresh runtime, {} tasks are spawned that each await \
             `std::future::pending()`; the figure is the growth of the resident set \
             (`/proc/self/statm`) once all of them have been polled, after the \
             allocator's cached free memory was handed back before the first reading. \
             Measured once per runtime, not in pairs.\n",
            grouped(mem.tasks)
        );
        let _ = writeln!(
            out,
            "| pending tasks | wq RSS growth | tokio RSS growth | wq per task | tokio per task | wq/tokio |"
        );
        let _ = writeln!(out, "| ---: | ---: | ---: | ---: | ---: | ---: |");
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} B | {:.0} B | **{}** |",
            grouped(mem.tasks),
            fmt_bytes(mem.wq_rss_growth_bytes as f64),
            fmt_bytes(mem.tokio_rss_growth_bytes as f64),
            mem.wq_bytes_per_task,
            mem.tokio_bytes_per_task,
            fmt_opt_ratio(mem.ratio)
        );
    }

    if !report.monitor_cost.is_empty() {
        let _ = writeln!(
            out,
            "\n## Monitor on/off, target <= {MONITOR_COST_TARGET:.2}\n"
        );
        let _ = writeln!(
            out,
            "What wq's monitor of stuck polls costs: the scheduler workloads on wq as \
             built by default (monitor on) against wq built with `.monitor(false)`, \
             the same worker count, in alternating pairs as above. The ratio is the \
             median of the per-pair on/off ratios of wall time; above 1.00 is the \
             monitor's cost. Not in the plot, which shows wq/tokio ratios.\n"
        );
        let _ = writeln!(
            out,
            "| workload | one repetition | on | off | on/off | ratio p25–p75 | within target |"
        );
        let _ = writeln!(out, "| --- | --- | ---: | ---: | ---: | ---: | --- |");
        for c in &report.monitor_cost {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | **{}** | {}–{} | {} |",
                c.name,
                c.unit,
                fmt_ns(c.on_median_ns),
                fmt_ns(c.off_median_ns),
                fmt_ratio(c.ratio_median),
                fmt_ratio(c.ratio_p25),
                fmt_ratio(c.ratio_p75),
                if c.ratio_median <= c.target {
                    "yes"
                } else {
                    "no"
                }
            );
        }
    }
    let _ = writeln!(out, "\n![wq/tokio ratios]({plot_path})");
    out
}

/// Where the plot's axis stops, so that one extreme ratio cannot flatten
/// every other bar.
pub const SVG_AXIS_LIMIT: f64 = 3.0;

/// One bar of the plot.
struct Bar<'a> {
    name: &'a str,
    median: f64,
    p25: f64,
    p75: f64,
}

impl Report {
    /// The plot's bars: every paired workload, then idle cost and memory
    /// (single measurements, so without a spread) when they have a ratio.
    fn bars(&self) -> Vec<Bar<'_>> {
        let mut bars: Vec<Bar<'_>> = self
            .workloads
            .iter()
            .map(|w| Bar {
                name: &w.name,
                median: w.ratio_median,
                p25: w.ratio_p25,
                p75: w.ratio_p75,
            })
            .collect();
        let once = [
            self.idle.as_ref().map(|i| (&i.name, i.ratio)),
            self.memory.as_ref().map(|m| (&m.name, m.ratio)),
        ];
        for (name, ratio) in once.into_iter().flatten() {
            if let Some(ratio) = ratio {
                bars.push(Bar {
                    name,
                    median: ratio,
                    p25: ratio,
                    p75: ratio,
                });
            }
        }
        bars
    }
}

/// A horizontal bar chart of the ratios: one bar per workload from 0 to its
/// median ratio, a whisker over the 25th-75th percentile of the pairs, and a
/// dashed vertical line at 1.0. The axis stops at [`SVG_AXIS_LIMIT`]; a bar
/// reaching past it ends in an arrowhead, and every median is also printed.
pub fn svg(report: &Report) -> String {
    const WIDTH: f64 = 760.0;
    const MARGIN: f64 = 12.0;
    const LABEL_W: f64 = 190.0;
    const VALUE_W: f64 = 56.0;
    const TOP: f64 = 76.0;
    const ROW: f64 = 26.0;
    const BAR: f64 = 16.0;
    const AXIS_H: f64 = 40.0;

    let bars = report.bars();
    let rows = bars.len() as f64;
    let bottom = TOP + ROW * rows;
    let height = bottom + AXIS_H;
    let widest = bars
        .iter()
        .map(|b| b.p75.max(b.median))
        .fold(1.0_f64, f64::max);
    // Axis from 0 to a multiple of 0.25 past the widest value, at least 1.5.
    let steps = ((widest * 1.05) / 0.25)
        .ceil()
        .clamp(6.0, SVG_AXIS_LIMIT / 0.25);
    let max = steps * 0.25;
    let plot_left = LABEL_W;
    let plot_w = WIDTH - MARGIN - VALUE_W - plot_left;
    let x = |ratio: f64| plot_left + ratio.clamp(0.0, max) / max * plot_w;

    let machine = &report.machine;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        out,
        r##"<rect width="100%" height="100%" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        out,
        r#"<text x="{MARGIN}" y="22" font-size="15" font-weight="bold">wq / tokio ratio, median of pairs (below 1.0: wq better)</text>"#
    );
    let _ = writeln!(
        out,
        r##"<text x="{MARGIN}" y="40" fill="#555555">{}</text>"##,
        escape(&machine.summary())
    );
    let _ = writeln!(
        out,
        r##"<text x="{MARGIN}" y="56" fill="#555555">{}; {} workers; whiskers: 25th-75th percentile of the pairs; wall time unless noted in BENCHMARKS.md</text>"##,
        escape(&machine.date),
        report.run.workers
    );

    // Grid and axis labels every 0.25.
    for step in 0..=steps as usize {
        let value = step as f64 * 0.25;
        let gx = x(value);
        let _ = writeln!(
            out,
            r##"<line x1="{gx:.1}" y1="{TOP}" x2="{gx:.1}" y2="{bottom}" stroke="#e4e4e4"/>"##
        );
        let _ = writeln!(
            out,
            r##"<text x="{gx:.1}" y="{:.1}" text-anchor="middle" fill="#555555">{value:.2}</text>"##,
            bottom + 16.0
        );
    }
    let _ = writeln!(
        out,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#555555">wq / tokio</text>"##,
        plot_left + plot_w / 2.0,
        bottom + 34.0
    );

    for (i, w) in bars.iter().enumerate() {
        let top = TOP + ROW * i as f64 + (ROW - BAR) / 2.0;
        let mid = top + BAR / 2.0;
        let fill = if w.median <= 1.0 {
            "#3a8f5c"
        } else {
            "#c9683a"
        };
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            plot_left - 8.0,
            mid + 4.0,
            escape(w.name)
        );
        let _ = writeln!(
            out,
            r#"<rect x="{plot_left}" y="{top:.1}" width="{:.1}" height="{BAR}" fill="{fill}"/>"#,
            x(w.median) - plot_left
        );
        let _ = writeln!(
            out,
            r##"<line x1="{:.1}" y1="{mid:.1}" x2="{:.1}" y2="{mid:.1}" stroke="#222222" stroke-width="1.5"/>"##,
            x(w.p25),
            x(w.p75)
        );
        if w.median > max {
            let tip = x(max);
            let _ = writeln!(
                out,
                r#"<path d="M {:.1} {:.1} L {:.1} {mid:.1} L {:.1} {:.1} Z" fill="{fill}"/>"#,
                tip,
                top - 3.0,
                tip + 9.0,
                tip,
                top + BAR + 3.0
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" font-weight="bold">{}</text>"#,
            WIDTH - MARGIN,
            mid + 4.0,
            fmt_ratio(w.median)
        );
    }

    let one = x(1.0);
    let _ = writeln!(
        out,
        r##"<line x1="{one:.1}" y1="{:.1}" x2="{one:.1}" y2="{bottom}" stroke="#000000" stroke-width="1.5" stroke-dasharray="4 3"/>"##,
        TOP - 4.0
    );
    out.push_str("</svg>\n");
    out
}

/// Escapes text for inclusion in XML.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_durations_and_rates() {
        assert_eq!(fmt_ns(12.0), "12.0 ns");
        assert_eq!(fmt_ns(1_234.0), "1.23 µs");
        assert_eq!(fmt_ns(45_600_000.0), "45.6 ms");
        assert_eq!(fmt_ns(2.5e9), "2.50 s");
        assert_eq!(fmt_rate(123_456.0), "123 k/s");
        assert_eq!(fmt_rate(2_000_000.0), "2.00 M/s");
        assert_eq!(fmt_ratio(0.876), "0.88");
        assert_eq!(fmt_ratio(782.14), "782");
    }

    #[test]
    fn formats_signed_figures() {
        assert_eq!(fmt_signed_ns(-1_500.0), "-1.50 µs");
        assert_eq!(fmt_bytes(512.0), "512 B");
        assert_eq!(fmt_bytes(-2_048.0), "-2.00 KiB");
        assert_eq!(fmt_bytes(30.4 * 1024.0 * 1024.0), "30.4 MiB");
        assert_eq!(fmt_opt_ratio(None), "n/a");
        assert_eq!(fmt_opt_ratio(Some(0.5)), "0.50");
    }

    #[test]
    fn reports_timer_idle_and_memory_figures() {
        use std::time::Duration;

        use crate::footprint::{IdleCost, PendingMemory};
        use crate::workloads::SleepRun;

        let ms = Duration::from_millis;
        let sample = |elapsed: Duration, sleeps: Option<SleepRun>| Sample {
            elapsed,
            reps: 1,
            spawn_latency: None,
            pools: None,
            sleeps,
            storm: None,
        };
        let run = |cpu: u64, p50: f64, p99: f64| SleepRun {
            cpu: ms(cpu),
            spawn: ms(10),
            lateness_p50_ns: p50,
            lateness_p99_ns: p99,
        };
        let timers = Comparison {
            workload: Workload::TimersCreateCancel { timers: 1_000_000 },
            reps: 1,
            wq: vec![sample(ms(100), None); 2],
            tokio: vec![sample(ms(200), None); 2],
        };
        let sleeps = Comparison {
            workload: Workload::Sleeps { tasks: 100_000 },
            reps: 1,
            wq: vec![sample(ms(120), Some(run(60, 1e6, 2e6))); 3],
            tokio: vec![sample(ms(110), Some(run(30, 3e6, 4e6))); 3],
        };
        let config = Config {
            workers: 2,
            samples: 16,
            seed_samples: 10,
            timer_samples: 10,
            idle: Duration::from_secs(10),
            http_secs: Duration::from_secs(10),
            http_rounds: 3,
            http_client_threads: 2,
            warmup: Duration::from_secs(1),
            sample_time: ms(200),
        };
        let report = Report {
            machine: Machine::detect(),
            run: RunInfo::new(&config, Vec::new()),
            workloads: vec![WorkloadReport::new(&timers), WorkloadReport::new(&sleeps)],
            idle: Some(IdleReport::new(
                "idle_cost".into(),
                &IdleCost {
                    idle: Duration::from_secs(10),
                    wq_cpu: ms(5),
                    tokio_cpu: Duration::ZERO,
                    wq_monitor: Some(crate::rt::MonitorCounts {
                        wakeups: 3,
                        ..Default::default()
                    }),
                },
            )),
            memory: Some(MemoryReport::new(
                "memory_100k_pending".into(),
                &PendingMemory {
                    tasks: 100_000,
                    wq_growth: 20_000_000,
                    tokio_growth: 40_000_000,
                },
            )),
            hog: None,
            rescue: None,
            http: None,
            http_blocking: None,
            redis: None,
            monitor_cost: Vec::new(),
            scope_pods: None,
        };

        let sleeps = &report.workloads[1];
        assert_eq!(sleeps.measure, "CPU time");
        assert_eq!(sleeps.ratio_median, 2.0, "sleeps are compared on CPU time");
        assert_eq!(report.workloads[0].ratio_median, 0.5);
        let memory = report.memory.as_ref().unwrap();
        assert_eq!(memory.wq_bytes_per_task, 200.0);
        assert_eq!(memory.ratio, Some(0.5));

        let md = markdown(&report, "plot.svg");
        assert!(md.contains("| 1,000,000 | 100 ns | 200 ns |"), "{md}");
        assert!(md.contains("| wq | 1.00 ms | 2.00 ms | 60.0 ms | 120 ms | 10.0 ms |"));
        assert!(md.contains("| 10 s | 5.00 ms | 0 µs | **n/a** |"), "{md}");
        assert!(md.contains("| 200 B | 400 B | **0.50** |"), "{md}");
        assert!(md.contains("getrusage counts the whole process"));
        assert!(md.contains("wq's monitor is on; it woke 3 times while idle"));

        let plot = svg(&report);
        assert!(plot.contains(">memory_100k_pending<"));
        assert!(!plot.contains(">idle_cost<"), "no bar without a ratio");

        let json = serde_json::to_string(&report).unwrap();
        assert!(json.contains(r#""ratio":null"#));
        assert!(json.contains(r#""wq_lateness_p99_ns":2000000.0"#));
        assert!(text(&report).contains("n/a"));
    }

    #[test]
    fn reports_blocking_and_monitor_cost_figures() {
        use std::time::Duration;

        use crate::blocking::{HogComparison, HogRun, StormRun};
        use crate::harness::MonitorCost;
        use crate::rt::MonitorCounts;

        let ms = Duration::from_millis;
        let storm_sample = |makespan: u64, p99_ms: f64, first: u64, blocked: Option<u64>| {
            let run = StormRun {
                makespan: ms(makespan),
                lateness_p50_ns: 0.5e6,
                lateness_p99_ns: p99_ms * 1e6,
                first_blocker: Some(ms(first)),
                monitor: blocked.map(|blocked| MonitorCounts {
                    blocked,
                    threads_created: 1,
                    ..Default::default()
                }),
            };
            Sample {
                elapsed: run.makespan,
                reps: 1,
                spawn_latency: None,
                pools: None,
                sleeps: None,
                storm: Some(run),
            }
        };
        let storm = Comparison {
            workload: Workload::BlockingStorm { blockers: 4 },
            reps: 1,
            wq: vec![storm_sample(205, 2.0, 1, Some(4)); 3],
            tokio: vec![storm_sample(401, 200.0, 1, None); 3],
        };
        let wq_late = Comparison {
            workload: Workload::BlockingStorm { blockers: 2 },
            reps: 1,
            wq: vec![storm_sample(205, 8.0, 1, Some(2)); 2],
            tokio: vec![storm_sample(201, 200.0, 1, None); 2],
        };
        let hog_run = |completed: usize, detection: Option<u64>| HogRun {
            spawned: 1_000,
            completed,
            never_ran: 1_000 - completed,
            detection: detection.map(ms),
            detection_cpu: detection.map(|_| ms(10)),
        };
        let hog = HogComparison {
            workers: 2,
            wq: vec![hog_run(1_000, Some(11)), hog_run(998, Some(13))],
            tokio: vec![hog_run(990, None), hog_run(996, None)],
        };
        let wall = |elapsed: Duration| Sample {
            elapsed,
            reps: 10,
            spawn_latency: None,
            pools: None,
            sleeps: None,
            storm: None,
        };
        let cost = MonitorCost {
            workload: Workload::YieldMany,
            reps: 10,
            on: vec![wall(ms(102)); 4],
            off: vec![wall(ms(100)); 4],
        };
        let config = Config {
            workers: 2,
            samples: 4,
            seed_samples: 2,
            timer_samples: 3,
            idle: Duration::from_secs(2),
            http_secs: Duration::from_secs(10),
            http_rounds: 3,
            http_client_threads: 2,
            warmup: ms(50),
            sample_time: ms(20),
        };
        let report = Report {
            machine: Machine::detect(),
            run: RunInfo::new(&config, Vec::new()),
            workloads: vec![WorkloadReport::new(&storm), WorkloadReport::new(&wq_late)],
            idle: None,
            memory: None,
            hog: Some(HogReport::new("hog".into(), &hog)),
            rescue: None,
            http: None,
            http_blocking: None,
            redis: None,
            monitor_cost: vec![MonitorCostReport::new(&cost)],
            scope_pods: None,
        };

        let w = &report.workloads[0];
        assert_eq!(w.measure, "p99 lateness");
        assert_eq!(w.ratio_median, 0.01, "compared on lateness p99");
        let s = w.storm.as_ref().unwrap();
        assert_eq!(s.wq_makespan_ns, 205e6);
        assert_eq!(s.wq_blocked_detections, Some(4.0));
        assert_eq!(s.tokio_first_blocker_ns, Some(1e6));
        assert!(s.wq_meets_targets);
        assert!(!report.workloads[1].storm.as_ref().unwrap().wq_meets_targets);
        let h = report.hog.as_ref().unwrap();
        assert_eq!(h.wq_completed_per_s, 999.0);
        assert_eq!(h.wq_detection_ns, Some(12e6));
        assert_eq!((h.wq_detected_runs, h.tokio_detection_ns), (2, None));
        assert_eq!(h.never_ran(), (2, 14));
        let c = &report.monitor_cost[0];
        assert_eq!(c.name, "monitor_cost/yield_many");
        assert!((c.ratio_median - 1.02).abs() < 1e-9);

        let md = markdown(&report, "plot.svg");
        assert!(
            md.contains("| 4 | wq | 500 µs | **2.00 ms** | 205 ms | 1.00 ms | 4 | 1 | met |"),
            "{md}"
        );
        assert!(md.contains("| 4 | tokio | 500 µs | **200 ms** | 401 ms | 1.00 ms | | | |"));
        assert!(md.contains("| **missed** |"), "{md}");
        assert!(
            md.contains("| wq | **999.0 /s** | 1000.0 /s | 2 | 12.0 ms (CPU 10.0 ms; 2/2 runs) |"),
            "{md}"
        );
        assert!(md.contains("| tokio | **993.0 /s** | 1000.0 /s | 14 | n/a (no monitor) |"));
        assert!(md.contains("## Monitor on/off, target <= 1.03"));
        assert!(md.contains("| `monitor_cost/yield_many` | 200 tasks x 1,000 yields | 10.2 ms | 10.0 ms | **1.02** |"), "{md}");

        let text = text(&report);
        assert!(text.contains("monitor on/off, target <= 1.03"), "{text}");
        assert!(text.contains("MISSED"), "{text}");
        let plot = svg(&report);
        assert!(plot.contains(">blocking_storm_b4<"));
        assert!(
            !plot.contains("monitor_cost"),
            "the plot shows wq/tokio ratios only"
        );

        let json = serde_json::to_string(&report).unwrap();
        assert!(json.contains(r#""wq_detected_runs":2"#), "{json}");
        assert!(json.contains(r#""on_median_ns":10200000.0"#), "{json}");
    }

    #[test]
    fn reports_rescue_figures() {
        use std::time::Duration;

        use crate::rescue::{RescueComparison, RescueRun};

        let wq_run = |ms: Option<u64>, mayday: u64, rescued: u64| RescueRun {
            time_to_run: ms.map(Duration::from_millis),
            mayday: Some(mayday),
            rescued: Some(rescued),
        };
        let stalled = RescueRun {
            time_to_run: None,
            mayday: None,
            rescued: None,
        };
        let rescue = RescueComparison {
            wq_mem_reclaim: vec![
                wq_run(Some(12), 1, 1),
                wq_run(Some(18), 1, 1),
                wq_run(None, 3, 0),
            ],
            wq_plain: vec![wq_run(None, 0, 0); 3],
            tokio: vec![stalled; 3],
        };
        let config = Config {
            workers: 2,
            samples: 4,
            seed_samples: 2,
            timer_samples: 3,
            idle: Duration::from_secs(2),
            http_secs: Duration::from_secs(10),
            http_rounds: 3,
            http_client_threads: 2,
            warmup: Duration::from_millis(50),
            sample_time: Duration::from_millis(20),
        };
        let report = Report {
            machine: Machine::detect(),
            run: RunInfo::new(&config, Vec::new()),
            workloads: Vec::new(),
            idle: None,
            memory: None,
            hog: None,
            rescue: Some(RescueReport::new("rescue".into(), &rescue)),
            http: None,
            http_blocking: None,
            redis: None,
            monitor_cost: Vec::new(),
            scope_pods: None,
        };

        let r = report.rescue.as_ref().unwrap();
        assert_eq!((r.workers, r.runs_per_variant, r.limit_ms), (2, 3, 2000.0));
        let reclaim = &r.variants[0];
        assert_eq!(reclaim.variant, "wq mem_reclaim");
        assert_eq!(
            reclaim.time_to_run_ns,
            Some(15e6),
            "median of the runs that ran"
        );
        assert_eq!((reclaim.ran, reclaim.stalled), (2, 1));
        assert_eq!((reclaim.mayday, reclaim.rescued), (Some(1.0), Some(1.0)));
        let tokio = &r.variants[2];
        assert_eq!((tokio.time_to_run_ns, tokio.stalled), (None, 3));
        assert_eq!((tokio.mayday, tokio.rescued), (None, None));

        let md = markdown(&report, "plot.svg");
        assert!(md.contains("## Rescue: forward progress"), "{md}");
        assert!(
            md.contains("| wq mem_reclaim | `Workqueue::spawn`, queue built with `.mem_reclaim()` | **15.0 ms** | 1/3 | 1 / 1 |"),
            "{md}"
        );
        assert!(md.contains("| wq without mem_reclaim | `Workqueue::spawn`, queue built without it | - | 3/3 | 0 / 0 |"), "{md}");
        assert!(
            md.contains("| tokio | `Handle::spawn` | - | 3/3 | n/a |"),
            "{md}"
        );
        assert!(md.contains("within 2.00 s"), "{md}");
        assert!(md.contains("settle for 50.0 ms"), "{md}");

        let text = text(&report);
        assert!(
            text.contains("wq mem_reclaim               15.0 ms      1/3  1 / 1"),
            "{text}"
        );
        assert_eq!(
            rescue_line(r),
            "time to run: wq mem_reclaim 15.0 ms (stalled 1/3; mayday / rescued 1 / 1), \
             wq without mem_reclaim - (stalled 3/3; mayday / rescued 0 / 0), tokio - (stalled 3/3)"
        );
        let plot = svg(&report);
        assert!(!plot.contains("rescue"), "no ratio, no bar");

        let json = serde_json::to_string(&report).unwrap();
        assert!(json.contains(r#""variant":"wq mem_reclaim""#), "{json}");
        assert!(json.contains(r#""time_to_run_ns":15000000.0"#), "{json}");
        assert!(json.contains(r#""mayday":3"#), "{json}");
    }

    #[test]
    fn reports_http_figures() {
        use std::time::Duration;

        use crate::http::ServerCounts;
        use crate::rt::MonitorCounts;
        use crate::sys::CpuTimes;

        let ms = Duration::from_millis;
        let wrk = |per_s: f64, p99: u64, socket_errors: u64| Run {
            load: WrkRun {
                requests_per_s: per_s,
                requests: (per_s * 10.0) as u64,
                p50: ms(1),
                p75: ms(2),
                p90: ms(3),
                p99: ms(p99),
                socket_errors,
                non_2xx: 0,
                cpu: Some(RunCpu {
                    server: CpuTimes {
                        user: ms(per_s as u64),
                        system: ms(2 * per_s as u64),
                    },
                    client: CpuTimes {
                        user: ms(10),
                        system: ms(30),
                    },
                }),
            },
            server: ServerCounts::default(),
        };
        let hello = HttpComparison {
            workers: 2,
            client_threads: 2,
            secs: Duration::from_secs(10),
            // Per-round ratios: requests/s 1.2, 0.9, 1.1; p99 0.5, 2.0, 0.8.
            wq: vec![wrk(120.0, 4, 0), wrk(90.0, 8, 1), wrk(110.0, 4, 0)],
            tokio: vec![wrk(100.0, 8, 0), wrk(100.0, 4, 0), wrk(100.0, 5, 0)],
        };
        let load = |per_s: u64, p99: u64, block: Option<u64>, monitor: Option<u64>| Run {
            load: LoadRun {
                window: Duration::from_secs(10),
                completed_in_window: per_s * 10,
                fast_requests: 990,
                fast_p50: ms(1),
                fast_p99: ms(p99),
                block_requests: 10,
                block_p50: block.map(ms),
            },
            server: ServerCounts {
                requests: 1000,
                blocked: 10,
                monitor: monitor.map(|blocked| MonitorCounts {
                    blocked,
                    ..Default::default()
                }),
            },
        };
        let blocking = HttpComparison {
            workers: 2,
            client_threads: 2,
            secs: Duration::from_secs(10),
            wq: vec![load(1000, 2, Some(51), Some(10)); 3],
            tokio: vec![load(100, 50, Some(52), None); 3],
        };
        let config = Config {
            workers: 2,
            samples: 4,
            seed_samples: 2,
            timer_samples: 3,
            idle: Duration::from_secs(2),
            http_secs: Duration::from_secs(10),
            http_rounds: 3,
            http_client_threads: 2,
            warmup: Duration::from_millis(50),
            sample_time: Duration::from_millis(20),
        };
        let report = Report {
            machine: Machine::detect(),
            run: RunInfo::new(&config, Vec::new()),
            workloads: Vec::new(),
            idle: None,
            memory: None,
            hog: None,
            rescue: None,
            http: Some(HttpReport::new("http_hello".into(), &hello)),
            http_blocking: Some(HttpBlockingReport::new(
                "http_hello_blocking".into(),
                &blocking,
            )),
            redis: None,
            monitor_cost: Vec::new(),
            scope_pods: None,
        };

        let h = report.http.as_ref().unwrap();
        assert_eq!(h.client, "wrk -t2 -c64 -d10s --latency");
        assert_eq!((h.rounds, h.wq_errors, h.tokio_errors), (3, 1, 0));
        assert_eq!(
            (h.wq_requests_per_s, h.tokio_requests_per_s),
            (110.0, 100.0)
        );
        assert_eq!((h.wq_p99_ns, h.tokio_p99_ns), (4e6, 5e6));
        let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-9);
        assert!(close(h.requests_ratio, 1.1), "{:?}", h.requests_ratio);
        assert!(close(h.p99_ratio, 0.8), "{:?}", h.p99_ratio);
        assert!(h.requests_target_met && h.p99_target_met);
        // Server CPU is per_s ms user and 2 x per_s ms system for per_s x 10
        // responses: 100 and 200 us each; wrk's 40 ms over 1,200, 900 and
        // 1,100 responses on wq (median 36.36 us), 1,000 on tokio.
        let (wq, tokio) = (
            h.wq_cpu_per_request.unwrap(),
            h.tokio_cpu_per_request.unwrap(),
        );
        assert!(close(Some(wq.server_user_ns), 100e3), "{wq:?}");
        assert!(close(Some(wq.server_system_ns), 200e3), "{wq:?}");
        assert!(close(Some(wq.client_ns), 40e6 / 1100.0), "{wq:?}");
        assert!(close(Some(tokio.client_ns), 40e3), "{tokio:?}");
        let b = report.http_blocking.as_ref().unwrap();
        assert_eq!(
            (b.wq_requests_per_s, b.tokio_requests_per_s),
            (1000.0, 100.0)
        );
        assert_eq!((b.wq_p99_ns, b.tokio_p99_ns), (2e6, 50e6));
        assert_eq!(
            (b.wq_block_p50_ns, b.wq_monitor_blocked),
            (Some(51e6), Some(10.0))
        );
        assert_eq!(b.p99_ratio, Some(0.04));

        let text = text(&report);
        assert!(
            text.contains(
                "requests/s wq/tokio 1.10, per-round p25-p75 1.00-1.15 (higher is better; \
                 target >= 1.00: met), p99 wq/tokio 0.80 (lower is better; target <= 1.00: met)"
            ),
            "{text}"
        );
        assert!(text.contains("3 rounds"), "{text}");
        assert!(
            text.contains(
                "CPU per response, medians over rounds: server (this process) wq 100.00 us \
                 user + 200.00 us system, tokio 100.00 us user + 200.00 us system; wrk 36.36 us \
                 on wq, 40.00 us on tokio"
            ),
            "{text}"
        );
        assert!(
            text.contains("p99 of the non-blocking requests wq/tokio 0.04 (lower is better)"),
            "{text}"
        );
        assert_eq!(
            http_line(h),
            "requests/s wq 110 /s, tokio 100 /s; p99 wq 4.00 ms, tokio 5.00 ms; requests/s \
             wq/tokio 1.10, per-round p25-p75 1.00-1.15 (higher is better; target >= 1.00: \
             met), p99 wq/tokio 0.80 (lower is better; target <= 1.00: met)"
        );
        let md = markdown(&report, "plot.svg");
        assert!(md.contains("## HTTP: hello world under wrk"), "{md}");
        assert!(
            md.contains("| wq | **110 /s** | 1.00 ms | **4.00 ms** | 1 |"),
            "{md}"
        );
        assert!(md.contains("## HTTP: 1 request in 100 blocks"), "{md}");
        assert!(
            md.contains(
                "| tokio | 100 /s | 1.00 ms | **50.0 ms** | 52.0 ms | 10 | n/a (no monitor) |"
            ),
            "{md}"
        );
        let plot = svg(&report);
        assert!(!plot.contains(">http_hello"), "no bar: not in the plot");
        let json = serde_json::to_string(&report).unwrap();
        assert!(json.contains(r#""http_rounds":3"#), "{json}");
        assert!(json.contains(r#""requests_target_met":true"#), "{json}");
        assert!(json.contains(r#""monitor_blocked":10"#), "{json}");
    }

    #[test]
    fn reports_scope_figures() {
        use std::time::Duration;

        use crate::rt::UnboundPools;
        use crate::workloads::SpawnLatency;

        let us = Duration::from_micros;
        let sample = |elapsed: Duration, p50: u64, pools: Option<UnboundPools>| Sample {
            elapsed,
            reps: 1,
            spawn_latency: Some(SpawnLatency {
                p50: us(p50),
                p95: us(2 * p50),
            }),
            pools,
            sleeps: None,
            storm: None,
        };
        let pools = UnboundPools {
            pools: 2,
            threads: 5,
        };
        let comparison = Comparison {
            workload: Workload::SeedScope {
                scope: wq::Scope::Cpu,
                strict: true,
                producers: 2,
                items: 50_000,
            },
            reps: 1,
            wq: vec![sample(Duration::from_secs(2), 4, Some(pools)); 2],
            tokio: vec![sample(Duration::from_secs(1), 2, None); 2],
        };
        let config = Config {
            workers: 2,
            samples: 4,
            seed_samples: 2,
            timer_samples: 2,
            idle: Duration::from_secs(2),
            http_secs: Duration::from_secs(10),
            http_rounds: 3,
            http_client_threads: 2,
            warmup: Duration::from_millis(50),
            sample_time: Duration::from_millis(20),
        };
        let pods = PodCounts {
            cpu: Some(2),
            smt: Some(2),
            cache_shard: Some(1),
            cache: Some(1),
            numa: Some(1),
            system: Some(1),
        };
        let report = Report {
            machine: Machine::detect(),
            run: RunInfo::new(&config, Vec::new()),
            workloads: vec![WorkloadReport::new(&comparison)],
            idle: None,
            memory: None,
            hog: None,
            rescue: None,
            http: None,
            http_blocking: None,
            redis: None,
            monitor_cost: Vec::new(),
            scope_pods: Some(pods),
        };

        let w = &report.workloads[0];
        assert_eq!(w.name, "seed_scope_cpu_strict");
        assert!(w.seed.is_none(), "not in the producers table");
        let s = w.scope.as_ref().unwrap();
        assert_eq!((s.scope.as_str(), s.strict), ("cpu", true));
        assert_eq!((s.wq_pools, s.wq_pool_threads), (Some(2), Some(5)));
        assert_eq!(s.seed.wq_items_per_s, 50_000.0);
        assert_eq!(s.seed.tokio_items_per_s, 100_000.0);
        assert_eq!(w.ratio_median, 2.0);

        let note = "topology: 2 CPUs, no SMT, 1 last-level cache, 1 NUMA node, so the cpu \
                    and smt scopes give 2 pods; the cache_shard, cache, numa and system \
                    scopes give 1 pod.";
        let md = markdown(&report, "plot.svg");
        assert!(md.contains("## Seed round trip by affinity scope"), "{md}");
        assert!(md.contains(note), "{md}");
        assert!(
            md.contains("| `seed_scope_cpu_strict` | 2 | 2 / 5 | 50.0 k/s | 100 k/s | 4.00 µs / 8.00 µs | 2.00 µs / 4.00 µs | **2.00** |"),
            "{md}"
        );
        let text = text(&report);
        assert!(text.contains("tokio has no affinity scopes"), "{text}");
        assert!(text.contains(note), "{text}");
        assert!(text.contains("cpu_strict"), "{text}");
        let json = serde_json::to_string(&report).unwrap();
        assert!(json.contains(r#""scope":"cpu""#), "{json}");
        assert!(json.contains(r#""cache_shard":1"#), "{json}");
    }

    #[test]
    fn escapes_xml() {
        assert_eq!(escape(r#"a<b & "c">"#), "a&lt;b &amp; &quot;c&quot;&gt;");
    }
}
