//! Where a green thread may run once placed: the [`MigrationPolicy`] a
//! thread is spawned with, and the NUMA node of each worker that
//! [`MigrationPolicy::WithinNode`] compares.

use std::path::Path;

/// Whether the runtime may move a green thread to another worker after it
/// was placed. Moves happen when a wake-up runs a thread that outranks
/// what runs on its own worker at once on the waker's worker, instead of
/// waiting for a signal to interrupt its own (see
/// [`sched`](crate::sched)); a thread with a
/// [`cpu_affinity`](crate::ThreadBuilder::cpu_affinity) never moves.
///
/// ```
/// use preemptive_mlthreading_rust::{MigrationPolicy, ThreadBuilder};
///
/// let h = ThreadBuilder::new()
///     .migration_policy(MigrationPolicy::Prohibited)
///     .spawn(|| preemptive_mlthreading_rust::current_cpu())
///     .unwrap();
/// assert!(h.join().is_ok());
/// assert_eq!(MigrationPolicy::default(), MigrationPolicy::Allowed);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MigrationPolicy {
    /// Any worker of its scheduler (the default).
    #[default]
    Allowed,
    /// Only workers pinned to CPUs of the NUMA node of the worker it runs
    /// on: its memory stays near it. On a machine with one node, as
    /// `Allowed`.
    WithinNode,
    /// Never leaves the worker it was placed on.
    Prohibited,
}

/// The NUMA node of `cpu`: the `nodeN` entry the kernel puts in
/// `<root>/devices/system/cpu/cpuM/` (root is normally `/sys`); node 0 when
/// there is none (a kernel without NUMA, or a container without sysfs).
pub(crate) fn node_of_cpu(root: &Path, cpu: usize) -> usize {
    let dir = root.join(format!("devices/system/cpu/cpu{cpu}"));
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries.filter_map(Result::ok).find_map(|e| e.file_name().to_str()?.strip_prefix("node")?.parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cpus_node_is_its_node_entry_in_sysfs() {
        let root = std::env::temp_dir().join(format!("pmt-node-of-cpu-{}", std::process::id()));
        for (cpu, entries) in [(0, &["node0", "topology"][..]), (5, &["cache", "node3"]), (6, &["cache"])] {
            for e in entries {
                std::fs::create_dir_all(root.join(format!("devices/system/cpu/cpu{cpu}/{e}"))).unwrap();
            }
        }
        assert_eq!(node_of_cpu(&root, 0), 0);
        assert_eq!(node_of_cpu(&root, 5), 3);
        assert_eq!(node_of_cpu(&root, 6), 0, "no node entry: node 0");
        assert_eq!(node_of_cpu(&root, 7), 0, "no such CPU: node 0");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn this_machines_cpus_have_a_node() {
        // Every CPU answers; on a one-node machine, 0.
        for cpu in crate::runtime::cpu::allowed_cpus() {
            let node = node_of_cpu(Path::new("/sys"), cpu);
            assert!(node < 1024, "CPU {cpu} on node {node}");
        }
    }
}
