//! [`lock_api`]'s raw-lock traits for [`RawMutex`], so that
//! `lock_api::Mutex<RawMutex, T>` runs on this crate's lock. Each method is the raw lock's own; timeouts that overflow
//! `Instant` mean "never", as in [`Mutex::try_lock_for`](super::Mutex::try_lock_for).
//!
//! Not under loom, whose atomics have no `const` constructors for `INIT`.
//!
//! **Guards are `Send` ([`GuardSend`]).** The lock has no owner: an
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
