//! CPU topology: the online CPUs cut into pods for each affinity scope, the
//! user-space twin of the kernel's `wq_pod_types[]`. An unbound workqueue
//! has one pool per pod of its scope, and a work item queued from a CPU goes
//! to the pool of that CPU's pod.
//!
//! # Scopes
//!
//! Read once from sysfs by [`Topology::read`] (the real directories are
//! [`SYS_CPU`] and [`SYS_NODE`]; [`Topology::detect`] reads those). All
//! masks are cpulists ([`cpulist`]) and are cut down to the online CPUs.
//!
//! | scope        | one pod per                     | read from                                                      |
//! |--------------|---------------------------------|----------------------------------------------------------------|
//! | `Cpu`        | online CPU (`cpu/online`)       | `online`                                                       |
//! | `Smt`        | core: its SMT siblings          | `cpuN/topology/thread_siblings_list`                           |
//! | `Cache`      | last-level cache                | `cpuN/cache/index*/{type,level,shared_cpu_list}`               |
//! | `CacheShard` | at most 8 cores of one LLC      | derived from `Cache` and `Smt`                                 |
//! | `Numa`       | NUMA node                       | `node/nodeN/cpulist`, else the `cpuN/nodeM` links              |
//! | `System`     | machine                         | `online`                                                       |
//!
//! A CPU's last-level cache is, among its `index*` caches whose `type` is
//! `Unified` or `Data`, the one of the highest `level` (L3 on most x86, L2
//! on many arm64 and on CPUs without L3); CPUs listing the same
//! `shared_cpu_list` for it, and in the same NUMA node, share a pod. The
//! node matters only where sysfs shows one L3 over several nodes (Intel's
//! sub-NUMA clustering): the kernel's own LLC (`sd_llc`, which its
//! workqueues use) stops at the node there, and so do these pods.
//!
//! `CacheShard` follows the kernel's `precompute_cache_shard_ids`: within
//! each LLC, cores (SMT pods) are counted, not threads, and the LLC is cut
//! into the fewest shards of at most 8 cores, as even as possible, the
//! larger first (12 cores: 6+6; 36 cores: 8+7+7+7+7). Cores are dealt out in
//! the order of their lowest CPU and never split, so with Intel's numbering
//! (CPU N and N+24 siblings on 24 cores) the first shard of a 12-core
//! socket is CPUs 0-5 and 24-29. An LLC of at most 8 cores is one shard.
//! (Linux 7.1 rounds the shard count to the nearest instead, which lets a
//! shard reach 11 cores; see `shard.rs`.)
//!
//! Pods are sorted CPU lists, and a scope's pods are sorted by first CPU,
//! as the kernel numbers them. Each scope partitions the online CPUs: pods
//! are built by grouping CPUs on equal keys (the same sibling list, the
//! same LLC sharers, the same node), so even inconsistent sysfs data (CPU 0
//! naming 1 as its sibling while CPU 1 names no one) yields a partition,
//! never an overlap.
//!
//! # Fallbacks
//!
//! Reading never fails and never panics. Each scope is read as a whole: a
//! missing, unreadable or malformed file for any one CPU discards what was
//! read for that scope, which takes its fallback, and
//! [`Topology::fallback`] says why:
//!
//! - **no sysfs** (not Linux, a container without `/sys`, an unreadable or
//!   malformed `online`): the CPUs are `0..n`, `n` from
//!   [`std::thread::available_parallelism`]; `Cpu` has one pod per CPU and
//!   every other scope one pod holding them all. The ids are made up, so
//!   every scope, `Cpu` included, reports the error: do not pin to them.
//! - `Smt` unknown: each CPU is its own core (as on a machine without SMT),
//!   so `CacheShard` counts CPUs as cores.
//! - `Numa` unknown: one node, the same pod as `System`.
//! - `Cache` unknown: the pods of `Numa`, the narrowest pods known to hold
//!   whole LLCs (if `Numa` is unknown too, that is `System`).
//!   `CacheShard` then takes the same pods and error: shards of a cache
//!   that cannot be seen would be arbitrary.
//!
//! `Cpu` and `System` come from `online` alone and fall back only with it.
//!
//! # Not covered
//!
//! CPU hotplug after the read, and the process's own CPU affinity or cgroup
//! cpuset: the pods hold every online CPU, including ones this process may
//! not be allowed to run on.
//!
//! # Files
//!
//! - `scope.rs`: [`Scope`].
//! - `pod_types.rs`: [`Topology`], putting the levels together.
//! - `pods.rs`: one scope's partition into pods.
//! - `sysfs.rs`: the readers, and [`ReadError`].
//! - `shard.rs`: cutting an LLC into cache shards.
//! - `cpulist.rs`: the cpulist parser.
//! - `tests.rs` and `fixtures/`: the sysfs trees of three machines (see
//!   `fixtures/README.md`) and the pods expected of them.

mod cpulist;
mod pod_types;
mod pods;
mod scope;
mod shard;
mod sysfs;
#[cfg(test)]
mod tests;

pub(crate) use self::pod_types::Topology;
pub use self::scope::Scope;
#[cfg(test)]
pub(crate) use self::{
    cpulist::{parse_cpulist, CpuListError},
    pod_types::SYS_CPU,
    sysfs::ReadError,
};
