//! Tests of `Topology`: the exact pods of the fixture machines in
//! `fixtures/`, fallbacks on malformed trees built in temporary directories,
//! and the invariants on this machine's own sysfs.

use std::fs;
use std::io;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::thread;

use super::{CpuListError, ReadError, Scope, Topology};

use Scope::{Cache, CacheShard, Cpu, Numa, Smt, System};

// ---- helpers ----

/// The root of one fixture tree.
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("executor/topology/fixtures")
        .join(name)
}

/// Reads a fixture tree's `cpu/` and `node/` directories.
fn read_fixture(name: &str) -> Topology {
    let root = fixture(name);
    Topology::read(&root.join("cpu"), &root.join("node"))
}

/// The CPUs of some inclusive ranges, in order.
fn cpus(ranges: &[RangeInclusive<usize>]) -> Vec<usize> {
    ranges.iter().cloned().flatten().collect()
}

/// One pod per CPU of `cpus`.
fn singletons(cpus: &[usize]) -> Vec<Vec<usize>> {
    cpus.iter().map(|&c| vec![c]).collect()
}

/// The distinct SMT pods (cores) that the CPUs of `pod` belong to.
fn cores_in(topo: &Topology, pod: &[usize]) -> usize {
    let mut cores: Vec<_> = pod.iter().map(|&c| topo.pod_of(Smt, c)).collect();
    cores.sort_unstable();
    cores.dedup();
    cores.len()
}

/// Checks what holds for every topology: each scope's pods are non-empty,
/// sorted, sorted among themselves, hold every CPU exactly once and agree
/// with `pod_of`; each scope's pods nest in the next wider scope's; no
/// cache shard has more than 8 cores.
fn assert_consistent(topo: &Topology) {
    let cpus = topo.cpus();
    assert!(!cpus.is_empty());
    assert!(cpus.windows(2).all(|w| w[0] < w[1]), "cpus {cpus:?}");
    for scope in Scope::ALL {
        let pods = topo.pods(scope);
        let mut all: Vec<usize> = pods.concat();
        all.sort_unstable();
        assert_eq!(all, cpus, "{scope}: every CPU exactly once");
        assert!(pods.windows(2).all(|w| w[0] < w[1]), "{scope}: pods sorted");
        for (i, pod) in pods.iter().enumerate() {
            assert!(!pod.is_empty(), "{scope}: empty pod");
            assert!(pod.windows(2).all(|w| w[0] < w[1]), "{scope}: {pod:?}");
            for &cpu in pod {
                assert_eq!(topo.pod_of(scope, cpu), Some(i), "{scope}: CPU {cpu}");
            }
        }
    }
    let chain = [Cpu, Smt, CacheShard, Cache, Numa, System];
    for [narrow, wide] in chain.windows(2).map(|w| [w[0], w[1]]) {
        for pod in topo.pods(narrow) {
            let home = topo.pod_of(wide, pod[0]);
            assert!(
                pod.iter().all(|&c| topo.pod_of(wide, c) == home),
                "{narrow} pod {pod:?} straddles {wide} pods"
            );
        }
    }
    for shard in topo.pods(CacheShard) {
        assert!(cores_in(topo, shard) <= 8, "shard {shard:?}");
    }
}

/// Asserts that no scope fell back.
fn assert_no_fallback(topo: &Topology) {
    for scope in Scope::ALL {
        assert_eq!(topo.fallback(scope), None, "{scope}");
    }
}

/// A `NotFound` read error on `path`.
fn not_found(path: PathBuf) -> ReadError {
    ReadError::Io {
        path,
        kind: io::ErrorKind::NotFound,
    }
}

/// A sysfs tree in a fresh temporary directory, removed on drop.
struct TempTree {
    root: PathBuf,
}

