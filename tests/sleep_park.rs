//! Timers and the park/unpark protocol.

mod common;

use preemptive_mlthreading_rust::{Duration, ThreadBuilder, current, park, park_timeout, sleep, spawn, yield_now};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

#[test]
fn sleep_never_returns_early() {
    let sched = common::workers(2);
    let handles: Vec<_> = (0..200u64)
        .map(|i| {
            sched
                .spawn(move || {
                    let d = Duration::from_micros(100 + (i * 7919) % 5000);
                    let t = Instant::now();
                    sleep(d);
                    (t.elapsed(), d)
                })
                .unwrap()
        })
        .collect();
    for h in handles {
        let (slept, asked) = h.join().unwrap();
        assert!(slept >= asked, "slept {slept:?}, asked for {asked:?}");
    }
}

#[test]
fn a_sleeping_thread_does_not_block_its_worker() {
    let sched = common::workers(1);
    let done = Arc::new(AtomicBool::new(false));
    let d = Arc::clone(&done);
    let sleeper = sched
        .spawn(move || {
            sleep(Duration::from_millis(30));
            d.store(true, Ordering::Release);
        })
        .unwrap();
    let d = Arc::clone(&done);
    // Same worker: this one can only make progress while the other sleeps.
    let counter = sched
        .spawn(move || {
            let mut n = 0u64;
            while !d.load(Ordering::Acquire) {
                n += 1;
                yield_now();
            }
            n
        })
        .unwrap();
    sleeper.join().unwrap();
    let n = counter.join().unwrap();
    println!("{n} yields ran on the worker while its other thread slept 30 ms");
    assert!(n > 0);
}

#[test]
fn many_sleepers_wake_in_deadline_order_on_one_worker() {
    let sched = common::workers(1);
    // Start the worker first, so that the pool's start-up (its OS threads,
    // the preemption signal's set-up), slow in a debug build and more so
    // under qemu, does not hold back the first sleepers.
    sched.spawn(|| ()).unwrap().join().unwrap();
    // Deadlines from one instant, so that a thread started late keeps its
    // place. The order is only meaningful if every thread was asleep before
    // the first deadline passed; when a loaded machine (or emulator) starts
    // one later than that, the round says nothing and runs again with the
    // deadlines spread wider.
    for scale in [1u64, 2, 4, 8, 16, 32] {
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let late = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        let first = start + Duration::from_millis(10 * scale);
        let handles: Vec<_> = [60u64, 20, 40, 10, 50]
            .into_iter()
            .map(|ms| {
                let (order, late) = (Arc::clone(&order), Arc::clone(&late));
                sched
                    .spawn(move || {
                        let deadline = start + Duration::from_millis(ms * scale);
                        if Instant::now() >= first {
                            late.store(true, Ordering::SeqCst);
                        }
                        sleep(deadline.saturating_duration_since(Instant::now()));
                        order.lock().unwrap().push(ms);
                    })
                    .unwrap()
            })
            .collect();
        handles.into_iter().for_each(|h| h.join().unwrap());
        if late.load(Ordering::SeqCst) {
            println!("deadlines x{scale}: a thread started after the first deadline; spreading them wider");
            continue;
        }
        assert_eq!(*order.lock().unwrap(), vec![10, 20, 40, 50, 60]);
        println!("deadlines x{scale}: woken in deadline order");
        return;
    }
    panic!("no round started all sleepers before the first deadline, even 320 ms after the start");
}

#[test]
fn an_idle_worker_sleeps_until_the_timer_instead_of_spinning() {
    let sched = common::workers(1);
    // Measured from inside: the green thread runs on the one worker OS
    // thread, so the thread CPU clock is the worker's.
    let used = sched
        .spawn(|| {
            let before = worker_cpu_time();
            sleep(Duration::from_millis(300));
            worker_cpu_time() - before
        })
        .unwrap()
        .join()
        .unwrap();
    println!("CPU time the worker used while its only green thread slept 300 ms: {used:?}");
    // Not a wall-clock threshold: a busy-waiting worker would burn ~300 ms
    // of CPU, a sleeping one next to none.
    assert!(used < Duration::from_millis(100), "{used:?}");
}

fn worker_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into ts.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[test]
fn unpark_before_park_is_not_lost() {
    let h = spawn(|| {
        current().unpark();
        park(); // returns at once: the token was set
        7
    })
    .unwrap();
    assert_eq!(h.join().unwrap(), 7);
}

#[test]
fn park_unpark_ping_pong_across_workers_loses_no_wakeup() {
    // Two threads hand a token back and forth purely with park/unpark;
    // a single lost wake-up would hang the test.
    const ROUNDS: u64 = 20_000;
    let sched = common::workers(2);
    let turn = Arc::new(AtomicU64::new(0));
    let (ta, tb) = (Arc::clone(&turn), Arc::clone(&turn));
    let b = sched
        .spawn(move || {
            for i in 0..ROUNDS {
                while tb.load(Ordering::Acquire) != 2 * i + 1 {
                    park();
                }
                tb.store(2 * i + 2, Ordering::Release);
                // The main thread publishes A's handle after spawning it,
                // which a slow (or emulated) machine may do only after A's
                // first unpark reached us.
                let peer = loop {
                    match PEER_A.get() {
                        Some(peer) => break peer,
                        None => preemptive_mlthreading_rust::yield_now(),
                    }
                };
                peer.unpark();
            }
        })
        .unwrap();
    let b_thread = b.thread().clone();
    let a = ThreadBuilder::new()
        .scheduler(sched.clone())
        .spawn(move || {
            for i in 0..ROUNDS {
                ta.store(2 * i + 1, Ordering::Release);
                b_thread.unpark();
                while ta.load(Ordering::Acquire) != 2 * i + 2 {
                    park();
                }
            }
        })
        .unwrap();
    PEER_A.set(a.thread().clone()).unwrap();
    a.join().unwrap();
    b.join().unwrap();
    assert_eq!(turn.load(Ordering::Relaxed), 2 * ROUNDS);
    println!("{ROUNDS} park/unpark round trips across 2 workers");
}

static PEER_A: std::sync::OnceLock<preemptive_mlthreading_rust::Thread> = std::sync::OnceLock::new();

#[test]
fn park_timeout_returns_without_unpark() {
    let h = spawn(|| {
        let t = Instant::now();
        park_timeout(Duration::from_millis(20));
        t.elapsed()
    })
    .unwrap();
    // Spurious early returns are allowed by park's contract, but with nobody
    // unparking this thread the timer is what wakes it.
    assert!(h.join().unwrap() >= Duration::from_millis(20));
}

#[test]
fn os_thread_unparks_a_parked_green_thread() {
    let flag = Arc::new(AtomicBool::new(false));
    let f = Arc::clone(&flag);
    let h = spawn(move || {
        while !f.load(Ordering::Acquire) {
            park();
        }
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(10));
    flag.store(true, Ordering::Release);
    h.thread().unpark();
    h.join().unwrap();
}

#[test]
fn functions_fall_back_to_std_on_os_threads() {
    let t = Instant::now();
    sleep(Duration::from_millis(5));
    assert!(t.elapsed() >= Duration::from_millis(5));
    yield_now();
    current().unpark();
    park();
    park_timeout(Duration::from_millis(1));
}
