//! RwLock under green threads and preemption.

mod common;

use common::scaled;
use preemptive_mlthreading_rust::sync::RwLock;
use preemptive_mlthreading_rust::{Duration, spawn, yield_now};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// A value whose halves a writer changes one at a time, yielding between:
/// a reader admitted during a write would see them differ.
struct Pair {
    a: u64,
    b: u64,
    log: Vec<u64>,
}

#[test]
fn readers_never_see_a_torn_write_under_preemption() {
    let sched = common::preemptive(2, Duration::from_micros(100));
    let lock = Arc::new(RwLock::new(Pair { a: 0, b: 0, log: Vec::new() }));
    let writes = scaled(2_000);
    let reads = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..6)
        .map(|_| {
            let (lock, reads, stop) = (Arc::clone(&lock), Arc::clone(&reads), Arc::clone(&stop));
            sched
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let g = lock.read();
                        assert_eq!(g.a, g.b, "torn read");
                        assert_eq!(g.log.len() as u64, g.a);
                        reads.fetch_add(1, Ordering::Relaxed);
                        if g.a.is_multiple_of(3) {
                            yield_now();
                        }
                        assert_eq!(g.a, g.b, "changed under a read lock");
                    }
                })
                .unwrap()
        })
        .collect();
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let lock = Arc::clone(&lock);
            sched
                .spawn(move || {
                    for _ in 0..writes {
                        let mut g = lock.write();
                        g.a += 1;
                        yield_now();
                        g.b += 1;
                        let a = g.a;
                        g.log.push(a);
                    }
                })
                .unwrap()
        })
        .collect();
    writers.into_iter().for_each(|h| h.join().unwrap());
    stop.store(true, Ordering::Relaxed);
    readers.into_iter().for_each(|h| h.join().unwrap());
    let g = lock.read();
    assert_eq!((g.a, g.b), (2 * writes, 2 * writes));
    assert!(g.log.windows(2).all(|w| w[1] == w[0] + 1));
    println!("{} writes, {} reads", 2 * writes, reads.load(Ordering::Relaxed));
}

/// Phase-fairness: a writer waiting behind a stream of readers gets in,
/// and readers waiting behind writers get in.
#[test]
fn a_writer_is_not_starved_by_a_stream_of_readers() {
    let sched = common::preemptive(2, Duration::from_micros(200));
    let lock = Arc::new(RwLock::new(0u64));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (lock, stop) = (Arc::clone(&lock), Arc::clone(&stop));
            sched
                .spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        // Overlapping read locks: without a writer
                        // preference there is never a moment with none.
                        let _a = lock.read();
                        yield_now();
                        n += 1;
                    }
                    n
                })
                .unwrap()
        })
        .collect();
    let l2 = Arc::clone(&lock);
    let writes = scaled(200);
    let writer = sched
        .spawn(move || {
            for _ in 0..writes {
                *l2.write() += 1;
                yield_now();
            }
        })
        .unwrap();
    writer.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    let reads: u64 = readers.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(*lock.read(), writes);
    assert!(reads > 0);
    println!("{writes} writes completed among {reads} overlapping reads");
}

#[test]
fn timed_out_writers_leave_no_lock_behind_and_release_queued_readers() {
    let lock = Arc::new(RwLock::new(0u32));
    let reader = lock.read();
    // A writer queues (blocking new readers), then gives up.
    let l2 = Arc::clone(&lock);
    let w = spawn(move || l2.try_write_for(Duration::from_millis(30)).is_err()).unwrap();
    // Once the writer waits, new readers are turned away.
    while lock.try_read().map(drop).is_ok() {
        yield_now();
    }
    // A reader that arrives while the writer waits queues behind it, and
    // must be let in when the writer leaves.
    let l3 = Arc::clone(&lock);
    let admitted = Arc::new(AtomicUsize::new(0));
    let a2 = Arc::clone(&admitted);
    let r = spawn(move || {
        let _g = l3.read();
        a2.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    assert!(w.join().unwrap(), "the writer must time out while a read lock is held");
    r.join().unwrap();
    assert_eq!(admitted.load(Ordering::SeqCst), 1);
    drop(reader);
    assert!(!lock.is_locked());
    *lock.try_write().expect("free after everyone left") += 1;
}

#[test]
fn os_and_green_writers_count_exactly() {
    let lock = Arc::new(RwLock::new(0u64));
    let per = scaled(10_000);
    let g: Vec<_> = (0..4)
        .map(|_| {
            let l = Arc::clone(&lock);
            spawn(move || {
                for _ in 0..per {
                    *l.write() += 1
                }
            })
            .unwrap()
        })
        .collect();
    let o: Vec<_> = (0..2)
        .map(|_| {
            let l = Arc::clone(&lock);
            std::thread::spawn(move || {
                for _ in 0..per {
                    *l.write() += 1;
                    let _ = *l.read();
                }
            })
        })
        .collect();
    g.into_iter().for_each(|h| h.join().unwrap());
    o.into_iter().for_each(|h| h.join().unwrap());
    assert_eq!(*lock.read(), 6 * per);
}

#[test]
fn guide_static_rwlock_compiles_and_works() {
    struct SharedData {
        items: Vec<u32>,
    }
    impl SharedData {
        const fn new() -> Self {
            SharedData { items: Vec::new() }
        }
    }
    static DATA: RwLock<SharedData> = RwLock::new(SharedData::new());
    DATA.write().items.push(3);
    let data = DATA.read();
    assert_eq!(data.items, [3]);
}
