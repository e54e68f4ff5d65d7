use super::error::{TimedOut, WouldBlock, deadline_after};
use super::raw_rwlock::RawRwLock;
use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

/// A reader-writer lock that parks waiting green threads (and blocks
/// waiting OS threads).
///
/// - Uncontended: one atomic operation to lock, one to unlock, for either
///   mode.
/// - Phase-fair: once a writer waits, new readers wait behind it; a writer
///   leaving lets every reader waiting at that moment in before the next
///   writer. Neither side starves. Grants are hand-offs, so a timed-out
///   waiter never holds the lock unknowingly.
/// - No poisoning (like `parking_lot`): `read`/`write` return guards.
/// - Taking a read lock twice in one thread can deadlock when a writer
///   queues in between.
///
/// ```
/// use preemptive_mlthreading_rust::sync::RwLock;
///
/// static DATA: RwLock<Vec<u32>> = RwLock::new(Vec::new());
///
/// DATA.write().push(1);
/// let (a, b) = (DATA.read(), DATA.read()); // many readers at once
/// assert_eq!(a.len() + b.len(), 2);
/// ```
pub struct RwLock<T: ?Sized> {
    pub(super) raw: RawRwLock,
    data: UnsafeCell<T>,
}

// SAFETY: the lock hands `&mut T` to one writer at a time, and `&T` only to
// readers while no writer holds it.
unsafe impl<T: ?Sized + Send> Send for RwLock<T> {}
// SAFETY: as above; readers share `&T`, hence `T: Sync`.
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}

/// Shared access to an [`RwLock`]'s value.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RwLockReadGuard<'a, T: ?Sized> {
    pub(super) lock: &'a RwLock<T>,
    _not_send: PhantomData<*const ()>,
}

/// Exclusive access to an [`RwLock`]'s value.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    pub(super) lock: &'a RwLock<T>,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: shared guards only give `&T`.
unsafe impl<T: ?Sized + Sync> Sync for RwLockReadGuard<'_, T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Sync> Sync for RwLockWriteGuard<'_, T> {}

impl<T> RwLock<T> {
    /// A new unlocked lock; usable in a `static`.
    #[cfg(not(loom))]
    pub const fn new(value: T) -> Self {
        RwLock { raw: RawRwLock::new(), data: UnsafeCell::new(value) }
    }

    #[cfg(loom)]
    pub fn new(value: T) -> Self {
        RwLock { raw: RawRwLock::new(), data: UnsafeCell::new(value) }
    }

