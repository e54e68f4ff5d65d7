use crate::runtime::worker;
use std::time::Duration;

/// Gives the CPU to another runnable thread of the same or higher priority
/// on this worker, if there is one. From an OS thread, `std::thread::yield_now`.
///
/// No syscall, lock or allocation on this path.
///
/// ```
/// use preemptive_mlthreading_rust::{yield_now, RoundRobinScheduler};
/// use std::sync::{Arc, Mutex};
///
/// let one = RoundRobinScheduler::new().with_workers(1);
/// let log = Arc::new(Mutex::new(Vec::new()));
/// let hs: Vec<_> = ["a", "b"].into_iter().map(|t| {
///     let log = Arc::clone(&log);
///     one.spawn(move || for i in 0..3 { log.lock().unwrap().push(format!("{t}{i}")); yield_now(); }).unwrap()
/// }).collect();
/// hs.into_iter().for_each(|h| h.join().unwrap());
/// assert_eq!(log.lock().unwrap().len(), 6);
/// ```
#[inline(always)]
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
///
/// ```
/// use preemptive_mlthreading_rust::{park, spawn};
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
///
/// let ready = Arc::new(AtomicBool::new(false));
/// let r = Arc::clone(&ready);
/// let h = spawn(move || while !r.load(Ordering::Acquire) { park() }).unwrap();
/// ready.store(true, Ordering::Release);
/// h.thread().unpark();
/// h.join().unwrap();
/// ```
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
