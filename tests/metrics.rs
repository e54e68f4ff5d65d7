//! SystemMetrics: exact lower bounds on counts under concurrent work,
//! memory within its limit, sampled switch timing, and the guide's
//! "Benchmark Setup" block.

mod common;

use common::{join_all, scaled};
use preemptive_mlthreading_rust::{
    RoundRobinScheduler, SystemMetrics, ThreadBuilder, WorkStealingScheduler, park, yield_now,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the guide's block returns.
#[derive(Debug)]
#[allow(dead_code)]
struct BenchmarkResult {
    total_time: std::time::Duration,
    context_switches: u64,
    switches_per_second: u64,
    average_switch_time: std::time::Duration,
}

// The guide's "Benchmark Setup" block. One change: it uses `?` in a
// function returning `BenchmarkResult`, which cannot compile; here it
// returns `Result<BenchmarkResult, _>` and ends in `Ok(..)`.
#[allow(clippy::needless_borrows_for_generic_args)] // `&format!`, as the guide has it
fn benchmark_context_switches(num_threads: usize, iterations: usize) -> Result<BenchmarkResult, BoxError> {
    let start_time = Instant::now();
    let start_metrics = SystemMetrics::current();

    let handles: Vec<_> = (0..num_threads)
        .map(|i| {
            ThreadBuilder::new().name(&format!("bench_thread_{}", i)).spawn(move || {
                for _ in 0..iterations {
                    yield_now();
                }
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

    // Wait for completion
    for handle in handles {
        handle.join()?;
    }

    let elapsed = start_time.elapsed();
    let end_metrics = SystemMetrics::current();

    let context_switches = end_metrics.total_context_switches - start_metrics.total_context_switches;

    Ok(BenchmarkResult {
        total_time: elapsed,
        context_switches,
        switches_per_second: (context_switches as f64 / elapsed.as_secs_f64()) as u64,
        average_switch_time: elapsed / context_switches as u32,
    })
}

#[test]
fn guide_benchmark_setup_counts_every_yield() {
    let r = benchmark_context_switches(4, 1000).unwrap();
    println!("{r:?}");
    // Each yield of a thread with a sibling on its worker is a switch; a
    // thread alone on its worker still counts its yield as a scheduling
    // point (a switch count the monitor watches).
    assert!(r.context_switches >= 4000, "{} switches for 4 x 1000 yields", r.context_switches);
}

#[test]
fn two_threads_yielding_on_one_worker_switch_at_least_once_per_yield() {
    let sched = RoundRobinScheduler::new().with_workers(1);
    sched.spawn(|| ()).unwrap().join().unwrap();
    let before = SystemMetrics::current();
    let yields = scaled(10_000);
    join_all(
        (0..2)
            .map(|_| {
                sched
                    .spawn(move || {
                        (0..yields).for_each(|_| {
                            yield_now();
                        })
                    })
                    .unwrap()
            })
            .collect(),
    );
    let after = SystemMetrics::current();
    let ours: u64 = sched.worker_switches().iter().sum();
    assert!(ours >= 2 * yields, "the scheduler counted {ours}");
    assert!(after.total_context_switches - before.total_context_switches >= 2 * yields);
    assert!(!after.workers.is_empty() && after.workers.iter().any(|w| w.switches >= 2 * yields));
}

#[test]
fn switch_time_is_sampled_once_threads_block() {
    // Blocking switches (a channel ping-pong parks each side in turn) are
    // the ones sampled; yields are not.
    let sched = RoundRobinScheduler::new().with_workers(1);
    common::ping_pong(&sched, scaled(5_000));
    let m = SystemMetrics::current();
    println!("average switch {:?} over {} switches", m.average_context_switch_time, m.total_context_switches);
    assert!(m.average_context_switch_time > std::time::Duration::ZERO, "no switch was sampled");
}

#[test]
fn memory_usage_is_a_fraction_of_the_limit() {
    let m = SystemMetrics::current();
    assert!(m.memory_usage > 0.0 && m.memory_usage < 1.0, "{m:?}");
    assert!(m.memory_bytes > 0 && m.memory_bytes < m.memory_limit_bytes);
}

#[test]
fn parked_threads_are_live_and_a_hog_keeps_its_worker_busy() {
    let sched = WorkStealingScheduler::new().with_workers(2);
    let stop = Arc::new(AtomicBool::new(false));
    let parked: Vec<_> = (0..10)
        .map(|_| {
            let stop = Arc::clone(&stop);
            sched
                .spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        park();
                    }
                })
                .unwrap()
        })
        .collect();
    let s2 = Arc::clone(&stop);
    let hog = sched
        .spawn(move || {
            while !s2.load(Ordering::Acquire) {
                std::hint::spin_loop()
            }
        })
        .unwrap();
    // One snapshot that sees it all: the hog's worker can be between two
    // hosts (running false) for a moment at any preemption.
    common::wait_until(
        std::time::Duration::from_secs(30),
        || {
            let m = SystemMetrics::current();
            m.workers.iter().any(|w| w.work_stealing && w.running && w.busy_fraction > 0.0)
                && m.live_threads >= 11
                && m.runnable_threads >= 1
                && m.cpu_utilization > 0.0
        },
        || format!("{:?}", SystemMetrics::current()),
    );
    let m = SystemMetrics::current();
    assert!(m.live_threads >= 11, "{} live", m.live_threads);
    assert!(m.cpu_utilization <= 1.0, "{m:?}");
    stop.store(true, Ordering::Release);
    for h in &parked {
        h.thread().unpark();
    }
    join_all(parked);
    hog.join().unwrap();
}

#[test]
fn the_prometheus_text_is_well_formed_and_matches_the_snapshot() {
    let sched = RoundRobinScheduler::new().with_workers(2);
    sched.spawn(|| ()).unwrap().join().unwrap();
    let m = SystemMetrics::current();
    let text = m.to_prometheus();
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(typed.insert(name.to_owned()), "{name} typed twice");
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        let name = series.split('{').next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
            .unwrap_or(name);
        assert!(typed.contains(family), "{name} has no TYPE line before it");
        assert!(value.parse::<f64>().is_ok_and(f64::is_finite), "{line}");
        assert!(name.starts_with("pmt_") && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{name}");
    }
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
            .map(|v| v.parse::<f64>().unwrap())
    };
    assert_eq!(value("pmt_context_switches_total"), Some(m.total_context_switches as f64));
    assert_eq!(value("pmt_memory_usage_ratio"), Some(m.memory_usage));
    let workers = text.lines().filter(|l| l.starts_with("pmt_worker_switches_total{")).count();
    assert_eq!(workers, m.workers.len());
    assert_eq!(value("pmt_scheduling_latency_seconds_count"), Some(m.scheduling_latency.samples as f64));
}

// The guide's "Hardware-Assisted Switching" block as written (it builds a
// config and then initialises with the default: `config` is unused).
#[allow(unused_variables)]
#[rustfmt::skip]
fn guide_hardware_assisted_switching() {
    use preemptive_mlthreading_rust::{
        perf::context_switch_opt::{
            init_context_switch_optimization,
            OptimizationConfig,
            get_context_switch_stats
        }
    };

    // Initialize with aggressive optimization
    let config = OptimizationConfig {
        enable_timing: true,
        use_optimized_assembly: true,
        enable_stack_prefetch: true,
        minimize_register_saves: true,
        target_switch_time_ns: 300,  // 300ns target
        warmup_switches: 1000,
    };

    init_context_switch_optimization();

    // Monitor performance
    let stats = get_context_switch_stats().unwrap();
    println!("Average context switch: {}ns", stats.average_switch_time_ns);
    println!("Target met: {}", stats.meets_target);
}

#[test]
fn context_switch_optimization_measures_its_warm_up_and_judges_the_target() {
    let _one_at_a_time = OPTIMIZATION.lock().unwrap_or_else(|e| e.into_inner());
    use preemptive_mlthreading_rust::perf::context_switch_opt::{
        OptimizationConfig, get_context_switch_stats, init_context_switch_optimization_with,
    };
    guide_hardware_assisted_switching();
    let s = get_context_switch_stats().unwrap();
    assert!(s.samples >= 999 && s.average_switch_time_ns > 0, "{s:?}");
    assert_eq!(s.meets_target, s.average_switch_time_ns <= 500);
    // An unreachable target, and one nothing misses; timing off counts the
    // warm-up alone.
    init_context_switch_optimization_with(OptimizationConfig {
        target_switch_time_ns: 0,
        enable_timing: false,
        warmup_switches: 100,
        ..Default::default()
    });
    let s = get_context_switch_stats().unwrap();
    assert!(!s.meets_target && s.samples == 99 && s.p50_ns <= s.p99_ns && s.p99_ns <= s.max_ns, "{s:?}");
    init_context_switch_optimization_with(OptimizationConfig { target_switch_time_ns: u64::MAX, ..Default::default() });
    assert!(get_context_switch_stats().unwrap().meets_target);
}

#[test]
fn waits_on_the_crates_locks_are_counted_and_timed() {
    use preemptive_mlthreading_rust::sync::{Mutex, RwLock};
    let sched = RoundRobinScheduler::new().with_workers(2);
    let before = SystemMetrics::current();
    // Each holder sleeps with the lock held: the others park behind it.
    let m = Arc::new(Mutex::new(0u64));
    let hs: Vec<_> = (0..4)
        .map(|_| {
            let m = Arc::clone(&m);
            sched
                .spawn(move || {
                    for _ in 0..5 {
                        let mut g = m.lock();
                        *g += 1;
                        preemptive_mlthreading_rust::sleep(std::time::Duration::from_millis(1));
                    }
                })
                .unwrap()
        })
        .collect();
    join_all(hs);
    assert_eq!(*m.lock(), 20);
    let rw = Arc::new(RwLock::new(0u64));
    let w = rw.write();
    let r = {
        let rw = Arc::clone(&rw);
        sched.spawn(move || *rw.read()).unwrap()
    };
    std::thread::sleep(std::time::Duration::from_millis(20));
    drop(w);
    assert_eq!(r.join().unwrap(), 0);
    let after = SystemMetrics::current();
    let waits = after.lock_waits - before.lock_waits;
    let time = after.lock_wait_time - before.lock_wait_time;
    println!("{waits} lock waits, {time:?} waiting");
    // Other tests of this binary may add waits of their own, never remove.
    assert!(waits >= 2, "the mutex's waiters and the reader parked: {waits}");
    assert!(time >= std::time::Duration::from_millis(1), "{time:?}");
    let text = after.to_prometheus();
    assert!(text.contains(&format!("pmt_lock_waits_total {}", after.lock_waits)));
}

#[test]
fn stack_memory_covers_every_live_thread() {
    let sched = RoundRobinScheduler::new().with_workers(1);
    let stop = Arc::new(AtomicBool::new(false));
    let hs: Vec<_> = (0..100)
        .map(|_| {
            let stop = Arc::clone(&stop);
            sched
                .spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        park();
                    }
                })
                .unwrap()
        })
        .collect();
    // Each has run (and so has a stack) once it is parked.
    common::wait_until(
        std::time::Duration::from_secs(30),
        || SystemMetrics::current().stack_bytes >= 100 * 64 * 1024,
        || format!("{} stack bytes", SystemMetrics::current().stack_bytes),
    );
    println!("{} stack bytes with 100 parked threads", SystemMetrics::current().stack_bytes);
    stop.store(true, Ordering::Release);
    for h in &hs {
        h.thread().unpark();
    }
    join_all(hs);
}

