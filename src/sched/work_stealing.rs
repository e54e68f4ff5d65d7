use super::handle::Handle;
use super::{DEFAULT_TIME_SLICE, Scheduler, sealed};
use crate::runtime::pool::{Pool, PoolConfig};
use crate::runtime::steal::StealConfig;
use crate::runtime::worker::Worker;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Work-stealing scheduling over a pool of worker OS threads: a worker
/// that runs out of threads takes a batch from a busy one, nearest first.
///
/// Each worker runs its own queue by strict priority, round-robin within a
/// level, with the aging bound of [`sched`](crate::sched), as in a
/// [`RoundRobinScheduler`](crate::RoundRobinScheduler). What differs:
/// - **Spawns stay local.** A thread spawned by a green thread of this
///   scheduler joins its spawner's worker (from a plain OS thread, the
///   workers take turns); a worker whose queue holds
///   [`local_queue_size`](Self::with_local_queue_size) threads sends new
///   ones to a shared queue that every worker takes from.
/// - **Wake-ups come to the waker.** A thread woken by a green thread of
///   this scheduler runs next on the waker's worker (the *wake slot*, like
///   Go's `runnext`): a ping-pong or a ring of threads stays on one core
///   and its cache, where two workers would each wait for the other. From
///   another worker it comes only when the waker's queue is empty (behind
///   a queue it would wait anyway), and only with preemption on (without,
///   nothing would hand it back to an idle worker while its waker ran on). At most three wake-ups in a row take
///   the slot, so two threads bouncing a message cannot starve the others.
/// - **Idle workers steal.** A worker with nothing to run asks the nearest
///   worker that has threads waiting ([`with_cache_optimization`]:
///   one sharing its last-level cache first; [`with_numa_awareness`]: one
///   on its NUMA node next), which hands over up to
///   [`steal_batch_size`](Self::with_steal_batch_size) threads, and at
///   most half of its own, highest priority first. At most half the
///   workers spin looking for work; the rest sleep on a futex and cost no
///   CPU. A spinning worker whose victim keeps running one thread for
///   10 µs has it answer at once, by a signal. A busy worker whose queue
///   is empty asks too, at each preemption tick, so CPU-bound threads
///   spread out. What can move: threads that have not run yet, and
///   threads that last left the CPU at a cooperative point (a yield, a
///   park, a lock). A thread preempted by the signal waits on its own OS
///   thread (see [`preempt`](crate::preempt)) and runs on its worker next
///   time; it may move after its next cooperative switch.
///
/// Threads that may not move stay put: those with a CPU affinity, those
/// spawned with [`MigrationPolicy::Prohibited`](crate::MigrationPolicy),
/// and [`WithinNode`](crate::MigrationPolicy::WithinNode) ones beyond
/// their node.
///
/// **Priorities across workers.** A worker steals the highest priority it
/// is offered first. A runnable thread waits while another worker runs a
/// lower priority for at most about one time slice of that worker (its
/// next preemption tick, where it asks) plus a quarter of the victim's
/// slice (the monitor's next look, where the victim answers), plus
/// however long the victim spends inside a preempt-disable scope.
///
/// [`with_cache_optimization`]: Self::with_cache_optimization
/// [`with_numa_awareness`]: Self::with_numa_awareness
///
/// ```
/// use preemptive_mlthreading_rust::{ThreadBuilder, WorkStealingScheduler};
///
/// let sched = WorkStealingScheduler::new()
///     .with_workers(2)
///     .with_steal_batch_size(4)
///     .with_local_queue_size(256);
/// let parent = sched.clone();
/// let sum = sched
///     .spawn(move || {
///         // Spawned here, the children queue on this worker; the other
///         // worker asks for and takes half of them.
///         let children: Vec<_> = (0..8u64).map(|i| parent.spawn(move || i * i).unwrap()).collect();
///         children.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
///     })
///     .unwrap()
///     .join()
///     .unwrap();
/// assert_eq!(sum, 140);
/// ```
#[derive(Clone)]
pub struct WorkStealingScheduler {
    handle: Arc<Handle>,
}

impl Default for WorkStealingScheduler {
    fn default() -> Self {
        Self::new()
    }
}

