//! Forward progress (`rescue`): does a task that would unblock the workers
//! run when every worker is blocked and no worker can be added?
//!
//! wq's answer is the rescuer of a `mem_reclaim` workqueue: once the pool
//! has starved for 10 ms it sends mayday, and the queue's rescuer thread
//! polls the queued task itself (`executor/rescuer.rs`). A workqueue
//! without `mem_reclaim` has no rescuer, and tokio has no such mechanism:
//! there the task waits for a worker, which in this workload only comes
//! back once the runner, after [`RESCUE_LIMIT`], opens the latch the
//! workers wait on. Every run is on a fresh runtime, like `hog`
//! (`blocking.rs`).

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::Config;
use crate::rt::{Rt, Tokio};
use crate::workloads::STUCK_AFTER;

/// Workers of each runtime, and the cap on its worker threads (wq's
/// `max_workers`); also the number of blockers, one per worker.
pub const RESCUE_WORKERS: usize = 2;
/// How long the runner waits for the unblocking task to run before it
/// counts the run as stalled and opens the latch itself.
pub const RESCUE_LIMIT: Duration = Duration::from_secs(2);
/// How long the runner waits for the blockers to block (and, at the end of
/// a run, to return) before it gives the run up as broken.
const RESCUE_SETUP: Duration = Duration::from_secs(10);
/// How long the runner lets the runtime settle once the blockers are
/// blocked, before it spawns the unblocking task. While the blockers were
/// being picked up, wq's pool may have starved for a moment (work queued,
/// no worker free yet); its mayday timer only forgets such an episode when
/// the monitor next tends the pool (within 10 ms) and finds it no longer
/// starving. Without this pause the measured episode could be counted from
/// that earlier one, and mayday come less than 10 ms after the spawn.
pub const RESCUE_SETTLE: Duration = Duration::from_millis(50);
/// How often the runner reads the blockers' counters while it waits.
const RESCUE_POLL: Duration = Duration::from_millis(1);
/// How long a run waits for its runtime's threads at shutdown.
const RESCUE_SHUTDOWN: Duration = Duration::from_millis(100);

/// The runtimes `rescue` compares: the runtime, and what the unblocking
/// task is spawned through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RescueVariant {
    /// wq, through a workqueue built with `.mem_reclaim()`.
    WqMemReclaim,
    /// wq, through a workqueue built without it: no rescuer.
    WqPlain,
    /// tokio, through `Handle::spawn`.
    Tokio,
}

impl RescueVariant {
    /// Every variant, in report order.
    pub const ALL: [RescueVariant; 3] = [
        RescueVariant::WqMemReclaim,
        RescueVariant::WqPlain,
        RescueVariant::Tokio,
    ];

    /// The variant's name in reports.
    pub fn label(self) -> &'static str {
        match self {
            RescueVariant::WqMemReclaim => "wq mem_reclaim",
            RescueVariant::WqPlain => "wq without mem_reclaim",
            RescueVariant::Tokio => "tokio",
        }
    }

    /// What the unblocking task is spawned through, for reports.
    pub fn spawned_through(self) -> &'static str {
        match self {
            RescueVariant::WqMemReclaim => "`Workqueue::spawn`, queue built with `.mem_reclaim()`",
            RescueVariant::WqPlain => "`Workqueue::spawn`, queue built without it",
            RescueVariant::Tokio => "`Handle::spawn`",
        }
    }
}

/// What one `rescue` run measured.
#[derive(Clone, Copy, Debug)]
pub struct RescueRun {
    /// From just before the unblocking task was spawned until it ran (its
    /// own `Instant::now()`), if that was within [`RESCUE_LIMIT`]; `None`:
    /// the run stalled.
    pub time_to_run: Option<Duration>,
    /// The workqueue's `stats().mayday` once the blockers returned (wq
    /// only).
    pub mayday: Option<u64>,
    /// The workqueue's `stats().rescued` then (wq only).
    pub rescued: Option<u64>,
}

