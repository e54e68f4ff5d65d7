//! A blocked thread's entry in a primitive's wait list, and the park/wake
//! protocol every blocking primitive of `sync` shares.
//!
//! The entry lives on the waiting thread's stack for as long as it waits.
//! It is linked into a [`WaitList`] that the primitive guards with its
//! [`SpinLock`](super::spin::SpinLock); the waker unlinks it, takes the
//! thread handle out, publishes the outcome in `state` (the last write to
//! the entry) and unparks the thread *after* that, from its own copy of the
//! handle. The owner leaves only once it has seen a non-waiting `state`, or
//! after unlinking itself under the lock on a timeout, so the entry is
//! never touched after its owner has gone and no wake-up can be lost:
//! either the waker unlinked the entry and the owner sees the outcome, or
//! the owner unlinked it first and the waker never saw it.

use super::atomic::{AtomicU8, Ordering};
use std::cell::Cell;
use std::ptr;
use std::time::Instant;

/// `state` while the entry is linked and nobody decided for it.
pub(crate) const WAITING: u8 = 0;

#[cfg(not(loom))]
type Unparker = crate::Thread;
#[cfg(loom)]
type Unparker = loom::thread::Thread;

pub(crate) struct Waiter {
    state: AtomicU8,
    unparker: Cell<Option<Unparker>>,
    prev: Cell<*const Waiter>,
    next: Cell<*const Waiter>,
    /// Primitive-specific payload, read and written under the list's lock:
    /// the number of permits asked for, a channel's value slot, a flag.
    pub(crate) data: Cell<usize>,
    pub(crate) flag: Cell<bool>,
}

impl Waiter {
    pub(crate) fn new() -> Self {
        Waiter {
            state: AtomicU8::new(WAITING),
            unparker: Cell::new(Some(current_unparker())),
            prev: Cell::new(ptr::null()),
            next: Cell::new(ptr::null()),
            data: Cell::new(0),
            flag: Cell::new(false),
        }
    }

    /// Makes the entry reusable for another wait by the same thread, after
    /// it was woken (the waker took the handle).
    pub(crate) fn rearm(&self) {
        let me = self.unparker.take().unwrap_or_else(current_unparker);
        self.unparker.set(Some(me));
        self.state.store(WAITING, Ordering::Relaxed);
    }

    /// Blocks until a waker decides for this entry, or `deadline` passes.
    /// Returns the waker's outcome, or `None` if the deadline passed first;
    /// then the entry is still linked and the caller must settle the race
    /// with [`WaitList::remove_if_waiting`] under the lock.
    pub(crate) fn park_until(&self, deadline: Option<Instant>) -> Option<u8> {
        park_until_done(deadline, || self.state.load(Ordering::Acquire) != WAITING).then(|| self.outcome())
    }

    /// The outcome, once decided.
    pub(crate) fn outcome(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }
}

/// Parks the current thread until `done()` holds, checking it before each
/// park and after each wake-up, or until `deadline` passes. True when
/// `done()` held. For a thread waiting on several entries at once (a
/// select): each entry's waker unparks it after deciding for that entry.
pub(crate) fn park_until_done(deadline: Option<Instant>, done: impl Fn() -> bool) -> bool {
    loop {
        if done() {
            return true;
        }
        match deadline {
            None => park(),
            Some(d) => {
                // Under loom the clock is ignored (the model decides when a
                // wait times out), which keeps the model deterministic.
                let now = Instant::now();
                let expired = !cfg!(loom) && now >= d;
                if expired || !park_timeout(d.saturating_duration_since(now)) {
                    return done();
                }
            }
        }
    }
}

#[cfg(not(loom))]
fn current_unparker() -> Unparker {
    crate::current()
}

#[cfg(loom)]
fn current_unparker() -> Unparker {
    loom::thread::current()
}

#[cfg(not(loom))]
fn park() {
    crate::park()
}

/// Parks for at most `dur`; false when the model (loom) chose to time out.
#[cfg(not(loom))]
fn park_timeout(dur: std::time::Duration) -> bool {
    crate::park_timeout(dur);
    true
}

#[cfg(loom)]
fn park() {
    loom::thread::park()
}

/// Under loom a timed wait may time out at any point: that is the race the
/// models must explore, and loom has no clock.
#[cfg(loom)]
fn park_timeout(_: std::time::Duration) -> bool {
    loom::thread::yield_now();
    false
}

