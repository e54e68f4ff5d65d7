//! Lock-free fast paths: a multi-producer multi-consumer queue, a
//! single-instruction counter increment, and process-wide statistics of how
//! often code took its fast path.
//!
//! # Design
//!
//! [`LockFreeQueue`] wraps crossbeam's queues rather than re-implementing
//! them: `SegQueue` (unbounded, a linked list of 32-slot segments; its
//! `new` is `const`, so the queue can live in a `static`) and `ArrayQueue`
//! (bounded, one preallocated ring). Both are lock-free, and each element
//! is handed to exactly one consumer. One type covers both, so code that
//! takes a `&LockFreeQueue<T>` does not care which it got.
//!
//! Enqueue and dequeue run with preemption disabled ([`preempt::disable`]).
//! Both crossbeam queues have short windows in which one operation waits
//! for another to finish (a consumer for the producer that reserved a slot
//! to write it; a producer installing the next segment). A green thread
//! preempted inside such a window would leave the others spinning, with
//! crossbeam's OS-level back-off, until it is scheduled again; measured,
//! 8 producers and 8 consumers on two workers took over a minute for
//! 160 000 items that way, and well under a second with the guard.
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

use crate::preempt;
use crate::sync::reclaim::{STRIPES, stripe_index};
use crossbeam_queue::{ArrayQueue, SegQueue};
use crossbeam_utils::CachePadded;
use std::error::Error;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// A lock-free multi-producer multi-consumer FIFO queue, unbounded
/// ([`new`](Self::new), usable in a `static`) or bounded
/// ([`bounded`](Self::bounded)). Also exported as
/// [`sync::LockFreeQueue`](crate::sync::LockFreeQueue).
///
/// ```
/// use preemptive_mlthreading_rust::perf::fast_paths::LockFreeQueue;
/// use preemptive_mlthreading_rust::spawn;
/// use std::sync::Arc;
///
/// let q = Arc::new(LockFreeQueue::new());
/// let producers: Vec<_> = (0..4u64)
///     .map(|p| {
///         let q = Arc::clone(&q);
///         spawn(move || (0..100).for_each(|i| q.fast_enqueue(p * 100 + i).unwrap())).unwrap()
///     })
///     .collect();
/// producers.into_iter().for_each(|h| h.join().unwrap());
/// let mut sum = 0;
/// while let Some(v) = q.fast_dequeue() {
///     sum += v;
/// }
/// assert_eq!(sum, (0..400).sum());
/// ```
pub struct LockFreeQueue<T> {
    inner: Inner<T>,
}

enum Inner<T> {
    Unbounded(SegQueue<T>),
    Bounded(ArrayQueue<T>),
}

/// The error of [`LockFreeQueue::fast_enqueue`] on a full bounded queue:
/// gives the item back.
///
/// ```
/// use preemptive_mlthreading_rust::perf::fast_paths::{LockFreeQueue, QueueFull};
///
/// let q = LockFreeQueue::bounded(1);
/// q.fast_enqueue("a").unwrap();
/// let QueueFull(back) = q.fast_enqueue("b").unwrap_err();
/// assert_eq!(back, "b");
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct QueueFull<T>(pub T);

impl<T> QueueFull<T> {
    /// The item that did not fit.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::perf::fast_paths::QueueFull;
    ///
    /// assert_eq!(QueueFull(5).into_inner(), 5);
    /// ```
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for QueueFull<T> {
    /// Does not show the item, so that `T` need not be `Debug` (like std's
    /// `SendError`).
    ///
    /// ```
    /// use preemptive_mlthreading_rust::perf::fast_paths::QueueFull;
    ///
    /// struct Opaque;
    /// assert_eq!(format!("{:?}", QueueFull(Opaque)), "QueueFull(..)");
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QueueFull(..)")
    }
}

impl<T> fmt::Display for QueueFull<T> {
    /// ```
    /// use preemptive_mlthreading_rust::perf::fast_paths::QueueFull;
    ///
    /// assert_eq!(QueueFull(()).to_string(), "lock-free queue is full");
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("lock-free queue is full")
    }
}

/// So that `?` turns it into a `Box<dyn Error>` (any `T: 'static`) or a
/// `Box<dyn Error + Send + Sync>` (if `T` is also `Send + Sync`).
///
/// ```
/// use preemptive_mlthreading_rust::perf::fast_paths::LockFreeQueue;
/// use std::error::Error;
///
/// fn fill(q: &LockFreeQueue<Vec<u8>>) -> Result<(), Box<dyn Error>> {
///     loop {
///         q.fast_enqueue(vec![0; 16])?;
///     }
/// }
/// let err = fill(&LockFreeQueue::bounded(4)).unwrap_err();
/// assert_eq!(err.to_string(), "lock-free queue is full");
/// ```
impl<T> Error for QueueFull<T> {}

