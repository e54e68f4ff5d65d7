//! Mutex and Condvar under green threads, preemption and OS threads.

mod common;

use common::{is_child, run_child, scaled};
use preemptive_mlthreading_rust::sync::{Condvar, Mutex};
use preemptive_mlthreading_rust::{Duration, RoundRobinScheduler, spawn};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// The count is a plain (non-atomic) read-modify-write split by a yield
/// point the compiler cannot merge: any break in mutual exclusion loses
/// increments.
#[test]
fn thirty_two_threads_times_twenty_thousand_increments_are_exact_under_preemption() {
    let sched = common::preemptive(2, Duration::from_micros(100));
    let per = scaled(20_000);
    let m = Arc::new(Mutex::new(0u64));
    let start = Instant::now();
    let hs: Vec<_> = (0..32)
        .map(|_| {
            let m = Arc::clone(&m);
            sched
                .spawn(move || {
                    for _ in 0..per {
                        let mut g = m.lock();
                        let v = std::hint::black_box(*g);
                        if v.is_multiple_of(64) {
                            // Holding the lock across a switch makes the
                            // others queue, park and be woken.
                            preemptive_mlthreading_rust::yield_now();
                        }
                        *g = v + 1;
                    }
                })
                .unwrap()
        })
        .collect();
    hs.into_iter().for_each(|h| h.join().unwrap());
    assert_eq!(*m.lock(), 32 * per);
    println!(
        "32 x {per} increments in {:?}; {} preemptions",
        start.elapsed(),
        sched.worker_preemptions().iter().sum::<u64>()
    );
}

#[test]
fn green_and_os_threads_share_one_mutex() {
    let m = Arc::new(Mutex::new(0u64));
    let per = scaled(20_000);
    let green: Vec<_> = (0..4)
        .map(|_| {
            let m = Arc::clone(&m);
            spawn(move || {
                for _ in 0..per {
                    *m.lock() += 1
                }
            })
            .unwrap()
        })
        .collect();
    let os: Vec<_> = (0..2)
        .map(|_| {
            let m = Arc::clone(&m);
            std::thread::spawn(move || {
                for _ in 0..per {
                    *m.lock() += 1
                }
            })
        })
        .collect();
    green.into_iter().for_each(|h| h.join().unwrap());
    os.into_iter().for_each(|h| h.join().unwrap());
    assert_eq!(*m.lock(), 6 * per);
}

/// A green thread waiting for a lock parks: its worker runs the holder,
/// which is on the same (only) worker and must get the CPU to unlock.
#[test]
fn a_waiting_green_thread_leaves_its_worker_to_the_holder() {
    let one = RoundRobinScheduler::new().with_workers(1).with_preemption(false);
    let m = Arc::new(Mutex::new(Vec::new()));
    let held = Arc::new(AtomicBool::new(false));
    let (m2, held2) = (Arc::clone(&m), Arc::clone(&held));
    let holder = one
        .spawn(move || {
            let mut g = m2.lock();
            held2.store(true, Ordering::Release);
            // Yield with the lock held: the waiter runs, must park.
            for _ in 0..10 {
                preemptive_mlthreading_rust::yield_now();
            }
            g.push("holder");
        })
        .unwrap();
    while !held.load(Ordering::Acquire) {
        std::thread::yield_now();
    }
    let m3 = Arc::clone(&m);
    let waiter = one.spawn(move || m3.lock().push("waiter")).unwrap();
    holder.join().unwrap();
    waiter.join().unwrap();
    assert_eq!(*m.lock(), ["holder", "waiter"]);
}

