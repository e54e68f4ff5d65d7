//! What every socket type of `net` shares: its registration with the
//! poller, made on its first wait that parks, and its waiting behaviour
//! (timeouts, non-blocking mode), settable through `&self` as std's are.

use super::poll_blocking;
use super::reactor::Registration;
use crate::runtime::worker::Worker;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A timeout kept in an atomic (0: none), so `&TcpStream` can read and
/// write with it.
#[derive(Default)]
pub(super) struct Timeout(AtomicU64);

impl Timeout {
    pub(super) fn get(&self) -> Option<Duration> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    pub(super) fn set(&self, t: Option<Duration>) -> io::Result<()> {
        let ns = match t {
            None => 0,
            Some(d) if d.is_zero() => {
                // std refuses a zero timeout the same way.
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "cannot set a 0 duration timeout"));
            }
            Some(d) => d.as_nanos().clamp(1, u64::MAX as u128) as u64,
        };
        self.0.store(ns, Ordering::Relaxed);
        Ok(())
    }
}

/// A socket's registration and waiting behaviour. Declared before the
/// socket in its type, so that it drops first: the descriptor leaves the
/// poller before it is closed.
#[derive(Default)]
pub(super) struct Waits {
    registration: OnceLock<Registration>,
    pub(super) read: Timeout,
    pub(super) write: Timeout,
    pub(super) nonblocking: AtomicBool,
}

impl Waits {
    /// `op`, a read, retried after waiting until `fd` is readable.
    pub(super) fn read<T>(&self, fd: BorrowedFd<'_>, op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
        self.retry(fd, super::reactor::READ_BIT, self.read.get(), op)
    }

    /// `op`, a write, retried after waiting until `fd` is writable.
    pub(super) fn write<T>(&self, fd: BorrowedFd<'_>, op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
        self.retry(fd, super::reactor::WRITE_BIT, self.write.get(), op)
    }

    /// The same settings, for a cloned handle (which registers its own
    /// descriptor).
    pub(super) fn copy(&self) -> io::Result<Waits> {
        let w = Waits::default();
        w.read.set(self.read.get())?;
        w.write.set(self.write.get())?;
        w.nonblocking.store(self.nonblocking.load(Ordering::Relaxed), Ordering::Relaxed);
        Ok(w)
    }

    /// Runs `op` until it does not say `WouldBlock`, waiting for `fd` in
    /// between (unless in non-blocking mode), for at most `timeout` in all.
    fn retry<T>(
        &self,
        fd: BorrowedFd<'_>,
        bit: u8,
        timeout: Option<Duration>,
        mut op: impl FnMut() -> io::Result<T>,
    ) -> io::Result<T> {
        let mut deadline = None;
        loop {
            match op() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && !self.nonblocking.load(Ordering::Relaxed) => {
                    let d = *deadline.get_or_insert_with(|| timeout.and_then(|t| Instant::now().checked_add(t)));
                    if let Err(e) = self.wait(fd, bit, d) {
                        // std reports a read or write timeout as WouldBlock
                        // (EAGAIN from SO_RCVTIMEO); so do we.
                        return Err(if e.kind() == io::ErrorKind::TimedOut {
                            io::Error::new(io::ErrorKind::WouldBlock, "timed out")
                        } else {
                            e
                        });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }

    fn wait(&self, fd: BorrowedFd<'_>, bit: u8, deadline: Option<Instant>) -> io::Result<()> {
        if !Worker::is_green() {
            return poll_blocking(fd.as_raw_fd(), bit, deadline);
        }
        let registration = match self.registration.get() {
            Some(r) => r,
            None => {
                // Two threads' first waits may race: one registers.
                static REGISTERING: std::sync::Mutex<()> = std::sync::Mutex::new(());
                let _np = crate::preempt::disable();
                let _g = REGISTERING.lock().unwrap_or_else(|e| e.into_inner());
                if self.registration.get().is_none() {
                    let _ = self.registration.set(Registration::new(fd.as_raw_fd())?);
                }
                self.registration.get().expect("set above")
            }
        };
        registration.wait(bit, deadline, None)
    }
}

/// The public settings of [`Waits`], for a type with a `waits` field.
macro_rules! wait_settings {
    () => {
        /// How long a read waits before `WouldBlock` (as std); None: forever.
        pub fn set_read_timeout(&self, t: Option<std::time::Duration>) -> std::io::Result<()> {
            self.waits.read.set(t)
        }

        /// How long a write waits before `WouldBlock`; None: forever.
        pub fn set_write_timeout(&self, t: Option<std::time::Duration>) -> std::io::Result<()> {
            self.waits.write.set(t)
        }

        /// See [`set_read_timeout`](Self::set_read_timeout).
        pub fn read_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
            Ok(self.waits.read.get())
        }

        /// See [`set_write_timeout`](Self::set_write_timeout).
        pub fn write_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
            Ok(self.waits.write.get())
        }

        /// Calls answer `WouldBlock` instead of waiting.
        pub fn set_nonblocking(&self, nonblocking: bool) -> std::io::Result<()> {
            self.waits.nonblocking.store(nonblocking, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        }
    };
}
pub(super) use wait_settings;
