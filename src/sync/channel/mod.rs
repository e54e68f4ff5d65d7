//! Multi-producer multi-consumer channels that park green threads.
//!
//! [`bounded`] makes a channel holding at most `cap` values; with `cap == 0`
//! it is a *rendezvous* channel, where every send waits for a receiver to
//! take the value. [`unbounded`] makes one whose sends never wait. Both
//! [`Sender`] and [`Receiver`] are `Clone`, and every handle can be used
//! from green threads and plain OS threads at once: a blocked green thread
//! parks, so its worker runs other threads meanwhile.
//!
//! # Ordering
//!
//! Values sent by one thread are received in the order it sent them (FIFO
//! per producer), whichever receivers get them. Blocked threads are served
//! in the order they blocked: the longest-waiting receiver gets the next
//! value, and the longest-blocked sender is the next to get room.
//!
//! # Disconnection
//!
//! - When the last [`Sender`] is dropped, receivers still get every value
//!   already in the buffer, then [`RecvError`] (or `Disconnected`); blocked
//!   receivers are woken.
//! - When the last [`Receiver`] is dropped, every send fails and returns
//!   its value ([`SendError`]); blocked senders are woken and get their
//!   value back; the values left in the buffer are dropped.
//! - Values still buffered when the last handle is dropped are dropped
//!   with it.
//!
//! # Select
//!
//! [`select`] receives from whichever of several receivers (of one value
//! type) is ready first, choosing fairly among several ready ones;
//! [`try_select`], [`select_timeout`] and [`select_deadline`] are its
//! non-waiting and timed forms. [`Select`] waits on receivers of
//! different value types.
//!
//! A timed operation either completes or fails with nothing transferred:
//! a value is never lost nor delivered twice, and a send that times out
//! returns its value in the error.
//!
//! ```
//! use preemptive_mlthreading_rust::{spawn, sync::channel};
//!
//! let (tx, rx) = channel::bounded(4);
//! let producers: Vec<_> = (0..3)
//!     .map(|p| {
//!         let tx = tx.clone();
//!         spawn(move || (0..100).for_each(|i| tx.send((p, i)).unwrap())).unwrap()
//!     })
//!     .collect();
//! drop(tx);
//! let mut last = [None; 3];
//! for (p, i) in &rx {
//!     assert!(last[p] < Some(i)); // in order per producer
//!     last[p] = Some(i);
//! }
//! assert_eq!(last, [Some(99); 3]);
//! producers.into_iter().for_each(|h| h.join().unwrap());
//! ```

mod chan;
mod error;
#[cfg(all(test, loom))]
mod loom_tests;
mod select;

use super::error::{TimedOut, WouldBlock, deadline_after};
use chan::{Chan, Fail, Wait};
pub use error::{RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError};
pub use select::{Select, SelectedOperation};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A channel holding at most `cap` values; `cap == 0` makes a rendezvous
/// channel, whose sends wait for a receiver to take the value.
///
/// ```
/// use preemptive_mlthreading_rust::{spawn, sync::channel};
///
/// let (tx, rx) = channel::bounded(0);
/// let h = spawn(move || tx.send("handed over").unwrap()).unwrap();
/// assert_eq!(rx.recv(), Ok("handed over"));
/// h.join().unwrap();
/// ```
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    pair(Some(cap))
}

/// A channel whose buffer grows as needed: sends never wait.
///
/// ```
/// use preemptive_mlthreading_rust::sync::channel;
///
/// let (tx, rx) = channel::unbounded();
/// (0..1000).for_each(|i| tx.send(i).unwrap());
/// assert_eq!(rx.len(), 1000);
/// assert_eq!(rx.capacity(), None);
/// ```
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    pair(None)
}

fn pair<T>(cap: Option<usize>) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan::new(cap));
    (Sender { chan: Arc::clone(&chan) }, Receiver { chan })
}

