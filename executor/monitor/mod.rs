//! The monitor: finds workers stuck in one poll and takes them out of
//! concurrency management, so that blocking or spinning user code does not
//! stall the runtime (cmwq's `wq_worker_sleeping` and CPU_INTENSIVE, for
//! code that cannot call them; Go's sysmon is the model for the thread).
//!
//! # What it watches
//!
//! The runtime's pools: the normal one, and the high-priority one once a
//! `highpri` workqueue creates it (`Monitor::watch`).
//!
//! Every worker publishes its poll in a stamp (`pool/stamp.rs`): a sequence
//! number and an in-poll bit, written at each poll start and end. The
//! monitor thread reads the stamps every tick. A poll seen at two ticks
//! `blocking_threshold` apart (default 1 ms) is stuck, and is examined:
//!
//! - its thread's CPU time over the last tick advanced by less than half the
//!   tick, and the scheduler says the thread is not runnable: it is
//!   **blocked** (a blocking syscall, a lock, `std::thread::sleep`);
//! - its CPU time within the poll reached `cpu_intensive_threshold`
//!   (default 10 ms, the kernel's `wq_cpu_intensive_thresh_us`): it is a
//!   **CPU hog**, and is reported through `tracing` at warn level with the
//!   task's id, name (if it was given one with `wq::task::Builder`) and
//!   spawn location, at the 1st, 2nd, 4th, 8th... offence of
//!   that spawn location (the kernel's `wq_cpu_intensive_report`);
//! - otherwise it is running and keeps its place.
//!
//! Either verdict takes the worker out of `nr_running` exactly as
//! `wq::blocking` would (`Pool::detach_stuck`), which wakes an idle worker
//! if work is waiting; the stuck worker's queues are stolen by the others.
//! When the poll ends the worker counts as running again, and goes idle if
//! it is now surplus.
//!
//! Blocked means asleep for any reason, as in the kernel, where a work item
//! sleeping on a mutex triggers concurrency management like one sleeping on
//! I/O: a worker that waits over a millisecond for a lock (its own, or one
//! inside the runtime whose holder was preempted on an overloaded machine)
//! is replaced too. The damping is the threshold itself, and new threads
//! are created only when no idle worker is left, up to `max_workers`.
//!
//! Without a CPU clock (platforms other than Linux) every stuck poll is
//! treated as blocked: stuck-poll time alone decides.
//!
//! # The mayday timer
//!
//! The monitor thread also tends pools that starve: work queued, every
//! worker blocked and none can be created (`max_workers` reached, or the
//! creation failed). It calls `Pool::tend` on every pool at each wakeup,
//! and every 10 ms while one starves: that retries the creation once the
//! cooldown has passed and sends mayday to the rescuers of the queued
//! tasks' workqueues (`executor/rescuer.rs`). A pool that starts starving
//! wakes the thread if it sleeps. This part runs even when detection is
//! disabled (`Builder::monitor(false)`): then the thread never ticks, and
//! sleeps until a pool starves.
//!
//! # Cost
//!
//! On the poll path: a store and a swap on the worker's own cache line.
//! The monitor ticks every `blocking_threshold / 2` (500 us by default: at
//! most 2,000 wakeups a second) while any worker is counted running, reads
//! a thread's CPU clock only for polls older than one tick, and sleeps
//! without a timeout when no worker runs: the first worker to run again
//! wakes it (one flag load on the kick path). An idle runtime costs nothing.

mod probe;

use std::collections::HashMap;
use std::io;
use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::pool::{Pool, Seen, WorkerRef};
use crate::task::registry::Registry;
use crate::task::Id;
use probe::Probe;

/// How often a pool whose work waits with no worker to take it is tended
/// (`Pool::tend`: the worker creation retried once its cooldown has passed,
/// mayday sent after 10 ms and every 100 ms).
const STARVING_TICK: Duration = Duration::from_millis(10);

/// Default for `Builder::blocking_threshold`.
pub const DEFAULT_BLOCKING_THRESHOLD: Duration = Duration::from_millis(1);
/// Default for `Builder::cpu_intensive_threshold`.
pub const DEFAULT_CPU_INTENSIVE_THRESHOLD: Duration = Duration::from_millis(10);
/// The smallest `blocking_threshold` accepted: the monitor ticks twice per
/// threshold, and waking more often than every 50 us would cost a CPU.
pub const MIN_BLOCKING_THRESHOLD: Duration = Duration::from_micros(100);