#[test]
fn try_lock_for_gives_up_and_is_never_handed_the_lock_afterwards() {
    let sched = common::preemptive(2, Duration::from_millis(1));
    let m = Arc::new(Mutex::new(0u32));
    let rounds = scaled(200);
    let gave_up = Arc::new(AtomicU64::new(0));
    let hs: Vec<_> = (0..8)
        .map(|i| {
            let (m, gave_up) = (Arc::clone(&m), Arc::clone(&gave_up));
            sched
                .spawn(move || {
                    for _ in 0..rounds {
                        if i % 2 == 0 {
                            let mut g = m.lock();
                            *g += 1;
                            std::hint::black_box(&mut *g);
                            preemptive_mlthreading_rust::yield_now();
                        } else {
                            match m.try_lock_for(Duration::from_micros(20)) {
                                Ok(mut g) => *g += 1,
                                Err(_) => {
                                    gave_up.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    }
                })
                .unwrap()
        })
        .collect();
    hs.into_iter().for_each(|h| h.join().unwrap());
    // Every increment is either a lock or a timed lock that succeeded; a
    // lock handed to a thread that gave up would leave the mutex locked for
    // ever and the final lock below would hang.
    let g = m.try_lock_for(Duration::from_secs(10)).expect("mutex left locked");
    assert_eq!(u64::from(*g) + gave_up.load(Ordering::Relaxed), 8 * rounds);
    println!("{} of {} timed locks gave up", gave_up.load(Ordering::Relaxed), 4 * rounds);
}

#[test]
fn condvar_ping_pong_loses_no_notification() {
    let sched = common::preemptive(2, Duration::from_micros(200));
    let rounds = scaled(20_000);
    let state = Arc::new((Mutex::new(0u64), Condvar::new()));
    let s2 = Arc::clone(&state);
    let pong = sched
        .spawn(move || {
            let (m, cv) = &*s2;
            for i in 0..rounds {
                let mut g = cv.wait_while(m.lock(), |v| *v != 2 * i + 1);
                *g += 1;
                cv.notify_all();
            }
        })
        .unwrap();
    let s3 = Arc::clone(&state);
    let ping = sched
        .spawn(move || {
            let (m, cv) = &*s3;
            for i in 0..rounds {
                let mut g = cv.wait_while(m.lock(), |v| *v != 2 * i);
                *g += 1;
                cv.notify_all();
            }
        })
        .unwrap();
    ping.join().unwrap();
    pong.join().unwrap();
    assert_eq!(*state.0.lock(), 2 * rounds);
}

#[test]
fn condvar_notify_one_wakes_exactly_one_and_timeouts_report_correctly() {
    // (ready, tokens, finished)
    let state = Arc::new((Mutex::new((0u32, 0u32, 0u32)), Condvar::new()));
    let hs: Vec<_> = (0..4)
        .map(|_| {
            let s = Arc::clone(&state);
            spawn(move || {
                let (m, cv) = &*s;
                let mut g = m.lock();
                g.0 += 1;
                let (mut g, r) = cv.wait_timeout_while(g, Duration::from_secs(60), |v| v.1 == 0);
                assert!(!r.timed_out());
                g.1 -= 1;
                g.2 += 1;
            })
            .unwrap()
        })
        .collect();
    let (m, cv) = &*state;
    // Linked before they release the mutex: once all four counted
    // themselves, all four wait.
    while m.lock().0 < 4 {
        preemptive_mlthreading_rust::yield_now();
    }
    for i in 1..=4 {
        let mut g = m.lock();
        g.1 += 1;
        assert!(cv.notify_one(), "a waiter must be there to wake");
        drop(g);
        while m.lock().2 < i {
            preemptive_mlthreading_rust::yield_now();
        }
        assert_eq!(m.lock().2, i, "one notify_one, one thread out");
    }
    hs.into_iter().for_each(|h| h.join().unwrap());
    let (_g, r) = cv.wait_timeout(m.lock(), Duration::from_millis(2));
    assert!(r.timed_out());
    assert_eq!(cv.notify_all(), 0);
}

#[test]
fn static_mutex_and_condvar_are_const() {
    static M: Mutex<u32> = Mutex::new(7);
    static CV: Condvar = Condvar::new();
    *M.lock() += 1;
    CV.notify_all();
    assert_eq!(*M.lock(), 8);
}

/// What an OS thread's `thread_local!` does when it is dropped at thread
/// exit: block on this crate's primitives (and join a green thread), after
/// the runtime's own thread-locals of that thread may already be gone.
struct BlocksOnDrop {
    rx: preemptive_mlthreading_rust::sync::channel::Receiver<u32>,
    empty: preemptive_mlthreading_rust::sync::channel::Receiver<u32>,
    mutex: Arc<Mutex<u32>>,
    in_drop: std::sync::mpsc::Sender<()>,
    green: Option<preemptive_mlthreading_rust::JoinHandle<u32>>,
}

static DROP_SAW: AtomicU64 = AtomicU64::new(0);

impl Drop for BlocksOnDrop {
    fn drop(&mut self) {
        self.in_drop.send(()).unwrap();
        // A value another thread sends later: the receive blocks.
        let v = self.rx.recv().unwrap();
        // A timed wait that runs out.
        let timed_out = self.empty.recv_timeout(Duration::from_millis(20)).is_err();
        // A lock another thread holds meanwhile.
        let mut g = self.mutex.lock();
        *g += v;
        let sum = *g;
        drop(g);
        // A green thread that finishes later.
        let joined = self.green.take().unwrap().join().unwrap();
        DROP_SAW.store(u64::from(joined) * 100 + u64::from(sum) * 10 + u64::from(timed_out), Ordering::SeqCst);
    }
}

thread_local! {
    static ON_EXIT: std::cell::RefCell<Option<BlocksOnDrop>> = const { std::cell::RefCell::new(None) };
}

#[test]
fn child_blocking_in_a_thread_local_destructor() {
    if !is_child("child_blocking_in_a_thread_local_destructor") {
        return;
    }
    use preemptive_mlthreading_rust::sync::channel;
    let (tx, rx) = channel::unbounded();
    let (_keep, empty) = channel::unbounded();
    let mutex = Arc::new(Mutex::new(1));
    let (in_drop_tx, in_drop) = std::sync::mpsc::channel();
    let (go, wait_for_go) = preemptive_mlthreading_rust::sync::oneshot::channel::<()>();
    let green = spawn(move || {
        wait_for_go.recv().unwrap();
        3
    })
    .unwrap();
    let value = BlocksOnDrop { rx, empty, mutex: Arc::clone(&mutex), in_drop: in_drop_tx, green: Some(green) };
    let t = std::thread::spawn(move || {
        ON_EXIT.with(|slot| *slot.borrow_mut() = Some(value));
        // The runtime's own per-thread state, set up after `ON_EXIT`: the
        // thread-locals of a thread are destroyed newest first, so it is
        // gone by the time `ON_EXIT` is dropped.
        let _ = preemptive_mlthreading_rust::current();
        let (_tx, rx) = channel::bounded::<u8>(1);
        assert!(rx.recv_timeout(Duration::from_millis(1)).is_err());
    });
    in_drop.recv().unwrap();
    let g = mutex.lock();
    // Sent from a green thread, which wakes the OS thread.
    spawn(move || {
        preemptive_mlthreading_rust::sleep(Duration::from_millis(20));
        tx.send(4).unwrap();
    })
    .unwrap()
    .join()
    .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(g);
    std::thread::sleep(Duration::from_millis(50));
    go.send(()).unwrap();
    t.join().unwrap();
    assert_eq!(DROP_SAW.load(Ordering::SeqCst), 351, "joined 3, locked 1 + 4 after receiving 4, timed out");
    println!("CHILD: done");
}

#[test]
fn an_os_thread_can_block_on_our_primitives_in_its_thread_local_destructors() {
    let out = run_child("child_blocking_in_a_thread_local_destructor", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}\n{stdout}\n{stderr}", out.status);
    assert!(stdout.contains("CHILD: done"), "{stdout}");
}
