use crate::runtime::{pmu, profile};

/// What profiled threads record beyond their switches and times: the
/// switch timeline and hardware counters. The settings are process-wide
/// and apply from the next switch of every profiled thread (spawned with
/// [`ThreadBuilder::enable_profiling(true)`](crate::ThreadBuilder::enable_profiling));
/// a `ThreadProfiler` is a handle to them, and dropping it changes
/// nothing. Threads without profiling pay nothing either way.
///
/// Hardware counts come from `perf_event_open`, one group per OS thread,
/// read at a profiled thread's switches in and out. Where the machine
/// cannot count (no PMU, as on most VMs, or `perf_event_paranoid` too
/// high), [`hardware_counters`](Self::hardware_counters) says why and the
/// rates in [`ThreadMetrics`](crate::ThreadMetrics) are NaN.
///
/// ```
/// use preemptive_mlthreading_rust::{HardwareCounters, ThreadBuilder, ThreadMetrics, ThreadProfiler};
///
/// let profiler = ThreadProfiler::new();
/// profiler.enable_context_switch_tracking();
/// profiler.enable_cache_miss_tracking();
/// let h = ThreadBuilder::new().enable_profiling(true).spawn(|| (0..1000u64).sum::<u64>()).unwrap();
/// let id = h.thread().id();
/// h.join().unwrap();
/// let m = ThreadMetrics::for_thread(id).unwrap();
/// match profiler.hardware_counters() {
///     HardwareCounters::Available => assert!(m.cache_miss_rate.is_finite() || m.hardware_stretches.0 == 0),
///     HardwareCounters::Unsupported(why) => {
///         assert!(m.cache_miss_rate.is_nan(), "{why}");
///     }
/// }
/// assert_eq!(m.recent_switches.last().map(|s| s.reason), Some(preemptive_mlthreading_rust::SwitchReason::Exit));
/// ```
#[derive(Debug, Default)]
pub struct ThreadProfiler {
    _private: (),
}

/// Whether this process can count hardware events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HardwareCounters {
    /// Cache and branch events can be counted.
    Available,
    /// They cannot, and why.
    Unsupported(String),
}

impl ThreadProfiler {
    /// A handle to the profiling settings (all off until enabled).
    pub fn new() -> Self {
        ThreadProfiler { _private: () }
    }

    /// Profiled threads keep their last 64 switches out: when, on which
    /// worker, why, and how long they had run
    /// ([`ThreadMetrics::recent_switches`](crate::ThreadMetrics::recent_switches)).
    /// Switch counts and times are recorded without it.
    pub fn enable_context_switch_tracking(&self) {
        profile::track_switches(true)
    }

    /// Profiled threads count cache references and misses
    /// ([`ThreadMetrics::cache_miss_rate`](crate::ThreadMetrics::cache_miss_rate)),
    /// where the machine can.
    pub fn enable_cache_miss_tracking(&self) {
        profile::track_cache(true)
    }

    /// Profiled threads count branches and branch misses
    /// ([`ThreadMetrics::branch_mispredict_rate`](crate::ThreadMetrics::branch_mispredict_rate)),
    /// where the machine can.
    pub fn enable_branch_prediction_tracking(&self) {
        profile::track_branches(true)
    }

    /// Turns all three off again.
    pub fn disable_all(&self) {
        profile::track_switches(false);
        profile::track_cache(false);
        profile::track_branches(false);
    }

    /// Whether hardware events can be counted here, and if not, why.
    pub fn hardware_counters(&self) -> HardwareCounters {
        match pmu::support() {
            Ok(()) => HardwareCounters::Available,
            Err(why) => HardwareCounters::Unsupported(why.clone()),
        }
    }
}
