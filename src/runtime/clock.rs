//! Monotonic nanoseconds since the runtime first looked at the clock: a
//! plain `u64` that atomics can carry between workers and the monitor.

use std::sync::OnceLock;
use std::time::Instant;

fn start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

pub(crate) fn now_ns() -> u64 {
    ns_of(Instant::now())
}

/// Never 0, so that 0 can mean "not yet" in the atomics that carry it.
pub(crate) fn ns_of(t: Instant) -> u64 {
    t.saturating_duration_since(start()).as_nanos().min(u64::MAX as u128 - 2) as u64 + 1
}
