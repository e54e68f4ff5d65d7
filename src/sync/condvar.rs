use super::atomic::{AtomicUsize, Ordering, loom_const_fn};
use super::error::deadline_after;
use super::mutex::MutexGuard;
use super::spin::SpinLock;
use super::waiter::{WaitList, Waiter, Wakes};
use std::fmt;
use std::mem;
use std::time::{Duration, Instant};

const NOTIFIED: u8 = 1;

/// A condition variable for [`Mutex`](super::Mutex): waiting parks a green
/// thread (or blocks an OS thread) after releasing the mutex, atomically
/// with respect to notifications sent by holders of that mutex.
///
/// A notification reaches only threads already waiting, and a timed wait
/// that is notified as it times out reports a notification, not a timeout,
/// so none is lost. Waits may also return spuriously; use
/// [`wait_while`](Self::wait_while) or loop on the condition.
///
/// ```
/// use preemptive_mlthreading_rust::{spawn, sync::{Condvar, Mutex}};
/// use std::sync::Arc;
///
/// let pair = Arc::new((Mutex::new(false), Condvar::new()));
/// let p = Arc::clone(&pair);
/// let h = spawn(move || {
///     *p.0.lock() = true;
///     p.1.notify_one();
/// }).unwrap();
/// let (lock, cv) = &*pair;
/// let ready = cv.wait_while(lock.lock(), |ready| !*ready);
/// assert!(*ready);
/// drop(ready);
/// h.join().unwrap();
/// ```
pub struct Condvar {
    waiters: SpinLock<WaitList>,
    /// How many are linked; lets `notify_*` skip the lock when none are.
    count: AtomicUsize,
}

/// Whether a timed [`Condvar`] wait returned because its time ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// True when the wait ended by timing out, not by a notification.
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

impl Condvar {
    loom_const_fn! {
        /// A condition variable with no waiters; usable in a `static`.
        pub fn new() -> Self {
            Condvar { waiters: SpinLock::new(WaitList::new()), count: AtomicUsize::new(0) }
        }
    }

    /// Releases the guard's mutex, waits for a notification, and locks the
    /// mutex again before returning.
    pub fn wait<'a, T: ?Sized>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.wait_until_inner(guard, None).0
    }

    /// Waits until `condition` is false, checking it under the lock before
    /// every wait and after every wake-up.
    pub fn wait_while<'a, T: ?Sized, F>(&self, mut guard: MutexGuard<'a, T>, mut condition: F) -> MutexGuard<'a, T>
    where
        F: FnMut(&mut T) -> bool,
    {
        while condition(&mut *guard) {
            guard = self.wait(guard);
        }
        guard
    }

    /// Like [`wait`](Self::wait), giving up after `timeout`.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::{Duration, sync::{Condvar, Mutex}};
    ///
    /// let (m, cv) = (Mutex::new(()), Condvar::new());
    /// let (_g, r) = cv.wait_timeout(m.lock(), Duration::from_millis(5));
    /// assert!(r.timed_out());
    /// ```
    pub fn wait_timeout<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> (MutexGuard<'a, T>, WaitTimeoutResult) {
        self.wait_until_inner(guard, deadline_after(timeout))
    }

    /// Like [`wait_while`](Self::wait_while), giving up after `timeout`;
    /// the result says whether the condition was still true then.
    pub fn wait_timeout_while<'a, T: ?Sized, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        timeout: Duration,
        mut condition: F,
    ) -> (MutexGuard<'a, T>, WaitTimeoutResult)
    where
        F: FnMut(&mut T) -> bool,
    {
        let deadline = deadline_after(timeout);
        while condition(&mut *guard) {
            let (g, r) = self.wait_until_inner(guard, deadline);
            guard = g;
            if r.timed_out() {
                let still = condition(&mut *guard);
                return (guard, WaitTimeoutResult(still));
            }
        }
        (guard, WaitTimeoutResult(false))
    }

    fn wait_until_inner<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Option<Instant>,
    ) -> (MutexGuard<'a, T>, WaitTimeoutResult) {
        let waiter = Waiter::new();
        {
            let mut list = self.waiters.lock();
            // SAFETY: `waiter` lives on this frame until it is unlinked by a
            // notifier or by us below.
            unsafe { list.push(&waiter, false) };
            self.count.fetch_add(1, Ordering::Relaxed);
        }
        let mutex = guard.mutex;
        mem::forget(guard);
        // SAFETY: the guard we just forgot held the lock.
        unsafe { mutex.raw.unlock() };
        let timed_out = match waiter.park_until(deadline) {
            Some(_) => false,
            None => {
                let mut list = self.waiters.lock();
                let gave_up = list.remove_if_waiting(&waiter);
                if gave_up {
                    self.count.fetch_sub(1, Ordering::Relaxed);
                }
                gave_up
            }
        };
        mutex.raw.lock();
        (MutexGuard::new(mutex), WaitTimeoutResult(timed_out))
    }

    /// Wakes one waiting thread, if any. Returns whether one was woken.
    pub fn notify_one(&self) -> bool {
        // Waiters link themselves before releasing the mutex, and the
        // notifier changed the condition holding it: that Acquire chain
        // makes their count visible here.
        if self.count.load(Ordering::Acquire) == 0 {
            return false;
        }
        let mut list = self.waiters.lock();
        let wake = list.wake_front(NOTIFIED);
        if wake.is_some() {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
        drop(list);
        wake.map(|w| w.unpark()).is_some()
    }

    /// Wakes every waiting thread. Returns how many were woken.
    pub fn notify_all(&self) -> usize {
        if self.count.load(Ordering::Acquire) == 0 {
            return 0;
        }
        let mut wakes = Wakes::default();
        let mut list = self.waiters.lock();
        while let Some(w) = list.wake_front(NOTIFIED) {
            wakes.push(w);
        }
        let n = wakes.len();
        self.count.fetch_sub(n, Ordering::Relaxed);
        drop(list);
        wakes.unpark_all();
        n
    }
}

impl Default for Condvar {
    fn default() -> Self {
        Condvar::new()
    }
}

impl fmt::Debug for Condvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar").field("waiters", &self.count.load(Ordering::Relaxed)).finish()
    }
}

// Its internal state stays consistent if a panic unwinds through a waiter.
impl std::panic::RefUnwindSafe for Condvar {}
impl std::panic::UnwindSafe for Condvar {}