impl TempTree {
    /// An empty tree.
    fn new() -> TempTree {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "wq-topology-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Relaxed)
        );
        let root = std::env::temp_dir().join(name);
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        TempTree { root }
    }

    /// A tree of `n` CPUs, all online, with an L1d per core and an L3 per
    /// LLC; `core`, `llc` and `node` give each CPU's core, LLC and node.
    /// Also holds entries sysfs has and the readers must skip.
    fn machine(
        n: usize,
        core: impl Fn(usize) -> usize,
        llc: impl Fn(usize) -> usize,
        node: impl Fn(usize) -> usize,
    ) -> TempTree {
        let tree = TempTree::new();
        let list = |f: &dyn Fn(usize) -> usize, key: usize| -> String {
            let cpus: Vec<String> = (0..n)
                .filter(|&c| f(c) == key)
                .map(|c| c.to_string())
                .collect();
            cpus.join(",")
        };
        tree.put("cpu/online", &format!("0-{}\n", n - 1));
        for c in 0..n {
            let dir = format!("cpu/cpu{c}");
            let siblings = list(&core, core(c));
            tree.put(&format!("{dir}/topology/thread_siblings_list"), &siblings);
            tree.cache(c, 0, "1", "Data", &siblings);
            tree.cache(c, 3, "3", "Unified", &list(&llc, llc(c)));
            tree.put(&format!("{dir}/cache/uevent"), "");
        }
        let mut nodes: Vec<usize> = (0..n).map(&node).collect();
        nodes.dedup();
        for k in nodes {
            tree.put(&format!("node/node{k}/cpulist"), &list(&node, k));
        }
        tree.put("node/has_cpu", "0");
        tree.put("node/possible", "0");
        tree
    }

    /// Writes `contents` to the file `rel` (and a newline, as sysfs does).
    fn put(&self, rel: &str, contents: &str) {
        let path = self.root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, format!("{contents}\n")).unwrap();
    }

    /// Writes the `level`, `type` and `shared_cpu_list` of one cache.
    fn cache(&self, cpu: usize, index: usize, level: &str, kind: &str, shared: &str) {
        let dir = format!("cpu/cpu{cpu}/cache/index{index}");
        self.put(&format!("{dir}/level"), level);
        self.put(&format!("{dir}/type"), kind);
        self.put(&format!("{dir}/shared_cpu_list"), shared);
    }

    /// Removes the file or directory `rel`.
    fn remove(&self, rel: &str) {
        let path = self.root.join(rel);
        if path.is_dir() {
            fs::remove_dir_all(path).unwrap();
        } else {
            fs::remove_file(path).unwrap();
        }
    }

    /// The full path of `rel`.
    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Reads the tree.
    fn read(&self) -> Topology {
        Topology::read(&self.path("cpu"), &self.path("node"))
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// 10 CPUs: 5 cores of 2 threads (CPU 2k and 2k+1), LLC 0 over CPUs 0-3 and
/// LLC 1 over 4-9, one node.
fn two_llc_machine() -> TempTree {
    TempTree::machine(10, |c| c / 2, |c| usize::from(c >= 4), |_| 0)
}

// ---- fixture 1: two sockets, SMT ----

#[test]
fn two_socket_smt_pods() {
    let topo = read_fixture("two_socket_smt");
    assert_consistent(&topo);
    assert_no_fallback(&topo);
    let socket0 = cpus(&[0..=11, 24..=35]);
    let socket1 = cpus(&[12..=23, 36..=47]);
    let all = cpus(&[0..=47]);
    assert_eq!(topo.cpus(), all);
    assert_eq!(topo.pods(Cpu), singletons(&all));
    let cores: Vec<Vec<usize>> = (0..24).map(|c| vec![c, c + 24]).collect();
    assert_eq!(topo.pods(Smt), cores);
    assert_eq!(topo.pods(Cache), [socket0.clone(), socket1.clone()]);
    assert_eq!(
        topo.pods(CacheShard),
        [
            cpus(&[0..=5, 24..=29]),
            cpus(&[6..=11, 30..=35]),
            cpus(&[12..=17, 36..=41]),
            cpus(&[18..=23, 42..=47]),
        ]
    );
    assert_eq!(topo.pods(Numa), [socket0, socket1]);
    assert_eq!(topo.pods(System), [all]);
}

#[test]
fn two_socket_smt_shards_hold_six_whole_cores() {
    let topo = read_fixture("two_socket_smt");
    for shard in topo.pods(CacheShard) {
        assert_eq!(shard.len(), 12, "{shard:?}");
        assert_eq!(cores_in(&topo, shard), 6, "{shard:?}");
    }
}

#[test]
fn two_socket_smt_pod_of() {
    let topo = read_fixture("two_socket_smt");
    assert_eq!(topo.pod_of(Cpu, 30), Some(30));
    assert_eq!(topo.pod_of(Smt, 30), Some(6));
    assert_eq!(topo.pod_of(Cache, 30), Some(0));
    assert_eq!(topo.pod_of(CacheShard, 30), Some(1));
    assert_eq!(topo.pod_of(CacheShard, 36), Some(2));
    assert_eq!(topo.pod_of(Numa, 47), Some(1));
    assert_eq!(topo.pod_of(System, 47), Some(0));
    for scope in Scope::ALL {
        assert_eq!(topo.pod_of(scope, 48), None, "{scope}");
    }
}

// ---- fixture 2: one-CPU VM ----

#[test]
fn one_cpu_vm_pods() {
    let topo = read_fixture("one_cpu_vm");
    assert_consistent(&topo);
    assert_no_fallback(&topo);
    assert_eq!(topo.cpus(), [0]);
    for scope in Scope::ALL {
        assert_eq!(topo.pods(scope), [vec![0]], "{scope}");
        assert_eq!(topo.pod_of(scope, 0), Some(0), "{scope}");
        assert_eq!(topo.pod_of(scope, 1), None, "{scope}");
    }
}

#[test]
fn one_cpu_vm_node_from_the_cpu_link() {
    let root = fixture("one_cpu_vm");
    let topo = Topology::read(&root.join("cpu"), &root.join("no-such-node-dir"));
    assert_no_fallback(&topo);
    assert_eq!(topo.pods(Numa), [vec![0]]);
}

// ---- fixture 3: no cache directory ----

#[test]
fn no_cache_falls_back_to_the_numa_nodes() {
    let topo = read_fixture("no_cache");
    assert_consistent(&topo);
    let nodes = [cpus(&[0..=3]), cpus(&[4..=7])];
    assert_eq!(topo.cpus(), cpus(&[0..=7]));
    assert_eq!(topo.pods(Cpu), singletons(&cpus(&[0..=7])));
    assert_eq!(topo.pods(Smt), [[0, 1], [2, 3], [4, 5], [6, 7]]);
    assert_eq!(topo.pods(Cache), nodes);
    assert_eq!(topo.pods(CacheShard), nodes);
    assert_eq!(topo.pods(Numa), nodes);
    assert_eq!(topo.pods(System), [cpus(&[0..=7])]);
    let missing = not_found(fixture("no_cache").join("cpu/cpu0/cache"));
    assert_eq!(topo.fallback(Cache), Some(&missing));
    assert_eq!(topo.fallback(CacheShard), Some(&missing));
    for scope in [Cpu, Smt, Numa, System] {
        assert_eq!(topo.fallback(scope), None, "{scope}");
    }
}

#[test]
fn no_cache_and_no_nodes_fall_back_to_one_pod() {
    let root = fixture("no_cache");
    let no_nodes = root.join("no-such-node-dir");
    let topo = Topology::read(&root.join("cpu"), &no_nodes);
    assert_consistent(&topo);
    for scope in [Cache, CacheShard, Numa, System] {
        assert_eq!(topo.pods(scope), [cpus(&[0..=7])], "{scope}");
    }
    assert_eq!(topo.pods(Smt), [[0, 1], [2, 3], [4, 5], [6, 7]]);
    // The node directory's error is reported, not the missing links'.
    assert_eq!(topo.fallback(Numa), Some(&not_found(no_nodes)));
    let missing = not_found(root.join("cpu/cpu0/cache"));
    assert_eq!(topo.fallback(Cache), Some(&missing));
}

// ---- no sysfs at all ----

#[test]
fn no_sysfs_gives_one_pod_per_scope_but_cpu() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("no-such-sysfs");
    let topo = Topology::read(&dir.join("cpu"), &dir.join("node"));
    assert_consistent(&topo);
    let n = thread::available_parallelism().unwrap().get();
    let all: Vec<usize> = (0..n).collect();
    assert_eq!(topo.cpus(), all);
    assert_eq!(topo.pods(Cpu), singletons(&all));
    for scope in [Smt, Cache, CacheShard, Numa, System] {
        assert_eq!(topo.pods(scope), std::slice::from_ref(&all), "{scope}");
    }
    let missing = not_found(dir.join("cpu/online"));
    for scope in Scope::ALL {
        assert_eq!(topo.fallback(scope), Some(&missing), "{scope}");
    }
}

