//! The monitor: finds workers stuck in one poll and takes them out of
//! concurrency management, so that blocking or spinning user code does not
//! stall the runtime (cmwq's `wq_worker_sleeping` and CPU_INTENSIVE, for
//! code that cannot call them; Go's sysmon is the model for the thread).
//!
//! # What it watches
//!
//! The runtime's pools: the normal one, and those workqueues create later
//! (high-priority, unbound: `Monitor::watch`).
//!
//! Every worker publishes its poll in a stamp (`pool/stamp.rs`): a sequence
//! number and an in-poll bit, written at each poll start and end. A
//! **tick** reads every worker's stamp. A poll seen at two ticks
//! `blocking_threshold` apart (default 1 ms) is stuck, and is examined:
//!
//! - its thread's CPU time over the last tick advanced by less than half the
//!   tick, and the scheduler says the thread is not runnable: it is
//!   **blocked** (a blocking syscall, a lock, `std::thread::sleep`);
//! - its CPU time within the poll, since it last slept, reached
//!   `cpu_intensive_threshold` (default 10 ms, the kernel's
//!   `wq_cpu_intensive_thresh_us`, which counts from the work item's last
//!   wakeup; a sleep is seen as a new voluntary context switch of the
//!   thread, and the count restarts from the CPU of that tick): it is a
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
//! # Who ticks
//!
//! A tick is due every `blocking_threshold / 2` (500 us by default) while
//! any worker is counted running, and whoever gets there first takes it:
//!
//! - **a running worker**, between two polls: every 61st task it reads the
//!   clock (it does already, for the timers) and, if the tick is due,
//!   claims it (a CAS on the due time: one claimant per period) and ticks
//!   under the watcher's lock (a `try_lock`: if the monitor thread holds
//!   it, that tick is being taken). It then tends the pools (cheap unless
//!   one starves) and, if the monitor thread's alarm is due within
//!   `blocking_threshold`, pushes it back to twice that from now, or to
//!   four times once the workers have ticked without a break for 50 ms
//!   (`alarm.rs`, a timerfd on Linux: one syscall about every other tick,
//!   or every sixth, no wakeup; for a while after a detection, to the
//!   threshold at every tick: see `DeadMan`);
//! - **the monitor thread**, when its alarm goes off. After its own tick it
//!   sets the alarm to one period if the tick found a poll seen at an
//!   earlier tick and still counted running, or took one out (a kicked
//!   worker's first poll may get stuck too): then it keeps the full rate
//!   itself. Otherwise, if a worker ticked since its last tick, to the
//!   dead man's time as a worker's tick would (the workers tick
//!   meanwhile; `DeadMan`); if none did, to 1.25 periods: it ticks, but
//!   leaves the workers a quarter period to take the tick from it. Both
//!   kinds of tick set the alarm under the watcher's lock, so the alarm
//!   follows the last tick's decision.
//!
//! So while workers run short polls the monitor thread sleeps, and a busy
//! runtime pays almost no thread wakeups for its monitor: a hyper server
//! under `wrk` on 2 workers woke it about 2,000 times a second before the
//! workers ticked, and 30 to 150 times since. It wakes when every running
//! worker is stuck (the blocking storm of the benchmarks; one to two
//! thresholds after the last worker's tick, up to four in a runtime that
//! was busy for a while before), or when the
//! workers' polls are too long for a check to come every period. While no
//! worker runs it sleeps either until woken (nothing to do) or for a slow
//! tick (following a blocked poll) or the mayday timer's 10 ms (a pool
//! starves): in each case a worker that starts running wakes it (a flag
//! and one syscall on the kick path), so that the worker's first poll is
//! looked at a period apart like any other (a hog spawned into a fresh,
//! still starving runtime was first seen 10 ms late); from the sleep until
//! woken, a period after the start if a task is queued before then or
//! more than one at the start (one could wait behind a stuck poll of the
//! run), else `LAZY_LOOK` (5 ms)
//! after it, unless the worker went idle before and took the wake back
//! (see the end of this section). A stuck first poll of a worker that
//! started while the thread slept is then first seen at most the whole
//! threshold after it started (at most `LAZY_LOOK` if no task was queued
//! behind it, none waiting for it), and found stuck the threshold after
//! that; a poll that gets stuck while workers tick, at
//! most `latest` (two thresholds) after the last tick if every worker is
//! stuck with it, or `steady` (four) if the workers had ticked without a
//! break for 50 ms before and no detection was recent.
//!
//! A tick from a worker runs exactly the monitor thread's code on the same
//! state (`Watcher`, under its lock); its decisions take effect through
//! `Pool::detach_stuck`, whose protocol does not depend on the thread.
//!
//! # What else a tick does
//!
//! - **CPU time per workqueue** (`CPUtime`), sampled like the kernel's
//!   scheduler tick: each poll in progress and not blocked (and the ticking
//!   worker's last task) adds the time since the previous tick to its
//!   workqueue, at most a quarter more than the gap the previous tick
//!   planned, nothing after a sleep; a poll whose thread's CPU clock was
//!   read at this tick and the one before adds only the share of that time
//!   the thread ran (preempted, on a machine with more running threads
//!   than CPUs, it uses none). A hog stays followed, at the slow rate, for
//!   its CPU time.
//! - **Counters of detections** per workqueue: a hog counts `CPUitsv`, and a
//!   detection that woke an idle worker counts `CMW` (`task::stats`).
//! - **The watchdog** (`watchdog.rs`), on the monitor thread only: a pool
//!   with tasks queued whose workers' poll seqs have not moved for
//!   `watchdog_threshold` is reported.
//!
//! # Cost
//!
//! On the poll path: plain stores and a load on the worker's own cache line
//! (no read-modify-write: see `pool/stamp.rs`).
//! Every 61st task, a clock read and a comparison; every tick period, one
//! worker pays a tick (some atomic loads per worker; a thread's CPU clock
//! read only for polls older than one tick), and about every other tick
//! the alarm's syscall. The
//! monitor thread wakes only as described above, and sleeps without a
//! deadline when no worker runs: the first worker to run again asks for
//! its wake `LAZY_LOOK` later (one flag load on the kick path, and a timer
//! syscall when the flag is set), brought forward to a period after the
//! start if a task is queued meanwhile (a load at every task queued, and a
//! timer syscall once), and takes that wake back if it goes idle before (a
//! second timer syscall): a task that wakes the runtime now and then for a
//! short poll does not wake the monitor (`alarm.rs`), and costs it two
//! timer syscalls that reprogram no timer hardware (`LAZY_LOOK`). An idle
//! runtime costs nothing.

