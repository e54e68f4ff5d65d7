//! [`LockFreeQueue`]: a lock-free multi-producer multi-consumer FIFO queue,
//! unbounded or bounded. Also exported as
//! [`perf::fast_paths::LockFreeQueue`](crate::perf::fast_paths::LockFreeQueue),
//! where the tuning guide names it.
//!
//! # Design
//!
//! It wraps crossbeam's queues rather than re-implementing them:
//! `SegQueue` (unbounded, a linked list of 32-slot segments; its `new` is
//! `const`, so the queue can live in a `static`) and `ArrayQueue` (bounded,
//! one preallocated ring). Both are lock-free, and each element is handed
//! to exactly one consumer. One type covers both, so code that takes a
//! `&LockFreeQueue<T>` does not care which it got.
//!
//! Enqueue and dequeue run with preemption disabled ([`preempt::disable`]).
//! Both crossbeam queues have short windows in which one operation waits
//! for another to finish (a consumer for the producer that reserved a slot
//! to write it; a producer installing the next segment). A green thread
//! preempted inside such a window would leave the others spinning, with
//! crossbeam's OS-level back-off, until it is scheduled again: many times
//! slower with several producers and consumers per worker (bench/README.md,
//! "LockFreeQueue under preemption").
//!
//! ```
//! use preemptive_mlthreading_rust::sync::LockFreeQueue;
//!
//! let q = LockFreeQueue::bounded(2);
//! q.fast_enqueue(1).unwrap();
//! q.fast_enqueue(2).unwrap();
//! assert_eq!(q.fast_enqueue(3).unwrap_err().into_inner(), 3);
//! assert_eq!(q.fast_dequeue(), Some(1));
//! ```

use crate::preempt;
use crossbeam_queue::{ArrayQueue, SegQueue};
use std::error::Error;
use std::fmt;

/// A lock-free multi-producer multi-consumer FIFO queue, unbounded
/// ([`new`](Self::new), usable in a `static`) or bounded
/// ([`bounded`](Self::bounded)). Also exported as
/// [`perf::fast_paths::LockFreeQueue`](crate::perf::fast_paths::LockFreeQueue).
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
