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
//! the thread itself, the committer or one unparker.

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
    pub(crate) const fn new() -> Self {
        ParkState(AtomicU8::new(EMPTY))
    }

    /// Consumes a pending token; true means "do not park at all".
    #[inline]
    pub(crate) fn try_consume(&self) -> bool {
        self.0.compare_exchange(NOTIFIED, EMPTY, Ordering::Acquire, Ordering::Relaxed).is_ok()
    }

    /// Run by the next context after the parking thread switched out.
    pub(crate) fn commit(&self) -> Commit {
        match self.0.compare_exchange(EMPTY, PARKED, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Commit::Parked,
            Err(_) => {
                // NOTIFIED: the unparker saw EMPTY and left the job to us.
                self.0.store(EMPTY, Ordering::Relaxed);
                Commit::Runnable
            }
        }
    }

    /// Sets the token; true means the thread was parked and the caller now
    /// owns scheduling it.
    #[inline]
    pub(crate) fn unpark(&self) -> bool {
        if self.0.load(Ordering::Relaxed) == NOTIFIED {
            return false;
        }
        match self.0.swap(NOTIFIED, Ordering::AcqRel) {
            PARKED => {
                // The thread consumes the wake-up by running.
                self.0.store(EMPTY, Ordering::Release);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
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
