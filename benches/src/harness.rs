//! Runs a workload on two runtimes in alternating pairs: wq against tokio,
//! or wq with its monitor against wq without.

use std::io;
use std::time::{Duration, Instant};

use crate::rt::{Rt, Tokio, Wq, WqNoMonitor};
use crate::stats;
use crate::workloads::{Kind, Sample, Workload};

/// Items per producer in the (unreported) warm-up run of a seed round trip.
const SEED_WARMUP_ITEMS: usize = 5_000;
/// Upper bound on repetitions per sample, whatever the calibration says.
const MAX_REPS: u64 = 100_000;

/// How a comparison is run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Worker threads of each runtime.
    pub workers: usize,
    /// Measured pairs per scheduler workload.
    pub samples: usize,
    /// Measured pairs per seed round trip workload (each sample is one full
    /// run of every producer's items).
    pub seed_samples: usize,
    /// Measured pairs per timer workload and per blocking tolerance workload
    /// (`blocking_storm_*`, `hog`); each sample is one full run.
    pub timer_samples: usize,
    /// How long each runtime is left idle by `idle_cost`.
    pub idle: Duration,
    /// How long each load run of `http_hello*` lasts.
    pub http_secs: Duration,
    /// Rounds of `http_hello*`: one load run per runtime each.
    pub http_rounds: usize,
    /// Client threads of the `http_hello*` load: `wrk -t`, and the load
    /// generator's.
    pub http_client_threads: usize,
    /// Warm-up time per scheduler workload, shared by the two runtimes.
    pub warmup: Duration,
    /// Wall time one scheduler sample should take; the workload is repeated
    /// within a sample until about this long.
    pub sample_time: Duration,
}

/// The samples of one workload on both runtimes; `wq[i]` and `tokio[i]` are
/// pair `i`, taken back to back.
#[derive(Clone, Debug)]
pub struct Comparison {
    /// The workload measured.
    pub workload: Workload,
    /// Repetitions of the workload in each sample.
    pub reps: u64,
    /// wq's samples.
    pub wq: Vec<Sample>,
    /// tokio's samples.
    pub tokio: Vec<Sample>,
}

impl Comparison {
    /// Per-pair ratio of wq's figure to tokio's (wall time; CPU time for
    /// `sleeps_100k`; p99 timer lateness for `blocking_storm_*`; < 1.0: wq
    /// did better).
    pub fn ratios(&self) -> Vec<f64> {
        self.wq
            .iter()
            .zip(&self.tokio)
            .map(|(wq, tokio)| wq.measured().as_secs_f64() / tokio.measured().as_secs_f64())
            .collect()
    }
}

/// The samples of one scheduler workload on wq with its monitor and on wq
/// without; `on[i]` and `off[i]` are pair `i`, taken back to back.
#[derive(Clone, Debug)]
pub struct MonitorCost {
    /// The workload measured.
    pub workload: Workload,
    /// Repetitions of the workload in each sample.
    pub reps: u64,
    /// Samples with the monitor on (wq as built by default).
    pub on: Vec<Sample>,
    /// Samples with `Builder::monitor(false)`.
    pub off: Vec<Sample>,
}

impl MonitorCost {
    /// Per-pair ratio of the wall time with the monitor to the time without
    /// (> 1.0: the monitor costs that much).
    pub fn ratios(&self) -> Vec<f64> {
        self.on
            .iter()
            .zip(&self.off)
            .map(|(on, off)| on.measured().as_secs_f64() / off.measured().as_secs_f64())
            .collect()
    }
}

/// Measures `workload` on wq and tokio (see [`pairs`]).
pub fn compare(
    workload: Workload,
    config: &Config,
    progress: impl FnMut(&str),
) -> io::Result<Comparison> {
    let (reps, wq, tokio) = pairs::<Wq, Tokio>(workload, config, progress)?;
    Ok(Comparison {
        workload,
        reps,
        wq,
        tokio,
    })
}

