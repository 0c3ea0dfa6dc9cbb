//! One interface over both runtimes, so that every workload is written once
//! and wq and tokio run exactly the same code.

use std::fmt;
use std::future::Future;
use std::io;
use std::time::{Duration, Instant};

use futures::future::{FutureExt, Map};

/// A task that did not produce its output (it panicked or was cancelled).
///
/// Both runtimes' join errors are mapped to this, so workloads can treat the
/// two alike.
#[derive(Debug)]
pub struct TaskFailed(String);

impl fmt::Display for TaskFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task failed: {}", self.0)
    }
}

impl std::error::Error for TaskFailed {}

/// What awaiting a task's join handle yields, on either runtime.
pub type JoinResult<T> = Result<T, TaskFailed>;

/// The operations the workloads need from a multi-threaded async runtime.
pub trait Rt: Sized {
    /// A cheap, cloneable reference for spawning from threads outside the
    /// runtime.
    type Handle: Clone + Send + Sync + 'static;

    /// A task's join handle, resolving to the task's output.
    type Join<T: Send + 'static>: Future<Output = JoinResult<T>>;

    /// The runtime's sleep future.
    type Sleep: Future<Output = ()> + Send + 'static;

    /// Builds a runtime with `workers` worker threads.
    fn build(workers: usize) -> io::Result<Self>;

    /// Runs `fut` to completion on the calling thread.
    fn block_on<F: Future>(&self, fut: F) -> F::Output;

    /// Spawns a task from outside the runtime, through the runtime itself.
    fn spawn<F>(&self, fut: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;

    /// Returns a handle for spawning from other threads.
    fn handle(&self) -> Self::Handle;

    /// Spawns a task through a handle (from any thread).
    fn spawn_on<F>(handle: &Self::Handle, fut: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;

    /// Spawns a task from inside the runtime (a task or `block_on`).
    fn spawn_inside<F>(fut: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;

    /// Yields the current task back to the scheduler once.
    fn yield_now() -> impl Future<Output = ()> + Send;

    /// Creates a sleep that completes at `deadline`. Must be called from
    /// inside the runtime (a task or `block_on`); the timer is registered
    /// when the future is first polled.
    fn sleep_until(deadline: Instant) -> Self::Sleep;

    /// Timers of the current runtime registered and neither fired nor
    /// cancelled, if the runtime reports it. Call from inside the runtime.
    /// Used only to check that a workload did register its timers.
    fn pending_timers() -> Option<usize>;

    /// What the runtime's monitor of stuck polls has counted so far, if the
    /// runtime has one (wq with its monitor on; tokio has none).
    fn monitor_counts(handle: &Self::Handle) -> Option<MonitorCounts>;

    /// Shuts the runtime down, waiting at most `timeout` for its threads;
    /// a thread still inside a poll then (a task spinning forever) is left
    /// to finish on its own.
    fn shutdown_timeout(self, timeout: Duration);

    /// What the `seed_scope_*` producers spawn through: for wq an unbound
    /// workqueue of the scope; tokio has no affinity scopes, so its runtime
    /// handle (which makes its side the plain seed round trip).
    type Scoped: Clone + Send + Sync + 'static;

    /// Builds the spawn target of `seed_scope_*` for `scope`, with workers
    /// pinned to their pod's CPUs if `strict` (ignored by tokio).
    fn scoped(&self, scope: wq::Scope, strict: bool) -> io::Result<Self::Scoped>;

    /// Spawns a task through a [`Rt::Scoped`] target (from any thread).
    fn spawn_scoped<F>(scoped: &Self::Scoped, fut: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;

    /// The unbound (per-pod) pools the process's runtime threads show, if
    /// the runtime has such pools (wq; tokio has none).
    fn unbound_pools() -> Option<UnboundPools>;
}

/// The unbound pools of wq found among the process's threads: wq names the
/// workers of the pool of pod `N` after its own workers with `UN` appended
/// (`wq-workerU0`; `H` follows for high-priority pools, not counted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnboundPools {
    /// Distinct pods with a pool.
    pub pools: usize,
    /// Their worker threads, together.
    pub threads: usize,
}

/// wq's default worker thread name, which `Wq::build` keeps.
const WQ_WORKER_NAME: &str = "wq-worker";

impl UnboundPools {
    /// Counts the unbound pools among the process's thread names.
    pub fn read() -> Option<Self> {
        let names = crate::sys::thread_names().ok()?;
        Some(Self::of(names.iter().map(String::as_str)))
    }

    fn of<'a>(names: impl Iterator<Item = &'a str>) -> Self {
        let mut pods = std::collections::BTreeSet::new();
        let mut threads = 0;
        for name in names {
            let pod = name
                .strip_prefix(WQ_WORKER_NAME)
                .and_then(|rest| rest.strip_prefix('U'))
                .filter(|pod| !pod.is_empty() && pod.bytes().all(|b| b.is_ascii_digit()));
            if let Some(pod) = pod {
                pods.insert(pod.to_owned());
                threads += 1;
            }
        }
        Self {
            pools: pods.len(),
            threads,
        }
    }
}

/// The counters of wq's monitor (`wq::RuntimeMetrics`), read at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MonitorCounts {
    /// Polls found blocked and taken out of concurrency management.
    pub blocked: u64,
    /// Polls found hogging the CPU past `cpu_intensive_threshold`.
    pub hogs: u64,
    /// Times the workers were looked at, by the monitor or by a worker.
    pub ticks: u64,
    /// Of which, times the monitor thread woke up for.
    pub wakeups: u64,
    /// Worker threads created since the runtime started.
    pub threads_created: u64,
}

impl MonitorCounts {
    /// What was counted between `earlier` and `self`.
    pub fn since(self, earlier: MonitorCounts) -> MonitorCounts {
        MonitorCounts {
            blocked: self.blocked.saturating_sub(earlier.blocked),
            hogs: self.hogs.saturating_sub(earlier.hogs),
            ticks: self.ticks.saturating_sub(earlier.ticks),
            wakeups: self.wakeups.saturating_sub(earlier.wakeups),
            threads_created: self.threads_created.saturating_sub(earlier.threads_created),
        }
    }
}

/// tokio's multi-thread runtime.
pub struct Tokio(tokio::runtime::Runtime);

/// A tokio join handle with its error mapped to [`TaskFailed`].
pub type TokioJoin<T> =
    Map<tokio::task::JoinHandle<T>, fn(Result<T, tokio::task::JoinError>) -> JoinResult<T>>;

fn tokio_join<T>(handle: tokio::task::JoinHandle<T>) -> TokioJoin<T> {
    let convert: fn(_) -> _ =
        |res: Result<T, tokio::task::JoinError>| res.map_err(|err| TaskFailed(err.to_string()));
    handle.map(convert)
}

impl Rt for Tokio {
    type Handle = tokio::runtime::Handle;
    type Join<T: Send + 'static> = TokioJoin<T>;
    type Sleep = tokio::time::Sleep;

