//! `Builder`: configuration of a runtime, validated by `build`.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::monitor::{
    MonitorConfig, DEFAULT_BLOCKING_THRESHOLD, DEFAULT_CPU_INTENSIVE_THRESHOLD,
    DEFAULT_WATCHDOG_THRESHOLD, MIN_BLOCKING_THRESHOLD, MIN_WATCHDOG_THRESHOLD,
};
use crate::pool::{Hook, PoolConfig, SpawnHook, CREATE_COOLDOWN};
use crate::time::driver::Driver;

use super::hooks::guarded;
use super::{Runtime, RuntimeFlavor};

/// The shortest `idle_timeout`: an idle worker wakes that often.
const MIN_IDLE_TIMEOUT: Duration = Duration::from_millis(1);

/// The smallest `thread_stack_size`: a worker's own frames (the pool's
/// loop, a task's poll, the panic machinery) take about 32 KiB in a debug
/// build.
const MIN_STACK_SIZE: usize = 64 * 1024;

/// The default cap on worker threads (blocked and idle ones included).
pub const DEFAULT_MAX_WORKERS: usize = 512;

/// The default time an idle worker waits before it may be culled (the
/// kernel's `IDLE_WORKER_TIMEOUT`).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Builds a [`Runtime`] with custom settings.
///
/// Invalid settings are reported by [`build`](Builder::build) as an
/// `io::Error` of kind `InvalidInput` naming the field; setters never panic.
///
/// ```
/// use std::time::Duration;
///
/// let rt = wq::Builder::new()
///     .workers(2)
///     .max_workers(64)
///     .idle_timeout(Duration::from_secs(30))
///     .thread_name("my-worker")
///     .build()
///     .unwrap();
/// assert_eq!(rt.block_on(async { 1 + 1 }), 2);
///
/// let err = wq::Builder::new().workers(0).build().unwrap_err();
/// assert!(err.to_string().contains("`workers`"));
/// ```
pub struct Builder {
    flavor: RuntimeFlavor,
    workers: Option<usize>,
    max_workers: usize,
    idle_timeout: Duration,
    thread_name: ThreadName,
    thread_stack_size: Option<usize>,
    on_thread_start: Option<Hook>,
    on_thread_stop: Option<Hook>,
    on_thread_park: Option<Hook>,
    on_thread_unpark: Option<Hook>,
    spawn_hook: Option<SpawnHook>,
    create_cooldown: Duration,
    start_paused: bool,
    monitor: bool,
    blocking_threshold: Duration,
    cpu_intensive_threshold: Duration,
    /// `None`: the default, which `monitor(false)` turns off too.
    watchdog_threshold: Option<Duration>,
}

#[derive(Clone)]
enum ThreadName {
    Fixed(String),
    Fn(Arc<dyn Fn() -> String + Send + Sync + 'static>),
}

impl Builder {
    /// A builder of a multi-thread runtime with the defaults: `workers` =
    /// the machine's available parallelism, `max_workers` = 512,
    /// `idle_timeout` = 300 s, threads named `wq-worker`.
    pub fn new() -> Builder {
        Builder {
            flavor: RuntimeFlavor::MultiThread,
            workers: None,
            max_workers: DEFAULT_MAX_WORKERS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            thread_name: ThreadName::Fixed("wq-worker".to_owned()),
            thread_stack_size: None,
            on_thread_start: None,
            on_thread_stop: None,
            on_thread_park: None,
            on_thread_unpark: None,
            spawn_hook: None,
            create_cooldown: CREATE_COOLDOWN,
            start_paused: false,
            monitor: true,
            blocking_threshold: DEFAULT_BLOCKING_THRESHOLD,
            cpu_intensive_threshold: DEFAULT_CPU_INTENSIVE_THRESHOLD,
            watchdog_threshold: None,
        }
    }

    /// tokio's name for [`Builder::new`]: a multi-thread runtime.
    ///
    /// ```
    /// let rt = wq::Builder::new_multi_thread().enable_all().build().unwrap();
    /// assert_eq!(rt.handle().runtime_flavor(), wq::RuntimeFlavor::MultiThread);
    /// ```
    pub fn new_multi_thread() -> Builder {
        Builder::new()
    }

