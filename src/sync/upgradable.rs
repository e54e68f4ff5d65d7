//! Upgradable reads of an [`RwLock`]: [`RwLock::upgradable_read`] and
//! [`RwLockUpgradableReadGuard`], as in `parking_lot`. The lock word's
//! side of it is in `raw_rwlock` ("Upgradable reads").

use super::error::{TimedOut, WouldBlock, deadline_after};
use super::rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::fmt;
use std::marker::PhantomData;
use std::mem;
use std::ops::Deref;
use std::time::{Duration, Instant};

/// Shared access to an [`RwLock`]'s value that can become exclusive
/// without letting a writer in between: made by
/// [`RwLock::upgradable_read`].
///
/// One thread at a time holds it, beside any number of plain readers;
/// writers and other upgradable readers wait. [`upgrade`](Self::upgrade)
/// waits for the plain readers to leave (new ones queue behind it), so
/// what was read under this guard still holds when the write begins.
///
/// ```
/// use preemptive_mlthreading_rust::sync::{RwLock, RwLockUpgradableReadGuard};
///
/// let cache = RwLock::new(Vec::<u32>::new());
/// let g = cache.upgradable_read();
/// if g.is_empty() {
///     let mut w = RwLockUpgradableReadGuard::upgrade(g); // nobody wrote meanwhile
///     w.push(42);
/// }
/// assert_eq!(*cache.read(), [42]);
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RwLockUpgradableReadGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: a shared guard only gives `&T`.
unsafe impl<T: ?Sized + Sync> Sync for RwLockUpgradableReadGuard<'_, T> {}

impl<T: ?Sized> RwLock<T> {
    /// Locks for an upgradable read, waiting as long as it takes: beside
    /// plain readers, but after the writers and upgradable readers already
    /// waiting.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::RwLock;
    ///
    /// let l = RwLock::new(1);
    /// let u = l.upgradable_read();
    /// assert_eq!(*l.read() + *u, 2); // plain readers still come in
    /// assert!(l.try_write().is_err() && l.try_upgradable_read().is_err());
    /// ```
    #[inline]
    pub fn upgradable_read(&self) -> RwLockUpgradableReadGuard<'_, T> {
        self.raw.upgradable(None);
        RwLockUpgradableReadGuard::new(self)
    }

    /// Locks for an upgradable read if that needs no waiting.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::RwLock;
    ///
    /// let l = RwLock::new(());
    /// let u = l.try_upgradable_read().unwrap();
    /// assert!(l.try_upgradable_read().is_err());
    /// drop(u);
    /// assert!(l.try_upgradable_read().is_ok());
    /// ```
    #[inline]
    pub fn try_upgradable_read(&self) -> Result<RwLockUpgradableReadGuard<'_, T>, WouldBlock> {
        if self.raw.try_upgradable() { Ok(RwLockUpgradableReadGuard::new(self)) } else { Err(WouldBlock) }
    }

    /// Locks for an upgradable read, giving up after `timeout`.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::{Duration, sync::RwLock};
    ///
    /// let l = RwLock::new(());
    /// let _w = l.write();
    /// assert!(l.try_upgradable_read_for(Duration::from_millis(2)).is_err());
    /// ```
    pub fn try_upgradable_read_for(&self, timeout: Duration) -> Result<RwLockUpgradableReadGuard<'_, T>, TimedOut> {
        self.upgradable_by(deadline_after(timeout))
    }

    /// Locks for an upgradable read, giving up at `deadline`.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::RwLock;
    /// use std::time::Instant;
    ///
    /// let l = RwLock::new(());
    /// let _u = l.upgradable_read();
    /// assert!(l.try_upgradable_read_until(Instant::now()).is_err());
    /// ```
    pub fn try_upgradable_read_until(&self, deadline: Instant) -> Result<RwLockUpgradableReadGuard<'_, T>, TimedOut> {
        self.upgradable_by(Some(deadline))
    }

    fn upgradable_by(&self, deadline: Option<Instant>) -> Result<RwLockUpgradableReadGuard<'_, T>, TimedOut> {
        if self.raw.upgradable(deadline) { Ok(RwLockUpgradableReadGuard::new(self)) } else { Err(TimedOut) }
    }
}

impl<'a, T: ?Sized> RwLockUpgradableReadGuard<'a, T> {
    fn new(lock: &'a RwLock<T>) -> Self {
        RwLockUpgradableReadGuard { lock, _not_send: PhantomData }
    }

