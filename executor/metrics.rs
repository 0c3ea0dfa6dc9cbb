//! Figures about a runtime, read on demand.

use std::fmt;
use std::sync::Arc;

use crate::runtime::Inner;

/// A view of a runtime's figures. Each call reads the live value.
///
/// ```
/// let rt = wq::Builder::new().workers(2).build().unwrap();
/// let m = rt.handle().metrics();
/// rt.block_on(async {
///     let t = wq::spawn(std::future::pending::<()>());
///     wq::task::yield_now().await;
///     assert!(m.num_alive_tasks() >= 1);
///     t.abort();
/// });
/// ```
#[derive(Clone)]
pub struct RuntimeMetrics {
    inner: Arc<Inner>,
}

impl RuntimeMetrics {
    pub(crate) fn new(inner: Arc<Inner>) -> RuntimeMetrics {
        RuntimeMetrics { inner }
    }

    /// Worker threads that exist now: running, blocked and idle.
    pub fn num_workers(&self) -> usize {
        self.inner.pool.stats().workers
    }

    /// Workers on the idle list.
    pub fn num_idle_workers(&self) -> usize {
        self.inner.pool.stats().idle
    }

    /// Workers counted by concurrency management (`nr_running`): not idle,
    /// not blocked.
    pub fn num_running_workers(&self) -> usize {
        self.inner.pool.stats().running
    }

    /// Tasks spawned whose future has not been dropped yet.
    pub fn num_alive_tasks(&self) -> usize {
        self.inner.tasks.len()
    }

    /// Timers registered and neither fired nor cancelled.
    pub fn num_pending_timers(&self) -> usize {
        self.inner.time.pending()
    }

    /// Timers fired since the runtime started.
    pub fn timers_fired(&self) -> u64 {
        self.inner.time.fired_total()
    }

    /// Tasks waiting in the pool's shared queue.
    pub fn global_queue_depth(&self) -> usize {
        self.inner.pool.injector_depth()
    }
}

impl fmt::Debug for RuntimeMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeMetrics")
            .field("num_workers", &self.num_workers())
            .field("num_idle_workers", &self.num_idle_workers())
            .field("num_running_workers", &self.num_running_workers())
            .field("num_alive_tasks", &self.num_alive_tasks())
            .field("global_queue_depth", &self.global_queue_depth())
            .finish()
    }
}
