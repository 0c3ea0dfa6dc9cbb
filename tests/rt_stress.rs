//! Seeded stress test: random mixes of spawns, nested spawns, yields,
//! timers (sleeps, timeouts that fire and that do not, intervals), panics,
//! aborts, blocking sections (in `wq::blocking`, and plain sleeps inside a
//! poll that the monitor must find), CPU spins (short ones, and hogs held
//! until the monitor counts them), channel traffic, join sets, and tasks on
//! workqueues (a `max_active` queue, an ordered queue, a `mem_reclaim`
//! queue whose rescuer must run a task while every worker is blocked), on
//! runtimes of random shape (multi-thread or current-thread, detection
//! thresholds), checked against exact invariants: every future dropped
//! exactly once, every outcome the one intended, every handle resolved, no
//! thread beyond `max_workers`, no task left alive, no timer left pending,
//! never more than `max_active` tasks of a queue in flight, an ordered
//! queue's tasks one at a time in spawn order, and each workqueue's figures
//! balanced (`total` = `completed` = the tasks the harness queued, nothing
//! active or waiting) once everything is joined or shut down.
//!
//! Each run draws its whole plan (runtime shape, operations, how it ends)
//! from one 64-bit seed. Thread scheduling is not seeded: a seed replays the
//! same operations, not the same interleaving.
//!
//! Environment variables:
//! - `WQ_STRESS_SEED`: run this seed first (decimal, or hex with `0x`), as
//!   printed in a failure message; by default seeds are derived from the
//!   clock.
//! - `WQ_STRESS_RUNS`: how many runs (default 8, or 1 when `WQ_STRESS_SEED`
//!   is set).
//! - `WQ_STRESS_OPS`: operations per run (default 600). A seed replays the
//!   same operations only with the same value.
//! - `WQ_STRESS_TRACE` (any value): print each operation, and each deferred
//!   check as it starts and ends, on stderr: where a hanging seed stops.
//! - `WQ_STRESS_SOAK_SECS`: a soak: runs back to back for this many seconds
//!   (instead of `WQ_STRESS_RUNS`), with the process's resident set and
//!   thread count sampled every second. At the end the test prints them per
//!   minute, writes every sample to `WQ_STRESS_SOAK_CSV` (default
//!   `target/rt_stress_soak.csv`), and fails if either grew from the second
//!   minute to the last (`tests/support/soak.rs`). The soak in
//!   BENCHMARKS.md is `WQ_STRESS_SOAK_SECS=600 cargo test --release --test
//!   rt_stress -- --nocapture`.
//!
//! A failure panics with `seed 0x...: ` followed by what broke. A run that
//! hangs is reported the same way on stderr and aborts the process.
//!
//! The defaults are the short mode `cargo test --workspace` runs: a second
//! or two in a debug build on two cores (the operations that wait for
//! timers, blocked polls, hogs and maydays take milliseconds each, so a run
//! is 600 operations). Races show up rarely per run, so for a soak raise
//! the run count (and the operations per run) in a release build, and
//! repeat it while the machine is busy with other work (load changes the
//! interleavings): about 20 s per 100 runs of the default length in a
//! release build on two cores, a minute per 100 runs of 2000 operations.
//!
//! ```text
//! WQ_STRESS_RUNS=500 cargo test --release --test rt_stress -- --nocapture
//! WQ_STRESS_RUNS=100 WQ_STRESS_OPS=2000 cargo test --release --test rt_stress
//! WQ_STRESS_RUNS=20 WQ_STRESS_OPS=20000 cargo test --release --test rt_stress
//! ```

mod support;

use std::any::Any;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::future::{pending, Future};
use std::io::Write as _;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex, Once};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::{threads_named, Counters, Latch};
use wq::task::{yield_now, AbortHandle, Id, JoinError, JoinHandle, JoinSet};
use wq::time::error::Elapsed;

/// Every panic a task raises on purpose starts with this.
const MARK: &str = "wq-stress: intended panic";
const DEFAULT_RUNS: usize = 8;
const DEFAULT_OPS: usize = 600;
/// Bound on each wait for a condition the runtime must reach on its own.
const WAIT_LIMIT: Duration = Duration::from_secs(30);

type Check = Pin<Box<dyn Future<Output = ()>>>;
type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send>>;

// ---------------------------------------------------------------------------
// Randomness

/// SplitMix64: tiny, deterministic, good enough to draw plans from.
struct Rng(u64);

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        splitmix(self.0)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn value(&mut self) -> u64 {
        self.next() % 1_000_000
    }

    fn via(&mut self) -> Via {
        [Via::Spawn, Via::Current, Via::Handle][self.below(3)]
    }

    fn work(&mut self) -> Work {
        if self.chance(50) {
            Work::Sleep(self.below(2001) as u64)
        } else {
            Work::Spin(self.range(1, 20) as u64)
        }
    }
}

/// The blocking workload of a task: a short sleep or a short spin.
#[derive(Clone, Copy, Debug)]
enum Work {
    Sleep(u64),
    Spin(u64),
}

impl Work {
    fn run(self) {
        match self {
            Work::Sleep(us) => std::thread::sleep(Duration::from_micros(us)),
            Work::Spin(us) => spin(Duration::from_micros(us)),
        }
    }
}

/// Spins on the CPU (never sleeping, never yielding) for `d` of wall time.
fn spin(d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        std::hint::spin_loop();
    }
}

/// How a task is spawned.
#[derive(Clone, Copy, Debug)]
enum Via {
    /// `wq::spawn` (the current runtime).
    Spawn,
    /// `wq::Handle::current().spawn`.
    Current,
    /// A stored `wq::Handle`.
    Handle,
}

/// Where a task is queued: the `system` queue (`wq::spawn` and friends),
/// or one of the run's workqueues (an index into `Shared::queues`).
#[derive(Clone, Copy, Debug)]
enum Target {
    System(Via),
    Queue(usize),
}

/// The run's workqueues, by index in `Shared::queues`.
const LIMITED: usize = 0;
const ORDERED: usize = 1;
/// Present only in runs that have a `mem_reclaim` queue.
const RECLAIM: usize = 2;

/// One step of a task's body, between which it may be polled again.
#[derive(Clone, Copy, Debug)]
enum Step {
    Yield,
    /// `wq::time::sleep` for this many microseconds.
    Sleep(u64),
    /// Inside `wq::blocking`.
    Blocking(Work),
    /// `std::thread::sleep` inside the poll, without a word (microseconds):
    /// the monitor's to find.
    Unannotated(u64),
    /// Spins inside the poll (microseconds), without a word.
    Spin(u64),
}

impl Rng {
    /// A timer's duration: up to 1 ms mostly, up to 5 ms sometimes.
    fn delay(&mut self) -> Duration {
        let max = if self.chance(25) { 5000 } else { 1000 };
        Duration::from_micros(self.below(max + 1) as u64)
    }

    /// Up to `max` steps of a task body; every kind of step is short.
    fn steps(&mut self, max: usize) -> Vec<Step> {
        (0..self.below(max + 1))
            .map(|_| match self.below(10) {
                0..=3 => Step::Yield,
                4 | 5 => Step::Sleep(self.below(1001) as u64),
                6 | 7 => Step::Blocking(self.work()),
                8 => Step::Unannotated(self.range(100, 1000) as u64),
                _ => Step::Spin(self.range(10, 500) as u64),
            })
            .collect()
    }
}

async fn run_steps(steps: Vec<Step>) {
    for step in steps {
        match step {
            Step::Yield => yield_now().await,
            Step::Sleep(us) => wq::time::sleep(Duration::from_micros(us)).await,
            Step::Blocking(work) => wq::blocking(|| work.run()),
            Step::Unannotated(us) => std::thread::sleep(Duration::from_micros(us)),
            Step::Spin(us) => spin(Duration::from_micros(us)),
        }
    }
}

// ---------------------------------------------------------------------------
// Bookkeeping

/// What a spawned future is meant to do; each kind has its own exact
/// invariants, checked by `verify_outcomes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Runs to completion: `Ok` with the intended value.
    Value,
    /// Panics: a panic `JoinError`, never completes.
    Panic,
    /// Cancelled before its first poll: never polled.
    Unpolled,
    /// Cancelled after a poll that returned `Pending`.
    PolledCancel,
    /// Never completes and is cancelled (abort or shutdown), polled or not.
    Cancel,
    /// Races with an abort or a shutdown: `Ok` with its value, or cancelled.
    Racer,
}

const KINDS: [Kind; 6] = [
    Kind::Value,
    Kind::Panic,
    Kind::Unpolled,
    Kind::PolledCancel,
    Kind::Cancel,
    Kind::Racer,
];

#[derive(Default)]
struct Cat {
    counters: Counters,
    spawned: AtomicUsize,
    /// Spawned with no handle that will ever be joined (detached, or the
    /// handle is dropped with its owner).
    unjoined: AtomicUsize,
    /// Detached `Value` futures that reached their end.
    unjoined_done: AtomicUsize,
    ok: AtomicUsize,
    cancelled: AtomicUsize,
    panicked: AtomicUsize,
}

