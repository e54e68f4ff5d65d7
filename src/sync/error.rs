use std::fmt;

/// A `try_` operation found the primitive busy and did not wait.
///
/// ```
/// use preemptive_mlthreading_rust::Mutex;
///
/// let m = Mutex::new(1);
/// let _held = m.lock();
/// assert!(m.try_lock().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WouldBlock;

impl fmt::Display for WouldBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the operation would block")
    }
}

impl std::error::Error for WouldBlock {}

/// A timed wait gave up at its deadline; nothing was acquired.
///
/// ```
/// use preemptive_mlthreading_rust::{Mutex, Duration};
///
/// let m = Mutex::new(1);
/// let _held = m.lock();
/// assert!(m.try_lock_for(Duration::from_millis(1)).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut;

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("timed out")
    }
}

impl std::error::Error for TimedOut {}

/// `Instant::now() + dur`, or "never" when that overflows.
pub(crate) fn deadline_after(dur: std::time::Duration) -> Option<std::time::Instant> {
    std::time::Instant::now().checked_add(dur)
}
