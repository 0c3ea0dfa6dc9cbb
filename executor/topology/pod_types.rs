//! `Topology`: the online CPUs and their pods for every scope (the kernel's
//! `wq_pod_types[]`, filled in by `workqueue_init_topology`).

use std::num::NonZeroUsize;
use std::path::Path;
use std::thread;

use super::pods::Pods;
use super::scope::Scope;
use super::shard::shard_keys;
use super::sysfs::{self, ReadError};

/// Where Linux keeps the CPU directories.
pub(crate) const SYS_CPU: &str = "/sys/devices/system/cpu";

/// Where Linux keeps the NUMA node directories.
pub(crate) const SYS_NODE: &str = "/sys/devices/system/node";

/// The machine's online CPUs, cut into pods for every [`Scope`].
///
/// Read once; CPUs going on- or offline later are not seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Topology {
    /// The online CPU ids, sorted.
    cpus: Vec<usize>,
    /// The pods of each scope, indexed by [`Scope::index`].
    levels: [Level; Scope::ALL.len()],
}

/// The pods of one scope, and why they are a fallback if they are one.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Level {
    /// The pods.
    pods: Pods,
    /// Set if sysfs could not tell this scope's pods, to what went wrong;
    /// the pods are then the scope's fallback.
    fallback: Option<ReadError>,
}

impl Level {
    /// A level read without trouble.
    fn known(pods: Pods) -> Level {
        Level {
            pods,
            fallback: None,
        }
    }

    /// A level grouping `cpus` by the keys a reader returned, or if it
    /// failed, the `fallback` pods, remembering why.
    fn read<K: Ord>(
        keys: Result<Vec<K>, ReadError>,
        cpus: &[usize],
        fallback: impl FnOnce() -> Pods,
    ) -> Level {
        match keys {
            Ok(keys) => Level::known(Pods::group_by(cpus, keys)),
            Err(error) => Level {
                pods: fallback(),
                fallback: Some(error),
            },
        }
    }
}

/// Pairs each CPU's key (in the order of the online CPUs) with its NUMA
/// pod, so that no pod keyed by it spans two nodes: the kernel's LLC
/// (`sd_llc`) never does, even where sysfs shows an L3 shared across nodes
/// (Intel's sub-NUMA clustering).
fn within_nodes<K>(keys: Vec<K>, numa: &Level) -> Vec<(Option<usize>, K)> {
    keys.into_iter()
        .enumerate()
        .map(|(i, key)| (numa.pods.pod_of_index(i), key))
        .collect()
}

impl Topology {
    /// Reads this machine's topology from [`SYS_CPU`] and [`SYS_NODE`], or
    /// falls back as the module docs describe (always, off Linux).
    pub(crate) fn detect() -> Topology {
        Topology::read(Path::new(SYS_CPU), Path::new(SYS_NODE))
    }

    /// Reads a topology from a sysfs CPU directory (like [`SYS_CPU`]) and
    /// node directory (like [`SYS_NODE`]). Never fails: whatever cannot be
    /// read falls back as the module docs describe.
    pub(crate) fn read(sys_cpu: &Path, sys_node: &Path) -> Topology {
        match sysfs::online_cpus(sys_cpu) {
            Ok(cpus) => Topology::from_sysfs(sys_cpu, sys_node, cpus),
            Err(error) => Topology::without_sysfs(error),
        }
    }

    /// Reads every level for the online `cpus`, each falling back on its own.
    fn from_sysfs(sys_cpu: &Path, sys_node: &Path, cpus: Vec<usize>) -> Topology {
        let smt = Level::read(sysfs::smt_siblings(sys_cpu, &cpus), &cpus, || {
            Pods::singletons(&cpus)
        });
        let numa = Level::read(sysfs::numa_nodes(sys_cpu, sys_node, &cpus), &cpus, || {
            Pods::one(&cpus)
        });
        let llc_keys =
            sysfs::llc_sharers(sys_cpu, &cpus).map(|sharers| within_nodes(sharers, &numa));
        let cache = Level::read(llc_keys, &cpus, || numa.pods.clone());
        let cache_shard = match cache.fallback {
            None => Level::known(Pods::group_by(
                &cpus,
                shard_keys(&cpus, &cache.pods, &smt.pods),
            )),
            // Shards of an unknown cache would mean nothing: keep its fallback.
            Some(_) => cache.clone(),
        };
        Topology {
            levels: [
                Level::known(Pods::singletons(&cpus)),
                smt,
                cache,
                cache_shard,
                numa,
                Level::known(Pods::one(&cpus)),
            ],
            cpus,
        }
    }

    /// The topology when not even the online CPUs can be read: CPUs `0..n`
    /// for `n` = [`thread::available_parallelism`], each its own `Cpu` pod,
    /// and one pod for every other scope. Every scope reports `error`.
    fn without_sysfs(error: ReadError) -> Topology {
        let n = thread::available_parallelism().map_or(1, NonZeroUsize::get);
        let cpus: Vec<usize> = (0..n).collect();
        let fallback = |pods| Level {
            pods,
            fallback: Some(error.clone()),
        };
        Topology {
            levels: [
                fallback(Pods::singletons(&cpus)),
                fallback(Pods::one(&cpus)),
                fallback(Pods::one(&cpus)),
                fallback(Pods::one(&cpus)),
                fallback(Pods::one(&cpus)),
                fallback(Pods::one(&cpus)),
            ],
            cpus,
        }
    }

    /// The online CPU ids, sorted.
    pub(crate) fn cpus(&self) -> &[usize] {
        &self.cpus
    }

    /// The pods of `scope`: each a sorted list of CPU ids, sorted by their
    /// first CPU; together they hold every online CPU exactly once.
    pub(crate) fn pods(&self, scope: Scope) -> &[Vec<usize>] {
        self.level(scope).pods.pods()
    }

    /// The index, into [`Topology::pods`], of the pod of `scope` holding
    /// `cpu`, or `None` if `cpu` is not one of [`Topology::cpus`] (it was
    /// offline when the topology was read, or does not exist).
    pub(crate) fn pod_of(&self, scope: Scope, cpu: usize) -> Option<usize> {
        let index = self.cpus.binary_search(&cpu).ok()?;
        self.level(scope).pods.pod_of_index(index)
    }

    /// Why the pods of `scope` are a fallback, or `None` if sysfs told them.
    ///
    /// When every scope reports an error, even `Cpu`, the online CPUs could
    /// not be read and the CPU ids are made up (`0..n`): threads must not be
    /// pinned to them.
    pub(crate) fn fallback(&self, scope: Scope) -> Option<&ReadError> {
        self.level(scope).fallback.as_ref()
    }

    /// The level of `scope`.
    fn level(&self, scope: Scope) -> &Level {
        &self.levels[scope.index()]
    }
}
