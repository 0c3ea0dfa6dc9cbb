//! Runs a workload on both runtimes in alternating pairs.

use std::io;
use std::time::{Duration, Instant};

use crate::rt::{Rt, Tokio, Wq};
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
    /// Measured pairs per timer workload (each sample is one full run).
    pub timer_samples: usize,
    /// How long each runtime is left idle by `idle_cost`.
    pub idle: Duration,
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
    /// Per-pair ratio of wq's figure to tokio's (wall time, or CPU time for
    /// `sleeps_100k`; < 1.0: wq did better).
    pub fn ratios(&self) -> Vec<f64> {
        self.wq
            .iter()
            .zip(&self.tokio)
            .map(|(wq, tokio)| wq.measured().as_secs_f64() / tokio.measured().as_secs_f64())
            .collect()
    }
}

/// Measures `workload` on wq and tokio.
///
/// Each runtime is built once and kept for all of the workload's samples.
/// After a warm-up that also calibrates how many repetitions make up one
/// sample, samples are taken in pairs, one per runtime, alternating which
/// runtime goes first.
pub fn compare(
    workload: Workload,
    config: &Config,
    mut progress: impl FnMut(&str),
) -> io::Result<Comparison> {
    let wq = Wq::build(config.workers)?;
    let tokio = Tokio::build(config.workers)?;

    progress("warming up");
    let reps = warm_up(workload, config, &wq, &tokio);
    let pairs = match workload.kind() {
        Kind::Scheduler => config.samples,
        Kind::Seed => config.seed_samples,
        Kind::Timer => config.timer_samples,
        Kind::Once => unreachable!("{} is not measured in pairs", workload.name()),
    };

    let mut comparison = Comparison {
        workload,
        reps,
        wq: Vec::with_capacity(pairs),
        tokio: Vec::with_capacity(pairs),
    };
    for pair in 0..pairs {
        progress(&format!(
            "pair {}/{pairs} ({reps} reps per sample)",
            pair + 1
        ));
        if pair % 2 == 0 {
            comparison.wq.push(workload.run(&wq, config.workers, reps));
            comparison
                .tokio
                .push(workload.run(&tokio, config.workers, reps));
        } else {
            comparison
                .tokio
                .push(workload.run(&tokio, config.workers, reps));
            comparison.wq.push(workload.run(&wq, config.workers, reps));
        }
    }
    Ok(comparison)
}

/// Warms both runtimes up on `workload` and returns the repetitions per
/// sample that make the slower runtime's sample last about
/// `config.sample_time` (always 1 for a seed round trip or a timer workload,
/// whose run is already long; these warm up with one run each, shortened for
/// a seed round trip).
fn warm_up(workload: Workload, config: &Config, wq: &Wq, tokio: &Tokio) -> u64 {
    match workload {
        Workload::SeedRoundTrip { producers, items } => {
            let short = Workload::SeedRoundTrip {
                producers,
                items: items.min(SEED_WARMUP_ITEMS),
            };
            short.run(wq, config.workers, 1);
            short.run(tokio, config.workers, 1);
            return 1;
        }
        _ if workload.kind() == Kind::Timer => {
            workload.run(wq, config.workers, 1);
            workload.run(tokio, config.workers, 1);
            return 1;
        }
        _ => {}
    }

    let deadline = Instant::now() + config.warmup;
    let mut slower = Vec::new();
    loop {
        let wq_time = workload.run(wq, config.workers, 1).elapsed;
        let tokio_time = workload.run(tokio, config.workers, 1).elapsed;
        slower.push(wq_time.max(tokio_time).as_secs_f64());
        if slower.len() >= 3 && Instant::now() >= deadline {
            break;
        }
    }
    // The first round pays for cold caches and thread start-up.
    let estimate = stats::median(&slower[1..]);
    let reps = (config.sample_time.as_secs_f64() / estimate).ceil();
    (reps as u64).clamp(1, MAX_REPS)
}
