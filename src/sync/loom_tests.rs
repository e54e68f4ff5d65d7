//! Loom models of the park/wake protocol behind the blocking primitives.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test --release --lib sync::loom`
//! (`.ci/loom.sh`). Under loom a timed wait may time out at any point
//! (see `waiter::park_timeout`), so the timeout races are explored too.

use super::RwLockUpgradableReadGuard;
use super::raw_mutex::RawMutex;
use super::{Condvar, Mutex, RwLock, Semaphore};
use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;
use std::time::Duration;

/// A counter that loom checks for unsynchronised access: two holders of
/// the "same" lock at once would be reported as a data race.
struct Checked(UnsafeCell<u32>);

// SAFETY: only touched under the lock being checked; loom reports a race
// if that lock fails to exclude.
unsafe impl Sync for Checked {}

impl Checked {
    fn new() -> Self {
        Checked(UnsafeCell::new(0))
    }
    fn bump(&self) {
        // SAFETY: the caller holds the lock under test (loom verifies it).
        self.0.with_mut(|p| unsafe { *p += 1 })
    }
    fn get(&self) -> u32 {
        // SAFETY: as above.
        self.0.with(|p| unsafe { *p })
    }
}

#[test]
fn mutex_excludes_and_wakes() {
    loom::model(|| {
        let m = Arc::new(Mutex::new(()));
        let c = Arc::new(Checked::new());
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let (m, c) = (m.clone(), c.clone());
                thread::spawn(move || {
                    let _g = m.lock();
                    c.bump();
                })
            })
            .collect();
        {
            let _g = m.lock();
            c.bump();
        }
        hs.into_iter().for_each(|h| h.join().unwrap());
        let _g = m.lock();
        assert_eq!(c.get(), 3);
    });
}

/// Two waiters behind a holder: the second may spin while the first is
/// parked, taking the AWAKE duty; an unlock must still wake someone.
#[test]
fn mutex_unlock_wakes_past_a_spinner_that_parked() {
    loom::model(|| {
        let m = Arc::new(Mutex::new(()));
        let c = Arc::new(Checked::new());
        let g = m.lock();
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let (m, c) = (m.clone(), c.clone());
                thread::spawn(move || {
                    let _g = m.lock();
                    c.bump();
                })
            })
            .collect();
        drop(g);
        hs.into_iter().for_each(|h| h.join().unwrap());
        // The joins order both increments before this read.
        assert_eq!(c.get(), 2);
    });
}

#[test]
fn mutex_timed_lock_never_keeps_a_lock_it_gave_up_on() {
    loom::model(|| {
        let m = Arc::new(Mutex::new(0u32));
        let m2 = m.clone();
        let h = thread::spawn(move || {
            let got = m2.try_lock_for(Duration::from_millis(1)).map(|mut g| *g += 1).is_ok();
            got
        });
        {
            let mut g = m.lock();
            *g += 10;
        }
        let got = h.join().unwrap();
        // A lock handed to the thread that gave up would never be released.
        let g = m.try_lock().expect("left locked");
        assert_eq!(*g, if got { 11 } else { 10 });
    });
}

#[test]
fn condvar_notification_is_not_lost() {
    loom::model(|| {
        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        let p = pair.clone();
        let h = thread::spawn(move || {
            *p.0.lock() = true;
            p.1.notify_one();
        });
        let (m, cv) = &*pair;
        let g = cv.wait_while(m.lock(), |ready| !*ready);
        assert!(*g);
        drop(g);
        h.join().unwrap();
    });
}

#[test]
fn condvar_timed_wait_racing_a_notify() {
    loom::model(|| {
        let pair = Arc::new((Mutex::new(0u32), Condvar::new()));
        let p = pair.clone();
        let h = thread::spawn(move || {
            *p.0.lock() += 1;
            p.1.notify_all();
        });
        let (m, cv) = &*pair;
        let (g, r) = cv.wait_timeout_while(m.lock(), Duration::from_millis(1), |v| *v == 0);
        // Timed out means the condition still held at the deadline.
        assert_eq!(r.timed_out(), *g == 0);
        drop(g);
        h.join().unwrap();
    });
}

#[test]
fn rwlock_writer_excludes_readers() {
    loom::model(|| {
        let l = Arc::new(RwLock::new(()));
        let c = Arc::new(Checked::new());
        let (l2, c2) = (l.clone(), c.clone());
        let w = thread::spawn(move || {
            let _g = l2.write();
            c2.bump();
        });
        let (l3, c3) = (l.clone(), c.clone());
        let r = thread::spawn(move || {
            let _g = l3.read();
            c3.get()
        });
        {
            let _g = l.read();
            let _ = c.get();
        }
        w.join().unwrap();
        let seen = r.join().unwrap();
        assert!(seen <= 1);
        assert_eq!(c.get(), 1);
    });
}