impl Cat {
    fn snapshot(&self) -> Snap {
        Snap {
            spawned: self.spawned.load(SeqCst),
            unjoined: self.unjoined.load(SeqCst),
            unjoined_done: self.unjoined_done.load(SeqCst),
            polls: self.counters.polls(),
            drops: self.counters.drops(),
            completions: self.counters.completions(),
            ok: self.ok.load(SeqCst),
            cancelled: self.cancelled.load(SeqCst),
            panicked: self.panicked.load(SeqCst),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Snap {
    spawned: usize,
    unjoined: usize,
    unjoined_done: usize,
    polls: usize,
    drops: usize,
    completions: usize,
    ok: usize,
    cancelled: usize,
    panicked: usize,
}

/// One of the run's workqueues, and what the harness knows of it.
struct Queue {
    queue: wq::Workqueue,
    max_active: usize,
    ordered: bool,
    /// Tasks queued on it for sure: spawned, or delayed with a delay that
    /// ended before the run did.
    queued: AtomicUsize,
    /// Delayed tasks whose delay may or may not have ended before the
    /// shutdown (if it did, they were queued).
    maybe_queued: AtomicUsize,
    /// Tasks between their first poll and the drop of their future, and the
    /// most seen at once.
    in_flight: AtomicUsize,
    high_water: AtomicUsize,
    /// Sequence numbers in spawn order (only the driver spawns on the
    /// ordered queue), and the highest that started.
    next_seq: AtomicU64,
    last_started: AtomicU64,
}

impl Queue {
    fn new(queue: wq::Workqueue, max_active: usize, ordered: bool) -> Queue {
        Queue {
            queue,
            max_active,
            ordered,
            queued: AtomicUsize::new(0),
            maybe_queued: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            high_water: AtomicUsize::new(0),
            next_seq: AtomicU64::new(0),
            last_started: AtomicU64::new(0),
        }
    }

    fn name(&self) -> &str {
        self.queue.name()
    }
}

/// Held by a workqueue task from its first poll until its future is
/// dropped: no more than `max_active` at once, and on the ordered queue
/// one at a time, in spawn order.
struct Slot {
    sh: Arc<Shared>,
    queue: usize,
}

impl Slot {
    fn enter(sh: &Arc<Shared>, queue: usize, seq: u64) -> Slot {
        let q = &sh.queues[queue];
        let now = q.in_flight.fetch_add(1, SeqCst) + 1;
        q.high_water.fetch_max(now, SeqCst);
        if now > q.max_active {
            sh.violation(format!(
                "workqueue {}: {now} tasks in flight, max_active {}",
                q.name(),
                q.max_active
            ));
        }
        if q.ordered {
            let last = q.last_started.fetch_max(seq, SeqCst);
            if last >= seq {
                sh.violation(format!(
                    "workqueue {}: task {seq} (in spawn order) started after task {last}",
                    q.name()
                ));
            }
        }
        Slot {
            sh: sh.clone(),
            queue,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.sh.queues[self.queue].in_flight.fetch_sub(1, SeqCst);
    }
}

/// What the driver and every task share during one run.
struct Shared {
    start: Instant,
    prefix: String,
    max_workers: usize,
    current_thread: bool,
    cpu_intensive_threshold: Duration,
    handle: wq::Handle,
    metrics: wq::RuntimeMetrics,
    /// The runtime's `system` queue, and the tasks the harness queued on it.
    system: wq::Workqueue,
    system_queued: AtomicUsize,
    queues: Vec<Queue>,
    cats: Vec<Cat>,
    peak_workers: AtomicUsize,
    peak_threads: AtomicUsize,
    peak_idle: AtomicUsize,
    peak_running: AtomicUsize,
    samples: AtomicUsize,
    /// Nodes of nested task trees planned by the driver, and started.
    nodes_planned: AtomicUsize,
    nodes_run: AtomicUsize,
    ids: Mutex<HashSet<Id>>,
    violations: Mutex<Vec<String>>,
}

/// A spawned task's handle and what it was meant to do.
struct Task<T> {
    handle: JoinHandle<T>,
    kind: Kind,
}

impl<T> Task<T> {
    /// Awaits the task and records its outcome.
    async fn join(self, sh: &Shared) -> Result<T, JoinError> {
        let id = self.handle.id();
        let result = self.handle.await;
        sh.record(self.kind, Some(id), &result);
        result
    }

    /// Joins after the runtime is gone (the handle must resolve at once or
    /// soon, without the runtime's help).
    fn join_now(self, sh: &Shared) -> Result<T, JoinError> {
        futures::executor::block_on(self.join(sh))
    }
}

impl Shared {
    fn cat(&self, kind: Kind) -> &Cat {
        &self.cats[kind as usize]
    }

    fn violation(&self, msg: String) {
        self.violations.lock().unwrap().push(msg);
    }

    fn note_id(&self, id: Id) {
        if !self.ids.lock().unwrap().insert(id) {
            self.violation(format!("task id {id} handed out twice"));
        }
    }

    /// Reads the thread figures; called from tasks, blocking sections and
    /// the driver. Peaks are checked against `max_workers` at the end.
    fn sample(&self) {
        let m = &self.metrics;
        self.peak_workers.fetch_max(m.num_workers(), SeqCst);
        self.peak_idle.fetch_max(m.num_idle_workers(), SeqCst);
        self.peak_running.fetch_max(m.num_running_workers(), SeqCst);
        if let Some(n) = pool_threads(&self.prefix) {
            self.peak_threads.fetch_max(n, SeqCst);
        }
        self.samples.fetch_add(1, SeqCst);
    }

    fn record<T>(&self, kind: Kind, id: Option<Id>, result: &Result<T, JoinError>) {
        match result {
            Ok(_) => self.record_ok(kind),
            Err(err) => {
                if let Some(id) = id {
                    if err.id() != id {
                        self.violation(format!(
                            "JoinError id {} differs from its handle's id {id}",
                            err.id()
                        ));
                    }
                }
                self.record_err(kind, err);
            }
        }
    }

    fn record_ok(&self, kind: Kind) {
        self.cat(kind).ok.fetch_add(1, SeqCst);
    }

    fn record_err(&self, kind: Kind, err: &JoinError) {
        let cat = self.cat(kind);
        match (err.is_cancelled(), err.is_panic()) {
            (true, false) => {
                cat.cancelled.fetch_add(1, SeqCst);
            }
            (false, true) => {
                cat.panicked.fetch_add(1, SeqCst);
            }
            _ => self.violation(format!(
                "JoinError must be exactly one of cancelled or panic: {err:?}"
            )),
        }
    }

    fn spawn<F>(&self, kind: Kind, via: Via, future: F) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let cat = self.cat(kind);
        cat.spawned.fetch_add(1, SeqCst);
        let future = cat.counters.track(future);
        let handle = match via {
            Via::Spawn => wq::spawn(future),
            Via::Current => wq::Handle::current().spawn(future),
            Via::Handle => self.handle.spawn(future),
        };
        self.system_queued.fetch_add(1, SeqCst);
        self.note_id(handle.id());
        Task { handle, kind }
    }

    /// Spawns on `target`; on a workqueue, the task holds a `Slot` while it
    /// runs.
    fn spawn_to<F>(self: &Arc<Self>, kind: Kind, target: Target, future: F) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let queue = match target {
            Target::System(via) => return self.spawn(kind, via, future),
            Target::Queue(queue) => queue,
        };
        let cat = self.cat(kind);
        cat.spawned.fetch_add(1, SeqCst);
        let q = &self.queues[queue];
        let seq = q.next_seq.fetch_add(1, SeqCst) + 1;
        let sh = self.clone();
        let future = cat.counters.track(async move {
            let _slot = Slot::enter(&sh, queue, seq);
            future.await
        });
        q.queued.fetch_add(1, SeqCst);
        let handle = q.queue.spawn(future);
        self.note_id(handle.id());
        Task { handle, kind }
    }

    /// Queues `future` on workqueue `queue` (not the ordered one) once
    /// `delay` has passed. `sure`: the delay ends before the run does.
    fn spawn_after<F>(
        self: &Arc<Self>,
        kind: Kind,
        queue: usize,
        delay: Duration,
        sure: bool,
        future: F,
    ) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let q = &self.queues[queue];
        assert!(!q.ordered, "delayed tasks are queued out of spawn order");
        let cat = self.cat(kind);
        cat.spawned.fetch_add(1, SeqCst);
        let sh = self.clone();
        let future = cat.counters.track(async move {
            let _slot = Slot::enter(&sh, queue, 0);
            future.await
        });
        if sure {
            q.queued.fetch_add(1, SeqCst);
        } else {
            q.maybe_queued.fetch_add(1, SeqCst);
        }
        let handle = q.queue.spawn_after(delay, future);
        self.note_id(handle.id());
        Task { handle, kind }
    }

    /// Spawns a future counted in no category yet (see `fold`).
    fn spawn_apart<F>(&self, via: Via, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let handle = match via {
            Via::Spawn => wq::spawn(future),
            Via::Current => wq::Handle::current().spawn(future),
            Via::Handle => self.handle.spawn(future),
        };
        self.system_queued.fetch_add(1, SeqCst);
        self.note_id(handle.id());
        handle
    }

    /// Counts `n` futures spawned apart, now dropped, in `kind`'s category
    /// (their outcomes recorded already).
    fn fold(&self, kind: Kind, n: usize, counters: &Counters) {
        let cat = self.cat(kind);
        cat.spawned.fetch_add(n, SeqCst);
        for (from, to) in [
            (&counters.polls, &cat.counters.polls),
            (&counters.drops, &cat.counters.drops),
            (&counters.completions, &cat.counters.completions),
        ] {
            to.fetch_add(from.load(SeqCst), SeqCst);
        }
    }

    /// Spawns on `queue`, a workqueue of the operation's own.
    fn spawn_on_queue<F>(&self, kind: Kind, queue: &wq::Workqueue, future: F) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let cat = self.cat(kind);
        cat.spawned.fetch_add(1, SeqCst);
        let handle = queue.spawn(cat.counters.track(future));
        self.note_id(handle.id());
        Task { handle, kind }
    }

    /// Spawns and drops the handle. A `Value` future counts its end.
    fn spawn_detached<F>(self: &Arc<Self>, kind: Kind, via: Via, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.cat(kind).unjoined.fetch_add(1, SeqCst);
        let sh = self.clone();
        let task = self.spawn(kind, via, async move {
            future.await;
            sh.cat(kind).unjoined_done.fetch_add(1, SeqCst);
        });
        drop(task.handle);
    }

    /// Spawns a task whose handle will never be joined (its owner drops it).
    fn spawn_unjoined<F>(&self, kind: Kind, via: Via, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.cat(kind).unjoined.fetch_add(1, SeqCst);
        self.spawn(kind, via, future).handle
    }

    fn spawn_blocking<F, R>(&self, kind: Kind, via: Via, f: F) -> Task<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let cat = self.cat(kind);
        cat.spawned.fetch_add(1, SeqCst);
        let probe = FnProbe {
            counters: cat.counters.clone(),
            f: Some(f),
        };
        let job = move || probe.call();
        let handle = match via {
            Via::Spawn => wq::task::spawn_blocking(job),
            Via::Current => wq::Handle::current().spawn_blocking(job),
            Via::Handle => self.handle.spawn_blocking(job),
        };
        // On a current-thread runtime it runs on the blocking pool, not as
        // a `system` task.
        if !self.current_thread {
            self.system_queued.fetch_add(1, SeqCst);
        }
        self.note_id(handle.id());
        Task { handle, kind }
    }

    fn set_spawn<T, F>(&self, set: &mut JoinSet<T>, kind: Kind, via: Via, future: F) -> AbortHandle
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let cat = self.cat(kind);
        cat.spawned.fetch_add(1, SeqCst);
        let future = cat.counters.track(future);
        let abort = match via {
            Via::Handle => set.spawn_on(future, &self.handle),
            Via::Spawn | Via::Current => set.spawn(future),
        };
        self.system_queued.fetch_add(1, SeqCst);
        self.note_id(abort.id());
        abort
    }

    fn snapshots(&self) -> Vec<(Kind, Snap)> {
        KINDS.iter().map(|&k| (k, self.cat(k).snapshot())).collect()
    }

    fn report(&self) -> String {
        let mut out = String::new();
        for (kind, s) in self.snapshots() {
            out.push_str(&format!("\n  {kind:?}: {s:?}"));
        }
        out.push_str(&format!("\n  metrics: {:?}", self.metrics));
        out.push_str(&format!(
            "\n  system: {:?} ({} queued by the harness)",
            self.system.stats(),
            self.system_queued.load(SeqCst)
        ));
        for q in &self.queues {
            out.push_str(&format!(
                "\n  {}: {:?} ({} + {} delayed queued by the harness, {} in flight, high water {})",
                q.name(),
                q.queue.stats(),
                q.queued.load(SeqCst),
                q.maybe_queued.load(SeqCst),
                q.in_flight.load(SeqCst),
                q.high_water.load(SeqCst)
            ));
        }
        out
    }
}

/// Counts a blocking closure like `Counters::track` counts a future: a call
/// is a poll (and a completion when it returns), and its drop is counted.
struct FnProbe<F> {
    counters: Counters,
    f: Option<F>,
}

impl<F> FnProbe<F> {
    fn call<R>(mut self) -> R
    where
        F: FnOnce() -> R,
    {
        self.counters.polls.fetch_add(1, SeqCst);
        let f = self.f.take().expect("blocking closure called twice");
        let out = f();
        self.counters.completions.fetch_add(1, SeqCst);
        out
    }
}

impl<F> Drop for FnProbe<F> {
    fn drop(&mut self) {
        self.counters.drops.fetch_add(1, SeqCst);
    }
}

/// Dropped with its task's future: spawns a follow-up task then and sends
/// its handle out (a spawn from a destructor, maybe during shutdown).
struct SpawnOnDrop {
    sh: Arc<Shared>,
    kind: Kind,
    value: u64,
    out: mpsc::Sender<Task<u64>>,
}

impl Drop for SpawnOnDrop {
    fn drop(&mut self) {
        let value = self.value;
        let task = self.sh.spawn(self.kind, Via::Handle, async move {
            yield_now().await;
            value
        });
        // The receiver outlives every spawner unless the run already failed.
        let _ = self.out.send(task);
    }
}

/// Opens the latch when dropped, so blocked workers return even if the
/// driver unwinds.
struct OpenOnDrop(Latch);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// Sets the flag when dropped, so spinners stop even if the driver unwinds.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

fn boom(v: u64) -> u64 {
    panic!("{MARK} {v}")
}

fn payload_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_owned()
    }
}

fn expect_ok<T: PartialEq + fmt::Debug>(what: &str, got: Result<T, JoinError>, want: T) {
    match got {
        Ok(v) if v == want => {}
        other => panic!("{what}: expected Ok({want:?}), got {other:?}"),
    }
}

fn expect_cancelled<T: fmt::Debug>(what: &str, got: Result<T, JoinError>) {
    match got {
        Err(e) if e.is_cancelled() => {}
        other => panic!("{what}: expected a cancellation, got {other:?}"),
    }
}

fn expect_panic<T: fmt::Debug>(what: &str, got: Result<T, JoinError>, msg: &str) {
    match got {
        Err(e) if e.is_panic() => {
            let text = payload_text(&*e.into_panic());
            assert_eq!(text, msg, "{what}: wrong panic payload");
        }
        other => panic!("{what}: expected a panic, got {other:?}"),
    }
}

/// Spins (yielding the CPU, never sleeping) until `cond` holds; panics with
/// `what` and the run's figures after `WAIT_LIMIT`.
fn wait_until(sh: &Shared, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT_LIMIT;
    while !cond() {
        if Instant::now() > deadline {
            panic!("not reached within {WAIT_LIMIT:?}: {what}{}", sh.report());
        }
        std::thread::yield_now();
    }
}

/// As `wait_until`, from the driver's future: yields to the runtime between
/// looks (on a current-thread runtime the driver's thread runs the tasks).
async fn wait_for(sh: &Shared, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT_LIMIT;
    while !cond() {
        if Instant::now() > deadline {
            panic!("not reached within {WAIT_LIMIT:?}: {what}{}", sh.report());
        }
        yield_now().await;
    }
}

/// Threads of this process named exactly `name`: a pool's workers (those of
/// a current-thread runtime's blocking pool have a `B` more).
fn pool_threads(name: &str) -> Option<usize> {
    let dir = std::fs::read_dir("/proc/self/task").ok()?;
    let mut n = 0;
    for entry in dir.flatten() {
        if let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) {
            if comm.trim_end() == name {
                n += 1;
            }
        }
    }
    Some(n)
}

// ---------------------------------------------------------------------------
// Nested task trees

#[derive(Clone, Copy, Debug)]
enum Edge {
    Await,
    Detach,
    Set,
}

#[derive(Debug)]
struct Node {
    value: u64,
    yields: usize,
    via: Via,
    work: Option<Work>,
    sample: bool,
    children: Vec<(Edge, Node)>,
}

fn gen_node(rng: &mut Rng, depth: usize, budget: &mut usize) -> Node {
    let mut node = Node {
        value: rng.value(),
        yields: rng.below(3),
        via: rng.via(),
        work: rng.chance(10).then(|| rng.work()),
        sample: rng.chance(10),
        children: Vec::new(),
    };
    if depth > 0 {
        for _ in 0..rng.below(4) {
            if *budget == 0 {
                break;
            }
            *budget -= 1;
            let edge = [Edge::Await, Edge::Await, Edge::Detach, Edge::Set][rng.below(4)];
            node.children.push((edge, gen_node(rng, depth - 1, budget)));
        }
    }
    node
}

