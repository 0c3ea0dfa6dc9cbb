//! The runtime, at tokio's path: `tokio::runtime::{Runtime, Builder,
//! Handle, …}` are `wq::runtime::…` (also re-exported at the crate root).
//!
//! ```
//! let rt = wq::runtime::Builder::new_multi_thread()
//!     .worker_threads(2)
//!     .enable_all()
//!     .build()
//!     .unwrap();
//! let handle: &wq::runtime::Handle = rt.handle();
//! assert_eq!(handle.runtime_flavor(), wq::runtime::RuntimeFlavor::MultiThread);
//! ```
//!
//! A runtime is a pool, the registry of its tasks, and the thread context
//! that lets `wq::spawn` find them.
//!
//! Shutdown (on drop, or `shutdown_timeout`) goes in this order:
//! 1. The pool closes: a runnable scheduled from now on is dropped instead of
//!    queued (which cancels its task), queued runnables are dropped, workers
//!    are woken and exit after their current poll.
//! 2. The task registry closes: spawning now yields a cancelled handle. Every
//!    task still alive is woken; being scheduled on a closed pool drops it.
//!    So each task's future is dropped exactly once, whether it was queued,
//!    idle, or is running now (then it is dropped when its poll ends).
//! 3. The rescuers of `mem_reclaim` workqueues stop, and the pools wait for
//!    their threads to exit (a poll or a blocking closure in progress runs
//!    to its end), forever on drop, up to the timeout with
//!    `shutdown_timeout`.
//! 4. Once the workers have exited (at the end of the wait, or, if the
//!    timeout left some in a poll, when the last of them exits), the
//!    timers shut down (`Driver::shutdown`): no worker is left to fire
//!    them, so every timer still registered is woken, and a timer of this
//!    runtime polled from then on (by a `block_on` thread, another
//!    runtime's task, a blocking closure still running) panics instead of
//!    waiting forever. Dropping one still works.
//! 5. The I/O reactor shuts down (`Reactor::shutdown`), after the wait:
//!    the tasks (of other runtimes) waiting on its sockets are woken, and
//!    every operation on them, or registration with it, fails with an
//!    error from then on.

mod block_on;
mod builder;
mod context;
mod handle;
mod hooks;

use std::fmt;
use std::future::Future;
use std::io;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use crate::monitor::{Monitor, MonitorConfig};
use crate::net::reactor::Reactor;
use crate::pool::{current_cpu, Pool, PoolConfig};
use crate::rescuer::{Rescuer, Rescuers};
use crate::task::registry::{Registry, SpawnMeta};
use crate::task::stats::QueueTable;
use crate::task::JoinHandle;
use crate::time::driver::Driver;
use crate::topology::{Scope, Topology};
use crate::workqueue::SystemQueues;
use std::collections::HashMap;

pub use crate::metrics::RuntimeMetrics;
pub use builder::{Builder, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_WORKERS};
pub(crate) use context::{exit_driving, is_driving};
pub use handle::{EnterGuard, Handle, TryCurrentError};

/// Which kind of runtime a [`Handle`] belongs to (tokio's
/// `RuntimeFlavor`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RuntimeFlavor {
    /// Built with [`Builder::new_current_thread`]: tasks run on the thread
    /// that blocks on it.
    CurrentThread,
    /// Built with [`Builder::new`] (or `new_multi_thread`): tasks run on
    /// the runtime's worker threads.
    MultiThread,
}

/// What a runtime's handles share.
pub(crate) struct Inner {
    pub(crate) flavor: RuntimeFlavor,
    pub(crate) pool: Pool,
    pub(crate) tasks: Arc<Registry>,
    /// The workqueues' counters that the monitor and `wq::blocking` update.
    pub(crate) queues: Arc<QueueTable>,
    pub(crate) time: Arc<Driver>,
    /// The I/O reactor, polled by the workers.
    pub(crate) reactor: Arc<Reactor>,
    /// Watches the workers' polls (unless disabled), and tends starving
    /// pools.
    pub(crate) monitor: Monitor,
    /// The rescuers of the `mem_reclaim` workqueues: the pools' mayday hook.
    rescuers: Arc<Rescuers>,
    /// `wq::system()` and its siblings, created on first use.
    pub(crate) system_queues: SystemQueues,
    /// The high-priority pool, created with the first `highpri` workqueue.
    pub(crate) highpri: OnceLock<Pool>,
    /// A current-thread runtime's pool for `spawn_blocking`, created on
    /// first use.
    blocking: OnceLock<Pool>,
    /// Every pool besides the normal one, for shutdown. Its lock also
    /// serializes the creation of pools with shutdown.
    extra_pools: parking_lot::Mutex<Vec<Pool>>,
    /// The normal pool's configuration, for the pools created later.
    pool_config: PoolConfig,
    /// Unbound pools, by affinity scope, pod and strictness; created (under
    /// the `extra_pools` lock) by the first task of a pod.
    unbound: parking_lot::Mutex<HashMap<UnboundKey, Pool>>,
    /// The machine's CPU pods, read on first use.
    topology: OnceLock<Topology>,
}