/// The runs of `rescue`, by variant; `wq_mem_reclaim[i]`, `wq_plain[i]`
/// and `tokio[i]` were taken in the same round.
#[derive(Clone, Debug, Default)]
pub struct RescueComparison {
    /// wq through a `mem_reclaim` workqueue.
    pub wq_mem_reclaim: Vec<RescueRun>,
    /// wq through a workqueue without `mem_reclaim`.
    pub wq_plain: Vec<RescueRun>,
    /// tokio through `Handle::spawn`.
    pub tokio: Vec<RescueRun>,
}

impl RescueComparison {
    /// The runs of `variant`.
    pub fn runs(&self, variant: RescueVariant) -> &[RescueRun] {
        match variant {
            RescueVariant::WqMemReclaim => &self.wq_mem_reclaim,
            RescueVariant::WqPlain => &self.wq_plain,
            RescueVariant::Tokio => &self.tokio,
        }
    }

    fn runs_mut(&mut self, variant: RescueVariant) -> &mut Vec<RescueRun> {
        match variant {
            RescueVariant::WqMemReclaim => &mut self.wq_mem_reclaim,
            RescueVariant::WqPlain => &mut self.wq_plain,
            RescueVariant::Tokio => &mut self.tokio,
        }
    }
}

/// Measures `rescue`: `config.timer_samples` rounds of one run per
/// variant, each run on a fresh runtime, the order of the variants rotated
/// from round to round. No warm-up: each run starts from a fresh runtime
/// anyway, and only the wait for the unblocking task is timed.
pub fn rescue(config: &Config, mut progress: impl FnMut(&str)) -> io::Result<RescueComparison> {
    let rounds = config.timer_samples;
    let mut comparison = RescueComparison::default();
    for round in 0..rounds {
        progress(&format!(
            "round {}/{rounds} (a fresh runtime per run)",
            round + 1
        ));
        for variant in round_order(round) {
            let run = rescue_run(variant)?;
            comparison.runs_mut(variant).push(run);
        }
    }
    Ok(comparison)
}

/// The order of the variants in round `round`: [`RescueVariant::ALL`]
/// rotated by one per round, so that each goes first in turn.
fn round_order(round: usize) -> [RescueVariant; 3] {
    let mut order = RescueVariant::ALL;
    order.rotate_left(round % RescueVariant::ALL.len());
    order
}

/// A gate that the blockers wait on until someone opens it.
#[derive(Default)]
struct Latch {
    open: Mutex<bool>,
    cond: Condvar,
}

impl Latch {
    /// Opens the gate and wakes every waiter.
    fn open(&self) {
        *self.open.lock().expect("latch lock") = true;
        self.cond.notify_all();
    }

    /// Waits until the gate is open, or `give_up` has passed (then a
    /// broken run cannot leave a thread blocked forever).
    fn wait(&self, give_up: Duration) {
        let open = self.open.lock().expect("latch lock");
        drop(
            self.cond
                .wait_timeout_while(open, give_up, |open| !*open)
                .expect("latch lock"),
        );
    }
}

/// What the blockers of one run share with the runner.
#[derive(Default)]
struct Blockers {
    /// The gate they wait on.
    latch: Latch,
    /// Blockers that started waiting.
    blocked: AtomicUsize,
    /// Blockers that returned.
    returned: AtomicUsize,
}

impl Blockers {
    /// One blocker's body: counts itself, waits for the latch, counts its
    /// return.
    fn block(&self) {
        self.blocked.fetch_add(1, SeqCst);
        self.latch.wait(STUCK_AFTER);
        self.returned.fetch_add(1, SeqCst);
    }
}

/// A fresh runtime for one run, with what its unblocking task is spawned
/// through.
enum Subject {
    /// wq with [`RESCUE_WORKERS`] workers and as many threads at most, and
    /// a workqueue on it, with or without `mem_reclaim`.
    Wq {
        rt: wq::Runtime,
        queue: wq::Workqueue,
    },
    /// tokio with [`RESCUE_WORKERS`] worker threads, as the runner builds
    /// it for every workload, and its handle.
    Tokio {
        rt: Tokio,
        handle: tokio::runtime::Handle,
    },
}