#[test]
fn malformed_online_falls_back_entirely() {
    let tree = two_llc_machine();
    tree.put("cpu/online", "0-");
    let topo = tree.read();
    assert_consistent(&topo);
    let error = ReadError::CpuList {
        path: tree.path("cpu/online"),
        error: CpuListError::InvalidNumber("0-".into()),
    };
    for scope in Scope::ALL {
        assert_eq!(topo.fallback(scope), Some(&error), "{scope}");
        assert_eq!(
            topo.pods(scope).len(),
            if scope == Cpu { topo.cpus().len() } else { 1 }
        );
    }
}

#[test]
fn empty_online_falls_back_entirely() {
    let tree = two_llc_machine();
    tree.put("cpu/online", "");
    let topo = tree.read();
    assert_eq!(
        topo.fallback(Cpu).map(ToString::to_string),
        Some(format!(
            "{}: lists no CPU",
            tree.path("cpu/online").display()
        ))
    );
}

// ---- malformed trees: one level falls back, the others stand ----

#[test]
fn well_formed_temp_machine_reads_without_fallback() {
    let topo = two_llc_machine().read();
    assert_consistent(&topo);
    assert_no_fallback(&topo);
    assert_eq!(topo.pods(Smt), [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]);
    assert_eq!(topo.pods(Cache), [cpus(&[0..=3]), cpus(&[4..=9])]);
    assert_eq!(topo.pods(CacheShard), [cpus(&[0..=3]), cpus(&[4..=9])]);
    assert_eq!(topo.pods(Numa), [cpus(&[0..=9])]);
}

