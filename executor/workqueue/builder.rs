//! `WorkqueueBuilder`: a workqueue's attributes, validated by `build`.

use std::io;

use super::{invalid, validate_max_active, Attrs, Workqueue, DEFAULT_MAX_ACTIVE, PLAIN};
use crate::runtime::Handle;
use crate::topology::Scope;

/// Builds a [`Workqueue`]; see [`Workqueue::builder`].
///
/// ```
/// # let rt = wq::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let log = wq::Workqueue::builder("log-writer").ordered().build().unwrap();
/// assert!(log.is_ordered());
/// assert_eq!(log.stats().max_active, 1);
///
/// let err = wq::Workqueue::builder("x").max_active(0).build().unwrap_err();
/// assert!(err.to_string().contains("`max_active`"));
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct WorkqueueBuilder {
    name: String,
    max_active: usize,
    attrs: Attrs,
    handle: Option<Handle>,
}

impl WorkqueueBuilder {
    pub(super) fn new(name: String) -> WorkqueueBuilder {
        WorkqueueBuilder {
            name,
            max_active: DEFAULT_MAX_ACTIVE,
            attrs: PLAIN,
            handle: None,
        }
    }

    /// How many of the queue's tasks may be in flight (from first poll to
    /// completion) at once. Default 1024; must be in `1..=2048`.
    pub fn max_active(mut self, n: usize) -> WorkqueueBuilder {
        self.max_active = n;
        self
    }

    /// One task at a time, in queue order (`alloc_ordered_workqueue`).
    pub fn ordered(mut self) -> WorkqueueBuilder {
        self.attrs.ordered = true;
        self
    }

    /// Served by the runtime's high-priority pool (`WQ_HIGHPRI`): separate
    /// workers (threads named like the others with an `H`), with their own
    /// concurrency target, run at nice [`HIGHPRI_NICE`](crate::HIGHPRI_NICE)
    /// where the process may lower its threads' nice value (see
    /// `RuntimeMetrics::highpri_nice_applied`). A saturated normal pool does
    /// not delay them. The pool is created by the first highpri queue.
    pub fn highpri(mut self) -> WorkqueueBuilder {
        self.attrs.highpri = true;
        self
    }

    /// Its tasks do not count toward concurrency (`WQ_CPU_INTENSIVE`): each
    /// poll runs as if inside [`wq::blocking`](crate::blocking), so a long
    /// computation never holds back the pool's other tasks, without waiting
    /// for the monitor to notice it (and without a hog report).
    pub fn cpu_intensive(mut self) -> WorkqueueBuilder {
        self.attrs.cpu_intensive = true;
        self
    }

    /// The queue must make forward progress even when no worker thread can
    /// be had (`WQ_MEM_RECLAIM`): `build` creates a rescuer thread for it
    /// (named `wq-R-` and the queue's name), so that having one cannot fail
    /// later.
    ///
    /// **What it promises.** When the pool running the queue's tasks
    /// starves (tasks are queued, every worker is blocked, and no worker can
    /// be created: `max_workers` is reached, or thread creation fails) for
    /// 10 ms, the pool calls the rescuer (mayday), and again every 100 ms
    /// while it starves. The rescuer polls the queue's queued tasks on its
    /// own thread, one at a time, until the pool has a worker again. So a
    /// task of this queue that would unblock the workers (release memory, a
    /// lock, a condition they wait on) runs even then. A rescued task that
    /// blocks holds up only itself: the queue's other tasks stay queued for
    /// the workers once they are back. Its stats' `mayday` and `rescued`
    /// ([`WorkqueueStats`](super::WorkqueueStats)) count the calls
    /// and the rescued polls.
    ///
    /// **What it does not.** It is forward progress, not speed: while the
    /// pool starves, a rescued task advances at least once per 100 ms, one
    /// poll at a time. And the rescuer runs this queue's tasks only: a
    /// rescued task that waits for a task of a queue without a rescuer (a
    /// [`flush`](super::Workqueue::flush) or [`drain`](super::Workqueue::drain)
    /// of it, or awaiting its `JoinHandle`, or a `wq::spawn` task) can still
    /// wait forever. Put work that reclaim depends on on `mem_reclaim`
    /// queues too (one per dependency level, as in the kernel). A `flush`
    /// or `drain` of a queue without a rescuer from a task of a
    /// `mem_reclaim` queue is reported through `tracing` at warn level,
    /// like the kernel's `check_flush_dependency`.
    ///
    /// ```
    /// # let rt = wq::Runtime::new().unwrap();
    /// # rt.block_on(async {
    /// let writeback = wq::Workqueue::builder("writeback").mem_reclaim().build().unwrap();
    /// assert!(writeback.is_mem_reclaim());
    /// writeback.spawn(async { /* flush dirty pages */ }).await.unwrap();
    /// assert_eq!(writeback.stats().mayday, 0); // the pool never starved
    /// # });
    /// ```
    pub fn mem_reclaim(mut self) -> WorkqueueBuilder {
        self.attrs.mem_reclaim = true;
        self
    }

