//! The std-shaped thread API: [`ThreadBuilder`], [`JoinHandle`], [`Thread`],
//! and the free functions every thread (green or OS) may call.

mod builder;
mod error;
mod functions;
mod handle;
mod join;
mod local;
mod panic_note;

pub use crate::sched::MAX_PRIORITY;
pub use builder::{DEFAULT_PRIORITY, ThreadBuilder, spawn};
pub use error::{Panic, ThreadError};
pub use functions::{num_cpus, park, park_timeout, sleep, yield_now};
pub use handle::{Thread, ThreadId, current};
pub use join::JoinHandle;
pub use local::GreenLocal;
