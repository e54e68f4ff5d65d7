//! The park/unpark token of a green thread: the one wake-up protocol every
//! blocking primitive of the crate is built on.
//!
//! A thread that parks does not sleep on its own: it switches away, and the
//! context that runs next *commits* the park (see `Worker::finish_post`).
//! An `unpark` that lands between "decided to park" and "committed" leaves
//! the token set, the commit sees it and puts the thread straight back on a
//! run queue, so no wake-up is ever lost. Like `std::thread::park`, a park
//! may also return spuriously; callers loop on their own condition.

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