#[test]
fn malformed_sibling_list_makes_each_cpu_a_core() {
    // 10 CPUs = 5 cores x 2 in one LLC: one shard, until SMT is unknown and
    // the 10 CPUs count as 10 cores, cut 5+5.
    let tree = TempTree::machine(10, |c| c / 2, |_| 0, |_| 0);
    assert_eq!(tree.read().pods(CacheShard), [cpus(&[0..=9])]);
    tree.put("cpu/cpu2/topology/thread_siblings_list", "2-x");
    let topo = tree.read();
    assert_consistent(&topo);
    assert_eq!(topo.pods(Smt), singletons(&cpus(&[0..=9])));
    assert_eq!(topo.pods(CacheShard), [cpus(&[0..=4]), cpus(&[5..=9])]);
    assert_eq!(
        topo.fallback(Smt),
        Some(&ReadError::CpuList {
            path: tree.path("cpu/cpu2/topology/thread_siblings_list"),
            error: CpuListError::InvalidNumber("2-x".into()),
        })
    );
    for scope in [Cpu, Cache, CacheShard, Numa, System] {
        assert_eq!(topo.fallback(scope), None, "{scope}");
    }
}

#[test]
fn missing_sibling_list_makes_each_cpu_a_core() {
    let tree = two_llc_machine();
    tree.remove("cpu/cpu9/topology");
    let topo = tree.read();
    assert_consistent(&topo);
    assert_eq!(topo.pods(Smt), singletons(&cpus(&[0..=9])));
    let missing = not_found(tree.path("cpu/cpu9/topology/thread_siblings_list"));
    assert_eq!(topo.fallback(Smt), Some(&missing));
}