impl WorkStealingScheduler {
    /// One worker per CPU this process may use
    /// ([`num_cpus`](crate::num_cpus)), [`DEFAULT_TIME_SLICE`], batches
    /// of up to 32 threads, local queues of 256, NUMA and cache awareness
    /// on.
    pub fn new() -> Self {
        let config = PoolConfig {
            workers: crate::runtime::cpu::num_cpus(),
            name: "pmt-steal".into(),
            steal: Some(StealConfig::default()),
        };
        WorkStealingScheduler { handle: Handle::new(Pool::new(config, DEFAULT_TIME_SLICE)) }
    }

    fn steal(&self) -> StealConfig {
        self.handle.pool.config().steal.unwrap_or_default()
    }

    fn set_steal(&self, what: fmt::Arguments<'_>, f: impl FnOnce(&mut StealConfig)) {
        self.handle.before_start(what, |c| f(c.steal.get_or_insert_with(StealConfig::default)));
    }

    /// Whether an idle worker asks workers on its own NUMA node before
    /// those on others (default on). With one node, as here on most
    /// machines, nothing changes. Takes effect only before the first spawn.
    pub fn with_numa_awareness(self, on: bool) -> Self {
        self.set_steal(format_args!("with_numa_awareness({on})"), |s| s.numa_aware = on);
        self
    }

    /// Whether an idle worker asks workers sharing its last-level cache
    /// (read from sysfs) first (default on): the threads it takes find
    /// their data nearer. Takes effect only before the first spawn.
    pub fn with_cache_optimization(self, on: bool) -> Self {
        self.set_steal(format_args!("with_cache_optimization({on})"), |s| s.cache_aware = on);
        self
    }

    /// The most threads a worker hands over for one request (default 32;
    /// never more than half of its waiting threads). Takes effect only
    /// before the first spawn; 0 makes spawn fail with
    /// [`ThreadError::Config`](crate::ThreadError::Config).
    pub fn with_steal_batch_size(self, n: usize) -> Self {
        self.set_steal(format_args!("with_steal_batch_size({n})"), |s| s.batch = n);
        self
    }

    /// How many threads a worker's queue takes from spawns on it before
    /// further spawns go to the shared queue (default 256), rounded up to
    /// a power of two. Takes effect only before the first spawn; 0 makes
    /// spawn fail with [`ThreadError::Config`](crate::ThreadError::Config).
    pub fn with_local_queue_size(self, n: usize) -> Self {
        let size = if n == 0 { 0 } else { n.checked_next_power_of_two().unwrap_or(1 << (usize::BITS - 1)) };
        self.set_steal(format_args!("with_local_queue_size({n})"), |s| s.local_queue = size);
        self
    }

    /// Sets the number of worker OS threads. Takes effect only before the
    /// first spawn (logged as a warning otherwise); 0 makes spawn fail with
    /// [`ThreadError::Config`](crate::ThreadError::Config).
    pub fn with_workers(self, workers: usize) -> Self {
        self.handle.before_start(format_args!("with_workers({workers})"), |c| c.workers = workers);
        self
    }

    /// Sets the time slice (see
    /// [`RoundRobinScheduler::with_time_slice`](crate::RoundRobinScheduler::with_time_slice)).
    pub fn with_time_slice(self, slice: Duration) -> Self {
        self.handle.pool.set_time_slice(slice);
        self
    }

    /// Turns timer preemption on (the default) or off. Off, threads switch
    /// only at cooperative points, and a busy worker answers steal
    /// requests only at those.
    pub fn with_preemption(self, on: bool) -> Self {
        self.handle.pool.set_preemptive(on);
        self
    }

    /// Names the worker OS threads `{name}-{index}` (default `pmt-steal`).
    /// Takes effect only before the first spawn.
    pub fn with_name(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.handle.before_start(format_args!("with_name({name:?})"), |c| c.name = name.clone());
        self
    }

    /// Number of workers (configured, or running).
    pub fn workers(&self) -> usize {
        self.handle.pool.config().workers
    }

    /// Workers currently running (0 before the first spawn and after the
    /// scheduler stopped).
    pub fn running_workers(&self) -> usize {
        self.handle.pool.running_workers()
    }