/// What a node's task returns: its value plus its joined children's.
fn expected(node: &Node) -> u64 {
    node.value
        + node
            .children
            .iter()
            .filter(|(edge, _)| !matches!(edge, Edge::Detach))
            .map(|(_, child)| expected(child))
            .sum::<u64>()
}

fn tree_size(node: &Node) -> usize {
    1 + node
        .children
        .iter()
        .map(|(_, c)| tree_size(c))
        .sum::<usize>()
}

fn run_node(sh: Arc<Shared>, node: Node) -> BoxFut<u64> {
    Box::pin(async move {
        sh.nodes_run.fetch_add(1, SeqCst);
        for _ in 0..node.yields {
            yield_now().await;
        }
        if let Some(work) = node.work {
            wq::blocking(|| work.run());
        }
        if node.sample {
            sh.sample();
        }
        let mut total = node.value;
        let mut awaited = Vec::new();
        let mut set = JoinSet::new();
        let mut set_want = 0;
        let mut set_len = 0;
        for (edge, child) in node.children {
            let want = expected(&child);
            let via = child.via;
            let future = run_node(sh.clone(), child);
            match edge {
                Edge::Await => awaited.push((sh.spawn(Kind::Value, via, future), want)),
                Edge::Detach => sh.spawn_detached(Kind::Value, via, async move {
                    future.await;
                }),
                Edge::Set => {
                    sh.set_spawn(&mut set, Kind::Value, via, future);
                    set_want += want;
                    set_len += 1;
                }
            }
        }
        for (task, want) in awaited {
            match task.join(&sh).await {
                Ok(v) if v == want => total += v,
                other => sh.violation(format!("nested child: expected Ok({want}), got {other:?}")),
            }
        }
        let mut joined = 0;
        let mut set_got = 0;
        while let Some(result) = set.join_next().await {
            joined += 1;
            sh.record(Kind::Value, None, &result);
            match result {
                Ok(v) => set_got += v,
                Err(e) => sh.violation(format!("nested set member failed: {e:?}")),
            }
        }
        if joined != set_len || set_got != set_want {
            sh.violation(format!(
                "nested set: {joined} results summing to {set_got}, want {set_len} summing to \
                 {set_want}"
            ));
        }
        total + set_got
    })
}

// ---------------------------------------------------------------------------
// The driver: runs the operations from `block_on`

#[derive(Clone, Copy, Debug)]
enum Op {
    Value,
    YieldLoop,
    Nested,
    Panic,
    AbortBeforePoll,
    AbortAfterPoll,
    AbortAfterDone,
    Blocking,
    SpawnBlocking,
    Pipeline,
    Relay,
    FanIn,
    BlockingRecv,
    MutexContention,
    SetMixed,
    SetShutdown,
    SetDrop,
    Detached,
    DropSpawner,
    Drain,
    Sample,
    Timer,
    Unannotated,
    Saturate,
    Hog,
    Limited,
    Ordered,
    Rescue,
}

const OPS: [(Op, usize); 28] = [
    (Op::Value, 14),
    (Op::YieldLoop, 8),
    (Op::Nested, 8),
    (Op::Panic, 5),
    (Op::AbortBeforePoll, 2),
    (Op::AbortAfterPoll, 5),
    (Op::AbortAfterDone, 3),
    (Op::Blocking, 8),
    (Op::SpawnBlocking, 5),
    (Op::Pipeline, 3),
    (Op::Relay, 3),
    (Op::FanIn, 3),
    (Op::BlockingRecv, 2),
    (Op::MutexContention, 2),
    (Op::SetMixed, 3),
    (Op::SetShutdown, 2),
    (Op::SetDrop, 2),
    (Op::Detached, 6),
    (Op::DropSpawner, 2),
    (Op::Drain, 2),
    (Op::Sample, 3),
    (Op::Timer, 5),
    (Op::Unannotated, 2),
    (Op::Saturate, 1),
    (Op::Hog, 1),
    (Op::Limited, 3),
    (Op::Ordered, 3),
    (Op::Rescue, 1),
];

/// How many `Rescue` operations a run does at most (each starves the pool
/// for a mayday, 10 ms or more); later ones do `Value` instead.
const RESCUES: usize = 3;

fn pick_op(rng: &mut Rng) -> Op {
    let total: usize = OPS.iter().map(|(_, w)| w).sum();
    let mut x = rng.below(total);
    for (op, w) in OPS {
        if x < w {
            return op;
        }
        x -= w;
    }
    unreachable!()
}

/// What a run that ends with a shutdown leaves to check afterwards.
#[derive(Default)]
struct Leftover {
    /// Each with `Some(v)` if it may also complete with `v` (a racer).
    tasks: Vec<(Task<u64>, Option<u64>)>,
    /// Join sets of never-completing members, with their sizes.
    sets: Vec<(JoinSet<u64>, usize)>,
    /// Follow-ups spawned by destructors: the channel and how many.
    followups: Vec<(mpsc::Receiver<Task<u64>>, usize)>,
    /// Senders that pending tasks wait on, dropped after the runtime.
    keep_alive: Vec<Box<dyn Any + Send>>,
}

struct Driver {
    sh: Arc<Shared>,
    rng: Rng,
    workers: usize,
    rescues_left: usize,
    /// Print each operation, and each check as it starts and ends.
    trace: bool,
    outstanding: VecDeque<Check>,
    max_outstanding: usize,
    op: usize,
}

impl Driver {
    fn defer(&mut self, check: impl Future<Output = ()> + 'static) {
        if !self.trace {
            self.outstanding.push_back(Box::pin(check));
            return;
        }
        let op = self.op;
        self.outstanding.push_back(Box::pin(async move {
            eprintln!("rt_stress: check of op {op} starts");
            check.await;
            eprintln!("rt_stress: check of op {op} ends");
        }));
    }

    /// Joins random outstanding checks until few enough are left.
    async fn settle(&mut self) {
        while self.outstanding.len() > self.max_outstanding {
            let i = self.rng.below(self.outstanding.len());
            let check = self.outstanding.swap_remove_back(i).expect("in range");
            check.await;
        }
    }

    async fn drain(&mut self) {
        let all: Vec<Check> = self.outstanding.drain(..).collect();
        futures::future::join_all(all).await;
    }

    async fn run(&mut self, ops: usize, clean: bool) -> Leftover {
        for i in 0..ops {
            self.op = i;
            let op = pick_op(&mut self.rng);
            if self.trace {
                eprintln!(
                    "rt_stress: op {i} ({op:?}) at {:?}",
                    self.sh.start.elapsed()
                );
            }
            match op {
                Op::Drain => self.drain().await,
                op => self.step(op),
            }
            self.settle().await;
        }
        self.drain().await;
        // Detached work (and what it spawns) finishes on its own.
        let sh = self.sh.clone();
        wait_for(&sh, "every spawned future dropped", || {
            KINDS.iter().all(|&k| {
                let c = sh.cat(k);
                c.counters.drops() == c.spawned.load(SeqCst)
            })
        })
        .await;
        let (planned, ran) = (sh.nodes_planned.load(SeqCst), sh.nodes_run.load(SeqCst));
        assert_eq!(planned, ran, "nested tree nodes planned vs run");
        if clean {
            Leftover::default()
        } else {
            self.pending_phase().await
        }
    }

    /// Whether `op` can run on this run's runtime: the operations that make
    /// the driver wait, unable to yield, for workers to do something need
    /// workers other than the driver's thread (not a current-thread
    /// runtime), and some need more.
    fn can_run(&self, op: Op) -> bool {
        let sh = &self.sh;
        match op {
            Op::AbortBeforePoll | Op::FanIn => !sh.current_thread,
            Op::Saturate => !sh.current_thread && sh.max_workers > self.workers,
            Op::Rescue => !sh.current_thread && sh.queues.len() > RECLAIM && self.rescues_left > 0,
            _ => true,
        }
    }

    /// Where a task of a random operation goes: mostly `system`, otherwise
    /// one of the run's workqueues (the ordered one if `ordered`).
    fn target(&mut self, ordered: bool) -> Target {
        match self.rng.below(10) {
            0..=5 => Target::System(self.rng.via()),
            6 | 7 => Target::Queue(LIMITED),
            8 if self.sh.queues.len() > RECLAIM => Target::Queue(RECLAIM),
            9 if ordered => Target::Queue(ORDERED),
            _ => Target::System(self.rng.via()),
        }
    }

    fn what(&self, op: &str) -> String {
        format!("op {} ({op})", self.op)
    }

    fn step(&mut self, op: Op) {
        let op = if self.can_run(op) { op } else { Op::Value };
        match op {
            Op::Value => self.op_value(),
            Op::YieldLoop => self.op_yield_loop(),
            Op::Nested => self.op_nested(),
            Op::Panic => self.op_panic(),
            Op::AbortBeforePoll => self.op_abort_before_poll(),
            Op::AbortAfterPoll => self.op_abort_after_poll(),
            Op::AbortAfterDone => self.op_abort_after_done(),
            Op::Blocking => self.op_blocking(),
            Op::SpawnBlocking => self.op_spawn_blocking(),
            Op::Pipeline => self.op_pipeline(),
            Op::Relay => self.op_relay(),
            Op::FanIn => self.op_fan_in(),
            Op::BlockingRecv => self.op_blocking_recv(),
            Op::MutexContention => self.op_mutex_contention(),
            Op::SetMixed => self.op_set_mixed(),
            Op::SetShutdown => self.op_set_shutdown(),
            Op::SetDrop => self.op_set_drop(),
            Op::Detached => self.op_detached(),
            Op::DropSpawner => self.op_drop_spawner(),
            Op::Sample => self.sh.sample(),
            Op::Timer => self.op_timer(),
            Op::Unannotated => self.op_unannotated(),
            Op::Saturate => self.op_saturate(),
            Op::Hog => self.op_hog(),
            Op::Limited => self.op_limited(),
            Op::Ordered => self.op_ordered(),
            Op::Rescue => self.op_rescue(),
            Op::Drain => unreachable!("handled by `run`"),
        }
    }

    fn op_value(&mut self) {
        let (v, yields, via, sample) = (
            self.rng.value(),
            self.rng.below(4),
            self.rng.via(),
            self.rng.chance(10),
        );
        let sh = self.sh.clone();
        let task = self.sh.spawn(Kind::Value, via, async move {
            for _ in 0..yields {
                yield_now().await;
            }
            if sample {
                sh.sample();
            }
            v
        });
        let (sh, what) = (self.sh.clone(), self.what("value"));
        self.defer(async move { expect_ok(&what, task.join(&sh).await, v) });
    }

    fn op_yield_loop(&mut self) {
        let n = self.rng.range(1, 64) as u64;
        let via = self.rng.via();
        let task = self.sh.spawn(Kind::Value, via, async move {
            let mut count = 0;
            for _ in 0..n {
                yield_now().await;
                count += 1;
            }
            count
        });
        let (sh, what) = (self.sh.clone(), self.what("yield loop"));
        self.defer(async move { expect_ok(&what, task.join(&sh).await, n) });
    }

    fn op_nested(&mut self) {
        let mut budget = self.rng.range(1, 24);
        let depth = self.rng.range(1, 3);
        let root = gen_node(&mut self.rng, depth, &mut budget);
        let want = expected(&root);
        self.sh.nodes_planned.fetch_add(tree_size(&root), SeqCst);
        let via = root.via;
        let task = self
            .sh
            .spawn(Kind::Value, via, run_node(self.sh.clone(), root));
        let (sh, what) = (self.sh.clone(), self.what("nested tree"));
        self.defer(async move { expect_ok(&what, task.join(&sh).await, want) });
    }

    fn op_panic(&mut self) {
        let (v, yields, via) = (self.rng.value(), self.rng.below(3), self.rng.via());
        let msg = format!("{MARK} {v}");
        let what = self.what("panic");
        match self.rng.below(4) {
            0 => self.sh.spawn_detached(Kind::Panic, via, async move {
                for _ in 0..yields {
                    yield_now().await;
                }
                boom(v);
            }),
            1 => {
                let task = self.sh.spawn_blocking(Kind::Panic, via, move || boom(v));
                let sh = self.sh.clone();
                self.defer(async move { expect_panic(&what, task.join(&sh).await, &msg) });
            }
            _ => {
                let task = self.sh.spawn(Kind::Panic, via, async move {
                    for _ in 0..yields {
                        yield_now().await;
                    }
                    boom(v)
                });
                let sh = self.sh.clone();
                self.defer(async move { expect_panic(&what, task.join(&sh).await, &msg) });
            }
        }
    }