#[test]
fn sibling_list_without_the_cpu_itself_is_rejected() {
    let tree = two_llc_machine();
    tree.put("cpu/cpu3/topology/thread_siblings_list", "0-1");
    let topo = tree.read();
    assert_consistent(&topo);
    assert_eq!(
        topo.fallback(Smt),
        Some(&ReadError::Invalid {
            path: tree.path("cpu/cpu3/topology/thread_siblings_list"),
            problem: "does not list CPU 3 itself".into(),
        })
    );
}

#[test]
fn inconsistent_sibling_lists_still_partition() {
    // CPU 0 claims 1 as its sibling, CPU 1 claims only itself.
    let tree = two_llc_machine();
    tree.put("cpu/cpu1/topology/thread_siblings_list", "1");
    let topo = tree.read();
    assert_consistent(&topo);
    assert_no_fallback(&topo);
    assert_eq!(topo.pods(Smt)[..3], [vec![0], vec![1], vec![2, 3]]);
}

#[test]
fn an_llc_over_two_nodes_is_cut_at_the_node() {
    // Sub-NUMA clustering: one L3 over CPUs 0-19, nodes 0-9 and 10-19, each
    // node 10 single-thread cores, so 5+5 cores per node.
    let tree = TempTree::machine(20, |c| c, |_| 0, |c| c / 10);
    let topo = tree.read();
    assert_consistent(&topo);
    assert_no_fallback(&topo);
    assert_eq!(topo.pods(Cache), [cpus(&[0..=9]), cpus(&[10..=19])]);
    assert_eq!(
        topo.pods(CacheShard),
        [
            cpus(&[0..=4]),
            cpus(&[5..=9]),
            cpus(&[10..=14]),
            cpus(&[15..=19])
        ]
    );
}

#[test]
fn malformed_cache_level_falls_back_to_the_node() {
    let tree = two_llc_machine();
    tree.put("cpu/cpu4/cache/index3/level", "three");
    let topo = tree.read();
    assert_consistent(&topo);
    assert_eq!(topo.pods(Cache), [cpus(&[0..=9])]);
    assert_eq!(topo.pods(CacheShard), [cpus(&[0..=9])]);
    let error = ReadError::Invalid {
        path: tree.path("cpu/cpu4/cache/index3/level"),
        problem: "`three` is not a cache level".into(),
    };
    assert_eq!(topo.fallback(Cache), Some(&error));
    assert_eq!(topo.fallback(CacheShard), Some(&error));
    assert_eq!(topo.fallback(Smt), None);
}

#[test]
fn malformed_shared_cpu_list_falls_back() {
    let tree = two_llc_machine();
    tree.put("cpu/cpu0/cache/index3/shared_cpu_list", "0-3,");
    let topo = tree.read();
    assert_consistent(&topo);
    assert_eq!(
        topo.fallback(Cache),
        Some(&ReadError::CpuList {
            path: tree.path("cpu/cpu0/cache/index3/shared_cpu_list"),
            error: CpuListError::EmptyItem,
        })
    );
}

#[test]
fn instruction_caches_are_not_the_llc() {
    // An instruction cache at level 4 over every CPU: still the L3 pods.
    let tree = two_llc_machine();
    for c in 0..10 {
        tree.cache(c, 5, "4", "Instruction", "0-9");
    }
    let topo = tree.read();
    assert_no_fallback(&topo);
    assert_eq!(topo.pods(Cache), [cpus(&[0..=3]), cpus(&[4..=9])]);
}

