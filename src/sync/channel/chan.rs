//! The shared state behind a channel's handles: one lock guarding the
//! buffer and the two wait lists (Go's `hchan`).
//!
//! Invariants, true whenever the lock is free (counting neither entries
//! whose selection is claimed nor a select's entries against each other:
//! one select may offer both sides of a channel):
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
//!
//! A select (see [`select_arms`]) links one entry (`flag` set) per arm
//! into the receivers' list (a receive arm) or the senders' list (a send
//! arm, its value in the entry's slot) of the arm's channel; they share one
//! [`Selection`], and each has a value slot of its own, typed by its
//! channel, in the arm (so one select may mix value types). A waker must
//! first *claim* the selection for its entry (one CAS, under its channel's
//! lock); an entry whose selection was claimed elsewhere is unlinked as
//! [`SKIPPED`], without a wake-up. The selecting thread unlinks its other
//! entries before it returns, so linked entries are alive.

use crate::sync::atomic::{AtomicU32, Ordering};
use crate::sync::spin::{SpinGuard, SpinLock};
use crate::sync::waiter::{Sleep, WaitList, Waiter, Wake, Wakes, park_until_done};
use std::cell::UnsafeCell;
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
/// A select entry whose selection completed on another channel.
const SKIPPED: u8 = 4;

/// `Selection::token` before anyone claimed it.
const UNCLAIMED: u32 = u32::MAX;
/// `Selection::token` once the selecting thread gave up.
const ABANDONED: u32 = u32::MAX - 1;

/// What the entries of one select share, on the selecting thread's stack.
pub(crate) struct Selection {
    /// [`UNCLAIMED`], the index of the entry whose channel completes the
    /// select, or [`ABANDONED`]. Set once, by a CAS. A selecting OS thread
    /// sleeps on it (a futex word) until it is set.
    token: AtomicU32,
}

/// A select entry's payload (its `Waiter::data` points here).
pub(crate) struct SelectEntry {
    selection: *const Selection,
    index: u32,
    /// The entry's value slot: an `Option<T>` of its channel's `T`, in its
    /// arm, written by the waker that claimed the selection for it.
    slot: usize,
}

impl Selection {
    fn new() -> Self {
        Selection { token: AtomicU32::new(UNCLAIMED) }
    }

