//! What every socket type of `net` shares: its registration with the
//! poller, made on its first wait that parks, and its waiting behaviour
//! (timeouts, non-blocking mode), settable through `&self` as std's are.

use super::poll_blocking;
use super::reactor::{READ_BIT, Registration};
use crate::runtime::worker::Worker;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often a read still at the urgent mark after its signal-blocked
/// retry is retried so before it waits (see [`Waits::retry_until`]).
const AT_MARK_RETRIES: u32 = 4;

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

    /// `op`, a TCP read of `len` bytes, as [`Waits::read`] but without
    /// the read that would only say `WouldBlock`: a read that returns less
    /// than `len` has emptied the receive queue, and until the poller's
    /// next event for it the next read parks first (`reactor/slot.rs` has
    /// the cases where a short read proves nothing, and why they are safe).
    /// Not for datagrams, peeks or Unix streams, whose short reads do not
    /// prove the queue empty.
    pub(super) fn read_stream(
        &self,
        fd: BorrowedFd<'_>,
        len: usize,
        mut op: impl FnMut() -> io::Result<usize>,
    ) -> io::Result<usize> {
        let Some(reg) = self.registration.get().filter(|_| Worker::is_green()) else {
            return self.read(fd, op);
        };
        let mut deadline = None;
        let mut last_try = false;
        if reg.drained() && !self.nonblocking.load(Ordering::Relaxed) {
            let d = *deadline.get_or_insert_with(|| self.read.get().and_then(|t| Instant::now().checked_add(t)));
            match reg.wait(super::reactor::READ_BIT, d, None) {
                Ok(()) => {}
                // The queue may hold data no event announced (module docs
                // of `reactor/slot.rs`): a read that times out tries once.
                Err(e) if e.kind() == io::ErrorKind::TimedOut => last_try = true,
                Err(e) => return Err(e),
            }
        }
        let mut op = || {
            let mark = reg.mark();
            let r = op();
            if let Ok(n) = r
                && n > 0
                && n < len
            {
                reg.mark_drained(mark);
            }
            r
        };
        self.retry_until(fd, super::reactor::READ_BIT, self.read.get(), deadline, last_try, &mut op)
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
        self.retry_until(fd, bit, timeout, None, false, &mut op)
    }

    /// [`Waits::retry`], with the deadline already set when `deadline` is
    /// `Some`, and only one more try of `op` when `last_try` (its wait
    /// timed out).
    ///
    /// A wait that times out is followed by one last try, so that a call
    /// that says it timed out found nothing to do at its deadline: data
    /// may have come after the poller's last look, and the drained
    /// shortcut of [`Waits::read_stream`] trusts no event may announce.
    ///
    /// A read's `WouldBlock` from a socket that saw urgent data is retried
    /// at once with signals blocked: at the urgent mark Linux answers a
    /// non-blocking read with `EAGAIN` whenever a signal is pending,
    /// although data is queued, and no new event follows. With signals
    /// blocked none is pending, so the retry's answer is the queue's (one
    /// more read and two `pthread_sigmask` calls, on such sockets only).
    /// The kernel may still see one pending: a stop or freeze of the
    /// process, task work, glibc's own signals (which no mask blocks).
    /// So while the read is still at the mark (`SIOCATMARK`), the blocked
    /// retry is repeated, at most [`AT_MARK_RETRIES`] times: a crafted
    /// peer can hold a read at the mark with nothing behind it.
    fn retry_until<T>(
        &self,
        fd: BorrowedFd<'_>,
        bit: u8,
        timeout: Option<Duration>,
        mut deadline: Option<Option<Instant>>,
        mut last_try: bool,
        op: &mut impl FnMut() -> io::Result<T>,
    ) -> io::Result<T> {
        loop {
            let mut result = op();
            if bit == READ_BIT
                && matches!(&result, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
                && self.registration.get().is_some_and(|r| r.urgent())
            {
                result = super::with_signals_blocked(&mut *op);
                let mut retries = 0;
                while retries < AT_MARK_RETRIES
                    && matches!(&result, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
                    && super::at_urgent_mark(fd.as_raw_fd())
                {
                    retries += 1;
                    result = super::with_signals_blocked(&mut *op);
                }
            }
            match result {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && !self.nonblocking.load(Ordering::Relaxed) => {
                    if last_try {
                        // As std reports it (`EAGAIN` from `SO_RCVTIMEO`).
                        return Err(io::Error::new(io::ErrorKind::WouldBlock, "timed out"));
                    }
                    let d = *deadline.get_or_insert_with(|| timeout.and_then(|t| Instant::now().checked_add(t)));
                    match self.wait(fd, bit, d) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::TimedOut => last_try = true,
                        Err(e) => return Err(e),
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