impl Subject {
    /// Builds the runtime of `variant` and, for wq, its workqueue (and so
    /// the rescuer thread of a `mem_reclaim` one).
    fn build(variant: RescueVariant) -> io::Result<Subject> {
        let (name, mem_reclaim) = match variant {
            RescueVariant::Tokio => {
                let rt = Tokio::build(RESCUE_WORKERS)?;
                let handle = rt.handle();
                return Ok(Subject::Tokio { rt, handle });
            }
            RescueVariant::WqMemReclaim => ("rescue_reclaim", true),
            RescueVariant::WqPlain => ("rescue_plain", false),
        };
        let rt = wq::Builder::new()
            .workers(RESCUE_WORKERS)
            .max_workers(RESCUE_WORKERS)
            .build()?;
        let mut builder = wq::Workqueue::builder(name).handle(rt.handle());
        if mem_reclaim {
            builder = builder.mem_reclaim();
        }
        let queue = builder.build()?;
        Ok(Subject::Wq { rt, queue })
    }

    /// Spawns a task that calls `block`: on wq inside `wq::blocking`, which
    /// is what a wq user would write; on tokio as a plain blocking call
    /// (its `block_in_place` and `spawn_blocking` hand the work to other
    /// threads, which is not the situation measured).
    fn spawn_blocker(&self, block: impl FnOnce() + Send + 'static) {
        match self {
            Subject::Wq { rt, .. } => drop(rt.spawn(async move { wq::blocking(block) })),
            Subject::Tokio { rt, .. } => drop(rt.spawn(async move { block() })),
        }
    }

    /// Spawns the unblocking task from the runner's thread: through the
    /// workqueue on wq, through `Handle::spawn` on tokio.
    fn spawn_unblocker(&self, task: impl Future<Output = ()> + Send + 'static) {
        match self {
            Subject::Wq { queue, .. } => drop(queue.spawn(task)),
            Subject::Tokio { handle, .. } => drop(Tokio::spawn_on(handle, task)),
        }
    }

    /// The workqueue's figures (wq only).
    fn queue_stats(&self) -> Option<wq::WorkqueueStats> {
        match self {
            Subject::Wq { queue, .. } => Some(queue.stats()),
            Subject::Tokio { .. } => None,
        }
    }

    /// Drops the workqueue (stopping its rescuer) and shuts the runtime
    /// down, waiting at most [`RESCUE_SHUTDOWN`] for its threads.
    fn shutdown(self) {
        match self {
            Subject::Wq { rt, queue } => {
                drop(queue);
                rt.shutdown_timeout(RESCUE_SHUTDOWN);
            }
            Subject::Tokio { rt, handle } => {
                drop(handle);
                rt.shutdown_timeout(RESCUE_SHUTDOWN);
            }
        }
    }
}

