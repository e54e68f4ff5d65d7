//! [`lock_api`]'s raw-lock traits for [`RawMutex`] and [`RawRwLock`], so
//! that `lock_api::Mutex<RawMutex, T>`, `lock_api::RwLock<RawRwLock, T>`
//! and `lock_api::ReentrantMutex` (see `reentrant`) run on this crate's
//! locks. Each method is the raw lock's own; timeouts that overflow
//! `Instant` mean "never", as in [`Mutex::try_lock_for`](super::Mutex::try_lock_for).
//!
//! Not under loom, whose atomics have no `const` constructors for `INIT`.
//!
//! **Guards are `Send` ([`GuardSend`]).** Neither lock has an owner: an
//! unlock is an atomic operation on the word and, when someone waits, a
//! dispatch under the lock's own spin lock that wakes the waiters through
//! the handles their entries carry. Nothing in it reads or needs the
//! identity, the thread-locals or the worker of the unlocking thread. A
//! green thread already unlocks on another OS thread than it locked on
//! whenever it migrated in between, so an unlock from a different green
//! or OS thread takes no path that this one does not. (The crate's own
//! guards stay `!Send` like std's, which is an API promise, not a need of
//! the locks.)

use super::error::deadline_after;
use super::raw_mutex::RawMutex;
use super::raw_rwlock::RawRwLock;
use lock_api::GuardSend;
use std::time::{Duration, Instant};

// SAFETY: `lock`/`try_lock` give the lock to one holder at a time (the
// word's LOCKED bit, taken with Acquire, released with Release in
// `unlock`); `INIT` is an unlocked mutex; unlocking from any thread is
// sound (module docs).
unsafe impl lock_api::RawMutex for RawMutex {
    #[allow(clippy::declare_interior_mutable_const)] // lock_api's INIT idiom
    const INIT: Self = RawMutex::new();
    type GuardMarker = GuardSend;

    #[inline]
    fn lock(&self) {
        RawMutex::lock(self)
    }

    #[inline]
    fn try_lock(&self) -> bool {
        RawMutex::try_lock(self)
    }

    #[inline]
    unsafe fn unlock(&self) {
        // SAFETY: the caller holds the lock (the trait's contract).
        unsafe { RawMutex::unlock(self) }
    }

    fn is_locked(&self) -> bool {
        RawMutex::is_locked(self)
    }
}

// SAFETY: `unlock_fair` releases the lock like `unlock`, or hands it to a
// waiter, which returns from its lock call holding it.
unsafe impl lock_api::RawMutexFair for RawMutex {
    unsafe fn unlock_fair(&self) {
        // SAFETY: the caller holds the lock (the trait's contract).
        unsafe { RawMutex::unlock_fair(self) }
    }
}

// SAFETY: a timed lock returns true only holding the lock, and a lock is
// never handed to a waiter that gave up (raw_mutex's timeout path).
unsafe impl lock_api::RawMutexTimed for RawMutex {
    type Duration = Duration;
    type Instant = Instant;

    fn try_lock_for(&self, timeout: Duration) -> bool {
        match deadline_after(timeout) {
            Some(d) => self.lock_until(d),
            None => {
                RawMutex::lock(self);
                true
            }
        }
    }

    fn try_lock_until(&self, deadline: Instant) -> bool {
        self.lock_until(deadline)
    }
}

// SAFETY: readers share the lock only while no writer holds it, and a
// writer holds it alone (raw_rwlock's state word); `INIT` is unlocked;
// unlocking from any thread is sound (module docs).
unsafe impl lock_api::RawRwLock for RawRwLock {
    #[allow(clippy::declare_interior_mutable_const)] // lock_api's INIT idiom
    const INIT: Self = RawRwLock::new();
    type GuardMarker = GuardSend;

    #[inline]
    fn lock_shared(&self) {
        self.read(None);
    }

    #[inline]
    fn try_lock_shared(&self) -> bool {
        self.try_read()
    }

    #[inline]
    unsafe fn unlock_shared(&self) {
        // SAFETY: the caller holds a read lock (the trait's contract).
        unsafe { self.read_unlock() }
    }

    #[inline]
    fn lock_exclusive(&self) {
        self.write(None);
    }

