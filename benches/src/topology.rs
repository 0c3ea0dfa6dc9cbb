//! The affinity scopes of `seed_scope_*` and how many pods each has on this
//! machine, for the report.
//!
//! wq keeps its topology private, so the runner reads sysfs itself, by the
//! rules wq documents in `executor/topology/mod.rs` (one pod per online CPU;
//! per set of SMT siblings; per last-level cache and NUMA node; per shard of
//! at most 8 cores of one last-level cache; per NUMA node; one for the
//! system). Only the number of pods is kept. A scope whose files cannot all
//! be read is reported as unknown rather than guessed: wq would fall back
//! there, and the report should not pretend to know which way.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use serde::Serialize;

/// Where sysfs describes the CPUs.
const SYS_CPU: &str = "/sys/devices/system/cpu";

/// The most cores of a cache shard (wq's `CACHE_SHARD_CORES`, the kernel's
/// `wq_cache_shard_size` default).
const CACHE_SHARD_CORES: usize = 8;

/// Every scope, narrowest first, with its name in workload names and
/// reports.
pub const SCOPES: [(wq::Scope, &str); 6] = [
    (wq::Scope::Cpu, "cpu"),
    (wq::Scope::Smt, "smt"),
    (wq::Scope::CacheShard, "cache_shard"),
    (wq::Scope::Cache, "cache"),
    (wq::Scope::Numa, "numa"),
    (wq::Scope::System, "system"),
];

/// The name of `scope` in workload names and reports (`cache_shard`).
pub fn scope_name(scope: wq::Scope) -> &'static str {
    SCOPES
        .iter()
        .find(|(s, _)| *s == scope)
        .map_or("unknown", |(_, name)| name)
}

/// How many pods each scope has on this machine; `None` where sysfs could
/// not be read for it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PodCounts {
    /// Online CPUs.
    pub cpu: Option<usize>,
    /// Cores (sets of SMT siblings).
    pub smt: Option<usize>,
    /// Shards of at most 8 cores of one last-level cache.
    pub cache_shard: Option<usize>,
    /// Last-level caches (split by NUMA node).
    pub cache: Option<usize>,
    /// NUMA nodes with CPUs (1 where sysfs shows no nodes).
    pub numa: Option<usize>,
    /// Always 1.
    pub system: Option<usize>,
}

impl PodCounts {
    /// Reads the pods of this machine from sysfs.
    pub fn detect() -> Self {
        Self::read(Path::new(SYS_CPU))
    }

    /// The pods of `scope`.
    pub fn of(&self, scope: wq::Scope) -> Option<usize> {
        match scope {
            wq::Scope::Cpu => self.cpu,
            wq::Scope::Smt => self.smt,
            wq::Scope::CacheShard => self.cache_shard,
            wq::Scope::Cache => self.cache,
            wq::Scope::Numa => self.numa,
            wq::Scope::System => self.system,
        }
    }

    fn read(root: &Path) -> Self {
        let Some(online) = read_text(&root.join("online")).and_then(|t| parse_cpulist(&t)) else {
            return Self::default();
        };
        if online.is_empty() {
            return Self::default();
        }
        let per_cpu = |file: fn(&Path) -> Option<String>| -> Option<Vec<String>> {
            online
                .iter()
                .map(|cpu| file(&root.join(format!("cpu{cpu}"))))
                .collect()
        };
        let siblings = per_cpu(|dir| read_text(&dir.join("topology/thread_siblings_list")));
        let nodes = per_cpu(node_of);
        let llcs = per_cpu(last_level_cache);

        let distinct = |keys: &[String]| keys.iter().collect::<BTreeSet<_>>().len();
        // No `node*` links at all: one node, as wq assumes.
        let nodes = nodes.or_else(|| Some(vec![String::new(); online.len()]));
        let caches: Option<Vec<String>> = match (&llcs, &nodes) {
            (Some(llcs), Some(nodes)) => Some(
                llcs.iter()
                    .zip(nodes)
                    .map(|(llc, node)| format!("{llc}/{node}"))
                    .collect(),
            ),
            _ => None,
        };
        let cache_shard = match (&caches, &siblings) {
            (Some(caches), Some(siblings)) => {
                let mut cores: BTreeMap<&String, BTreeSet<&String>> = BTreeMap::new();
                for (cache, core) in caches.iter().zip(siblings) {
                    cores.entry(cache).or_default().insert(core);
                }
                Some(
                    cores
                        .values()
                        .map(|cores| cores.len().div_ceil(CACHE_SHARD_CORES).max(1))
                        .sum(),
                )
            }
            _ => None,
        };
        Self {
            cpu: Some(online.len()),
            smt: siblings.as_deref().map(distinct),
            cache_shard,
            cache: caches.as_deref().map(distinct),
            numa: nodes.as_deref().map(distinct),
            system: Some(1),
        }
    }
}