/// An unbound pool's attributes: scope, pod, strict affinity, highpri.
type UnboundKey = (Scope, usize, bool, bool);

/// Counts a concurrency-management wakeup for the workqueue `queue` of the
/// current thread's runtime (a task of it blocked in `wq::blocking` and an
/// idle worker was woken in its place).
pub(crate) fn count_cm_wakeup(queue: u32) {
    context::with_current(|handle| {
        if let Some(handle) = handle {
            handle
                .inner
                .queues
                .with(crate::task::stats::QueueId(queue), |c| c.add_cm_wakeup());
        }
    });
}

/// The nice value of the high-priority pools' workers. The kernel uses -20
/// for its `kworker/*H` threads; a user-space runtime sharing the machine
/// asks for less. Lowering a thread's nice value needs CAP_SYS_NICE or a
/// RLIMIT_NICE that allows it: without, the workers run at the process's
/// value, and are still separate workers that a saturated normal pool
/// cannot delay.
pub const HIGHPRI_NICE: i32 = -10;

impl Inner {
    /// The high-priority pool: separate workers, named like the normal
    /// ones with an `H` (the kernel's `kworker/0:1H`), at `HIGHPRI_NICE`
    /// where the process may set it. Created on first use.
    pub(crate) fn highpri_pool(&self) -> io::Result<&Pool> {
        if let Some(pool) = self.highpri.get() {
            return Ok(pool);
        }
        let mut pools = self.extra_pools.lock();
        if let Some(pool) = self.highpri.get() {
            return Ok(pool);
        }
        let mut config = self.pool_config.clone();
        let name = config.thread_name.clone();
        config.thread_name = Arc::new(move || format!("{}H", name()));
        config.label = Arc::from("highpri");
        config.nice = Some(HIGHPRI_NICE);
        let pool = self.start_extra_pool(&mut pools, config)?;
        Ok(self.highpri.get_or_init(|| pool))
    }

    /// A current-thread runtime's pool for `spawn_blocking`: a regular pool
    /// of one worker (each closure runs inside `wq::blocking`, so every
    /// closure that blocks makes room for the next), named like the
    /// workers with a `B`. Created on first use.
    pub(crate) fn blocking_pool(&self) -> io::Result<Pool> {
        if let Some(pool) = self.blocking.get() {
            return Ok(pool.clone());
        }
        let mut pools = self.extra_pools.lock();
        if let Some(pool) = self.blocking.get() {
            return Ok(pool.clone());
        }
        let mut config = self.pool_config.clone();
        let name = config.thread_name.clone();
        config.thread_name = Arc::new(move || format!("{}B", name()));
        config.label = Arc::from("blocking");
        config.workers = 1;
        config.max_workers = DEFAULT_MAX_WORKERS;
        let pool = self.start_extra_pool(&mut pools, config)?;
        Ok(self.blocking.get_or_init(|| pool).clone())
    }

    /// Every pool: the normal one first, then those created since.
    pub(crate) fn all_pools(&self) -> Vec<Pool> {
        let mut pools = vec![self.pool.clone()];
        pools.extend(self.extra_pools.lock().iter().cloned());
        pools
    }

    /// The machine's CPU pods, read on first use.
    pub(crate) fn topology(&self) -> &Topology {
        self.topology.get_or_init(Topology::detect)
    }

    /// The pod of `scope` holding the CPU the caller runs on.
    pub(crate) fn current_pod(&self, scope: Scope) -> usize {
        self.topology().pod_of(scope, current_cpu()).unwrap_or(0)
    }

