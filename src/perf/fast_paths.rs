//! Lock-free fast paths: a single-instruction counter increment, and
//! process-wide statistics of how often code took its fast path; and, under
//! the name the tuning guide uses, the lock-free queue of
//! [`sync`](crate::sync).
//!
//! The [`FastPaths`] statistics must not slow down the paths they count:
//! each counter is striped over cache-padded slots, one per worker (OS
//! thread) as far as there are slots, incremented with a relaxed add on the
//! caller's own line and summed only when read. Counting therefore never
//! bounces a cache line between CPUs.
//!
//! ```
//! use preemptive_mlthreading_rust::perf::fast_paths::LockFreeQueue;
//!
//! let q = LockFreeQueue::bounded(2);
//! q.fast_enqueue(1).unwrap();
//! q.fast_enqueue(2).unwrap();
//! assert_eq!(q.fast_enqueue(3).unwrap_err().into_inner(), 3);
//! assert_eq!(q.fast_dequeue(), Some(1));
//! ```

pub use crate::sync::lock_free_queue::{LockFreeQueue, QueueFull};
use crate::sync::reclaim::{STRIPES, stripe_index};
use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicU64, Ordering};

/// A process-wide count striped over cache lines (see the module docs).
struct Tally([CachePadded<AtomicU64>; STRIPES]);

impl Tally {
    const fn new() -> Self {
        Tally([const { CachePadded::new(AtomicU64::new(0)) }; STRIPES])
    }

    #[inline]
    fn bump(&self) {
        self.0[stripe_index()].fetch_add(1, Ordering::Relaxed);
    }

    fn sum(&self) -> u64 {
        self.0.iter().map(|s| s.load(Ordering::Relaxed)).fold(0, u64::wrapping_add)
    }

    fn reset(&self) {
        self.0.iter().for_each(|s| s.store(0, Ordering::Relaxed));
    }
}

static FAST: Tally = Tally::new();
static SLOW: Tally = Tally::new();

/// Lock-free fast-path helpers and process-wide fast/slow path statistics.
///
/// ```
/// use preemptive_mlthreading_rust::perf::fast_paths::FastPaths;
/// use preemptive_mlthreading_rust::Mutex;
///
/// let m = Mutex::new(0);
/// let before = FastPaths::stats();
/// match m.try_lock() {
///     Ok(mut g) => { FastPaths::record_fast_path(); *g += 1 }
///     Err(_) => FastPaths::record_slow_path(),
/// }
/// // Other threads may record too: the counters are process-wide.
/// assert!(FastPaths::stats().fast > before.fast);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct FastPaths;

/// A reading of the [`FastPaths`] counters.
///
/// ```
/// use preemptive_mlthreading_rust::perf::fast_paths::FastPathStats;
///
/// let s = FastPathStats { fast: 3, slow: 1 };
/// assert_eq!(s.fast_ratio(), 0.75);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FastPathStats {
    /// Calls of [`FastPaths::record_fast_path`].
    pub fast: u64,
    /// Calls of [`FastPaths::record_slow_path`].
    pub slow: u64,
}

impl FastPathStats {
    /// The share of fast paths, `fast / (fast + slow)`; NaN when both are
    /// zero (no path recorded: no ratio, rather than a made-up 0 or 1).
    ///
    /// ```
    /// use preemptive_mlthreading_rust::perf::fast_paths::FastPathStats;
    ///
    /// assert_eq!(FastPathStats { fast: 1, slow: 1 }.fast_ratio(), 0.5);
    /// assert!(FastPathStats::default().fast_ratio().is_nan());
    /// ```
    pub fn fast_ratio(&self) -> f64 {
        self.fast as f64 / (self.fast as f64 + self.slow as f64)
    }
}

impl FastPaths {
    /// Adds one to `counter` and returns the value it had before: a single
    /// `lock xadd` on x86-64 (one `ldadd` with LSE on AArch64). Relaxed:
    /// the count itself is exact, but it orders no other memory.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::perf::fast_paths::FastPaths;
    /// use std::sync::atomic::AtomicU64;
    ///
    /// static COUNTER: AtomicU64 = AtomicU64::new(0);
    /// assert_eq!(FastPaths::fast_atomic_increment(&COUNTER), 0);
    /// assert_eq!(FastPaths::fast_atomic_increment(&COUNTER), 1);
    /// ```
    #[inline]
    pub fn fast_atomic_increment(counter: &AtomicU64) -> u64 {
        counter.fetch_add(1, Ordering::Relaxed)
    }

    /// Counts one fast path taken (a relaxed add on this worker's own cache
    /// line).
    ///
    /// ```
    /// use preemptive_mlthreading_rust::perf::fast_paths::FastPaths;
    ///
    /// let before = FastPaths::stats().fast;
    /// FastPaths::record_fast_path();
    /// assert!(FastPaths::stats().fast > before);
    /// ```
    #[inline]
    pub fn record_fast_path() {
        FAST.bump();
    }

    /// Counts one slow path taken.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::perf::fast_paths::FastPaths;
    ///
    /// let before = FastPaths::stats().slow;
    /// FastPaths::record_slow_path();
    /// assert!(FastPaths::stats().slow > before);
    /// ```
    #[inline]
    pub fn record_slow_path() {
        SLOW.bump();
    }

    /// The counts since the start of the process (or the last
    /// [`reset`](Self::reset)). Exact once the recording threads are done
    /// (joined); while they run, each count is the sum of stripes read one
    /// after the other.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::perf::fast_paths::FastPaths;
    ///
    /// let s = FastPaths::stats();
    /// println!("{} fast, {} slow, ratio {}", s.fast, s.slow, s.fast_ratio());
    /// ```
    pub fn stats() -> FastPathStats {
        FastPathStats { fast: FAST.sum(), slow: SLOW.sum() }
    }

    /// Sets both counts back to zero. Recordings made concurrently may or
    /// may not survive it.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::perf::fast_paths::FastPaths;
    ///
    /// FastPaths::record_slow_path();
    /// FastPaths::reset();
    /// // (Zero unless another thread recorded meanwhile.)
    /// let _ = FastPaths::stats();
    /// ```
    pub fn reset() {
        FAST.reset();
        SLOW.reset();
    }
}
