//! The park/unpark token of a green thread: the one wake-up protocol every
//! blocking primitive of the crate is built on.
//!
//! A thread that parks does not sleep on its own: it switches away, and the
//! context that runs next *commits* the park (see `Worker::finish_post`).
//! An `unpark` that lands between "decided to park" and "committed" leaves
//! the token set, the commit sees it and puts the thread straight back on a
//! run queue, so no wake-up is ever lost. Like `std::thread::park`, a park
//! may also return spuriously; callers loop on their own condition.
//!
//! # States
//!
//! One byte, one of three values:
//!
//! | state | bits | meaning | moved by, to |
//! |---|---|---|---|
//! | `EMPTY` | `00` | no token: the thread runs, or has switched out to park and the commit has not run yet | [`unpark`](ParkState::unpark) (anyone), to `NOTIFIED`, answering false; [`commit`](ParkState::commit) (the next context on the parker's worker), to `PARKED`, answering [`Commit::Parked`] |
//! | `NOTIFIED` | `01` | a token: an unpark that no park has consumed | [`try_consume`](ParkState::try_consume) (the thread, before it parks), to `EMPTY`: the park returns at once; `commit`, to `EMPTY`, answering [`Commit::Runnable`]: the committer schedules the thread |
//! | `PARKED` | `10` | committed: on no run queue, and only an unparker brings it back | `unpark`, to `NOTIFIED` and then `EMPTY`, answering true: its caller schedules the thread |
//!
//! The `NOTIFIED` between an unpark's two steps out of `PARKED` is no token
//! anyone consumes: the thread is not running, so neither `try_consume` nor
//! `commit` can see it, and an unpark meanwhile answers false because the
//! thread is being woken already. Exactly one party schedules each park:
//! the thread itself, the committer or one unparker. And every unparker's
//! writes before its `unpark` reach the thread once it consumes the token,
//! as with `std::thread::park`: an unpark always writes the word (even on a
//! pending token), and the word's other writes are swaps, which keep the
//! unparkers' release sequence (loom model
//! `loom_a_waker_meeting_a_stale_token_is_not_lost`).

#[cfg(loom)]
use loom::sync::atomic::{AtomicU8, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU8, Ordering};

const EMPTY: u8 = 0;
const NOTIFIED: u8 = 1;
const PARKED: u8 = 2;

pub(crate) struct ParkState(AtomicU8);

/// What the committing side must do with the thread.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Commit {
    /// It is parked: whoever unparks it will schedule it.
    Parked,
    /// An unpark arrived first: schedule it now.
    Runnable,
}