    /// The unbound pool of pod `pod` of `scope` (workqueues ask for the pod
    /// of the CPU that queues a task, as the kernel picks it): its own
    /// workers, as many running as the pod has CPUs, named like the others
    /// with `U` and the pod's number, pinned to the pod's CPUs if `strict`
    /// (and the topology is known), at `HIGHPRI_NICE` if `highpri`.
    /// Created on first use.
    pub(crate) fn unbound_pool_of(
        &self,
        scope: Scope,
        pod: usize,
        strict: bool,
        highpri: bool,
    ) -> io::Result<Pool> {
        let topology = self.topology();
        let key = (scope, pod, strict, highpri);
        if let Some(pool) = self.unbound.lock().get(&key) {
            return Ok(pool.clone());
        }
        let mut pools = self.extra_pools.lock();
        if let Some(pool) = self.unbound.lock().get(&key) {
            return Ok(pool.clone());
        }
        let cpus: Arc<[usize]> = match topology.pods(scope).get(pod) {
            Some(cpus) => cpus.as_slice().into(),
            None => topology.cpus().into(),
        };
        let mut config = self.pool_config.clone();
        let name = config.thread_name.clone();
        let suffix = if highpri { "H" } else { "" };
        config.thread_name = Arc::new(move || format!("{}U{pod}{suffix}", name()));
        config.label = Arc::from(format!(
            "unbound {} pod {pod}{}",
            scope.name(),
            if highpri { " highpri" } else { "" }
        ));
        if highpri {
            config.nice = Some(HIGHPRI_NICE);
        }
        config.workers = cpus.len().clamp(1, config.max_workers);
        if strict && topology.fallback(scope).is_none() {
            config.affinity = Some(cpus);
        }
        let pool = self.start_extra_pool(&mut pools, config)?;
        self.unbound.lock().insert(key, pool.clone());
        Ok(pool)
    }

    /// Creates and starts a pool besides the normal one, under the
    /// `extra_pools` lock.
    fn start_extra_pool(&self, pools: &mut Vec<Pool>, mut config: PoolConfig) -> io::Result<Pool> {
        if self.pool.is_closed() {
            return Err(io::Error::other("the runtime is shut down"));
        }
        // The normal pool drives the timers; the others only fire what is
        // due while they run.
        config.drives_timers = false;
        // Workqueues that ask for pools of their own (high-priority,
        // unbound) get worker threads, on a current-thread runtime too.
        config.current_thread = false;
        config.stamp_polls = self.monitor.detects();
        let pool = Pool::new(config);
        self.monitor.watch(pool.clone());
        if let Err(err) = pool.start() {
            pool.close();
            return Err(err);
        }
        pools.push(pool.clone());
        Ok(pool)
    }

    /// Starts the rescuer thread of the `mem_reclaim` workqueue `name`; it
    /// runs the runtime's thread start and stop hooks, like a worker.
    pub(crate) fn start_rescuer(&self, name: &str) -> io::Result<Rescuer> {
        if self.pool.is_closed() {
            return Err(io::Error::other("the runtime is shut down"));
        }
        self.rescuers.start(
            name,
            self.pool_config.on_thread_start.clone(),
            self.pool_config.on_thread_stop.clone(),
        )
    }
}

/// The I/O reactor of the current runtime, if any.
pub(crate) fn current_reactor() -> Option<Arc<Reactor>> {
    context::with_current(|handle| handle.map(|handle| handle.inner.reactor.clone()))
}

/// The timer driver of the current runtime, if any.
pub(crate) fn current_time_driver() -> Option<Arc<Driver>> {
    context::with_current(|handle| handle.map(|handle| handle.inner.time.clone()))
}

/// The current runtime's clock reading, if a runtime is current. Read in
/// place: cloning the driver's `Arc` at every `Instant::now` would have the
/// workers take turns at one shared reference count.
pub(crate) fn current_clock_now() -> Option<std::time::Instant> {
    context::with_current(|handle| handle.map(|handle| handle.inner.time.clock().now()))
}

/// A reference to the current runtime's timer driver for a new timer (see
/// `DriverRef`), if a runtime is current.
pub(crate) fn current_driver_ref() -> Option<Arc<crate::time::driver::DriverRef>> {
    context::with_current(|handle| {
        handle.map(|handle| crate::time::driver::DriverRef::current(&handle.inner.time))
    })
}