mod alarm;
mod probe;
mod watchdog;

use std::collections::HashMap;
use std::io;
use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use parking_lot::RwLock;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::pool::{Pool, Seen, WorkerRef};
use crate::task::registry::Registry;
use crate::task::stats::{QueueCounters, QueueId, QueueTable};
use crate::task::Id;
use alarm::Alarm;
use probe::Probe;
use watchdog::{InPoll, Watchdog};

/// How often a pool whose work waits with no worker to take it is tended
/// (`Pool::tend`: the worker creation retried once its cooldown has passed,
/// mayday sent after 10 ms and every 100 ms).
const STARVING_TICK: Duration = Duration::from_millis(10);

/// How long after a worker starts running the monitor thread, asleep with
/// nothing to do, wakes to look at its polls, unless a task is queued
/// meanwhile (then one tick period after the start) or the worker goes idle
/// before (then not at all): see "Who ticks". A poll stuck then holds up
/// no task, and a hog alone in such a run is found up to this much later
/// than one looked at from its start.
///
/// Later than the next scheduler tick of the worker's CPU (at most 4 ms
/// away while it runs, at HZ=250), so that the wake is not the CPU's
/// earliest timer: setting it and taking it back leave the timer hardware
/// alone. A wake a period (500 us) away was the earliest, and was set and
/// taken back at every short run: the hardware was reprogrammed twice
/// more per run, each an exit to the hypervisor on a virtual machine. A
/// task sleeping 1 ms at a time on an idle runtime (2-vCPU KVM guest,
/// Linux 6.18, HZ=250) used 55 to 90 us of CPU per wakeup with the monitor
/// and 41 to 47 without (tokio 41 to 47); with the lazy wake, 44 to 48
/// (`perf stat`: still one `hrtimer_start` and one `hrtimer_cancel` per
/// wakeup more than without the monitor, now cheap ones). A C
/// loop on the same machine: setting a timerfd 500 us ahead and disarming
/// it before a 1 ms `usleep` added 11 to 17 us of CPU per round, 10 ms
/// ahead nothing measurable.
const LAZY_LOOK: Duration = Duration::from_millis(5);

/// Default for `Builder::blocking_threshold`.
pub const DEFAULT_BLOCKING_THRESHOLD: Duration = Duration::from_millis(1);
/// Default for `Builder::cpu_intensive_threshold`.
pub const DEFAULT_CPU_INTENSIVE_THRESHOLD: Duration = Duration::from_millis(10);
/// Default for `Builder::watchdog_threshold`: the kernel's
/// `workqueue.watchdog_thresh`, 30 s.
pub const DEFAULT_WATCHDOG_THRESHOLD: Duration = Duration::from_secs(30);
/// The smallest `blocking_threshold` accepted: the monitor ticks twice per
/// threshold, and waking more often than every 50 us would cost a CPU.
pub const MIN_BLOCKING_THRESHOLD: Duration = Duration::from_micros(100);
/// The least non-zero `Builder::watchdog_threshold`.
pub(crate) const MIN_WATCHDOG_THRESHOLD: Duration = Duration::from_millis(10);

/// How a monitor is tuned. Validated by the runtime builder.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MonitorConfig {
    pub(crate) blocking_threshold: Duration,
    pub(crate) cpu_intensive_threshold: Duration,
    /// Zero: no watchdog.
    pub(crate) watchdog_threshold: Duration,
}

/// What the monitor counts, read by the runtime's metrics.
#[derive(Debug, Default)]
pub(crate) struct MonitorStats {
    /// Ticks: looks at the workers, by the monitor thread or by a worker.
    pub(crate) ticks: AtomicU64,
    /// Of which, ticks the monitor thread woke up for.
    pub(crate) wakeups: AtomicU64,
    /// Polls found blocked and taken out of concurrency management.
    pub(crate) blocked: AtomicU64,
    /// Polls found hogging the CPU (taken out, or already out as blocked).
    pub(crate) hogs: AtomicU64,
}