    fn build(workers: usize) -> io::Result<Self> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
            .map(Self)
    }

    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.0.block_on(fut)
    }

    fn spawn<F>(&self, fut: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        tokio_join(self.0.spawn(fut))
    }

    fn handle(&self) -> Self::Handle {
        self.0.handle().clone()
    }

    fn spawn_on<F>(handle: &Self::Handle, fut: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        tokio_join(handle.spawn(fut))
    }

    fn spawn_inside<F>(fut: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        tokio_join(tokio::spawn(fut))
    }

    fn yield_now() -> impl Future<Output = ()> + Send {
        tokio::task::yield_now()
    }

    fn sleep_until(deadline: Instant) -> Self::Sleep {
        tokio::time::sleep_until(tokio::time::Instant::from_std(deadline))
    }

    fn pending_timers() -> Option<usize> {
        // tokio's stable metrics do not count timers.
        None
    }

    fn monitor_counts(_: &Self::Handle) -> Option<MonitorCounts> {
        None
    }

    fn shutdown_timeout(self, timeout: Duration) {
        self.0.shutdown_timeout(timeout);
    }

    type Scoped = tokio::runtime::Handle;

    fn scoped(&self, _scope: wq::Scope, _strict: bool) -> io::Result<Self::Scoped> {
        Ok(self.handle())
    }

    fn spawn_scoped<F>(scoped: &Self::Scoped, fut: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        tokio_join(scoped.spawn(fut))
    }

    fn unbound_pools() -> Option<UnboundPools> {
        None
    }
}

/// The wq runtime, built with its monitor of stuck polls on (`MONITOR`) or
/// off; [`Wq`] is the runtime as shipped, [`WqNoMonitor`] exists to measure
/// what the monitor costs.
pub struct WqRuntime<const MONITOR: bool>(wq::Runtime);

/// wq as built by default: the monitor is on.
pub type Wq = WqRuntime<true>;

/// wq with `Builder::monitor(false)`.
pub type WqNoMonitor = WqRuntime<false>;

/// A wq join handle with its error mapped to [`TaskFailed`].
pub type WqJoin<T> =
    Map<wq::task::JoinHandle<T>, fn(Result<T, wq::task::JoinError>) -> JoinResult<T>>;

fn wq_join<T>(handle: wq::task::JoinHandle<T>) -> WqJoin<T> {
    let convert: fn(_) -> _ =
        |res: Result<T, wq::task::JoinError>| res.map_err(|err| TaskFailed(err.to_string()));
    handle.map(convert)
}