    /// A builder of a current-thread runtime: it has no worker threads of
    /// its own, and its tasks, timers and I/O run on the thread that calls
    /// [`Runtime::block_on`], while it does, as tokio's current-thread
    /// runtime. That thread serves as the runtime's one worker meanwhile:
    /// concurrency management applies to it as to any worker (its polls,
    /// the root future's included, are watched by the monitor, and
    /// [`wq::blocking`](crate::blocking) takes it out of the running
    /// count). With the default `max_workers(1)` nothing can take its
    /// place, so a task that blocks it stalls the runtime, as on tokio (the
    /// monitor still finds it); with `max_workers(n)` above 1, the runtime
    /// creates helper threads while a `block_on` thread is blocked, and
    /// those then run tasks whenever no `block_on` thread does.
    /// `workers` is 1 and cannot be set otherwise.
    ///
    /// ```
    /// use std::rc::Rc;
    ///
    /// let rt = wq::Builder::new_current_thread().build().unwrap();
    /// let thread = std::thread::current().id();
    /// let ran_on = rt.block_on(async {
    ///     // `block_on`'s future need not be `Send`.
    ///     let _local = Rc::new(());
    ///     wq::spawn(async { std::thread::current().id() }).await.unwrap()
    /// });
    /// assert_eq!(ran_on, thread);
    /// ```
    pub fn new_current_thread() -> Builder {
        let mut builder = Builder::new();
        builder.flavor = RuntimeFlavor::CurrentThread;
        builder.max_workers = 1;
        builder
    }

    /// Accepted for tokio compatibility; does nothing: wq's I/O and timers
    /// are always enabled.
    pub fn enable_all(self) -> Builder {
        self
    }

    /// Accepted for tokio compatibility; does nothing (I/O is always
    /// enabled).
    pub fn enable_io(self) -> Builder {
        self
    }

    /// Accepted for tokio compatibility; does nothing (timers are always
    /// enabled).
    pub fn enable_time(self) -> Builder {
        self
    }

    /// tokio's name for [`workers`](Builder::workers).
    pub fn worker_threads(self, n: usize) -> Builder {
        self.workers(n)
    }

    /// tokio's name for [`idle_timeout`](Builder::idle_timeout).
    pub fn thread_keep_alive(self, timeout: Duration) -> Builder {
        self.idle_timeout(timeout)
    }

    /// The concurrency target: how many workers run tasks at once. A worker
    /// that blocks (inside [`wq::blocking`](crate::blocking)) stops counting
    /// and another one takes its place. Default: available parallelism.
    /// Must be at least 1.
    pub fn workers(mut self, n: usize) -> Builder {
        self.workers = Some(n);
        self
    }

    /// The cap on worker threads, blocked and idle ones included. Default
    /// 512. Must be at least `workers`.
    pub fn max_workers(mut self, n: usize) -> Builder {
        self.max_workers = n;
        self
    }

    /// How long a worker stays idle before it may exit; the pool keeps at
    /// least two idle workers and culls only when idle ones exceed a quarter
    /// of the busy ones (the kernel's rule). Default 300 s. Must be at least
    /// 1 ms.
    pub fn idle_timeout(mut self, timeout: Duration) -> Builder {
        self.idle_timeout = timeout;
        self
    }

    /// The name of worker threads. Must not be empty.
    pub fn thread_name(mut self, name: impl Into<String>) -> Builder {
        self.thread_name = ThreadName::Fixed(name.into());
        self
    }

    /// A function naming each new worker thread. A name with a NUL byte, or
    /// a panic in the function, fails that thread's creation with an error
    /// naming this setting: `build` returns it for the first workers; a
    /// worker created later is then not created (as when the system refuses
    /// a thread).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    ///
    /// let rt = wq::Builder::new()
    ///     .thread_name_fn(|| {
    ///         static ID: AtomicUsize = AtomicUsize::new(0);
    ///         format!("worker-{}", ID.fetch_add(1, Ordering::Relaxed))
    ///     })
    ///     .build()
    ///     .unwrap();
    /// # drop(rt);
    /// ```
    pub fn thread_name_fn<F>(mut self, f: F) -> Builder
    where
        F: Fn() -> String + Send + Sync + 'static,
    {
        self.thread_name = ThreadName::Fn(Arc::new(f));
        self
    }

