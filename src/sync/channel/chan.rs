//! The shared state behind a channel's handles: one lock guarding the
//! buffer and the two wait lists (Go's `hchan`).
//!
//! Invariants, true whenever the lock is free:
//! - receivers wait only while the buffer is empty and no sender waits;
//! - senders wait only while the buffer is full (always, for capacity 0)
//!   and no receiver waits.
//!
//! A blocked thread's value slot is an `Option<T>` on its own stack; the
//! address is in its [`Waiter`]'s `data`. Whoever decides for a waiter
//! moves the value into or out of that slot inside
//! [`WaitList::wake_front_with`], before publishing the outcome, so the
//! owner finds the transfer complete once it sees the outcome (or, after a
//! timeout, once it holds the lock again and finds itself unlinked).

use crate::sync::spin::{SpinGuard, SpinLock};
use crate::sync::waiter::{WaitList, Waiter, Wake, Wakes};
use std::collections::VecDeque;
use std::mem;
use std::time::Instant;

/// The waker moved the value (into the receiver's slot, or out of the
/// sender's).
const DONE: u8 = 1;
/// The other side is gone; a sender's value is still in its slot.
const DISCONNECTED: u8 = 2;
/// Not an outcome anyone publishes: the owner unlinked itself in time.
const TIMED_OUT: u8 = 3;

/// How long an operation may wait.
#[derive(Clone, Copy)]
pub(crate) enum Wait {
    /// Not at all (`try_`).
    Never,
    /// Until the deadline, or for ever when `None`.
    Until(Option<Instant>),
}

/// Why an operation failed; a send's value comes back inside.
pub(crate) enum Fail<T> {
    /// Full buffer (send) or empty channel (receive) and `Wait::Never`.
    WouldBlock(T),
    Disconnected(T),
    Timeout(T),
}

struct State<T> {
    buf: VecDeque<T>,
    /// Blocked senders; each slot holds `Some(value)`.
    senders_q: WaitList,
    /// Blocked receivers; each slot holds `None` until a sender fills it.
    receivers_q: WaitList,
    senders: usize,
    receivers: usize,
    /// Set when either count drops to zero; never cleared.
    disconnected: bool,
}

pub(crate) struct Chan<T> {
    state: SpinLock<State<T>>,
    /// `None`: unbounded.
    cap: Option<usize>,
}

/// Moves the value out of the slot of a waiter whose `data` is the address
/// of an `Option<T>`.
///
/// # Safety
/// `w` must be a linked entry of one of this channel's lists for `T` (so its
/// owner is blocked and does not touch the slot), and the caller must hold
/// the channel's lock.
unsafe fn take_from<T>(w: &Waiter) -> Option<T> {
    let slot = w.data.get() as *mut Option<T>;
    // SAFETY: per the contract the address is that of a live `Option<T>` on
    // a blocked thread's stack, which nobody else accesses: its owner waits
    // for the outcome, and other wakers are excluded by the lock.
    unsafe { (*slot).take() }
}

/// Moves `value` into the slot of a waiter like [`take_from`]'s.
///
/// # Safety
/// As for [`take_from`].
unsafe fn put_into<T>(w: &Waiter, value: Option<T>) {
    let slot = w.data.get() as *mut Option<T>;
    // SAFETY: as in `take_from`; the slot holds `None`, so nothing is
    // dropped here.
    unsafe { *slot = value };
}

/// Links a fresh entry for the current thread, whose slot is `slot`, parks
/// until the other side decides or `deadline` passes, and returns the
/// outcome ([`TIMED_OUT`] when it unlinked itself).
fn block_on<T>(
    chan: &Chan<T>,
    mut st: SpinGuard<'_, State<T>>,
    slot: &mut Option<T>,
    list: fn(&mut State<T>) -> &mut WaitList,
    deadline: Option<Instant>,
) -> u8 {
    let waiter = Waiter::new();
    waiter.data.set(slot as *mut Option<T> as usize);
    // SAFETY: `waiter` and the slot stay on this frame, untouched by us,
    // until a waker unlinks the entry (publishing its outcome last) or we
    // unlink it ourselves below.
    unsafe { list(&mut *st).push(&waiter, false) };
    drop(st);
    match waiter.park_until(deadline) {
        Some(outcome) => outcome,
        None => {
            let mut st = chan.state.lock();
            if list(&mut *st).remove_if_waiting(&waiter) { TIMED_OUT } else { waiter.outcome() }
        }
    }
}

/// Delivers a wake-up decided under the lock, once it is released.
fn unpark(wake: Option<Wake>) {
    if let Some(w) = wake {
        w.unpark();
    }
}