    #[inline]
    fn try_lock_exclusive(&self) -> bool {
        self.try_write()
    }

    #[inline]
    unsafe fn unlock_exclusive(&self) {
        // SAFETY: the caller holds the write lock (the trait's contract).
        unsafe { self.write_unlock() }
    }

    fn is_locked(&self) -> bool {
        RawRwLock::is_locked(self)
    }

    fn is_locked_exclusive(&self) -> bool {
        RawRwLock::is_locked_exclusive(self)
    }
}

// SAFETY: the write lock becomes a read lock in one atomic step, so no
// writer can come in between.
unsafe impl lock_api::RawRwLockDowngrade for RawRwLock {
    unsafe fn downgrade(&self) {
        // SAFETY: the caller holds the write lock (the trait's contract).
        unsafe { RawRwLock::downgrade(self) }
    }
}

// SAFETY: timed locks return true only holding the lock, and a grant is
// never made to a waiter that gave up (raw_rwlock's hand-offs).
unsafe impl lock_api::RawRwLockTimed for RawRwLock {
    type Duration = Duration;
    type Instant = Instant;

    fn try_lock_shared_for(&self, timeout: Duration) -> bool {
        self.read(deadline_after(timeout))
    }

    fn try_lock_shared_until(&self, deadline: Instant) -> bool {
        self.read(Some(deadline))
    }

    fn try_lock_exclusive_for(&self, timeout: Duration) -> bool {
        self.write(deadline_after(timeout))
    }

    fn try_lock_exclusive_until(&self, deadline: Instant) -> bool {
        self.write(Some(deadline))
    }
}

// SAFETY: one upgradable reader at a time (the UPGRADABLE bit), beside
// readers and never beside a writer; an upgrade turns UPGRADABLE into
// WRITER only when no reader holds the lock, in one atomic step.
unsafe impl lock_api::RawRwLockUpgrade for RawRwLock {
    #[inline]
    fn lock_upgradable(&self) {
        self.upgradable(None);
    }

    #[inline]
    fn try_lock_upgradable(&self) -> bool {
        RawRwLock::try_upgradable(self)
    }

    #[inline]
    unsafe fn unlock_upgradable(&self) {
        // SAFETY: the caller holds the upgradable lock (the trait's contract).
        unsafe { self.upgradable_unlock() }
    }

    unsafe fn upgrade(&self) {
        // SAFETY: as above.
        unsafe { RawRwLock::upgrade(self, None) };
    }

    unsafe fn try_upgrade(&self) -> bool {
        // SAFETY: as above.
        unsafe { RawRwLock::try_upgrade(self) }
    }
}

// SAFETY: each trade replaces the held lock by the weaker one in one
// atomic step.
unsafe impl lock_api::RawRwLockUpgradeDowngrade for RawRwLock {
    unsafe fn downgrade_upgradable(&self) {
        // SAFETY: the caller holds the upgradable lock (the trait's contract).
        unsafe { RawRwLock::downgrade_upgradable(self) }
    }

    unsafe fn downgrade_to_upgradable(&self) {
        // SAFETY: the caller holds the write lock (the trait's contract).
        unsafe { RawRwLock::downgrade_to_upgradable(self) }
    }
}

// SAFETY: as for the untimed upgrade; a timed-out upgrade leaves the
// caller holding the upgradable lock, and its wait unlinked.
unsafe impl lock_api::RawRwLockUpgradeTimed for RawRwLock {
    fn try_lock_upgradable_for(&self, timeout: Duration) -> bool {
        self.upgradable(deadline_after(timeout))
    }

    fn try_lock_upgradable_until(&self, deadline: Instant) -> bool {
        self.upgradable(Some(deadline))
    }

    unsafe fn try_upgrade_for(&self, timeout: Duration) -> bool {
        // SAFETY: the caller holds the upgradable lock (the trait's contract).
        unsafe { RawRwLock::upgrade(self, deadline_after(timeout)) }
    }

    unsafe fn try_upgrade_until(&self, deadline: Instant) -> bool {
        // SAFETY: as above.
        unsafe { RawRwLock::upgrade(self, Some(deadline)) }
    }
}
