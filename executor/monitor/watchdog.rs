//! The watchdog: a pool that has tasks queued but has started none for
//! `watchdog_threshold` is reported, like the kernel's workqueue lockup
//! detector (`wq_watchdog_timer_fn`, "BUG: workqueue lockup").
//!
//! Progress is read from the workers' poll stamps: every poll started moves
//! its worker's `seq`, so a pool whose stamps' seqs have not moved while it
//! had work queued (`Pool::has_due_work`) for the whole threshold is
//! stalled. The monitor thread checks every eighth of the threshold while
//! it is awake; a stall keeps it awake (a starving pool is tended every
//! 10 ms, and with work queued it does not sleep for longer than a quarter
//! threshold, a sleep that the next worker to run or pool to starve ends,
//! as they end its deep sleep), and a runtime with nothing queued costs the
//! watchdog nothing. A stall is reported once per threshold for as long as it
//! lasts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::pool::Pool;
use crate::task::stats::{QueueId, QueueTable};
use crate::task::{registry::Registry, Id};

/// Most tasks listed per workqueue in a report.
const LISTED_PER_QUEUE: usize = 16;

/// The watchdog's state, kept by the monitor thread.
pub(super) struct Watchdog {
    threshold: Duration,
    last_check: Option<Instant>,
    /// Per pool, in the order of the monitor's list (pools are only added).
    pools: Vec<PoolWatch>,
}

/// What the watchdog knows of one pool.
struct PoolWatch {
    /// The sum of the workers' poll seqs at the last check.
    progress: u64,
    /// Since when the pool has had work queued without progress.
    stalled_since: Option<Instant>,
    /// When the current stall was last reported.
    reported: Option<Instant>,
}

/// A pool found stalled.
pub(super) struct Stall {
    pub(super) pool: Pool,
    pub(super) stalled_for: Duration,
}

/// A poll in progress on a stalled pool's worker, for the report.
pub(super) struct InPoll {
    pub(super) task: u64,
    pub(super) queue: QueueId,
    pub(super) for_at_least: Duration,
}

impl Watchdog {
    /// `threshold` is not zero.
    pub(super) fn new(threshold: Duration) -> Watchdog {
        Watchdog {
            threshold,
            last_check: None,
            pools: Vec::new(),
        }
    }

    /// The longest the monitor thread may sleep while some pool has work
    /// queued.
    pub(super) fn max_sleep(&self) -> Duration {
        self.threshold / 4
    }

    /// Checks every pool if a check is due; returns the stalls to report.
    pub(super) fn check(&mut self, pools: &[Pool], now: Instant) -> Vec<Stall> {
        let interval = (self.threshold / 8).max(Duration::from_millis(1));
        if self
            .last_check
            .is_some_and(|last| now.saturating_duration_since(last) < interval)
        {
            return Vec::new();
        }
        self.last_check = Some(now);
        while self.pools.len() < pools.len() {
            self.pools.push(PoolWatch {
                progress: 0,
                stalled_since: None,
                reported: None,
            });
        }
        let mut stalls = Vec::new();
        for (pool, watch) in pools.iter().zip(&mut self.pools) {
            let progress = pool
                .workers()
                .iter()
                .fold(0u64, |sum, w| sum.wrapping_add(w.observe().seq()));
            let moved = progress != watch.progress;
            watch.progress = progress;
            if moved || !pool.has_due_work() {
                watch.stalled_since = None;
                watch.reported = None;
                continue;
            }
            let since = *watch.stalled_since.get_or_insert(now);
            let stalled_for = now.saturating_duration_since(since);
            let due = match watch.reported {
                None => stalled_for >= self.threshold,
                Some(at) => now.saturating_duration_since(at) >= self.threshold,
            };
            if due {
                watch.reported = Some(now);
                stalls.push(Stall {
                    pool: pool.clone(),
                    stalled_for,
                });
            }
        }
        stalls
    }
}

/// Reports a stall at error level: the pool's counts, the polls in
/// progress on its workers, and every workqueue with live tasks.
pub(super) fn report(stall: &Stall, in_poll: &[InPoll], tasks: &Registry, queues: &QueueTable) {
    let pool = &stall.pool;
    let stats = pool.stats();
    let mut text = String::new();
    let name_of = |queue: QueueId| {
        queues
            .name_of(queue)
            .map_or_else(|| format!("#{}", queue.0), |n| n.to_string())
    };
    let snapshot = tasks.snapshot();
    let describe = |id: u64| -> String {
        let meta = snapshot
            .iter()
            .find(|(task, _)| task.as_u64() == id)
            .map(|(_, meta)| meta);
        match meta {
            Some(meta) => match &meta.name {
                Some(name) => format!("task {id} `{name}` spawned at {}", meta.location),
                None => format!("task {id} spawned at {}", meta.location),
            },
            None => format!("task {id}"),
        }
    };
    let _ = writeln!(
        text,
        "workers: {}, idle: {}, running: {}, queued on the pool: {}",
        stats.workers,
        stats.idle,
        stats.running,
        pool.injector_depth()
    );
    for poll in in_poll {
        let _ = writeln!(
            text,
            "  in a poll for {:?} or more: {} (workqueue `{}`)",
            poll.for_at_least,
            describe(poll.task),
            name_of(poll.queue)
        );
    }
    let mut by_queue: BTreeMap<u32, Vec<(Id, &crate::task::registry::SpawnMeta)>> = BTreeMap::new();
    for (id, meta) in &snapshot {
        by_queue.entry(meta.queue.0).or_default().push((*id, meta));
    }
    for (queue, mut live) in by_queue {
        live.sort_by_key(|(id, _)| id.as_u64());
        let _ = writeln!(
            text,
            "  workqueue `{}`: {} live task(s)",
            name_of(QueueId(queue)),
            live.len()
        );
        for (id, _) in live.iter().take(LISTED_PER_QUEUE) {
            let _ = writeln!(text, "    {}", describe(id.as_u64()));
        }
        if live.len() > LISTED_PER_QUEUE {
            let _ = writeln!(text, "    ... and {} more", live.len() - LISTED_PER_QUEUE);
        }
    }
    tracing::error!(
        pool = %pool.label(),
        stalled_for = ?stall.stalled_for,
        "wq watchdog: pool `{}` has had tasks queued for {:?} without starting any \
         (every worker stuck and no other could be started, or a bug)\n{}",
        pool.label(),
        stall.stalled_for,
        text.trim_end()
    );
}
