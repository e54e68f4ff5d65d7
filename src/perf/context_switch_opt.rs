//! The guide's "Hardware-Assisted Switching": a configuration of the
//! context switch, a measurement of it, and whether it meets a target.
//!
//! What each [`OptimizationConfig`] field does here:
//!
//! | field | effect |
//! |---|---|
//! | `enable_timing` | the statistics also take in the live samples of real blocking switches ([`SystemMetrics::average_context_switch_time`](crate::SystemMetrics::average_context_switch_time)), beside the warm-up's |
//! | `use_optimized_assembly` | none: the switch is always the hand-written routine of its ISA (`arch`), which saves only callee-saved registers |
//! | `enable_stack_prefetch` | every [`ThreadBuilder`](crate::ThreadBuilder) made from then on prefetches the thread's saved context before switching to it ([`enable_stack_prefetch`](crate::ThreadBuilder::enable_stack_prefetch)), unless told otherwise |
//! | `minimize_register_saves` | none: the switch already saves only callee-saved registers; whether a thread's FP registers are saved is per thread ([`enable_fpu`](crate::ThreadBuilder::enable_fpu)), as skipping them is only safe for threads that keep no FP value across a switch |
//! | `target_switch_time_ns` | the bar for [`ContextSwitchStats::meets_target`] |
//! | `warmup_switches` | the switches timed at initialisation: park/unpark hand-overs between two threads on a worker of its own |
//!
//! ```
//! use preemptive_mlthreading_rust::perf::context_switch_opt::{
//!     get_context_switch_stats, init_context_switch_optimization_with, OptimizationConfig,
//! };
//!
//! init_context_switch_optimization_with(OptimizationConfig { warmup_switches: 200, ..Default::default() });
//! let stats = get_context_switch_stats().unwrap();
//! assert!(stats.samples >= 199 && stats.average_switch_time_ns > 0); // the first turn has no hand-over to time
//! assert!(stats.p50_ns <= stats.p99_ns && stats.p99_ns <= stats.max_ns);
//! ```

use crate::metrics::SystemMetrics;
use crate::{RoundRobinScheduler, park};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// How to set up and judge the context switch (see the module docs for
/// what each field does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptimizationConfig {
    /// Take live switch samples into the statistics.
    pub enable_timing: bool,
    /// Maps to the fixed behaviour (the ISA's hand-written switch).
    pub use_optimized_assembly: bool,
    /// Prefetch every new thread's saved context before switching to it.
    pub enable_stack_prefetch: bool,
    /// Maps to the fixed behaviour (callee-saved registers only).
    pub minimize_register_saves: bool,
    /// The target for the average switch, in ns.
    pub target_switch_time_ns: u64,
    /// Switches timed at initialisation.
    pub warmup_switches: usize,
}

impl Default for OptimizationConfig {
    /// Timing on, prefetch off, a 500 ns target (the guide's table), 1000
    /// warm-up switches.
    fn default() -> Self {
        OptimizationConfig {
            enable_timing: true,
            use_optimized_assembly: true,
            enable_stack_prefetch: false,
            minimize_register_saves: true,
            target_switch_time_ns: 500,
            warmup_switches: 1000,
        }
    }
}

/// The switch measured (see [`get_context_switch_stats`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextSwitchStats {
    /// Mean switch time, ns.
    pub average_switch_time_ns: u64,
    /// Whether the mean is at or below the target.
    pub meets_target: bool,
    /// The target it was judged against, ns.
    pub target_switch_time_ns: u64,
    /// Median, 99th percentile and longest of the warm-up's switches, ns.
    pub p50_ns: u64,
    /// See `p50_ns`.
    pub p99_ns: u64,
    /// See `p50_ns`.
    pub max_ns: u64,
    /// Switches timed: the warm-up's, plus the live samples with timing on.
    pub samples: u64,
}

