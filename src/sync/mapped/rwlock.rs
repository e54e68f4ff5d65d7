//! [`RwLockReadGuard::map`], [`RwLockWriteGuard::map`] and the guards
//! they return.

use super::hand_over;
use crate::sync::raw_rwlock::RawRwLock;
use crate::sync::rwlock::{RwLockReadGuard, RwLockWriteGuard};
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// Shared access to a part of an [`RwLock`](crate::sync::RwLock)'s value,
/// made by [`RwLockReadGuard::map`]; releases the read lock when dropped.
///
/// ```
/// use preemptive_mlthreading_rust::sync::{MappedRwLockReadGuard, RwLock, RwLockReadGuard};
///
/// let l = RwLock::new((1, "one"));
/// let name: MappedRwLockReadGuard<'_, &str> = RwLockReadGuard::map(l.read(), |v| &v.1);
/// assert_eq!(*name, "one");
/// assert!(l.try_write().is_err());
/// drop(name);
/// assert!(l.try_write().is_ok());
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct MappedRwLockReadGuard<'a, T: ?Sized> {
    raw: &'a RawRwLock,
    data: NonNull<T>,
    _borrow: PhantomData<&'a T>,
}

/// Exclusive access to a part of an [`RwLock`](crate::sync::RwLock)'s
/// value, made by [`RwLockWriteGuard::map`]; releases the write lock when
/// dropped.
///
/// ```
/// use preemptive_mlthreading_rust::sync::{MappedRwLockWriteGuard, RwLock, RwLockWriteGuard};
///
/// let l = RwLock::new((1, vec![2]));
/// let mut v: MappedRwLockWriteGuard<'_, Vec<i32>> = RwLockWriteGuard::map(l.write(), |p| &mut p.1);
/// v.push(3);
/// assert!(l.try_read().is_err());
/// drop(v);
/// assert_eq!(l.read().1, [2, 3]);
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct MappedRwLockWriteGuard<'a, T: ?Sized> {
    raw: &'a RawRwLock,
    data: NonNull<T>,
    _borrow: PhantomData<&'a mut T>,
}

// SAFETY: shared guards only give `&T`. (Not Send, like the guards they
// come from.)
unsafe impl<T: ?Sized + Sync> Sync for MappedRwLockReadGuard<'_, T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Sync> Sync for MappedRwLockWriteGuard<'_, T> {}

impl<'a, T: ?Sized> RwLockReadGuard<'a, T> {
    /// Narrows the guard to a part of the value; the read lock is held
    /// until the returned guard is dropped. An associated function
    /// (`RwLockReadGuard::map(g, f)`) so as not to shadow a method of `T`.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::{RwLock, RwLockReadGuard};
    ///
    /// let l = RwLock::new([5, 6]);
    /// assert_eq!(*RwLockReadGuard::map(l.read(), |a| &a[1]), 6);
    /// ```
    pub fn map<U: ?Sized, F>(s: Self, f: F) -> MappedRwLockReadGuard<'a, U>
    where
        F: FnOnce(&T) -> &U,
    {
        Self::try_map(s, |v| Some(f(v))).unwrap_or_else(|_| unreachable!())
    }

    /// Like [`map`](Self::map) when `f` may find no part: then the
    /// original guard comes back, still locked.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::{RwLock, RwLockReadGuard};
    ///
    /// let l = RwLock::new(vec![5]);
    /// let g = RwLockReadGuard::try_map(l.read(), |v| v.get(3)).unwrap_err();
    /// assert_eq!(*RwLockReadGuard::try_map(g, |v| v.first()).unwrap(), 5);
    /// ```
    pub fn try_map<U: ?Sized, F>(s: Self, f: F) -> Result<MappedRwLockReadGuard<'a, U>, Self>
    where
        F: FnOnce(&T) -> Option<&U>,
    {
        let raw = &s.lock.raw;
        // SAFETY: the guard proves a read lock is held (no writer); the
        // mapped guard takes it over. If `f` panics, `s` unlocks.
        let part = f(unsafe { &*s.lock.data_ptr() }).map(NonNull::from);
        hand_over(s, part, |data| MappedRwLockReadGuard { raw, data, _borrow: PhantomData })
    }
}

