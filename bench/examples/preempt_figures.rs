//! Timer preemption figures, each on one worker:
//! - wake-up lateness of a 1 ms sleeper among 2 CPU hogs that never yield,
//!   at 1 ms and 100 µs slices (p50/p99/max), and the hogs' fairness;
//! - priority wake-up latency: a priority-20 thread unparked from another
//!   OS thread while priority-5 hogs run (p50/p99);
//! - throughput cost of preemption: 2 hogs' total work with preemption at
//!   1 ms and 100 µs slices versus preemption off;
//! - cost of one preemption (ns), from the throughput loss and the count;
//! - the aging bound in time: how long a priority-0 thread waits behind a
//!   priority-20 hog that never yields, at 10 ms and 1 ms slices.
//!
//! Run with `cargo run --release -p bench --example preempt_figures`
//! (`-- aging` for the last figure only).

use preemptive_mlthreading_rust::{Duration, RoundRobinScheduler, ThreadBuilder, park, sleep};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

fn main() {
    let aging = || {
        for slice in [Duration::from_millis(10), Duration::from_millis(1)] {
            let waited = low_priority_wait(slice);
            println!("priority-0 thread behind a priority-20 hog, {slice:>7?} slices: first ran after {waited:.2?}");
        }
    };
    if std::env::args().nth(1).as_deref() == Some("aging") {
        return aging();
    }
    aging();
    for slice in [Duration::from_millis(1), Duration::from_micros(100)] {
        let (p50, p99, max, fairness) = sleeper_lateness(slice, 2000);
        println!(
            "1 ms sleeper among 2 hogs, {slice:>7?} slices: lateness p50 {p50:>8?} p99 {p99:>8?} max {max:>8?}; hogs' share {fairness:.3}"
        );
    }
    let (p50, p99, max) = priority_wakeup(1000);
    println!("priority-20 wake-up from another OS thread over 2 priority-5 hogs: p50 {p50:?} p99 {p99:?} max {max:?}");
    // Interleaved rounds, medians: the machine's noise is larger than the effect.
    let window = Duration::from_secs(1);
    let configs = [None, Some(Duration::from_millis(1)), Some(Duration::from_micros(100))];
    let mut work: Vec<Vec<f64>> = vec![Vec::new(); 3];
    let mut preemptions = [0u64; 3];
    for _ in 0..5 {
        for (k, slice) in configs.iter().enumerate() {
            let (w, p) = hog_throughput(*slice, window);
            work[k].push(w as f64 / window.as_secs_f64());
            preemptions[k] += p;
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let off = median(&mut work[0]);
    println!("2 hogs, preemption off: {:.3} G turns/s (median of 5)", off / 1e9);
    for k in 1..3 {
        let on = median(&mut work[k]);
        let per_second = preemptions[k] as f64 / 5.0 / window.as_secs_f64();
        let loss = 1.0 - on / off;
        println!(
            "2 hogs, {:>7?} slices: {:.3} G turns/s ({:+.2} % vs off), {per_second:.0} preemptions/s, ≈ {:.0} ns per preemption",
            configs[k].unwrap(),
            on / 1e9,
            -loss * 100.0,
            loss * 1e9 / per_second
        );
    }
}

fn hog(
    sched: &RoundRobinScheduler,
    prio: u8,
    stop: &Arc<AtomicBool>,
    count: &Arc<AtomicU64>,
) -> preemptive_mlthreading_rust::JoinHandle<()> {
    let (stop, count) = (Arc::clone(stop), Arc::clone(count));
    ThreadBuilder::new()
        .priority(prio)
        .scheduler(sched.clone())
        .spawn(move || {
            let mut local = 0u64;
            while !stop.load(Ordering::Relaxed) {
                local += 1;
                if local.is_multiple_of(1024) {
                    count.fetch_add(1024, Ordering::Relaxed);
                }
            }
        })
        .unwrap()
}

fn sleeper_lateness(slice: Duration, n: usize) -> (Duration, Duration, Duration, f64) {
    let sched = RoundRobinScheduler::new().with_workers(1).with_time_slice(slice);
    let stop = Arc::new(AtomicBool::new(false));
    let counts = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
    let hogs: Vec<_> = counts.iter().map(|c| hog(&sched, 10, &stop, c)).collect();
    let mut late = sched
        .spawn(move || {
            (0..n)
                .map(|_| {
                    let t = Instant::now();
                    sleep(Duration::from_millis(1));
                    t.elapsed() - Duration::from_millis(1)
                })
                .collect::<Vec<_>>()
        })
        .unwrap()
        .join()
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    hogs.into_iter().for_each(|h| h.join().unwrap());
    late.sort();
    let (a, b) = (counts[0].load(Ordering::Relaxed) as f64, counts[1].load(Ordering::Relaxed) as f64);
    (late[n / 2], late[n * 99 / 100], late[n - 1], a.min(b) / a.max(b))
}

fn priority_wakeup(n: usize) -> (Duration, Duration, Duration) {
    let sched = RoundRobinScheduler::new().with_workers(1).with_time_slice(Duration::from_millis(10));
    let stop = Arc::new(AtomicBool::new(false));
    let counts = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
    let hogs: Vec<_> = counts.iter().map(|c| hog(&sched, 5, &stop, c)).collect();
    let woke_at = Arc::new(AtomicU64::new(0));
    let go = Arc::new(AtomicU64::new(0));
    let origin = Instant::now();
    let (w, g) = (Arc::clone(&woke_at), Arc::clone(&go));
    let high = ThreadBuilder::new()
        .priority(20)
        .scheduler(sched.clone())
        .spawn(move || {
            for i in 1..=n as u64 {
                while g.load(Ordering::Acquire) != i {
                    park();
                }
                w.store(origin.elapsed().as_nanos() as u64, Ordering::Release);
            }
        })
        .unwrap();
    let mut lat = Vec::with_capacity(n);
    for i in 1..=n as u64 {
        std::thread::sleep(Duration::from_micros(500));
        let sent = origin.elapsed().as_nanos() as u64;
        go.store(i, Ordering::Release);
        high.thread().unpark();
        loop {
            let t = woke_at.load(Ordering::Acquire);
            if t > sent {
                lat.push(Duration::from_nanos(t - sent));
                break;
            }
            std::hint::spin_loop();
        }
    }
    high.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    hogs.into_iter().for_each(|h| h.join().unwrap());
    lat.sort();
    (lat[n / 2], lat[n * 99 / 100], lat[n - 1])
}

fn hog_throughput(slice: Option<Duration>, window: Duration) -> (u64, u64) {
    let sched = RoundRobinScheduler::new()
        .with_workers(1)
        .with_time_slice(slice.unwrap_or(Duration::from_millis(10)))
        .with_preemption(slice.is_some());
    let stop = Arc::new(AtomicBool::new(false));
    let counts = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
    let hogs: Vec<_> = counts.iter().map(|c| hog(&sched, 10, &stop, c)).collect();
    std::thread::sleep(window);
    stop.store(true, Ordering::Relaxed);
    hogs.into_iter().for_each(|h| h.join().unwrap());
    (counts.iter().map(|c| c.load(Ordering::Relaxed)).sum(), sched.worker_preemptions()[0])
}

/// How long a priority-0 thread waits for its first turn behind a
/// priority-20 thread that never yields: the aging bound, in time.
fn low_priority_wait(slice: Duration) -> Duration {
    let sched = RoundRobinScheduler::new().with_workers(1).with_time_slice(slice);
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let high = hog(&sched, 20, &stop, &count);
    let t = Instant::now();
    let low = ThreadBuilder::new().priority(0).scheduler(sched.clone()).spawn(move || t.elapsed()).unwrap();
    let waited = low.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    high.join().unwrap();
    waited
}