/// A wq runtime: a concurrency-managed pool of worker threads running
/// spawned tasks.
///
/// Dropping the runtime shuts it down: tasks are dropped at their next
/// scheduling point, blocking closures run to their end, and the drop waits
/// for the worker threads to exit. Its timers then shut down: one still
/// polled afterwards panics, as it can never fire.
///
/// ```
/// let rt = wq::Runtime::new().unwrap();
/// let sum = rt.block_on(async {
///     let a = wq::spawn(async { 1 });
///     let b = wq::spawn(async { 2 });
///     a.await.unwrap() + b.await.unwrap()
/// });
/// assert_eq!(sum, 3);
/// ```
pub struct Runtime {
    handle: Handle,
}

impl Runtime {
    /// A runtime with the default settings (see [`Builder::new`]).
    pub fn new() -> io::Result<Runtime> {
        Builder::new().build()
    }

    pub(crate) fn from_config(
        mut config: PoolConfig,
        monitor: Option<MonitorConfig>,
        flavor: RuntimeFlavor,
    ) -> io::Result<Runtime> {
        let tasks = Arc::new(Registry::new(config.workers));
        let queues = Arc::new(QueueTable::new());
        // Workers need the runtime's handle in their context, but the pool
        // must not own a strong reference to the runtime that owns it.
        let slot: Arc<std::sync::OnceLock<Weak<Inner>>> = Arc::default();
        let user_start = config.on_thread_start.take();
        let user_stop = config.on_thread_stop.take();
        let start_slot = slot.clone();
        config.on_thread_start = Some(Arc::new(move || {
            if let Some(inner) = start_slot.get().and_then(Weak::upgrade) {
                context::enter_worker(Handle { inner });
            }
            if let Some(hook) = &user_start {
                hook();
            }
        }));
        config.on_thread_stop = Some(Arc::new(move || {
            if let Some(hook) = &user_stop {
                hook();
            }
            context::exit_worker();
        }));
        let time = config.timers.clone();
        config.stamp_polls = monitor.is_some();
        let rescuers = Arc::new(Rescuers::default());
        config.mayday = Some(rescuers.hook());
        let reactor = Arc::new(Reactor::new()?);
        config.reactor = Some(reactor.clone());
        let pool_config = config.clone();
        let pool = Pool::new(config);
        let monitor = Monitor::start(pool.clone(), tasks.clone(), queues.clone(), monitor)?;
        let inner = Arc::new(Inner {
            flavor,
            pool,
            tasks,
            queues,
            time,
            reactor,
            monitor,
            rescuers,
            system_queues: SystemQueues::default(),
            highpri: OnceLock::new(),
            blocking: OnceLock::new(),
            extra_pools: parking_lot::Mutex::new(Vec::new()),
            unbound: parking_lot::Mutex::new(HashMap::new()),
            topology: OnceLock::new(),
            pool_config,
        });
        let _ = slot.set(Arc::downgrade(&inner));
        // Threads start only now, so each finds the handle in the slot.
        if let Err(err) = inner.pool.start() {
            inner.monitor.stop();
            return Err(err);
        }
        Ok(Runtime {
            handle: Handle { inner },
        })
    }