    /// Saturates the pool with spinning tasks (one per concurrency slot, not
    /// inside `wq::blocking`), so that no worker may take new work; spawns
    /// and aborts victims meanwhile: they must never be polled.
    fn op_abort_before_poll(&mut self) {
        let slots = self.workers;
        let started = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(AtomicBool::new(false));
        let release_guard = SetOnDrop(release.clone());
        let mut spinners = Vec::new();
        for _ in 0..slots {
            let (started, release) = (started.clone(), release.clone());
            let via = self.rng.via();
            spinners.push(self.sh.spawn(Kind::Value, via, async move {
                started.fetch_add(1, SeqCst);
                while !release.load(SeqCst) {
                    std::hint::spin_loop();
                    std::thread::yield_now();
                }
                0u64
            }));
        }
        // Every slot holds a spinner and no other worker counts as running:
        // from now on only a worker returning from `wq::blocking` can run,
        // and it must retire (the pool is over target) before taking a task.
        // Until the monitor finds the spinners: after 10 ms of CPU each is a
        // hog, leaves the running count, and its slot is free again. On a
        // loaded machine that may happen before this thread sees the slots
        // full; then the property cannot be checked this time.
        let metrics = self.sh.metrics.clone();
        let detections = || metrics.hog_detections() + metrics.blocked_detections();
        let detected_before = detections();
        let limit = Instant::now() + WAIT_LIMIT;
        let saturated = loop {
            let seen = (started.load(SeqCst), metrics.num_running_workers());
            if seen == (slots, slots) {
                break true;
            }
            if detections() != detected_before {
                break false;
            }
            assert!(
                Instant::now() < limit,
                "{}: {slots} spinners never ran alone within {WAIT_LIMIT:?} (last seen: {} \
                 started, {} workers running){}",
                self.what("abort before poll"),
                seen.0,
                seen.1,
                self.sh.report()
            );
            std::thread::yield_now();
        };
        // Counted apart until it is known whether a detection freed a slot
        // while they were spawned and aborted: then a victim may have run
        // before its abort (they are racers), otherwise none may have.
        let victim_counters = Counters::default();
        let mut victims = Vec::new();
        let mut interfered = false;
        if saturated {
            for _ in 0..self.rng.range(1, 8) {
                let (v, via) = (self.rng.value(), self.rng.via());
                let handle = self
                    .sh
                    .spawn_apart(via, victim_counters.track(async move { v }));
                match self.rng.below(3) {
                    0 => handle.abort(),
                    1 => handle.abort_handle().abort(),
                    _ => {
                        let abort = handle.abort_handle();
                        abort.abort();
                        abort.abort();
                    }
                }
                victims.push((handle, v));
            }
            let finished: Vec<_> = victims
                .iter()
                .filter(|(handle, _)| handle.is_finished() || handle.abort_handle().is_finished())
                .map(|(handle, _)| handle.id())
                .collect();
            interfered = detections() != detected_before;
            if !interfered {
                assert!(
                    finished.is_empty(),
                    "{}: tasks {finished:?} finished while every worker was busy",
                    self.what("abort before poll"),
                );
            }
        }
        drop(release_guard);
        let (sh, what) = (self.sh.clone(), self.what("abort before poll"));
        self.defer(async move {
            for task in spinners {
                expect_ok(&what, task.join(&sh).await, 0);
            }
            let kind = if interfered {
                Kind::Racer
            } else {
                Kind::Unpolled
            };
            let n = victims.len();
            for (handle, v) in victims {
                let id = handle.id();
                let result = handle.await;
                sh.record(kind, Some(id), &result);
                match result {
                    Err(e) if e.is_cancelled() => {}
                    Ok(got) if interfered && got == v => {}
                    other => panic!("{what}: {kind:?} victim {id}: got {other:?}"),
                }
            }
            assert_eq!(
                victim_counters.drops(),
                n,
                "{what}: victims dropped when their handles resolved"
            );
            if !interfered {
                let polls = victim_counters.polls();
                assert_eq!(polls, 0, "{what}: an aborted, never-run task was polled");
            }
            sh.fold(kind, n, &victim_counters);
        });
    }

    fn op_abort_after_poll(&mut self) {
        let via = self.rng.via();
        let how = self.rng.below(5);
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        let (hold_tx, hold_rx) = tokio::sync::oneshot::channel::<u64>();
        let task = self.sh.spawn(Kind::PolledCancel, via, async move {
            let _ = started_tx.send(());
            // Never resolves while `hold_tx` lives; if it did, the task
            // would complete and the check below would see it.
            hold_rx.await.unwrap_or(1)
        });
        let (sh, what) = (self.sh.clone(), self.what("abort after poll"));
        self.defer(async move {
            started_rx
                .await
                .unwrap_or_else(|_| panic!("{what}: dropped before its first poll ended"));
            match how {
                0 => task.handle.abort(),
                1 => task.handle.abort_handle().abort(),
                2 => {
                    let abort = task.handle.abort_handle();
                    let killer = sh.spawn(Kind::Value, Via::Spawn, async move {
                        abort.abort();
                        7u64
                    });
                    expect_ok(&what, killer.join(&sh).await, 7);
                }
                3 => {
                    let abort = task.handle.abort_handle();
                    std::thread::spawn(move || abort.abort())
                        .join()
                        .expect("abort thread");
                }
                _ => {
                    task.handle.abort();
                    task.handle.abort();
                }
            }
            expect_cancelled(&what, task.join(&sh).await);
            drop(hold_tx);
        });
    }

    fn op_abort_after_done(&mut self) {
        let (v, yields, via) = (self.rng.value(), self.rng.below(3), self.rng.via());
        let task = self.sh.spawn(Kind::Value, via, async move {
            for _ in 0..yields {
                yield_now().await;
            }
            v
        });
        let (sh, what) = (self.sh.clone(), self.what("abort after done"));
        self.defer(async move {
            while !task.handle.is_finished() {
                yield_now().await;
            }
            assert!(
                task.handle.abort_handle().is_finished(),
                "{what}: JoinHandle finished but AbortHandle not"
            );
            task.handle.abort();
            expect_ok(&what, task.join(&sh).await, v);
        });
    }

    fn op_blocking(&mut self) {
        let (v, v2, via, work) = (
            self.rng.value(),
            self.rng.value(),
            self.rng.via(),
            self.rng.work(),
        );
        let nested = self.rng.chance(20);
        let spawn_inside = self.rng.chance(25);
        let yields = self.rng.below(3);
        let sh = self.sh.clone();
        let task = self.sh.spawn(Kind::Value, via, async move {
            for _ in 0..yields {
                yield_now().await;
            }
            let inner = wq::blocking(|| {
                if nested {
                    wq::blocking(|| work.run());
                } else {
                    work.run();
                }
                sh.sample();
                spawn_inside.then(|| sh.spawn(Kind::Value, Via::Spawn, async move { v2 }))
            });
            sh.sample();
            if let Some(task) = inner {
                match task.join(&sh).await {
                    Ok(x) if x == v2 => {}
                    other => sh.violation(format!(
                        "task spawned inside wq::blocking: expected Ok({v2}), got {other:?}"
                    )),
                }
            }
            v
        });
        let (sh, what) = (self.sh.clone(), self.what("blocking"));
        self.defer(async move { expect_ok(&what, task.join(&sh).await, v) });
    }

    fn op_spawn_blocking(&mut self) {
        let (v, via, work) = (self.rng.value(), self.rng.via(), self.rng.work());
        let from_task = self.rng.chance(30);
        let (sh, what) = (self.sh.clone(), self.what("spawn_blocking"));
        if from_task {
            let inner_sh = self.sh.clone();
            let task = self.sh.spawn(Kind::Value, via, async move {
                let inner = inner_sh.spawn_blocking(Kind::Value, Via::Spawn, move || {
                    work.run();
                    v
                });
                match inner.join(&inner_sh).await {
                    Ok(x) => x,
                    Err(e) => {
                        inner_sh.violation(format!("spawn_blocking from a task: {e:?}"));
                        0
                    }
                }
            });
            self.defer(async move { expect_ok(&what, task.join(&sh).await, v) });
        } else {
            let task = self.sh.spawn_blocking(Kind::Value, via, move || {
                work.run();
                v
            });
            self.defer(async move { expect_ok(&what, task.join(&sh).await, v) });
        }
    }

    fn op_pipeline(&mut self) {
        let cap = self.rng.range(1, 4);
        let n = self.rng.range(1, 32) as u64;
        let base = self.rng.value();
        let yield_every = self.rng.range(1, 8) as u64;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(cap);
        let producer = self.sh.spawn(Kind::Value, self.rng.via(), async move {
            for i in 0..n {
                tx.send(base + i).await.expect("consumer alive");
                if i % yield_every == 0 {
                    yield_now().await;
                }
            }
            n
        });
        let consumer = self.sh.spawn(Kind::Value, self.rng.via(), async move {
            let mut sum = 0;
            while let Some(x) = rx.recv().await {
                sum += x;
            }
            sum
        });
        let want = n * base + n * (n - 1) / 2;
        let (sh, what) = (self.sh.clone(), self.what("mpsc pipeline"));
        self.defer(async move {
            expect_ok(&what, consumer.join(&sh).await, want);
            expect_ok(&what, producer.join(&sh).await, n);
        });
    }

    fn op_relay(&mut self) {
        let len = self.rng.range(1, 5);
        let v = self.rng.value();
        let (first_tx, mut rx) = tokio::sync::oneshot::channel::<u64>();
        let mut tasks = Vec::new();
        for _ in 0..len {
            let (tx, next_rx) = tokio::sync::oneshot::channel::<u64>();
            let input = rx;
            tasks.push(self.sh.spawn(Kind::Value, self.rng.via(), async move {
                let x = input.await.expect("relay sender dropped");
                tx.send(x + 1).expect("relay receiver dropped");
                x
            }));
            rx = next_rx;
        }
        // The first value goes in now (before the first relay may have run)
        // or only when the check runs.
        let late_tx = if self.rng.chance(50) {
            first_tx.send(v).expect("first relay alive");
            None
        } else {
            Some(first_tx)
        };
        let (sh, what) = (self.sh.clone(), self.what("oneshot relay"));
        self.defer(async move {
            if let Some(tx) = late_tx {
                tx.send(v).expect("first relay alive");
            }
            for (i, task) in tasks.into_iter().enumerate() {
                expect_ok(&what, task.join(&sh).await, v + i as u64);
            }
            assert_eq!(rx.await.expect("last relay sent"), v + len as u64, "{what}");
        });
    }

    fn op_fan_in(&mut self) {
        let k = self.rng.range(1, 8);
        let (tx, rx) = mpsc::channel::<u64>();
        let mut sum = 0;
        for _ in 0..k {
            let (v, yields, via) = (self.rng.value(), self.rng.below(3), self.rng.via());
            sum += v;
            let tx = tx.clone();
            self.sh.spawn_detached(Kind::Value, via, async move {
                for _ in 0..yields {
                    yield_now().await;
                }
                tx.send(v).expect("fan-in receiver alive");
            });
        }
        drop(tx);
        let what = self.what("std mpsc fan-in");
        self.defer(async move {
            // Blocks this (non-worker) thread; the senders run on workers.
            let mut got = 0;
            for _ in 0..k {
                got += rx.recv().expect("a sender vanished before sending");
            }
            assert_eq!(got, sum, "{what}");
            // Disconnects once every sender's future has been dropped.
            assert!(rx.recv().is_err(), "{what}: extra message");
        });
    }

    fn op_blocking_recv(&mut self) {
        let (v, via) = (self.rng.value(), self.rng.via());
        let (tx, rx) = mpsc::channel::<u64>();
        let send_first = self.rng.chance(50);
        if send_first {
            tx.send(v).expect("receiver alive");
        }
        let task = self.sh.spawn(Kind::Value, via, async move {
            wq::blocking(move || rx.recv().expect("sender alive"))
        });
        if !send_first {
            tx.send(v).expect("receiver alive");
        }
        let (sh, what) = (self.sh.clone(), self.what("blocking recv"));
        self.defer(async move { expect_ok(&what, task.join(&sh).await, v) });
    }

    fn op_mutex_contention(&mut self) {
        let counter = Arc::new(tokio::sync::Mutex::new(0u64));
        let mut tasks = Vec::new();
        let mut total = 0;
        for _ in 0..self.rng.range(2, 8) {
            let rounds = self.rng.range(1, 16) as u64;
            let yield_inside = self.rng.chance(50);
            total += rounds;
            let counter = counter.clone();
            let task = self.sh.spawn(Kind::Value, self.rng.via(), async move {
                for _ in 0..rounds {
                    let mut guard = counter.lock().await;
                    let seen = *guard;
                    if yield_inside {
                        yield_now().await;
                    }
                    *guard = seen + 1;
                }
                rounds
            });
            tasks.push((task, rounds));
        }
        let (sh, what) = (self.sh.clone(), self.what("mutex contention"));
        self.defer(async move {
            for (task, rounds) in tasks {
                expect_ok(&what, task.join(&sh).await, rounds);
            }
            assert_eq!(*counter.lock().await, total, "{what}: lost updates");
        });
    }

