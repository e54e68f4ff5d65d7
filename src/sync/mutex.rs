use super::error::{TimedOut, WouldBlock, deadline_after};
use super::raw_mutex::RawMutex;
use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

/// A mutual-exclusion lock that parks a waiting green thread (its worker
/// runs other threads meanwhile) and blocks a waiting OS thread.
///
/// - Uncontended, `lock` and `unlock` are one atomic instruction each: no
///   syscall, no runtime call.
/// - Under contention, bounded barging: an unlock wakes the longest waiter
///   to compete; one that has waited over 1 ms in total is handed the lock
///   directly (see docs/sync.md for the measurements).
/// - No poisoning: a panic while holding the lock unlocks it, like
///   `parking_lot`. `lock` therefore returns the guard itself.
/// - `try_lock_for`/`try_lock_until` give up at a deadline, and a lock is
///   never handed to a thread that gave up.
/// - Not reentrant: locking it twice from one thread deadlocks.
///
/// ```
/// use preemptive_mlthreading_rust::{Mutex, spawn};
/// use std::sync::Arc;
///
/// let m = Arc::new(Mutex::new(0u64));
/// let hs: Vec<_> = (0..8).map(|_| {
///     let m = Arc::clone(&m);
///     spawn(move || for _ in 0..1000 { *m.lock() += 1 }).unwrap()
/// }).collect();
/// hs.into_iter().for_each(|h| h.join().unwrap());
/// assert_eq!(*m.lock(), 8000);
/// ```
pub struct Mutex<T: ?Sized> {
    pub(crate) raw: RawMutex,
    data: UnsafeCell<T>,
}

// SAFETY: the lock gives one thread at a time access to `data`.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
// SAFETY: as above: `&Mutex` only hands out `&mut T` to the lock holder.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

/// Access to a locked [`Mutex`]'s value; unlocks when dropped.
#[must_use = "the mutex unlocks as soon as the guard is dropped"]
pub struct MutexGuard<'a, T: ?Sized> {
    pub(crate) mutex: &'a Mutex<T>,
    // Like std's: not Send, so that code may rely on the unlocking thread
    // being the locking one.
    _not_send: PhantomData<*const ()>,
}

// SAFETY: a shared guard only gives `&T`.
unsafe impl<T: ?Sized + Sync> Sync for MutexGuard<'_, T> {}

impl<T> Mutex<T> {
    /// A new unlocked mutex; usable in a `static`.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::Mutex;
    ///
    /// static LOG: Mutex<Vec<&str>> = Mutex::new(Vec::new());
    /// LOG.lock().push("hello");
    /// assert_eq!(LOG.lock().len(), 1);
    /// ```
    #[cfg(not(loom))]
    pub const fn new(value: T) -> Self {
        Mutex { raw: RawMutex::new(), data: UnsafeCell::new(value) }
    }

    #[cfg(loom)]
    pub fn new(value: T) -> Self {
        Mutex { raw: RawMutex::new(), data: UnsafeCell::new(value) }
    }

    /// Consumes the mutex, returning its value.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks, waiting as long as it takes.
    #[inline]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.raw.lock();
        MutexGuard::new(self)
    }

    /// Locks if that needs no waiting (one compare-and-swap).
    ///
    /// ```
    /// use preemptive_mlthreading_rust::Mutex;
    ///
    /// let m = Mutex::new(5);
    /// let g = m.try_lock().unwrap();
    /// assert!(m.try_lock().is_err());
    /// drop(g);
    /// assert_eq!(*m.try_lock().unwrap(), 5);
    /// ```
    #[inline]
    pub fn try_lock(&self) -> Result<MutexGuard<'_, T>, WouldBlock> {
        if self.raw.try_lock() { Ok(MutexGuard::new(self)) } else { Err(WouldBlock) }
    }

    /// Locks, giving up after `timeout`.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::{Mutex, Duration};
    ///
    /// let m = Mutex::new(());
    /// assert!(m.try_lock_for(Duration::from_millis(10)).is_ok());
    /// ```
    pub fn try_lock_for(&self, timeout: Duration) -> Result<MutexGuard<'_, T>, TimedOut> {
        match deadline_after(timeout) {
            Some(d) => self.try_lock_until(d),
            None => Ok(self.lock()),
        }
    }

    /// Locks, giving up at `deadline`.
    pub fn try_lock_until(&self, deadline: Instant) -> Result<MutexGuard<'_, T>, TimedOut> {
        if self.raw.lock_until(deadline) { Ok(MutexGuard::new(self)) } else { Err(TimedOut) }
    }

    /// Whether some thread holds the lock right now (a hint: it may change
    /// at once).
    pub fn is_locked(&self) -> bool {
        self.raw.is_locked()
    }

    /// The value, through an exclusive borrow: no locking needed.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// Where the value lives; only the lock holder may use it.
    pub(super) fn data_ptr(&self) -> *mut T {
        self.data.get()
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(value: T) -> Self {
        Mutex::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Ok(g) => d.field("data", &&*g),
            Err(_) => d.field("data", &format_args!("<locked>")),
        };
        d.finish_non_exhaustive()
    }
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    pub(crate) fn new(mutex: &'a Mutex<T>) -> Self {
        MutexGuard { mutex, _not_send: PhantomData }
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves we hold the lock.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves we hold the lock, exclusively.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the guard proves we hold the lock.
        unsafe { self.mutex.raw.unlock() }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}
