//! Reading the raw per-CPU facts out of sysfs: which CPUs are online, and for
//! each of them its SMT siblings, the CPUs sharing its last-level cache, and
//! its NUMA node.
//!
//! Each reader answers for every online CPU or fails as a whole with a
//! [`ReadError`]: a level known for only some CPUs is not trusted, and the
//! caller replaces it by its fallback (see the module docs of `topology`).

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::cpulist::{parse_cpulist, CpuListError};

/// Why a level of the topology could not be read, kept by the topology as
/// the reason it fell back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// A file or directory could not be read (missing, permission denied...).
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        kind: io::ErrorKind,
    },
    /// A file's cpulist is malformed.
    CpuList {
        /// The file.
        path: PathBuf,
        /// What is wrong with its contents.
        error: CpuListError,
    },
    /// A file or directory was read but says something impossible.
    Invalid {
        /// The file or directory.
        path: PathBuf,
        /// What is impossible about it.
        problem: String,
    },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io { path, kind } => write!(f, "cannot read {}: {kind}", path.display()),
            ReadError::CpuList { path, error } => write!(f, "{}: {error}", path.display()),
            ReadError::Invalid { path, problem } => write!(f, "{}: {problem}", path.display()),
        }
    }
}

impl std::error::Error for ReadError {}

impl ReadError {
    /// A read failure on `path`.
    fn io(path: &Path, error: &io::Error) -> ReadError {
        ReadError::Io {
            path: path.to_owned(),
            kind: error.kind(),
        }
    }

    /// Impossible contents in `path`.
    fn invalid(path: &Path, problem: impl Into<String>) -> ReadError {
        ReadError::Invalid {
            path: path.to_owned(),
            problem: problem.into(),
        }
    }
}

/// Reads a whole file as text.
fn read_text(path: &Path) -> Result<String, ReadError> {
    fs::read_to_string(path).map_err(|e| ReadError::io(path, &e))
}

/// Reads a file holding one cpulist.
fn read_cpulist(path: &Path) -> Result<Vec<usize>, ReadError> {
    parse_cpulist(&read_text(path)?).map_err(|error| ReadError::CpuList {
        path: path.to_owned(),
        error,
    })
}

