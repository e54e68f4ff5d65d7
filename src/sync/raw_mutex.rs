//! The lock word behind [`Mutex`](super::Mutex): one atomic operation to
//! lock and one to unlock when uncontended; a wait list when not.
//!
//! **Policy: bounded barging.** An unlock frees the lock and wakes the
//! longest waiter, which then competes with threads that arrive meanwhile
//! (a running thread usually wins, which keeps the lock busy instead of
//! waiting for the woken thread to be scheduled). A waiter that loses goes
//! back to the *front* of the list, and one that has waited more than
//! [`STARVATION`] in total is handed the lock directly by the next unlock,
//! so no thread waits for ever. Go's `sync.Mutex` and `parking_lot` make the
//! same trade; a strict FIFO hand-off halves throughput under contention
//! (every unlock then waits for the next owner to be scheduled).

use super::atomic::{AtomicU8, Ordering, loom_const_fn, spin_hint};
use super::spin::SpinLock;
use super::waiter::{WaitList, Waiter};
use std::time::{Duration, Instant};

const LOCKED: u8 = 1;
/// Some thread is (or is about to be) in the wait list.
const PARKED: u8 = 2;

/// Outcomes of a wait.
const WOKEN: u8 = 1;
const HANDED: u8 = 2;

/// A waiter that has waited this long in total is handed the lock.
pub(crate) const STARVATION: Duration = Duration::from_millis(1);

/// Spins before parking, while nobody is parked, in rounds of 1, 2, 4, ...
/// pause instructions: covers a critical section running on another CPU.
/// Contended throughput grew up to 8 rounds and no further
/// (bench/README.md, "Mutex spin rounds"). On a single CPU the holder
/// cannot be running while we spin, so there is no spinning at all.
#[cfg(not(loom))]
const SPINS: u32 = 8;
#[cfg(loom)]
const SPINS: u32 = 0;

fn spin_rounds() -> u32 {
    #[cfg(not(loom))]
    {
        use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
        static ROUNDS: AtomicU32 = AtomicU32::new(u32::MAX);
        match ROUNDS.load(Relaxed) {
            u32::MAX => {
                let r = if crate::runtime::cpu::num_cpus() > 1 { SPINS } else { 0 };
                ROUNDS.store(r, Relaxed);
                r
            }
            r => r,
        }
    }
    #[cfg(loom)]
    SPINS
}

/// The lock word behind [`Mutex`](super::Mutex), for use through
/// [`lock_api`]: `lock_api::Mutex<RawMutex, T>` is a mutex with this lock's
/// behaviour (parks green threads, bounded barging, 1 ms starvation
/// hand-off) and `lock_api`'s guards, for code written against `lock_api`
/// or `parking_lot`'s API.
///
/// It implements [`lock_api::RawMutex`], [`lock_api::RawMutexTimed`]
/// (timed locks never keep a lock they gave up on) and
/// [`lock_api::RawMutexFair`]: `unlock_fair` hands the lock to the longest
/// waiter, which then owns it without competing. Unlocking from another
/// thread than the locking one is fine (the lock has no owner), so
/// `lock_api`'s guards over it are `Send`.
///
/// ```
/// use preemptive_mlthreading_rust::{spawn, sync::RawMutex};
/// use std::sync::Arc;
///
/// type Mutex<T> = lock_api::Mutex<RawMutex, T>;
///
/// let m = Arc::new(Mutex::new(0u64));
/// let hs: Vec<_> = (0..4).map(|_| {
///     let m = Arc::clone(&m);
///     spawn(move || for _ in 0..1000 { *m.lock() += 1 }).unwrap()
/// }).collect();
/// hs.into_iter().for_each(|h| h.join().unwrap());
/// assert_eq!(*m.lock(), 4000);
/// assert!(m.try_lock().is_some());
/// ```
pub struct RawMutex {
    state: AtomicU8,
    waiters: SpinLock<WaitList>,
}

impl RawMutex {
    loom_const_fn! {
        pub(crate) fn new() -> Self {
            RawMutex { state: AtomicU8::new(0), waiters: SpinLock::new(WaitList::new()) }
        }
    }

