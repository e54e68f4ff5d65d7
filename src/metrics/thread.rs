use super::latency::LatencyStats;
use crate::runtime::clock;
use crate::runtime::profile::{self, SwitchOut, ThreadProfile};
use crate::runtime::thread_id::ThreadId;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// What one profiled green thread did: spawn it with
/// [`ThreadBuilder::enable_profiling(true)`](crate::ThreadBuilder::enable_profiling)
/// and read it with [`ThreadMetrics::for_thread`], while it runs or after
/// it finished.
///
/// Hardware rates are `f64::NAN` unless a [`ThreadProfiler`](crate::ThreadProfiler)
/// tracks them and the machine can count them (see
/// [`ThreadProfiler::hardware_counters`](crate::ThreadProfiler::hardware_counters)):
/// never a made-up 0.
///
/// ```
/// use preemptive_mlthreading_rust::{yield_now, ThreadBuilder, ThreadMetrics};
///
/// let h = ThreadBuilder::new()
///     .enable_profiling(true)
///     .spawn(|| (0..100).for_each(|_| { yield_now(); }))
///     .unwrap();
/// let id = h.thread().id();
/// h.join().unwrap();
/// let m = ThreadMetrics::for_thread(id).unwrap();
/// assert!(m.finished);
/// assert!(m.cpu_utilization > 0.0 && m.cpu_utilization <= 1.0);
/// ```
#[derive(Clone, Debug)]
pub struct ThreadMetrics {
    /// The thread.
    pub id: ThreadId,
    /// Times it left the CPU: yields, parks, sleeps, preemptions and its
    /// exit.
    pub context_switches: u64,
    /// Times it was switched in, its start included.
    pub switches_in: u64,
    /// Of `context_switches`: yields (a yield with nobody to yield to
    /// does not switch and is not counted).
    pub yields: u64,
    /// Of `context_switches`: parks (blocking on a lock, channel, join or
    /// `park`).
    pub parks: u64,
    /// Of `context_switches`: sleeps.
    pub sleeps: u64,
    /// Of `context_switches`: involuntary ones, by the preemption timer or
    /// a wake-up of a thread that outranked it.
    pub preemptions: u64,
    /// Time on a CPU.
    pub run_time: Duration,
    /// From spawn to its end, or to now while it lives.
    pub lifetime: Duration,
    /// `run_time` over `lifetime`, in [0, 1].
    pub cpu_utilization: f64,
    /// Its waits from runnable to running (spawned, woken, timer due,
    /// yielded, preempted).
    pub scheduling_latency: LatencyStats,
    /// Times it was switched in on a worker other than the one it last
    /// ran on.
    pub migrations: u64,
    /// The worker it runs or last ran on (its index in its scheduler).
    pub last_worker: Option<usize>,
    /// It finished (returned or panicked, or never ran and was dropped).
    pub finished: bool,
    /// Cache misses over cache references while it ran; NaN when not
    /// counted.
    pub cache_miss_rate: f64,
    /// Branch misses over branch instructions while it ran; NaN when not
    /// counted.
    pub branch_mispredict_rate: f64,
    /// The raw counts behind the rates, summed over the stretches counted:
    /// cache references, cache misses, branch instructions, branch misses.
    pub hardware_counts: Option<[u64; 4]>,
    /// Stretches on a CPU whose hardware counts are in
    /// `hardware_counts`, and stretches that could not be counted.
    pub hardware_stretches: (u64, u64),
    /// Its last switches out, oldest first, with context-switch tracking
    /// on ([`ThreadProfiler::enable_context_switch_tracking`](crate::ThreadProfiler::enable_context_switch_tracking));
    /// at most 64.
    pub recent_switches: Vec<SwitchRecord>,
}

/// Why a thread left the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwitchReason {
    /// It yielded.
    Yield,
    /// It blocked (a lock, channel, join, `park`).
    Park,
    /// It slept.
    Sleep,
    /// It finished.
    Exit,
    /// It was preempted.
    Preempted,
}

/// One switch out of a profiled thread.
#[derive(Clone, Debug, PartialEq)]
pub struct SwitchRecord {
    /// When, since the thread was spawned.
    pub at: Duration,
    /// The worker it left.
    pub worker: Option<usize>,
    /// Why.
    pub reason: SwitchReason,
    /// How long it had run since it was switched in (µs resolution, at
    /// most about 16 s).
    pub ran: Duration,
}

