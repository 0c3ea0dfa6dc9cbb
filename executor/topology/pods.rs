//! `Pods`: one pod type (the kernel's `struct wq_pod_type`), a partition of
//! the online CPUs into pods, with the pod of each CPU.

use std::collections::BTreeMap;

/// A partition of the online CPUs into pods.
///
/// Built only by grouping CPUs by a key, so it is a partition by
/// construction: every online CPU is in exactly one pod, no pod is empty.
/// Each pod is sorted, and the pods are sorted (by their first CPU, since
/// they are disjoint), as the kernel numbers them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Pods {
    /// The CPUs of each pod.
    pods: Vec<Vec<usize>>,
    /// The pod of each online CPU, in the order of the online CPU list
    /// (`cpu_pod[i]` is the pod of `online[i]`; the kernel's `cpu_pod[]`).
    cpu_pod: Vec<usize>,
}

impl Pods {
    /// Groups the CPUs of `online` (sorted) into pods: two CPUs share a pod
    /// if their keys are equal. `keys[i]` is the key of `online[i]`; keys
    /// missing at the end of a short `keys` count as distinct (never happens
    /// with the readers, which answer for every CPU).
    pub(super) fn group_by<K: Ord>(online: &[usize], keys: Vec<K>) -> Pods {
        let mut groups: BTreeMap<K, Vec<usize>> = BTreeMap::new();
        let mut unkeyed = Vec::new();
        let mut keys = keys.into_iter();
        for (i, _) in online.iter().enumerate() {
            match keys.next() {
                Some(key) => groups.entry(key).or_default().push(i),
                None => unkeyed.push(vec![i]),
            }
        }
        Pods::from_index_groups(online, groups.into_values().chain(unkeyed).collect())
    }

    /// One pod per CPU.
    pub(super) fn singletons(online: &[usize]) -> Pods {
        Pods::group_by(online, online.to_vec())
    }

    /// One pod holding every CPU.
    pub(super) fn one(online: &[usize]) -> Pods {
        Pods::group_by(online, vec![(); online.len()])
    }

    /// Builds the pods from groups of indices into `online` that partition
    /// `0..online.len()`.
    fn from_index_groups(online: &[usize], mut groups: Vec<Vec<usize>>) -> Pods {
        // `online` is sorted, so indices sort like the CPUs they name.
        for group in &mut groups {
            group.sort_unstable();
        }
        groups.sort_unstable();
        let mut cpu_pod = vec![0; online.len()];
        for (pod, group) in groups.iter().enumerate() {
            for &i in group {
                cpu_pod[i] = pod;
            }
        }
        let pods = groups
            .into_iter()
            .map(|group| group.into_iter().map(|i| online[i]).collect())
            .collect();
        Pods { pods, cpu_pod }
    }

    /// The CPUs of each pod.
    pub(super) fn pods(&self) -> &[Vec<usize>] {
        &self.pods
    }

    /// The pod of the CPU at `index` in the online CPU list.
    pub(super) fn pod_of_index(&self, index: usize) -> Option<usize> {
        self.cpu_pod.get(index).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_by_key_sorts_pods_by_first_cpu() {
        let online = [0, 1, 2, 3, 8, 9];
        // Keys deliberately ordered unlike the CPUs.
        let pods = Pods::group_by(&online, vec!['z', 'a', 'z', 'a', 'b', 'b']);
        assert_eq!(pods.pods(), [vec![0, 2], vec![1, 3], vec![8, 9]]);
        let of: Vec<_> = (0..online.len()).map(|i| pods.pod_of_index(i)).collect();
        assert_eq!(of, [Some(0), Some(1), Some(0), Some(1), Some(2), Some(2)]);
        assert_eq!(pods.pod_of_index(6), None);
    }

    #[test]
    fn singletons_and_one() {
        let online = [0, 2, 5];
        assert_eq!(
            Pods::singletons(&online).pods(),
            [vec![0], vec![2], vec![5]]
        );
        assert_eq!(Pods::one(&online).pods(), [vec![0, 2, 5]]);
    }

    #[test]
    fn missing_keys_make_pods_of_their_own() {
        let pods = Pods::group_by(&[0, 1, 2], vec![7]);
        assert_eq!(pods.pods(), [vec![0], vec![1], vec![2]]);
    }
}