/// A thread handle taken out of a woken entry: unpark it once the lock is
/// released.
#[must_use = "the woken thread must be unparked"]
pub(crate) struct Wake(Option<Unparker>);

impl Wake {
    #[inline]
    pub(crate) fn unpark(self) {
        if let Some(t) = self.0 {
            t.unpark();
        }
    }
}

/// Several wake-ups to deliver after the lock is released.
#[derive(Default)]
pub(crate) struct Wakes(Vec<Wake>);

impl Wakes {
    pub(crate) fn push(&mut self, w: Wake) {
        self.0.push(w)
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn unpark_all(self) {
        self.0.into_iter().for_each(Wake::unpark)
    }
}

/// A FIFO of waiting entries. Not synchronised itself: every method is
/// called with the owning primitive's lock held, which is what makes the
/// raw pointers sound.
pub(crate) struct WaitList {
    head: *const Waiter,
    tail: *const Waiter,
    len: usize,
}

// SAFETY: the entries belong to threads blocked on the list's owner, and
// the list is only touched under that owner's lock.
unsafe impl Send for WaitList {}

impl WaitList {
    pub(crate) const fn new() -> Self {
        WaitList { head: ptr::null(), tail: ptr::null(), len: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_null()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Links `w` at the back (or, for a thread that already waited its turn,
    /// at the front).
    ///
    /// # Safety
    /// `w` must stay alive and unmoved until it is unlinked, by a waker
    /// ([`wake_front`](Self::wake_front)) or by its owner
    /// ([`remove_if_waiting`](Self::remove_if_waiting)).
    pub(crate) unsafe fn push(&mut self, w: &Waiter, front: bool) {
        let wp = w as *const Waiter;
        if front {
            w.prev.set(ptr::null());
            w.next.set(self.head);
            if self.head.is_null() {
                self.tail = wp;
            } else {
                // SAFETY: linked entries are alive (push's contract).
                unsafe { (*self.head).prev.set(wp) };
            }
            self.head = wp;
        } else {
            w.next.set(ptr::null());
            w.prev.set(self.tail);
            if self.tail.is_null() {
                self.head = wp;
            } else {
                // SAFETY: linked entries are alive (push's contract).
                unsafe { (*self.tail).next.set(wp) };
            }
            self.tail = wp;
        }
        self.len += 1;
    }

    fn unlink(&mut self, w: &Waiter) {
        let (prev, next) = (w.prev.get(), w.next.get());
        if prev.is_null() {
            self.head = next;
        } else {
            // SAFETY: linked entries are alive (push's contract).
            unsafe { (*prev).next.set(next) };
        }
        if next.is_null() {
            self.tail = prev;
        } else {
            // SAFETY: as above.
            unsafe { (*next).prev.set(prev) };
        }
        w.prev.set(ptr::null());
        w.next.set(ptr::null());
        self.len -= 1;
    }

    /// The first entry, to inspect its payload before deciding.
    pub(crate) fn front(&self) -> Option<&Waiter> {
        // SAFETY: linked entries are alive (push's contract); the borrow
        // ends before the lock is released.
        unsafe { self.head.as_ref() }
    }

    /// Unlinks the first entry and decides `outcome` for it. `before`
    /// runs on the entry first, while its owner still waits (to move a
    /// value into or out of its slot).
    pub(crate) fn wake_front_with(&mut self, outcome: u8, before: impl FnOnce(&Waiter)) -> Option<Wake> {
        // SAFETY: linked entries are alive (push's contract).
        let w = unsafe { self.head.as_ref()? };
        self.unlink(w);
        before(w);
        let t = w.unparker.take();
        // The last access: from here on the owner may return and free it.
        w.state.store(outcome, Ordering::Release);
        Some(Wake(t))
    }

    pub(crate) fn wake_front(&mut self, outcome: u8) -> Option<Wake> {
        self.wake_front_with(outcome, |_| {})
    }

    /// The owner's side of a timeout: unlinks `w` unless a waker already
    /// decided for it. True when it was still waiting (the owner gave up and
    /// nothing was handed to it).
    pub(crate) fn remove_if_waiting(&mut self, w: &Waiter) -> bool {
        if w.state.load(Ordering::Relaxed) != WAITING {
            return false;
        }
        self.unlink(w);
        true
    }
}
