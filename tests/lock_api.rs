//! `lock_api` on the crate's raw locks, and parking_lot's conveniences on
//! the crate's own `Mutex`/`RwLock`: mapped guards, downgrades, upgradable
//! reads, and a mutex reentrant per green thread.

mod common;

use common::{join_all, scaled, wait_until};
use preemptive_mlthreading_rust::sync::{
    MutexGuard, RawMutex, RawRwLock, ReentrantMutex, RwLock, RwLockReadGuard, RwLockUpgradableReadGuard,
    RwLockWriteGuard,
};
use preemptive_mlthreading_rust::{Duration, Mutex, yield_now};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

type ApiMutex<T> = lock_api::Mutex<RawMutex, T>;
type ApiRwLock<T> = lock_api::RwLock<RawRwLock, T>;

/// A liveness bound for waits that normally take milliseconds.
const HANG: Duration = Duration::from_secs(30);

/// Plain read-modify-writes split by a yield: any break in mutual
/// exclusion loses increments. Every 128th unlock is a fair one (a direct
/// hand-off to the longest waiter).
#[test]
fn lock_api_mutex_on_our_raw_mutex_counts_exactly_under_preemption() {
    let sched = common::preemptive(2, Duration::from_micros(100));
    let per = scaled(10_000);
    let m = Arc::new(ApiMutex::new(0u64));
    let hs: Vec<_> = (0..16)
        .map(|_| {
            let m = Arc::clone(&m);
            sched
                .spawn(move || {
                    for i in 0..per {
                        let mut g = m.lock();
                        let v = std::hint::black_box(*g);
                        if v.is_multiple_of(64) {
                            yield_now();
                        }
                        *g = v + 1;
                        if i % 128 == 0 {
                            lock_api::MutexGuard::unlock_fair(g);
                        }
                    }
                })
                .unwrap()
        })
        .collect();
    join_all(hs);
    assert_eq!(*m.lock(), 16 * per);
    println!("16 x {per} increments through lock_api::Mutex<RawMutex, _>, fair unlocks included");
}

#[test]
fn timed_lock_api_mutex_times_out_when_held() {
    let short = Duration::from_millis(5);
    let am = ApiMutex::new(());
    let held = am.lock();
    assert!(am.try_lock_for(short).is_none(), "lock_api mutex timed lock");
    drop(held);
    assert!(am.try_lock_for(short).is_some());
    println!("lock_api timed lock gave up while held, succeeded once free");
}

