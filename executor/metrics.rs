//! Figures about a runtime, read on demand.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use crate::monitor::MonitorStats;
use crate::pool::Pool;
use crate::runtime::{Handle, Inner};
use crate::workqueue::WorkqueueStats;

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

    /// Times worker `worker` of the normal pool (`0..num_workers()`, in
    /// the order the pool lists its live workers) went to sleep on the idle
    /// list. Workers come and go (blocking adds some, idle ones are
    /// culled), so an index past the live workers reads 0 instead of
    /// panicking as tokio's does, and when a worker exits the ones after it
    /// move down one index: the figure at an index is not one worker's
    /// for good, and may go down. [`pools`](Self::pools) has totals that
    /// include the workers gone, which only go up.
    pub fn worker_park_count(&self, worker: usize) -> u64 {
        let (live, _) = self.inner.pool.activity();
        live.get(worker).map_or(0, |figures| figures.parks)
    }

    /// Time worker `worker` of the normal pool has been busy: off the idle
    /// list, running tasks, blocked in them, or looking for them. Indexed
    /// as [`worker_park_count`](Self::worker_park_count).
    pub fn worker_total_busy_duration(&self, worker: usize) -> Duration {
        let (live, _) = self.inner.pool.activity();
        live.get(worker)
            .map_or(Duration::ZERO, |figures| figures.busy)
    }

    /// Every pool of the runtime, the normal one first: high-priority,
    /// unbound (one per pod used) and, on a current-thread runtime, the
    /// pool of `spawn_blocking`, as they were created.
    pub fn pools(&self) -> Vec<PoolMetrics> {
        self.inner
            .all_pools()
            .iter()
            .map(|pool| self.pool_metrics(pool))
            .collect()
    }

    fn pool_metrics(&self, pool: &Pool) -> PoolMetrics {
        let stats = pool.stats();
        let cpu_intensive = self.inner.monitor.hogging_workers(pool);
        let (_, total) = pool.activity();
        PoolMetrics {
            label: pool.label().to_string(),
            workers: stats.workers,
            idle: stats.idle,
            running: stats.running,
            blocked: stats.detached.saturating_sub(cpu_intensive),
            cpu_intensive,
            queue_depth: pool.injector_depth(),
            threads_created: pool.threads_created(),
            threads_culled: pool.threads_culled(),
            park_count: total.parks,
            busy_duration: total.busy,
        }
    }

    /// Every live workqueue of the runtime (`system` first, then in
    /// creation order) with its figures: the kernel's wq_monitor.py table.
    pub fn workqueues(&self) -> Vec<WorkqueueMetrics> {
        let handle = Handle {
            inner: self.inner.clone(),
        };
        crate::workqueue::all(&handle)
            .into_iter()
            .map(|queue| WorkqueueMetrics {
                name: queue.name().to_owned(),
                stats: queue.stats(),
            })
            .collect()
    }

    /// The runtime's figures as one JSON object: the runtime's counters,
    /// `pools` (one object per [`PoolMetrics`]) and `workqueues` (one per
    /// workqueue, with wq_monitor.py's keys: `total`, `infl`, `cpu_time`
    /// in microseconds, `cpu_intensive`, `cm_wakeup`, `mayday`, `rescued`,
    /// and wq's `inactive`, `completed`, `max_active`, null for none).
    ///
    /// ```
    /// let rt = wq::Runtime::new().unwrap();
    /// let json = rt.handle().metrics().to_json();
    /// assert!(json.starts_with('{') && json.contains("\"workqueues\":[{\"name\":\"system\""));
    /// ```
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(1024);
        out.push('{');
        let runtime: [(&str, u64); 11] = [
            ("num_workers", self.num_workers() as u64),
            ("num_idle_workers", self.num_idle_workers() as u64),
            ("num_running_workers", self.num_running_workers() as u64),
            ("num_alive_tasks", self.num_alive_tasks() as u64),
            ("global_queue_depth", self.global_queue_depth() as u64),
            ("num_pending_timers", self.num_pending_timers() as u64),
            ("threads_created", self.threads_created()),
            ("worker_create_failures", self.worker_create_failures()),
            ("blocked_detections", self.blocked_detections()),
            ("hog_detections", self.hog_detections()),
            ("monitor_wakeups", self.monitor_wakeups()),
        ];
        for (key, value) in runtime {
            let _ = write!(out, "\"{key}\":{value},");
        }
        out.push_str("\"pools\":[");
        for (i, pool) in self.pools().iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"label\":");
            push_json_string(&mut out, &pool.label);
            let _ = write!(
                out,
                ",\"workers\":{},\"idle\":{},\"running\":{},\"blocked\":{},\
                 \"cpu_intensive\":{},\"queue_depth\":{},\"threads_created\":{},\
                 \"threads_culled\":{},\"park_count\":{},\"busy_us\":{}}}",
                pool.workers,
                pool.idle,
                pool.running,
                pool.blocked,
                pool.cpu_intensive,
                pool.queue_depth,
                pool.threads_created,
                pool.threads_culled,
                pool.park_count,
                pool.busy_duration.as_micros()
            );
        }
        out.push_str("],\"workqueues\":[");
        for (i, queue) in self.workqueues().iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let s = &queue.stats;
            out.push_str("{\"name\":");
            push_json_string(&mut out, &queue.name);
            let max_active = match s.max_active {
                usize::MAX => "null".to_owned(),
                n => n.to_string(),
            };
            let _ = write!(
                out,
                ",\"total\":{},\"infl\":{},\"inactive\":{},\"completed\":{},\
                 \"max_active\":{max_active},\"cpu_time\":{},\"cpu_intensive\":{},\
                 \"cm_wakeup\":{},\"mayday\":{},\"rescued\":{}}}",
                s.total,
                s.active,
                s.inactive,
                s.completed,
                s.cpu_time.as_micros(),
                s.cpu_intensive,
                s.cm_wakeups,
                s.mayday,
                s.rescued
            );
        }
        out.push_str("]}");
        out
    }
}

/// Appends `s` as a JSON string literal.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// One pool's figures (see [`RuntimeMetrics::pools`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolMetrics {
    /// What the pool is: `normal`, `highpri`, `unbound <scope> pod <n>`
    /// (with ` highpri`), or `blocking`.
    pub label: String,
    /// Worker threads now (the kernel's `nr_workers`), a thread being
    /// created included. Each is idle, running, blocked, CPU-intensive or
    /// in between two of these, so the four need not add up to it.
    pub workers: usize,
    /// Workers on the idle list (`nr_idle`).
    pub idle: usize,
    /// Workers counted by concurrency management (`nr_running`).
    pub running: usize,
    /// Workers out of the count because they block: inside `wq::blocking`,
    /// or found blocked by the monitor.
    pub blocked: usize,
    /// Workers out of the count because the poll they run was found
    /// hogging the CPU (the kernel's `WORKER_CPU_INTENSIVE`), as of the
    /// monitor's last tick.
    pub cpu_intensive: usize,
    /// Tasks waiting in the pool's shared queue.
    pub queue_depth: usize,
    /// Threads created since the pool started.
    pub threads_created: u64,
    /// Idle threads culled after `idle_timeout`.
    pub threads_culled: u64,
    /// Times its workers went to sleep on the idle list (those gone
    /// included).
    pub park_count: u64,
    /// Time its workers were busy (off the idle list), those gone included.
    pub busy_duration: Duration,
}

/// One workqueue's name and figures (see [`RuntimeMetrics::workqueues`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkqueueMetrics {
    /// The name it was built with.
    pub name: String,
    /// Its figures now.
    pub stats: WorkqueueStats,
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