    #[inline]
    pub(crate) fn try_lock(&self) -> bool {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s & LOCKED != 0 {
                return false;
            }
            match self.state.compare_exchange_weak(s, s | LOCKED, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
    }

    #[inline]
    pub(crate) fn lock(&self) {
        if self.state.compare_exchange_weak(0, LOCKED, Ordering::Acquire, Ordering::Relaxed).is_err() {
            self.lock_slow(None);
        }
    }

    /// Locks unless `deadline` passes first; false then, and the lock was
    /// not handed to us.
    #[inline]
    pub(crate) fn lock_until(&self, deadline: Instant) -> bool {
        self.try_lock() || self.lock_slow(Some(deadline))
    }

    pub(crate) fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) & LOCKED != 0
    }

    /// # Safety
    /// The lock must be held (by anyone: this mutex has no owner check).
    #[inline]
    pub(crate) unsafe fn unlock(&self) {
        if self.state.compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed).is_err() {
            self.unlock_slow(false);
        }
    }

    /// Unlocks, handing the lock to the longest waiter if any waits: it
    /// owns the lock on waking, whoever arrives meanwhile.
    ///
    /// # Safety
    /// As for [`unlock`](Self::unlock).
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) unsafe fn unlock_fair(&self) {
        if self.state.compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed).is_err() {
            self.unlock_slow(true);
        }
    }

    /// Takes the lock against contention; a wait that parked is counted
    /// (`runtime::contention`).
    #[cold]
    fn lock_slow(&self, deadline: Option<Instant>) -> bool {
        let mut first_park = None;
        let got = self.lock_contended(deadline, &mut first_park);
        if got && let Some(since) = first_park {
            crate::runtime::contention::waited(since);
        }
        got
    }

    fn lock_contended(&self, deadline: Option<Instant>, first_park: &mut Option<Instant>) -> bool {
        let mut spins = 0;
        let max_spins = spin_rounds();
        let mut waiter: Option<Waiter> = None;
        let mut front = false;
        loop {
            let s = self.state.load(Ordering::Relaxed);
            if s & LOCKED == 0 {
                if self.state.compare_exchange_weak(s, s | LOCKED, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                    return true;
                }
                continue;
            }
            if s & PARKED == 0 && spins < max_spins {
                for _ in 0..1 << spins {
                    spin_hint();
                }
                spins += 1;
                continue;
            }
            if let Some(d) = deadline
                && Instant::now() >= d
            {
                return false;
            }
            let w = waiter.get_or_insert_with(Waiter::new);
            {
                let mut list = self.waiters.lock();
                let s = self.state.load(Ordering::Relaxed);
                if s & LOCKED == 0 {
                    continue;
                }
                if s & PARKED == 0
                    && self.state.compare_exchange(s, s | PARKED, Ordering::Relaxed, Ordering::Relaxed).is_err()
                {
                    continue;
                }
                let since = *first_park.get_or_insert_with(Instant::now);
                // Written under the lock: the unlocker reads it there.
                w.flag.set(front && (cfg!(loom) || since.elapsed() >= STARVATION));
                // SAFETY: `w` stays in place (in `waiter`) until a waker
                // unlinks it or we do, below.
                unsafe { list.push(w, front) };
            }
            match w.park_until(deadline) {
                Some(HANDED) => return true,
                Some(_) => {
                    // Woken to compete; if we lose, we wait at the front.
                    front = true;
                    spins = 0;
                    w.rearm();
                }
                None => {
                    let mut list = self.waiters.lock();
                    if list.remove_if_waiting(w) {
                        if list.is_empty() {
                            self.state.fetch_and(!PARKED, Ordering::Relaxed);
                        }
                        return false;
                    }
                    drop(list);
                    // Decided while we gave up. Handed: it is ours. Woken:
                    // the wake-up was meant for us, so try once before
                    // leaving; if the lock is taken again its holder's
                    // unlock wakes the next waiter, so none is stranded.
                    return w.outcome() == HANDED || self.try_lock();
                }
            }
        }
    }

    /// With `fair`, the first waiter is handed the lock whether it starves
    /// or not.
    #[cold]
    fn unlock_slow(&self, fair: bool) {
        let mut list = self.waiters.lock();
        let wake = match list.front() {
            None => {
                // The only waiter timed out between our CAS and here.
                self.state.fetch_and(!LOCKED, Ordering::Release);
                return;
            }
            Some(first) => {
                let rest = if list.len() > 1 { PARKED } else { 0 };
                if fair || first.flag.get() {
                    // Starving (or a fair unlock): keep LOCKED, the waiter owns it now. The
                    // waiter's Acquire of its outcome orders our critical
                    // section before its own.
                    self.state.store(LOCKED | rest, Ordering::Release);
                    list.wake_front(HANDED)
                } else {
                    // Nobody can change the word meanwhile: LOCKED stops
                    // acquirers and PARKED is only set under this lock.
                    self.state.store(rest, Ordering::Release);
                    list.wake_front(WOKEN)
                }
            }
        };
        drop(list);
        if let Some(w) = wake {
            w.unpark();
        }
    }
}
