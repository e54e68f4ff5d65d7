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
//!
//! # Layers
//!
//! Modules import only downward (`.ci/layers.sh` checks it):
//!
//! | layer | module | holds |
//! |---|---|---|
//! | 9 | `perf` | the tuning guide's helpers: fast paths over `sync`; `numa` (re-exported from `runtime`, whose workers and `ThreadBuilder::numa_node` use it) |
//! | 8 | `sync` | green-aware locks, channels, lock-free structures |
//! | 8 | `net` | waiting for file descriptors without blocking the worker |
//! | 7 | `thread` | the std-shaped API: `ThreadBuilder`, `JoinHandle`, `current` |
//! | 7 | `metrics` | [`SystemMetrics`], [`ThreadMetrics`]: what the runtime tells about itself |
//! | 6 | `sched` | scheduler handles and the default scheduler |
//! | 5 | `runtime` | workers, run queues, hosts, timers, the monitor |
//! | 4 | `preempt` | the signal, preempt-disable scopes, `preempt::status` |
//! | 3 | `error` | [`ThreadError`] |
//! | 2 | `stack` | mmap'd stacks, guard pages, slabs, overflow reports |
//! | 1 | `arch` | context switch and per-ISA leaf code |
//! | 1 | `cpu_set` | [`CpuSet`], sets of CPU numbers (plain data, imports nothing) |
//!
//! A lower layer that must call a higher one is handed a function pointer
//! at start-up (the signal handler, the pending-preemption switch, the
//! overflow reporter's lookup), so the call graph may point up while the
//! module graph does not. `arch` and the run queue use `core` only where
//! that costs nothing, for a later `no_std` core.

// Signals, futexes, epoll, /proc and the ELF TLS model are Linux's: say so
// once instead of a page of libc errors.
#[cfg(not(target_os = "linux"))]
compile_error!(
    "preemptive_mlthreading_rust runs on Linux only (x86_64, aarch64, riscv64): it is built on Linux signals, \
     futexes, epoll and /proc"
);

// The README's examples are compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;

pub mod arch;
pub mod cpu_set;
mod error;
pub mod metrics;
pub mod net;
pub mod perf;
pub mod preempt;
mod runtime;
pub mod sched;
pub mod stack;
pub mod sync;
pub mod thread;

pub use cpu_set::{CpuSet, CpuSetError};
pub use metrics::{
    HardwareCounters, HealthMonitor, LatencyStats, MonitorError, SwitchReason, SwitchRecord, SystemMetrics,
    ThreadMetrics, ThreadMetricsError, ThreadProfiler,
};
pub use runtime::current_cpu;
pub use runtime::migration::MigrationPolicy;
pub use sched::{RoundRobinScheduler, Scheduler, WorkStealingScheduler};
pub use std::time::Duration;
pub use sync::{Mutex, MutexGuard};
pub use thread::{
    JoinHandle, Thread, ThreadBuilder, ThreadError, ThreadId, current, num_cpus, park, park_timeout, sleep, spawn,
    yield_now,
};
