//! `Scope`: the kinds of pod the topology is cut into (the kernel's
//! `enum wq_affn_scope`, without `WQ_AFFN_DFL`), public as `wq::Scope`.

use std::fmt;

/// The CPUs an unbound workqueue's workers share (the kernel's
/// `affinity_scope`): a way of grouping CPUs into pods, from the narrowest
/// to the widest. See [`WorkqueueBuilder::unbound`](crate::WorkqueueBuilder::unbound).
///
/// Pods are read from sysfs (`/sys/devices/system/cpu` and `node`); where
/// a scope cannot be read, it falls back to a wider one, and without sysfs
/// every scope but `Cpu` is one pod.
///
/// The default is `CacheShard`, the kernel's default affinity scope (and
/// [`system_unbound`](crate::system_unbound)'s):
///
/// ```
/// assert_eq!(wq::Scope::default(), wq::Scope::CacheShard);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Each CPU is a pod of its own.
    Cpu,
    /// The SMT siblings of one core (its hyperthreads).
    Smt,
    /// The CPUs sharing one last-level cache.
    Cache,
    /// A last-level cache split into shards of at most 8 cores, never
    /// splitting a core's siblings (the kernel's default scope).
    #[default]
    CacheShard,
    /// The CPUs of one NUMA node.
    Numa,
    /// Every CPU, in one pod.
    System,
}

impl Scope {
    /// Every scope, from the narrowest to the widest.
    pub(crate) const ALL: [Scope; 6] = [
        Scope::Cpu,
        Scope::Smt,
        Scope::Cache,
        Scope::CacheShard,
        Scope::Numa,
        Scope::System,
    ];

    /// The scope's name as the kernel spells it in
    /// `/sys/devices/virtual/workqueue/*/affinity_scope`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Scope::Cpu => "cpu",
            Scope::Smt => "smt",
            Scope::Cache => "cache",
            Scope::CacheShard => "cache_shard",
            Scope::Numa => "numa",
            Scope::System => "system",
        }
    }

    /// The scope's position in [`Scope::ALL`].
    pub(super) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_is_the_position_in_all() {
        for (i, scope) in Scope::ALL.into_iter().enumerate() {
            assert_eq!(scope.index(), i, "{scope}");
        }
        assert_eq!(Scope::CacheShard.to_string(), "cache_shard");
    }
}