    /// The stack size of worker threads, in bytes. Default: the standard
    /// library's (2 MiB unless `RUST_MIN_STACK` says otherwise). Must be at
    /// least 64 KiB.
    pub fn thread_stack_size(mut self, size: usize) -> Builder {
        self.thread_stack_size = Some(size);
        self
    }

    /// Runs `f` on each worker thread as it starts.
    ///
    /// If `f` panics, the panic is caught and reported through `tracing` at
    /// error level, and the thread carries on as if `f` had returned.
    pub fn on_thread_start<F>(mut self, f: F) -> Builder
    where
        F: Fn() + Send + Sync + 'static,
    {
        self.on_thread_start = Some(Arc::new(f));
        self
    }

    /// Runs `f` on each worker thread as it stops.
    ///
    /// If `f` panics, the panic is caught and reported through `tracing` at
    /// error level, and the thread carries on as if `f` had returned.
    pub fn on_thread_stop<F>(mut self, f: F) -> Builder
    where
        F: Fn() + Send + Sync + 'static,
    {
        self.on_thread_stop = Some(Arc::new(f));
        self
    }

    /// Runs `f` on a worker thread each time it is about to sleep for lack
    /// of work (on a current-thread runtime, the `block_on` thread too).
    ///
    /// If `f` panics, the panic is caught and reported through `tracing` at
    /// error level, and the thread carries on as if `f` had returned.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    /// use std::sync::Arc;
    ///
    /// let parks = Arc::new(AtomicUsize::new(0));
    /// let counted = parks.clone();
    /// let rt = wq::Builder::new_current_thread()
    ///     .on_thread_park(move || {
    ///         counted.fetch_add(1, SeqCst);
    ///     })
    ///     .build()
    ///     .unwrap();
    /// rt.block_on(async { wq::time::sleep(std::time::Duration::from_millis(10)).await });
    /// assert!(parks.load(SeqCst) >= 1);
    /// ```
    pub fn on_thread_park<F>(mut self, f: F) -> Builder
    where
        F: Fn() + Send + Sync + 'static,
    {
        self.on_thread_park = Some(Arc::new(f));
        self
    }

    /// Runs `f` on a worker thread each time it wakes from such a sleep.
    ///
    /// If `f` panics, the panic is caught and reported through `tracing` at
    /// error level, and the thread carries on as if `f` had returned.
    pub fn on_thread_unpark<F>(mut self, f: F) -> Builder
    where
        F: Fn() + Send + Sync + 'static,
    {
        self.on_thread_unpark = Some(Arc::new(f));
        self
    }

    /// Runs `f` before the runtime creates each worker thread, on the thread
    /// that creates it; an error from `f` fails that creation as if the OS
    /// had refused the thread (`EAGAIN` under `RLIMIT_NPROC`), and `f` may
    /// also sleep to make creation slow. Meant for testing how a program
    /// behaves when threads run out: see [`create_cooldown`](Builder::create_cooldown)
    /// for what the runtime does then. If the first worker cannot be
    /// created, `build` fails.
    ///
    /// ```
    /// use std::io;
    /// use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    /// use std::sync::Arc;
    ///
    /// let refuse = Arc::new(AtomicBool::new(false));
    /// let flag = refuse.clone();
    /// let rt = wq::Builder::new()
    ///     .workers(1)
    ///     .spawn_worker_with(move || match flag.load(SeqCst) {
    ///         true => Err(io::Error::from(io::ErrorKind::WouldBlock)),
    ///         false => Ok(()),
    ///     })
    ///     .build()
    ///     .unwrap();
    /// refuse.store(true, SeqCst);
    /// // The runtime goes on with the workers it has.
    /// assert_eq!(rt.block_on(rt.spawn(async { 1 })).unwrap(), 1);
    /// ```
    pub fn spawn_worker_with<F>(mut self, f: F) -> Builder
    where
        F: Fn() -> io::Result<()> + Send + Sync + 'static,
    {
        self.spawn_hook = Some(Arc::new(f));
        self
    }