/// Receives from one of `receivers` that is ready, waiting on all of them
/// until one is. Returns its index in `receivers` with the value, or with
/// [`RecvError`] if that channel is empty and disconnected (a disconnected
/// channel is always ready). When several are ready, each select starts
/// looking at a different one (a random rotation), so that a channel that
/// is always ready cannot starve the others; a value goes to the select or
/// to another receiver, never both.
///
/// # Panics
/// If `receivers` is empty.
///
/// ```
/// use preemptive_mlthreading_rust::{spawn, sync::channel};
///
/// let (tx_a, rx_a) = channel::bounded::<&str>(0);
/// let (tx_b, rx_b) = channel::bounded(0);
/// let h = spawn(move || {
///     tx_b.send("b").unwrap();
///     tx_b // kept open: only `rx_a` disconnects below
/// })
/// .unwrap();
/// assert_eq!(channel::select(&[&rx_a, &rx_b]), (1, Ok("b")));
/// let _tx_b = h.join().unwrap();
/// drop(tx_a);
/// assert_eq!(channel::select(&[&rx_a, &rx_b]), (0, Err(channel::RecvError)));
/// ```
pub fn select<T>(receivers: &[&Receiver<T>]) -> (usize, Result<T, RecvError>) {
    match select_with(receivers, Wait::Until(None)) {
        Ok(r) => r,
        Err(_) => unreachable!("an unbounded select neither times out nor gives up"),
    }
}

/// Like [`select`], but only takes what is ready now.
///
/// ```
/// use preemptive_mlthreading_rust::sync::{WouldBlock, channel};
///
/// let (tx_a, rx_a) = channel::unbounded();
/// let (_tx_b, rx_b) = channel::unbounded();
/// assert_eq!(channel::try_select(&[&rx_a, &rx_b]), Err(WouldBlock));
/// tx_a.send(1).unwrap();
/// assert_eq!(channel::try_select(&[&rx_b, &rx_a]), Ok((1, Ok(1))));
/// ```
pub fn try_select<T>(receivers: &[&Receiver<T>]) -> Result<(usize, Result<T, RecvError>), WouldBlock> {
    select_with(receivers, Wait::Never).map_err(|_| WouldBlock)
}

/// Like [`select`], giving up after `timeout`.
///
/// ```
/// use preemptive_mlthreading_rust::{Duration, sync::{TimedOut, channel}};
///
/// let (_tx_a, rx_a) = channel::bounded::<u8>(1);
/// let (_tx_b, rx_b) = channel::bounded::<u8>(1);
/// assert_eq!(channel::select_timeout(&[&rx_a, &rx_b], Duration::from_millis(1)), Err(TimedOut));
/// ```
pub fn select_timeout<T>(
    receivers: &[&Receiver<T>],
    timeout: Duration,
) -> Result<(usize, Result<T, RecvError>), TimedOut> {
    select_with(receivers, Wait::Until(deadline_after(timeout))).map_err(|_| TimedOut)
}

/// Like [`select`], giving up at `deadline`.
///
/// ```
/// use preemptive_mlthreading_rust::{Duration, sync::{TimedOut, channel}};
/// use std::time::Instant;
///
/// let (_tx, rx) = channel::bounded::<u8>(1);
/// let deadline = Instant::now() + Duration::from_millis(1);
/// assert_eq!(channel::select_deadline(&[&rx], deadline), Err(TimedOut));
/// ```
pub fn select_deadline<T>(
    receivers: &[&Receiver<T>],
    deadline: Instant,
) -> Result<(usize, Result<T, RecvError>), TimedOut> {
    select_with(receivers, Wait::Until(Some(deadline))).map_err(|_| TimedOut)
}

fn select_with<T>(receivers: &[&Receiver<T>], wait: Wait) -> Result<(usize, Result<T, RecvError>), Fail<()>> {
    let chans: Vec<&Chan<T>> = receivers.iter().map(|r| &*r.chan).collect();
    chan::select(&chans, wait).map(|(i, v)| (i, v.ok_or(RecvError)))
}

/// The sending half of a channel. Clone it for more producers.
///
/// ```
/// use preemptive_mlthreading_rust::sync::channel;
///
/// let (tx, rx) = channel::unbounded();
/// let tx2 = tx.clone();
/// tx.send(1).unwrap();
/// tx2.send(2).unwrap();
/// assert_eq!(rx.try_iter().collect::<Vec<_>>(), [1, 2]);
/// ```
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

