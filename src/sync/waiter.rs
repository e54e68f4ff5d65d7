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
//!
//! A green thread is parked and unparked through the runtime. An OS thread
//! sleeps on a futex word that is part of what it waits for (its entry's
//! `state`, or a select's token as well), and its waker wakes that word
//! after publishing the outcome: a syscall that only uses the address as a
//! key, harmless if the owner has returned meanwhile (its next sleeper
//! there sees a spurious wake-up and checks its own condition). So a
//! waiting OS thread needs no handle of its own, nor the thread-local
//! behind one, and it can block on these primitives even while its
//! thread-locals are being destroyed (from a `thread_local!` destructor).

use super::atomic::{AtomicU32, Ordering};
use std::cell::Cell;
use std::ptr;
use std::time::Instant;

/// `state` while the entry is linked and nobody decided for it.
pub(crate) const WAITING: u8 = 0;

/// Whom a decided entry's waker wakes.
#[cfg(not(loom))]
enum Unparker {
    /// A green thread, through the runtime.
    Green(crate::Thread),
    /// An OS thread, asleep on the entry's `state` word, or (in a select)
    /// on `select` when that is not null.
    Os { select: *const AtomicU32 },
}
#[cfg(loom)]
type Unparker = loom::thread::Thread;

/// What an OS thread sleeps on while it waits: a futex word, and its value
/// while nothing has been decided. Green threads (and loom's) park instead.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) struct Sleep<'a> {
    word: &'a AtomicU32,
    idle: u32,
}

impl<'a> Sleep<'a> {
    pub(crate) fn on(word: &'a AtomicU32, idle: u32) -> Self {
        Sleep { word, idle }
    }
}

pub(crate) struct Waiter {
    /// [`WAITING`], then the outcome (a `u8`); 32 bits wide to be a futex
    /// word.
    state: AtomicU32,
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
            state: AtomicU32::new(WAITING as u32),
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
        self.state.store(WAITING as u32, Ordering::Relaxed);
    }

    /// For an entry of a select: an OS owner sleeps on `token` until one of
    /// its entries is claimed, so the waker of this one wakes it there too.
    pub(crate) fn wake_also(&self, token: &AtomicU32) {
        #[cfg(not(loom))]
        match self.unparker.take() {
            Some(Unparker::Os { .. }) => self.unparker.set(Some(Unparker::Os { select: token })),
            green => self.unparker.set(green),
        }
        #[cfg(loom)]
        let _ = token;
    }

    /// Blocks until a waker decides for this entry, or `deadline` passes.
    /// Returns the waker's outcome, or `None` if the deadline passed first;
    /// then the entry is still linked and the caller must settle the race
    /// with [`WaitList::remove_if_waiting`] under the lock.
    pub(crate) fn park_until(&self, deadline: Option<Instant>) -> Option<u8> {
        let decided = || self.state.load(Ordering::Acquire) != WAITING as u32;
        park_until_done(deadline, decided, Sleep::on(&self.state, WAITING as u32)).then(|| self.outcome())
    }

    /// The outcome, once decided.
    pub(crate) fn outcome(&self) -> u8 {
        self.state.load(Ordering::Acquire) as u8
    }
}

/// Parks the current thread until `done()` holds, checking it before each
/// park and after each wake-up, or until `deadline` passes. True when
/// `done()` held. For a thread waiting on several entries at once (a
/// select): each entry's waker unparks it after deciding for that entry.
/// An OS thread sleeps on `sleep`, whose word must change before `done()`
/// can hold, and be woken after it does.
pub(crate) fn park_until_done(deadline: Option<Instant>, done: impl Fn() -> bool, sleep: Sleep<'_>) -> bool {
    loop {
        if done() {
            return true;
        }
        match deadline {
            None => park(&sleep),
            Some(d) => {
                // Under loom the clock is ignored (the model decides when a
                // wait times out), which keeps the model deterministic.
                let now = Instant::now();
                let expired = !cfg!(loom) && now >= d;
                if expired || !park_timeout(&sleep, d.saturating_duration_since(now)) {
                    return done();
                }
            }
        }
    }
}

