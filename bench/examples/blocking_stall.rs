//! How long a blocking call in a green thread stalls the other threads of
//! its worker. File reads, `std::thread::sleep` and other blocking system
//! calls are not turned into parks (only `net` is); the worker's OS thread
//! blocks in the kernel, and the monitor hands the worker to another host
//! thread once it sees the stall (`runtime/host.rs`). Here one green
//! thread calls `std::thread::sleep(10 ms)` (a plain blocking system call)
//! 50 times, while a second thread on the same worker counts how long it
//! went without running; a third case runs no blocking call, for the noise.
//!
//! Run with `cargo run --release -p bench --example blocking_stall`.

use preemptive_mlthreading_rust::{RoundRobinScheduler, yield_now};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn gaps(block: Option<Duration>) -> Vec<Duration> {
    let sched = RoundRobinScheduler::new().with_workers(1);
    let done = Arc::new(AtomicBool::new(false));
    let d2 = Arc::clone(&done);
    let watcher = sched
        .spawn(move || {
            let mut gaps = Vec::new();
            let mut last = Instant::now();
            while !d2.load(Ordering::Relaxed) {
                yield_now();
                let now = Instant::now();
                gaps.push(now - last);
                last = now;
            }
            gaps
        })
        .unwrap();
    let blocker = sched
        .spawn(move || {
            for _ in 0..50 {
                match block {
                    Some(d) => std::thread::sleep(d),
                    None => preemptive_mlthreading_rust::sleep(Duration::from_millis(10)),
                }
                yield_now();
            }
        })
        .unwrap();
    blocker.join().unwrap();
    done.store(true, Ordering::Relaxed);
    let mut g = watcher.join().unwrap();
    g.sort();
    g
}

fn main() {
    for (what, block) in [
        ("std::thread::sleep(10 ms), a blocking call", Some(Duration::from_millis(10))),
        ("std::thread::sleep(30 ms), a blocking call", Some(Duration::from_millis(30))),
        ("preemptive_mlthreading_rust::sleep(10 ms), a park", None),
    ] {
        let g = gaps(block);
        let pick = |q: f64| g[((g.len() - 1) as f64 * q) as usize];
        let stalls: Vec<_> = g.iter().filter(|d| **d >= Duration::from_micros(500)).collect();
        let mut s = stalls.clone();
        s.sort();
        println!(
            "{what}: the other thread's longest gap {:?}; gaps over 0.5 ms: {} (median {:?}); all gaps p50 {:?} p99.99 {:?}",
            g.last().unwrap(),
            s.len(),
            s.get(s.len() / 2).copied().copied().unwrap_or_default(),
            pick(0.5),
            pick(0.9999),
        );
    }
}