    /// How long a pool waits after a failed worker creation before it tries
    /// again (default 1 s, the kernel's `CREATE_COOLDOWN`; at least 1 ms).
    /// A failure is reported through `tracing` at error level; the pool
    /// goes on with the workers it has meanwhile, and nothing queued is
    /// lost: it runs when a worker frees or the next creation succeeds. If
    /// every worker is blocked, the monitor thread retries the creation
    /// once the cooldown has passed, and the rescuers of `mem_reclaim`
    /// workqueues run their tasks meanwhile (see
    /// [`WorkqueueBuilder::mem_reclaim`](crate::WorkqueueBuilder::mem_reclaim)).
    pub fn create_cooldown(mut self, cooldown: Duration) -> Builder {
        self.create_cooldown = cooldown;
        self
    }

    /// Starts the runtime with its clock paused (for tests): time moves only
    /// with [`wq::time::advance`](crate::time::advance) or by auto-advance
    /// to the next timer when the runtime has nothing else to do. See
    /// [`wq::time::pause`](crate::time::pause).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let rt = wq::Builder::new().start_paused(true).build().unwrap();
    /// rt.block_on(async {
    ///     let start = wq::time::Instant::now();
    ///     wq::time::sleep(Duration::from_secs(3600)).await;
    ///     assert_eq!(start.elapsed(), Duration::from_secs(3600));
    /// });
    /// ```
    pub fn start_paused(mut self, paused: bool) -> Builder {
        self.start_paused = paused;
        self
    }

    /// Whether the monitor watches the workers' polls (default: true). With
    /// the monitor, a task that blocks or spins inside a poll, without
    /// [`wq::blocking`](crate::blocking), is found after
    /// [`blocking_threshold`](Builder::blocking_threshold) and its worker
    /// stops counting toward concurrency, so that other tasks keep running.
    /// Without it, only `wq::blocking` does that. Disabling it exists to
    /// measure what it costs. The monitor thread keeps its other role
    /// either way: it tends pools whose work waits with every worker
    /// blocked (worker creation retries, mayday to the rescuers), and
    /// sleeps while none does.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// let rt = wq::Builder::new().workers(1).build().unwrap();
    /// let blocker_done = Arc::new(AtomicBool::new(false));
    /// let done = blocker_done.clone();
    /// // Blocks its worker for 200 ms, with no annotation.
    /// let blocker = rt.spawn(async move {
    ///     std::thread::sleep(Duration::from_millis(200));
    ///     done.store(true, SeqCst);
    /// });
    /// std::thread::sleep(Duration::from_millis(20));
    /// // The monitor found the blocked worker; another one runs this task.
    /// let ran_meanwhile = rt.block_on(rt.spawn(async move { !blocker_done.load(SeqCst) }));
    /// assert!(ran_meanwhile.unwrap());
    /// rt.block_on(blocker).unwrap();
    /// ```
    pub fn monitor(mut self, enabled: bool) -> Builder {
        self.monitor = enabled;
        self
    }

    /// How long a poll may run before the monitor examines it (default
    /// 1 ms, at least 100 µs). If its thread barely used the CPU meanwhile,
    /// it is blocked: its worker leaves concurrency management as if it had
    /// called [`wq::blocking`](crate::blocking), and another worker takes
    /// its place.
    ///
    /// 1 ms is long for a well-behaved poll (tokio's guidance is 10 to
    /// 100 µs between awaits) and short for a blocking call that matters
    /// (a disk read, a DNS lookup, a lock held across I/O): a worker blocked
    /// for microseconds does not cause a wakeup or a thread, and one blocked
    /// for longer is replaced within about 1 to 2 ms (up to about 5 ms if
    /// every worker gets stuck at once in a runtime that was busy without
    /// a stuck poll for a while: the monitor's own thread then looks up to
    /// four thresholds after the workers' last look). The workers' polls
    /// are looked at every half threshold while workers run.
    pub fn blocking_threshold(mut self, threshold: Duration) -> Builder {
        self.blocking_threshold = threshold;
        self
    }