/// Measures scheduler `workload` on wq with its monitor and without (see
/// [`pairs`]).
pub fn monitor_cost(
    workload: Workload,
    config: &Config,
    progress: impl FnMut(&str),
) -> io::Result<MonitorCost> {
    assert_eq!(
        workload.kind(),
        Kind::Scheduler,
        "the monitor's cost is measured on the scheduler workloads"
    );
    let (reps, on, off) = pairs::<Wq, WqNoMonitor>(workload, config, progress)?;
    Ok(MonitorCost {
        workload,
        reps,
        on,
        off,
    })
}

/// Measures `workload` on runtimes `A` and `B`; returns the repetitions per
/// sample and the samples of each, pair by pair.
///
/// Each runtime is built once and kept for all of the workload's samples.
/// After a warm-up that also calibrates how many repetitions make up one
/// sample, samples are taken in pairs, one per runtime, alternating which
/// runtime goes first.
fn pairs<A: Rt, B: Rt>(
    workload: Workload,
    config: &Config,
    mut progress: impl FnMut(&str),
) -> io::Result<(u64, Vec<Sample>, Vec<Sample>)> {
    let a = A::build(config.workers)?;
    let b = B::build(config.workers)?;

    progress("warming up");
    let reps = warm_up(workload, config, &a, &b);
    let pairs = match workload.kind() {
        Kind::Scheduler => config.samples,
        Kind::Seed => config.seed_samples,
        Kind::Timer | Kind::Blocking => config.timer_samples,
        Kind::Fresh | Kind::Server | Kind::Once => {
            unreachable!("{} is not measured on kept runtimes", workload.name())
        }
    };

    let mut a_samples = Vec::with_capacity(pairs);
    let mut b_samples = Vec::with_capacity(pairs);
    for pair in 0..pairs {
        progress(&format!(
            "pair {}/{pairs} ({reps} reps per sample)",
            pair + 1
        ));
        if pair % 2 == 0 {
            a_samples.push(workload.run(&a, config.workers, reps));
            b_samples.push(workload.run(&b, config.workers, reps));
        } else {
            b_samples.push(workload.run(&b, config.workers, reps));
            a_samples.push(workload.run(&a, config.workers, reps));
        }
    }
    Ok((reps, a_samples, b_samples))
}

/// Warms both runtimes up on `workload` and returns the repetitions per
/// sample that make the slower runtime's sample last about
/// `config.sample_time` (always 1 for a seed round trip, a timer or a
/// blocking workload, whose run is already long; these warm up with one run
/// each, shortened for a seed round trip).
fn warm_up<A: Rt, B: Rt>(workload: Workload, config: &Config, a: &A, b: &B) -> u64 {
    match workload {
        Workload::SeedRoundTrip { producers, items } => {
            let short = Workload::SeedRoundTrip {
                producers,
                items: items.min(SEED_WARMUP_ITEMS),
            };
            short.run(a, config.workers, 1);
            short.run(b, config.workers, 1);
            return 1;
        }
        Workload::SeedScope {
            scope,
            strict,
            producers,
            items,
        } => {
            // Also starts the pools of the pods the producers run on.
            let short = Workload::SeedScope {
                scope,
                strict,
                producers,
                items: items.min(SEED_WARMUP_ITEMS),
            };
            short.run(a, config.workers, 1);
            short.run(b, config.workers, 1);
            return 1;
        }
        _ if matches!(workload.kind(), Kind::Timer | Kind::Blocking) => {
            workload.run(a, config.workers, 1);
            workload.run(b, config.workers, 1);
            return 1;
        }
        _ => {}
    }

    let deadline = Instant::now() + config.warmup;
    let mut slower = Vec::new();
    loop {
        let a_time = workload.run(a, config.workers, 1).elapsed;
        let b_time = workload.run(b, config.workers, 1).elapsed;
        slower.push(a_time.max(b_time).as_secs_f64());
        if slower.len() >= 3 && Instant::now() >= deadline {
            break;
        }
    }
    // The first round pays for cold caches and thread start-up.
    let estimate = stats::median(&slower[1..]);
    let reps = (config.sample_time.as_secs_f64() / estimate).ceil();
    (reps as u64).clamp(1, MAX_REPS)
}
