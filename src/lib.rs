//! Preemptive M:N green threads for Linux.
//!
//! Many cheap threads run over a few worker OS threads, switched in user
//! space in nanoseconds, with strict priorities, CPU affinity and a
//! std-shaped API. See the README for how this compares with OS threads,
//! tokio, `may` and Go.
//!
//! ```
//! use preemptive_mlthreading_rust::{ThreadBuilder, yield_now};
//!
//! let handles: Vec<_> = (0..4u64)
//!     .map(|i| ThreadBuilder::new().spawn(move || { yield_now(); i * i }).unwrap())
//!     .collect();
//! let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
//! assert_eq!(sum, 0 + 1 + 4 + 9);
//! ```

pub mod arch;
pub mod perf;
pub mod preempt;
mod runtime;
pub mod sched;
pub mod stack;
pub mod sync;
pub mod thread;

pub use runtime::current_cpu;
pub use sched::{RoundRobinScheduler, Scheduler};
pub use std::time::Duration;
pub use sync::{Mutex, MutexGuard};
pub use thread::{
    JoinHandle, Thread, ThreadBuilder, ThreadError, ThreadId, current, num_cpus, park, park_timeout, sleep, spawn,
    yield_now,
};
