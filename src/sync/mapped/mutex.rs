//! [`MutexGuard::map`] and [`MappedMutexGuard`]: a locked mutex's guard
//! narrowed to a part of the value, as in `parking_lot`.

use super::hand_over;
use crate::sync::mutex::MutexGuard;
use crate::sync::raw_mutex::RawMutex;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// Access to a part of a locked [`Mutex`](crate::sync::Mutex)'s value, made by
/// [`MutexGuard::map`]; unlocks the whole mutex when dropped.
///
/// ```
/// use preemptive_mlthreading_rust::sync::{MappedMutexGuard, Mutex, MutexGuard};
///
/// let m = Mutex::new((1, String::from("a")));
/// let mut s: MappedMutexGuard<'_, String> = MutexGuard::map(m.lock(), |v| &mut v.1);
/// s.push('b');
/// assert!(m.is_locked());
/// drop(s);
/// assert_eq!(m.lock().1, "ab");
/// ```
#[must_use = "the mutex unlocks as soon as the guard is dropped"]
pub struct MappedMutexGuard<'a, T: ?Sized> {
    raw: &'a RawMutex,
    data: NonNull<T>,
    // `&mut T` for variance and auto traits; the pointer makes it !Send
    // like `MutexGuard`.
    _borrow: PhantomData<&'a mut T>,
}

// SAFETY: a shared guard only gives `&T`.
unsafe impl<T: ?Sized + Sync> Sync for MappedMutexGuard<'_, T> {}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// Narrows the guard to a part of the value; the mutex stays locked
    /// until the returned guard is dropped. An associated function
    /// (`MutexGuard::map(g, f)`) so as not to shadow a method of `T`.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::{Mutex, MutexGuard};
    ///
    /// let m = Mutex::new([0u8; 4]);
    /// *MutexGuard::map(m.lock(), |a| &mut a[2]) = 7;
    /// assert_eq!(*m.lock(), [0, 0, 7, 0]);
    /// ```
    pub fn map<U: ?Sized, F>(s: Self, f: F) -> MappedMutexGuard<'a, U>
    where
        F: FnOnce(&mut T) -> &mut U,
    {
        Self::try_map(s, |v| Some(f(v))).unwrap_or_else(|_| unreachable!())
    }

    /// Like [`map`](Self::map) when `f` may find no part to give: then the
    /// original guard comes back, still locked.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::{Mutex, MutexGuard};
    ///
    /// let m = Mutex::new(vec![1, 2]);
    /// let g = MutexGuard::try_map(m.lock(), |v| v.get_mut(5)).unwrap_err();
    /// assert_eq!(g.len(), 2);
    /// let one = MutexGuard::try_map(g, |v| v.first_mut()).unwrap();
    /// assert_eq!(*one, 1);
    /// ```
    pub fn try_map<U: ?Sized, F>(s: Self, f: F) -> Result<MappedMutexGuard<'a, U>, Self>
    where
        F: FnOnce(&mut T) -> Option<&mut U>,
    {
        let raw = &s.mutex.raw;
        // SAFETY: the guard proves we hold the lock, exclusively; the
        // mapped guard takes that over. If `f` panics, `s` unlocks.
        let part = f(unsafe { &mut *s.mutex.data_ptr() }).map(NonNull::from);
        hand_over(s, part, |data| MappedMutexGuard { raw, data, _borrow: PhantomData })
    }
}

impl<'a, T: ?Sized> MappedMutexGuard<'a, T> {
    /// Narrows the guard further (see [`MutexGuard::map`]).
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::{MappedMutexGuard, Mutex, MutexGuard};
    ///
    /// let m = Mutex::new(((0, 1), 2));
    /// let inner = MappedMutexGuard::map(MutexGuard::map(m.lock(), |v| &mut v.0), |p| &mut p.1);
    /// assert_eq!(*inner, 1);
    /// ```
    pub fn map<U: ?Sized, F>(mut s: Self, f: F) -> MappedMutexGuard<'a, U>
    where
        F: FnOnce(&mut T) -> &mut U,
    {
        let raw = s.raw;
        let part = Some(NonNull::from(f(&mut s)));
        hand_over(s, part, |data| MappedMutexGuard { raw, data, _borrow: PhantomData })
            .unwrap_or_else(|_| unreachable!())
    }
}

impl<T: ?Sized> Deref for MappedMutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock and the exclusive borrow of the
        // part `data` points to.
        unsafe { self.data.as_ref() }
    }
}

impl<T: ?Sized> DerefMut for MappedMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as above, through `&mut self`.
        unsafe { self.data.as_mut() }
    }
}

impl<T: ?Sized> Drop for MappedMutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the guard holds the lock (taken over from a MutexGuard).
        unsafe { self.raw.unlock() }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MappedMutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MappedMutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}
