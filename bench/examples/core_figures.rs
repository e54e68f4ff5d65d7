//! The runtime core's headline figures, measured on one worker: yield
//! between two threads, spawn+join of 10^5 threads, and the memory a parked
//! thread costs. Run with
//! `cargo run --release -p bench --example core_figures`. (The side-by-side
//! comparison with OS threads, may, tokio and Go is the `bench` binary.)

use preemptive_mlthreading_rust::{RoundRobinScheduler, ThreadBuilder, park, spawn, yield_now};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const RUNS: usize = 7;

fn main() {
    let sched = RoundRobinScheduler::new().with_workers(1);
    // `core_figures spawn` (or `yield`, `yield-fp-env`, `rss`) runs one
    // figure only, for profiling.
    let only = std::env::args().nth(1).unwrap_or_default();
    if only == "spawn" {
        return report(
            "spawn+join of 10^5 threads on one worker",
            "ns/thread",
            (0..RUNS).map(|_| spawn_join(&sched, 100_000)),
        );
    }
    if only == "yield-count" {
        // For instruction counting: `valgrind --tool=callgrind` at two
        // values of N, difference / (2 * ΔN) = instructions per yield.
        let n = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
        yield_pair(&sched, n);
        return;
    }
    if only == "spawn-count" {
        // Instruction counting as for yield-count; preemption off, since
        // valgrind cannot follow a signal handler that switches stacks.
        let n = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
        spawn_join(&sched.clone().with_preemption(false), n);
        return;
    }
    if only == "yield" {
        return report("yield, 2 threads on one worker", "ns/yield", (0..RUNS).map(|_| yield_pair(&sched, 2_000_000)));
    }
    if only == "rss" {
        return rss(&sched);
    }
    if only == "yield-fp-env" {
        return report(
            "yield, 2 threads, preserve_fp_env(true)",
            "ns/yield",
            (0..RUNS).map(|_| yield_pair_fp_env(&sched, 2_000_000)),
        );
    }
    report("yield, 2 threads on one worker", "ns/yield", (0..RUNS).map(|_| yield_pair(&sched, 2_000_000)));
    report(
        "yield, 2 threads, preserve_fp_env(true)",
        "ns/yield",
        (0..RUNS).map(|_| yield_pair_fp_env(&sched, 2_000_000)),
    );
    report("spawn+join of 10^5 threads on one worker", "ns/thread", (0..RUNS).map(|_| spawn_join(&sched, 100_000)));
    rss(&sched);
}

fn rss(sched: &RoundRobinScheduler) {
    let (per_thread, n) = rss_per_parked_thread(sched, 100_000);
    println!("{:<44} {per_thread:>9.0} bytes ({n} parked threads, 64 KiB stacks)", "RSS per parked thread");
}

fn report(what: &str, unit: &str, samples: impl Iterator<Item = f64>) {
    let mut v: Vec<f64> = samples.collect();
    v.sort_by(f64::total_cmp);
    println!(
        "{what:<44} median {:>8.1} {unit}  (min {:.1}, max {:.1}, {} runs)",
        v[v.len() / 2],
        v[0],
        v[v.len() - 1],
        v.len()
    );
}

fn yield_pair(sched: &RoundRobinScheduler, n: u64) -> f64 {
    yield_pair_with(sched, n, false)
}

/// Threads that keep their own FP control state across switches.
fn yield_pair_fp_env(sched: &RoundRobinScheduler, n: u64) -> f64 {
    yield_pair_with(sched, n, true)
}

fn yield_pair_with(sched: &RoundRobinScheduler, n: u64, fp_env: bool) -> f64 {
    let elapsed = sched
        .spawn(move || {
            let mk = || {
                ThreadBuilder::new()
                    .preserve_fp_env(fp_env)
                    .spawn(move || {
                        for _ in 0..n {
                            yield_now();
                        }
                    })
                    .unwrap()
            };
            let (a, b) = (mk(), mk());
            let t = Instant::now();
            a.join().unwrap();
            b.join().unwrap();
            t.elapsed()
        })
        .unwrap()
        .join()
        .unwrap();
    elapsed.as_nanos() as f64 / (2 * n) as f64
}

fn spawn_join(sched: &RoundRobinScheduler, n: u64) -> f64 {
    let elapsed = sched
        .spawn(move || {
            let t = Instant::now();
            let handles: Vec<_> = (0..n).map(|i| spawn(move || i).unwrap()).collect();
            let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
            assert_eq!(sum, n * (n - 1) / 2);
            t.elapsed()
        })
        .unwrap()
        .join()
        .unwrap();
    elapsed.as_nanos() as f64 / n as f64
}

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn rss_per_parked_thread(sched: &RoundRobinScheduler, n: usize) -> (f64, usize) {
    let max_maps: usize =
        std::fs::read_to_string("/proc/sys/vm/max_map_count").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(65530);
    // Each stack with an mprotect guard page takes two memory maps; guard
    // regions (Linux 6.13+) take none of their own.
    let n = if preemptive_mlthreading_rust::stack::guard_regions_supported() { n } else { n.min(max_maps / 2 - 1000) };
    let parked = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(AtomicUsize::new(0));
    let before = rss_bytes();
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let (p, r) = (Arc::clone(&parked), Arc::clone(&release));
            ThreadBuilder::new()
                .scheduler(sched.clone())
                .spawn(move || {
                    p.fetch_add(1, Ordering::Release);
                    while r.load(Ordering::Acquire) == 0 {
                        park();
                    }
                })
                .unwrap()
        })
        .collect();
    while parked.load(Ordering::Acquire) < n {
        std::thread::sleep(Duration::from_millis(5));
    }
    let after = rss_bytes();
    release.store(1, Ordering::Release);
    for h in &handles {
        h.thread().unpark();
    }
    for h in handles {
        h.join().unwrap();
    }
    ((after - before) as f64 / n as f64, n)
}