/// Why [`ThreadMetrics::for_thread`] has nothing to report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ThreadMetricsError {
    /// No profile is kept under this id: the thread was spawned without
    /// `enable_profiling(true)`, is not a green thread, or finished before
    /// the last 4096 profiled threads to finish.
    NotProfiled(ThreadId),
}

impl std::fmt::Display for ThreadMetricsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ThreadMetricsError::NotProfiled(id) => write!(
                f,
                "no metrics for thread {}: it was not spawned with ThreadBuilder::enable_profiling(true), or it \
                 finished before the last {} profiled threads did",
                id.as_u64(),
                profile::KEPT_FINISHED
            ),
        }
    }
}

impl std::error::Error for ThreadMetricsError {}

impl ThreadMetrics {
    /// The metrics of profiled thread `id`, now.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::{spawn, ThreadMetrics};
    ///
    /// let h = spawn(|| ()).unwrap(); // not profiled
    /// let err = ThreadMetrics::for_thread(h.thread().id()).unwrap_err();
    /// assert!(err.to_string().contains("enable_profiling"));
    /// h.join().unwrap();
    /// ```
    pub fn for_thread(id: ThreadId) -> Result<ThreadMetrics, ThreadMetricsError> {
        let p = profile::find(id).ok_or(ThreadMetricsError::NotProfiled(id))?;
        Ok(Self::of(id, &p))
    }

    /// Metrics of every profiled thread that has not finished.
    pub fn live() -> Vec<ThreadMetrics> {
        profile::live().iter().filter_map(|p| ThreadId::from_u64(p.id()).map(|id| Self::of(id, p))).collect()
    }

    fn of(id: ThreadId, p: &ThreadProfile) -> ThreadMetrics {
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let out = |w: SwitchOut| load(&p.out[w as usize]);
        let finished_ns = load(&p.finished_ns);
        let end = if finished_ns != 0 { finished_ns } else { clock::now_ns() };
        let lifetime_ns = end.saturating_sub(p.spawned_ns);
        let run_ns = p.run_ns_now();
        let (counted, missed) = (load(&p.hw_counted), load(&p.hw_missed));
        let hw = (counted > 0).then(|| std::array::from_fn(|i| load(&p.hw[i])));
        let ratio = |num: usize, den: usize| match hw {
            Some(c) if c[den] > 0 => c[num] as f64 / c[den] as f64,
            _ => f64::NAN,
        };
        let recent_switches = p
            .events()
            .into_iter()
            .map(|e| SwitchRecord {
                at: Duration::from_nanos(e.at_ns.saturating_sub(p.spawned_ns)),
                worker: e.worker,
                reason: match e.why {
                    SwitchOut::Yield => SwitchReason::Yield,
                    SwitchOut::Park => SwitchReason::Park,
                    SwitchOut::Sleep => SwitchReason::Sleep,
                    SwitchOut::Exit => SwitchReason::Exit,
                    SwitchOut::Preempted => SwitchReason::Preempted,
                },
                ran: Duration::from_micros(e.ran_us),
            })
            .collect();
        ThreadMetrics {
            id,
            context_switches: SwitchOut::ALL.iter().map(|&w| out(w)).sum(),
            switches_in: load(&p.switches_in),
            yields: out(SwitchOut::Yield),
            parks: out(SwitchOut::Park),
            sleeps: out(SwitchOut::Sleep),
            preemptions: out(SwitchOut::Preempted),
            run_time: Duration::from_nanos(run_ns),
            lifetime: Duration::from_nanos(lifetime_ns),
            cpu_utilization: if lifetime_ns == 0 { 0.0 } else { (run_ns as f64 / lifetime_ns as f64).clamp(0.0, 1.0) },
            scheduling_latency: LatencyStats::from_snapshot(&p.latency.snapshot()),
            migrations: load(&p.migrations),
            last_worker: (load(&p.last_worker) as usize).checked_sub(1),
            finished: finished_ns != 0,
            cache_miss_rate: ratio(1, 0),
            branch_mispredict_rate: ratio(3, 2),
            hardware_counts: hw,
            hardware_stretches: (counted, missed),
            recent_switches,
        }
    }
}
