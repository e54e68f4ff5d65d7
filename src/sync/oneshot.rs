//! A channel for exactly one value: one send, one receive.
//!
//! The sender is consumed by [`Sender::send`], so the receiver gets the
//! value or, when the sender is dropped without sending, [`RecvError`].
//! Sending fails, returning the value, once the receiver is gone. Both
//! halves work from green threads and OS threads; a waiting green thread
//! parks.
//!
//! ```
//! use preemptive_mlthreading_rust::{spawn, sync::oneshot};
//!
//! let (tx, rx) = oneshot::channel();
//! spawn(move || tx.send(6 * 7).unwrap()).unwrap();
//! assert_eq!(rx.recv(), Ok(42));
//! ```

use super::channel;
pub use super::channel::{RecvError, RecvTimeoutError, TryRecvError};
use std::fmt;
use std::time::Duration;

/// A one-value channel's two halves.
///
/// ```
/// use preemptive_mlthreading_rust::sync::oneshot;
///
/// let (tx, rx) = oneshot::channel::<String>();
/// drop(tx);
/// assert!(rx.recv().is_err());
/// ```
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    // Capacity 1: the single send never waits.
    let (tx, rx) = channel::bounded(1);
    (Sender(tx), Receiver(rx))
}

/// Sends the one value; see [`channel()`].
///
/// ```
/// use preemptive_mlthreading_rust::sync::oneshot;
///
/// let (tx, rx) = oneshot::channel();
/// tx.send("done").unwrap();
/// assert_eq!(rx.recv(), Ok("done"));
/// ```
pub struct Sender<T>(channel::Sender<T>);

/// Receives the one value; see [`channel()`].
///
/// ```
/// use preemptive_mlthreading_rust::sync::oneshot;
///
/// let (tx, mut rx) = oneshot::channel();
/// tx.send(1).unwrap();
/// assert_eq!(rx.try_recv(), Ok(1));
/// ```
pub struct Receiver<T>(channel::Receiver<T>);

impl<T> Sender<T> {
    /// Sends `value`, never waiting; returns it if the receiver is gone.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::oneshot;
    ///
    /// let (tx, rx) = oneshot::channel();
    /// drop(rx);
    /// assert_eq!(tx.send(3), Err(3));
    /// ```
    pub fn send(self, value: T) -> Result<(), T> {
        self.0.try_send(value).map_err(channel::TrySendError::into_inner)
    }
}

impl<T> Receiver<T> {
    /// Waits for the value; fails if the sender was dropped without sending.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::{spawn, sync::oneshot};
    ///
    /// let (tx, rx) = oneshot::channel::<u8>();
    /// spawn(move || drop(tx)).unwrap();
    /// assert_eq!(rx.recv(), Err(oneshot::RecvError));
    /// ```
    pub fn recv(self) -> Result<T, RecvError> {
        self.0.recv()
    }

    /// Takes the value if it has been sent. After the value was received,
    /// reports `Disconnected`.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::oneshot::{self, TryRecvError};
    ///
    /// let (tx, mut rx) = oneshot::channel();
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    /// tx.send(1).unwrap();
    /// assert_eq!(rx.try_recv(), Ok(1));
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    /// ```
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        self.0.try_recv()
    }

    /// Waits for the value at most `timeout`.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::{Duration, sync::oneshot::{self, RecvTimeoutError}};
    ///
    /// let (tx, mut rx) = oneshot::channel();
    /// assert_eq!(rx.recv_timeout(Duration::from_millis(1)), Err(RecvTimeoutError::Timeout));
    /// tx.send(()).unwrap();
    /// assert_eq!(rx.recv_timeout(Duration::from_millis(1)), Ok(()));
    /// ```
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.0.recv_timeout(timeout)
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("oneshot::Sender { .. }")
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("oneshot::Receiver { .. }")
    }
}