    /// The current time slice.
    pub fn time_slice(&self) -> Duration {
        self.handle.pool.time_slice()
    }

    /// The batch size (see [`with_steal_batch_size`](Self::with_steal_batch_size)).
    pub fn steal_batch_size(&self) -> usize {
        self.steal().batch
    }

    /// The local queue size, a power of two (see
    /// [`with_local_queue_size`](Self::with_local_queue_size)).
    ///
    /// ```
    /// use preemptive_mlthreading_rust::WorkStealingScheduler;
    /// assert_eq!(WorkStealingScheduler::new().with_local_queue_size(100).local_queue_size(), 128);
    /// ```
    pub fn local_queue_size(&self) -> usize {
        self.steal().local_queue
    }

    /// Whether NUMA awareness is on.
    pub fn numa_awareness(&self) -> bool {
        self.steal().numa_aware
    }

    /// Whether cache optimization is on.
    pub fn cache_optimization(&self) -> bool {
        self.steal().cache_aware
    }

    /// Threads each worker received from other workers' queues.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::WorkStealingScheduler;
    /// let sched = WorkStealingScheduler::new().with_workers(2);
    /// sched.spawn(|| ()).unwrap().join().unwrap();
    /// assert_eq!(sched.worker_steals().len(), 2);
    /// ```
    pub fn worker_steals(&self) -> Vec<u64> {
        self.handle.per_worker(Worker::stolen)
    }

    /// Threads received from other workers' queues, over all workers.
    pub fn total_steals(&self) -> u64 {
        self.worker_steals().iter().sum()
    }

    /// Threads the overflow queue holds now (spawned beyond a full local
    /// queue, not yet taken by a worker).
    pub fn overflow_len(&self) -> usize {
        self.handle.pool.overflow.len()
    }

    /// Threads each worker took over at a wake-up from another worker's
    /// queue: woken by one of its threads, they run next to their waker.
    pub fn worker_wake_migrations(&self) -> Vec<u64> {
        self.handle.per_worker(Worker::wake_migrations)
    }

    /// Asynchronous preemptions taken so far by each worker.
    pub fn worker_preemptions(&self) -> Vec<u64> {
        self.handle.per_worker(Worker::preemptions)
    }

    /// Asynchronous preemptions taken by all workers.
    pub fn total_preemptions(&self) -> u64 {
        self.worker_preemptions().iter().sum()
    }

    /// Preemptions deferred, per worker (see
    /// [`RoundRobinScheduler::worker_deferred_preemptions`](crate::RoundRobinScheduler::worker_deferred_preemptions)).
    pub fn worker_deferred_preemptions(&self) -> Vec<u64> {
        self.handle.per_worker(Worker::deferred_preemptions)
    }

    /// Threads each worker left on their OS thread, blocked in the kernel,
    /// to go on with the others on another one.
    pub fn worker_hand_offs(&self) -> Vec<u64> {
        self.handle.per_worker(Worker::hand_offs)
    }

    /// Context switches performed so far by each worker.
    pub fn worker_switches(&self) -> Vec<u64> {
        self.handle.per_worker(Worker::switches)
    }

    /// Stops taking new threads: later spawns fail with
    /// [`ThreadError::SchedulerStopped`](crate::ThreadError::SchedulerStopped).
    /// Threads already spawned run to completion, then the workers exit.
    pub fn shutdown(&self) {
        self.handle.pool.shutdown()
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    pub fn is_shut_down(&self) -> bool {
        self.handle.pool.is_closed()
    }
}

impl sealed::Sealed for WorkStealingScheduler {
    #[allow(private_interfaces)]
    fn pool(&self) -> &Arc<Pool> {
        &self.handle.pool
    }
}

impl Scheduler for WorkStealingScheduler {}

impl fmt::Debug for WorkStealingScheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.steal();
        f.debug_struct("WorkStealingScheduler")
            .field("workers", &self.workers())
            .field("time_slice", &self.time_slice())
            .field("steal_batch_size", &s.batch)
            .field("local_queue_size", &s.local_queue)
            .field("numa_awareness", &s.numa_aware)
            .field("cache_optimization", &s.cache_aware)
            .field("shut_down", &self.is_shut_down())
            .finish()
    }
}