impl<const MONITOR: bool> Rt for WqRuntime<MONITOR> {
    type Handle = wq::Handle;
    type Join<T: Send + 'static> = WqJoin<T>;
    type Sleep = wq::time::Sleep;

    fn build(workers: usize) -> io::Result<Self> {
        wq::Builder::new()
            .workers(workers)
            .monitor(MONITOR)
            .build()
            .map(Self)
    }

    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.0.block_on(fut)
    }

    fn spawn<F>(&self, fut: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        wq_join(self.0.spawn(fut))
    }

    fn handle(&self) -> Self::Handle {
        self.0.handle().clone()
    }

    fn spawn_on<F>(handle: &Self::Handle, fut: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        wq_join(handle.spawn(fut))
    }

    fn spawn_inside<F>(fut: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        wq_join(wq::spawn(fut))
    }

    fn yield_now() -> impl Future<Output = ()> + Send {
        wq::task::yield_now()
    }

    fn sleep_until(deadline: Instant) -> Self::Sleep {
        wq::time::sleep_until(wq::time::Instant::from_std(deadline))
    }

    fn pending_timers() -> Option<usize> {
        wq::Handle::try_current()
            .ok()
            .map(|handle| handle.metrics().num_pending_timers())
    }

    fn monitor_counts(handle: &Self::Handle) -> Option<MonitorCounts> {
        let metrics = handle.metrics();
        MONITOR.then(|| MonitorCounts {
            blocked: metrics.blocked_detections(),
            hogs: metrics.hog_detections(),
            ticks: metrics.monitor_ticks(),
            wakeups: metrics.monitor_wakeups(),
            threads_created: metrics.threads_created(),
        })
    }

    fn shutdown_timeout(self, timeout: Duration) {
        self.0.shutdown_timeout(timeout);
    }

    type Scoped = wq::Workqueue;

    fn scoped(&self, scope: wq::Scope, strict: bool) -> io::Result<Self::Scoped> {
        let strict_suffix = if strict { "_strict" } else { "" };
        wq::Workqueue::builder(format!(
            "seed_scope_{}{strict_suffix}",
            crate::topology::scope_name(scope)
        ))
        .unbound(scope)
        .affinity_strict(strict)
        .handle(self.0.handle())
        .build()
    }

    fn spawn_scoped<F>(scoped: &Self::Scoped, fut: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        wq_join(scoped.spawn(fut))
    }

    fn unbound_pools() -> Option<UnboundPools> {
        UnboundPools::read()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wq_monitor_is_on_by_default_and_off_on_request() {
        let on = Wq::build(2).unwrap();
        on.block_on(on.spawn(async {})).unwrap();
        // The monitor thread ticks once as it starts; it may not have run yet.
        let deadline = Instant::now() + Duration::from_secs(10);
        let counts = loop {
            let counts = Wq::monitor_counts(&on.handle()).expect("wq's monitor is on");
            if counts.ticks > 0 || Instant::now() > deadline {
                break counts;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        assert!(counts.ticks > 0, "the monitor never ran: {counts:?}");
        assert!(counts.threads_created >= 1, "{counts:?}");

        let off = WqNoMonitor::build(2).unwrap();
        off.block_on(off.spawn(async {})).unwrap();
        assert_eq!(WqNoMonitor::monitor_counts(&off.handle()), None);
        assert_eq!(off.0.handle().metrics().monitor_ticks(), 0);
    }

    #[test]
    fn counts_unbound_pools_by_thread_name() {
        let names = [
            "wq-worker",
            "wq-workerU0",
            "wq-workerU0",
            "wq-workerU1",
            "wq-workerU1H",
            "wq-workerH",
            "tokio-runtime-w",
        ];
        assert_eq!(
            UnboundPools::of(names.into_iter()),
            UnboundPools {
                pools: 2,
                threads: 3
            }
        );
    }

    #[test]
    fn scoped_spawns_run() {
        let wq = Wq::build(2).unwrap();
        let queue = wq.scoped(wq::Scope::System, false).unwrap();
        assert_eq!(
            wq.block_on(Wq::spawn_scoped(&queue, async { 7 })).unwrap(),
            7
        );
        let pools = Wq::unbound_pools().expect("thread names are readable");
        assert!(pools.pools >= 1 && pools.threads >= 1, "{pools:?}");
        let tokio = Tokio::build(2).unwrap();
        let handle = tokio.scoped(wq::Scope::Cpu, true).unwrap();
        assert_eq!(
            tokio
                .block_on(Tokio::spawn_scoped(&handle, async { 7 }))
                .unwrap(),
            7
        );
        assert_eq!(Tokio::unbound_pools(), None);
    }
}
