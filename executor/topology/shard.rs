//! Cache shards: one last-level cache split into groups of at most
//! [`CACHE_SHARD_CORES`] cores, never splitting a core's SMT siblings (the
//! kernel's `precompute_cache_shard_ids`, Linux 7.1).

use std::collections::BTreeMap;

use super::pods::Pods;

/// The most cores a cache shard holds (the kernel's `wq_cache_shard_size`
/// default). Counted in cores, so a shard of 8 two-thread cores holds 16
/// CPUs.
pub(super) const CACHE_SHARD_CORES: usize = 8;

/// The size, in cores, of each shard of an LLC with `cores` cores, in shard
/// order: the fewest shards of at most `max_cores` cores each, as even as
/// possible, the larger ones first (36 cores -> 8+7+7+7+7; 12 -> 6+6).
///
/// Linux 7.1's code picks the shard count that brings the average closest
/// to the target (`DIV_ROUND_CLOSEST(cores, 8)`), so 10 cores stay one shard
/// and 17 become 9+8. Here 8 is a hard maximum, as the kernel's
/// documentation of the scope states ("at most `wq_cache_shard_size`
/// cores"): 10 cores become 5+5 and 17 become 6+6+5. Both agree below 9
/// cores and whenever `cores % 8` is 0 or at least 4 (12 -> 6+6 in both).
pub(super) fn shard_sizes(cores: usize, max_cores: usize) -> Vec<usize> {
    let max_cores = max_cores.max(1);
    let shards = cores.div_ceil(max_cores).max(1);
    let base = cores / shards;
    let large = cores % shards;
    (0..shards)
        .map(|shard| if shard < large { base + 1 } else { base })
        .collect()
}

/// For each online CPU (in the order of `online`), a key naming its cache
/// shard: `(its LLC pod, its shard within that LLC)`.
///
/// Within an LLC, cores are the CPUs grouped by SMT pod; they are taken in
/// the order of their lowest CPU and dealt out to the shards of
/// [`shard_sizes`] in turn, each core whole. A core that (in inconsistent
/// sysfs data) straddles two LLCs counts as one core in each.
pub(super) fn shard_keys(online: &[usize], cache: &Pods, smt: &Pods) -> Vec<(usize, usize)> {
    let mut keys = vec![(0, 0); online.len()];
    for (llc, llc_cpus) in cache.pods().iter().enumerate() {
        let cores = cores_of(online, llc_cpus, smt);
        let mut shard_of_core = Vec::with_capacity(cores.len());
        for (shard, &size) in shard_sizes(cores.len(), CACHE_SHARD_CORES)
            .iter()
            .enumerate()
        {
            shard_of_core.resize(shard_of_core.len() + size, shard);
        }
        for (core, shard) in cores.iter().zip(shard_of_core) {
            for &i in core {
                keys[i] = (llc, shard);
            }
        }
    }
    keys
}

/// The cores of one LLC: its CPUs (as indices into `online`) grouped by SMT
/// pod, in the order of each core's lowest CPU.
fn cores_of(online: &[usize], llc_cpus: &[usize], smt: &Pods) -> Vec<Vec<usize>> {
    let mut cores: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for cpu in llc_cpus {
        let Ok(i) = online.binary_search(cpu) else {
            continue;
        };
        if let Some(core) = smt.pod_of_index(i) {
            cores.entry(core).or_default().push(i);
        }
    }
    let mut cores: Vec<Vec<usize>> = cores.into_values().collect();
    // Each core lists its CPUs in ascending order, `llc_cpus` being sorted.
    cores.sort_unstable_by_key(|core| core.first().copied());
    cores
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_sizes_are_even_and_at_most_the_maximum() {
        assert_eq!(shard_sizes(1, 8), [1]);
        assert_eq!(shard_sizes(8, 8), [8]);
        assert_eq!(shard_sizes(9, 8), [5, 4]);
        assert_eq!(shard_sizes(12, 8), [6, 6]);
        assert_eq!(shard_sizes(17, 8), [6, 6, 5]);
        assert_eq!(shard_sizes(36, 8), [8, 7, 7, 7, 7]);
        assert_eq!(shard_sizes(72, 8), [8; 9]);
        assert_eq!(shard_sizes(100, 8), [8, 8, 8, 8, 8, 8, 8, 8, 8, 7, 7, 7, 7]);
    }

    #[test]
    fn shard_sizes_of_degenerate_inputs() {
        assert_eq!(shard_sizes(0, 8), [0]);
        assert_eq!(shard_sizes(3, 0), [1, 1, 1]);
    }

    #[test]
    fn shard_sizes_cover_every_core() {
        for cores in 0..200 {
            let sizes = shard_sizes(cores, 8);
            assert_eq!(sizes.iter().sum::<usize>(), cores, "{cores} cores");
            assert!(sizes.iter().all(|&s| s <= 8), "{cores} cores: {sizes:?}");
            let (min, max) = (sizes.iter().min(), sizes.iter().max());
            assert!(
                max.zip(min).is_some_and(|(a, b)| a - b <= 1),
                "{cores}: {sizes:?}"
            );
        }
    }

    #[test]
    fn siblings_stay_together_and_cores_go_in_order() {
        // One LLC of 10 cores x 2 threads, siblings N and N+10: 2 shards of 5.
        let online: Vec<usize> = (0..20).collect();
        let cache = Pods::one(&online);
        let smt = Pods::group_by(&online, online.iter().map(|c| c % 10).collect());
        let keys = shard_keys(&online, &cache, &smt);
        let expect: Vec<_> = online
            .iter()
            .map(|c| (0, usize::from(c % 10 >= 5)))
            .collect();
        assert_eq!(keys, expect);
    }

    #[test]
    fn each_llc_is_sharded_on_its_own() {
        // Two LLCs of 12 single-thread cores each: 6+6 in both.
        let online: Vec<usize> = (0..24).collect();
        let cache = Pods::group_by(&online, online.iter().map(|c| c / 12).collect());
        let smt = Pods::singletons(&online);
        let keys = shard_keys(&online, &cache, &smt);
        let expect: Vec<_> = online.iter().map(|c| (c / 12, c % 12 / 6)).collect();
        assert_eq!(keys, expect);
    }
}