/// The receiving half of a channel. Clone it for more consumers; each value
/// goes to exactly one of them.
///
/// ```
/// use preemptive_mlthreading_rust::sync::channel;
///
/// let (tx, rx) = channel::bounded(2);
/// let rx2 = rx.clone();
/// tx.send('a').unwrap();
/// tx.send('b').unwrap();
/// assert_eq!((rx.recv(), rx2.recv()), (Ok('a'), Ok('b')));
/// ```
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
}

/// What the handles of both sides report about their channel.
macro_rules! common_methods {
    () => {
        /// How many values are buffered; the values of blocked senders
        /// (always the case on a rendezvous channel) are not counted.
        ///
        /// ```
        /// use preemptive_mlthreading_rust::sync::channel;
        ///
        /// let (tx, rx) = channel::bounded(3);
        /// tx.send(()).unwrap();
        /// assert_eq!((tx.len(), rx.len()), (1, 1));
        /// ```
        pub fn len(&self) -> usize {
            self.chan.len()
        }

        /// Whether no value is buffered.
        ///
        /// ```
        /// use preemptive_mlthreading_rust::sync::channel;
        ///
        /// let (tx, rx) = channel::bounded::<i32>(3);
        /// assert!(tx.is_empty() && rx.is_empty());
        /// ```
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }

        /// The buffer's capacity; `None` for an unbounded channel.
        ///
        /// ```
        /// use preemptive_mlthreading_rust::sync::channel;
        ///
        /// assert_eq!(channel::bounded::<u8>(5).0.capacity(), Some(5));
        /// assert_eq!(channel::unbounded::<u8>().1.capacity(), None);
        /// ```
        pub fn capacity(&self) -> Option<usize> {
            self.chan.capacity()
        }

        /// Whether every sender or every receiver has been dropped.
        ///
        /// ```
        /// use preemptive_mlthreading_rust::sync::channel;
        ///
        /// let (tx, rx) = channel::unbounded::<u8>();
        /// assert!(!rx.is_disconnected());
        /// drop(tx);
        /// assert!(rx.is_disconnected());
        /// ```
        pub fn is_disconnected(&self) -> bool {
            self.chan.is_disconnected()
        }

        /// Whether a send would have to wait now: the buffer is at its
        /// capacity. A rendezvous channel is always full (and empty);
        /// an unbounded one never is.
        ///
        /// ```
        /// use preemptive_mlthreading_rust::sync::channel;
        ///
        /// let (tx, rx) = channel::bounded(1);
        /// assert!(!tx.is_full());
        /// tx.send(1).unwrap();
        /// assert!(tx.is_full() && rx.is_full());
        /// assert!(channel::bounded::<u8>(0).0.is_full());
        /// assert!(!channel::unbounded::<u8>().0.is_full());
        /// ```
        pub fn is_full(&self) -> bool {
            self.chan.capacity().is_some_and(|cap| self.len() >= cap)
        }

        /// Whether `other` is a handle of the same channel.
        ///
        /// ```
        /// use preemptive_mlthreading_rust::sync::channel;
        ///
        /// let (tx, _rx) = channel::unbounded::<u8>();
        /// let (other, _orx) = channel::unbounded::<u8>();
        /// assert!(tx.same_channel(&tx.clone()));
        /// assert!(!tx.same_channel(&other));
        /// ```
        pub fn same_channel(&self, other: &Self) -> bool {
            Arc::ptr_eq(&self.chan, &other.chan)
        }
    };
}

// A panic never leaves a channel half-updated: its lock is held only over
// the channel's own bookkeeping, never over user code (values are dropped
// after it is released), so a handle observed across `catch_unwind` is
// consistent, as std's mpsc handles are.
impl<T> std::panic::UnwindSafe for Sender<T> {}
impl<T> std::panic::RefUnwindSafe for Sender<T> {}
impl<T> std::panic::UnwindSafe for Receiver<T> {}
impl<T> std::panic::RefUnwindSafe for Receiver<T> {}