#[test]
fn the_highest_level_wins_whatever_its_index() {
    // A per-core L2 listed after the L3 does not replace it.
    let tree = two_llc_machine();
    for c in 0..10 {
        tree.cache(
            c,
            7,
            "2",
            "Unified",
            &format!("{}-{}", c - c % 2, c - c % 2 + 1),
        );
    }
    assert_eq!(tree.read().pods(Cache), [cpus(&[0..=3]), cpus(&[4..=9])]);
}

#[test]
fn cpu_without_data_cache_falls_back() {
    let tree = two_llc_machine();
    tree.put("cpu/cpu0/cache/index0/type", "Instruction");
    tree.put("cpu/cpu0/cache/index3/type", "Instruction");
    let topo = tree.read();
    assert_eq!(
        topo.fallback(Cache),
        Some(&ReadError::Invalid {
            path: tree.path("cpu/cpu0/cache"),
            problem: "has no data or unified cache".into(),
        })
    );
}

#[test]
fn offline_cpus_are_left_out_of_every_pod() {
    let tree = two_llc_machine();
    tree.put("cpu/online", "0-8");
    let topo = tree.read();
    assert_consistent(&topo);
    assert_no_fallback(&topo);
    assert_eq!(topo.cpus(), cpus(&[0..=8]));
    assert_eq!(topo.pods(Smt)[4], [8]);
    assert_eq!(topo.pods(Cache), [cpus(&[0..=3]), cpus(&[4..=8])]);
    assert_eq!(topo.pods(Numa), [cpus(&[0..=8])]);
    assert_eq!(topo.pod_of(Numa, 9), None);
}

#[test]
fn cpu_in_two_nodes_falls_back_to_one_node() {
    let tree = TempTree::machine(10, |c| c / 2, |c| c / 4, |c| usize::from(c >= 4));
    assert_eq!(tree.read().pods(Numa), [cpus(&[0..=3]), cpus(&[4..=9])]);
    tree.put("node/node1/cpulist", "3-9");
    let topo = tree.read();
    assert_consistent(&topo);
    assert_eq!(topo.pods(Numa), [cpus(&[0..=9])]);
    assert_eq!(
        topo.fallback(Numa),
        Some(&ReadError::Invalid {
            path: tree.path("node/node1/cpulist"),
            problem: "CPU 3 is also in node 0".into(),
        })
    );
}

#[test]
fn cpu_in_no_node_falls_back_to_one_node() {
    let tree = two_llc_machine();
    tree.put("node/node0/cpulist", "0-8");
    let topo = tree.read();
    assert_eq!(topo.pods(Numa), [cpus(&[0..=9])]);
    assert_eq!(
        topo.fallback(Numa),
        Some(&ReadError::Invalid {
            path: tree.path("node"),
            problem: "no node lists CPU 9".into(),
        })
    );
}

#[test]
fn read_errors_say_which_file() {
    let error = ReadError::Invalid {
        path: PathBuf::from("/sys/devices/system/cpu/cpu3/cache/index3/level"),
        problem: "`three` is not a cache level".into(),
    };
    assert_eq!(
        error.to_string(),
        "/sys/devices/system/cpu/cpu3/cache/index3/level: `three` is not a cache level"
    );
    let error = not_found(PathBuf::from("/sys/devices/system/cpu/online"));
    assert_eq!(
        error.to_string(),
        "cannot read /sys/devices/system/cpu/online: entity not found"
    );
}

// ---- this machine ----

#[test]
fn detect_on_this_machine_is_consistent() {
    let topo = Topology::detect();
    assert_consistent(&topo);
    assert_eq!(topo.pods(System), [topo.cpus().to_vec()]);
    if topo.fallback(Cpu).is_none() {
        let online = fs::read_to_string(Path::new(super::SYS_CPU).join("online")).unwrap();
        assert_eq!(Ok(topo.cpus().to_vec()), super::parse_cpulist(&online));
    }
}
