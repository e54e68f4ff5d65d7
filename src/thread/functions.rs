use crate::runtime::worker;
use std::time::Duration;

/// Gives the CPU to another runnable thread of the same or higher priority
/// on this worker, if there is one. From an OS thread, `std::thread::yield_now`.
///
/// No syscall, lock or allocation on this path.
#[inline]
pub fn yield_now() {
    if !worker::yield_now() {
        std::thread::yield_now()
    }
}

/// Suspends the calling thread for at least `dur`. A green thread leaves its
/// worker free for the others meanwhile (the worker sleeps until the
/// earliest deadline, never spins). From an OS thread, `std::thread::sleep`.
///
/// ```
/// use preemptive_mlthreading_rust::{sleep, Duration, ThreadBuilder};
/// use std::time::Instant;
///
/// let h = ThreadBuilder::new().spawn(|| {
///     let t = Instant::now();
///     sleep(Duration::from_millis(5));
///     t.elapsed()
/// }).unwrap();
/// assert!(h.join().unwrap() >= Duration::from_millis(5));
/// ```
pub fn sleep(dur: Duration) {
    if dur.is_zero() {
        return yield_now();
    }
    if !worker::sleep(dur) {
        std::thread::sleep(dur)
    }
}

/// Blocks until [`Thread::unpark`](crate::Thread::unpark) is called on this
/// thread (or returns at once if it already was). May also return
/// spuriously, like `std::thread::park`: call it in a loop on your own
/// condition.
pub fn park() {
    if !worker::park(None) {
        std::thread::park()
    }
}

/// Like [`park`], but returns after `timeout` at the latest.
pub fn park_timeout(timeout: Duration) {
    if !worker::park(Some(timeout)) {
        std::thread::park_timeout(timeout)
    }
}

/// Number of CPUs this process may run on (its affinity mask), the default
/// number of workers.
pub fn num_cpus() -> usize {
    crate::runtime::cpu::allowed_cpus().len().max(1)
}