fn read_text(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|t| t.trim().to_owned())
}

/// The cpulist of the CPUs sharing the last-level cache of the CPU whose
/// sysfs directory is `dir`: among its `Unified` and `Data` caches, the one
/// of the highest level.
fn last_level_cache(dir: &Path) -> Option<String> {
    let mut best: Option<(u32, String)> = None;
    for entry in fs::read_dir(dir.join("cache")).ok()? {
        let index = entry.ok()?.path();
        let is_index = index
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("index"));
        if !is_index {
            continue;
        }
        let kind = read_text(&index.join("type"))?;
        if kind != "Unified" && kind != "Data" {
            continue;
        }
        let level: u32 = read_text(&index.join("level"))?.parse().ok()?;
        let shared = read_text(&index.join("shared_cpu_list"))?;
        if best.as_ref().is_none_or(|(l, _)| level > *l) {
            best = Some((level, shared));
        }
    }
    best.map(|(_, shared)| shared)
}

/// The NUMA node of the CPU whose sysfs directory is `dir` (its `nodeN`
/// link), if it has one.
fn node_of(dir: &Path) -> Option<String> {
    fs::read_dir(dir)
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .find(|name| {
            name.strip_prefix("node")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// Parses a cpulist (`0-3,8`); `None` if malformed.
fn parse_cpulist(list: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (start, end): (usize, usize) = match item.split_once('-') {
            Some((start, end)) => (start.parse().ok()?, end.parse().ok()?),
            None => {
                let cpu = item.parse().ok()?;
                (cpu, cpu)
            }
        };
        if start > end || end >= 1 << 16 {
            return None;
        }
        cpus.extend(start..=end);
    }
    Some(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpulists() {
        assert_eq!(parse_cpulist("0-3,8"), Some(vec![0, 1, 2, 3, 8]));
        assert_eq!(parse_cpulist("1"), Some(vec![1]));
        assert_eq!(parse_cpulist(""), Some(vec![]));
        assert_eq!(parse_cpulist("3-1"), None);
        assert_eq!(parse_cpulist("x"), None);
    }

    #[test]
    fn names_every_scope() {
        assert_eq!(scope_name(wq::Scope::CacheShard), "cache_shard");
        assert_eq!(SCOPES.len(), 6);
    }

    #[test]
    fn counts_this_machines_pods() {
        let pods = PodCounts::detect();
        assert_eq!(pods.of(wq::Scope::System), Some(1));
        if let Some(cpus) = pods.cpu {
            // Every scope partitions the online CPUs, narrower scopes into
            // at least as many pods.
            for narrower in [pods.smt, pods.cache_shard, pods.cache, pods.numa]
                .into_iter()
                .flatten()
            {
                assert!((1..=cpus).contains(&narrower), "{pods:?}");
            }
        }
    }

    #[test]
    fn reads_a_sysfs_tree() {
        let root = std::env::temp_dir().join(format!("wq-bench-topology-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let write = |path: &str, text: &str| {
            let path = root.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, format!("{text}\n")).unwrap();
        };
        // 4 CPUs, 2 cores of 2 threads, one L3, one node.
        write("online", "0-3");
        for cpu in 0..4 {
            let core = if cpu % 2 == 0 { "0,2" } else { "1,3" };
            write(&format!("cpu{cpu}/topology/thread_siblings_list"), core);
            write(&format!("cpu{cpu}/cache/index0/type"), "Data");
            write(&format!("cpu{cpu}/cache/index0/level"), "1");
            write(&format!("cpu{cpu}/cache/index0/shared_cpu_list"), core);
            write(&format!("cpu{cpu}/cache/index3/type"), "Unified");
            write(&format!("cpu{cpu}/cache/index3/level"), "3");
            write(&format!("cpu{cpu}/cache/index3/shared_cpu_list"), "0-3");
            fs::create_dir_all(root.join(format!("cpu{cpu}/node0"))).unwrap();
        }
        let pods = PodCounts::read(&root);
        let _ = fs::remove_dir_all(&root);
        assert_eq!(
            pods,
            PodCounts {
                cpu: Some(4),
                smt: Some(2),
                cache_shard: Some(1),
                cache: Some(1),
                numa: Some(1),
                system: Some(1),
            }
        );
    }
}