    /// How much CPU time one poll may use without sleeping before it
    /// counts as a CPU hog (default 10 ms, the kernel's
    /// `wq_cpu_intensive_thresh_us`; as there, the count starts again when
    /// the poll sleeps, so one that sleeps between short bursts is no hog,
    /// whatever its bursts add up to). A hog's
    /// worker leaves concurrency management, and the hog is reported
    /// through `tracing` at warn level with the task's id, name (see
    /// [`task::Builder`](crate::task::Builder)) and spawn location (at the
    /// 1st, 2nd, 4th, 8th... offence of that location).
    pub fn cpu_intensive_threshold(mut self, threshold: Duration) -> Builder {
        self.cpu_intensive_threshold = threshold;
        self
    }

    /// How long a pool may have tasks queued without starting any before the
    /// watchdog reports it (default 30 s, the kernel's
    /// `workqueue.watchdog_thresh`; zero turns it off). The report goes
    /// through `tracing` at error level, once per threshold while the pool
    /// stays stalled: the pool, and for every workqueue with live tasks its
    /// counts and tasks (id, name, spawn location), those in a poll with
    /// the time they have spent in it. A stall means every worker is stuck
    /// and no other can be started (`max_workers` reached, thread creation
    /// failing), or a bug: nothing a runtime should do silently.
    ///
    /// The watchdog reads the poll stamps of the monitor: with
    /// [`monitor(false)`](Builder::monitor) it is off, and setting a
    /// threshold then is an error.
    ///
    /// ```
    /// let rt = wq::Builder::new()
    ///     .watchdog_threshold(std::time::Duration::from_secs(5))
    ///     .build()
    ///     .unwrap();
    /// # drop(rt);
    /// ```
    pub fn watchdog_threshold(mut self, threshold: Duration) -> Builder {
        self.watchdog_threshold = Some(threshold);
        self
    }

