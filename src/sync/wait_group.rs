use super::atomic::{AtomicUsize, Ordering};
use super::condvar::Condvar;
use super::error::TimedOut;
use super::mutex::Mutex;
use std::fmt;
use std::time::Duration;

/// Waits for a collection of tasks to finish, like Go's `sync.WaitGroup`:
/// [`add`](Self::add) before starting work, [`done`](Self::done) when a
/// piece finishes, [`wait`](Self::wait) until the count is back to zero.
/// Waiting parks a green thread (or blocks an OS thread).
///
/// ```
/// use preemptive_mlthreading_rust::{spawn, sync::WaitGroup};
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
///
/// let wg = Arc::new(WaitGroup::new());
/// let sum = Arc::new(AtomicU32::new(0));
/// for i in 1..=10 {
///     wg.add(1);
///     let (wg, sum) = (Arc::clone(&wg), Arc::clone(&sum));
///     spawn(move || { sum.fetch_add(i, SeqCst); wg.done(); }).unwrap();
/// }
/// wg.wait();
/// assert_eq!(sum.load(SeqCst), 55);
/// ```
pub struct WaitGroup {
    count: AtomicUsize,
    lock: Mutex<()>,
    zero: Condvar,
}

impl WaitGroup {
    /// A wait group with a count of zero. Usable in a `static`.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        WaitGroup { count: AtomicUsize::new(0), lock: Mutex::new(()), zero: Condvar::new() }
    }

    #[cfg(loom)]
    pub fn new() -> Self {
        WaitGroup { count: AtomicUsize::new(0), lock: Mutex::new(()), zero: Condvar::new() }
    }

    /// Adds `n` pieces of outstanding work.
    pub fn add(&self, n: usize) {
        self.count.fetch_add(n, Ordering::Relaxed);
    }

    /// Marks one piece of work finished; wakes the waiters when it was the
    /// last. Calling it more often than `add` counted is a bug in the
    /// caller and panics (as Go's does), leaving the count at zero.
    pub fn done(&self) {
        let prev = self
            .count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| c.checked_sub(1))
            .unwrap_or_else(|_| panic!("WaitGroup::done called more times than add counted"));
        if prev == 1 {
            // Taking the lock orders this with a waiter between its check
            // of the count and its wait.
            drop(self.lock.lock());
            self.zero.notify_all();
        }
    }

    /// The outstanding count right now.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Waits until the count is zero.
    pub fn wait(&self) {
        let g = self.lock.lock();
        drop(self.zero.wait_while(g, |_| self.count.load(Ordering::Acquire) != 0));
    }

    /// Waits until the count is zero, giving up after `timeout`.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::{Duration, sync::WaitGroup};
    ///
    /// let wg = WaitGroup::new();
    /// wg.add(1);
    /// assert!(wg.wait_timeout(Duration::from_millis(2)).is_err());
    /// wg.done();
    /// assert!(wg.wait_timeout(Duration::from_millis(2)).is_ok());
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<(), TimedOut> {
        let g = self.lock.lock();
        // A timeout too large for the clock waits for ever (Condvar's rule).
        let (_g, r) = self.zero.wait_timeout_while(g, timeout, |_| self.count.load(Ordering::Acquire) != 0);
        if r.timed_out() { Err(TimedOut) } else { Ok(()) }
    }
}

impl Default for WaitGroup {
    fn default() -> Self {
        WaitGroup::new()
    }
}

impl fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitGroup").field("count", &self.count()).finish()
    }
}

// Its internal state stays consistent if a panic unwinds through a waiter.
impl std::panic::RefUnwindSafe for WaitGroup {}
impl std::panic::UnwindSafe for WaitGroup {}