/// A green thread's handle, or the mark of an OS thread: never a
/// thread-local, which an OS thread's exit may already have destroyed.
#[cfg(not(loom))]
fn current_unparker() -> Unparker {
    match crate::runtime::worker::Worker::current_task_arc() {
        Some(task) => Unparker::Green(crate::Thread::green(task)),
        None => Unparker::Os { select: ptr::null() },
    }
}

#[cfg(loom)]
fn current_unparker() -> Unparker {
    loom::thread::current()
}

#[cfg(not(loom))]
fn park(sleep: &Sleep<'_>) {
    if !crate::runtime::worker::park(None) {
        crate::runtime::futex::wait(sleep.word, sleep.idle, None);
    }
}

/// Parks for at most `dur`; false when the model (loom) chose to time out.
#[cfg(not(loom))]
fn park_timeout(sleep: &Sleep<'_>, dur: std::time::Duration) -> bool {
    if !crate::runtime::worker::park(Some(dur)) {
        crate::runtime::futex::wait(sleep.word, sleep.idle, Some(dur));
    }
    true
}

#[cfg(loom)]
fn park(_: &Sleep<'_>) {
    loom::thread::park()
}

/// Under loom a timed wait may time out at any point: that is the race the
/// models must explore, and loom has no clock.
#[cfg(loom)]
fn park_timeout(_: &Sleep<'_>, _: std::time::Duration) -> bool {
    loom::thread::yield_now();
    false
}

/// Whom to wake, taken out of a decided entry.
#[cfg(not(loom))]
enum Wakeup {
    Green(crate::Thread),
    /// Futex words of an OS thread: its entry's `state`, and its select's
    /// token (or null). Either may be gone by the time they are woken.
    Os {
        state: *const AtomicU32,
        select: *const AtomicU32,
    },
}
#[cfg(loom)]
type Wakeup = loom::thread::Thread;

#[cfg(not(loom))]
fn wakeup(who: Unparker, state: &AtomicU32) -> Wakeup {
    match who {
        Unparker::Green(t) => Wakeup::Green(t),
        Unparker::Os { select } => Wakeup::Os { state, select },
    }
}

#[cfg(loom)]
fn wakeup(who: Unparker, _: &AtomicU32) -> Wakeup {
    who
}

/// A wake-up decided under a primitive's lock: deliver it once the lock is
/// released.
#[must_use = "the woken thread must be unparked"]
pub(crate) struct Wake(Option<Wakeup>);

impl Wake {
    #[inline]
    pub(crate) fn unpark(self) {
        match self.0 {
            #[cfg(not(loom))]
            Some(Wakeup::Green(t)) => t.unpark(),
            #[cfg(not(loom))]
            Some(Wakeup::Os { state, select }) => {
                crate::runtime::futex::wake_one_at(state);
                if !select.is_null() {
                    crate::runtime::futex::wake_one_at(select);
                }
            }
            #[cfg(loom)]
            Some(t) => t.unpark(),
            None => {}
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

    /// Whether any linked entry satisfies `f`, front to back.
    pub(crate) fn any(&self, mut f: impl FnMut(&Waiter) -> bool) -> bool {
        let mut p = self.head;
        // SAFETY: linked entries are alive (push's contract) and the list
        // does not change while we hold its owner's lock.
        while let Some(w) = unsafe { p.as_ref() } {
            if f(w) {
                return true;
            }
            p = w.next.get();
        }
        false
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
        let t = w.unparker.take().map(|who| wakeup(who, &w.state));
        // The last access: from here on the owner may return and free it.
        w.state.store(outcome as u32, Ordering::Release);
        Some(Wake(t))
    }

    pub(crate) fn wake_front(&mut self, outcome: u8) -> Option<Wake> {
        self.wake_front_with(outcome, |_| {})
    }

    /// The owner's side of a timeout: unlinks `w` unless a waker already
    /// decided for it. True when it was still waiting (the owner gave up and
    /// nothing was handed to it).
    pub(crate) fn remove_if_waiting(&mut self, w: &Waiter) -> bool {
        if w.state.load(Ordering::Relaxed) != WAITING as u32 {
            return false;
        }
        self.unlink(w);
        true
    }
}
