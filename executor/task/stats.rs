//! Per-workqueue counters that the layers below the workqueue layer
//! update: the monitor (CPU time, CPU-intensive violations and the
//! concurrency-management wakeups its detections cause) and `wq::blocking`
//! (the wakeups a blocking task causes). The kernel keeps them in its
//! `pool_workqueue` (`PWQ_STAT_CPU_TIME`, `PWQ_STAT_CPU_INTENSIVE`,
//! `PWQ_STAT_CM_WAKEUP`); wq_monitor.py shows them as `CPUtime`, `CPUitsv`
//! and `CMW`.
//!
//! A task carries its queue's index in its tag ([`QueueId`]), the worker
//! publishes it in its poll stamp, and whoever counts looks the counters up
//! in the runtime's [`QueueTable`]. Every update is on a slow path (a
//! detection, a blocking call that woke a worker, a monitor tick), so a read
//! lock on the table there costs the poll path nothing.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use slab::Slab;

/// The index of a workqueue's counters in its runtime's [`QueueTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct QueueId(pub(crate) u32);

impl QueueId {
    /// The `system` workqueue's: `wq::spawn`, `Handle::spawn`, `JoinSet`,
    /// and every task not spawned on a workqueue of its own.
    pub(crate) const SYSTEM: QueueId = QueueId(0);
}

/// One workqueue's counters.
#[derive(Debug, Default)]
pub(crate) struct QueueCounters {
    cpu_time_ns: AtomicU64,
    cpu_intensive: AtomicU64,
    cm_wakeups: AtomicU64,
}

impl QueueCounters {
    /// Sampled time its tasks spent in polls (see the monitor's tick).
    pub(crate) fn add_cpu_time(&self, time: Duration) {
        let ns = u64::try_from(time.as_nanos()).unwrap_or(u64::MAX);
        self.cpu_time_ns.fetch_add(ns, Relaxed);
    }

    /// A poll of one of its tasks used more than `cpu_intensive_threshold`
    /// of CPU and left concurrency management.
    pub(crate) fn add_cpu_intensive(&self) {
        self.cpu_intensive.fetch_add(1, Relaxed);
    }

    /// One of its tasks blocked (or hogged) and an idle worker was woken in
    /// its place.
    pub(crate) fn add_cm_wakeup(&self) {
        self.cm_wakeups.fetch_add(1, Relaxed);
    }

    pub(crate) fn cpu_time(&self) -> Duration {
        Duration::from_nanos(self.cpu_time_ns.load(Relaxed))
    }

    pub(crate) fn cpu_intensive(&self) -> u64 {
        self.cpu_intensive.load(Relaxed)
    }

    pub(crate) fn cm_wakeups(&self) -> u64 {
        self.cm_wakeups.load(Relaxed)
    }
}

/// A runtime's workqueues' counters, by [`QueueId`]. Slot 0 is `system`'s,
/// for the runtime's life; a workqueue's slot is freed when the queue's
/// last task is gone (its state is dropped after every task that holds it),
/// so no live task refers to a reused slot.
#[derive(Debug)]
pub(crate) struct QueueTable {
    slots: RwLock<Slab<Slot>>,
}

/// A registered workqueue: its name, for reports, and its counters.
#[derive(Debug)]
struct Slot {
    name: Arc<str>,
    counters: Arc<QueueCounters>,
}

impl QueueTable {
    pub(crate) fn new() -> QueueTable {
        let mut slots = Slab::new();
        let system = slots.insert(Slot {
            name: Arc::from("system"),
            counters: Arc::default(),
        });
        debug_assert_eq!(system, QueueId::SYSTEM.0 as usize);
        QueueTable {
            slots: RwLock::new(slots),
        }
    }

    /// The counters of `system`.
    pub(crate) fn system(&self) -> Arc<QueueCounters> {
        self.slots.read()[QueueId::SYSTEM.0 as usize]
            .counters
            .clone()
    }

    /// New counters for a new workqueue named `name`.
    pub(crate) fn register(&self, name: Arc<str>) -> (QueueId, Arc<QueueCounters>) {
        let counters = Arc::<QueueCounters>::default();
        let key = self.slots.write().insert(Slot {
            name,
            counters: counters.clone(),
        });
        let id = u32::try_from(key).expect("more than 2^32 workqueues alive at once");
        (QueueId(id), counters)
    }

    /// Frees the slot of a workqueue whose state is dropped.
    pub(crate) fn unregister(&self, id: QueueId) {
        if id != QueueId::SYSTEM {
            self.slots.write().try_remove(id.0 as usize);
        }
    }

    /// Runs `f` on the counters of `id`, if its queue is still registered.
    pub(crate) fn with(&self, id: QueueId, f: impl FnOnce(&QueueCounters)) {
        if let Some(slot) = self.slots.read().get(id.0 as usize) {
            f(&slot.counters);
        }
    }

    /// The name of the workqueue `id`, if it is still registered.
    pub(crate) fn name_of(&self, id: QueueId) -> Option<Arc<str>> {
        self.slots
            .read()
            .get(id.0 as usize)
            .map(|slot| slot.name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_is_slot_zero_and_slots_are_reused_after_unregister() {
        let table = QueueTable::new();
        let (a, counters) = table.register(Arc::from("a"));
        assert_eq!(table.name_of(a).as_deref(), Some("a"));
        assert_ne!(a, QueueId::SYSTEM);
        table.with(a, QueueCounters::add_cm_wakeup);
        assert_eq!(counters.cm_wakeups(), 1);
        table.unregister(a);
        table.with(a, QueueCounters::add_cm_wakeup);
        assert_eq!(
            counters.cm_wakeups(),
            1,
            "an unregistered slot is not counted"
        );
        let (b, _) = table.register(Arc::from("b"));
        assert_eq!(a, b);
        table.unregister(QueueId::SYSTEM);
        table.with(QueueId::SYSTEM, QueueCounters::add_cpu_intensive);
        assert_eq!(table.system().cpu_intensive(), 1, "system is never freed");
    }
}
