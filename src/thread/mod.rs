//! The std-shaped thread API: [`ThreadBuilder`], [`JoinHandle`], [`Thread`],
//! and the free functions every thread (green or OS) may call.

pub(crate) mod builder;
mod functions;
mod handle;
mod join;
mod local;
mod panic_note;
mod scope;
#[cfg(test)]
mod stall_rescue_tests;

pub use crate::error::{Panic, ThreadError};
pub use crate::runtime::cpu::num_cpus;
pub use crate::runtime::run_queue::MAX_PRIORITY;
pub use crate::runtime::thread_id::ThreadId;
pub use builder::{DEFAULT_PRIORITY, ThreadBuilder, spawn};
pub use functions::{park, park_timeout, sleep, yield_now};
pub use handle::{Thread, current};
pub use join::JoinHandle;
pub use local::GreenLocal;
pub use scope::{Scope, ScopedJoinHandle, scope};
