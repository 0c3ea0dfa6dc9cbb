//! One interface over both runtimes, so that every workload is written once
//! and wq and tokio run exactly the same code.

use std::fmt;
use std::future::Future;
use std::io;
use std::time::Instant;

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
}

/// The wq runtime.
pub struct Wq(wq::Runtime);

/// A wq join handle with its error mapped to [`TaskFailed`].
pub type WqJoin<T> =
    Map<wq::task::JoinHandle<T>, fn(Result<T, wq::task::JoinError>) -> JoinResult<T>>;

fn wq_join<T>(handle: wq::task::JoinHandle<T>) -> WqJoin<T> {
    let convert: fn(_) -> _ =
        |res: Result<T, wq::task::JoinError>| res.map_err(|err| TaskFailed(err.to_string()));
    handle.map(convert)
}

impl Rt for Wq {
    type Handle = wq::Handle;
    type Join<T: Send + 'static> = WqJoin<T>;
    type Sleep = wq::time::Sleep;

    fn build(workers: usize) -> io::Result<Self> {
        wq::Builder::new().workers(workers).build().map(Self)
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
}
