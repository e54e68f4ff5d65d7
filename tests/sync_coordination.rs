//! Semaphore, Barrier and WaitGroup under green threads.

mod common;

use common::scaled;
use preemptive_mlthreading_rust::sync::{Barrier, Semaphore, WaitGroup};
use preemptive_mlthreading_rust::{Duration, spawn, yield_now};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

#[test]
fn semaphore_bounds_concurrency_and_returns_every_permit() {
    let sched = common::preemptive(2, Duration::from_micros(100));
    let sem = Arc::new(Semaphore::new(3));
    let inside = Arc::new(AtomicUsize::new(0));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let rounds = scaled(2_000);
    let hs: Vec<_> = (0..16)
        .map(|i| {
            let (sem, inside, max_seen) = (Arc::clone(&sem), Arc::clone(&inside), Arc::clone(&max_seen));
            sched
                .spawn(move || {
                    for r in 0..rounds {
                        let n = if (i + r) % 5 == 0 { 2 } else { 1 };
                        let _p = sem.acquire_many(n);
                        let now = inside.fetch_add(n, Ordering::SeqCst) + n;
                        max_seen.fetch_max(now, Ordering::SeqCst);
                        assert!(now <= 3, "{now} permits in use out of 3");
                        yield_now();
                        inside.fetch_sub(n, Ordering::SeqCst);
                    }
                })
                .unwrap()
        })
        .collect();
    hs.into_iter().for_each(|h| h.join().unwrap());
    assert_eq!(sem.available_permits(), 3);
    println!("16 x {rounds} acquisitions, at most {} permits in use", max_seen.load(Ordering::SeqCst));
}

#[test]
fn semaphore_timeouts_lose_no_permit() {
    let sched = common::preemptive(2, Duration::from_micros(100));
    let sem = Arc::new(Semaphore::new(1));
    let got = Arc::new(AtomicU64::new(0));
    let gave_up = Arc::new(AtomicU64::new(0));
    let rounds = scaled(1_000);
    let hs: Vec<_> = (0..8)
        .map(|_| {
            let (sem, got, gave_up) = (Arc::clone(&sem), Arc::clone(&got), Arc::clone(&gave_up));
            sched
                .spawn(move || {
                    for _ in 0..rounds {
                        match sem.acquire_timeout(Duration::from_micros(10)) {
                            Ok(_p) => {
                                got.fetch_add(1, Ordering::Relaxed);
                                yield_now();
                            }
                            Err(_) => {
                                gave_up.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
                .unwrap()
        })
        .collect();
    hs.into_iter().for_each(|h| h.join().unwrap());
    assert_eq!(got.load(Ordering::Relaxed) + gave_up.load(Ordering::Relaxed), 8 * rounds);
    // A permit handed to a waiter that gave up would be gone for ever.
    assert_eq!(sem.available_permits(), 1);
    println!("{} acquired, {} timed out", got.load(Ordering::Relaxed), gave_up.load(Ordering::Relaxed));
}

#[test]
fn a_large_request_is_served_before_later_small_ones() {
    let sem = Arc::new(Semaphore::new(2));
    let order = Arc::new(preemptive_mlthreading_rust::Mutex::new(Vec::new()));
    let (s1, o1) = (Arc::clone(&sem), Arc::clone(&order));
    let big = spawn(move || {
        let _p = s1.acquire_many(3);
        o1.lock().push("big");
    })
    .unwrap();
    // Once `big` waits, a try fails even with 2 permits free.
    while let Ok(p) = sem.try_acquire() {
        drop(p);
        yield_now();
    }
    assert_eq!(sem.available_permits(), 2);
    let (s2, o2) = (Arc::clone(&sem), Arc::clone(&order));
    let small = spawn(move || {
        let _p = s2.acquire();
        o2.lock().push("small");
    })
    .unwrap();
    for _ in 0..20 {
        yield_now();
    }
    assert!(order.lock().is_empty(), "the small request must wait behind the big one");
    sem.add_permits(1);
    big.join().unwrap();
    small.join().unwrap();
    assert_eq!(*order.lock(), ["big", "small"]);
    assert_eq!(sem.available_permits(), 3);
}

#[test]
fn barrier_rounds_release_everyone_with_one_leader_each() {
    let sched = common::preemptive(2, Duration::from_micros(100));
    let n = 8;
    let rounds = scaled(500);
    let barrier = Arc::new(Barrier::new(n));
    let arrived = Arc::new(AtomicU64::new(0));
    let leaders = Arc::new(AtomicU64::new(0));
    let hs: Vec<_> = (0..n)
        .map(|_| {
            let (b, arrived, leaders) = (Arc::clone(&barrier), Arc::clone(&arrived), Arc::clone(&leaders));
            sched
                .spawn(move || {
                    for r in 0..rounds {
                        arrived.fetch_add(1, Ordering::SeqCst);
                        if b.wait().is_leader() {
                            leaders.fetch_add(1, Ordering::SeqCst);
                        }
                        // Nobody passes round r before all n arrived in it.
                        assert!(arrived.load(Ordering::SeqCst) >= (r + 1) * n as u64);
                    }
                })
                .unwrap()
        })
        .collect();
    hs.into_iter().for_each(|h| h.join().unwrap());
    assert_eq!(leaders.load(Ordering::SeqCst), rounds);
    println!("{rounds} rounds of {n} threads");
}

#[test]
fn wait_group_waits_for_every_done_from_green_and_os_threads() {
    let wg = Arc::new(WaitGroup::new());
    let sum = Arc::new(AtomicU64::new(0));
    for round in 0..scaled(50) {
        wg.add(10);
        for i in 0..10u64 {
            let (wg, sum) = (Arc::clone(&wg), Arc::clone(&sum));
            if i % 3 == 0 {
                std::thread::spawn(move || {
                    sum.fetch_add(i, Ordering::SeqCst);
                    wg.done();
                });
            } else {
                spawn(move || {
                    yield_now();
                    sum.fetch_add(i, Ordering::SeqCst);
                    wg.done();
                })
                .unwrap();
            }
        }
        wg.wait();
        assert_eq!(sum.load(Ordering::SeqCst), 45 * (round + 1));
    }
}

#[test]
fn wait_group_done_too_often_panics_with_a_message() {
    let wg = WaitGroup::new();
    let err = std::panic::catch_unwind(|| wg.done()).unwrap_err();
    let msg = err.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| err.downcast_ref::<String>().cloned());
    assert!(msg.unwrap().contains("more times than add"));
    assert_eq!(wg.count(), 0);
}
