//! Where a green thread may run once placed: the [`MigrationPolicy`] a
//! thread is spawned with. [`MigrationPolicy::WithinNode`] compares the
//! workers' NUMA nodes, which each worker takes from
//! [`runtime::numa`](super::numa) when it is made.

/// Whether the runtime may move a green thread to another worker after it
/// was placed. On a [`RoundRobinScheduler`](crate::RoundRobinScheduler),
/// moves happen when a wake-up runs a thread that outranks what runs on its
/// own worker at once on the waker's worker, instead of waiting for a
/// signal to interrupt its own (see [`sched`](crate::sched)). On a
/// [`WorkStealingScheduler`](crate::WorkStealingScheduler) they are the
/// rule: a woken thread joins its waker's worker, an idle worker takes
/// threads from a busy one, and a thread that would wait behind its own
/// priority goes to a worker running a lower one. A thread with a
/// [`cpu_affinity`](crate::ThreadBuilder::cpu_affinity) never moves, nor
/// does a `Prohibited` one, which stays on the worker it was placed on
/// (spawns of such threads are dealt to the workers in turn, never kept on
/// the spawner's worker).
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