impl<T> Sender<T> {
    /// Sends `value`, waiting for room as long as it takes (for a receiver
    /// to take it, on a rendezvous channel). Fails, returning the value,
    /// once every receiver is gone, even while waiting.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::channel;
    ///
    /// let (tx, rx) = channel::bounded(1);
    /// tx.send(5).unwrap();
    /// assert_eq!(rx.recv(), Ok(5));
    /// ```
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.chan.send(value, Wait::Until(None)).map_err(|f| match f {
            Fail::Disconnected(v) | Fail::WouldBlock(v) | Fail::Timeout(v) => SendError(v),
        })
    }

    /// Sends `value` if that needs no waiting: there is room in the buffer,
    /// or (on a rendezvous channel) a receiver is waiting.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::channel::{self, TrySendError};
    ///
    /// let (tx, _rx) = channel::bounded(0);
    /// assert_eq!(tx.try_send(1), Err(TrySendError::Full(1)));
    /// ```
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        self.chan.send(value, Wait::Never).map_err(|f| match f {
            Fail::Disconnected(v) => TrySendError::Disconnected(v),
            Fail::WouldBlock(v) | Fail::Timeout(v) => TrySendError::Full(v),
        })
    }

    /// Like [`send`](Self::send), giving up after `timeout`; the value
    /// comes back in the error.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::{Duration, sync::channel::{self, SendTimeoutError}};
    ///
    /// let (tx, _rx) = channel::bounded(1);
    /// tx.send(1).unwrap();
    /// assert_eq!(tx.send_timeout(2, Duration::from_millis(1)), Err(SendTimeoutError::Timeout(2)));
    /// ```
    pub fn send_timeout(&self, value: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.chan.send(value, Wait::Until(deadline_after(timeout))).map_err(|f| match f {
            Fail::Disconnected(v) => SendTimeoutError::Disconnected(v),
            Fail::WouldBlock(v) | Fail::Timeout(v) => SendTimeoutError::Timeout(v),
        })
    }

    /// Like [`send`](Self::send), giving up at `deadline`; the value comes
    /// back in the error.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::{Duration, sync::channel::{self, SendTimeoutError}};
    /// use std::time::Instant;
    ///
    /// let (tx, _rx) = channel::bounded(0);
    /// let deadline = Instant::now() + Duration::from_millis(1);
    /// assert_eq!(tx.send_deadline('x', deadline), Err(SendTimeoutError::Timeout('x')));
    /// ```
    pub fn send_deadline(&self, value: T, deadline: Instant) -> Result<(), SendTimeoutError<T>> {
        self.chan.send(value, Wait::Until(Some(deadline))).map_err(|f| match f {
            Fail::Disconnected(v) => SendTimeoutError::Disconnected(v),
            Fail::WouldBlock(v) | Fail::Timeout(v) => SendTimeoutError::Timeout(v),
        })
    }

    common_methods!();
}

impl<T> Receiver<T> {
    /// Receives the next value, waiting as long as it takes. Fails once the
    /// channel is empty and every sender is gone.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::{spawn, sync::channel};
    ///
    /// let (tx, rx) = channel::unbounded();
    /// spawn(move || tx.send(42).unwrap()).unwrap();
    /// assert_eq!(rx.recv(), Ok(42));
    /// assert!(rx.recv().is_err()); // the sender is gone
    /// ```
    pub fn recv(&self) -> Result<T, RecvError> {
        self.chan.recv(Wait::Until(None)).map_err(|_| RecvError)
    }

