//! A test-only wait in the scheduling context: the owner, committing one
//! chosen thread's sleep, takes [`LOCK`] first. A green thread preempted
//! while it holds that lock is the malloc arena of the hang that
//! [`Worker::watch_between_threads`](super::Worker::watch_between_threads)
//! rescues, made deterministic.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What the owner waits for.
pub(crate) static LOCK: Mutex<()> = Mutex::new(());
/// Set right before the owner waits.
pub(crate) static ENTERED: AtomicBool = AtomicBool::new(false);
/// The id of the thread whose next sleep makes the owner wait; 0: none.
static ARMED: AtomicU64 = AtomicU64::new(0);

/// The next sleep of the thread `id` makes its owner wait for [`LOCK`].
pub(crate) fn arm(id: u64) {
    ARMED.store(id, Ordering::SeqCst);
}

/// From the owner, committing the sleep of thread `id`.
pub(super) fn before_sleep(id: u64) {
    if ARMED.compare_exchange(id, 0, Ordering::SeqCst, Ordering::Relaxed).is_ok() {
        ENTERED.store(true, Ordering::SeqCst);
        drop(LOCK.lock());
    }
}