impl ParkState {
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        ParkState(AtomicU8::new(EMPTY))
    }

    /// Loom's atomics have no const constructor.
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        ParkState(AtomicU8::new(EMPTY))
    }

    /// Committed to a park (for thread dumps: a snapshot, stale at once).
    pub(crate) fn is_parked(&self) -> bool {
        self.0.load(Ordering::Relaxed) == PARKED
    }

    /// Consumes a pending token; true means "do not park at all". A plain
    /// load first: most parks find no token, and a token that this load
    /// misses is caught by the commit, which answers `Runnable`.
    #[inline]
    pub(crate) fn try_consume(&self) -> bool {
        self.0.load(Ordering::Relaxed) == NOTIFIED
            && self.0.compare_exchange(NOTIFIED, EMPTY, Ordering::Acquire, Ordering::Relaxed).is_ok()
    }

    /// Run by the next context after the parking thread switched out.
    pub(crate) fn commit(&self) -> Commit {
        match self.0.compare_exchange(EMPTY, PARKED, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Commit::Parked,
            Err(_) => {
                // NOTIFIED: the unparker saw EMPTY and left the job to us. A
                // swap, not a store: it keeps the release sequence of any
                // unparker that swapped NOTIFIED in meanwhile, whose writes
                // the thread must see when it next consumes the word.
                self.0.swap(EMPTY, Ordering::AcqRel);
                Commit::Runnable
            }
        }
    }

    /// Sets the token; true means the thread was parked and the caller now
    /// owns scheduling it. Always a write, even when a token is pending
    /// already (a stale one: a park timeout's timer that fired after the
    /// thread was woken, or a user's extra unpark): the thread that consumes
    /// the token must see what this caller wrote before it, which a load
    /// that found the token and returned would not publish.
    #[inline]
    pub(crate) fn unpark(&self) -> bool {
        match self.0.swap(NOTIFIED, Ordering::AcqRel) {
            PARKED => {
                // The thread consumes the wake-up by running. A swap, for the
                // release sequence (see `commit`).
                self.0.swap(EMPTY, Ordering::AcqRel);
                true
            }
            _ => false,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn state(s: &ParkState) -> u8 {
        s.0.load(Ordering::Relaxed)
    }

    #[test]
    fn a_new_state_holds_no_token() {
        let s = ParkState::new();
        assert_eq!(state(&s), EMPTY);
        assert!(!s.try_consume());
        assert_eq!(state(&s), EMPTY);
    }

    #[test]
    fn an_unpark_before_the_park_makes_it_return_at_once() {
        let s = ParkState::new();
        assert!(!s.unpark(), "nobody to schedule: the thread runs");
        assert_eq!(state(&s), NOTIFIED);
        assert!(s.try_consume());
        assert_eq!(state(&s), EMPTY);
        assert!(!s.try_consume(), "one unpark, one park cut short");
    }

    #[test]
    fn an_unpark_before_the_commit_makes_the_committer_schedule() {
        let s = ParkState::new();
        assert!(!s.try_consume());
        assert!(!s.unpark());
        assert_eq!(s.commit(), Commit::Runnable);
        assert_eq!(state(&s), EMPTY, "the token is spent on this park");
        assert_eq!(s.commit(), Commit::Parked, "the next park is committed");
    }

    #[test]
    fn an_unpark_after_the_commit_makes_the_unparker_schedule() {
        let s = ParkState::new();
        assert_eq!(s.commit(), Commit::Parked);
        assert_eq!(state(&s), PARKED);
        assert!(s.unpark());
        assert_eq!(state(&s), EMPTY);
        // The thread was woken: a second unpark is a token for its next park.
        assert!(!s.unpark());
        assert_eq!(state(&s), NOTIFIED);
        assert!(s.try_consume());
    }

    #[test]
    fn unparks_of_a_running_thread_leave_one_token() {
        let s = ParkState::new();
        assert!(!s.unpark());
        assert!(!s.unpark());
        assert_eq!(state(&s), NOTIFIED);
        assert!(s.try_consume());
        assert!(!s.try_consume());
        assert_eq!(s.commit(), Commit::Parked);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicBool;
    use loom::thread;

    /// What an unparker publishes before its unpark, for the thread to read
    /// once woken: loom reports a read not ordered after the write.
    struct Published(UnsafeCell<u32>);

    // SAFETY: the models only read it where the protocol claims the write
    // happened before; loom checks that claim.
    unsafe impl Sync for Published {}

    /// The parking side up to where the real code leaves the thread to an
    /// unparker: `ops::park`'s `try_consume`, then the next context's
    /// `commit` (`Worker::commit_park`). True when it schedules the thread
    /// itself.
    fn park(s: &ParkState) -> bool {
        s.try_consume() || s.commit() == Commit::Runnable
    }

    /// One unpark racing one park: exactly one side schedules the thread,
    /// the token is spent, and the unparker's writes are visible to the
    /// thread whichever side wakes it.
    #[test]
    fn loom_an_unpark_racing_a_park_wakes_it_exactly_once() {
        loom::model(|| {
            let s = Arc::new(ParkState::new());
            let published = Arc::new(Published(UnsafeCell::new(0)));
            let unparker = {
                let (s, published) = (Arc::clone(&s), Arc::clone(&published));
                thread::spawn(move || {
                    // SAFETY: see `Published`.
                    published.0.with_mut(|p| unsafe { *p = 1 });
                    s.unpark()
                })
            };
            let parker_woke = park(&s);
            if parker_woke {
                // The thread runs on: what its unparker published is visible.
                // SAFETY: see `Published`.
                assert_eq!(published.0.with(|p| unsafe { *p }), 1);
            }
            let unparker_schedules = unparker.join().unwrap();
            assert_eq!(u8::from(parker_woke) + u8::from(unparker_schedules), 1);
            assert_eq!(s.0.load(Ordering::Relaxed), EMPTY);
        });
    }

    /// A park timeout's unpark (`Worker::poll_slow`) racing a
    /// `Thread::unpark`: exactly one of the three schedules the thread;
    /// the other unpark is at most a token for the next park.
    #[test]
    fn loom_two_unparks_racing_a_park_wake_it_exactly_once() {
        loom::model(|| {
            let s = Arc::new(ParkState::new());
            let unparkers: Vec<_> = (0..2)
                .map(|_| {
                    let s = Arc::clone(&s);
                    thread::spawn(move || s.unpark())
                })
                .collect();
            let mut wakes = u8::from(park(&s));
            for u in unparkers {
                wakes += u8::from(u.join().unwrap());
            }
            assert_eq!(wakes, 1);
            assert_ne!(s.0.load(Ordering::Relaxed), PARKED);
        });
    }

    /// How every caller uses the token (`sync::waiter`, `join`): a waker
    /// publishes the condition, then unparks; the thread loops on the
    /// condition, parking while it does not hold. A stale unpark races the
    /// waker: a park timeout's timer firing after the thread was woken
    /// (timers are not cancelled), or a user's `Thread::unpark`. Whichever
    /// unpark wakes the thread, it must then see the condition, or it parks
    /// again with nobody left to wake it (loom reports the deadlock).
    ///
    /// It failed before `unpark` lost its relaxed fast path: on a pending
    /// token it returned without a release, so the thread that consumed the
    /// token acquired the stale unparker's writes but not the waker's
    /// condition (on x86 too: the waker's store may still sit in its store
    /// buffer when its load reads the token). Plain stores ending the
    /// `PARKED` case and `commit`'s `Runnable` case also dropped a
    /// concurrent unparker's release (C11; not seen on x86 or ARMv8).
    #[test]
    fn loom_a_waker_meeting_a_stale_token_is_not_lost() {
        loom::model(|| {
            let s = Arc::new(ParkState::new());
            let ready = Arc::new(AtomicBool::new(false));
            let scheduled = Arc::new(AtomicBool::new(false));
            let unparker = |publish: bool| {
                let (s, ready, scheduled, me) =
                    (Arc::clone(&s), Arc::clone(&ready), Arc::clone(&scheduled), thread::current());
                thread::spawn(move || {
                    if publish {
                        ready.store(true, Ordering::Release);
                    }
                    if s.unpark() {
                        // Puts the thread on a run queue (a release), and
                        // its worker runs it (an acquire). A swap, not a
                        // store: loom lets a store land inside a concurrent
                        // swap (tokio-rs/loom#254).
                        scheduled.swap(true, Ordering::Release);
                        me.unpark();
                    }
                })
            };
            let (stale, waker) = (unparker(false), unparker(true));
            while !ready.load(Ordering::Acquire) {
                if !park(&s) {
                    while !scheduled.swap(false, Ordering::Acquire) {
                        thread::park();
                    }
                }
            }
            stale.join().unwrap();
            waker.join().unwrap();
        });
    }
}
