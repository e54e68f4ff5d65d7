use super::atomic::{AtomicUsize, Ordering, loom_const_fn};
use super::error::{TimedOut, WouldBlock, deadline_after};
use super::spin::SpinLock;
use super::waiter::{WaitList, Waiter, Wakes};
use std::fmt;
use std::time::{Duration, Instant};

/// Someone waits: releases must go through the list.
const WAITERS: usize = 1;
const ONE: usize = 2;
const GRANTED: u8 = 1;

/// A counting semaphore: `acquire` takes a permit, parking a green thread
/// (or blocking an OS thread) until one is available; dropping the
/// [`SemaphorePermit`] gives it back.
///
/// Waiters are served in FIFO order, each handed its permits by the thread
/// that releases them; a waiter asking for many permits holds back those
/// behind it until it is served (no starvation of large requests).
/// Uncontended, acquire and release are one compare-and-swap each.
///
/// ```
/// use preemptive_mlthreading_rust::{spawn, sync::Semaphore};
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
///
/// let sem = Arc::new(Semaphore::new(2));
/// let inside = Arc::new(AtomicUsize::new(0));
/// let hs: Vec<_> = (0..8).map(|_| {
///     let (sem, inside) = (Arc::clone(&sem), Arc::clone(&inside));
///     spawn(move || {
///         let _permit = sem.acquire();
///         assert!(inside.fetch_add(1, SeqCst) < 2);
///         preemptive_mlthreading_rust::yield_now();
///         inside.fetch_sub(1, SeqCst);
///     }).unwrap()
/// }).collect();
/// hs.into_iter().for_each(|h| h.join().unwrap());
/// assert_eq!(sem.available_permits(), 2);
/// ```
pub struct Semaphore {
    /// Free permits times `ONE`, plus the `WAITERS` bit.
    state: AtomicUsize,
    waiters: SpinLock<WaitList>,
}

/// Permits taken from a [`Semaphore`]; released when dropped.
#[must_use = "the permits are released as soon as this is dropped"]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
    n: usize,
}

impl Semaphore {
    /// The most permits a semaphore can hold.
    pub const MAX_PERMITS: usize = usize::MAX / ONE;

    loom_const_fn! {
        /// A semaphore with `permits` free permits (at most
        /// [`MAX_PERMITS`](Self::MAX_PERMITS); more are clamped). Usable in
        /// a `static`.
        pub fn new(permits: usize) -> Self {
            let permits = if permits > Self::MAX_PERMITS { Self::MAX_PERMITS } else { permits };
            Semaphore { state: AtomicUsize::new(permits * ONE), waiters: SpinLock::new(WaitList::new()) }
        }
    }

    /// Free permits right now (a hint).
    pub fn available_permits(&self) -> usize {
        self.state.load(Ordering::Relaxed) / ONE
    }