struct State {
    config: OptimizationConfig,
    /// The warm-up's switch times, sorted, ns.
    warmup: Vec<u64>,
    /// SystemMetrics' sample count and sum at initialisation, so that only
    /// later samples count.
    live_base: (u64, u64),
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

/// Sets up with [`OptimizationConfig::default`], timing the warm-up.
pub fn init_context_switch_optimization() {
    init_context_switch_optimization_with(OptimizationConfig::default());
}

/// Sets up with `config`: applies what it changes (stack prefetch) and
/// times `warmup_switches` switches. Calling it again starts over.
pub fn init_context_switch_optimization_with(config: OptimizationConfig) {
    crate::thread::builder::set_default_stack_prefetch(config.enable_stack_prefetch);
    let warmup = time_switches(config.warmup_switches.max(1));
    let live_base = live_samples();
    *STATE.lock().unwrap_or_else(PoisonError::into_inner) = Some(State { config, warmup, live_base });
}

/// The statistics since initialisation; None before it.
pub fn get_context_switch_stats() -> Option<ContextSwitchStats> {
    let g = STATE.lock().unwrap_or_else(PoisonError::into_inner);
    let s = g.as_ref()?;
    let n = s.warmup.len() as u64;
    let mut sum: u64 = s.warmup.iter().sum();
    let mut samples = n;
    if s.config.enable_timing {
        let (count, total) = live_samples();
        samples += count.saturating_sub(s.live_base.0);
        sum += total.saturating_sub(s.live_base.1);
    }
    let average = sum.checked_div(samples).unwrap_or(0);
    let at =
        |q: f64| s.warmup.get(((n as f64 * q) as usize).min(s.warmup.len().saturating_sub(1))).copied().unwrap_or(0);
    Some(ContextSwitchStats {
        average_switch_time_ns: average,
        meets_target: average <= s.config.target_switch_time_ns,
        target_switch_time_ns: s.config.target_switch_time_ns,
        p50_ns: at(0.5),
        p99_ns: at(0.99),
        max_ns: s.warmup.last().copied().unwrap_or(0),
        samples,
    })
}

/// The live sampled switches so far: count and sum of their ns.
fn live_samples() -> (u64, u64) {
    let m = SystemMetrics::current();
    (m.switch_samples, m.switch_samples_ns)
}

/// Times `n` blocking switches on a worker of its own: two threads hand a
/// turn to each other with park/unpark, each noting how long after the
/// other's unpark it ran. Returns them sorted, in ns.
fn time_switches(n: usize) -> Vec<u64> {
    let sched = RoundRobinScheduler::new().with_workers(1).with_name("pmt-warmup");
    let origin = Instant::now();
    let now = move || origin.elapsed().as_nanos() as u64;
    let handed = Arc::new(AtomicU64::new(0));
    let turn = Arc::new(AtomicU64::new(0));
    let samples = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let side = |me: u64, other: Arc<Mutex<Option<crate::Thread>>>| {
        let (handed, turn, samples) = (Arc::clone(&handed), Arc::clone(&turn), Arc::clone(&samples));
        move || {
            for round in 0..n as u64 {
                if round % 2 != me {
                    continue;
                }
                while turn.load(Ordering::Acquire) != round {
                    park();
                }
                let at = handed.load(Ordering::Acquire);
                if at != 0 {
                    samples.lock().unwrap_or_else(PoisonError::into_inner).push(now().saturating_sub(at));
                }
                handed.store(now(), Ordering::Release);
                turn.store(round + 1, Ordering::Release);
                if let Some(t) = other.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
                    t.unpark();
                }
            }
        }
    };
    let (slot_a, slot_b) = (Arc::new(Mutex::new(None)), Arc::new(Mutex::new(None)));
    let (a, b) = match (sched.spawn(side(0, Arc::clone(&slot_b))), sched.spawn(side(1, Arc::clone(&slot_a)))) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return Vec::new(),
    };
    *slot_a.lock().unwrap_or_else(PoisonError::into_inner) = Some(a.thread().clone());
    *slot_b.lock().unwrap_or_else(PoisonError::into_inner) = Some(b.thread().clone());
    a.thread().unpark();
    b.thread().unpark();
    let _ = (a.join(), b.join());
    let mut v = std::mem::take(&mut *samples.lock().unwrap_or_else(PoisonError::into_inner));
    v.sort_unstable();
    v
}
