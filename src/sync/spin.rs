//! The short internal lock that guards a primitive's wait list.
//!
//! Held for a handful of instructions and never across a park, so spinning
//! is cheaper than anything that sleeps. Preemption is disabled while it is
//! held: a green thread suspended holding it would leave every other thread
//! that wants it spinning for a whole time slice. It stays enabled while a
//! thread spins waiting for it (see [`SpinLock::lock`]).

use super::atomic::{AtomicBool, Ordering, spin_hint};
use crate::preempt::{self, PreemptGuard};
use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};

pub(crate) struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out the value to one holder at a time.
unsafe impl<T: Send> Send for SpinLock<T> {}
// SAFETY: as above; access to `value` is serialised by `locked`.
unsafe impl<T: Send> Sync for SpinLock<T> {}

pub(crate) struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
    // Declared after `lock` so that it drops after the release: a pending
    // preemption is taken with the lock already free.
    _preempt: PreemptGuard,
}

impl<T> SpinLock<T> {
    super::atomic::loom_const_fn! {
        pub(crate) fn new(value: T) -> Self {
            SpinLock { locked: AtomicBool::new(false), value: UnsafeCell::new(value) }
        }
    }

    /// Takes the lock. Preemption is off while it is held, but not while
    /// the caller waits for it: the holder may be stuck behind a thread
    /// preempted on the waiter's own worker (the holder's `realloc` waiting
    /// for an arena lock that thread holds), and a waiter that could not be
    /// preempted would keep that thread from ever running again.
    #[inline]
    pub(crate) fn lock(&self) -> SpinGuard<'_, T> {
        loop {
            let preempt = preempt::disable();
            if self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                return SpinGuard { lock: self, _preempt: preempt };
            }
            // A preemption that came meanwhile is taken here.
            drop(preempt);
            while self.locked.load(Ordering::Relaxed) {
                spin_hint();
            }
        }
    }
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: we hold the lock.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: we hold the lock, exclusively.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}