    /// Validates the settings and starts the runtime.
    ///
    /// # Errors
    ///
    /// `InvalidInput`, naming the field, if `workers` is 0, `max_workers` is
    /// below `workers`, `idle_timeout` is zero, the thread name is empty,
    /// the stack size is 0, `blocking_threshold` is below 100 µs,
    /// `cpu_intensive_threshold` is zero, or `watchdog_threshold` is below
    /// 10 ms but not zero, or set without the monitor; otherwise whatever
    /// creating the monitor thread or the first worker thread returned.
    pub fn build(self) -> io::Result<Runtime> {
        let current_thread = self.flavor == RuntimeFlavor::CurrentThread;
        let workers = match self.workers {
            Some(n) if current_thread && n != 1 => {
                return Err(invalid(
                    "workers",
                    format!(
                        "a current-thread runtime runs one worker, the thread that calls \
                         `block_on`; got {n} (use `Builder::new()` for more)"
                    ),
                ));
            }
            Some(n) => n,
            None if current_thread => 1,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        if workers == 0 {
            return Err(invalid("workers", "must be at least 1, got 0"));
        }
        if self.max_workers < workers {
            return Err(invalid(
                "max_workers",
                format!(
                    "must be at least `workers` ({workers}), got {}",
                    self.max_workers
                ),
            ));
        }
        if self.idle_timeout < MIN_IDLE_TIMEOUT {
            // An idle worker wakes every `idle_timeout` to see whether it
            // may exit: shorter, and idle workers would spin.
            return Err(invalid(
                "idle_timeout",
                format!(
                    "must be at least {MIN_IDLE_TIMEOUT:?}, got {:?}",
                    self.idle_timeout
                ),
            ));
        }
        if let ThreadName::Fixed(name) = &self.thread_name {
            if name.is_empty() {
                return Err(invalid("thread_name", "must not be empty"));
            }
            if name.contains('\0') {
                return Err(invalid("thread_name", "must not contain a NUL byte"));
            }
        }
        if self.blocking_threshold < MIN_BLOCKING_THRESHOLD {
            return Err(invalid(
                "blocking_threshold",
                format!(
                    "must be at least {MIN_BLOCKING_THRESHOLD:?} (the monitor wakes every \
                     half threshold), got {:?}",
                    self.blocking_threshold
                ),
            ));
        }
        if self.cpu_intensive_threshold.is_zero() {
            return Err(invalid(
                "cpu_intensive_threshold",
                "must be greater than zero",
            ));
        }
        match self.watchdog_threshold {
            Some(t) if !t.is_zero() && t < MIN_WATCHDOG_THRESHOLD => {
                return Err(invalid(
                    "watchdog_threshold",
                    format!("must be zero (off) or at least {MIN_WATCHDOG_THRESHOLD:?}, got {t:?}"),
                ));
            }
            Some(t) if !t.is_zero() && !self.monitor => {
                return Err(invalid(
                    "watchdog_threshold",
                    "the watchdog reads the monitor's poll stamps, and `monitor(false)` \
                     turns them off; set it to zero or keep the monitor",
                ));
            }
            _ => {}
        }
        if self.create_cooldown < Duration::from_millis(1) {
            return Err(invalid(
                "create_cooldown",
                format!("must be at least 1ms, got {:?}", self.create_cooldown),
            ));
        }
        if let Some(size) = self.thread_stack_size.filter(|&size| size < MIN_STACK_SIZE) {
            return Err(invalid(
                "thread_stack_size",
                format!(
                    "must be at least {} KiB (a worker's own frames need about half of that), got {size} bytes",
                    MIN_STACK_SIZE / 1024
                ),
            ));
        }
        let thread_name: Arc<dyn Fn() -> String + Send + Sync> = match self.thread_name {
            ThreadName::Fixed(name) => Arc::new(move || name.clone()),
            ThreadName::Fn(f) => f,
        };
        let config = PoolConfig {
            label: Arc::from("normal"),
            workers,
            max_workers: self.max_workers,
            idle_timeout: self.idle_timeout,
            thread_name,
            thread_stack_size: self.thread_stack_size,
            on_thread_start: self.on_thread_start.map(|h| guarded("on_thread_start", h)),
            on_thread_stop: self.on_thread_stop.map(|h| guarded("on_thread_stop", h)),
            on_thread_park: self.on_thread_park.map(|h| guarded("on_thread_park", h)),
            on_thread_unpark: self
                .on_thread_unpark
                .map(|h| guarded("on_thread_unpark", h)),
            spawn_hook: self.spawn_hook,
            create_cooldown: self.create_cooldown,
            timers: Arc::new(Driver::new(workers, self.start_paused)),
            stamp_polls: false,
            nice: None,
            drives_timers: true,
            affinity: None,
            mayday: None,
            reactor: None,
            current_thread,
        };
        let monitor = self.monitor.then_some(MonitorConfig {
            blocking_threshold: self.blocking_threshold,
            cpu_intensive_threshold: self.cpu_intensive_threshold,
            watchdog_threshold: self
                .watchdog_threshold
                .unwrap_or(DEFAULT_WATCHDOG_THRESHOLD),
        });
        Runtime::from_config(config, monitor, self.flavor)
    }
}

fn invalid(field: &str, reason: impl fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("invalid wq::Builder setting `{field}`: {reason}"),
    )
}

impl Default for Builder {
    fn default() -> Builder {
        Builder::new()
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("flavor", &self.flavor)
            .field("workers", &self.workers)
            .field("max_workers", &self.max_workers)
            .field("idle_timeout", &self.idle_timeout)
            .field("thread_stack_size", &self.thread_stack_size)
            .field("monitor", &self.monitor)
            .field("blocking_threshold", &self.blocking_threshold)
            .field("cpu_intensive_threshold", &self.cpu_intensive_threshold)
            .field("watchdog_threshold", &self.watchdog_threshold)
            .finish_non_exhaustive()
    }
}