/// The monitor of a runtime's pools: its thread, and what the workers that
/// tick for it share with it.
#[derive(Debug)]
pub(crate) struct Monitor {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// What the monitor thread and the workers ticking for it share.
struct Shared {
    stop: AtomicBool,
    stats: MonitorStats,
    /// The monitor thread's sleep.
    alarm: Arc<Alarm>,
    /// The runtime's normal pool: the monitor ends when it closes.
    pool: Pool,
    /// Every pool watched, the normal one first.
    pools: RwLock<Vec<Pool>>,
    /// What the ticks know of the workers. A worker that finds it taken
    /// skips its tick: someone is ticking.
    watcher: parking_lot::Mutex<Watcher>,
    /// `None`: polls are not watched (the thread only tends starving pools).
    config: Option<MonitorConfig>,
    /// When the next tick is due.
    clock: Arc<TickClock>,
    /// When the thread wakes after a worker's tick.
    dead_man: DeadMan,
    /// A worker ticked since the monitor thread last did.
    worker_ticked: AtomicBool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// The tick schedule: every `blocking_threshold / 2`, by whoever gets there
/// first (a worker between two polls, or the monitor thread).
#[derive(Debug)]
struct TickClock {
    epoch: Instant,
    /// Nanoseconds since `epoch` at which the next tick is due.
    due: AtomicU64,
    period: Duration,
}

impl TickClock {
    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Schedules the next tick one period after `now`.
    fn ticked(&self, now: Instant) {
        self.due.store(self.nanos(now + self.period), Relaxed);
    }

    /// Claims the tick if it is due: true for exactly one caller per period.
    fn claim(&self, now: Instant) -> bool {
        let now_ns = self.nanos(now);
        let due = self.due.load(Relaxed);
        now_ns >= due
            && self
                .due
                .compare_exchange(due, self.nanos(now + self.period), Relaxed, Relaxed)
                .is_ok()
    }
}

/// How long after a worker's tick the monitor thread wakes if no tick came
/// since: at least `soonest`, at most `latest` (`steady` once the workers
/// have ticked without a break for `settle`). A worker ticks every
/// period (at its next check after the tick is due), so the thread wakes
/// only once every running worker is stuck, or runs polls too long for a
/// check to come in time.
///
/// A tick pushes the alarm back to `latest` only if it is due within
/// `soonest` (`Alarm::push_back`): about every other tick. Pushed back at
/// every tick to two periods, the timerfd took ~1,400 syscalls a second
/// under `http_hello` on 2 workers, and the CPUs ~450 timer interrupts a
/// second more than tokio's (the old deadlines' expiries); the server
/// answered 4.5 % more requests without them.
///
/// Polls that get stuck make the monitor *wary*: for `wary_for` after a
/// tick took a blocked or hogging poll's worker out of `nr_running`, every
/// tick sets the alarm to `soonest`, so that if every worker gets stuck
/// the thread looks as soon as it can. Lazy throughout,
/// `http_hello_blocking` (1 request in 100 blocks for 50 ms) answered 7 %
/// to 12 % fewer requests and its p99 rose from 2.6-2.8 to 3.7 ms: there
/// both workers are often stuck at once. (A poll merely seen at two ticks
/// is no sign: on a loaded machine a worker preempted mid-poll is seen so
/// at most ticks.)
///
/// Once the workers have ticked for `settle` (50 ms) with no pause and no
/// look of the thread's own in between, and no detection made the monitor
/// wary, the alarm is pushed back to `steady` (four thresholds) rather
/// than `latest`: a re-arm about every sixth tick rather than every
/// other, and a deadline often past the CPU's next scheduler tick (4 ms at
/// HZ=250), so that moving it does not reprogram the timer hardware.
/// Under `http_hello` on 2 workers (fresh server processes, paired rounds
/// of 8 s, 16 rounds): 6.0 % more requests (95 % CI 1.5 % to 10.7 %),
/// local timer interrupts per 1,000 requests 4.9 -> 4.0, server CPU per
/// request 6.72 -> 6.32 us; eight thresholds did as well (5.6 % in the
/// same rounds, 7.4 % and -0.3 % in two other runs; 3.6 interrupts per
/// 1,000 requests) but doubled the price. The price: in a runtime busy
/// for a while with no stuck poll, the first look after every worker gets
/// stuck at once comes up to four thresholds after the last tick rather
/// than two (a worker stuck while another runs is found by that one's
/// ticks, at the full rate): a task queued then ran after 4.3 to 4.7 ms
/// rather than 2.7 to 2.8 (test
/// `every_worker_stuck_after_a_steady_run_is_found`).
/// A run that starts from quiet is not affected: `blocking_storm` b2/b4
/// p99 timer lateness 2.0/2.6 ms (2.1/2.6 ms before, same session); with
/// `steady` from the first tick (and eight thresholds), 8.3/7.6 ms.
#[derive(Clone, Copy, Debug)]
struct DeadMan {
    soonest: Duration,
    latest: Duration,
    steady: Duration,
    settle: Duration,
    wary_for: Duration,
}

impl DeadMan {
    fn new(period: Duration) -> DeadMan {
        DeadMan {
            soonest: period * 2,
            latest: period * 4,
            steady: period * 8,
            settle: period * 100,
            wary_for: period * 100,
        }
    }

