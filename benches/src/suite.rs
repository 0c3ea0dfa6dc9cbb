//! What the runner measures: every workload on wq against tokio, then the
//! scheduler workloads again on wq with its monitor against wq without, to
//! show what the monitor costs.

use crate::workloads::{Kind, Workload};

/// Prefix of the names of the monitor cost entries.
pub const MONITOR_COST_PREFIX: &str = "monitor_cost/";

/// One entry of the suite: a workload and the two runtimes it compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// wq against tokio.
    Versus(Workload),
    /// wq with its monitor (as built by default) against wq with
    /// `Builder::monitor(false)`; scheduler workloads only.
    MonitorCost(Workload),
}

impl Entry {
    /// Every entry, in report order.
    pub fn all() -> Vec<Entry> {
        let workloads = Workload::all();
        let monitor_cost = workloads
            .iter()
            .filter(|w| w.kind() == Kind::Scheduler)
            .map(|&w| Entry::MonitorCost(w))
            .collect::<Vec<_>>();
        workloads
            .into_iter()
            .map(Entry::Versus)
            .chain(monitor_cost)
            .collect()
    }

    /// The name used in reports and matched by `--filter`: the workload's,
    /// prefixed with [`MONITOR_COST_PREFIX`] for a monitor cost entry.
    pub fn name(self) -> String {
        match self {
            Entry::Versus(w) => w.name(),
            Entry::MonitorCost(w) => format!("{MONITOR_COST_PREFIX}{}", w.name()),
        }
    }

    /// What one repetition is, and what is compared.
    pub fn describe(self) -> String {
        match self {
            Entry::Versus(w) => format!("{}; wq vs tokio", w.unit()),
            Entry::MonitorCost(w) => format!("{}; wq monitor on vs off", w.unit()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_cost_covers_the_six_scheduler_workloads() {
        let names: Vec<String> = Entry::all()
            .into_iter()
            .filter(|e| matches!(e, Entry::MonitorCost(_)))
            .map(Entry::name)
            .collect();
        assert_eq!(
            names,
            [
                "monitor_cost/spawn_many_local",
                "monitor_cost/spawn_many_remote_idle",
                "monitor_cost/spawn_many_remote_busy",
                "monitor_cost/ping_pong",
                "monitor_cost/yield_many",
                "monitor_cost/chained_spawn",
            ]
        );
    }

    #[test]
    fn every_workload_is_compared_with_tokio() {
        let versus = Entry::all()
            .into_iter()
            .filter(|e| matches!(e, Entry::Versus(_)))
            .count();
        assert_eq!(versus, Workload::all().len());
    }
}
