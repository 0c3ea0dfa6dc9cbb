//! `PodScope`: the kinds of pod the topology is cut into (the kernel's
//! `enum wq_affn_scope`, without `WQ_AFFN_DFL`).

use std::fmt;

/// A way of grouping CPUs into pods, from the narrowest to the widest.
///
/// What each scope is read from, and what it becomes when sysfs cannot
/// tell, is in the module docs of `topology`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum PodScope {
    /// Each CPU is a pod of its own.
    Cpu,
    /// The SMT siblings of one core (its hyperthreads).
    Smt,
    /// The CPUs sharing one last-level cache.
    Cache,
    /// A last-level cache split into shards of at most 8 cores, never
    /// splitting a core's siblings.
    CacheShard,
    /// The CPUs of one NUMA node.
    Numa,
    /// Every CPU, in one pod.
    System,
}

impl PodScope {
    /// Every scope, from the narrowest to the widest.
    pub(crate) const ALL: [PodScope; 6] = [
        PodScope::Cpu,
        PodScope::Smt,
        PodScope::Cache,
        PodScope::CacheShard,
        PodScope::Numa,
        PodScope::System,
    ];

    /// The scope's name as the kernel spells it in
    /// `/sys/devices/virtual/workqueue/*/affinity_scope`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            PodScope::Cpu => "cpu",
            PodScope::Smt => "smt",
            PodScope::Cache => "cache",
            PodScope::CacheShard => "cache_shard",
            PodScope::Numa => "numa",
            PodScope::System => "system",
        }
    }

    /// The scope's position in [`PodScope::ALL`].
    pub(super) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for PodScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_is_the_position_in_all() {
        for (i, scope) in PodScope::ALL.into_iter().enumerate() {
            assert_eq!(scope.index(), i, "{scope}");
        }
        assert_eq!(PodScope::CacheShard.to_string(), "cache_shard");
    }
}
