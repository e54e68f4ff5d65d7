//! Waiting for file descriptors without blocking the worker.
//!
//! [`wait_readable`] and [`wait_writable`] park the calling green thread
//! until a descriptor is ready (or a timeout passes), while its worker
//! runs other threads; on a plain OS thread they block in `poll(2)` as a
//! blocking call would. They work for any descriptor epoll accepts:
//! sockets, pipes, eventfds, other libraries' sockets. Put the descriptor
//! in non-blocking mode and retry the call that said `WouldBlock` after
//! each wait:
//!
//! ```
//! use preemptive_mlthreading_rust::net::wait_readable;
//! use preemptive_mlthreading_rust::spawn;
//! use std::io::{Read, Write};
//! use std::os::unix::net::UnixStream;
//!
//! let (mut a, mut b) = UnixStream::pair().unwrap();
//! b.set_nonblocking(true).unwrap();
//! let reader = spawn(move || {
//!     let mut buf = [0u8; 5];
//!     loop {
//!         match b.read(&mut buf) {
//!             Ok(n) => return buf[..n].to_vec(),
//!             Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => wait_readable(&b, None).unwrap(),
//!             Err(e) => panic!("{e}"),
//!         }
//!     }
//! })
//! .unwrap();
//! a.write_all(b"hello").unwrap();
//! assert_eq!(reader.join().unwrap(), b"hello");
//! ```
//!
//! A waiter is woken by a poller thread of its own (`pmt-netpoll`, see
//! `poller.rs`) for now; one reader and one writer may wait on a
//! descriptor at once (a second reader is an error, not a lost wake-up).
//!
//! [`TcpListener`], [`TcpStream`], [`UdpSocket`], [`UnixListener`] and
//! [`UnixStream`] are shaped like std's and built on these waits. Not yet:
//! the poll folded fully into idle workers (issue 17).

#[macro_use]
mod impls;
mod poller;
mod tcp;
mod udp;
mod unix;

pub use tcp::{TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixListener, UnixStream};

use poller::{Interest, Waiter};
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Parks the calling thread until `fd` is readable (data, end of file,
/// a hang-up or an error: the next read says which), or `timeout`
/// passes (`ErrorKind::TimedOut`). Green threads park and their worker
/// runs others; OS threads block in `poll(2)`.
pub fn wait_readable(fd: impl AsFd, timeout: Option<Duration>) -> io::Result<()> {
    wait(fd.as_fd().as_raw_fd(), Interest::Read, timeout)
}

/// [`wait_readable`] for writing: until `fd` has room (or is hung up, or
/// failed).
pub fn wait_writable(fd: impl AsFd, timeout: Option<Duration>) -> io::Result<()> {
    wait(fd.as_fd().as_raw_fd(), Interest::Write, timeout)
}

fn wait(fd: RawFd, interest: Interest, timeout: Option<Duration>) -> io::Result<()> {
    let me = crate::thread::current();
    if !me.is_green() {
        return poll_blocking(fd, interest, timeout);
    }
    let deadline = timeout.map(|t| Instant::now() + t);
    let reactor = poller::reactor()?;
    let waiter = Arc::new(Waiter { thread: me, ready: AtomicBool::new(false) });
    reactor.arm(fd, interest, &waiter)?;
    let outcome = loop {
        if waiter.ready.load(Ordering::Acquire) {
            break Ok(());
        }
        match deadline {
            None => crate::thread::park(),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    break Err(io::Error::new(io::ErrorKind::TimedOut, "the descriptor did not become ready in time"));
                }
                crate::thread::park_timeout(d - now);
            }
        }
    };
    reactor.forget(fd, interest, &waiter);
    // Readiness that came as we timed out is still readiness.
    if waiter.ready.load(Ordering::Acquire) { Ok(()) } else { outcome }
}

/// `poll(2)` on a plain OS thread.
fn poll_blocking(fd: RawFd, interest: Interest, timeout: Option<Duration>) -> io::Result<()> {
    let events = match interest {
        Interest::Read => libc::POLLIN,
        Interest::Write => libc::POLLOUT,
    };
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let ms = match deadline {
            None => -1,
            Some(d) => d.saturating_duration_since(Instant::now()).as_millis().min(i32::MAX as u128) as i32,
        };
        let mut p = libc::pollfd { fd, events, revents: 0 };
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut p, 1, ms) };
        match n {
            1 if p.revents & libc::POLLNVAL != 0 => return Err(io::Error::from_raw_os_error(libc::EBADF)),
            1 => return Ok(()),
            0 => return Err(io::Error::new(io::ErrorKind::TimedOut, "the descriptor did not become ready in time")),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}