    /// A join set of completing, panicking and aborted members, joined.
    fn op_set_mixed(&mut self) {
        let mut set = JoinSet::<(usize, u64)>::new();
        let mut kinds: HashMap<Id, (Kind, usize)> = HashMap::new();
        let mut values: HashMap<usize, u64> = HashMap::new();
        let mut to_abort = Vec::new();
        let mut hold = Vec::new();
        let members = self.rng.range(1, 10);
        for i in 0..members {
            let (v, yields, via) = (self.rng.value(), self.rng.below(3), self.rng.via());
            let (kind, abort) = match self.rng.below(4) {
                0 | 1 => {
                    values.insert(i, v);
                    let f = async move {
                        for _ in 0..yields {
                            yield_now().await;
                        }
                        (i, v)
                    };
                    (
                        Kind::Value,
                        self.sh.set_spawn(&mut set, Kind::Value, via, f),
                    )
                }
                2 => {
                    let f = async move {
                        for _ in 0..yields {
                            yield_now().await;
                        }
                        (i, boom(v))
                    };
                    (
                        Kind::Panic,
                        self.sh.set_spawn(&mut set, Kind::Panic, via, f),
                    )
                }
                _ => {
                    let (tx, rx) = tokio::sync::oneshot::channel::<u64>();
                    hold.push(tx);
                    let f = async move { (i, rx.await.unwrap_or(1)) };
                    let abort = self.sh.set_spawn(&mut set, Kind::Cancel, via, f);
                    to_abort.push(abort.clone());
                    (Kind::Cancel, abort)
                }
            };
            kinds.insert(abort.id(), (kind, i));
        }
        let (sh, what) = (self.sh.clone(), self.what("join set"));
        self.defer(async move {
            assert_eq!(set.len(), members, "{what}: len");
            for abort in &to_abort {
                abort.abort();
            }
            let mut seen = HashSet::new();
            while let Some(result) = set.join_next().await {
                match result {
                    Ok((i, v)) => {
                        sh.record_ok(Kind::Value);
                        assert_eq!(values.get(&i), Some(&v), "{what}: member {i} result");
                        assert!(seen.insert(i), "{what}: member {i} joined twice");
                    }
                    Err(e) => {
                        let (kind, i) = *kinds.get(&e.id()).unwrap_or_else(|| {
                            panic!("{what}: JoinError for unknown task {}", e.id())
                        });
                        assert!(seen.insert(i), "{what}: member {i} joined twice");
                        sh.record_err(kind, &e);
                        match kind {
                            Kind::Panic => assert!(e.is_panic(), "{what}: member {i}: {e:?}"),
                            Kind::Cancel => {
                                assert!(e.is_cancelled(), "{what}: member {i}: {e:?}")
                            }
                            _ => panic!("{what}: member {i} should have completed: {e:?}"),
                        }
                    }
                }
            }
            assert_eq!(seen.len(), members, "{what}: members joined");
            assert!(set.is_empty(), "{what}: not empty after join_next() = None");
            assert!(
                set.join_next().await.is_none(),
                "{what}: joined past the end"
            );
            drop(hold);
        });
    }

    /// A join set cut short: `abort_all` and join (observed), or `shutdown`
    /// (unobserved). Members that may finish first are racers.
    fn op_set_shutdown(&mut self) {
        let observe = self.rng.chance(50);
        let mut set = JoinSet::<u64>::new();
        let mut racers: HashMap<Id, u64> = HashMap::new();
        let members = self.rng.range(1, 10);
        for _ in 0..members {
            let via = self.rng.via();
            if observe && self.rng.chance(50) {
                let (v, yields) = (self.rng.value(), self.rng.below(4));
                let abort = self.sh.set_spawn(&mut set, Kind::Racer, via, async move {
                    for _ in 0..yields {
                        yield_now().await;
                    }
                    v
                });
                racers.insert(abort.id(), v);
            } else {
                if !observe {
                    self.sh.cat(Kind::Cancel).unjoined.fetch_add(1, SeqCst);
                }
                self.sh
                    .set_spawn(&mut set, Kind::Cancel, via, pending::<u64>());
            }
        }
        let yields = self.rng.below(3);
        let (sh, what) = (self.sh.clone(), self.what("join set shutdown"));
        self.defer(async move {
            for _ in 0..yields {
                yield_now().await;
            }
            if !observe {
                set.shutdown().await;
                assert!(set.is_empty(), "{what}: not empty after shutdown");
                return;
            }
            set.abort_all();
            let mut n = 0;
            while let Some(result) = set.join_next().await {
                n += 1;
                match result {
                    Ok(v) => {
                        assert!(racers.values().any(|&r| r == v), "{what}: stray {v}");
                        sh.record_ok(Kind::Racer);
                    }
                    Err(e) => {
                        assert!(e.is_cancelled(), "{what}: {e:?}");
                        let kind = if racers.contains_key(&e.id()) {
                            Kind::Racer
                        } else {
                            Kind::Cancel
                        };
                        sh.record_err(kind, &e);
                    }
                }
            }
            assert_eq!(n, members, "{what}: members joined");
        });
    }

    /// A join set of pending members, dropped (which aborts them), in the
    /// driver or inside a task.
    fn op_set_drop(&mut self) {
        let members = self.rng.range(1, 8);
        let in_task = self.rng.chance(50);
        let vias: Vec<Via> = (0..members).map(|_| self.rng.via()).collect();
        self.sh
            .cat(Kind::Cancel)
            .unjoined
            .fetch_add(members, SeqCst);
        if in_task {
            let sh = self.sh.clone();
            let task = self.sh.spawn(Kind::Value, self.rng.via(), async move {
                let mut set = JoinSet::<u64>::new();
                for via in vias {
                    sh.set_spawn(&mut set, Kind::Cancel, via, pending::<u64>());
                }
                yield_now().await;
                drop(set);
                members
            });
            let (sh, what) = (self.sh.clone(), self.what("join set dropped in a task"));
            self.defer(async move { expect_ok(&what, task.join(&sh).await, members) });
        } else {
            let mut set = JoinSet::<u64>::new();
            for via in vias {
                self.sh
                    .set_spawn(&mut set, Kind::Cancel, via, pending::<u64>());
            }
            drop(set);
        }
    }

    fn op_detached(&mut self) {
        let (yields, via) = (self.rng.below(4), self.rng.via());
        let work = self.rng.chance(30).then(|| self.rng.work());
        let sample = self.rng.chance(20);
        let sh = self.sh.clone();
        self.sh.spawn_detached(Kind::Value, via, async move {
            for _ in 0..yields {
                yield_now().await;
            }
            if let Some(work) = work {
                wq::blocking(|| work.run());
            }
            if sample {
                sh.sample();
            }
        });
    }

    /// A pending task whose destructor spawns a follow-up; aborted after its
    /// first poll. Its handle resolving proves the destructor ran, so the
    /// follow-up's handle must already be in the channel.
    fn op_drop_spawner(&mut self) {
        let (tx, rx) = mpsc::channel();
        let v = self.rng.value();
        let guard = SpawnOnDrop {
            sh: self.sh.clone(),
            kind: Kind::Value,
            value: v,
            out: tx,
        };
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        let task = self
            .sh
            .spawn(Kind::PolledCancel, self.rng.via(), async move {
                let _guard = guard;
                let _ = started_tx.send(());
                pending::<u64>().await
            });
        let (sh, what) = (self.sh.clone(), self.what("spawn in destructor"));
        self.defer(async move {
            started_rx
                .await
                .unwrap_or_else(|_| panic!("{what}: dropped before its first poll ended"));
            task.handle.abort();
            expect_cancelled(&what, task.join(&sh).await);
            let followup = rx
                .try_recv()
                .unwrap_or_else(|e| panic!("{what}: no follow-up after the task resolved: {e}"));
            expect_ok(&what, followup.join(&sh).await, v);
        });
    }

    /// One timer use: a sleep, a timeout that fires, one that does not, one
    /// racing its own future, interval ticks, a reset sleep, or a long sleep
    /// aborted after its first poll. None returns early.
    fn op_timer(&mut self) {
        let target = self.target(true);
        let v = self.rng.value();
        let d = self.rng.delay();
        let sh = self.sh.clone();
        let what = self.what("timer");
        let early = move |sh: &Shared, what: &str, start: wq::time::Instant| {
            let took = start.elapsed();
            if took < d {
                sh.violation(format!("{what}: {d:?} ended after {took:?}"));
            }
        };
        let mut want = v;
        let task = match self.rng.below(8) {
            0 | 1 => {
                let what = format!("{what}: sleep");
                self.sh.spawn_to(Kind::Value, target, async move {
                    let start = wq::time::Instant::now();
                    wq::time::sleep(d).await;
                    early(&sh, &what, start);
                    v
                })
            }
            2 => {
                let what = format!("{what}: timeout that fires");
                self.sh.spawn_to(Kind::Value, target, async move {
                    let start = wq::time::Instant::now();
                    match wq::time::timeout(d, pending::<()>()).await {
                        Err(Elapsed { .. }) => early(&sh, &what, start),
                        Ok(()) => sh.violation(format!("{what}: pending() completed")),
                    }
                    v
                })
            }
            3 => {
                let steps = self.rng.steps(2);
                self.sh.spawn_to(Kind::Value, target, async move {
                    let inner = async move {
                        run_steps(steps).await;
                        v
                    };
                    match wq::time::timeout(Duration::from_secs(60), inner).await {
                        Ok(x) => x,
                        Err(_) => {
                            sh.violation(format!("{what}: a 60 s timeout fired"));
                            0
                        }
                    }
                })
            }
            4 => {
                // Either may come first; neither before `d`.
                let what = format!("{what}: timeout racing a sleep");
                self.sh.spawn_to(Kind::Value, target, async move {
                    let start = wq::time::Instant::now();
                    let _ = wq::time::timeout(d, wq::time::sleep(d)).await;
                    early(&sh, &what, start);
                    v
                })
            }
            5 => {
                let period = Duration::from_micros(self.rng.range(300, 1000) as u64);
                let ticks = self.rng.range(1, 3) as u64;
                want = ticks;
                let what = format!("{what}: interval of {period:?}");
                self.sh.spawn_to(Kind::Value, target, async move {
                    let mut interval = wq::time::interval(period);
                    let first = interval.tick().await;
                    for k in 1..ticks {
                        let at = interval.tick().await;
                        let want = first + period * k as u32;
                        if at != want {
                            sh.violation(format!("{what}: tick {k} at {at:?}, want {want:?}"));
                        }
                        if wq::time::Instant::now() < at {
                            sh.violation(format!("{what}: tick {k} came early"));
                        }
                    }
                    ticks
                })
            }
            6 => {
                let what = format!("{what}: an hour's sleep reset");
                self.sh.spawn_to(Kind::Value, target, async move {
                    let start = wq::time::Instant::now();
                    let mut sleep = Box::pin(wq::time::sleep(Duration::from_secs(3600)));
                    // Registered at an hour, then moved.
                    futures::future::poll_fn(|cx| {
                        let _ = sleep.as_mut().poll(cx);
                        std::task::Poll::Ready(())
                    })
                    .await;
                    sleep.as_mut().reset(start + d);
                    sleep.await;
                    early(&sh, &what, start);
                    v
                })
            }
            _ => {
                // A killer task aborts it once it sleeps, so that no other
                // check has to run first (its queue may have other tasks
                // waiting behind it).
                let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
                let victim = self.sh.spawn_to(Kind::PolledCancel, target, async move {
                    let _ = started_tx.send(());
                    wq::time::sleep(Duration::from_secs(3600)).await;
                    1u64
                });
                let abort = victim.handle.abort_handle();
                let killer = self.sh.spawn(Kind::Value, Via::Spawn, async move {
                    let _ = started_rx.await;
                    abort.abort();
                    7u64
                });
                let (sh, what) = (self.sh.clone(), format!("{what}: aborted sleep"));
                self.defer(async move {
                    expect_ok(&what, killer.join(&sh).await, 7);
                    expect_cancelled(&what, victim.join(&sh).await);
                });
                return;
            }
        };
        let (sh, what) = (self.sh.clone(), self.what("timer"));
        self.defer(async move { expect_ok(&what, task.join(&sh).await, want) });
    }

