//! The synchronisation figures: uncontended lock+unlock against std and
//! parking_lot, contended throughput of 8 green threads on one lock against
//! 8 OS threads on a std mutex, and channel ping-pong on one worker.
//! Run with `cargo run --release -p bench --example sync_figures`.

use preemptive_mlthreading_rust::sync::{Condvar, Mutex, channel};
use preemptive_mlthreading_rust::{Duration, RoundRobinScheduler};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

const RUNS: usize = 7;

fn main() {
    if std::env::args().nth(1).as_deref() == Some("contended") {
        let sched = RoundRobinScheduler::new().with_workers(2).with_time_slice(Duration::from_millis(1));
        return report(
            "contended, 8 green threads / 2 workers",
            "Mops/s",
            (0..RUNS).map(|_| contended_green(&sched, 8, 200_000)),
        );
    }
    let n = 20_000_000;
    report("uncontended lock+unlock: this crate", "ns", (0..RUNS).map(|_| uncontended_ours(n)));
    report("uncontended lock+unlock: std::sync::Mutex", "ns", (0..RUNS).map(|_| uncontended_std(n)));
    report("uncontended lock+unlock: parking_lot::Mutex", "ns", (0..RUNS).map(|_| uncontended_pl(n)));

    let sched = RoundRobinScheduler::new().with_workers(2).with_time_slice(Duration::from_millis(1));
    let per = 200_000;
    report("contended, 8 green threads / 2 workers", "Mops/s", (0..RUNS).map(|_| contended_green(&sched, 8, per)));
    let one = RoundRobinScheduler::new().with_workers(1).with_time_slice(Duration::from_millis(1));
    report("contended, 8 green threads / 1 worker", "Mops/s", (0..RUNS).map(|_| contended_green(&one, 8, per)));
    report("contended, 8 OS threads, std::sync::Mutex", "Mops/s", (0..RUNS).map(|_| contended_std(8, per)));
    report("contended, 8 OS threads, parking_lot", "Mops/s", (0..RUNS).map(|_| contended_pl(8, per)));

    let trips = 200_000;
    report("channel ping-pong, 1 worker (rendezvous)", "ns/trip", (0..RUNS).map(|_| ping_pong(&one, 0, trips)));
    report("channel ping-pong, 1 worker (bounded 1)", "ns/trip", (0..RUNS).map(|_| ping_pong(&one, 1, trips)));
    report("condvar ping-pong, 1 worker", "ns/trip", (0..RUNS).map(|_| condvar_ping_pong(&one, trips)));
    report("std mpsc ping-pong, 2 OS threads", "ns/trip", (0..RUNS).map(|_| std_ping_pong(trips / 4)));
}

fn report(what: &str, unit: &str, samples: impl Iterator<Item = f64>) {
    let mut v: Vec<f64> = samples.collect();
    v.sort_by(f64::total_cmp);
    println!(
        "{what:<46} median {:>8.2} {unit}  (min {:.2}, max {:.2}, {} runs)",
        v[v.len() / 2],
        v[0],
        v[v.len() - 1],
        v.len()
    );
}

fn per_op(start: Instant, n: u64) -> f64 {
    start.elapsed().as_nanos() as f64 / n as f64
}

fn uncontended_ours(n: u64) -> f64 {
    let m = Mutex::new(0u64);
    let t = Instant::now();
    for _ in 0..n {
        *black_box(&m).lock() += 1;
    }
    per_op(t, n)
}

fn uncontended_std(n: u64) -> f64 {
    let m = std::sync::Mutex::new(0u64);
    let t = Instant::now();
    for _ in 0..n {
        *black_box(&m).lock().unwrap() += 1;
    }
    per_op(t, n)
}

fn uncontended_pl(n: u64) -> f64 {
    let m = parking_lot::Mutex::new(0u64);
    let t = Instant::now();
    for _ in 0..n {
        *black_box(&m).lock() += 1;
    }
    per_op(t, n)
}

