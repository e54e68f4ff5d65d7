//! Time green and OS threads spent blocked on the crate's locks (`Mutex`,
//! `RwLock`), for `SystemMetrics`: counted where a waiter parks, which is
//! the slow path already (a park and a wake-up take microseconds), so the
//! uncontended and spinning paths pay nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

static WAITS: AtomicU64 = AtomicU64::new(0);
static WAIT_NS: AtomicU64 = AtomicU64::new(0);

/// A waiter that first parked at `since` holds the lock now.
pub(crate) fn waited(since: Instant) {
    WAITS.fetch_add(1, Ordering::Relaxed);
    WAIT_NS.fetch_add(since.elapsed().as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
}

/// Lock acquisitions that had to park, and their total wait in ns.
pub(crate) fn totals() -> (u64, u64) {
    (WAITS.load(Ordering::Relaxed), WAIT_NS.load(Ordering::Relaxed))
}