/// How a monitor is tuned. Validated by the runtime builder.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MonitorConfig {
    pub(crate) blocking_threshold: Duration,
    pub(crate) cpu_intensive_threshold: Duration,
}

/// What the monitor counts, read by the runtime's metrics.
#[derive(Debug, Default)]
pub(crate) struct MonitorStats {
    /// Ticks: wakeups that looked at the workers.
    pub(crate) ticks: AtomicU64,
    /// Polls found blocked and taken out of concurrency management.
    pub(crate) blocked: AtomicU64,
    /// Polls found hogging the CPU (taken out, or already out as blocked).
    pub(crate) hogs: AtomicU64,
}

/// The monitor thread of a runtime's pools.
#[derive(Debug)]
pub(crate) struct Monitor {
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
    stats: Arc<MonitorStats>,
    /// The pools watched, the first one (the runtime's normal pool) first.
    pools: Arc<Mutex<Vec<Pool>>>,
    /// Whether the polls are watched (else the thread only tends starving
    /// pools).
    detects: bool,
}

impl Monitor {
    /// Starts the monitor thread for `pool`, whose tasks live in `tasks`.
    /// With `detect`, it watches the workers' polls; in any case it is the
    /// mayday timer of every pool it watches (`Pool::tend`), which costs
    /// nothing until a pool starves.
    pub(crate) fn start(
        pool: Pool,
        tasks: Arc<Registry>,
        detect: Option<MonitorConfig>,
    ) -> io::Result<Monitor> {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(MonitorStats::default());
        let pools = Arc::new(Mutex::new(vec![pool.clone()]));
        let mut watcher = Watcher {
            pool,
            pools: pools.clone(),
            tasks,
            config: detect,
            stop: stop.clone(),
            stats: stats.clone(),
            workers: Vec::new(),
            hog_counts: HashMap::new(),
        };
        let thread = thread::Builder::new()
            .name("wq-monitor".to_owned())
            .spawn(move || watcher.run())?;
        Ok(Monitor {
            stop,
            thread: Mutex::new(Some(thread)),
            stats,
            pools,
            detects: detect.is_some(),
        })
    }

    /// Whether the monitor watches the workers' polls.
    pub(crate) fn detects(&self) -> bool {
        self.detects
    }