    /// How long the thread may sleep after a tick at `now` if no other
    /// tick comes: `soonest` while wary, else `steady` if the workers have
    /// ticked since `steady_since` for at least `settle`, else `latest`.
    fn gap(&self, wary: bool, steady_since: Option<Instant>, now: Instant) -> Duration {
        if wary {
            self.soonest
        } else if steady_since
            .is_some_and(|since| now.saturating_duration_since(since) >= self.settle)
        {
            self.steady
        } else {
            self.latest
        }
    }

    /// Whether the monitor is wary after a tick at `now` that took a
    /// stuck poll's worker out (`detached`) or not; `until` is the state
    /// kept between ticks.
    fn wary(&self, until: &mut Option<Instant>, detached: bool, now: Instant) -> bool {
        if detached {
            *until = Some(now + self.wary_for);
        }
        until.is_some_and(|until| now < until)
    }

    /// Re-arms the monitor thread's alarm after a worker's tick: to
    /// `soonest` from now while `wary`, else to `gap` if it is due within
    /// `soonest`. Called under the watcher's lock, as the monitor thread
    /// sets the alarm after its own tick, so that the alarm follows the
    /// decision of the last tick: a decision taken before a detection
    /// cannot overwrite the wary one taken after it.
    fn rearm(&self, alarm: &Alarm, wary: bool, gap: Duration) {
        if wary {
            alarm.set(Some(self.soonest));
        } else {
            alarm.push_back(self.soonest, gap);
        }
    }
}

impl Monitor {
    /// Starts the monitor thread for `pool`, whose tasks live in `tasks`.
    /// With `detect`, it watches the workers' polls; in any case it is the
    /// mayday timer of every pool it watches (`Pool::tend`), which costs
    /// nothing until a pool starves.
    pub(crate) fn start(
        pool: Pool,
        tasks: Arc<Registry>,
        queues: Arc<QueueTable>,
        detect: Option<MonitorConfig>,
    ) -> io::Result<Monitor> {
        let period = detect.map_or(STARVING_TICK, |config| config.blocking_threshold / 2);
        let epoch = Instant::now();
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            stats: MonitorStats::default(),
            alarm: Arc::new(Alarm::new()?),
            pool: pool.clone(),
            pools: RwLock::new(Vec::new()),
            watcher: parking_lot::Mutex::new(Watcher {
                tasks,
                queues,
                last_tick: None,
                planned_gap: Duration::ZERO,
                wary_until: None,
                steady_since: None,
                workers: Vec::new(),
                hog_counts: HashMap::new(),
            }),
            config: detect,
            clock: Arc::new(TickClock {
                epoch,
                due: AtomicU64::new(0),
                period,
            }),
            dead_man: DeadMan::new(period),
            worker_ticked: AtomicBool::new(false),
        });
        shared.watch(pool);
        let thread = {
            let shared = shared.clone();
            thread::Builder::new()
                .name("wq-monitor".to_owned())
                .spawn(move || shared.run())?
        };
        Ok(Monitor {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Whether the monitor watches the workers' polls.
    pub(crate) fn detects(&self) -> bool {
        self.shared.config.is_some()
    }

    /// Watches `pool` too (a pool created after the runtime started, whose
    /// workers stamp their polls if the monitor detects). Call before the
    /// pool starts.
    pub(crate) fn watch(&self, pool: Pool) {
        if self
            .thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
        {
            self.shared.watch(pool);
        }
    }

    pub(crate) fn stats(&self) -> &MonitorStats {
        &self.shared.stats
    }

    /// Workers of `pool` whose current poll was found hogging the CPU (out
    /// of concurrency management as CPU-intensive), as of the last tick.
    pub(crate) fn hogging_workers(&self, pool: &Pool) -> usize {
        let watcher = self.shared.watcher.lock();
        watcher
            .workers
            .iter()
            .filter(|w| w.pool.same(pool))
            .filter(|w| {
                let seen = w.worker.observe();
                matches!(&w.poll, Some(poll)
                    if poll.verdict == Verdict::Hog && seen.in_poll() && poll.seen.seq() == seen.seq())
            })
            .count()
    }

    /// Stops the thread and waits for it. Idempotent.
    pub(crate) fn stop(&self) {
        self.shared.stop.store(true, SeqCst);
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(thread) = thread {
            self.shared.alarm.wake();
            let _ = thread.join();
        }
    }
}

/// What the ticks know of the workers.
struct Watcher {
    tasks: Arc<Registry>,
    /// The workqueues' counters: sampled CPU time, CPU-intensive
    /// violations, concurrency-management wakeups.
    queues: Arc<QueueTable>,
    /// When the previous tick looked.
    last_tick: Option<Instant>,
    /// How long after the previous tick the next was planned (the monitor
    /// thread's alarm, or the dead man's time a worker's tick set); zero if
    /// the monitor then slept until woken, the workers being idle.
    planned_gap: Duration,
    /// Until when the dead man stays at its shortest (`DeadMan`).
    wary_until: Option<Instant>,
    /// Since when the workers have ticked with no look of the monitor
    /// thread's own in between (`DeadMan::steady`).
    steady_since: Option<Instant>,
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
    /// The last reading of the worker's thread.
    sample: Option<Sample>,
    /// CPU time used since the first reading, or since the thread last
    /// slept (see `examine`).
    cpu_in_poll: Duration,
    /// (wall, CPU) time between the last two readings, if the last tick
    /// took one: the share of the window the thread ran, for its CPU time.
    window: Option<(Duration, Duration)>,
    verdict: Verdict,
}

/// One reading of a worker's thread.
#[derive(Clone, Copy)]
struct Sample {
    at: Instant,
    cpu: Duration,
    /// Times it had slept (`Probe::sleeps`), if that can be read.
    sleeps: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// Counted running; examined at every tick.
    Watching,
    /// Taken out as blocked; still watched in case it turns into a hog.
    Blocked,
    /// Reported as a hog; followed at the slow rate for its CPU time only.
    Hog,
}

/// What one tick found of one worker's poll.
enum Look {
    /// A poll seen for the first time, counted running.
    New,
    /// A poll seen at an earlier tick too, still counted running: it may be
    /// stuck.
    Suspect,
    /// A poll taken out of concurrency management at this tick (an idle
    /// worker was woken, and its first poll may get stuck as well).
    Detached,
    /// A poll taken out as blocked earlier, followed in case it turns into
    /// a hog; or a hog, followed for its workqueue's CPU time.
    Following,
}

/// What one tick found.
#[derive(Default)]
struct Tick {
    /// Some poll is counted running.
    watching: bool,
    /// Some poll may be stuck, or was just detached: the monitor thread
    /// ticks at the full rate itself, rather than leave it to the workers.
    suspect: bool,
    /// Some blocked poll is followed for hogging (a slow rate suffices).
    following: bool,
    /// A poll was found blocked or hogging, and its worker taken out of
    /// `nr_running`.
    detached: bool,
}

/// Tells every pool the monitor is about to sleep (`Pool::observer_may_sleep`
/// for a sleep until woken, `Pool::observer_may_doze` for a timed one);
/// false, and awake again in every pool told, if any of them refuses (it
/// starves, or, when polls are watched, has a worker running).
fn may_sleep(pools: &[Pool], ask: fn(&Pool) -> bool) -> bool {
    for (i, pool) in pools.iter().enumerate() {
        if !ask(pool) {
            pools[..i].iter().for_each(Pool::observer_awake);
            return false;
        }
    }
    true
}

impl Shared {
    /// Adds `pool` to the pools watched: its starvation (and, if polls are
    /// watched, its first running worker) wakes the thread, and its running
    /// workers tick.
    fn watch(self: &Arc<Self>, pool: Pool) {
        let alarm = self.alarm.clone();
        pool.set_observer(Box::new(move || alarm.wake()));
        if self.config.is_some() {
            let (asker, hurrier, taker) =
                (self.alarm.clone(), self.alarm.clone(), self.alarm.clone());
            let period = self.clock.period;
            pool.set_soon_observer(
                Box::new(move || asker.wake_soon(period.max(LAZY_LOOK))),
                Box::new(move |token| hurrier.hurry(token, period)),
                Box::new(move |token| taker.cancel_soon(token)),
            );
            let clock = self.clock.clone();
            let shared = Arc::downgrade(self);
            pool.set_ticker(Box::new(move |queue| {
                let now = Instant::now();
                if clock.claim(now) {
                    if let Some(shared) = shared.upgrade() {
                        shared.tick_from_worker(now, QueueId(queue));
                    }
                }
            }));
        }
        self.pools.write().push(pool);
        self.alarm.wake();
    }

    /// A worker between two polls found the tick due and claimed it: it
    /// ticks, and pushes the monitor thread's alarm back (`DeadMan`).
    /// `queue` is the workqueue of the task it polled last.
    fn tick_from_worker(&self, now: Instant, queue: QueueId) {
        let Some(config) = self.config else {
            return;
        };
        let pools = self.pools.read();
        // If the lock is taken, the monitor thread (or another worker, a
        // tick ago) is ticking and sets the alarm itself, or a metrics
        // reader holds it: the alarm is left as it is, due sooner if
        // anything.
        if let Some(mut watcher) = self.watcher.try_lock() {
            self.stats.ticks.fetch_add(1, Relaxed);
            // A tick after a pause (the workers were idle, or their polls
            // too long to tick) starts a new steady run.
            let paused = watcher
                .last_tick
                .is_none_or(|then| now.saturating_duration_since(then) > self.dead_man.latest);
            if paused {
                watcher.steady_since = None;
            }
            let found = watcher.tick(&pools, config, &self.stats, now, Some(queue));
            let wary = self
                .dead_man
                .wary(&mut watcher.wary_until, found.detached, now);
            let steady_since = *watcher.steady_since.get_or_insert(now);
            let gap = self.dead_man.gap(wary, Some(steady_since), now);
            watcher.planned_gap = gap;
            self.worker_ticked.store(true, Relaxed);
            self.dead_man.rearm(&self.alarm, wary, gap);
        }
        for pool in pools.iter() {
            pool.tend();
        }
    }

    fn run(&self) {
        let (tick, slow_tick) = match self.config {
            Some(config) => {
                let tick = self.clock.period;
                (tick, tick.max(config.cpu_intensive_threshold / 2))
            }
            None => (STARVING_TICK, STARVING_TICK),
        };
        let mut watchdog = self
            .config
            .map(|config| config.watchdog_threshold)
            .filter(|threshold| !threshold.is_zero())
            .map(Watchdog::new);
        while !self.stop.load(SeqCst) && !self.pool.is_closed() {
            let pools = self.pools.read().clone();
            let mut found = Tick::default();
            if let Some(config) = self.config {
                let now = Instant::now();
                self.clock.ticked(now);
                self.stats.ticks.fetch_add(1, Relaxed);
                self.stats.wakeups.fetch_add(1, Relaxed);
                let mut watcher = self.watcher.lock();
                found = watcher.tick(&pools, config, &self.stats, now, None);
                // Records a detection; whether it leaves us wary is read
                // again when the alarm is set, below.
                self.dead_man
                    .wary(&mut watcher.wary_until, found.detached, now);
            }
            // Work waiting with no worker left to take it or to create
            // another: the pools' mayday timer.
            let mut starving = false;
            for pool in &pools {
                starving |= pool.tend();
            }
            let mut queued = false;
            if let Some(watchdog) = &mut watchdog {
                self.watch_for_stalls(watchdog, &pools);
                queued = pools.iter().any(Pool::has_due_work);
            }
            let running = self.config.is_some() && pools.iter().any(|pool| pool.nr_running() > 0);
            let workers_tick = self.worker_ticked.swap(false, Relaxed);
            // Whether nothing but the watchdog (if anything) calls for the
            // next look: then the thread sleeps as it does with nothing to
            // do, woken by the next worker to run or pool to starve.
            let mut idle = false;
            // Running workers tick meanwhile, and push the alarm back: the
            // dead man's gap, set under the watcher's lock below.
            let dead_man = !found.suspect && (found.watching || running) && workers_tick;
            let mut next = if found.suspect {
                Some(tick)
            } else if dead_man {
                None
            } else if found.watching || running {
                // No worker ticked since our last tick: we tick, but leave
                // the workers a quarter period to take the tick from us.
                Some(tick + tick / 4)
            } else if found.following {
                Some(slow_tick)
            } else if starving {
                Some(STARVING_TICK)
            } else if queued {
                // Tasks are queued: the watchdog must see whether they
                // start, even if no worker runs (a lost wakeup would be a
                // bug, and a stall all the same).
                idle = true;
                watchdog.as_ref().map(Watchdog::max_sleep)
            } else {
                idle = true;
                None
            };
            // The alarm is set under the watcher's lock, as a worker's tick
            // re-arms it (`DeadMan::rearm`): a worker's tick since ours may
            // have made the monitor wary, and its alarm must stand.
            let mut watcher = self.config.map(|_| self.watcher.lock());
            if let Some(watcher) = &mut watcher {
                if !workers_tick {
                    // We looked for want of a worker's tick: the workers'
                    // steady run, if any, is over.
                    watcher.steady_since = None;
                }
                if dead_man {
                    let now = Instant::now();
                    let wary = self.dead_man.wary(&mut watcher.wary_until, false, now);
                    next = Some(self.dead_man.gap(wary, watcher.steady_since, now));
                }
                watcher.planned_gap = next.unwrap_or(Duration::ZERO);
            }
            self.alarm.set(next);
            drop(watcher);
            let dozing = !(idle || found.watching || running);
            if dozing {
                // A slow tick or the mayday timer's, with no worker
                // running: one that starts running meanwhile wakes us
                // (its polls are looked at a period apart from its start,
                // not after this sleep); if one runs already, look again
                // now.
                if may_sleep(&pools, Pool::observer_may_doze) {
                    self.alarm.wait();
                    pools.iter().for_each(Pool::observer_awake);
                }
            } else if !idle {
                // Running workers tick meanwhile and push the alarm back.
                self.alarm.wait();
            } else if may_sleep(&pools, Pool::observer_may_sleep) {
                // Deep sleep: no pool starves, and no worker runs (or polls
                // are not watched), so none can get stuck. A pool that
                // starts starving wakes us, and so does the next worker to
                // run (a kick, a return from blocking) if polls are
                // watched; `stop` and `watch` too. With tasks queued, the
                // watchdog's look is due at `next` at the latest: until
                // then, only such a wake would end the sleep, and without
                // the flag nothing would wake us (a worker kicked a moment
                // after our look could get stuck unwatched, a pool starve
                // without its mayday, for the watchdog's whole period).
                // A worker that starts running asks for our wake
                // `LAZY_LOOK` later (a period, once a task is queued), and
                // takes it back if it goes idle before (`alarm.rs`): a
                // task that runs now and then does not wake us each time.
                self.alarm.wait_deep();
                pools.iter().for_each(Pool::observer_awake);
            }
        }
    }
}

impl Shared {
    /// The watchdog's check, and the reports of the stalls it finds.
    fn watch_for_stalls(&self, watchdog: &mut Watchdog, pools: &[Pool]) {
        let now = Instant::now();
        for stall in watchdog.check(pools, now) {
            let watcher = self.watcher.lock();
            let in_poll = watcher.in_poll_of(&stall.pool, now);
            let (tasks, queues) = (watcher.tasks.clone(), watcher.queues.clone());
            drop(watcher);
            watchdog::report(&stall, &in_poll, &tasks, &queues);
        }
    }
}

impl Watcher {
    /// The polls in progress on the workers of `pool`, with how long the
    /// monitor has seen each running (zero for one not seen at a tick yet).
    fn in_poll_of(&self, pool: &Pool, now: Instant) -> Vec<InPoll> {
        pool.workers()
            .iter()
            .filter_map(|worker| {
                let seen = worker.observe();
                if !seen.in_poll() {
                    return None;
                }
                let (task, queue) = worker.task_of(seen)?;
                let for_at_least = self
                    .workers
                    .iter()
                    .find(|w| &w.worker == worker)
                    .and_then(|w| w.poll.as_ref())
                    .filter(|poll| poll.seen.seq() == seen.seq())
                    .map_or(Duration::ZERO, |poll| {
                        now.saturating_duration_since(poll.first_seen)
                    });
                Some(InPoll {
                    task,
                    queue: QueueId(queue),
                    for_at_least,
                })
            })
            .collect()
    }

    /// Looks at every worker once. `looker` is the workqueue of the task
    /// the ticking worker polled last, if a worker ticks.
    ///
    /// Each tick also samples the workqueues' CPU time, as the kernel's
    /// scheduler tick does (`wq_worker_tick`): every poll in progress that
    /// is not blocked (and the ticking worker's last task) adds the time
    /// since the previous tick to its workqueue: at most a quarter more
    /// than the gap the previous tick planned (a longer one means the
    /// workers were idle meanwhile), nothing after a sleep until woken.
    fn tick(
        &mut self,
        pools: &[Pool],
        config: MonitorConfig,
        stats: &MonitorStats,
        now: Instant,
        looker: Option<QueueId>,
    ) -> Tick {
        let cap = self.planned_gap + self.planned_gap / 4;
        let credit = self.last_tick.map_or(Duration::ZERO, |then| {
            now.saturating_duration_since(then).min(cap)
        });
        self.last_tick = Some(now);
        if let Some(queue) = looker {
            if !credit.is_zero() {
                self.queues.with(queue, |c| c.add_cpu_time(credit));
            }
        }
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
        let mut found = Tick::default();
        for i in 0..self.workers.len() {
            let seen = self.workers[i].worker.observe();
            let look = self.examine(i, seen, config, stats, now);
            if !credit.is_zero() {
                self.sample_cpu_time(i, seen, credit);
            }
            match look {
                Some(Look::New) => found.watching = true,
                Some(Look::Suspect) => {
                    found.watching = true;
                    found.suspect = true;
                }
                Some(Look::Detached) => {
                    found.suspect = true;
                    found.following = true;
                    found.detached = true;
                }
                Some(Look::Following) => found.following = true,
                None => {}
            }
        }
        found
    }

    /// Examines worker `i`; returns what the tick found of its current
    /// poll, if it is one the monitor follows.
    fn examine(
        &mut self,
        i: usize,
        seen: Seen,
        config: MonitorConfig,
        stats: &MonitorStats,
        now: Instant,
    ) -> Option<Look> {
        let watched = &mut self.workers[i];
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
                    window: None,
                    verdict: Verdict::Watching,
                });
                return Some(Look::New);
            }
        };
        poll.seen = seen;
        if seen.is_annotated() {
            // Inside `wq::blocking`: out of `nr_running` by its own hand.
            return None;
        }
        if !watched.probe_tried {
            if let Some(tid) = watched.worker.os_tid() {
                watched.probe = Probe::new(tid);
                watched.probe_tried = true;
            }
        }
        // CPU used over the last tick, if this is not the first reading.
        let mut window = None;
        if let Some(probe) = watched.probe.as_ref() {
            if let Some(cpu) = probe.cpu_time() {
                let sleeps = probe.sleeps();
                if let Some(then) = poll.sample {
                    let used = cpu.saturating_sub(then.cpu);
                    // As the kernel's CPU-intensive check, which counts from
                    // the work item's last wakeup: a poll that slept in
                    // this window counts only the CPU of the window (more
                    // than it used since it woke), so that one that sleeps
                    // between short bursts is never a hog, however much CPU
                    // its bursts add up to.
                    let slept = matches!((then.sleeps, sleeps), (Some(a), Some(b)) if b != a);
                    poll.cpu_in_poll = if slept { used } else { poll.cpu_in_poll + used };
                    window = Some((now.saturating_duration_since(then.at), used));
                }
                poll.sample = Some(Sample {
                    at: now,
                    cpu,
                    sleeps,
                });
            }
        }
        poll.window = window;
        if poll.verdict == Verdict::Hog {
            // Followed at the slow rate, for its CPU time.
            return Some(Look::Following);
        }
        let stuck = now.saturating_duration_since(poll.first_seen) >= config.blocking_threshold;
        match poll.verdict {
            Verdict::Watching if !stuck => Some(Look::Suspect),
            Verdict::Watching => {
                let verdict = match (watched.probe.as_ref(), window) {
                    // No CPU clock here: stuck-poll time alone decides.
                    (None, _) => Verdict::Blocked,
                    (Some(_), None) => return Some(Look::Suspect),
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
                            return Some(Look::Suspect);
                        }
                    }
                };
                let task = watched.worker.task_of(seen);
                // Counted before the detection takes effect, so that whoever
                // sees its effect (a task run by the woken worker) also sees
                // it counted; taken back if the poll ended meanwhile.
                let counter = match verdict {
                    Verdict::Hog => &stats.hogs,
                    _ => &stats.blocked,
                };
                counter.fetch_add(1, Relaxed);
                let Some(detached) = watched.pool.detach_stuck(&watched.worker, seen) else {
                    // The poll ended (or entered `wq::blocking`) just now.
                    counter.fetch_sub(1, Relaxed);
                    self.workers[i].poll = None;
                    return None;
                };
                poll.verdict = verdict;
                let queue = task.map(|(_, queue)| QueueId(queue));
                let task = task.map(|(id, _)| id);
                if detached.woke {
                    self.count(queue, QueueCounters::add_cm_wakeup);
                }
                match verdict {
                    Verdict::Hog => {
                        self.count(queue, QueueCounters::add_cpu_intensive);
                        self.report_hog(task, config.cpu_intensive_threshold);
                    }
                    _ => {
                        tracing::debug!(
                            task.id = task,
                            "a worker is blocked in a poll; another one takes its place"
                        );
                    }
                }
                Some(Look::Detached)
            }
            Verdict::Blocked => {
                if poll.cpu_in_poll >= config.cpu_intensive_threshold {
                    // Blocked at first, spinning since: out of concurrency
                    // management already; count and report it.
                    poll.verdict = Verdict::Hog;
                    let task = watched.worker.task_of(seen);
                    stats.hogs.fetch_add(1, Relaxed);
                    self.count(
                        task.map(|(_, q)| QueueId(q)),
                        QueueCounters::add_cpu_intensive,
                    );
                    self.report_hog(task.map(|(id, _)| id), config.cpu_intensive_threshold);
                    return Some(Look::Following);
                }
                Some(Look::Following)
            }
            Verdict::Hog => Some(Look::Following),
        }
    }

    /// Adds to a counter of the workqueue `queue`, if the poll's queue is
    /// known (the poll did not end while it was read).
    fn count(&self, queue: Option<QueueId>, add: fn(&QueueCounters)) {
        if let Some(queue) = queue {
            self.queues.with(queue, add);
        }
    }

    /// Adds `credit` to the CPU time of the workqueue whose task worker `i`
    /// polls in `seen`, unless the poll is in `wq::blocking` or was found
    /// blocked (it does not use the CPU). For a poll whose thread's CPU
    /// clock was read at this tick and the one before, only the share of
    /// `credit` the thread ran (a preempted poll, on a machine with more
    /// running threads than CPUs, does not use the CPU either).
    fn sample_cpu_time(&self, i: usize, seen: Seen, mut credit: Duration) {
        let watched = &self.workers[i];
        if !seen.in_poll() || seen.is_annotated() {
            return;
        }
        let poll = watched
            .poll
            .as_ref()
            .filter(|poll| poll.seen.seq() == seen.seq());
        if let Some(poll) = poll {
            if poll.verdict == Verdict::Blocked {
                return;
            }
            if let Some((wall, used)) = poll.window.filter(|(wall, _)| !wall.is_zero()) {
                let ran = (used.as_secs_f64() / wall.as_secs_f64()).min(1.0);
                credit = credit.mul_f64(ran);
            }
        }
        if let Some((_, queue)) = watched.worker.task_of(seen) {
            self.queues.with(QueueId(queue), |c| c.add_cpu_time(credit));
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_dead_man_is_lazy_until_a_detection_and_wary_for_a_while_after() {
        let period = Duration::from_micros(500);
        let dead_man = DeadMan::new(period);
        let (mut until, start) = (None, Instant::now());
        assert!(!dead_man.wary(&mut until, false, start));
        assert_eq!(dead_man.gap(false, Some(start), start), period * 4);
        assert!(dead_man.wary(&mut until, true, start));
        assert_eq!(dead_man.gap(true, Some(start), start), period * 2);
        let later = start + period * 99;
        assert!(dead_man.wary(&mut until, false, later));
        assert!(!dead_man.wary(&mut until, false, start + period * 100));
        // A new detection makes it wary again, counted from then.
        let again = start + period * 150;
        assert!(dead_man.wary(&mut until, true, again));
        assert!(dead_man.wary(&mut until, false, again + period * 99));
    }

    #[test]
    fn the_dead_man_waits_longer_once_the_workers_tick_steadily() {
        let period = Duration::from_micros(500);
        let dead_man = DeadMan::new(period);
        let start = Instant::now();
        let settled = start + period * 100;
        assert_eq!(dead_man.gap(false, None, settled), period * 4);
        assert_eq!(
            dead_man.gap(false, Some(start), settled - period),
            period * 4
        );
        assert_eq!(dead_man.gap(false, Some(start), settled), period * 8);
        // Wary wins over steady.
        assert_eq!(dead_man.gap(true, Some(start), settled), period * 2);
    }

    #[test]
    fn a_tick_re_arms_the_alarm_lazily_unless_wary() {
        let period = Duration::from_millis(100);
        let dead_man = DeadMan::new(period);
        let alarm = Alarm::new().unwrap();
        // Due in 3 periods, beyond `soonest`: a lazy tick leaves it alone
        // (unless this thread slept a period since the set).
        alarm.set(Some(period * 3));
        let set = alarm.own_deadline();
        let start = Instant::now();
        dead_man.rearm(&alarm, false, period * 4);
        if start.elapsed() < period / 2 {
            assert_eq!(alarm.own_deadline(), set);
        }
        // Due within `soonest`: pushed back to `latest`.
        alarm.set(Some(period));
        let before = Instant::now();
        dead_man.rearm(&alarm, false, period * 4);
        let own = alarm.own_deadline().expect("a deadline");
        assert!(own >= before + period * 4 && own <= Instant::now() + period * 4);
        // Wary: brought forward to `soonest`, from wherever it was.
        let before = Instant::now();
        dead_man.rearm(&alarm, true, period * 4);
        let own = alarm.own_deadline().expect("a deadline");
        assert!(own >= before + period * 2 && own <= Instant::now() + period * 2);
    }
}
