//! Schedulers: pools of worker OS threads with a scheduling policy, handed
//! around as cheap `Clone` handles.
//!
//! A thread spawned without naming a scheduler goes to the scheduler of the
//! green thread that spawns it, or, from a plain OS thread, to the global
//! default: work stealing, one worker per CPU the process may use
//! ([`num_cpus`](crate::num_cpus), which honours a cgroup CPU quota), with
//! the default time slice. Like `GOMAXPROCS`, the environment tunes it before
//! first use: `PMT_WORKERS` (a positive integer), `PMT_TIME_SLICE_US`
//! (microseconds) and `PMT_SCHEDULER` (`work-stealing` or `round-robin`).
//! [`set_default_scheduler`] replaces it programmatically.
//!
//! Two schedulers: [`RoundRobinScheduler`] keeps each thread on the worker
//! it was placed on (spawns dealt in turn), and [`WorkStealingScheduler`]
//! keeps spawned and woken threads near the thread that made them and lets
//! idle workers take work from busy ones. Work stealing is the default
//! because it wins or ties every scenario of the bench across workers and
//! matches round-robin on one (`bench/README.md`, "Work stealing").

mod any;
mod handle;
mod round_robin;
mod work_stealing;

pub use crate::runtime::run_queue::{AGING_PERIOD, MAX_PRIORITY};
pub use any::AnyScheduler;
pub use round_robin::RoundRobinScheduler;
pub use work_stealing::WorkStealingScheduler;

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

static DEFAULT: OnceLock<Result<AnyScheduler, String>> = OnceLock::new();

/// The global default scheduler, created on first use.
///
/// ```
/// let s = preemptive_mlthreading_rust::sched::default_scheduler().unwrap();
/// assert!(s.workers() >= 1);
/// ```
pub fn default_scheduler() -> Result<AnyScheduler, ThreadError> {
    DEFAULT.get_or_init(from_env).clone().map_err(ThreadError::Config)
}

/// Installs `scheduler` as the global default. Fails once the default has
/// been used (or set) already.
///
/// ```
/// use preemptive_mlthreading_rust::{sched, WorkStealingScheduler};
/// let mine = WorkStealingScheduler::new().with_workers(2);
/// // Whether this wins depends on whether anything used the default first.
/// let _ = sched::set_default_scheduler(mine);
/// ```
pub fn set_default_scheduler(scheduler: impl Into<AnyScheduler>) -> Result<(), ThreadError> {
    DEFAULT.set(Ok(scheduler.into())).map_err(|_| {
        ThreadError::Config(
            "set_default_scheduler: the default scheduler is already in use; set it before the first spawn".into(),
        )
    })
}

fn from_env() -> Result<AnyScheduler, String> {
    let workers = env_positive("PMT_WORKERS")?;
    let slice = env_positive("PMT_TIME_SLICE_US")?.map(Duration::from_micros);
    let kind = match std::env::var("PMT_SCHEDULER") {
        Err(std::env::VarError::NotPresent) => String::from("work-stealing"),
        Err(e) => return Err(format!("PMT_SCHEDULER: {e}")),
        Ok(v) => v.trim().to_ascii_lowercase(),
    };
    let mut s: AnyScheduler = match kind.as_str() {
        "round-robin" => RoundRobinScheduler::new().into(),
        "work-stealing" => WorkStealingScheduler::new().into(),
        other => {
            return Err(format!(
                "PMT_SCHEDULER={other:?} names no scheduler; unset it or give work-stealing or round-robin"
            ));
        }
    };
    if let Some(n) = workers {
        s = s.with_workers(n as usize);
    }
    if let Some(d) = slice {
        s = s.with_time_slice(d);
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