    /// Blocks or spins inside a poll without a word: a few 1-3 ms sleeps,
    /// sleeps until the monitor has found a stuck poll, or a 1-15 ms spin
    /// (a hog when longer than the threshold).
    fn op_unannotated(&mut self) {
        let target = self.target(true);
        let v = self.rng.value();
        let task = match self.rng.below(4) {
            0 | 1 => {
                let sleeps: Vec<u64> = (0..self.rng.range(1, 2))
                    .map(|_| self.rng.range(1000, 3000) as u64)
                    .collect();
                self.sh.spawn_to(Kind::Value, target, async move {
                    for us in sleeps {
                        std::thread::sleep(Duration::from_micros(us));
                        yield_now().await;
                    }
                    v
                })
            }
            2 => {
                // Not on the `mem_reclaim` queue: its rescuer's polls are
                // not watched, and while it ran this one the task that
                // releases workers blocked by a `Rescue` could not run.
                let target = match target {
                    Target::Queue(RECLAIM) => Target::System(Via::Spawn),
                    other => other,
                };
                let (sh, what) = (self.sh.clone(), self.what("unannotated sleep"));
                // Found blocked, or, on a machine so busy that the thread
                // is mostly waiting for a CPU after each sleep (runnable,
                // so not blocked), as a hog once its polls add up to the
                // threshold.
                self.sh.spawn_to(Kind::Value, target, async move {
                    let m = &sh.metrics;
                    let found = || m.blocked_detections() + m.hog_detections();
                    let before = found();
                    let start = Instant::now();
                    while found() == before {
                        if start.elapsed() > WAIT_LIMIT {
                            sh.violation(format!(
                                "{what}: a poll slept {WAIT_LIMIT:?} and no stuck poll was found"
                            ));
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    v
                })
            }
            _ => {
                // Up to a little over the threshold (a hog sometimes),
                // within 1-15 ms.
                let threshold = self.sh.cpu_intensive_threshold.as_micros() as usize;
                let us = self.rng.range(1000, (threshold + 2000).min(15_000));
                self.sh.spawn_to(Kind::Value, target, async move {
                    spin(Duration::from_micros(us as u64));
                    v
                })
            }
        };
        let (sh, what) = (self.sh.clone(), self.what("unannotated"));
        self.defer(async move { expect_ok(&what, task.join(&sh).await, v) });
    }

    /// Every concurrency slot taken by a task sleeping inside its poll
    /// without a word, until a task spawned after them has run: it runs
    /// once one of them is found stuck and another worker (created if need
    /// be: `max_workers` leaves room) takes its place.
    fn op_saturate(&mut self) {
        let n = self.workers;
        let entered = Arc::new(AtomicUsize::new(0));
        let relieved = Arc::new(AtomicBool::new(false));
        let relieve_guard = SetOnDrop(relieved.clone());
        let what = self.what("saturated by unannotated sleeps");
        let mut sleepers = Vec::new();
        for _ in 0..n {
            let (entered, relieved) = (entered.clone(), relieved.clone());
            let (sh, what) = (self.sh.clone(), what.clone());
            sleepers.push(self.sh.spawn(Kind::Value, self.rng.via(), async move {
                entered.fetch_add(1, SeqCst);
                let start = Instant::now();
                while !relieved.load(SeqCst) {
                    if start.elapsed() > WAIT_LIMIT {
                        sh.violation(format!("{what}: no task ran for {WAIT_LIMIT:?}"));
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                0u64
            }));
        }
        wait_until(&self.sh, &format!("{what}: every sleeper started"), || {
            entered.load(SeqCst) == n
        });
        let probe = {
            let relieved = relieved.clone();
            self.sh.spawn(Kind::Value, self.rng.via(), async move {
                relieved.store(true, SeqCst);
                1u64
            })
        };
        wait_until(&self.sh, &format!("{what}: the probe ran"), || {
            relieved.load(SeqCst)
        });
        drop(relieve_guard);
        let sh = self.sh.clone();
        self.defer(async move {
            for sleeper in sleepers {
                expect_ok(&what, sleeper.join(&sh).await, 0);
            }
            expect_ok(&what, probe.join(&sh).await, 1);
        });
    }

    /// Spins on a workqueue of its own with `max_active` 1 (one poll of it
    /// at a time): polls of at most half `cpu_intensive_threshold` must not
    /// count as hogs, and hogs that spin until the monitor counts them must
    /// each count once, on this queue (`cpu_intensive`).
    fn op_hog(&mut self) {
        let threshold = self.sh.cpu_intensive_threshold;
        let queue = wq::Workqueue::builder(format!("hog{}", self.op))
            .max_active(1)
            .handle(&self.sh.handle)
            .build()
            .expect("build a workqueue");
        let what = self.what("hog");
        let mut hogs = 0;
        let mut tasks = Vec::new();
        for _ in 0..self.rng.range(1, 2) {
            // `None`: a hog; `Some(d)`: a short spin.
            let polls: Vec<Option<Duration>> = (0..self.rng.range(1, 2))
                .map(|_| {
                    let max = threshold.as_micros() as usize / 2;
                    (!self.rng.chance(30))
                        .then(|| Duration::from_micros(self.rng.range(50, max) as u64))
                })
                .collect();
            hogs += polls.iter().filter(|p| p.is_none()).count() as u64;
            let v = self.rng.value();
            let (sh, q, what) = (self.sh.clone(), queue.clone(), what.clone());
            let task = self.sh.spawn_on_queue(Kind::Value, &queue, async move {
                for (i, poll) in polls.into_iter().enumerate() {
                    if i > 0 {
                        yield_now().await;
                    }
                    let before = q.stats().cpu_intensive;
                    match poll {
                        Some(d) => {
                            spin(d);
                            let after = q.stats().cpu_intensive;
                            if after != before {
                                sh.violation(format!(
                                    "{what}: a poll spinning {d:?} (threshold {threshold:?}) \
                                     counted as a hog ({before} -> {after})"
                                ));
                            }
                        }
                        None => {
                            let start = Instant::now();
                            while q.stats().cpu_intensive == before {
                                if start.elapsed() > WAIT_LIMIT {
                                    sh.violation(format!(
                                        "{what}: a poll spun {WAIT_LIMIT:?} and was not \
                                         counted as a hog"
                                    ));
                                    break;
                                }
                                std::hint::spin_loop();
                            }
                        }
                    }
                }
                v
            });
            tasks.push((task, v));
        }
        let n = tasks.len() as u64;
        let sh = self.sh.clone();
        self.defer(async move {
            for (task, v) in tasks {
                expect_ok(&what, task.join(&sh).await, v);
            }
            let stats = queue.stats();
            assert_eq!(
                (stats.cpu_intensive, stats.total, stats.completed),
                (hogs, n, n),
                "{what}: hogs, total, completed: {stats:?}"
            );
            assert_eq!((stats.active, stats.inactive), (0, 0), "{what}: {stats:?}");
        });
    }

    /// Tasks on the `max_active` queue (or the `mem_reclaim` one): values
    /// after a few steps, panics, delayed tasks, and tasks aborted by a
    /// killer after their first poll; or the queue's slots all held while
    /// tasks queued behind are aborted.
    fn op_limited(&mut self) {
        let queue = if self.sh.queues.len() > RECLAIM && self.rng.chance(25) {
            RECLAIM
        } else {
            LIMITED
        };
        if queue == LIMITED && self.rng.chance(25) {
            return self.op_held(LIMITED);
        }
        let what = self.what("workqueue");
        for _ in 0..self.rng.range(1, 5) {
            let v = self.rng.value();
            let steps = self.rng.steps(2);
            let sh = self.sh.clone();
            match self.rng.below(10) {
                0..=5 => {
                    let task = self
                        .sh
                        .spawn_to(Kind::Value, Target::Queue(queue), async move {
                            run_steps(steps).await;
                            v
                        });
                    let what = what.clone();
                    self.defer(async move { expect_ok(&what, task.join(&sh).await, v) });
                }
                6 => {
                    let task = self
                        .sh
                        .spawn_to(Kind::Panic, Target::Queue(queue), async move {
                            run_steps(steps).await;
                            boom(v)
                        });
                    let what = what.clone();
                    let msg = format!("{MARK} {v}");
                    self.defer(async move { expect_panic(&what, task.join(&sh).await, &msg) });
                }
                7 if queue == LIMITED => self.killed_after_poll(Target::Queue(queue), steps),
                _ => {
                    let delay = Duration::from_micros(self.rng.below(3001) as u64);
                    let task = self
                        .sh
                        .spawn_after(Kind::Value, queue, delay, true, async move {
                            run_steps(steps).await;
                            v
                        });
                    let what = what.clone();
                    self.defer(async move { expect_ok(&what, task.join(&sh).await, v) });
                }
            }
        }
    }

    /// Tasks on the ordered queue: values after a few steps, panics, tasks
    /// aborted after their first poll; or the queue held while tasks queued
    /// behind are aborted. `Slot` checks the order.
    fn op_ordered(&mut self) {
        if self.rng.chance(20) {
            return self.op_held(ORDERED);
        }
        let what = self.what("ordered workqueue");
        for _ in 0..self.rng.range(1, 4) {
            let v = self.rng.value();
            let steps = self.rng.steps(2);
            let sh = self.sh.clone();
            match self.rng.below(10) {
                0..=7 => {
                    let task = self
                        .sh
                        .spawn_to(Kind::Value, Target::Queue(ORDERED), async move {
                            run_steps(steps).await;
                            v
                        });
                    let what = what.clone();
                    self.defer(async move { expect_ok(&what, task.join(&sh).await, v) });
                }
                8 => {
                    let task = self
                        .sh
                        .spawn_to(Kind::Panic, Target::Queue(ORDERED), async move {
                            run_steps(steps).await;
                            boom(v)
                        });
                    let what = what.clone();
                    let msg = format!("{MARK} {v}");
                    self.defer(async move { expect_panic(&what, task.join(&sh).await, &msg) });
                }
                _ => self.killed_after_poll(Target::Queue(ORDERED), steps),
            }
        }
    }

    /// A task that runs `steps` and then waits forever, aborted by a killer
    /// task (on `system`) once it has started.
    fn killed_after_poll(&mut self, target: Target, steps: Vec<Step>) {
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        let victim = self.sh.spawn_to(Kind::PolledCancel, target, async move {
            let _ = started_tx.send(());
            run_steps(steps).await;
            pending::<u64>().await
        });
        let abort = victim.handle.abort_handle();
        let killer = self.sh.spawn(Kind::Value, self.rng.via(), async move {
            let _ = started_rx.await;
            abort.abort();
            7u64
        });
        let (sh, what) = (self.sh.clone(), self.what("aborted after its first poll"));
        self.defer(async move {
            expect_ok(&what, killer.join(&sh).await, 7);
            expect_cancelled(&what, victim.join(&sh).await);
        });
    }

    /// Holds every slot of `queue` with tasks that wait for a signal, queues
    /// tasks behind them and aborts those (they never get a slot: never
    /// polled), then gives the signal.
    fn op_held(&mut self, queue: usize) {
        let slots = self.sh.queues[queue].max_active;
        let mut releases = Vec::new();
        let mut holders = Vec::new();
        for _ in 0..slots {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let v = self.rng.value();
            releases.push(tx);
            let task = self
                .sh
                .spawn_to(Kind::Value, Target::Queue(queue), async move {
                    rx.await.expect("released");
                    v
                });
            holders.push((task, v));
        }
        let after_holders = self.sh.queues[queue].queue.stats();
        let mut victims = Vec::new();
        for _ in 0..self.rng.range(1, 4) {
            let v = self.rng.value();
            let task = self
                .sh
                .spawn_to(Kind::Unpolled, Target::Queue(queue), async move { v });
            if self.rng.chance(50) {
                task.handle.abort();
            } else {
                task.handle.abort_handle().abort();
            }
            victims.push(task);
        }
        let after_victims = self.sh.queues[queue].queue.stats();
        for tx in releases {
            tx.send(()).expect("holder alive");
        }
        let (sh, what) = (self.sh.clone(), self.what("workqueue held"));
        let what = format!(
            "{what} on {}: after the holders {after_holders:?}, after the victims \
             {after_victims:?}",
            self.sh.queues[queue].name()
        );
        self.defer(async move {
            for task in victims {
                expect_cancelled(&what, task.join(&sh).await);
            }
            for (task, v) in holders {
                expect_ok(&what, task.join(&sh).await, v);
            }
        });
    }

    /// Every worker blocked (in `wq::blocking`) on a latch that only a task
    /// of the `mem_reclaim` queue opens, and no other worker allowed: its
    /// rescuer must run that task.
    fn op_rescue(&mut self) {
        self.rescues_left -= 1;
        let n = self.sh.max_workers;
        let latch = Latch::default();
        let open_guard = OpenOnDrop(latch.clone());
        let entered = Arc::new(AtomicUsize::new(0));
        let what = self.what("rescue");
        let mut blockers = Vec::new();
        for _ in 0..n {
            let (latch, entered) = (latch.clone(), entered.clone());
            blockers.push(self.sh.spawn(Kind::Value, self.rng.via(), async move {
                wq::blocking(|| {
                    entered.fetch_add(1, SeqCst);
                    latch.wait_at_most(WAIT_LIMIT)
                })
            }));
        }
        wait_until(&self.sh, &format!("{what}: every worker blocked"), || {
            entered.load(SeqCst) == n
        });
        let reclaim = self.sh.queues[RECLAIM].queue.clone();
        let before = reclaim.stats();
        let v = self.rng.value();
        let opener = latch.clone();
        let releaser = self
            .sh
            .spawn_to(Kind::Value, Target::Queue(RECLAIM), async move {
                opener.open();
                (v, std::thread::current().name().map(str::to_owned))
            });
        let sh = self.sh.clone();
        self.defer(async move {
            // Opens the latch if this check is dropped unfinished.
            let _open = open_guard;
            match releaser.join(&sh).await {
                Ok((got, Some(thread))) if got == v && thread.starts_with("wq-R-") => {}
                other => panic!("{what}: expected Ok(({v}, a rescuer's thread)), got {other:?}"),
            }
            for blocker in blockers {
                expect_ok(&what, blocker.join(&sh).await, true);
            }
            // The mayday may predate `before`: the pool starved as soon as
            // every worker blocked, with other tasks of the queue waiting.
            let after = reclaim.stats();
            assert!(
                after.rescued > before.rescued && after.mayday > 0,
                "{what}: before {before:?}, after {after:?}"
            );
        });
    }

    /// End by shutdown: leave a variety of never-completing tasks (polled or
    /// not, waiting on channels, holding other tasks, spawning from their
    /// destructors) and racers still running.
    async fn pending_phase(&mut self) -> Leftover {
        let sh = self.sh.clone();
        let mut left = Leftover::default();
        let (unpolled_tx, unpolled_rx) = mpsc::channel();
        let (racer_tx, racer_rx) = mpsc::channel();
        let mut unpolled_followups = 0;
        let mut racer_followups = 0;
        let mut started = Vec::new();
        for _ in 0..self.rng.range(4, 40) {
            let via = self.rng.via();
            match self.rng.below(8) {
                0 => {
                    let task = sh.spawn(Kind::Cancel, via, pending::<u64>());
                    if self.rng.chance(30) {
                        sh.cat(Kind::Cancel).unjoined.fetch_add(1, SeqCst);
                        drop(task.handle);
                    } else {
                        left.tasks.push((task, None));
                    }
                }
                1 => {
                    let (tx, rx) = tokio::sync::oneshot::channel::<u64>();
                    left.keep_alive.push(Box::new(tx));
                    let task = sh.spawn(Kind::Cancel, via, async move {
                        let _ = rx.await;
                        pending::<u64>().await
                    });
                    left.tasks.push((task, None));
                }
                2 => {
                    let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(1);
                    left.keep_alive.push(Box::new(tx));
                    let task = sh.spawn(Kind::Cancel, via, async move {
                        let _ = rx.recv().await;
                        pending::<u64>().await
                    });
                    left.tasks.push((task, None));
                }
                3 => {
                    // One pending task holds the sender another waits on:
                    // whichever is dropped first wakes the other during
                    // shutdown.
                    let (tx, rx) = tokio::sync::oneshot::channel::<u64>();
                    let holder = sh.spawn(Kind::Cancel, via, async move {
                        let _tx = tx;
                        pending::<u64>().await
                    });
                    let waiter = sh.spawn(Kind::Cancel, self.rng.via(), async move {
                        let _ = rx.await;
                        pending::<u64>().await
                    });
                    left.tasks.push((holder, None));
                    left.tasks.push((waiter, None));
                }
                4 => {
                    // A parent owning pending children: handles and a set.
                    let (children, members) = (self.rng.below(4), self.rng.below(4));
                    let inner = sh.clone();
                    let task = sh.spawn(Kind::Cancel, via, async move {
                        let handles: Vec<JoinHandle<u64>> = (0..children)
                            .map(|_| inner.spawn_unjoined(Kind::Cancel, Via::Spawn, pending()))
                            .collect();
                        let mut set = JoinSet::new();
                        for _ in 0..members {
                            inner.cat(Kind::Cancel).unjoined.fetch_add(1, SeqCst);
                            inner.set_spawn(&mut set, Kind::Cancel, Via::Current, pending::<u64>());
                        }
                        let _owned = (handles, set);
                        pending::<u64>().await
                    });
                    left.tasks.push((task, None));
                }
                5 => {
                    let guard = SpawnOnDrop {
                        sh: sh.clone(),
                        kind: Kind::Unpolled,
                        value: self.rng.value(),
                        out: unpolled_tx.clone(),
                    };
                    unpolled_followups += 1;
                    let task = sh.spawn(Kind::Cancel, via, async move {
                        let _guard = guard;
                        pending::<u64>().await
                    });
                    left.tasks.push((task, None));
                }
                6 => {
                    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                    let task = sh.spawn(Kind::PolledCancel, via, async move {
                        let _ = tx.send(());
                        pending::<u64>().await
                    });
                    started.push(rx);
                    left.tasks.push((task, None));
                }
                _ => {
                    let members = self.rng.range(1, 6);
                    let mut set = JoinSet::new();
                    for _ in 0..members {
                        let via = self.rng.via();
                        sh.set_spawn(&mut set, Kind::Cancel, via, pending::<u64>());
                    }
                    left.sets.push((set, members));
                }
            }
        }
        for rx in started {
            rx.await
                .expect("pending task dropped before its first poll ended");
        }
        // Racers: may finish before the shutdown or be cut by it.
        for _ in 0..self.rng.range(0, 20) {
            let (v, via) = (self.rng.value(), self.rng.via());
            match self.rng.below(4) {
                0 => {
                    let yields = self.rng.range(1, 200);
                    let guard = SpawnOnDrop {
                        sh: sh.clone(),
                        kind: Kind::Racer,
                        value: self.rng.value(),
                        out: racer_tx.clone(),
                    };
                    racer_followups += 1;
                    let task = sh.spawn(Kind::Racer, via, async move {
                        let _guard = guard;
                        for _ in 0..yields {
                            yield_now().await;
                        }
                        v
                    });
                    left.tasks.push((task, Some(v)));
                }
                1 => {
                    let work = self.rng.work();
                    let inner = sh.clone();
                    let task = sh.spawn(Kind::Racer, via, async move {
                        wq::blocking(|| work.run());
                        inner.sample();
                        v
                    });
                    left.tasks.push((task, Some(v)));
                }
                2 => {
                    let work = self.rng.work();
                    let task = sh.spawn_blocking(Kind::Racer, via, move || {
                        work.run();
                        v
                    });
                    left.tasks.push((task, Some(v)));
                }
                _ => {
                    let yields = self.rng.range(1, 50);
                    let task = sh.spawn(Kind::Racer, via, async move {
                        for _ in 0..yields {
                            yield_now().await;
                        }
                        v
                    });
                    left.tasks.push((task, Some(v)));
                }
            }
        }
        // Workqueues at the shutdown: every slot of the limited and ordered
        // queues held by a task that never completes, tasks queued behind
        // the holders (never polled), delayed ones whose delay may or may
        // not end first (then queued behind the holders), and pending and
        // racing tasks on the `mem_reclaim` queue. Nothing else is queued
        // on them now.
        for queue in [LIMITED, ORDERED] {
            if self.rng.chance(50) {
                continue;
            }
            for _ in 0..sh.queues[queue].max_active {
                let task = sh.spawn_to(Kind::Cancel, Target::Queue(queue), pending::<u64>());
                left.tasks.push((task, None));
            }
            for _ in 0..self.rng.range(0, 3) {
                let v = self.rng.value();
                let task = sh.spawn_to(Kind::Unpolled, Target::Queue(queue), async move { v });
                left.tasks.push((task, None));
            }
            if queue == LIMITED {
                for _ in 0..self.rng.range(0, 3) {
                    let v = self.rng.value();
                    let delay = match self.rng.chance(50) {
                        true => Duration::from_secs(3600),
                        false => Duration::from_micros(self.rng.below(3001) as u64),
                    };
                    let task =
                        sh.spawn_after(Kind::Unpolled, LIMITED, delay, false, async move { v });
                    left.tasks.push((task, None));
                }
            }
        }
        if sh.queues.len() > RECLAIM {
            for _ in 0..self.rng.range(0, 4) {
                let v = self.rng.value();
                let target = Target::Queue(RECLAIM);
                if self.rng.chance(50) {
                    let task = sh.spawn_to(Kind::Cancel, target, pending::<u64>());
                    left.tasks.push((task, None));
                } else {
                    let steps = self.rng.steps(2);
                    let task = sh.spawn_to(Kind::Racer, target, async move {
                        run_steps(steps).await;
                        v
                    });
                    left.tasks.push((task, Some(v)));
                }
            }
        }
        // Timers due around the shutdown, sleeps and spins inside polls.
        for _ in 0..self.rng.range(0, 40) {
            let (v, via) = (self.rng.value(), self.rng.via());
            let d = Duration::from_micros(self.rng.below(5001) as u64);
            match self.rng.below(5) {
                0 | 1 => {
                    let task = sh.spawn(Kind::Racer, via, async move {
                        wq::time::sleep(d).await;
                        v
                    });
                    left.tasks.push((task, Some(v)));
                }
                2 => {
                    let task = sh.spawn(Kind::Cancel, via, async move {
                        let mut interval = wq::time::interval(d + Duration::from_micros(500));
                        loop {
                            interval.tick().await;
                        }
                    });
                    left.tasks.push((task, None));
                }
                3 => {
                    let task = sh.spawn(Kind::Racer, via, async move {
                        std::thread::sleep(d / 2);
                        v
                    });
                    left.tasks.push((task, Some(v)));
                }
                _ => {
                    let task = sh.spawn(Kind::Racer, via, async move {
                        spin(d / 2);
                        v
                    });
                    left.tasks.push((task, Some(v)));
                }
            }
        }
        sh.sample();
        left.followups.push((unpolled_rx, unpolled_followups));
        left.followups.push((racer_rx, racer_followups));
        left
    }
}

// ---------------------------------------------------------------------------
// Checks at the end of a run

/// Clean end, after the driver's `block_on` returned: everything joined;
/// wait for the detached work, then the pool must be empty and idle, and
/// every workqueue's figures exact.
fn quiesce(sh: &Shared) {
    // A future is dropped just before its task leaves the registry.
    wait_until(sh, "num_alive_tasks() == 0", || {
        sh.metrics.num_alive_tasks() == 0
    });
    assert_eq!(sh.metrics.global_queue_depth(), 0, "queue depth when idle");
    let m = &sh.metrics;
    wait_until(sh, "every worker idle", || {
        m.num_running_workers() == 0 && m.num_idle_workers() == m.num_workers()
    });
    let workers = m.num_workers();
    // A current-thread runtime's `block_on` thread has left it: only its
    // helpers, if any, are left.
    let least = usize::from(!sh.current_thread);
    assert!(
        (least..=sh.max_workers).contains(&workers),
        "{workers} workers with max_workers {}",
        sh.max_workers
    );
    if let Some(threads) = pool_threads(&sh.prefix) {
        assert_eq!(
            threads, workers,
            "threads named {:?} vs num_workers",
            sh.prefix
        );
    }
    sh.sample();
    verify_queues(sh, "once idle", true);
}

/// Every workqueue's figures balance (nothing active or waiting, every task
/// queued completed) and match what the harness queued; the `max_active`
/// and ordered checks held; no timer is left. `exact_system`: also the
/// number of `system` tasks (not when destructors spawned during a
/// shutdown, which may or may not count them).
fn verify_queues(sh: &Shared, stage: &str, exact_system: bool) {
    let mut problems = Vec::new();
    let system = sh.system.stats();
    let queued = sh.system_queued.load(SeqCst) as u64;
    if system.total != system.completed || system.active != 0 || system.inactive != 0 {
        problems.push(format!("system does not balance: {system:?}"));
    }
    if exact_system && system.total != queued {
        problems.push(format!(
            "system counted {} tasks, the harness queued {queued}",
            system.total
        ));
    }
    for q in &sh.queues {
        let s = q.queue.stats();
        let name = q.name();
        if s.total != s.completed || s.active != 0 || s.inactive != 0 {
            problems.push(format!("{name} does not balance: {s:?}"));
        }
        let (sure, maybe) = (
            q.queued.load(SeqCst) as u64,
            q.maybe_queued.load(SeqCst) as u64,
        );
        if s.total < sure || s.total > sure + maybe {
            problems.push(format!(
                "{name} counted {} tasks, the harness queued {sure} and {maybe} delayed",
                s.total
            ));
        }
        let (in_flight, high) = (q.in_flight.load(SeqCst), q.high_water.load(SeqCst));
        if in_flight != 0 || high > q.max_active || s.max_active != q.max_active {
            problems.push(format!(
                "{name}: {in_flight} in flight, high water {high}, max_active {}: {s:?}",
                q.max_active
            ));
        }
    }
    let timers = sh.metrics.num_pending_timers();
    if timers != 0 {
        problems.push(format!("{timers} timers pending"));
    }
    if !problems.is_empty() {
        panic!("{stage}:\n  {}{}", problems.join("\n  "), sh.report());
    }
}

/// Invariants that hold once every future is gone, joined or not.
fn verify_drops(sh: &Shared, stage: &str) {
    let mut problems = Vec::new();
    let mut spawned = 0;
    let mut drops = 0;
    for (kind, s) in sh.snapshots() {
        spawned += s.spawned;
        drops += s.drops;
        let mut need = |ok: bool, what: &str| {
            if !ok {
                problems.push(format!("{kind:?}: {what}: {s:?}"));
            }
        };
        need(s.drops == s.spawned, "every future dropped exactly once");
        match kind {
            Kind::Value => {
                need(s.completions == s.spawned, "every future completed");
                need(s.unjoined_done == s.unjoined, "every detached future ended");
            }
            Kind::Panic => {
                need(s.completions == 0, "no panicking future completed");
                need(s.polls >= s.spawned, "every panicking future was polled");
            }
            Kind::Unpolled => {
                need(
                    s.polls == 0,
                    "no future cancelled before its first poll was polled",
                );
                need(s.completions == 0, "none completed");
            }
            Kind::PolledCancel => {
                need(s.completions == 0, "none completed");
                need(s.polls >= s.spawned, "every one was polled");
            }
            Kind::Cancel => need(s.completions == 0, "none completed"),
            Kind::Racer => {}
        }
    }
    if spawned != drops {
        problems.push(format!("{spawned} futures spawned, {drops} dropped"));
    }
    if !problems.is_empty() {
        panic!("{stage}:\n  {}{}", problems.join("\n  "), sh.report());
    }
}

/// Invariants that hold once every kept handle has been joined.
fn verify_outcomes(sh: &Shared, stage: &str) {
    let mut problems = Vec::new();
    for (kind, s) in sh.snapshots() {
        let mut need = |ok: bool, what: &str| {
            if !ok {
                problems.push(format!("{kind:?}: {what}: {s:?}"));
            }
        };
        need(
            s.ok + s.cancelled + s.panicked + s.unjoined == s.spawned,
            "ok + cancelled + panicked + unjoined == spawned",
        );
        match kind {
            Kind::Value => need(s.cancelled == 0 && s.panicked == 0, "all Ok"),
            Kind::Panic => need(s.ok == 0 && s.cancelled == 0, "all panics"),
            Kind::Unpolled | Kind::PolledCancel | Kind::Cancel => {
                need(s.ok == 0 && s.panicked == 0, "all cancelled")
            }
            Kind::Racer => {
                need(s.panicked == 0, "no panic");
                need(s.unjoined == 0, "all joined");
                need(
                    s.completions == s.ok,
                    "Ok exactly when the future completed",
                );
            }
        }
    }
    if !problems.is_empty() {
        panic!("{stage}:\n  {}{}", problems.join("\n  "), sh.report());
    }
}

fn check_leftovers(sh: &Shared, left: Leftover) -> Vec<Box<dyn Any + Send>> {
    for (task, racer) in left.tasks {
        let kind = task.kind;
        let id = task.handle.id();
        match (racer, task.join_now(sh)) {
            (_, Err(e)) if e.is_cancelled() => {}
            (Some(v), Ok(got)) if got == v => {}
            (racer, other) => panic!(
                "after shutdown, {kind:?} task {id} (may complete with {racer:?}) resolved to \
                 {other:?}"
            ),
        }
    }
    for (mut set, members) in left.sets {
        let mut n = 0;
        while let Some(result) = futures::executor::block_on(set.join_next()) {
            n += 1;
            sh.record(Kind::Cancel, None, &result);
            if let Err(e) = &result {
                assert!(e.is_cancelled(), "after shutdown, set member: {e:?}");
            } else {
                panic!("after shutdown, a never-completing set member gave {result:?}");
            }
        }
        assert_eq!(n, members, "after shutdown, set members joined");
    }
    for (rx, count) in left.followups {
        let mut n = 0;
        while let Ok(task) = rx.try_recv() {
            n += 1;
            let kind = task.kind;
            match task.join_now(sh) {
                Err(e) if e.is_cancelled() => {}
                Ok(_) if kind == Kind::Racer => {}
                other => panic!("after shutdown, {kind:?} follow-up resolved to {other:?}"),
            }
        }
        assert_eq!(n, count, "follow-ups spawned by destructors");
    }
    left.keep_alive
}

// ---------------------------------------------------------------------------
// One run

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// Everything joined, pool idle, then the runtime is dropped.
    Clean,
    /// Dropped with tasks pending.
    Drop,
    /// `shutdown_timeout` with tasks pending.
    ShutdownTimeout,
}

#[derive(Debug)]
struct Plan {
    /// A current-thread runtime (its `block_on` thread is the one worker,
    /// with `max_workers - 1` helpers at most); otherwise multi-thread.
    current_thread: bool,
    workers: usize,
    max_workers: usize,
    blocking_threshold: Duration,
    cpu_intensive_threshold: Duration,
    /// `max_active` of the limited queue.
    max_active: usize,
    /// Whether the run has a `mem_reclaim` queue.
    reclaim: bool,
    ops: usize,
    end: End,
    max_outstanding: usize,
}

impl Plan {
    fn new(seed: u64, ops: usize) -> (Plan, Rng) {
        let mut rng = Rng(seed);
        let current_thread = rng.chance(20);
        let (workers, max_workers) = if current_thread {
            (1, rng.range(1, 4))
        } else {
            let workers = rng.range(1, 3);
            (workers, rng.range(workers, workers + 6))
        };
        let blocking_threshold = Duration::from_micros([1000, 1000, 500, 250][rng.below(4)]);
        // Mostly below the default 10 ms, so that hogs cost less.
        let cpu_intensive_threshold = Duration::from_millis([2, 3, 5, 10][rng.below(4)]);
        let max_active = rng.range(1, 4);
        let reclaim = rng.chance(60);
        let end = match rng.below(10) {
            0..=4 => End::Clean,
            5..=7 => End::Drop,
            _ => End::ShutdownTimeout,
        };
        let max_outstanding = rng.range(1, 64);
        let plan = Plan {
            current_thread,
            workers,
            max_workers,
            blocking_threshold,
            cpu_intensive_threshold,
            max_active,
            reclaim,
            ops,
            end,
            max_outstanding,
        };
        (plan, rng)
    }
}

static RUN: AtomicUsize = AtomicUsize::new(0);

fn run(seed: u64, ops: usize) -> String {
    let start = Instant::now();
    let (plan, rng) = Plan::new(seed, ops);
    // Unique per run, fixed width (no prefix of another), under 16 bytes.
    let prefix = format!(
        "wqs{:04x}{:06x}",
        RUN.fetch_add(1, SeqCst) & 0xffff,
        seed & 0xff_ffff
    );
    let builder = match plan.current_thread {
        true => wq::Builder::new_current_thread(),
        false => wq::Builder::new().workers(plan.workers),
    };
    let rt = builder
        .max_workers(plan.max_workers)
        .blocking_threshold(plan.blocking_threshold)
        .cpu_intensive_threshold(plan.cpu_intensive_threshold)
        .thread_name(prefix.clone())
        .build()
        .expect("build runtime");
    let system = {
        let _enter = rt.enter();
        wq::system()
    };
    let queue = |name: &str| wq::Workqueue::builder(format!("{prefix}{name}")).handle(rt.handle());
    let build = |builder: wq::WorkqueueBuilder| builder.build().expect("build a workqueue");
    let mut queues = vec![
        Queue::new(
            build(queue("l").max_active(plan.max_active)),
            plan.max_active,
            false,
        ),
        Queue::new(build(queue("o").ordered()), 1, true),
    ];
    if plan.reclaim {
        let reclaim = build(queue("r").mem_reclaim());
        let max_active = reclaim.stats().max_active;
        queues.push(Queue::new(reclaim, max_active, false));
    }
    let sh = Arc::new(Shared {
        start: Instant::now(),
        prefix: prefix.clone(),
        max_workers: plan.max_workers,
        current_thread: plan.current_thread,
        cpu_intensive_threshold: plan.cpu_intensive_threshold,
        handle: rt.handle().clone(),
        metrics: rt.handle().metrics(),
        system,
        system_queued: AtomicUsize::new(0),
        queues,
        cats: KINDS.iter().map(|_| Cat::default()).collect(),
        peak_workers: AtomicUsize::new(0),
        peak_threads: AtomicUsize::new(0),
        peak_idle: AtomicUsize::new(0),
        peak_running: AtomicUsize::new(0),
        samples: AtomicUsize::new(0),
        nodes_planned: AtomicUsize::new(0),
        nodes_run: AtomicUsize::new(0),
        ids: Mutex::new(HashSet::new()),
        violations: Mutex::new(Vec::new()),
    });
    let mut driver = Driver {
        sh: sh.clone(),
        rng,
        workers: plan.workers,
        rescues_left: RESCUES,
        trace: std::env::var_os("WQ_STRESS_TRACE").is_some(),
        outstanding: VecDeque::new(),
        max_outstanding: plan.max_outstanding,
        op: 0,
    };
    let left = rt.block_on(driver.run(plan.ops, plan.end == End::Clean));
    drop(driver);
    if plan.end == End::Clean {
        quiesce(&sh);
    }
    let late_handle = rt.handle().clone();
    match plan.end {
        End::ShutdownTimeout => rt.shutdown_timeout(Duration::from_secs(60)),
        End::Clean | End::Drop => drop(rt),
    }

    // The runtime is gone: every future must have been dropped by now.
    let m = &sh.metrics;
    assert_eq!(m.num_workers(), 0, "workers left after shutdown");
    assert_eq!(m.num_alive_tasks(), 0, "tasks alive after shutdown");
    assert_eq!(m.global_queue_depth(), 0, "queued after shutdown");
    verify_drops(&sh, "right after shutdown");
    verify_queues(&sh, "right after shutdown", plan.end == End::Clean);

    // Spawning now is refused: cancelled at once, never polled.
    let late = vec![sh.spawn(Kind::Unpolled, Via::Handle, async { 1u64 }), {
        let _enter = late_handle.enter();
        sh.spawn(Kind::Unpolled, Via::Spawn, async { 2u64 })
    }];
    for task in late {
        assert!(task.handle.is_finished(), "late spawn not finished at once");
        expect_cancelled("spawn after shutdown", task.join_now(&sh));
    }
    let mut set = JoinSet::new();
    sh.set_spawn(&mut set, Kind::Unpolled, Via::Handle, async { 3u64 });
    let result = futures::executor::block_on(set.join_next()).expect("one member");
    sh.record(Kind::Unpolled, None, &result);
    expect_cancelled("join set spawn after shutdown", result);

    let keep_alive = check_leftovers(&sh, left);
    let before = sh.snapshots();
    drop(keep_alive);
    assert_eq!(
        before,
        sh.snapshots(),
        "dropping the senders pending tasks waited on changed the counts"
    );
    verify_drops(&sh, "after joining every handle");
    verify_outcomes(&sh, "after joining every handle");

    let violations = sh.violations.lock().unwrap().clone();
    assert!(
        violations.is_empty(),
        "{} violation(s) seen inside tasks:\n  {}",
        violations.len(),
        violations
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  ")
    );

    let peaks = (
        sh.peak_workers.load(SeqCst),
        sh.peak_threads.load(SeqCst),
        sh.peak_idle.load(SeqCst),
        sh.peak_running.load(SeqCst),
    );
    assert!(sh.samples.load(SeqCst) > 0, "no thread samples taken");
    assert!(
        peaks.0 <= plan.max_workers
            && peaks.1 <= plan.max_workers
            && peaks.2 <= plan.max_workers
            && peaks.3 <= plan.max_workers,
        "max_workers {} exceeded: peak num_workers {}, threads {}, idle {}, running {}",
        plan.max_workers,
        peaks.0,
        peaks.1,
        peaks.2,
        peaks.3
    );
    if threads_named(&prefix).is_some() {
        wait_until(&sh, "every worker thread exited", || {
            threads_named(&prefix) == Some(0)
        });
    }

    let spawned: usize = sh.snapshots().iter().map(|(_, s)| s.spawned).sum();
    format!(
        "seed {seed:#018x}: {plan:?}: {spawned} futures, peak {} workers / {} threads, {} samples, \
         {:?}",
        peaks.0,
        peaks.1,
        sh.samples.load(SeqCst),
        start.elapsed()
    )
}

// ---------------------------------------------------------------------------
// The test

fn env_number(name: &str) -> Option<u64> {
    let raw = std::env::var(name).ok()?;
    let text = raw.trim().replace('_', "");
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    Some(parsed.unwrap_or_else(|e| panic!("{name}={raw:?} is not a number: {e}")))
}

/// Keeps the intended panics of tasks off stderr; other panics print as
/// usual.
fn quiet_intended_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if payload_text(info.payload()).starts_with(MARK) {
                return;
            }
            previous(info);
        }));
    });
}