/// A critical section of a few dozen instructions, the same for everyone.
#[inline]
fn work(v: &mut u64) {
    for _ in 0..8 {
        *v = black_box(v.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

fn mops(start: Instant, ops: u64) -> f64 {
    ops as f64 / start.elapsed().as_secs_f64() / 1e6
}

fn contended_green(sched: &RoundRobinScheduler, threads: u64, per: u64) -> f64 {
    let m = Arc::new(Mutex::new(0u64));
    let t = Instant::now();
    let hs: Vec<_> = (0..threads)
        .map(|_| {
            let m = Arc::clone(&m);
            sched.spawn(move || (0..per).for_each(|_| work(&mut m.lock()))).unwrap()
        })
        .collect();
    hs.into_iter().for_each(|h| h.join().unwrap());
    mops(t, threads * per)
}

fn contended_std(threads: u64, per: u64) -> f64 {
    let m = Arc::new(std::sync::Mutex::new(0u64));
    let t = Instant::now();
    let hs: Vec<_> = (0..threads)
        .map(|_| {
            let m = Arc::clone(&m);
            std::thread::spawn(move || (0..per).for_each(|_| work(&mut m.lock().unwrap())))
        })
        .collect();
    hs.into_iter().for_each(|h| h.join().unwrap());
    mops(t, threads * per)
}

fn contended_pl(threads: u64, per: u64) -> f64 {
    let m = Arc::new(parking_lot::Mutex::new(0u64));
    let t = Instant::now();
    let hs: Vec<_> = (0..threads)
        .map(|_| {
            let m = Arc::clone(&m);
            std::thread::spawn(move || (0..per).for_each(|_| work(&mut m.lock())))
        })
        .collect();
    hs.into_iter().for_each(|h| h.join().unwrap());
    mops(t, threads * per)
}

fn ping_pong(sched: &RoundRobinScheduler, cap: usize, trips: u64) -> f64 {
    let (to_b, b_rx) = channel::bounded::<u64>(cap);
    let (to_a, a_rx) = channel::bounded::<u64>(cap);
    let b = sched
        .spawn(move || {
            for v in b_rx.iter() {
                if to_a.send(v + 1).is_err() {
                    break;
                }
            }
        })
        .unwrap();
    let a = sched
        .spawn(move || {
            let t = Instant::now();
            for i in 0..trips {
                to_b.send(i).unwrap();
                assert_eq!(a_rx.recv().unwrap(), i + 1);
            }
            per_op(t, trips)
        })
        .unwrap();
    let ns = a.join().unwrap();
    b.join().unwrap();
    ns
}

fn condvar_ping_pong(sched: &RoundRobinScheduler, trips: u64) -> f64 {
    let state = Arc::new((Mutex::new(0u64), Condvar::new()));
    let s = Arc::clone(&state);
    let b = sched
        .spawn(move || {
            let (m, cv) = &*s;
            for i in 0..trips {
                let mut g = cv.wait_while(m.lock(), |v| *v != 2 * i + 1);
                *g += 1;
                cv.notify_one();
            }
        })
        .unwrap();
    let s = Arc::clone(&state);
    let a = sched
        .spawn(move || {
            let (m, cv) = &*s;
            let t = Instant::now();
            for i in 0..trips {
                let mut g = cv.wait_while(m.lock(), |v| *v != 2 * i);
                *g += 1;
                cv.notify_one();
            }
            per_op(t, trips)
        })
        .unwrap();
    let ns = a.join().unwrap();
    b.join().unwrap();
    ns
}

fn std_ping_pong(trips: u64) -> f64 {
    let (to_b, b_rx) = std::sync::mpsc::channel::<u64>();
    let (to_a, a_rx) = std::sync::mpsc::channel::<u64>();
    let b = std::thread::spawn(move || {
        for v in b_rx.iter() {
            if to_a.send(v + 1).is_err() {
                break;
            }
        }
    });
    let t = Instant::now();
    for i in 0..trips {
        to_b.send(i).unwrap();
        assert_eq!(a_rx.recv().unwrap(), i + 1);
    }
    let ns = per_op(t, trips);
    drop(to_b);
    b.join().unwrap();
    ns
}
