//! wq: an async runtime whose scheduler is the Linux kernel's
//! concurrency-managed workqueue (cmwq), brought to user space.
//!
//! Futures are spawned as tasks into a concurrency-managed pool of worker
//! threads. The pool keeps exactly enough workers running: when a worker
//! blocks (inside [`blocking`]), it stops counting and one idle worker is
//! woken in its place, so the CPUs never idle while work waits; when the
//! blocker returns, surplus workers go idle.
//!
//! Code that blocks or spins without saying so is caught too: a monitor
//! thread finds a poll that has run for [`Builder::blocking_threshold`]
//! (1 ms) and, by its thread's CPU clock, tells a blocked worker (treated as
//! if it had called [`blocking`]) from a CPU hog (taken out of the count as
//! well, and reported through `tracing` with the task's id, name and spawn
//! location). `wq::blocking` remains the cheaper and immediate way: it
//! hands the worker's place over at once instead of after a millisecond.
//!
//! ```
//! #[wq::main]
//! async fn main() {
//!     let task = wq::spawn(async {
//!         // Blocking code is fine: the pool runs another worker meanwhile.
//!         wq::blocking(|| std::thread::sleep(std::time::Duration::from_millis(10)));
//!         "done"
//!     });
//!     assert_eq!(task.await.unwrap(), "done");
//! }
//! ```
//!
//! The pool's protocol is described in `executor/pool/README.md`, the
//! monitor's in `executor/monitor/mod.rs`.

#![warn(missing_docs, missing_debug_implementations)]

#[cfg(feature = "hyper")]
pub mod hyper_rt;
pub mod io;
mod loom;
mod metrics;
mod monitor;
pub mod net;
mod pool;
mod rescuer;
pub mod runtime;
pub mod signal;
pub mod task;
pub mod time;
mod topology;
mod workqueue;

pub use metrics::{PoolMetrics, RuntimeMetrics, WorkqueueMetrics};
pub use monitor::{
    DEFAULT_BLOCKING_THRESHOLD, DEFAULT_CPU_INTENSIVE_THRESHOLD, DEFAULT_WATCHDOG_THRESHOLD,
};
pub use runtime::{
    spawn, Builder, EnterGuard, Handle, Runtime, RuntimeFlavor, TryCurrentError,
    DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_WORKERS, HIGHPRI_NICE,
};
pub use topology::Scope;
pub use workqueue::{
    system, system_highpri, system_long, system_unbound, DelayedWork, SpawnError, Work, Workqueue,
    WorkqueueBuilder, WorkqueueStats, DEFAULT_MAX_ACTIVE, MAX_MAX_ACTIVE,
};
pub use wq_macros::{main, test};

/// Runs the blocking closure `f` on the current thread, telling the pool that
/// this worker is blocked while it runs (the user-space twin of the kernel's
/// `wq_worker_sleeping`).
///
/// On a worker thread, the worker leaves the running count, its queued tasks
/// are handed to the pool, and if work is waiting an idle worker is woken at
/// once to take its place; when `f` returns the worker runs again, and the
/// pool sends surplus workers idle. Nested calls count once. On the
/// `block_on` thread or outside any runtime it simply calls `f`.
///
/// On a worker thread, `f` may block on a runtime (`Handle::block_on`, the
/// worker's own runtime included) or drop one, as tokio allows in
/// `block_in_place`: the worker drives no task meanwhile.
///
/// ```
/// # let rt = wq::Builder::new().workers(1).build().unwrap();
/// # rt.block_on(async {
/// let slow = wq::spawn(async {
///     wq::blocking(|| std::thread::sleep(std::time::Duration::from_millis(50)))
/// });
/// // With one worker, this still runs while `slow` sleeps.
/// let fast = wq::spawn(async { 1 });
/// assert_eq!(fast.await.unwrap(), 1);
/// slow.await.unwrap();
/// # });
/// ```
pub fn blocking<F, R>(f: F) -> R
where
    F: FnOnce() -> R,
{
    let guard = pool::BlockingGuard::enter();
    if let Some(queue) = guard.as_ref().and_then(pool::BlockingGuard::cm_wakeup) {
        runtime::count_cm_wakeup(queue);
    }
    // A worker out of the running count may block on a runtime (or drop
    // one) in `f`, as in tokio's `block_in_place`.
    let _not_driving = guard
        .as_ref()
        .filter(|guard| guard.on_worker_thread())
        .map(|_| runtime::exit_driving());
    f()
}