    /// Watches `pool` too (a pool created after the runtime started, whose
    /// workers stamp their polls if the monitor detects). Call before the
    /// pool starts.
    pub(crate) fn watch(&self, pool: Pool) {
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner());
        let Some(thread) = thread.as_ref() else {
            return;
        };
        let me = thread.thread().clone();
        pool.set_observer(Box::new(move || me.unpark()));
        self.pools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(pool);
        thread.thread().unpark();
    }

    pub(crate) fn stats(&self) -> &MonitorStats {
        &self.stats
    }

    /// Stops the thread and waits for it. Idempotent.
    pub(crate) fn stop(&self) {
        self.stop.store(true, SeqCst);
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(thread) = thread {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// The monitor thread's state.
struct Watcher {
    /// The runtime's normal pool: the monitor ends when it closes.
    pool: Pool,
    /// Every pool watched, this one included.
    pools: Arc<Mutex<Vec<Pool>>>,
    tasks: Arc<Registry>,
    /// `None`: polls are not watched.
    config: Option<MonitorConfig>,
    stop: Arc<AtomicBool>,
    stats: Arc<MonitorStats>,
    workers: Vec<Watched>,
    /// Hog offences per spawn location, for the exponentially rarer reports.
    hog_counts: HashMap<Option<&'static Location<'static>>, u64>,
}

/// One worker as the monitor follows it.
struct Watched {
    /// The worker's pool.
    pool: Pool,
    worker: WorkerRef,
    /// Made once the worker's thread id is known; `None` where the platform
    /// offers none.
    probe: Option<Probe>,
    probe_tried: bool,
    poll: Option<PollWatch>,
}

/// One poll seen at more than one tick.
struct PollWatch {
    seen: Seen,
    first_seen: Instant,
    /// The last (wall, CPU time) reading of the worker's thread.
    sample: Option<(Instant, Duration)>,
    /// CPU time used since the first reading.
    cpu_in_poll: Duration,
    verdict: Verdict,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// Counted running; examined at every tick.
    Watching,
    /// Taken out as blocked; still watched in case it turns into a hog.
    Blocked,
    /// Reported as a hog: nothing more to do for this poll.
    Hog,
}

/// What one tick found.
#[derive(Default)]
struct Tick {
    /// Some poll is still counted running (examined at the fast rate).
    watching: bool,
    /// Some blocked poll is followed for hogging (a slow rate suffices).
    following: bool,
}

/// Tells every pool the monitor is about to sleep; false (and awake again)
/// if any of them starves or, when polls are watched, has a worker running.
fn may_sleep(pools: &[Pool]) -> bool {
    for (i, pool) in pools.iter().enumerate() {
        if !pool.observer_may_sleep() {
            pools[..i].iter().for_each(Pool::observer_awake);
            return false;
        }
    }
    true
}

impl Watcher {
    fn run(&mut self) {
        let me = thread::current();
        self.pool.set_observer(Box::new(move || me.unpark()));
        let (tick, slow_tick) = match self.config {
            Some(config) => {
                let tick = config.blocking_threshold / 2;
                (tick, tick.max(config.cpu_intensive_threshold / 2))
            }
            None => (STARVING_TICK, STARVING_TICK),
        };
        while !self.stop.load(SeqCst) && !self.pool.is_closed() {
            let pools = self.pools.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let mut found = Tick::default();
            if self.config.is_some() {
                self.stats.ticks.fetch_add(1, Relaxed);
                found = self.tick(&pools);
            }
            // Work waiting with no worker left to take it or to create
            // another: the pools' mayday timer.
            let mut starving = false;
            for pool in &pools {
                starving |= pool.tend();
            }
            let running = self.config.is_some() && pools.iter().any(|pool| pool.nr_running() > 0);
            if found.watching || running {
                thread::park_timeout(tick);
            } else if found.following {
                thread::park_timeout(slow_tick);
            } else if starving {
                thread::park_timeout(STARVING_TICK);
            } else if may_sleep(&pools) {
                // Deep sleep: no pool starves, and no worker runs (or polls
                // are not watched), so none can get stuck. A pool that
                // starts starving wakes us, and so does the next worker to
                // run (a kick, a return from blocking) if polls are
                // watched; `stop` and `watch` too.
                thread::park();
                pools.iter().for_each(Pool::observer_awake);
            }
        }
    }

    /// Looks at every worker once.
    fn tick(&mut self, pools: &[Pool]) -> Tick {
        let live: Vec<(Pool, WorkerRef)> = pools
            .iter()
            .flat_map(|pool| pool.workers().into_iter().map(move |w| (pool.clone(), w)))
            .collect();
        let unchanged = live.len() == self.workers.len()
            && live
                .iter()
                .zip(&self.workers)
                .all(|((_, l), w)| *l == w.worker);
        if !unchanged {
            // Threads were created or exited: keep what is known of the
            // survivors. O(workers), as is the rest of the tick.
            let mut known: HashMap<usize, Watched> = self
                .workers
                .drain(..)
                .map(|w| (w.worker.key(), w))
                .collect();
            self.workers = live
                .into_iter()
                .map(|(pool, worker)| {
                    known.remove(&worker.key()).unwrap_or(Watched {
                        pool,
                        worker,
                        probe: None,
                        probe_tried: false,
                        poll: None,
                    })
                })
                .collect();
        }
        let now = Instant::now();
        let mut found = Tick::default();
        for i in 0..self.workers.len() {
            match self.examine(i, now) {
                Some(Verdict::Watching) => found.watching = true,
                Some(Verdict::Blocked) => found.following = true,
                Some(Verdict::Hog) | None => {}
            }
        }
        found
    }

    /// Examines worker `i`; returns the verdict on its current poll, if it
    /// is in one the monitor follows.
    fn examine(&mut self, i: usize, now: Instant) -> Option<Verdict> {
        let config = self.config?;
        let watched = &mut self.workers[i];
        let seen = watched.worker.observe();
        if !seen.in_poll() {
            watched.poll = None;
            return None;
        }
        let poll = match &mut watched.poll {
            Some(poll) if poll.seen.seq() == seen.seq() => poll,
            _ => {
                // First sighting of this poll.
                watched.poll = Some(PollWatch {
                    seen,
                    first_seen: now,
                    sample: None,
                    cpu_in_poll: Duration::ZERO,
                    verdict: Verdict::Watching,
                });
                return Some(Verdict::Watching);
            }
        };
        poll.seen = seen;
        if seen.is_annotated() {
            // Inside `wq::blocking`: out of `nr_running` by its own hand.
            return None;
        }
        if poll.verdict == Verdict::Hog {
            return Some(Verdict::Hog);
        }
        if !watched.probe_tried {
            if let Some(tid) = watched.worker.os_tid() {
                watched.probe = Probe::new(tid);
                watched.probe_tried = true;
            }
        }
        // CPU used over the last tick, if this is not the first reading.
        let mut window = None;
        if let Some(cpu) = watched.probe.as_ref().and_then(Probe::cpu_time) {
            if let Some((then, cpu_then)) = poll.sample {
                let used = cpu.saturating_sub(cpu_then);
                poll.cpu_in_poll += used;
                window = Some((now.saturating_duration_since(then), used));
            }
            poll.sample = Some((now, cpu));
        }
        let stuck = now.saturating_duration_since(poll.first_seen) >= config.blocking_threshold;
        match poll.verdict {
            Verdict::Watching if !stuck => Some(Verdict::Watching),
            Verdict::Watching => {
                let verdict = match (watched.probe.as_ref(), window) {
                    // No CPU clock here: stuck-poll time alone decides.
                    (None, _) => Verdict::Blocked,
                    (Some(_), None) => return Some(Verdict::Watching),
                    (Some(_), Some(_)) if poll.cpu_in_poll >= config.cpu_intensive_threshold => {
                        Verdict::Hog
                    }
                    (Some(probe), Some((wall, used))) => {
                        let barely_ran = used * 2 < wall;
                        // A thread preempted by others is runnable, not
                        // blocked: it will run as soon as it gets a CPU.
                        if barely_ran && probe.is_runnable() != Some(true) {
                            Verdict::Blocked
                        } else {
                            return Some(Verdict::Watching);
                        }
                    }
                };
                let task = watched.worker.task_of(seen);
                // Counted before the detection takes effect, so that whoever
                // sees its effect (a task run by the woken worker) also sees
                // it counted; taken back if the poll ended meanwhile.
                let counter = match verdict {
                    Verdict::Hog => &self.stats.hogs,
                    _ => &self.stats.blocked,
                };
                counter.fetch_add(1, Relaxed);
                if !watched.pool.detach_stuck(&watched.worker, seen) {
                    // The poll ended (or entered `wq::blocking`) just now.
                    counter.fetch_sub(1, Relaxed);
                    self.workers[i].poll = None;
                    return None;
                }
                poll.verdict = verdict;
                match verdict {
                    Verdict::Hog => self.report_hog(task, config.cpu_intensive_threshold),
                    _ => {
                        tracing::debug!(
                            task.id = task,
                            "a worker is blocked in a poll; another one takes its place"
                        );
                    }
                }
                Some(verdict)
            }
            Verdict::Blocked => {
                if poll.cpu_in_poll >= config.cpu_intensive_threshold {
                    // Blocked at first, spinning since: out of concurrency
                    // management already; count and report it.
                    poll.verdict = Verdict::Hog;
                    let task = watched.worker.task_of(seen);
                    self.stats.hogs.fetch_add(1, Relaxed);
                    self.report_hog(task, config.cpu_intensive_threshold);
                    return Some(Verdict::Hog);
                }
                Some(Verdict::Blocked)
            }
            Verdict::Hog => Some(Verdict::Hog),
        }
    }

    /// Reports a hog at the 1st, 2nd, 4th, 8th... offence of its spawn
    /// location.
    fn report_hog(&mut self, task: Option<u64>, threshold: Duration) {
        let meta = task.and_then(|id| self.tasks.meta_of(Id::from_u64(id)));
        let location = meta.as_ref().map(|meta| meta.location);
        let count = self.hog_counts.entry(location).or_insert(0);
        *count += 1;
        if !count.is_power_of_two() {
            return;
        }
        let location = match location {
            Some(location) => location.to_string(),
            None => "unknown".to_owned(),
        };
        let name = meta.and_then(|meta| meta.name);
        tracing::warn!(
            task.id = task,
            task.name = name.as_deref(),
            task.spawned_at = %location,
            offences = *count,
            "task hogged a worker: more than {threshold:?} of CPU in one poll; the worker \
             no longer counts toward concurrency until the poll returns (consider \
             `wq::task::spawn_blocking`, or `wq::task::yield_now` in long loops)"
        );
    }
}