    /// Consumes the lock, returning its value.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Locks for reading, waiting as long as it takes.
    #[inline]
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        self.raw.read(None);
        RwLockReadGuard::new(self)
    }

    /// Locks for reading if that needs no waiting.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::RwLock;
    ///
    /// let l = RwLock::new(1);
    /// let w = l.write();
    /// assert!(l.try_read().is_err());
    /// drop(w);
    /// assert_eq!(*l.try_read().unwrap(), 1);
    /// ```
    #[inline]
    pub fn try_read(&self) -> Result<RwLockReadGuard<'_, T>, WouldBlock> {
        if self.raw.try_read() { Ok(RwLockReadGuard::new(self)) } else { Err(WouldBlock) }
    }

    /// Locks for reading, giving up after `timeout`.
    pub fn try_read_for(&self, timeout: Duration) -> Result<RwLockReadGuard<'_, T>, TimedOut> {
        match deadline_after(timeout) {
            Some(d) => self.try_read_until(d),
            None => Ok(self.read()),
        }
    }

    /// Locks for reading, giving up at `deadline`.
    pub fn try_read_until(&self, deadline: Instant) -> Result<RwLockReadGuard<'_, T>, TimedOut> {
        if self.raw.read(Some(deadline)) { Ok(RwLockReadGuard::new(self)) } else { Err(TimedOut) }
    }

    /// Locks for writing, waiting as long as it takes.
    #[inline]
    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        self.raw.write(None);
        RwLockWriteGuard::new(self)
    }

    /// Locks for writing if that needs no waiting.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::RwLock;
    ///
    /// let l = RwLock::new(1);
    /// let r = l.read();
    /// assert!(l.try_write().is_err());
    /// drop(r);
    /// *l.try_write().unwrap() += 1;
    /// assert_eq!(*l.read(), 2);
    /// ```
    #[inline]
    pub fn try_write(&self) -> Result<RwLockWriteGuard<'_, T>, WouldBlock> {
        if self.raw.try_write() { Ok(RwLockWriteGuard::new(self)) } else { Err(WouldBlock) }
    }

    /// Locks for writing, giving up after `timeout`.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::{Duration, sync::RwLock};
    ///
    /// let l = RwLock::new(());
    /// let _r = l.read();
    /// assert!(l.try_write_for(Duration::from_millis(2)).is_err());
    /// ```
    pub fn try_write_for(&self, timeout: Duration) -> Result<RwLockWriteGuard<'_, T>, TimedOut> {
        match deadline_after(timeout) {
            Some(d) => self.try_write_until(d),
            None => Ok(self.write()),
        }
    }

    /// Locks for writing, giving up at `deadline`.
    pub fn try_write_until(&self, deadline: Instant) -> Result<RwLockWriteGuard<'_, T>, TimedOut> {
        if self.raw.write(Some(deadline)) { Ok(RwLockWriteGuard::new(self)) } else { Err(TimedOut) }
    }

    /// Whether anyone holds the lock right now (a hint).
    pub fn is_locked(&self) -> bool {
        self.raw.is_locked()
    }

    /// Whether a writer holds the lock right now (a hint).
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::RwLock;
    ///
    /// let l = RwLock::new(0);
    /// let r = l.read();
    /// assert!(l.is_locked() && !l.is_locked_exclusive());
    /// drop(r);
    /// let _w = l.write();
    /// assert!(l.is_locked_exclusive());
    /// ```
    pub fn is_locked_exclusive(&self) -> bool {
        self.raw.is_locked_exclusive()
    }

    /// The value, through an exclusive borrow: no locking needed.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// Where the value lives; only lock holders may use it.
    pub(super) fn data_ptr(&self) -> *mut T {
        self.data.get()
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> Self {
        RwLock::new(T::default())
    }
}

impl<T> From<T> for RwLock<T> {
    fn from(value: T) -> Self {
        RwLock::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        match self.try_read() {
            Ok(g) => d.field("data", &&*g),
            Err(_) => d.field("data", &format_args!("<locked>")),
        };
        d.finish_non_exhaustive()
    }
}

impl<'a, T: ?Sized> RwLockReadGuard<'a, T> {
    /// The guard of a read lock on `lock` that the caller holds.
    pub(super) fn new(lock: &'a RwLock<T>) -> Self {
        RwLockReadGuard { lock, _not_send: PhantomData }
    }
}

impl<'a, T: ?Sized> RwLockWriteGuard<'a, T> {
    /// The guard of the write lock on `lock`, which the caller holds.
    pub(super) fn new(lock: &'a RwLock<T>) -> Self {
        RwLockWriteGuard { lock, _not_send: PhantomData }
    }

    /// Trades the write lock for a read lock in one step (no writer can
    /// come in between), letting the waiting readers in too.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::{RwLock, RwLockWriteGuard};
    ///
    /// let l = RwLock::new(1);
    /// let mut w = l.write();
    /// *w = 2;
    /// let r = RwLockWriteGuard::downgrade(w);
    /// assert_eq!((*r, *l.read()), (2, 2));
    /// assert!(l.try_write().is_err());
    /// ```
    pub fn downgrade(s: Self) -> RwLockReadGuard<'a, T> {
        let lock = s.lock;
        std::mem::forget(s);
        // SAFETY: we held the write lock (`s`, forgotten: its unlock is
        // not run).
        unsafe { lock.raw.downgrade() };
        RwLockReadGuard::new(lock)
    }
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves a read lock is held: no writer.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the guard proves a read lock is held.
        unsafe { self.lock.raw.read_unlock() }
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves the write lock is held.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves the write lock is held, exclusively.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the guard proves the write lock is held.
        unsafe { self.lock.raw.write_unlock() }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