impl<T> Chan<T> {
    pub(crate) fn new(cap: Option<usize>) -> Self {
        let state = State {
            buf: VecDeque::new(),
            senders_q: WaitList::new(),
            receivers_q: WaitList::new(),
            senders: 1,
            receivers: 1,
            disconnected: false,
        };
        Chan { state: SpinLock::new(state), cap }
    }

    pub(crate) fn capacity(&self) -> Option<usize> {
        self.cap
    }

    pub(crate) fn len(&self) -> usize {
        self.state.lock().buf.len()
    }

    pub(crate) fn is_disconnected(&self) -> bool {
        self.state.lock().disconnected
    }

    pub(crate) fn send(&self, value: T, wait: Wait) -> Result<(), Fail<T>> {
        let mut st = self.state.lock();
        if st.receivers == 0 {
            return Err(Fail::Disconnected(value));
        }
        let State { buf, receivers_q, .. } = &mut *st;
        if !receivers_q.is_empty() {
            // Hand it straight to the longest-waiting receiver (the buffer
            // is empty, so nothing sent earlier is overtaken).
            let mut value = Some(value);
            let wake = receivers_q.wake_front_with(DONE, |w| {
                // SAFETY: `w` is linked in our receivers' list and we hold
                // the lock.
                unsafe { put_into(w, value.take()) };
            });
            drop(st);
            unpark(wake);
            return Ok(());
        }
        if self.cap.is_none_or(|cap| buf.len() < cap) {
            buf.push_back(value);
            return Ok(());
        }
        let deadline = match wait {
            Wait::Never => return Err(Fail::WouldBlock(value)),
            Wait::Until(d) => d,
        };
        let mut slot = Some(value);
        let outcome = block_on(self, st, &mut slot, |s| &mut s.senders_q, deadline);
        // The slot is ours again: a receiver emptied it (DONE) or nobody did.
        match (outcome, slot) {
            (DONE, None) => Ok(()),
            (DISCONNECTED, Some(v)) => Err(Fail::Disconnected(v)),
            (TIMED_OUT, Some(v)) => Err(Fail::Timeout(v)),
            _ => unreachable!("a blocked sender's slot disagrees with its outcome"),
        }
    }

    pub(crate) fn recv(&self, wait: Wait) -> Result<T, Fail<()>> {
        let mut st = self.state.lock();
        let State { buf, senders_q, .. } = &mut *st;
        let mut got = buf.pop_front();
        let wake = if got.is_some() {
            // A slot freed up: the longest-blocked sender's value joins the
            // back of the buffer, behind everything sent before it.
            senders_q.wake_front_with(DONE, |w| {
                // SAFETY: `w` is linked in our senders' list and we hold the
                // lock.
                buf.push_back(unsafe { take_from(w) }.expect("a blocked sender's value"));
            })
        } else {
            // Empty buffer with a blocked sender: capacity 0, rendezvous.
            senders_q.wake_front_with(DONE, |w| {
                // SAFETY: as above.
                got = unsafe { take_from(w) };
            })
        };
        if let Some(v) = got {
            drop(st);
            unpark(wake);
            return Ok(v);
        }
        debug_assert!(wake.is_none(), "a woken sender always fills `got`");
        if st.senders == 0 {
            return Err(Fail::Disconnected(()));
        }
        let deadline = match wait {
            Wait::Never => return Err(Fail::WouldBlock(())),
            Wait::Until(d) => d,
        };
        let mut slot = None;
        match (block_on(self, st, &mut slot, |s| &mut s.receivers_q, deadline), slot) {
            (DONE, Some(v)) => Ok(v),
            (DISCONNECTED, None) => Err(Fail::Disconnected(())),
            (TIMED_OUT, None) => Err(Fail::Timeout(())),
            _ => unreachable!("a blocked receiver's slot disagrees with its outcome"),
        }
    }

    /// Counts a new handle of one side.
    pub(crate) fn acquire(&self, sender: bool) {
        let mut st = self.state.lock();
        if sender {
            st.senders += 1;
        } else {
            st.receivers += 1;
        }
    }

    /// Drops a handle of one side. The last one disconnects the channel:
    /// every thread blocked on the other side is woken (senders get their
    /// value back), and when the receivers are gone the buffered values,
    /// which nobody can receive any more, are dropped.
    pub(crate) fn release(&self, sender: bool) {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let (count, others) =
            if sender { (&mut st.senders, &mut st.receivers_q) } else { (&mut st.receivers, &mut st.senders_q) };
        *count -= 1;
        if *count > 0 {
            return;
        }
        let mut wakes = Wakes::default();
        while let Some(w) = others.wake_front(DISCONNECTED) {
            wakes.push(w);
        }
        st.disconnected = true;
        let unreachable = if sender { VecDeque::new() } else { mem::take(&mut st.buf) };
        drop(guard);
        wakes.unpark_all();
        // Dropped without the lock: a value's destructor may use a channel.
        drop(unreachable);
    }
}
