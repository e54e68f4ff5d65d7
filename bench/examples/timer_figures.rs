//! Timers at scale: how long a million sleeping threads take to start, and
//! how late 10^5 sleepers with distinct deadlines wake at 50,000 wake-ups
//! a second. Run with
//! `cargo run --release -p bench --example timer_figures` (`-- start N` or
//! `-- lateness N SECS` for one figure).

use preemptive_mlthreading_rust::{RoundRobinScheduler, ThreadBuilder, sleep};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn cpu_times() -> (Duration, Duration) {
    // SAFETY: getrusage writes only into the struct we pass.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (tv(ru.ru_utime), tv(ru.ru_stime))
}

/// Spawns `n` threads that each sleep `hold`, and reports how long it took
/// until every one of them had run (and gone to sleep).
fn start(n: usize) {
    let sched = RoundRobinScheduler::new();
    let started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (u0, s0) = cpu_times();
    let t = Instant::now();
    let hold = Duration::from_secs(3600);
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let started = Arc::clone(&started);
            ThreadBuilder::new()
                .scheduler(sched.clone())
                .stack_size(16 * 1024)
                .spawn(move || {
                    started.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    sleep(hold);
                })
                .unwrap()
        })
        .collect();
    let spawned = t.elapsed();
    while started.load(std::sync::atomic::Ordering::Relaxed) < n {
        std::thread::sleep(Duration::from_millis(1));
    }
    let all = t.elapsed();
    let (u1, s1) = cpu_times();
    println!(
        "start {n} sleepers on {} workers: spawned in {spawned:.2?}, all asleep after {all:.2?}; CPU user {:.2?} system {:.2?}",
        sched.workers(),
        u1 - u0,
        s1 - s0
    );
    // Not joined: the process ends with them asleep.
    std::mem::forget(handles);
}

/// `n` threads each sleep until their own deadline, spread evenly over
/// `secs` seconds: lateness percentiles.
fn lateness(n: usize, secs: f64) {
    let sched = RoundRobinScheduler::new();
    let t0 = Instant::now() + Duration::from_millis(500);
    let span = Duration::from_secs_f64(secs);
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let due = t0 + span.mul_f64(i as f64 / n as f64);
            ThreadBuilder::new()
                .scheduler(sched.clone())
                .stack_size(16 * 1024)
                .spawn(move || {
                    sleep(due.saturating_duration_since(Instant::now()));
                    Instant::now().saturating_duration_since(due)
                })
                .unwrap()
        })
        .collect();
    let mut late: Vec<Duration> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    late.sort();
    let q = |p: usize| late[(late.len() * p / 100).min(late.len() - 1)];
    println!(
        "{n} sleepers, distinct deadlines over {secs} s ({:.0} wake-ups/s) on {} workers: lateness p50 {:.1?} p99 {:.1?} max {:.1?}",
        n as f64 / secs,
        sched.workers(),
        q(50),
        q(99),
        late[late.len() - 1]
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, d: f64| args.get(i).and_then(|s| s.parse::<f64>().ok()).unwrap_or(d);
    match args.first().map(String::as_str) {
        Some("start") => start(num(1, 1e6) as usize),
        Some("lateness") => lateness(num(1, 1e5) as usize, num(2, 2.0)),
        _ => {
            lateness(100_000, 2.0);
            start(1_000_000);
        }
    }
}