/// The names of the entries of a directory (non-UTF-8 names are skipped:
/// sysfs has none).
fn dir_names(dir: &Path) -> Result<Vec<String>, ReadError> {
    let entries = fs::read_dir(dir).map_err(|e| ReadError::io(dir, &e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| ReadError::io(dir, &e))?;
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

/// The number in a name like `node3` or `index2`, if `name` is `prefix`
/// followed by decimal digits only.
fn numbered(name: &str, prefix: &str) -> Option<usize> {
    let digits = name.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The directory of one CPU, `<sys_cpu>/cpu<N>`.
fn cpu_dir(sys_cpu: &Path, cpu: usize) -> PathBuf {
    sys_cpu.join(format!("cpu{cpu}"))
}

/// Keeps the CPUs of a sysfs mask that are online (`online` is sorted), and
/// checks that the mask holds `cpu` itself, as every per-CPU mask must.
fn own_mask(
    path: &Path,
    mask: Vec<usize>,
    cpu: usize,
    online: &[usize],
) -> Result<Vec<usize>, ReadError> {
    if mask.binary_search(&cpu).is_err() {
        return Err(ReadError::invalid(
            path,
            format!("does not list CPU {cpu} itself"),
        ));
    }
    Ok(mask
        .into_iter()
        .filter(|c| online.binary_search(c).is_ok())
        .collect())
}

/// The online CPUs, from `<sys_cpu>/online`, sorted; never empty.
pub(super) fn online_cpus(sys_cpu: &Path) -> Result<Vec<usize>, ReadError> {
    let path = sys_cpu.join("online");
    let cpus = read_cpulist(&path)?;
    if cpus.is_empty() {
        return Err(ReadError::invalid(&path, "lists no CPU"));
    }
    Ok(cpus)
}

/// For each online CPU (in the order of `online`), its online SMT siblings
/// including itself, from `cpu<N>/topology/thread_siblings_list`.
pub(super) fn smt_siblings(sys_cpu: &Path, online: &[usize]) -> Result<Vec<Vec<usize>>, ReadError> {
    online
        .iter()
        .map(|&cpu| {
            let path = cpu_dir(sys_cpu, cpu).join("topology/thread_siblings_list");
            own_mask(&path, read_cpulist(&path)?, cpu, online)
        })
        .collect()
}

/// For each online CPU (in the order of `online`), the online CPUs sharing
/// its last-level cache, including itself.
pub(super) fn llc_sharers(sys_cpu: &Path, online: &[usize]) -> Result<Vec<Vec<usize>>, ReadError> {
    online
        .iter()
        .map(|&cpu| {
            let index = last_level_cache(&cpu_dir(sys_cpu, cpu).join("cache"))?;
            let path = index.join("shared_cpu_list");
            own_mask(&path, read_cpulist(&path)?, cpu, online)
        })
        .collect()
}

/// The `index<N>` directory, under one CPU's `cache` directory, of its
/// last-level cache: the highest `level` among the caches whose `type` is
/// `Unified` or `Data` (instruction caches never hold the data the workers
/// share). Ties go to the lowest index.
fn last_level_cache(cache_dir: &Path) -> Result<PathBuf, ReadError> {
    let mut indices: Vec<usize> = dir_names(cache_dir)?
        .iter()
        .filter_map(|name| numbered(name, "index"))
        .collect();
    indices.sort_unstable();
    let mut best: Option<(u32, PathBuf)> = None;
    for index in indices {
        let dir = cache_dir.join(format!("index{index}"));
        let Some(level) = data_cache_level(&dir)? else {
            continue;
        };
        match &best {
            Some((top, _)) if *top >= level => {}
            _ => best = Some((level, dir)),
        }
    }
    best.map(|(_, dir)| dir)
        .ok_or_else(|| ReadError::invalid(cache_dir, "has no data or unified cache"))
}

/// The `level` of one cache, or `None` if it is not a data or unified cache
/// (`Instruction`, or a type this code does not know).
fn data_cache_level(index_dir: &Path) -> Result<Option<u32>, ReadError> {
    match read_text(&index_dir.join("type"))?.trim() {
        "Unified" | "Data" => {}
        _ => return Ok(None),
    }
    let level_path = index_dir.join("level");
    let level = read_text(&level_path)?;
    match level.trim().parse::<u32>() {
        Ok(level) => Ok(Some(level)),
        Err(_) => Err(ReadError::invalid(
            &level_path,
            format!("`{}` is not a cache level", level.trim()),
        )),
    }
}

/// For each online CPU (in the order of `online`), its NUMA node id: from
/// the `node<N>/cpulist` files under `sys_node` if they can be read, else
/// from the `node<N>` links in each `cpu<M>` directory. If neither works,
/// the error is the node directory's (the links are only a second chance).
pub(super) fn numa_nodes(
    sys_cpu: &Path,
    sys_node: &Path,
    online: &[usize],
) -> Result<Vec<usize>, ReadError> {
    nodes_from_node_dir(sys_node, online)
        .or_else(|error| nodes_from_cpu_links(sys_cpu, online).map_err(|_| error))
}

/// The node of each online CPU, from `<sys_node>/node<N>/cpulist`. Every
/// online CPU must be in exactly one node.
fn nodes_from_node_dir(sys_node: &Path, online: &[usize]) -> Result<Vec<usize>, ReadError> {
    let mut nodes: Vec<usize> = dir_names(sys_node)?
        .iter()
        .filter_map(|name| numbered(name, "node"))
        .collect();
    nodes.sort_unstable();
    let mut node_of: Vec<Option<usize>> = vec![None; online.len()];
    for node in nodes {
        let path = sys_node.join(format!("node{node}/cpulist"));
        for cpu in read_cpulist(&path)? {
            // Offline CPUs may still be listed; they are not ours to place.
            let Ok(i) = online.binary_search(&cpu) else {
                continue;
            };
            if let Some(other) = node_of[i].replace(node) {
                let problem = format!("CPU {cpu} is also in node {other}");
                return Err(ReadError::invalid(&path, problem));
            }
        }
    }
    online
        .iter()
        .zip(node_of)
        .map(|(&cpu, node)| {
            node.ok_or_else(|| ReadError::invalid(sys_node, format!("no node lists CPU {cpu}")))
        })
        .collect()
}

/// The node of each online CPU, from the one `node<N>` entry (a symlink in
/// real sysfs; only its name is used) in `<sys_cpu>/cpu<M>`.
fn nodes_from_cpu_links(sys_cpu: &Path, online: &[usize]) -> Result<Vec<usize>, ReadError> {
    online
        .iter()
        .map(|&cpu| {
            let dir = cpu_dir(sys_cpu, cpu);
            let nodes: Vec<usize> = dir_names(&dir)?
                .iter()
                .filter_map(|name| numbered(name, "node"))
                .collect();
            match nodes[..] {
                [node] => Ok(node),
                [] => Err(ReadError::invalid(&dir, "has no node<N> entry")),
                _ => Err(ReadError::invalid(&dir, "has several node<N> entries")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_names() {
        assert_eq!(numbered("node12", "node"), Some(12));
        assert_eq!(numbered("index0", "index"), Some(0));
        assert_eq!(numbered("node", "node"), None);
        assert_eq!(numbered("node1a", "node"), None);
        assert_eq!(numbered("node+1", "node"), None);
        assert_eq!(numbered("has_cpu", "node"), None);
        assert_eq!(numbered("uevent", "index"), None);
    }
}