/// Aborts the process, naming the seed, if a run does not finish in time
/// (a hang would otherwise never report its seed). Disarmed by dropping the
/// returned sender.
fn watchdog(seed: u64, limit: Duration) -> mpsc::Sender<()> {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
            // Straight to stderr: the test harness captures `eprintln!`,
            // and the capture is lost when the process aborts.
            let _ = writeln!(
                std::io::stderr(),
                "seed {seed:#018x}: run did not finish within {limit:?} (hang); replay with \
                 WQ_STRESS_SEED={seed:#018x}"
            );
            std::process::abort();
        }
    });
    tx
}

#[test]
fn random_operation_mixes_keep_exact_invariants() {
    quiet_intended_panics();
    let ops = env_number("WQ_STRESS_OPS").map_or(DEFAULT_OPS, |n| n as usize);
    let first = env_number("WQ_STRESS_SEED");
    let runs = env_number("WQ_STRESS_RUNS")
        .map_or(if first.is_some() { 1 } else { DEFAULT_RUNS }, |n| {
            n as usize
        });
    let base = first.unwrap_or_else(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        splitmix(nanos ^ (u64::from(std::process::id()) << 32))
    });
    let soak = env_number("WQ_STRESS_SOAK_SECS").map(Duration::from_secs);
    let (runs, deadline) = match soak {
        Some(soak) => (usize::MAX, Some(Instant::now() + soak)),
        None => (runs, None),
    };
    match soak {
        Some(soak) => println!(
            "rt_stress: soak of {soak:?}, runs of {ops} operations, first seed {base:#018x}"
        ),
        None => println!("rt_stress: {runs} run(s) of {ops} operations, first seed {base:#018x}"),
    }
    let sampler = soak.map(|_| support::soak::Sampler::start());
    let limit = Duration::from_secs(120) + Duration::from_millis(20 * ops as u64);
    let mut seed = base;
    for i in 0..runs {
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            println!("rt_stress: soak over after {i} runs");
            break;
        }
        let disarm = watchdog(seed, limit);
        let result = panic::catch_unwind(AssertUnwindSafe(|| run(seed, ops)));
        drop(disarm);
        match result {
            Ok(summary) => println!("run {i}: {summary}"),
            Err(payload) => panic!(
                "seed {seed:#018x}: {}\n{:?}\n(replay with WQ_STRESS_SEED={seed:#018x} \
                 WQ_STRESS_OPS={ops})",
                payload_text(&*payload),
                Plan::new(seed, ops).0
            ),
        }
        seed = splitmix(seed);
    }
    if let Some(sampler) = sampler {
        check_soak(sampler.finish());
    }
}

/// Prints a soak's per-minute RSS and thread figures, writes every sample
/// to `WQ_STRESS_SOAK_CSV` (default `target/rt_stress_soak.csv`), and
/// fails if either grew (`support::soak::report` says how that is judged).
fn check_soak(samples: Vec<support::soak::Sample>) {
    let report = support::soak::report(&samples);
    let path = std::env::var("WQ_STRESS_SOAK_CSV")
        .unwrap_or_else(|_| "target/rt_stress_soak.csv".to_string());
    match std::fs::write(&path, &report.csv) {
        Ok(()) => println!("rt_stress: {} samples written to {path}", samples.len()),
        Err(err) => println!("rt_stress: could not write {path}: {err}"),
    }
    println!("{}", report.table);
    if let Err(growth) = report.flat {
        panic!("soak: {growth}");
    }
}