/// Writers, upgraders and readers on one lock under preemption. The value
/// is a pair a writer or an upgrader changes half at a time with a yield
/// between: a reader let in meanwhile would see the halves differ, and an
/// upgrader sees the value it read still there when its upgrade completes.
#[test]
fn writers_upgraders_and_readers_count_exactly_under_preemption() {
    let sched = common::preemptive(2, Duration::from_micros(100));
    let per = scaled(2_000);
    let l = Arc::new(RwLock::new((0u64, 0u64)));
    let reads = Arc::new(AtomicU64::new(0));
    let hs: Vec<_> = (0..12u64)
        .map(|t| {
            let (l, reads) = (Arc::clone(&l), Arc::clone(&reads));
            sched
                .spawn(move || {
                    for _ in 0..per {
                        match t % 3 {
                            0 => bump(&mut l.write()),
                            1 => {
                                let u = l.upgradable_read();
                                let seen = *u;
                                yield_now();
                                let mut w = RwLockUpgradableReadGuard::upgrade(u);
                                assert_eq!(*w, seen, "a write slipped between upgradable read and upgrade");
                                bump(&mut w);
                            }
                            _ => {
                                let r = l.read();
                                assert_eq!(r.0, r.1, "a reader saw a write half done");
                                reads.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
                .unwrap()
        })
        .collect();
    join_all(hs);
    assert_eq!(*l.read(), (8 * per, 8 * per));
    assert!(!l.is_locked());
    println!("4 writers and 4 upgraders x {per} exact; {} reads", reads.load(Ordering::Relaxed));
}

fn bump(p: &mut (u64, u64)) {
    p.0 += 1;
    yield_now();
    p.1 += 1;
}

#[test]
fn upgradable_read_coexists_with_readers_and_excludes_writers_and_upgraders() {
    let l = RwLock::new(5);
    let u = l.upgradable_read();
    let readers: Vec<_> = (0..3).map(|_| l.try_read().expect("readers beside an upgradable reader")).collect();
    assert!(l.try_upgradable_read().is_err(), "a second upgradable reader");
    assert!(l.try_write().is_err(), "a writer beside an upgradable reader");
    assert!(l.try_upgradable_read_for(Duration::from_millis(5)).is_err());
    assert!(l.try_write_for(Duration::from_millis(5)).is_err());
    let u = RwLockUpgradableReadGuard::try_upgrade(u).unwrap_err();
    drop(readers);
    let mut w = RwLockUpgradableReadGuard::try_upgrade(u).expect("no reader left");
    *w += 1;
    assert!(l.try_read().is_err() && l.try_upgradable_read().is_err());
    drop(w);

    // The same through lock_api over our raw lock.
    let al = ApiRwLock::new(0);
    let u = al.upgradable_read();
    let r = al.try_read().expect("readers beside an upgradable reader");
    assert!(al.try_upgradable_read().is_none() && al.try_write().is_none());
    drop(r);
    *lock_api::RwLockUpgradableReadGuard::upgrade(u) += 1;
    assert_eq!(*al.read(), 1);
    println!("upgradable reader: 3 readers beside it, upgraders and writers refused, upgrade once readers left");
}

/// A green thread upgrades while an OS thread holds a read lock and a
/// writer waits: the upgrade completes only once the reader leaves, and
/// before the writer, which never wrote between read and upgrade.
#[test]
fn upgrade_waits_for_readers_and_no_writer_slips_in() {
    let sched = common::preemptive(2, Duration::from_micros(100));
    let l = Arc::new(RwLock::new(0u64));
    let (started, upgraded) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let reader = l.read();
    let up = {
        let (l, started, upgraded) = (Arc::clone(&l), Arc::clone(&started), Arc::clone(&upgraded));
        sched
            .spawn(move || {
                let u = l.upgradable_read();
                let seen = *u;
                started.store(true, Ordering::SeqCst);
                let mut w = RwLockUpgradableReadGuard::upgrade(u);
                upgraded.store(true, Ordering::SeqCst);
                assert_eq!(*w, seen, "written between upgradable read and upgrade");
                *w += 1;
            })
            .unwrap()
    };
    wait_until(HANG, || started.load(Ordering::SeqCst), || "the upgradable read".into());
    let writer = {
        let l = Arc::clone(&l);
        sched.spawn(move || *l.write() += 100).unwrap()
    };
    std::thread::sleep(Duration::from_millis(20));
    assert!(!upgraded.load(Ordering::SeqCst), "upgraded while a reader held the lock");
    assert_eq!(*reader, 0, "the writer got in beside a reader and an upgradable reader");
    drop(reader);
    up.join().unwrap();
    writer.join().unwrap();
    assert_eq!(*l.read(), 101, "the upgrade's write first, then the writer's");
    println!("upgrade waited for the reader, then went before the waiting writer");
}

/// A write lock downgraded to a read lock lets the readers waiting for it
/// in at once, and still excludes a writer; the same for a write lock
/// traded for an upgradable one, and an upgradable one for a read.
#[test]
fn downgrades_let_waiting_readers_in() {
    let sched = common::preemptive(2, Duration::from_micros(100));
    let l = Arc::new(RwLock::new(0u64));
    let (arrived, read) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut w = l.write();
    *w = 1;
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (l, arrived, read) = (Arc::clone(&l), Arc::clone(&arrived), Arc::clone(&read));
            sched
                .spawn(move || {
                    arrived.fetch_add(1, Ordering::SeqCst);
                    read.fetch_add(*l.read(), Ordering::SeqCst)
                })
                .unwrap()
        })
        .collect();
    wait_until(HANG, || arrived.load(Ordering::SeqCst) == 4, || "readers to start".into());
    std::thread::sleep(Duration::from_millis(10)); // most have queued (either way is correct)
    let r = RwLockWriteGuard::downgrade(w);
    wait_until(HANG, || read.load(Ordering::SeqCst) == 4, || "readers after the downgrade".into());
    join_all(readers);
    assert_eq!(*r, 1);
    drop(r);

    // A writer waiting for the write lock (or coming after the downgrade)
    // stays out until the read lock goes.
    let w = l.write();
    let wrote = Arc::new(AtomicBool::new(false));
    let writer = {
        let (l, wrote) = (Arc::clone(&l), Arc::clone(&wrote));
        sched
            .spawn(move || {
                *l.write() += 1;
                wrote.store(true, Ordering::SeqCst);
            })
            .unwrap()
    };
    let r = RwLockWriteGuard::downgrade(w);
    std::thread::sleep(Duration::from_millis(10));
    assert!(!wrote.load(Ordering::SeqCst), "a writer got in beside the downgraded read lock");
    drop(r);
    writer.join().unwrap();
    assert_eq!(*l.read(), 2);

    let u = RwLockWriteGuard::downgrade_to_upgradable(l.write());
    assert!(l.try_read().is_ok() && l.try_write().is_err() && l.try_upgradable_read().is_err());
    let r = RwLockUpgradableReadGuard::downgrade(u);
    let u2 = l.try_upgradable_read().expect("an upgradable reader after the downgrade");
    drop((r, u2));
    assert!(!l.is_locked());
    println!("4 readers got in on a downgrade; a writer stayed out beside it; upgradable downgrades work");
}

#[test]
fn timed_upgradable_reads_and_upgrades_time_out_when_held() {
    let short = Duration::from_millis(5);
    let al = ApiRwLock::new(());
    let w = al.write();
    assert!(al.try_upgradable_read_for(short).is_none(), "lock_api upgradable read beside a writer");
    assert!(al.try_read_for(short).is_none());
    drop(w);
    let r = al.read();
    let u = al.upgradable_read();
    let u = lock_api::RwLockUpgradableReadGuard::try_upgrade_for(u, short).unwrap_err();
    drop(r);
    assert!(lock_api::RwLockUpgradableReadGuard::try_upgrade_for(u, short).is_ok());

    let l = RwLock::new(());
    let r = l.read();
    let u = l.upgradable_read();
    let u = RwLockUpgradableReadGuard::try_upgrade_for(u, short).expect_err("upgrade beside a reader");
    assert!(l.try_read().is_ok(), "an upgrade that gave up still stops readers");
    drop(r);
    drop(RwLockUpgradableReadGuard::try_upgrade_for(u, short).expect("no reader left"));
    assert!(!l.is_locked());
    println!("timed reads, upgradable reads and upgrades gave up while held, succeeded once free");
}

#[test]
fn mapped_guards_reach_one_field_and_unlock_on_drop() {
    let m = Mutex::new((1u32, String::from("a")));
    {
        let mut s = MutexGuard::map(m.lock(), |v| &mut v.1);
        s.push('b');
        assert!(m.try_lock().is_err(), "a mapped guard holds the mutex");
    }
    assert_eq!(m.try_lock().expect("unlocked when the mapped guard dropped").1, "ab");
    let back = MutexGuard::try_map(m.lock(), |v| v.1.as_mut_str().get_mut(5..)).unwrap_err();
    assert_eq!(back.0, 1);
    drop(back);

    let l = RwLock::new((7u32, vec![1u8]));
    {
        let n = RwLockReadGuard::map(l.read(), |v| &v.0);
        assert_eq!(*n, 7);
        assert!(l.try_write().is_err() && l.try_read().is_ok());
    }
    {
        let mut v = RwLockWriteGuard::map(l.write(), |p| &mut p.1);
        v.push(2);
        assert!(l.try_read().is_err());
    }
    assert_eq!(l.try_write().expect("unlocked when the mapped guards dropped").1, [1, 2]);

    // lock_api's own mapped guards over our raw mutex.
    let am = ApiMutex::new((0u8, 0u8));
    *lock_api::MutexGuard::map(am.lock(), |p| &mut p.1) = 3;
    assert!(!am.is_locked());
    assert_eq!(*am.lock(), (0, 3));
    println!("mapped mutex, read and write guards gave their field and unlocked on drop");
}

/// The calling OS thread's id, to see a green thread move between workers.
fn os_tid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// Green threads lock, park, and lock again; a spinning thread of lower
/// priority on either worker wakes the holder, which then outranks both
/// workers' spinners and runs on the waker's worker when that is the other
/// one (`takes_outranking_wake`): about one wake-up in ten moves it.
/// Reentrancy must follow the green thread, not the OS thread: keyed by OS
/// thread, the relock after a move would wait for itself (the timed relock
/// fails the test instead of hanging), and another locker run on the
/// holder's old OS thread would be let in (the non-atomic count would lose
/// increments). Runs until 8 relocks happened on another OS thread than
/// their outer lock.
#[test]
fn reentrant_mutex_is_per_green_thread_across_workers() {
    use preemptive_mlthreading_rust::thread::DEFAULT_PRIORITY;
    use preemptive_mlthreading_rust::{Thread, ThreadBuilder, current, park_timeout};
    const MOVES: u64 = 8;
    type Wakeup = (Thread, Arc<AtomicBool>);
    let sched = preemptive_mlthreading_rust::WorkStealingScheduler::new().with_workers(2);
    let m = Arc::new(ReentrantMutex::new(Cell::new(0u64)));
    let (moved, rounds, stop) =
        (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
    let wanted: Arc<Mutex<Vec<Wakeup>>> = Arc::new(Mutex::new(Vec::new()));
    let spinners: Vec<_> = (0..2)
        .map(|_| {
            let (stop, wanted) = (Arc::clone(&stop), Arc::clone(&wanted));
            ThreadBuilder::new()
                .priority(DEFAULT_PRIORITY)
                .scheduler(sched.clone())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let next = wanted.try_lock().ok().and_then(|mut w| w.pop());
                        if let Some((t, woken)) = next {
                            woken.store(true, Ordering::Release);
                            t.unpark();
                        }
                        std::hint::spin_loop()
                    }
                })
                .unwrap()
        })
        .collect();
    // Stops the spinners even when a locker's panic fails the test.
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let stopper = StopOnDrop(Arc::clone(&stop));
    let start = std::time::Instant::now();
    let hs: Vec<_> = (0..4)
        .map(|_| {
            let (m, moved, rounds, wanted) =
                (Arc::clone(&m), Arc::clone(&moved), Arc::clone(&rounds), Arc::clone(&wanted));
            ThreadBuilder::new()
                .priority(DEFAULT_PRIORITY + 1)
                .scheduler(sched.clone())
                .spawn(move || {
                    while moved.load(Ordering::Relaxed) < MOVES && start.elapsed() < HANG {
                        let outer = m.lock();
                        let (tid, v) = (os_tid(), outer.get());
                        let woken = Arc::new(AtomicBool::new(false));
                        wanted.lock().push((current(), Arc::clone(&woken)));
                        while !woken.load(Ordering::Acquire) {
                            park_timeout(Duration::from_millis(10));
                        }
                        let inner = m.try_lock_for(HANG).expect("relock by the holder waited for itself");
                        if os_tid() != tid {
                            moved.fetch_add(1, Ordering::Relaxed);
                        }
                        yield_now();
                        inner.set(v + 1);
                        rounds.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .unwrap()
        })
        .collect();
    join_all(hs);
    drop(stopper);
    join_all(spinners);
    let (moved, rounds) = (moved.load(Ordering::Relaxed), rounds.load(Ordering::Relaxed));
    assert_eq!(m.lock().get(), rounds, "another thread got in beside the holder");
    assert!(moved > 0, "no green thread moved to another worker in {HANG:?}: nothing was tested");

    // An OS thread holding it excludes a green thread, and relocks itself.
    let g = m.lock();
    let _again = m.lock();
    let m2 = Arc::clone(&m);
    let refused = sched.spawn(move || m2.try_lock_for(Duration::from_millis(5)).is_none()).unwrap();
    assert!(refused.join().unwrap(), "a green thread got in beside an OS thread holding it");
    assert_eq!(g.get(), rounds);
    println!("{rounds} reentrant relocks exact; {moved} of them on another OS thread than their outer lock");
}
