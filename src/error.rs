use crate::cpu_set::CpuSet;
use crate::stack::StackError;
use std::any::Any;
use std::fmt;
use std::io;
use std::sync::Mutex;

/// Everything that can go wrong spawning or joining a green thread.
///
/// It is `Send + Sync + 'static`, so `?` converts it into
/// `Box<dyn Error + Send + Sync>`. An OS error behind it is its
/// [`source`](std::error::Error::source), not part of its message, so
/// that chain printers (anyhow, eyre) show each cause once.
///
/// ```
/// use preemptive_mlthreading_rust::{ThreadBuilder, ThreadError};
///
/// let err = ThreadBuilder::new().priority(21).spawn(|| ()).unwrap_err();
/// assert!(matches!(err, ThreadError::InvalidPriority { requested: 21, max: 20 }));
/// println!("{err}"); // says the valid range
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ThreadError {
    /// The thread panicked; `join` returns the message and the payload.
    Panicked(Panic),
    /// `stack_size` was 0 or larger than the machine can back.
    InvalidStackSize {
        /// What the builder asked for.
        requested: usize,
        /// The largest size accepted here.
        max: usize,
    },
    /// `priority` was above [`MAX_PRIORITY`](crate::thread::MAX_PRIORITY).
    InvalidPriority {
        /// What the builder asked for.
        requested: u8,
        /// The highest priority there is.
        max: u8,
    },
    /// No worker of the scheduler is pinned to a CPU in the mask.
    InvalidAffinity {
        /// The mask the builder asked for.
        mask: u64,
        /// CPUs the scheduler's workers are pinned to.
        worker_cpus: u64,
    },
    /// The [`CpuSet`] given to
    /// [`ThreadBuilder::cpu_set`](crate::ThreadBuilder::cpu_set) is empty,
    /// or names no CPU a worker of the scheduler is pinned to: none this
    /// process may run on at all, or only some the scheduler has no
    /// worker on. (A `u64` mask from `cpu_affinity` reports
    /// [`InvalidAffinity`](Self::InvalidAffinity) instead.) The sets are
    /// boxed to keep the error small.
    InvalidCpuSet {
        /// The set the builder asked for.
        requested: Box<CpuSet>,
        /// CPUs the scheduler's workers are pinned to.
        worker_cpus: Box<CpuSet>,
        /// CPUs this process may run on (its affinity mask).
        process_cpus: Box<CpuSet>,
    },
    /// The scheduler was shut down; it takes no new threads.
    SchedulerStopped,
    /// The thread's stack could not be mapped when it first ran.
    Stack(StackError),
    /// A scheduler setting (e.g. from `PMT_WORKERS`) is unusable.
    Config(String),
    /// The OS refused to start a worker thread.
    Os(io::Error),
    /// A thread called `join` on its own handle, which would wait forever.
    /// The handle is consumed and the thread runs on (detached).
    JoinSelf,
}

impl fmt::Display for ThreadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThreadError::Panicked(p) => write!(f, "green thread panicked: {}", p.message()),
            ThreadError::InvalidStackSize { requested: 0, .. } => {
                write!(f, "stack_size(0): a green thread needs a stack; omit stack_size for the 64 KiB default")
            }
            ThreadError::InvalidStackSize { requested, max } => write!(
                f,
                "stack_size({requested}) is more than this machine can back ({max} bytes: the smaller \
                 of physical memory and `ulimit -v`); ask for less"
            ),
            ThreadError::InvalidPriority { requested, max } => {
                write!(f, "priority({requested}) is out of range: priorities are 0 (lowest) to {max} (highest)")
            }
            ThreadError::InvalidAffinity { mask, worker_cpus } => write!(
                f,
                "cpu_affinity({mask:#x}) names no CPU this scheduler's workers run on (their CPUs: \
                 {worker_cpus:#x}); include one of them, or give the scheduler more workers"
            ),
            ThreadError::InvalidCpuSet { requested, worker_cpus, .. } if requested.is_empty() => write!(
                f,
                "cpu_set was given an empty CpuSet, which names no CPU to run on; name one of the CPUs \
                 this scheduler's workers run on ({worker_cpus}), or leave cpu_set out to run anywhere"
            ),
            ThreadError::InvalidCpuSet { requested, worker_cpus, process_cpus }
                if !requested.intersects(process_cpus) =>
            {
                write!(
                    f,
                    "cpu_set({requested}) names no CPU this process may run on (it may run on \
                     {process_cpus}); name one of the CPUs this scheduler's workers run on ({worker_cpus})"
                )
            }
            ThreadError::InvalidCpuSet { requested, worker_cpus, .. } => write!(
                f,
                "cpu_set({requested}) names no CPU this scheduler's workers run on (their CPUs: \
                 {worker_cpus}); include one of them, or give the scheduler more workers"
            ),
            ThreadError::SchedulerStopped => {
                write!(f, "the scheduler was shut down and accepts no new threads; spawn on another scheduler")
            }
            // Transparent: the stack error's message, and its source as ours.
            ThreadError::Stack(e) => e.fmt(f),
            ThreadError::Config(msg) => f.write_str(msg),
            // The OS's reason is the source, not repeated here (an error
            // chain printer such as anyhow's would show it twice).
            ThreadError::Os(_) => f.write_str("cannot start a scheduler worker thread"),
            ThreadError::JoinSelf => write!(
                f,
                "a thread joins itself, which would wait forever; join it from another thread, or \
                 pass its result on another way (a channel, or its return value to whoever joins it)"
            ),
        }
    }
}

impl std::error::Error for ThreadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ThreadError::Stack(e) => e.source(),
            ThreadError::Os(e) => Some(e),
            _ => None,
        }
    }
}

impl From<StackError> for ThreadError {
    fn from(e: StackError) -> Self {
        ThreadError::Stack(e)
    }
}

/// A caught panic: its message and its payload.
///
/// The payload sits behind a mutex so that the error stays `Sync` (a panic
/// payload is only `Send`).
///
/// ```
/// use preemptive_mlthreading_rust::{spawn, ThreadError};
///
/// std::panic::set_hook(Box::new(|_| {})); // keep the doc-test output quiet
/// let h = spawn(|| std::panic::panic_any(7u32)).unwrap();
/// let Err(ThreadError::Panicked(p)) = h.join() else { unreachable!() };
/// assert_eq!(p.take_payload().unwrap().downcast_ref::<u32>(), Some(&7));
/// ```
pub struct Panic {
    message: String,
    payload: Mutex<Option<Box<dyn Any + Send + 'static>>>,
}

impl Panic {
    pub(crate) fn new(payload: Box<dyn Any + Send + 'static>) -> Self {
        let message = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "Box<dyn Any>".to_owned()
        };
        Panic { message, payload: Mutex::new(Some(payload)) }
    }

    /// The panic message, when the payload was a string.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Takes the payload, e.g. to pass it to `std::panic::resume_unwind`.
    /// Returns `None` if it was already taken.
    pub fn take_payload(&self) -> Option<Box<dyn Any + Send + 'static>> {
        // A plain lock: its section is one `take`, and a thread preempted
        // inside keeps its OS thread, so a second taker only waits.
        self.payload.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl fmt::Debug for Panic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Panic").field("message", &self.message).finish_non_exhaustive()
    }
}