#[test]
fn rwlock_timed_writer_leaving_lets_queued_readers_in() {
    loom::model(|| {
        let l = Arc::new(RwLock::new(()));
        let held = l.read();
        let l2 = l.clone();
        let w = thread::spawn(move || l2.try_write_for(Duration::from_millis(1)).is_ok());
        let l3 = l.clone();
        let r = thread::spawn(move || drop(l3.read()));
        r.join().unwrap();
        drop(held);
        w.join().unwrap();
        assert!(!l.is_locked());
    });
}

/// Runs `f` on a new thread with its own handles to `l` and `c`.
fn on_thread(l: &Arc<RwLock<()>>, c: &Arc<Checked>, f: fn(&RwLock<()>, &Checked) -> u32) -> thread::JoinHandle<u32> {
    let (l, c) = (l.clone(), c.clone());
    thread::spawn(move || f(&l, &c))
}

fn write_bump(l: &RwLock<()>, c: &Checked) -> u32 {
    let _g = l.write();
    c.bump();
    0
}

fn read_count(l: &RwLock<()>, c: &Checked) -> u32 {
    let _g = l.read();
    c.get()
}

/// Reads under an upgradable lock, upgrades, checks that nobody wrote in
/// between, and bumps the count.
fn read_then_upgrade(l: &RwLock<()>, c: &Checked) -> u32 {
    let u = l.upgradable_read();
    let before = c.get();
    let _g = RwLockUpgradableReadGuard::upgrade(u);
    assert_eq!(c.get(), before, "a write came between the upgradable read and the upgrade");
    c.bump();
    0
}

/// An upgrade on the main thread beside `other` (which bumps the count
/// once, under the lock) and a plain reader: the upgrade completes (no
/// lost wake-up when the reader leaves), nobody writes between the
/// upgradable read and the upgrade, and writers exclude everyone (loom
/// reports a race otherwise).
fn upgrade_beside(other: fn(&RwLock<()>, &Checked) -> u32) {
    loom::model(move || {
        let (l, c) = (Arc::new(RwLock::new(())), Arc::new(Checked::new()));
        let o = on_thread(&l, &c, other);
        let r = on_thread(&l, &c, read_count);
        read_then_upgrade(&l, &c);
        o.join().unwrap();
        assert!(r.join().unwrap() <= 2);
        assert_eq!(c.get(), 2);
        assert!(!l.is_locked());
    });
}

/// An upgradable reader (main), a plain reader and a writer.
#[test]
fn rwlock_upgrade_excludes_writers_and_completes() {
    upgrade_beside(write_bump);
}

/// Two upgradable readers and a plain reader: the second upgradable
/// reader queues (with the writers) and is granted when the first leaves;
/// a reader queued behind it is let in beside it.
#[test]
fn rwlock_upgradable_readers_take_turns() {
    upgrade_beside(read_then_upgrade);
}

/// An upgrade that times out behind a reader (loom times a wait out at
/// any point; the long deadline keeps the real clock out of it) must let
/// in a reader that queued behind it, and leave nothing held.
#[test]
fn rwlock_timed_upgrade_leaving_lets_queued_readers_in() {
    loom::model(|| {
        let (l, c) = (Arc::new(RwLock::new(())), Arc::new(Checked::new()));
        let held = l.read();
        let u = on_thread(&l, &c, |l, _| {
            let g = l.upgradable_read();
            RwLockUpgradableReadGuard::try_upgrade_for(g, Duration::from_secs(3600)).is_ok() as u32
        });
        on_thread(&l, &c, read_count).join().unwrap();
        drop(held);
        u.join().unwrap();
        assert!(!l.is_locked());
    });
}

/// A fair unlock hands the lock to the waiter, including one whose timed
/// wait is running out: it either keeps what it was handed or was never
/// handed it.
#[test]
fn mutex_fair_unlock_hands_off_to_a_timed_waiter() {
    loom::model(|| {
        let m = Arc::new(RawMutex::new());
        m.lock();
        let m2 = m.clone();
        let h = thread::spawn(move || {
            let got = m2.lock_until(std::time::Instant::now() + Duration::from_secs(3600));
            if got {
                // SAFETY: we hold the lock.
                unsafe { m2.unlock() };
            }
        });
        // SAFETY: this thread holds the lock.
        unsafe { m.unlock_fair() };
        h.join().unwrap();
        assert!(m.try_lock(), "left locked");
    });
}

#[test]
fn semaphore_permits_are_conserved() {
    loom::model(|| {
        let s = Arc::new(Semaphore::new(1));
        let c = Arc::new(Checked::new());
        let hs: Vec<_> = (0..2)
            .map(|i| {
                let (s, c) = (s.clone(), c.clone());
                thread::spawn(move || {
                    if i == 0 {
                        let _p = s.acquire();
                        c.bump();
                    } else if let Ok(_p) = s.acquire_timeout(Duration::from_millis(1)) {
                        c.bump();
                    }
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(s.available_permits(), 1);
        assert!(c.get() >= 1);
    });
}