    /// Takes one permit, waiting as long as it takes.
    pub fn acquire(&self) -> SemaphorePermit<'_> {
        self.acquire_many(1)
    }

    /// Takes `n` permits at once, waiting as long as it takes. `n` must not
    /// exceed [`MAX_PERMITS`](Self::MAX_PERMITS) (it would wait for ever;
    /// it panics instead).
    pub fn acquire_many(&self, n: usize) -> SemaphorePermit<'_> {
        assert!(n <= Self::MAX_PERMITS, "Semaphore::acquire_many({n}): more than MAX_PERMITS can never be free");
        if !self.try_take(n) {
            self.acquire_slow(n, None);
        }
        SemaphorePermit { sem: self, n }
    }

    /// Takes one permit if one is free and nobody waits before us.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::Semaphore;
    ///
    /// let s = Semaphore::new(1);
    /// let p = s.try_acquire().unwrap();
    /// assert!(s.try_acquire().is_err());
    /// drop(p);
    /// assert!(s.try_acquire().is_ok());
    /// ```
    pub fn try_acquire(&self) -> Result<SemaphorePermit<'_>, WouldBlock> {
        self.try_acquire_many(1)
    }

    /// Takes `n` permits if they are free and nobody waits before us.
    pub fn try_acquire_many(&self, n: usize) -> Result<SemaphorePermit<'_>, WouldBlock> {
        if self.try_take(n) { Ok(SemaphorePermit { sem: self, n }) } else { Err(WouldBlock) }
    }

    /// Takes one permit, giving up after `timeout`.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::{Duration, sync::Semaphore};
    ///
    /// let s = Semaphore::new(0);
    /// assert!(s.acquire_timeout(Duration::from_millis(2)).is_err());
    /// s.add_permits(1);
    /// assert!(s.acquire_timeout(Duration::from_millis(2)).is_ok());
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<SemaphorePermit<'_>, TimedOut> {
        self.acquire_many_timeout(1, timeout)
    }

    /// Takes `n` permits, giving up after `timeout`; nothing is taken then.
    pub fn acquire_many_timeout(&self, n: usize, timeout: Duration) -> Result<SemaphorePermit<'_>, TimedOut> {
        if self.try_take(n) {
            return Ok(SemaphorePermit { sem: self, n });
        }
        match deadline_after(timeout) {
            None => Ok(self.acquire_many(n)),
            Some(_) if n > Self::MAX_PERMITS => Err(TimedOut),
            Some(d) => {
                if self.acquire_slow(n, Some(d)) {
                    Ok(SemaphorePermit { sem: self, n })
                } else {
                    Err(TimedOut)
                }
            }
        }
    }

    /// Adds `n` permits, serving waiters first. Panics if the total would
    /// exceed [`MAX_PERMITS`](Self::MAX_PERMITS).
    pub fn add_permits(&self, n: usize) {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s & WAITERS != 0 {
                return self.release_slow(n);
            }
            let next = Self::plus(s, n);
            match self.state.compare_exchange_weak(s, next, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return,
                Err(now) => s = now,
            }
        }
    }

    fn plus(s: usize, n: usize) -> usize {
        n.checked_mul(ONE)
            .and_then(|add| s.checked_add(add))
            .unwrap_or_else(|| panic!("Semaphore: adding {n} permits exceeds MAX_PERMITS"))
    }

    #[inline]
    fn try_take(&self, n: usize) -> bool {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s & WAITERS != 0 || s / ONE < n {
                return false;
            }
            match self.state.compare_exchange_weak(s, s - n * ONE, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
    }

    #[cold]
    fn acquire_slow(&self, n: usize, deadline: Option<Instant>) -> bool {
        let waiter = Waiter::new();
        waiter.data.set(n);
        {
            let mut list = self.waiters.lock();
            let mut s = self.state.load(Ordering::Relaxed);
            loop {
                let (next, done) =
                    if list.is_empty() && s / ONE >= n { (s - n * ONE, true) } else { (s | WAITERS, false) };
                match self.state.compare_exchange_weak(s, next, Ordering::Acquire, Ordering::Relaxed) {
                    Ok(_) if done => return true,
                    Ok(_) => break,
                    Err(now) => s = now,
                }
            }
            // SAFETY: `waiter` stays on this frame until a release unlinks
            // it or we do, below.
            unsafe { list.push(&waiter, false) };
        }
        if waiter.park_until(deadline).is_some() {
            return true;
        }
        let mut wakes = Wakes::default();
        let mut list = self.waiters.lock();
        if !list.remove_if_waiting(&waiter) {
            return true;
        }
        // We may have been the head holding back smaller requests.
        self.serve(&mut list, &mut wakes);
        drop(list);
        wakes.unpark_all();
        false
    }

    #[cold]
    fn release_slow(&self, n: usize) {
        let mut wakes = Wakes::default();
        let mut list = self.waiters.lock();
        let mut s = self.state.load(Ordering::Relaxed);
        while let Err(now) = self.state.compare_exchange_weak(s, Self::plus(s, n), Ordering::Release, Ordering::Relaxed)
        {
            s = now;
        }
        self.serve(&mut list, &mut wakes);
        drop(list);
        wakes.unpark_all();
    }

    /// Hands free permits to waiters in order; clears `WAITERS` when none
    /// are left. Under the list lock.
    fn serve(&self, list: &mut WaitList, wakes: &mut Wakes) {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            let want = list.front().map(|w| w.data.get());
            let next = match want {
                Some(want) if s / ONE >= want => s - want * ONE,
                Some(_) => return,
                None => s & !WAITERS,
            };
            match self.state.compare_exchange_weak(s, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) if want.is_none() => return,
                Ok(_) => {
                    wakes.push(list.wake_front(GRANTED).expect("a waiter is linked"));
                    s = next;
                }
                Err(now) => s = now,
            }
        }
    }
}

impl SemaphorePermit<'_> {
    /// How many permits this holds.
    pub fn count(&self) -> usize {
        self.n
    }

    /// Keeps the permits taken: they are not released on drop.
    pub fn forget(mut self) {
        self.n = 0;
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        if self.n > 0 {
            self.sem.add_permits(self.n);
        }
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore").field("available_permits", &self.available_permits()).finish_non_exhaustive()
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit").field("count", &self.n).finish()
    }
}

// Its internal state stays consistent if a panic unwinds through a waiter.
impl std::panic::RefUnwindSafe for Semaphore {}
impl std::panic::UnwindSafe for Semaphore {}