impl<'a, T: ?Sized> RwLockWriteGuard<'a, T> {
    /// Narrows the guard to a part of the value; the write lock is held
    /// until the returned guard is dropped.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::{RwLock, RwLockWriteGuard};
    ///
    /// let l = RwLock::new((0, 0));
    /// *RwLockWriteGuard::map(l.write(), |p| &mut p.1) = 9;
    /// assert_eq!(*l.read(), (0, 9));
    /// ```
    pub fn map<U: ?Sized, F>(s: Self, f: F) -> MappedRwLockWriteGuard<'a, U>
    where
        F: FnOnce(&mut T) -> &mut U,
    {
        Self::try_map(s, |v| Some(f(v))).unwrap_or_else(|_| unreachable!())
    }

    /// Like [`map`](Self::map) when `f` may find no part: then the
    /// original guard comes back, still locked.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::{RwLock, RwLockWriteGuard};
    ///
    /// let l = RwLock::new(vec![5]);
    /// let g = RwLockWriteGuard::try_map(l.write(), |v| v.get_mut(3)).unwrap_err();
    /// *RwLockWriteGuard::try_map(g, |v| v.first_mut()).unwrap() += 1;
    /// assert_eq!(*l.read(), [6]);
    /// ```
    pub fn try_map<U: ?Sized, F>(s: Self, f: F) -> Result<MappedRwLockWriteGuard<'a, U>, Self>
    where
        F: FnOnce(&mut T) -> Option<&mut U>,
    {
        let raw = &s.lock.raw;
        // SAFETY: the guard proves the write lock is held, exclusively; the
        // mapped guard takes it over. If `f` panics, `s` unlocks.
        let part = f(unsafe { &mut *s.lock.data_ptr() }).map(NonNull::from);
        hand_over(s, part, |data| MappedRwLockWriteGuard { raw, data, _borrow: PhantomData })
    }
}

impl<'a, T: ?Sized> MappedRwLockReadGuard<'a, T> {
    /// Narrows the guard further (see [`RwLockReadGuard::map`]).
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::{MappedRwLockReadGuard, RwLock, RwLockReadGuard};
    ///
    /// let l = RwLock::new(((1, 2), 3));
    /// let g = MappedRwLockReadGuard::map(RwLockReadGuard::map(l.read(), |v| &v.0), |p| &p.1);
    /// assert_eq!(*g, 2);
    /// ```
    pub fn map<U: ?Sized, F>(s: Self, f: F) -> MappedRwLockReadGuard<'a, U>
    where
        F: FnOnce(&T) -> &U,
    {
        let raw = s.raw;
        let part = Some(NonNull::from(f(&s)));
        hand_over(s, part, |data| MappedRwLockReadGuard { raw, data, _borrow: PhantomData })
            .unwrap_or_else(|_| unreachable!())
    }
}

impl<'a, T: ?Sized> MappedRwLockWriteGuard<'a, T> {
    /// Narrows the guard further (see [`RwLockWriteGuard::map`]).
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::{MappedRwLockWriteGuard, RwLock, RwLockWriteGuard};
    ///
    /// let l = RwLock::new(((1, 2), 3));
    /// *MappedRwLockWriteGuard::map(RwLockWriteGuard::map(l.write(), |v| &mut v.0), |p| &mut p.1) = 7;
    /// assert_eq!(*l.read(), ((1, 7), 3));
    /// ```
    pub fn map<U: ?Sized, F>(mut s: Self, f: F) -> MappedRwLockWriteGuard<'a, U>
    where
        F: FnOnce(&mut T) -> &mut U,
    {
        let raw = s.raw;
        let part = Some(NonNull::from(f(&mut s)));
        hand_over(s, part, |data| MappedRwLockWriteGuard { raw, data, _borrow: PhantomData })
            .unwrap_or_else(|_| unreachable!())
    }
}

impl<T: ?Sized> Deref for MappedRwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds a read lock (no writer) and the shared
        // borrow of the part `data` points to.
        unsafe { self.data.as_ref() }
    }
}

impl<T: ?Sized> Drop for MappedRwLockReadGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the guard holds a read lock (taken over from a read guard).
        unsafe { self.raw.read_unlock() }
    }
}

impl<T: ?Sized> Deref for MappedRwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the write lock and the exclusive borrow
        // of the part `data` points to.
        unsafe { self.data.as_ref() }
    }
}

impl<T: ?Sized> DerefMut for MappedRwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as above, through `&mut self`.
        unsafe { self.data.as_mut() }
    }
}

impl<T: ?Sized> Drop for MappedRwLockWriteGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the guard holds the write lock (taken over from a write
        // guard).
        unsafe { self.raw.write_unlock() }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MappedRwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MappedRwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