    /// Receives a value if one is ready: buffered, or (on a rendezvous
    /// channel) offered by a blocked sender.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::channel::{self, TryRecvError};
    ///
    /// let (tx, rx) = channel::bounded(1);
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    /// tx.send(1).unwrap();
    /// assert_eq!(rx.try_recv(), Ok(1));
    /// ```
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.chan.recv(Wait::Never).map_err(|f| match f {
            Fail::Disconnected(()) => TryRecvError::Disconnected,
            Fail::WouldBlock(()) | Fail::Timeout(()) => TryRecvError::Empty,
        })
    }

    /// Like [`recv`](Self::recv), giving up after `timeout`.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::{Duration, sync::channel::{self, RecvTimeoutError}};
    ///
    /// let (tx, rx) = channel::bounded::<u8>(1);
    /// assert_eq!(rx.recv_timeout(Duration::from_millis(1)), Err(RecvTimeoutError::Timeout));
    /// drop(tx);
    /// assert_eq!(rx.recv_timeout(Duration::from_millis(1)), Err(RecvTimeoutError::Disconnected));
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.chan.recv(Wait::Until(deadline_after(timeout))).map_err(|f| match f {
            Fail::Disconnected(()) => RecvTimeoutError::Disconnected,
            Fail::WouldBlock(()) | Fail::Timeout(()) => RecvTimeoutError::Timeout,
        })
    }

    /// Like [`recv`](Self::recv), giving up at `deadline`.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::{Duration, sync::channel::{self, RecvTimeoutError}};
    /// use std::time::Instant;
    ///
    /// let (_tx, rx) = channel::unbounded::<u8>();
    /// let deadline = Instant::now() + Duration::from_millis(1);
    /// assert_eq!(rx.recv_deadline(deadline), Err(RecvTimeoutError::Timeout));
    /// ```
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        self.chan.recv(Wait::Until(Some(deadline))).map_err(|f| match f {
            Fail::Disconnected(()) => RecvTimeoutError::Disconnected,
            Fail::WouldBlock(()) | Fail::Timeout(()) => RecvTimeoutError::Timeout,
        })
    }

    /// An iterator that receives until the channel is disconnected and
    /// empty, waiting for each value.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::channel;
    ///
    /// let (tx, rx) = channel::unbounded();
    /// (1..=3).for_each(|i| tx.send(i).unwrap());
    /// drop(tx);
    /// assert_eq!(rx.iter().sum::<i32>(), 6);
    /// ```
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { rx: self }
    }

    /// An iterator over the values ready now; it never waits.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::channel;
    ///
    /// let (tx, rx) = channel::unbounded();
    /// tx.send(1).unwrap();
    /// tx.send(2).unwrap();
    /// assert_eq!(rx.try_iter().collect::<Vec<_>>(), [1, 2]);
    /// assert_eq!(rx.try_iter().next(), None); // `tx` is alive, but nothing is ready
    /// ```
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { rx: self }
    }

    common_methods!();
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.acquire(true);
        Sender { chan: Arc::clone(&self.chan) }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.chan.acquire(false);
        Receiver { chan: Arc::clone(&self.chan) }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.chan.release(true);
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.chan.release(false);
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").field("len", &self.len()).field("capacity", &self.capacity()).finish()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").field("len", &self.len()).field("capacity", &self.capacity()).finish()
    }
}

/// Receives until disconnection, waiting for each value; from
/// [`Receiver::iter`] or `&Receiver`'s `IntoIterator`.
///
/// ```
/// use preemptive_mlthreading_rust::sync::channel;
///
/// let (tx, rx) = channel::unbounded();
/// tx.send(1).unwrap();
/// drop(tx);
/// let mut it = rx.iter();
/// assert_eq!((it.next(), it.next()), (Some(1), None));
/// ```
#[derive(Debug)]
pub struct Iter<'a, T> {
    rx: &'a Receiver<T>,
}

/// Receives the values ready now, never waiting; from
/// [`Receiver::try_iter`].
///
/// ```
/// use preemptive_mlthreading_rust::sync::channel;
///
/// let (tx, rx) = channel::bounded(2);
/// tx.send(1).unwrap();
/// assert_eq!(rx.try_iter().count(), 1);
/// ```
#[derive(Debug)]
pub struct TryIter<'a, T> {
    rx: &'a Receiver<T>,
}

/// Receives until disconnection, owning the receiver; from `Receiver`'s
/// `IntoIterator`.
///
/// ```
/// use preemptive_mlthreading_rust::{spawn, sync::channel};
///
/// let (tx, rx) = channel::bounded(1);
/// let h = spawn(move || rx.into_iter().collect::<Vec<_>>()).unwrap();
/// (0..5).for_each(|i| tx.send(i).unwrap());
/// drop(tx);
/// assert_eq!(h.join().unwrap(), [0, 1, 2, 3, 4]);
/// ```
#[derive(Debug)]
pub struct IntoIter<T> {
    rx: Receiver<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;
    fn into_iter(self) -> IntoIter<T> {
        IntoIter { rx: self }
    }
}
