//! Schedulers: pools of worker OS threads with a scheduling policy, handed
//! around as cheap `Clone` handles.
//!
//! A thread spawned without naming a scheduler goes to the scheduler of the
//! green thread that spawns it, or, from a plain OS thread, to the global
//! default: round-robin, one worker per CPU the process may use
//! ([`num_cpus`](crate::num_cpus), which honours a cgroup CPU quota), with
//! the default time slice. Like `GOMAXPROCS`, the environment tunes it before
//! first use: `PMT_WORKERS` (a positive integer) and `PMT_TIME_SLICE_US`
//! (microseconds). [`set_default_scheduler`] replaces it programmatically.

mod round_robin;

pub use crate::runtime::run_queue::{AGING_PERIOD, MAX_PRIORITY};
pub use round_robin::RoundRobinScheduler;

use crate::error::ThreadError;
use crate::runtime::pool::Pool;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Default time slice: what a thread may run before it is preempted in
/// favour of another runnable thread of its level.
pub const DEFAULT_TIME_SLICE: Duration = Duration::from_millis(10);

pub(crate) mod sealed {
    use super::*;
    // `Pool` is crate-private, and so is this trait in practice: it lives
    // in a private module, only its name leaks through `Scheduler`'s bound.
    #[allow(private_interfaces)]
    pub trait Sealed {
        /// The worker pool behind the handle.
        fn pool(&self) -> &Arc<Pool>;
    }
}

/// A scheduler a thread can be spawned on (see
/// [`ThreadBuilder::scheduler`](crate::ThreadBuilder::scheduler)).
pub trait Scheduler: sealed::Sealed + Clone + Send + Sync + 'static {}

static DEFAULT: OnceLock<Result<RoundRobinScheduler, String>> = OnceLock::new();

/// The global default scheduler, created on first use.
///
/// ```
/// let s = preemptive_mlthreading_rust::sched::default_scheduler().unwrap();
/// assert!(s.workers() >= 1);
/// ```
pub fn default_scheduler() -> Result<RoundRobinScheduler, ThreadError> {
    DEFAULT.get_or_init(from_env).clone().map_err(ThreadError::Config)
}

/// Installs `scheduler` as the global default. Fails once the default has
/// been used (or set) already.
///
/// ```
/// use preemptive_mlthreading_rust::{sched, RoundRobinScheduler};
/// let mine = RoundRobinScheduler::new().with_workers(1);
/// // Whether this wins depends on whether anything used the default first.
/// let _ = sched::set_default_scheduler(mine);
/// ```
pub fn set_default_scheduler(scheduler: RoundRobinScheduler) -> Result<(), ThreadError> {
    DEFAULT.set(Ok(scheduler)).map_err(|_| {
        ThreadError::Config(
            "set_default_scheduler: the default scheduler is already in use; set it before the first spawn".into(),
        )
    })
}

fn from_env() -> Result<RoundRobinScheduler, String> {
    let mut s = RoundRobinScheduler::new();
    if let Some(n) = env_positive("PMT_WORKERS")? {
        s = s.with_workers(n as usize);
    }
    if let Some(us) = env_positive("PMT_TIME_SLICE_US")? {
        s = s.with_time_slice(Duration::from_micros(us));
    }
    Ok(s)
}

fn env_positive(var: &str) -> Result<Option<u64>, String> {
    match std::env::var(var) {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(e) => Err(format!("{var}: {e}")),
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(format!("{var}={v:?} is not a positive integer; unset it or give e.g. {var}=4")),
        },
    }
}
