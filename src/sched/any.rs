use super::{RoundRobinScheduler, Scheduler, WorkStealingScheduler, sealed};
use crate::runtime::pool::Pool;
use std::sync::Arc;
use std::time::Duration;

/// Either kind of scheduler: what the global default is
/// ([`default_scheduler`](super::default_scheduler)), and a way to keep
/// one chosen at run time.
///
/// ```
/// use preemptive_mlthreading_rust::sched::AnyScheduler;
/// use preemptive_mlthreading_rust::{ThreadBuilder, WorkStealingScheduler};
///
/// let s: AnyScheduler = WorkStealingScheduler::new().with_workers(2).into();
/// assert_eq!(s.workers(), 2);
/// let h = ThreadBuilder::new().scheduler(s).spawn(|| 1 + 1).unwrap();
/// assert_eq!(h.join().unwrap(), 2);
/// ```
#[derive(Clone, Debug)]
pub enum AnyScheduler {
    /// A [`RoundRobinScheduler`].
    RoundRobin(RoundRobinScheduler),
    /// A [`WorkStealingScheduler`].
    WorkStealing(WorkStealingScheduler),
}

impl AnyScheduler {
    /// Sets the number of workers (see
    /// [`RoundRobinScheduler::with_workers`]).
    pub fn with_workers(self, workers: usize) -> Self {
        match self {
            AnyScheduler::RoundRobin(s) => s.with_workers(workers).into(),
            AnyScheduler::WorkStealing(s) => s.with_workers(workers).into(),
        }
    }

    /// Sets the time slice (see [`RoundRobinScheduler::with_time_slice`]).
    pub fn with_time_slice(self, slice: Duration) -> Self {
        match self {
            AnyScheduler::RoundRobin(s) => s.with_time_slice(slice).into(),
            AnyScheduler::WorkStealing(s) => s.with_time_slice(slice).into(),
        }
    }

    /// Number of workers (configured, or running).
    pub fn workers(&self) -> usize {
        match self {
            AnyScheduler::RoundRobin(s) => s.workers(),
            AnyScheduler::WorkStealing(s) => s.workers(),
        }
    }

    /// The current time slice.
    pub fn time_slice(&self) -> Duration {
        match self {
            AnyScheduler::RoundRobin(s) => s.time_slice(),
            AnyScheduler::WorkStealing(s) => s.time_slice(),
        }
    }

    /// Workers currently running.
    pub fn running_workers(&self) -> usize {
        match self {
            AnyScheduler::RoundRobin(s) => s.running_workers(),
            AnyScheduler::WorkStealing(s) => s.running_workers(),
        }
    }

    /// Whether it steals work.
    pub fn is_work_stealing(&self) -> bool {
        matches!(self, AnyScheduler::WorkStealing(_))
    }

    /// Context switches performed so far by each worker.
    pub fn worker_switches(&self) -> Vec<u64> {
        match self {
            AnyScheduler::RoundRobin(s) => s.worker_switches(),
            AnyScheduler::WorkStealing(s) => s.worker_switches(),
        }
    }

    /// Asynchronous preemptions taken by all workers.
    pub fn total_preemptions(&self) -> u64 {
        match self {
            AnyScheduler::RoundRobin(s) => s.total_preemptions(),
            AnyScheduler::WorkStealing(s) => s.total_preemptions(),
        }
    }

    /// Stops taking new threads (see [`RoundRobinScheduler::shutdown`]).
    pub fn shutdown(&self) {
        match self {
            AnyScheduler::RoundRobin(s) => s.shutdown(),
            AnyScheduler::WorkStealing(s) => s.shutdown(),
        }
    }
}

impl From<RoundRobinScheduler> for AnyScheduler {
    fn from(s: RoundRobinScheduler) -> Self {
        AnyScheduler::RoundRobin(s)
    }
}

impl From<WorkStealingScheduler> for AnyScheduler {
    fn from(s: WorkStealingScheduler) -> Self {
        AnyScheduler::WorkStealing(s)
    }
}

impl sealed::Sealed for AnyScheduler {
    #[allow(private_interfaces)]
    fn pool(&self) -> &Arc<Pool> {
        match self {
            AnyScheduler::RoundRobin(s) => s.pool(),
            AnyScheduler::WorkStealing(s) => s.pool(),
        }
    }
}

impl Scheduler for AnyScheduler {}
