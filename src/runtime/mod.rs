//! Workers, their idle parking, timers, and the pool a scheduler drives.

mod block_pool;
pub(crate) mod cgroup;
mod chunks;
pub(crate) mod clock;
pub(crate) mod contention;
pub(crate) mod cpu;
pub mod cpu_cache;
pub(crate) mod futex;
#[cfg(all(test, loom))]
mod handshake_model;
pub(crate) mod host;
mod inbox;
pub(crate) mod io_hook;
pub(crate) mod latency;
pub(crate) mod locals;
pub(crate) mod migration;
pub(crate) mod monitor;
pub mod numa;
pub(crate) mod park;
pub(crate) mod pmu;
pub(crate) mod pool;
pub(crate) mod profile;
pub(crate) mod registry;
pub(crate) mod run_queue;
pub(crate) mod sampling;
pub(crate) mod sleep_hook;
pub(crate) mod steal;
#[cfg(all(test, loom))]
mod steal_model;
pub(crate) mod task;
pub(crate) mod thread_id;
mod timers;
pub(crate) mod worker;

pub use cpu::current_cpu;
