//! Performance helpers from the tuning guide: the context switch's
//! configuration and measurement ([`context_switch_opt`]), prefetches and
//! the machine's caches ([`cache_aware`]), lock-free fast paths and NUMA
//! placement.
//!
//! [`fast_paths`] has an unbounded or bounded lock-free MPMC queue and
//! [`FastPaths`](fast_paths::FastPaths), single-instruction atomic helpers
//! with process-wide fast-path/slow-path statistics. [`numa`] reads the
//! machine's NUMA topology (CPU masks per node, distances), allocates
//! memory bound to a node and says which node the caller runs on.
//!
//! ```
//! use preemptive_mlthreading_rust::perf::fast_paths::{FastPaths, LockFreeQueue};
//!
//! static JOBS: LockFreeQueue<u32> = LockFreeQueue::new();
//! JOBS.fast_enqueue(7).unwrap();
//! assert_eq!(JOBS.fast_dequeue(), Some(7));
//! FastPaths::record_fast_path();
//! assert!(FastPaths::stats().fast >= 1);
//! ```

pub mod cache_aware;
pub mod context_switch_opt;
pub mod fast_paths;
pub mod memory_pools;
pub use crate::runtime::numa;