    /// Makes entry `index` the one that completes the select, unless
    /// another already did or the selecting thread gave up.
    fn claim(&self, index: u32) -> bool {
        self.token.compare_exchange(UNCLAIMED, index, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }
}

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

/// The value slot of a linked entry: an `Option<T>` on its owner's stack,
/// or its selection's slot for a select entry.
///
/// # Safety
/// `w` must be a linked entry of one of this channel's lists for `T`, and
/// the caller must hold the channel's lock; for a select entry, the caller
/// must have claimed the selection for it.
unsafe fn slot_of<T>(w: &Waiter) -> *mut Option<T> {
    if w.flag.get() {
        let entry = w.data.get() as *const SelectEntry;
        // SAFETY: a linked select entry's payload and its arm live until
        // the selecting thread has unlinked all its entries; the entry was
        // linked into this channel's list by its arm for this `T`.
        unsafe { (*entry).slot as *mut Option<T> }
    } else {
        w.data.get() as *mut Option<T>
    }
}

/// Moves the value out of a linked entry's slot.
///
/// # Safety
/// As for [`slot_of`].
unsafe fn take_from<T>(w: &Waiter) -> Option<T> {
    // SAFETY: the slot is live (`slot_of`'s contract) and nobody else
    // accesses it: its owner waits for the outcome, other wakers are
    // excluded by the lock (and, for a selection, by the claim).
    unsafe { (*slot_of::<T>(w)).take() }
}

/// Moves `value` into a linked entry's slot.
///
/// # Safety
/// As for [`slot_of`].
unsafe fn put_into<T>(w: &Waiter, value: Option<T>) {
    // SAFETY: as in `take_from`; the slot holds `None`, so nothing is
    // dropped here.
    unsafe { *slot_of::<T>(w) = value };
}

/// Decides `outcome` for the first entry of `list` that may be decided for:
/// a plain entry, or a select entry whose selection it claims. Select
/// entries claimed elsewhere are unlinked on the way as [`SKIPPED`].
fn wake_first(list: &mut WaitList, outcome: u8, before: impl FnOnce(&Waiter)) -> Option<Wake> {
    loop {
        let w = list.front()?;
        let claimed = !w.flag.get() || {
            let entry = w.data.get() as *const SelectEntry;
            // SAFETY: `w` is linked, so its payload and selection are alive
            // (see `slot_of`).
            unsafe { (*(*entry).selection).claim((*entry).index) }
        };
        if claimed {
            return list.wake_front_with(outcome, before);
        }
        // Its owner does not wait for this entry: no wake-up.
        drop(list.wake_front(SKIPPED));
    }
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
        // Hand it straight to the longest-waiting receiver (the buffer is
        // empty then, so nothing sent earlier is overtaken).
        let mut value = Some(value);
        let wake = wake_first(receivers_q, DONE, |w| {
            // SAFETY: `w` is linked in our receivers' list, claimed, and we
            // hold the lock.
            unsafe { put_into(w, value.take()) };
        });
        if wake.is_some() {
            drop(st);
            unpark(wake);
            return Ok(());
        }
        let value = value.expect("no receiver took it");
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

    /// Takes the next value if one is ready; the wake-up (of a blocked
    /// sender, now done) is to be delivered once the lock is released.
    fn take_ready(st: &mut State<T>) -> Option<(T, Option<Wake>)> {
        let State { buf, senders_q, .. } = st;
        let mut got = buf.pop_front();
        let wake = if got.is_some() {
            // A slot freed up: the longest-blocked sender's value joins the
            // back of the buffer, behind everything sent before it.
            wake_first(senders_q, DONE, |w| {
                // SAFETY: `w` is linked in our senders' list, claimed if it
                // is a select's send entry, and we hold the lock.
                buf.push_back(unsafe { take_from(w) }.expect("a blocked sender's value"));
            })
        } else {
            // Empty buffer with a blocked sender: capacity 0, rendezvous.
            wake_first(senders_q, DONE, |w| {
                // SAFETY: as above.
                got = unsafe { take_from(w) };
            })
        };
        debug_assert!(got.is_some() || wake.is_none(), "a woken sender always fills `got`");
        got.map(|v| (v, wake))
    }

    pub(crate) fn recv(&self, wait: Wait) -> Result<T, Fail<()>> {
        let mut st = self.state.lock();
        if let Some((v, wake)) = Self::take_ready(&mut st) {
            drop(st);
            unpark(wake);
            return Ok(v);
        }
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

    /// A select's receive arm, not linked anywhere (the first pass): takes
    /// a value into `slot` if one is ready. True when the arm is done: a
    /// value taken, or the channel empty and disconnected (`slot` empty).
    ///
    /// # Safety
    /// `slot` is the arm's own, and no entry of the caller's selection is
    /// linked anywhere.
    unsafe fn try_recv_arm(&self, slot: *mut Option<T>) -> bool {
        let mut st = self.state.lock();
        if let Some((v, wake)) = Self::take_ready(&mut st) {
            drop(st);
            unpark(wake);
            // SAFETY: the arm's slot, which nobody else can reach (nothing
            // of the selection is linked).
            unsafe { *slot = Some(v) };
            return true;
        }
        st.senders == 0
    }

    /// A select's send arm, not linked anywhere: hands the value in `slot`
    /// to a waiting receiver or the buffer. True when the arm is done: sent
    /// (`slot` emptied), or every receiver gone (the value still in `slot`).
    ///
    /// # Safety
    /// As for [`try_recv_arm`](Self::try_recv_arm); `slot` holds the value.
    unsafe fn try_send_arm(&self, slot: *mut Option<T>) -> bool {
        let mut st = self.state.lock();
        if st.receivers == 0 {
            return true;
        }
        let State { buf, receivers_q, .. } = &mut *st;
        let wake = wake_first(receivers_q, DONE, |w| {
            // SAFETY: `w` is linked in our receivers' list and claimed; the
            // arm's slot is ours (see above).
            unsafe { put_into(w, (*slot).take()) };
        });
        if wake.is_some() {
            drop(st);
            unpark(wake);
            return true;
        }
        if self.cap.is_none_or(|cap| buf.len() < cap) {
            // SAFETY: as above.
            buf.push_back(unsafe { (*slot).take() }.expect("a send arm holds its value"));
            return true;
        }
        false
    }

    /// Links a select entry `w` into the list of its arm's side (senders'
    /// for a send arm) unless that arm could complete now: a counterpart,
    /// room or a value, or a disconnection, ignoring entries of the
    /// select's own `selection` and those already claimed. True (and `w`
    /// not linked) when it could. Checked before linking, under the lock,
    /// so that the lists' invariants hold: an entry linked beside buffered
    /// values would be handed the next send past them, or be told the
    /// channel closed while they wait.
    ///
    /// # Safety
    /// `w` (a select entry of `selection`) and what it points to stay alive
    /// and unmoved until `w` is unlinked, by a waker or by
    /// [`unlink`](Self::unlink).
    unsafe fn link_arm(&self, w: &Waiter, send: bool, selection: *const Selection) -> bool {
        let mut st = self.state.lock();
        let st = &mut *st;
        let partner = |w: &Waiter| {
            !w.flag.get() || {
                let entry = w.data.get() as *const SelectEntry;
                // SAFETY: a linked entry's payload and selection are alive.
                unsafe {
                    (*entry).selection != selection && (*(*entry).selection).token.load(Ordering::Acquire) == UNCLAIMED
                }
            }
        };
        if send {
            if st.receivers == 0 || self.cap.is_none_or(|cap| st.buf.len() < cap) || st.receivers_q.any(partner) {
                return true;
            }
            // SAFETY: per our contract.
            unsafe { st.senders_q.push(w, false) };
        } else {
            if st.senders == 0 || !st.buf.is_empty() || st.senders_q.any(partner) {
                return true;
            }
            // SAFETY: per our contract.
            unsafe { st.receivers_q.push(w, false) };
        }
        false
    }

    /// Unlinks a select entry unless a waker already did; see
    /// [`WaitList::remove_if_waiting`].
    fn unlink(&self, w: &Waiter, send: bool) {
        let mut st = self.state.lock();
        if send {
            st.senders_q.remove_if_waiting(w);
        } else {
            st.receivers_q.remove_if_waiting(w);
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
        while let Some(w) = wake_first(others, DISCONNECTED, |_| {}) {
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

/// Where a select starts looking: a rotation of its channels that changes
/// at every select, so that a channel that is always ready does not starve
/// the ones after it (crossbeam shuffles for the same reason). A xorshift
/// per OS thread: read and written with no switch in between.
#[cfg(not(loom))]
fn select_start(n: usize) -> usize {
    std::thread_local! {
        static STATE: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }
    STATE.with(|s| {
        let mut x = s.get();
        if x == 0 {
            // Seeded from the state's own address: distinct per OS thread.
            x = (s as *const _ as u64) | 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x % n as u64) as usize
    })
}

/// Loom needs every run of a model to be the same: the last channel first,
/// so that the models cover the wrap-around.
#[cfg(loom)]
fn select_start(n: usize) -> usize {
    n - 1
}

/// One arm of a select: a channel, which side of it, and the arm's value
/// slot (the value to send, or where a received one lands). Arms of
/// different value types are selected over together through
/// [`SelectArm`].
pub(crate) struct ChanArm<'a, T> {
    pub(crate) chan: &'a Chan<T>,
    pub(crate) send: bool,
    pub(crate) slot: UnsafeCell<Option<T>>,
}

impl<'a, T> ChanArm<'a, T> {
    /// A receive arm.
    pub(crate) fn recv(chan: &'a Chan<T>) -> Self {
        ChanArm { chan, send: false, slot: UnsafeCell::new(None) }
    }

    /// A send arm offering `value`.
    pub(crate) fn send(chan: &'a Chan<T>, value: T) -> Self {
        ChanArm { chan, send: true, slot: UnsafeCell::new(Some(value)) }
    }
}

/// A select arm with its value type erased.
pub(crate) trait SelectArm {
    /// The first pass: completes the arm now if it can (see
    /// [`Chan::try_recv_arm`], [`Chan::try_send_arm`]).
    ///
    /// # Safety
    /// No entry of the caller's selection is linked anywhere.
    unsafe fn try_complete(&self) -> bool;
    /// The second pass: links `w`, unless the arm could complete now (then
    /// true; see [`Chan::link_arm`]).
    ///
    /// # Safety
    /// As for [`Chan::link_arm`]; `w`'s entry names this arm's slot.
    unsafe fn link(&self, w: &Waiter, selection: *const Selection) -> bool;
    /// See [`Chan::unlink`].
    fn unlink(&self, w: &Waiter);
    /// The address of the arm's value slot.
    fn slot(&self) -> usize;
    /// A send arm whose value is gone (sent by an earlier select).
    fn spent(&self) -> bool;
}

impl<T> SelectArm for ChanArm<'_, T> {
    unsafe fn try_complete(&self) -> bool {
        // SAFETY: the arm's own slot; the caller's contract.
        unsafe {
            if self.send { self.chan.try_send_arm(self.slot.get()) } else { self.chan.try_recv_arm(self.slot.get()) }
        }
    }

    unsafe fn link(&self, w: &Waiter, selection: *const Selection) -> bool {
        // SAFETY: forwarded contract.
        unsafe { self.chan.link_arm(w, self.send, selection) }
    }

    fn unlink(&self, w: &Waiter) {
        self.chan.unlink(w, self.send);
    }

    fn slot(&self) -> usize {
        self.slot.get() as usize
    }

    fn spent(&self) -> bool {
        // SAFETY: read between selects, when nobody else reaches the slot.
        self.send && unsafe { (*self.slot.get()).is_none() }
    }
}

/// Completes a select over `arms` and returns the index of the arm that
/// completed: a receive arm with its value in its slot (or its slot empty:
/// disconnected), or a send arm with its slot emptied (or still holding
/// the value: every receiver gone).
///
/// The protocol is crossbeam's. A first pass tries each arm, from a
/// varying start ([`select_start`]), with nothing of the select linked
/// anywhere: nobody else can then claim the selection, so an arm that
/// meets a blocked counterpart (a plain thread, or another select, whose
/// selection it claims) completes without a claim of its own. If none can
/// and the select may wait, a second pass links an entry for every arm
/// into its channel's list; a counterpart arriving now claims the
/// selection through it. Before each link, under the channel's lock, the
/// arm is checked once more (a counterpart may have arrived between the
/// passes); an arm that could complete is not linked, and the select
/// claims its own selection as abandoned, unlinks everything and
/// starts over; if that claim fails, a counterpart claimed it first and
/// the select takes that arm's outcome. Claiming the selection for itself
/// before a counterpart's (the single pass this replaces) could leave it
/// claimed with nothing to take when the counterpart was itself a select
/// completed elsewhere meanwhile.
///
/// # Panics
/// If `arms` is empty.
pub(crate) fn select_arms(arms: &[&dyn SelectArm], wait: Wait) -> Result<usize, Fail<()>> {
    assert!(!arms.is_empty(), "a select needs at least one arm");
    assert!(arms.len() < ABANDONED as usize, "a select over {} arms", arms.len());
    let deadline = match wait {
        Wait::Never => None,
        Wait::Until(d) => Some(d),
    };
    loop {
        let start = select_start(arms.len());
        for k in 0..arms.len() {
            let i = (start + k) % arms.len();
            // SAFETY: nothing of this select is linked between rounds.
            if unsafe { arms[i].try_complete() } {
                return Ok(i);
            }
        }
        let Some(deadline) = deadline else { return Err(Fail::WouldBlock(())) };
        match wait_round(arms, start, deadline) {
            Round::Done(i) => return Ok(i),
            Round::TimedOut => return Err(Fail::Timeout(())),
            Round::Again => {
                // Two selects meeting on one channel may abort each other's
                // rounds; a pause breaks the symmetry.
                for _ in 0..4 {
                    crate::sync::atomic::spin_hint();
                }
            }
        }
    }
}

/// How a select's waiting round ended.
enum Round {
    Done(usize),
    TimedOut,
    /// An arm became ready while the entries were being linked.
    Again,
}

/// The second pass of [`select_arms`]: links an entry per arm and waits for
/// a counterpart to claim the selection, or the deadline.
fn wait_round(arms: &[&dyn SelectArm], start: usize, deadline: Option<Instant>) -> Round {
    let selection = Selection::new();
    let entries: Vec<SelectEntry> = arms
        .iter()
        .enumerate()
        .map(|(index, arm)| SelectEntry { selection: &selection, index: index as u32, slot: arm.slot() })
        .collect();
    // Built in full before any is linked: neither vector moves its
    // elements afterwards.
    let waiters: Vec<Waiter> = entries
        .iter()
        .map(|e| {
            let w = Waiter::new();
            w.flag.set(true);
            w.data.set(e as *const SelectEntry as usize);
            w.wake_also(&selection.token);
            w
        })
        .collect();
    // Declared after what the entries point to, so dropped (unlinking
    // them) before any of it, on return and on a panic alike.
    let mut linked = Linked { arms, waiters: &waiters, start, count: 0 };
    let mut ready = false;
    for k in 0..arms.len() {
        let i = (start + k) % arms.len();
        // SAFETY: `waiters[i]` points to `entries[i]`, whose slot is arm
        // `i`'s; they, the arms and `selection` stay where they are until
        // `linked` has unlinked every linked entry.
        ready = unsafe { arms[i].link(&waiters[i], &selection) };
        if ready {
            // Not linked: `linked` must not unlink it.
            break;
        }
        linked.count = k + 1;
    }
    let claimed = || selection.token.load(Ordering::Acquire) != UNCLAIMED;
    let gave_up = if ready {
        selection.claim(ABANDONED)
    } else {
        !park_until_done(deadline, claimed, Sleep::on(&selection.token, UNCLAIMED)) && selection.claim(ABANDONED)
    };
    let round = if gave_up {
        if ready { Round::Again } else { Round::TimedOut }
    } else {
        // A counterpart claimed entry `i` and decides for it under its
        // channel's lock, publishing the outcome last: once it is, the
        // arm's slot holds what the outcome says.
        let i = selection.token.load(Ordering::Acquire) as usize;
        waiters[i].park_until(None);
        Round::Done(i)
    };
    drop(linked);
    round
}

/// Receives from one of `chans` (of one value type): [`select_arms`] over
/// an arm for each. Returns the index of the channel with its value, or
/// `None` if it is disconnected.
pub(crate) fn select<T>(chans: &[&Chan<T>], wait: Wait) -> Result<(usize, Option<T>), Fail<()>> {
    let arms: Vec<ChanArm<'_, T>> = chans.iter().map(|c| ChanArm::recv(c)).collect();
    let dyns: Vec<&dyn SelectArm> = arms.iter().map(|a| a as &dyn SelectArm).collect();
    let i = select_arms(&dyns, wait)?;
    drop(dyns);
    let mut arms = arms;
    Ok((i, arms.swap_remove(i).slot.into_inner()))
}

/// The `count` entries of a select from `start` on (wrapping around),
/// linked into the receivers' lists of their channels; unlinked from each
/// (unless a waker already did) when this is dropped.
struct Linked<'a, 'b> {
    arms: &'a [&'b dyn SelectArm],
    waiters: &'a [Waiter],
    start: usize,
    count: usize,
}

impl Drop for Linked<'_, '_> {
    fn drop(&mut self) {
        // A select that may not wait links nothing (`waiters` is empty).
        for k in 0..self.count {
            let i = (self.start + k) % self.arms.len();
            if let Some(w) = self.waiters.get(i) {
                self.arms[i].unlink(w);
            }
        }
    }
}
