//! Thread identities: one counter for green and OS threads alike.

use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};

/// A unique identifier of a thread, green or OS, never reused.
///
/// ```
/// use preemptive_mlthreading_rust::{current, spawn};
///
/// let h = spawn(|| current().id()).unwrap();
/// let id = h.thread().id();
/// assert_eq!(h.join().unwrap(), id);
/// assert_ne!(current().id(), id);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ThreadId(NonZeroU64);

impl ThreadId {
    pub(crate) fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        ThreadId(NonZeroU64::new(id).expect("thread id counter overflowed"))
    }

    /// The id `n` stands for, if it could be one.
    pub(crate) fn from_u64(n: u64) -> Option<Self> {
        NonZeroU64::new(n).map(ThreadId)
    }

    /// The id as a number.
    pub fn as_u64(self) -> NonZeroU64 {
        self.0
    }
}