    /// Ends the guard without unlocking: its lock passes to the caller.
    fn into_lock(s: Self) -> &'a RwLock<T> {
        let lock = s.lock;
        mem::forget(s);
        lock
    }

    /// Becomes a write guard once the plain readers have left. No writer
    /// comes in between, and new readers wait behind the upgrade.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::{RwLock, RwLockUpgradableReadGuard};
    ///
    /// let l = RwLock::new(1);
    /// let mut w = RwLockUpgradableReadGuard::upgrade(l.upgradable_read());
    /// *w += 1;
    /// drop(w);
    /// assert_eq!(*l.read(), 2);
    /// ```
    pub fn upgrade(s: Self) -> RwLockWriteGuard<'a, T> {
        let lock = Self::into_lock(s);
        // SAFETY: we hold the upgradable lock (handed over by `s`).
        unsafe { lock.raw.upgrade(None) };
        RwLockWriteGuard::new(lock)
    }

    /// Becomes a write guard if no plain reader holds the lock; else gives
    /// the guard back, still upgradable.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::{RwLock, RwLockUpgradableReadGuard};
    ///
    /// let l = RwLock::new(());
    /// let r = l.read();
    /// let u = RwLockUpgradableReadGuard::try_upgrade(l.upgradable_read()).unwrap_err();
    /// drop(r);
    /// assert!(RwLockUpgradableReadGuard::try_upgrade(u).is_ok());
    /// ```
    pub fn try_upgrade(s: Self) -> Result<RwLockWriteGuard<'a, T>, Self> {
        // SAFETY: the guard proves we hold the upgradable lock.
        if unsafe { s.lock.raw.try_upgrade() } { Ok(RwLockWriteGuard::new(Self::into_lock(s))) } else { Err(s) }
    }

    /// [`upgrade`](Self::upgrade), giving up after `timeout`: then the
    /// guard comes back, still upgradable.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::{Duration, sync::{RwLock, RwLockUpgradableReadGuard}};
    ///
    /// let l = RwLock::new(());
    /// let _r = l.read();
    /// let u = l.upgradable_read();
    /// let u = RwLockUpgradableReadGuard::try_upgrade_for(u, Duration::from_millis(2)).unwrap_err();
    /// assert!(l.try_read().is_ok()); // the upgrade that gave up stops no reader
    /// drop(u);
    /// ```
    pub fn try_upgrade_for(s: Self, timeout: Duration) -> Result<RwLockWriteGuard<'a, T>, Self> {
        Self::upgrade_by(s, deadline_after(timeout))
    }

    /// [`upgrade`](Self::upgrade), giving up at `deadline`.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::{RwLock, RwLockUpgradableReadGuard};
    /// use std::time::Instant;
    ///
    /// let l = RwLock::new(());
    /// let u = l.upgradable_read();
    /// assert!(RwLockUpgradableReadGuard::try_upgrade_until(u, Instant::now()).is_ok()); // no reader
    /// ```
    pub fn try_upgrade_until(s: Self, deadline: Instant) -> Result<RwLockWriteGuard<'a, T>, Self> {
        Self::upgrade_by(s, Some(deadline))
    }

    fn upgrade_by(s: Self, deadline: Option<Instant>) -> Result<RwLockWriteGuard<'a, T>, Self> {
        // SAFETY: the guard proves we hold the upgradable lock; a timed-out
        // upgrade leaves it held.
        if unsafe { s.lock.raw.upgrade(deadline) } { Ok(RwLockWriteGuard::new(Self::into_lock(s))) } else { Err(s) }
    }

    /// Becomes a plain read guard, letting another upgradable reader in.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::{RwLock, RwLockUpgradableReadGuard};
    ///
    /// let l = RwLock::new(3);
    /// let r = RwLockUpgradableReadGuard::downgrade(l.upgradable_read());
    /// assert_eq!(*r, 3);
    /// assert!(l.try_upgradable_read().is_ok());
    /// ```
    pub fn downgrade(s: Self) -> RwLockReadGuard<'a, T> {
        let lock = Self::into_lock(s);
        // SAFETY: we hold the upgradable lock (handed over by `s`).
        unsafe { lock.raw.downgrade_upgradable() };
        RwLockReadGuard::new(lock)
    }
}

impl<'a, T: ?Sized> RwLockWriteGuard<'a, T> {
    /// Trades the write lock for the upgradable read lock in one step: no
    /// writer comes in between, and readers may join.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::{RwLock, RwLockWriteGuard};
    ///
    /// let l = RwLock::new(0);
    /// let u = RwLockWriteGuard::downgrade_to_upgradable(l.write());
    /// assert!(l.try_read().is_ok() && l.try_write().is_err());
    /// drop(u);
    /// ```
    pub fn downgrade_to_upgradable(s: Self) -> RwLockUpgradableReadGuard<'a, T> {
        let lock = s.lock;
        mem::forget(s);
        // SAFETY: we held the write lock (`s`, forgotten: its unlock is
        // not run).
        unsafe { lock.raw.downgrade_to_upgradable() };
        RwLockUpgradableReadGuard::new(lock)
    }
}

impl<T: ?Sized> Deref for RwLockUpgradableReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves the upgradable lock is held: no writer.
        unsafe { &*self.lock.data_ptr() }
    }
}

impl<T: ?Sized> Drop for RwLockUpgradableReadGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the guard proves the upgradable lock is held.
        unsafe { self.lock.raw.upgradable_unlock() }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockUpgradableReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
