use super::handle::Handle;
use super::{DEFAULT_TIME_SLICE, Scheduler, sealed};
use crate::runtime::pool::{Pool, PoolConfig};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Round-robin scheduling over a pool of worker OS threads.
///
/// New threads are dealt to the workers in turn (among those their CPU
/// affinity allows); each worker runs its threads by strict priority,
/// round-robin within a level (see [`sched`](crate::sched) for the
/// starvation bound). A woken thread returns to the worker it last ran on,
/// except that one without CPU affinity that outranks both its waker (a
/// green thread of this scheduler) and what runs on its own worker runs at
/// once on the waker's worker instead, and stays there
/// ([`worker_wake_migrations`](Self::worker_wake_migrations) counts them).
///
/// The handle is cheap to clone. Workers start on the first spawn, are
/// pinned one per CPU (wrapping around when there are more workers than
/// CPUs), sleep on a futex when idle, and stop once every handle is dropped
/// (or [`shutdown`](Self::shutdown) is called) and every thread finished.
///
/// ```
/// use preemptive_mlthreading_rust::{Duration, RoundRobinScheduler, ThreadBuilder};
///
/// let sched = RoundRobinScheduler::new()
///     .with_workers(2)
///     .with_time_slice(Duration::from_millis(1));
/// let h = ThreadBuilder::new().scheduler(sched.clone()).spawn(|| 6 * 7).unwrap();
/// assert_eq!(h.join().unwrap(), 42);
/// ```
#[derive(Clone)]
pub struct RoundRobinScheduler {
    handle: Arc<Handle>,
}

impl Default for RoundRobinScheduler {
    fn default() -> Self {
        Self::new()
    }
}

impl RoundRobinScheduler {
    /// One worker per CPU this process may use
    /// ([`num_cpus`](crate::num_cpus): its affinity mask, capped by its
    /// cgroup CPU quota), [`DEFAULT_TIME_SLICE`].
    pub fn new() -> Self {
        let config = PoolConfig { workers: crate::runtime::cpu::num_cpus(), name: "pmt-worker".into(), steal: None };
        RoundRobinScheduler { handle: Handle::new(Pool::new(config, DEFAULT_TIME_SLICE)) }
    }

    /// Sets the number of worker OS threads. Takes effect only before the
    /// first spawn (logged as a warning otherwise); 0 makes spawn fail with
    /// [`ThreadError::Config`](crate::ThreadError::Config).
    pub fn with_workers(self, workers: usize) -> Self {
        self.handle.before_start(format_args!("with_workers({workers})"), |c| c.workers = workers);
        self
    }

    /// Sets the time slice: how long a thread may run while another thread
    /// of its priority waits on the same worker before it is preempted.
    /// Can be changed at any time; 0 makes spawn fail with
    /// [`ThreadError::Config`](crate::ThreadError::Config). A slice beyond `u64::MAX` nanoseconds (584
    /// years, e.g. `Duration::MAX`) is clamped to it: threads are then, in
    /// effect, never preempted for running long, only for a thread of
    /// higher priority or a due sleeper.
    pub fn with_time_slice(self, slice: Duration) -> Self {
        self.handle.pool.set_time_slice(slice);
        self
    }

    /// Turns timer preemption on (the default) or off. Off, threads switch
    /// only at cooperative points (yield, park, sleep, join, exit), as in
    /// `may` or tokio. Can be changed at any time.
    pub fn with_preemption(self, on: bool) -> Self {
        self.handle.pool.set_preemptive(on);
        self
    }

    /// Asynchronous preemptions taken so far by each worker.
    pub fn worker_preemptions(&self) -> Vec<u64> {
        self.handle.per_worker(|w| w.preemptions())
    }

    /// Asynchronous preemptions taken by all of this scheduler's workers.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::RoundRobinScheduler;
    /// let sched = RoundRobinScheduler::new().with_workers(1);
    /// sched.spawn(|| ()).unwrap().join().unwrap();
    /// assert!(sched.total_preemptions() >= sched.worker_preemptions().iter().sum::<u64>());
    /// ```
    pub fn total_preemptions(&self) -> u64 {
        self.handle.pool.workers().iter().map(|w| w.preemptions()).sum()
    }

    /// Preemptions deferred, per worker: the signal found the thread in a
    /// preempt-disable scope (the runtime's own, or
    /// [`preempt::disable`](crate::preempt::disable)), or no OS thread was
    /// free to take the worker over. A deferred preemption is taken when
    /// the scope ends, or at the monitor's next try.
    pub fn worker_deferred_preemptions(&self) -> Vec<u64> {
        self.handle.per_worker(|w| w.deferred_preemptions())
    }

    /// How many times each worker, its thread stuck in the OS (a blocking
    /// syscall, a contended `std::sync::Mutex`), left that thread on its OS
    /// thread and went on with the others on another one.
    pub fn worker_hand_offs(&self) -> Vec<u64> {
        self.handle.per_worker(|w| w.hand_offs())
    }

    /// How many threads each worker took over from another worker's queue
    /// at a wake-up: a thread without CPU affinity, woken by a thread of
    /// lower priority while its own worker also runs a lower priority, runs
    /// at once on the waker's worker instead of waiting for a signal to
    /// interrupt its own.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::RoundRobinScheduler;
    ///
    /// let sched = RoundRobinScheduler::new().with_workers(2);
    /// sched.spawn(|| ()).unwrap().join().unwrap();
    /// assert_eq!(sched.worker_wake_migrations(), vec![0, 0]);
    /// ```
    pub fn worker_wake_migrations(&self) -> Vec<u64> {
        self.handle.per_worker(|w| w.wake_migrations())
    }

    /// Names the worker OS threads `{name}-{index}` (default `pmt-worker`),
    /// as shown by `top -H` and debuggers. Takes effect only before the
    /// first spawn.
    pub fn with_name(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.handle.before_start(format_args!("with_name({name:?})"), |c| c.name = name.clone());
        self
    }

    /// Workers currently running (0 before the first spawn and after the
    /// scheduler stopped).
    pub fn running_workers(&self) -> usize {
        self.handle.pool.running_workers()
    }

    /// Number of workers (configured, or running).
    pub fn workers(&self) -> usize {
        self.handle.pool.config().workers
    }

    /// The current time slice.
    pub fn time_slice(&self) -> Duration {
        self.handle.pool.time_slice()
    }

    /// Context switches performed so far by each worker (empty before the
    /// workers start).
    pub fn worker_switches(&self) -> Vec<u64> {
        self.handle.per_worker(|w| w.switches())
    }

    /// Stops taking new threads: later spawns fail with
    /// [`ThreadError::SchedulerStopped`](crate::ThreadError::SchedulerStopped). Threads already spawned run to
    /// completion, then the workers exit.
    pub fn shutdown(&self) {
        self.handle.pool.shutdown()
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    pub fn is_shut_down(&self) -> bool {
        self.handle.pool.is_closed()
    }
}

impl sealed::Sealed for RoundRobinScheduler {
    #[allow(private_interfaces)]
    fn pool(&self) -> &Arc<Pool> {
        &self.handle.pool
    }
}

impl Scheduler for RoundRobinScheduler {}

impl fmt::Debug for RoundRobinScheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoundRobinScheduler")
            .field("workers", &self.workers())
            .field("time_slice", &self.time_slice())
            .field("shut_down", &self.is_shut_down())
            .finish()
    }
}