impl<T> LockFreeQueue<T> {
    /// An empty unbounded queue; `const`, so usable in a `static`. It
    /// grows in segments of 32 items and never refuses an item.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::perf::fast_paths::LockFreeQueue;
    ///
    /// static Q: LockFreeQueue<&str> = LockFreeQueue::new();
    /// Q.fast_enqueue("job").unwrap();
    /// assert_eq!(Q.capacity(), None);
    /// ```
    pub const fn new() -> Self {
        LockFreeQueue { inner: Inner::Unbounded(SegQueue::new()) }
    }

    /// An empty queue holding at most `cap` items, allocated up front.
    ///
    /// # Panics
    /// If `cap` is zero.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::perf::fast_paths::LockFreeQueue;
    ///
    /// let q = LockFreeQueue::<u8>::bounded(16);
    /// assert_eq!(q.capacity(), Some(16));
    /// ```
    pub fn bounded(cap: usize) -> Self {
        LockFreeQueue { inner: Inner::Bounded(ArrayQueue::new(cap)) }
    }

    /// Appends `item` at the back. Lock-free; fails, giving the item back,
    /// only if the queue is bounded and full.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::perf::fast_paths::LockFreeQueue;
    ///
    /// let q = LockFreeQueue::new();
    /// assert!(q.fast_enqueue(1).is_ok());
    /// ```
    #[inline]
    pub fn fast_enqueue(&self, item: T) -> Result<(), QueueFull<T>> {
        let _no_preempt = preempt::disable();
        match &self.inner {
            Inner::Unbounded(q) => {
                q.push(item);
                Ok(())
            }
            Inner::Bounded(q) => q.push(item).map_err(QueueFull),
        }
    }

    /// Takes the item at the front, or `None` if the queue is empty.
    /// Lock-free.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::perf::fast_paths::LockFreeQueue;
    ///
    /// let q = LockFreeQueue::new();
    /// q.fast_enqueue('a').unwrap();
    /// q.fast_enqueue('b').unwrap();
    /// assert_eq!(q.fast_dequeue(), Some('a'));
    /// assert_eq!(q.fast_dequeue(), Some('b'));
    /// assert_eq!(q.fast_dequeue(), None);
    /// ```
    #[inline]
    pub fn fast_dequeue(&self) -> Option<T> {
        let _no_preempt = preempt::disable();
        match &self.inner {
            Inner::Unbounded(q) => q.pop(),
            Inner::Bounded(q) => q.pop(),
        }
    }

    /// How many items the queue holds (a snapshot, stale once returned
    /// while others enqueue or dequeue).
    ///
    /// ```
    /// use preemptive_mlthreading_rust::perf::fast_paths::LockFreeQueue;
    ///
    /// let q = LockFreeQueue::new();
    /// q.fast_enqueue(()).unwrap();
    /// assert_eq!(q.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        match &self.inner {
            Inner::Unbounded(q) => q.len(),
            Inner::Bounded(q) => q.len(),
        }
    }

    /// Whether the queue is empty (a snapshot, like [`len`](Self::len)).
    ///
    /// ```
    /// use preemptive_mlthreading_rust::perf::fast_paths::LockFreeQueue;
    ///
    /// assert!(LockFreeQueue::<u8>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        match &self.inner {
            Inner::Unbounded(q) => q.is_empty(),
            Inner::Bounded(q) => q.is_empty(),
        }
    }

    /// The bound of a [`bounded`](Self::bounded) queue; `None` if unbounded.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::perf::fast_paths::LockFreeQueue;
    ///
    /// assert_eq!(LockFreeQueue::<u8>::new().capacity(), None);
    /// assert_eq!(LockFreeQueue::<u8>::bounded(3).capacity(), Some(3));
    /// ```
    pub fn capacity(&self) -> Option<usize> {
        match &self.inner {
            Inner::Unbounded(_) => None,
            Inner::Bounded(q) => Some(q.capacity()),
        }
    }
}

impl<T> Default for LockFreeQueue<T> {
    /// An empty unbounded queue.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::perf::fast_paths::LockFreeQueue;
    ///
    /// let q: LockFreeQueue<u8> = Default::default();
    /// assert_eq!(q.capacity(), None);
    /// ```
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for LockFreeQueue<T> {
    /// Shows the length and bound, not the items.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::perf::fast_paths::LockFreeQueue;
    ///
    /// let q = LockFreeQueue::<u8>::bounded(2);
    /// assert_eq!(format!("{q:?}"), "LockFreeQueue { len: 0, capacity: Some(2) }");
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockFreeQueue").field("len", &self.len()).field("capacity", &self.capacity()).finish()
    }
}

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
