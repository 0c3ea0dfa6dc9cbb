//! `Builder`: configuration of a runtime, validated by `build`.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::pool::{Hook, PoolConfig};
use crate::time::driver::Driver;

use super::Runtime;

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
    workers: Option<usize>,
    max_workers: usize,
    idle_timeout: Duration,
    thread_name: ThreadName,
    thread_stack_size: Option<usize>,
    on_thread_start: Option<Hook>,
    on_thread_stop: Option<Hook>,
    start_paused: bool,
}

#[derive(Clone)]
enum ThreadName {
    Fixed(String),
    Fn(Arc<dyn Fn() -> String + Send + Sync + 'static>),
}

impl Builder {
    /// A builder with the defaults: `workers` = the machine's available
    /// parallelism, `max_workers` = 512, `idle_timeout` = 300 s, threads
    /// named `wq-worker`.
    pub fn new() -> Builder {
        Builder {
            workers: None,
            max_workers: DEFAULT_MAX_WORKERS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            thread_name: ThreadName::Fixed("wq-worker".to_owned()),
            thread_stack_size: None,
            on_thread_start: None,
            on_thread_stop: None,
            start_paused: false,
        }
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
    /// of the busy ones (the kernel's rule). Default 300 s. Must be non-zero.
    pub fn idle_timeout(mut self, timeout: Duration) -> Builder {
        self.idle_timeout = timeout;
        self
    }

    /// The name of worker threads. Must not be empty.
    pub fn thread_name(mut self, name: impl Into<String>) -> Builder {
        self.thread_name = ThreadName::Fixed(name.into());
        self
    }

    /// A function naming each new worker thread.
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
    /// library's (2 MiB unless `RUST_MIN_STACK` says otherwise). Must be
    /// non-zero.
    pub fn thread_stack_size(mut self, size: usize) -> Builder {
        self.thread_stack_size = Some(size);
        self
    }

    /// Runs `f` on each worker thread as it starts.
    pub fn on_thread_start<F>(mut self, f: F) -> Builder
    where
        F: Fn() + Send + Sync + 'static,
    {
        self.on_thread_start = Some(Arc::new(f));
        self
    }

    /// Runs `f` on each worker thread as it stops.
    pub fn on_thread_stop<F>(mut self, f: F) -> Builder
    where
        F: Fn() + Send + Sync + 'static,
    {
        self.on_thread_stop = Some(Arc::new(f));
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

    /// Validates the settings and starts the runtime.
    ///
    /// # Errors
    ///
    /// `InvalidInput`, naming the field, if `workers` is 0, `max_workers` is
    /// below `workers`, `idle_timeout` is zero, the thread name is empty, or
    /// the stack size is 0; otherwise whatever creating the first worker
    /// thread returned.
    pub fn build(self) -> io::Result<Runtime> {
        let workers = match self.workers {
            Some(n) => n,
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
        if self.idle_timeout.is_zero() {
            return Err(invalid("idle_timeout", "must be greater than zero"));
        }
        if let ThreadName::Fixed(name) = &self.thread_name {
            if name.is_empty() {
                return Err(invalid("thread_name", "must not be empty"));
            }
            if name.contains('\0') {
                return Err(invalid("thread_name", "must not contain a NUL byte"));
            }
        }
        if self.thread_stack_size == Some(0) {
            return Err(invalid("thread_stack_size", "must be greater than 0"));
        }
        let thread_name: Arc<dyn Fn() -> String + Send + Sync> = match self.thread_name {
            ThreadName::Fixed(name) => Arc::new(move || name.clone()),
            ThreadName::Fn(f) => f,
        };
        let config = PoolConfig {
            workers,
            max_workers: self.max_workers,
            idle_timeout: self.idle_timeout,
            thread_name,
            thread_stack_size: self.thread_stack_size,
            on_thread_start: self.on_thread_start,
            on_thread_stop: self.on_thread_stop,
            timers: Arc::new(Driver::new(workers, self.start_paused)),
        };
        Runtime::from_config(config)
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
            .field("workers", &self.workers)
            .field("max_workers", &self.max_workers)
            .field("idle_timeout", &self.idle_timeout)
            .field("thread_stack_size", &self.thread_stack_size)
            .finish_non_exhaustive()
    }
}
