use super::{RoundRobinScheduler, Scheduler, WorkStealingScheduler, sealed};
use crate::runtime::pool::Pool;
use std::sync::Arc;
use std::time::Duration;

/// Methods both schedulers have, passed through to whichever this is.
macro_rules! delegate {
    ($($(#[$doc:meta])* fn $name:ident() -> $ret:ty;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(&self) -> $ret {
                match self {
                    AnyScheduler::RoundRobin(s) => s.$name(),
                    AnyScheduler::WorkStealing(s) => s.$name(),
                }
            }
        )*
    };
}

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

    delegate! {
        /// Number of workers (configured, or running).
        fn workers() -> usize;
        /// The current time slice.
        fn time_slice() -> Duration;
        /// Workers currently running.
        fn running_workers() -> usize;
        /// Context switches performed so far by each worker.
        fn worker_switches() -> Vec<u64>;
        /// Asynchronous preemptions taken so far by each worker.
        fn worker_preemptions() -> Vec<u64>;
        /// Asynchronous preemptions taken by all workers.
        fn total_preemptions() -> u64;
        /// Preemptions deferred, per worker (see
        /// [`RoundRobinScheduler::worker_deferred_preemptions`]).
        fn worker_deferred_preemptions() -> Vec<u64>;
        /// Threads each worker left on their OS thread, blocked in the
        /// kernel, to go on with the others on another one.
        fn worker_hand_offs() -> Vec<u64>;
        /// Threads each worker took over from another's at a wake-up.
        fn worker_wake_migrations() -> Vec<u64>;
        /// Stops taking new threads (see [`RoundRobinScheduler::shutdown`]).
        fn shutdown() -> ();
        /// Whether `shutdown` was called.
        fn is_shut_down() -> bool;
    }

    /// Whether it steals work.
    pub fn is_work_stealing(&self) -> bool {
        matches!(self, AnyScheduler::WorkStealing(_))
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