    /// Served by unbound pools whose workers share the CPUs of `scope`
    /// (`WQ_UNBOUND` with an affinity scope): one pool per pod of that scope
    /// (see the CPU topology in `executor/topology/`), created with the
    /// first task queued from one of its CPUs, as many workers running as
    /// the pod has CPUs. A task goes to the pool of the pod of the CPU that
    /// queues it, as in the kernel. With `highpri`, the pool's workers also
    /// get the high-priority nice value.
    pub fn unbound(mut self, scope: Scope) -> WorkqueueBuilder {
        self.attrs.unbound = Some(scope);
        self
    }

    /// Whether an unbound queue's workers are pinned to their pod's CPUs
    /// (`affinity_strict`). Without it they run wherever the scheduler puts
    /// them: user space has no way to express the kernel's soft preference
    /// for the pod, so non-strict pods only group tasks by where they were
    /// queued. Pinning is skipped where the topology could not be read.
    pub fn affinity_strict(mut self, strict: bool) -> WorkqueueBuilder {
        self.attrs.affinity_strict = strict;
        self
    }

    /// Builds the queue on the runtime of `handle` instead of the current
    /// one.
    pub fn handle(mut self, handle: &Handle) -> WorkqueueBuilder {
        self.handle = Some(handle.clone());
        self
    }

    /// Validates the settings and creates the queue.
    ///
    /// # Errors
    ///
    /// `InvalidInput`, naming the field, if the name is empty, `max_active`
    /// is outside `1..=2048` (or set on an ordered queue), or
    /// `affinity_strict` is set without `unbound`; `Other` if there is no
    /// runtime (neither `handle` nor a current one); the OS error if the
    /// rescuer thread of a `mem_reclaim` queue cannot be created.
    pub fn build(self) -> io::Result<Workqueue> {
        let name = self.name;
        if name.is_empty() {
            return Err(invalid(&name, "name", "must not be empty"));
        }
        let mut max_active = self.max_active;
        if self.attrs.ordered {
            if max_active != DEFAULT_MAX_ACTIVE && max_active != 1 {
                return Err(invalid(
                    &name,
                    "max_active",
                    format!("an ordered workqueue runs one task at a time, got {max_active}"),
                ));
            }
            max_active = 1;
        }
        validate_max_active(&name, max_active)?;
        if self.attrs.affinity_strict && self.attrs.unbound.is_none() {
            return Err(invalid(
                &name,
                "affinity_strict",
                "applies to unbound workqueues only: call `.unbound(scope)` too",
            ));
        }
        let handle = match self.handle {
            Some(handle) => handle,
            None => Handle::try_current().map_err(|_| {
                io::Error::other(format!(
                    "workqueue `{name}`: no runtime to build it on: build it inside a \
                     runtime, or pass one with `.handle(&handle)`"
                ))
            })?,
        };
        if self.attrs.highpri && self.attrs.unbound.is_none() {
            handle.highpri_pool()?;
        }
        Workqueue::from_parts(name, handle, self.attrs, max_active)
    }
}
