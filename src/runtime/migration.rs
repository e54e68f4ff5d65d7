//! Where a green thread may run once placed: the [`MigrationPolicy`] a
//! thread is spawned with. [`MigrationPolicy::WithinNode`] compares the
//! workers' NUMA nodes, which each worker takes from
//! [`runtime::numa`](super::numa) when it is made.

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
