//! What the runtime can tell about itself: [`SystemMetrics`], a snapshot
//! of every scheduler's workers, always available at no cost to the hot
//! paths (per-worker counters read on demand, one blocking switch in about
//! 128 timed).
//!
//! The guide's metric table, and where each figure comes from here:
//!
//! | guide | field | source |
//! |---|---|---|
//! | context switch time < 500 ns | [`SystemMetrics::average_context_switch_time`] | one blocking switch (park, sleep, exit) in about 128 timed, from the thread going out to the context coming in; yields are not timed: any test on their path slows them (bench/README.md, "Sampled switch timing") |
//! | CPU utilisation > 90 % | [`SystemMetrics::cpu_utilization`], [`WorkerMetrics::busy_fraction`] | time each worker's scheduling context spent waiting for work |
//! | memory | [`SystemMetrics::memory_usage`] | resident set (`/proc/self/statm`) over the cgroup v2 `memory.max`, else `MemTotal` |
//! | scheduling latency < 10 µs | [`SystemMetrics::scheduling_latency`] | one wake-up in 16 (unparks and timers) on each waking OS thread, from runnable (a timer: its deadline) to running; see `runtime/sampling.rs` for how it costs nothing where threads switch in |
//!
//! Per thread, [`ThreadMetrics`] for threads spawned with
//! [`ThreadBuilder::enable_profiling`](crate::ThreadBuilder::enable_profiling):
//! every switch of theirs is recorded, and only theirs pay for it.

mod dump;
mod health;
mod latency;
mod memory;
mod profiler;
mod system;
mod thread;

pub use dump::{
    ThreadDump, ThreadInfo, ThreadState, dump_threads_on_signal, enable_thread_dumps, signal_dumps_printed,
};
pub use health::{HealthAlert, HealthMonitor, MonitorError};
pub use latency::LatencyStats;
pub use profiler::{HardwareCounters, ThreadProfiler};
pub use system::{SystemMetrics, WorkerMetrics};
pub use thread::{SwitchReason, SwitchRecord, ThreadMetrics, ThreadMetricsError};
