//! Settings of a work-stealing pool, and the order in which a worker asks
//! the others for work: nearest first.
//!
//! Distance, from near to far: a worker on a CPU sharing this worker's
//! last-level cache (with cache optimization on), one on the same NUMA node
//! (with NUMA awareness on), any other. Within a class, the workers after
//! this one come first, wrapping around, so that two idle workers do not
//! both ask the same victim first.

use super::numa::NumaTopology;
use std::path::Path;

/// A work-stealing pool's settings, fixed when its workers start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StealConfig {
    /// Most threads handed over for one request.
    pub(crate) batch: usize,
    /// Threads a worker's own queue takes before new ones go to the pool's
    /// shared queue (a power of two).
    pub(crate) local_queue: usize,
    pub(crate) numa_aware: bool,
    pub(crate) cache_aware: bool,
}

impl Default for StealConfig {
    fn default() -> Self {
        StealConfig { batch: 32, local_queue: 256, numa_aware: true, cache_aware: true }
    }
}

/// How far a victim is from a thief, for the order of asking.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Distance {
    SharedCache,
    SameNode,
    Far,
}

/// The other workers, nearest first, for worker `me` of workers pinned to
/// `cpus`. `llc` gives the CPUs that share a CPU's last-level cache.
pub(crate) fn victim_order(
    me: usize,
    cpus: &[Option<usize>],
    config: &StealConfig,
    topology: &NumaTopology,
    llc: impl Fn(usize) -> Option<Vec<usize>>,
) -> Box<[usize]> {
    let n = cpus.len();
    let my_cache = cpus[me].filter(|_| config.cache_aware).and_then(&llc);
    let node = |cpu: Option<usize>| cpu.and_then(|c| topology.node_of_cpu(c));
    let distance = |other: usize| {
        let cpu = cpus[other];
        if my_cache.as_ref().is_some_and(|shared| cpu.is_some_and(|c| shared.contains(&c))) {
            Distance::SharedCache
        } else if config.numa_aware && node(cpu) == node(cpus[me]) {
            Distance::SameNode
        } else {
            Distance::Far
        }
    };
    let mut order: Vec<usize> = (1..n).map(|k| (me + k) % n).collect();
    // A stable sort keeps the rotation within each class.
    order.sort_by_key(|&v| distance(v));
    order.into_boxed_slice()
}

/// The CPUs sharing `cpu`'s last-level cache, from sysfs under `root`
/// (`/sys/devices/system/cpu` on a live system); None where sysfs does
/// not say.
pub(crate) fn last_level_cache(root: &Path, cpu: usize) -> Option<Vec<usize>> {
    super::cpu_cache::caches_under(root, cpu).into_iter().max_by_key(|c| c.level).map(|c| c.shared_cpus)
}

/// [`last_level_cache`] of this machine.
pub(crate) fn live_last_level_cache(cpu: usize) -> Option<Vec<usize>> {
    last_level_cache(Path::new(super::cpu_cache::SYSFS_CPU), cpu)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_nodes() -> NumaTopology {
        NumaTopology::from_sysfs(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/numa/two_socket")))
            .expect("fixture")
    }

    #[test]
    fn nearest_victims_first_rotating_within_a_class() {
        let topo = two_nodes();
        let cpus: Vec<Option<usize>> = topo.nodes().flat_map(|n| n.cpus().iter().take(2).copied().map(Some)).collect();
        assert_eq!(cpus.len(), 4, "two CPUs of each node");
        let (n0a, n0b) = (cpus[0].unwrap(), cpus[1].unwrap());
        // Workers 0 and 1 share a cache; 2 and 3 are on the other node.
        let llc = |c: usize| (c == n0a || c == n0b).then(|| vec![n0a, n0b]);
        let all = StealConfig::default();
        assert_eq!(&*victim_order(0, &cpus, &all, &topo, llc), [1, 2, 3]);
        assert_eq!(&*victim_order(2, &cpus, &all, &topo, llc), [3, 0, 1]);
        assert_eq!(&*victim_order(3, &cpus, &all, &topo, llc), [2, 0, 1]);
        let blind = StealConfig { numa_aware: false, cache_aware: false, ..all };
        assert_eq!(&*victim_order(3, &cpus, &blind, &topo, llc), [0, 1, 2], "plain rotation");
        let numa_only = StealConfig { cache_aware: false, ..all };
        assert_eq!(&*victim_order(1, &cpus, &numa_only, &topo, |_| None), [0, 2, 3]);
    }

    #[test]
    fn unpinned_workers_and_one_worker() {
        let topo = two_nodes();
        let all = StealConfig::default();
        assert_eq!(&*victim_order(1, &[None, None, None], &all, &topo, |_| None), [2, 0]);
        assert!(victim_order(0, &[Some(0)], &all, &topo, |_| None).is_empty());
    }

    #[test]
    fn this_machine_names_a_last_level_cache_holding_the_cpu_or_nothing() {
        for cpu in crate::runtime::cpu::allowed_cpus() {
            if let Some(shared) = live_last_level_cache(cpu) {
                assert!(shared.contains(&cpu), "cpu {cpu}: {shared:?}");
            }
        }
        assert!(last_level_cache(Path::new("/nonexistent"), 0).is_none());
    }
}