/// One run of `rescue` for `variant`, on a fresh runtime.
///
/// 1. Build the runtime (and for wq the workqueue), then spawn
///    [`RESCUE_WORKERS`] blockers that wait on a std `Mutex` + `Condvar`
///    latch, wait until each has counted itself blocked, and let the
///    runtime settle for [`RESCUE_SETTLE`].
/// 2. Take an instant and spawn the unblocking task, which records when it
///    runs, then opens the latch.
/// 3. Wait [`RESCUE_LIMIT`] for it. If it has not run, the run stalled:
///    open the latch from here, so that the blockers return and the task
///    runs.
/// 4. Wait for the blockers to return, read the workqueue's `mayday` and
///    `rescued` (wq), and shut the runtime down with a timeout.
fn rescue_run(variant: RescueVariant) -> io::Result<RescueRun> {
    let subject = Subject::build(variant)?;
    let blockers = Arc::new(Blockers::default());
    for _ in 0..RESCUE_WORKERS {
        let blockers = Arc::clone(&blockers);
        subject.spawn_blocker(move || blockers.block());
    }
    if !reaches(&blockers.blocked, RESCUE_WORKERS, RESCUE_SETUP) {
        blockers.latch.open();
        subject.shutdown();
        return Err(broken(
            variant,
            format!("the {RESCUE_WORKERS} blockers did not all block within {RESCUE_SETUP:?}"),
        ));
    }
    thread::sleep(RESCUE_SETTLE);

    let (ran_tx, ran_rx) = mpsc::sync_channel(1);
    let task = {
        let blockers = Arc::clone(&blockers);
        async move {
            let ran_at = Instant::now();
            let _ = ran_tx.send(ran_at);
            blockers.latch.open();
        }
    };
    let spawned = Instant::now();
    subject.spawn_unblocker(task);
    let ran_at = ran_rx.recv_timeout(RESCUE_LIMIT).or_else(|_| {
        // Stalled: release the blockers, so that a worker comes back for
        // the task and the runtime can be shut down cleanly.
        blockers.latch.open();
        ran_rx.recv_timeout(RESCUE_SETUP)
    });
    let returned = reaches(&blockers.returned, RESCUE_WORKERS, RESCUE_SETUP);
    let stats = subject.queue_stats();
    subject.shutdown();

    let ran_at = ran_at.map_err(|err| {
        broken(
            variant,
            format!(
                "the unblocking task had not run {RESCUE_SETUP:?} after the latch opened ({err})"
            ),
        )
    })?;
    if !returned {
        return Err(broken(
            variant,
            format!("the blockers had not returned {RESCUE_SETUP:?} after the latch opened"),
        ));
    }
    // Judged by the task's own clock: a task that ran only once the runner
    // opened the latch ran after the limit.
    let waited = ran_at.saturating_duration_since(spawned);
    Ok(RescueRun {
        time_to_run: (waited <= RESCUE_LIMIT).then_some(waited),
        mayday: stats.map(|s| s.mayday),
        rescued: stats.map(|s| s.rescued),
    })
}

/// Reads `count` every [`RESCUE_POLL`] until it reaches `target` (true) or
/// `limit` has passed (false).
fn reaches(count: &AtomicUsize, target: usize, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if count.load(SeqCst) >= target {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(RESCUE_POLL);
    }
}

/// The error of a run that could not be measured.
fn broken(variant: RescueVariant, what: String) -> io::Error {
    io::Error::other(format!("rescue ({}): {what}", variant.label()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_variant_goes_first_in_turn() {
        let firsts: Vec<RescueVariant> = (0..4).map(|round| round_order(round)[0]).collect();
        assert_eq!(
            firsts,
            [
                RescueVariant::WqMemReclaim,
                RescueVariant::WqPlain,
                RescueVariant::Tokio,
                RescueVariant::WqMemReclaim
            ]
        );
        for round in 0..3 {
            let mut order = round_order(round);
            order.sort_by_key(|v| RescueVariant::ALL.iter().position(|a| a == v));
            assert_eq!(order, RescueVariant::ALL, "round {round}");
        }
    }

    /// Every variant completes a run and shuts its runtime down; only wq
    /// has queue figures, and a queue without `mem_reclaim` has no rescuer
    /// to call. Nothing here depends on how long anything took.
    #[test]
    fn every_variant_completes_a_run() {
        let reclaim = rescue_run(RescueVariant::WqMemReclaim).unwrap();
        assert!(reclaim.mayday.is_some() && reclaim.rescued.is_some());
        let plain = rescue_run(RescueVariant::WqPlain).unwrap();
        assert_eq!((plain.mayday, plain.rescued), (Some(0), Some(0)));
        let tokio = rescue_run(RescueVariant::Tokio).unwrap();
        assert_eq!((tokio.mayday, tokio.rescued), (None, None));
    }
}