    /// Runs `future` to completion on the current thread; see
    /// [`Handle::block_on`].
    ///
    /// # Panics
    ///
    /// Panics if called from a thread that already drives a runtime.
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.handle.block_on(future)
    }

    /// Spawns `future` onto the runtime; see [`Handle::spawn`].
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future)
    }

    /// Runs a blocking closure on the runtime; see [`Handle::spawn_blocking`].
    #[track_caller]
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.handle.spawn_blocking(f)
    }

    /// The runtime's handle.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Figures about the runtime, read now; see [`Handle::metrics`].
    ///
    /// ```
    /// let rt = wq::Builder::new().workers(2).build().unwrap();
    /// assert!(rt.metrics().num_workers() >= 1);
    /// ```
    pub fn metrics(&self) -> crate::RuntimeMetrics {
        self.handle.metrics()
    }

    /// Makes the runtime current on this thread; see [`Handle::enter`].
    pub fn enter(&self) -> EnterGuard<'_> {
        self.handle.enter()
    }

    /// Shuts the runtime down, waiting at most `timeout` for its threads
    /// (for example a worker still inside a long blocking closure) to exit;
    /// threads still running then are left to finish on their own.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// let rt = wq::Runtime::new().unwrap();
    /// rt.spawn_blocking(|| std::thread::sleep(Duration::from_secs(2)));
    /// let start = Instant::now();
    /// rt.shutdown_timeout(Duration::from_millis(100));
    /// assert!(start.elapsed() < Duration::from_secs(2));
    /// ```
    ///
    /// # Panics
    ///
    /// Panics if called from a thread that drives a runtime.
    #[track_caller]
    pub fn shutdown_timeout(self, timeout: Duration) {
        self.shutdown(Some(timeout), false);
    }

    /// Shuts the runtime down without waiting for its threads: as
    /// `shutdown_timeout` with a zero timeout, and allowed inside an
    /// asynchronous context (a task, or `block_on` of another runtime),
    /// where dropping a runtime panics.
    ///
    /// ```
    /// let outer = wq::Runtime::new().unwrap();
    /// outer.block_on(async {
    ///     let inner = wq::Runtime::new().unwrap();
    ///     inner.spawn(async { 1 });
    ///     inner.shutdown_background();
    /// });
    /// ```
    pub fn shutdown_background(self) {
        self.shutdown(Some(Duration::ZERO), true);
    }

    #[track_caller]
    fn shutdown(&self, timeout: Option<Duration>, background: bool) {
        let inner = &self.handle.inner;
        if inner.pool.is_closed() {
            return;
        }
        let mut timeout = timeout;
        if is_driving() && !background {
            if std::thread::panicking() {
                // Unwinding through a task or `block_on`: close without
                // waiting rather than turn the panic into an abort.
                timeout = Some(Duration::ZERO);
            } else {
                panic!(
                    "Cannot drop a runtime in a context where blocking is not allowed. \
                 This happens when a runtime is dropped (or shut down) from within an \
                 asynchronous context, such as a task or `block_on`."
                );
            }
        }
        // Task destructors run below may spawn or look up the runtime.
        let _current = context::set_current(self.handle.clone());
        let deadline = timeout.map(|timeout| std::time::Instant::now() + timeout);
        let extra_pools = {
            let pools = inner.extra_pools.lock();
            inner.pool.close();
            pools.clone()
        };
        for pool in &extra_pools {
            pool.close();
        }
        inner.monitor.stop();
        for waker in inner.tasks.close() {
            waker.wake();
        }
        let left = |deadline: Option<std::time::Instant>| {
            deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()))
        };
        inner.rescuers.stop_all(deadline);
        let exited = inner.pool.wait_for_exit(left(deadline));
        for pool in &extra_pools {
            pool.wait_for_exit(left(deadline));
        }
        // With workers still in a poll (the timeout ran out), the last of
        // them to exit shuts the timers down instead (`Pool`'s exit).
        if exited {
            inner.time.shutdown();
        }
        inner.reactor.shutdown();
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown(None, false);
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("handle", &self.handle)
            .finish()
    }
}

/// Spawns `future` onto the current runtime.
///
/// # Panics
///
/// Panics outside a runtime context: call it from a task, inside
/// `block_on`, or while an `enter` guard is held; or use
/// [`Handle::spawn`]/[`Runtime::spawn`].
///
/// ```
/// let rt = wq::Runtime::new().unwrap();
/// rt.block_on(async {
///     let handle = wq::spawn(async { "hello" });
///     assert_eq!(handle.await.unwrap(), "hello");
/// });
/// ```
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    spawn_with(future, SpawnMeta::here())
}

/// `spawn`, with where and as what the task was spawned.
#[track_caller]
pub(crate) fn spawn_with<F>(future: F, meta: SpawnMeta) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    context::with_current(|handle| match handle {
        Some(handle) => handle.spawn_with(future, meta),
        None => panic!("{}", outside("spawn")),
    })
}

/// Runs the blocking closure `f` on a worker of the current runtime; see
/// [`Handle::spawn_blocking`].
///
/// # Panics
///
/// Panics outside a runtime context, like [`spawn`].
///
/// ```
/// let rt = wq::Runtime::new().unwrap();
/// rt.block_on(async {
///     let len = wq::task::spawn_blocking(|| std::fs::read_dir(".").unwrap().count());
///     assert!(len.await.unwrap() > 0);
/// });
/// ```
#[track_caller]
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    context::with_current(|handle| match handle {
        Some(handle) => handle.spawn_blocking(f),
        None => panic!("{}", outside("spawn_blocking")),
    })
}

fn outside(function: &str) -> String {
    format!(
        "`wq::{function}` called outside of a wq runtime: call it from a task, inside \
         `Runtime::block_on`, or while a `Runtime::enter` guard is held; or use \
         `Handle::{function}`"
    )
}