// The guide's "Issue: High Context Switch Overhead" solutions block.
// Adaptations: its three statements are wrapped in a function (they are
// not items), `do_work_batch` is a stand-in the guide never defines, and
// the imports it leaves out come from the crate root and
// `perf::context_switch_opt`.
/// The context-switch statistics are process-wide: the tests that
/// (re)initialise them take turns.
static OPTIMIZATION: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn guide_high_context_switch_overhead() {
    let _one_at_a_time = OPTIMIZATION.lock().unwrap_or_else(|e| e.into_inner());
    use preemptive_mlthreading_rust::perf::context_switch_opt::init_context_switch_optimization;
    use preemptive_mlthreading_rust::{Duration, RoundRobinScheduler, yield_now};
    static BATCHES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    fn do_work_batch() {
        BATCHES.fetch_add(1, Ordering::Relaxed);
    }

    // 1. Reduce context switch frequency
    let scheduler = RoundRobinScheduler::new().with_time_slice(Duration::from_millis(10)); // Longer time slices

    // 2. Use cooperative scheduling where possible
    fn cooperative_worker() {
        for i in 0..1000 {
            do_work_batch();

            // Yield only at safe points
            if i % 100 == 0 {
                yield_now();
            }
        }
    }

    // 3. Enable context switch optimization
    init_context_switch_optimization();

    // What the guide leaves implicit: the worker runs on that scheduler.
    scheduler.spawn(cooperative_worker).unwrap().join().unwrap();
    assert_eq!(scheduler.time_slice(), Duration::from_millis(10));
    assert_eq!(BATCHES.load(Ordering::Relaxed), 1000);
}
