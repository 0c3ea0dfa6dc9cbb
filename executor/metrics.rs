//! Figures about a runtime, read on demand.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::monitor::MonitorStats;
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

    /// Worker threads created since the runtime started (culled and exited
    /// ones included).
    pub fn threads_created(&self) -> u64 {
        self.inner.pool.threads_created()
    }

    /// Worker creations that failed (the OS refused the thread, or a
    /// `Builder::spawn_worker_with` hook did), in every pool.
    pub fn worker_create_failures(&self) -> u64 {
        self.inner
            .all_pools()
            .iter()
            .map(|p| p.create_failures())
            .sum()
    }

    /// Polls the monitor found blocked (stuck without using the CPU) and
    /// took out of concurrency management. 0 without a monitor.
    pub fn blocked_detections(&self) -> u64 {
        self.monitor_stat(|s| &s.blocked)
    }

    /// Polls the monitor found hogging the CPU for longer than
    /// `cpu_intensive_threshold`. 0 without a monitor.
    pub fn hog_detections(&self) -> u64 {
        self.monitor_stat(|s| &s.hogs)
    }

    /// Times the workers' polls were looked at for stuck ones: by the
    /// monitor thread, or by a running worker between two of its polls
    /// (which spares the monitor thread a wakeup). Nobody looks while no
    /// worker runs. 0 without a monitor.
    pub fn monitor_ticks(&self) -> u64 {
        self.monitor_stat(|s| &s.ticks)
    }

    /// Of [`monitor_ticks`](Self::monitor_ticks), those the monitor thread
    /// woke up for: while workers run short polls they tick themselves and
    /// the monitor thread sleeps. 0 without a monitor.
    pub fn monitor_wakeups(&self) -> u64 {
        self.monitor_stat(|s| &s.wakeups)
    }

    fn monitor_stat(&self, field: impl Fn(&MonitorStats) -> &AtomicU64) -> u64 {
        field(self.inner.monitor.stats()).load(Relaxed)
    }

    /// Worker threads of the high-priority pool (0 until a `highpri`
    /// workqueue creates it).
    pub fn num_highpri_workers(&self) -> usize {
        self.inner
            .highpri
            .get()
            .map_or(0, |pool| pool.stats().workers)
    }

    /// Whether the high-priority workers run at
    /// [`HIGHPRI_NICE`](crate::HIGHPRI_NICE): `Some(false)` if the process
    /// may not lower its threads' nice value; `None` before the pool has a
    /// worker.
    pub fn highpri_nice_applied(&self) -> Option<bool> {
        self.inner
            .highpri
            .get()
            .and_then(|pool| pool.nice_applied())
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
            .field("threads_created", &self.threads_created())
            .field("blocked_detections", &self.blocked_detections())
            .field("hog_detections", &self.hog_detections())
            .finish()
    }
}
