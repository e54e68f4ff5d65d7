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
//! Our own socket types register their descriptor with the poller once,
//! at their first wait, and leave it when dropped; `wait_readable` on any
//! other descriptor registers it for the length of the wait. Any number
//! of threads may wait on one descriptor; an event wakes all of them.
//! The poller runs in idle workers (see `reactor/mod.rs`).
//!
//! [`TcpListener`], [`TcpStream`], [`UdpSocket`], [`UnixListener`] and
//! [`UnixStream`] are shaped like std's and built on these waits.
//!
//! A descriptor closed by another thread while a thread waits on it
//! through `wait_readable` ends that wait with an error within a second
//! (the wait checks that the descriptor still names the same file).
//! Our socket types own their descriptors: while a thread reads one,
//! another can [`shutdown`](TcpStream::shutdown) it (the reader sees the
//! end of the stream), not close it.

#[macro_use]
mod impls;
mod reactor;
mod tcp;
mod udp;
mod unix;
mod waits;

pub use tcp::{TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixListener, UnixStream};

use reactor::{READ_BIT, Registration};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;
use std::time::{Duration, Instant};

/// Parks the calling thread until `fd` is readable (data, end of file,
/// a hang-up or an error: the next read says which), or `timeout`
/// passes (`ErrorKind::TimedOut`). Green threads park and their worker
/// runs others; OS threads block in `poll(2)`.
pub fn wait_readable(fd: impl AsFd, timeout: Option<Duration>) -> io::Result<()> {
    wait(fd.as_fd().as_raw_fd(), READ_BIT, timeout)
}

/// [`wait_readable`] for writing: until `fd` has room (or is hung up, or
/// failed).
pub fn wait_writable(fd: impl AsFd, timeout: Option<Duration>) -> io::Result<()> {
    wait(fd.as_fd().as_raw_fd(), reactor::WRITE_BIT, timeout)
}

/// What a descriptor names: a closed and reused number names another.
fn identity(fd: RawFd) -> io::Result<(u64, u64)> {
    // SAFETY: fstat writes into the zeroed struct and reads nothing else.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::fstat(fd, &mut st) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((st.st_dev as u64, st.st_ino as u64))
}

/// Runs `call`, one non-blocking socket call, with every asynchronous
/// signal blocked on this OS thread, so that the kernel sees none pending
/// (`Waits::retry_until`). Preemption waits for it: its signal is blocked
/// too, and a pending one is handled when the mask is restored, as after
/// any masked stretch. The fault signals stay open: a stack overflow in
/// the window still gets its report.
fn with_signals_blocked<T>(call: impl FnOnce() -> T) -> T {
    struct Restore(libc::sigset_t);
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: `self.0` is the mask `pthread_sigmask` returned below.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, ptr::null_mut()) };
        }
    }
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    let mut old = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: `sigfillset` initialises `set`, `sigdelset` edits it, and
    // `pthread_sigmask` reads it and writes the previous mask to `old`: it
    // cannot fail with SIG_BLOCK and valid pointers (checked in debug).
    let _restore = unsafe {
        libc::sigfillset(set.as_mut_ptr());
        for fault in [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE, libc::SIGTRAP, libc::SIGSYS] {
            libc::sigdelset(set.as_mut_ptr(), fault);
        }
        let r = libc::pthread_sigmask(libc::SIG_BLOCK, set.as_ptr(), old.as_mut_ptr());
        debug_assert_eq!(r, 0, "pthread_sigmask");
        Restore(old.assume_init())
    };
    call()
}

/// A TCP socket's next read is at urgent data's mark (`SIOCATMARK`);
/// false for any other descriptor.
fn at_urgent_mark(fd: RawFd) -> bool {
    // <asm-generic/sockios.h>, which x86_64, aarch64 and riscv64 use; the
    // libc crate does not export it.
    const SIOCATMARK: u32 = 0x8905;
    let mut at: libc::c_int = 0;
    // SAFETY: SIOCATMARK writes one int; other descriptors fail with an
    // error and write nothing.
    unsafe { libc::ioctl(fd, SIOCATMARK as _, &mut at) == 0 && at != 0 }
}

fn wait(fd: RawFd, bit: u8, timeout: Option<Duration>) -> io::Result<()> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    if !crate::runtime::worker::Worker::is_green() {
        return poll_blocking(fd, bit, deadline);
    }
    let id = identity(fd)?;
    // A descriptor registered already (one of our sockets, or a wait on
    // it in another thread) is waited on through a duplicate: epoll keys
    // registrations by descriptor number and file.
    let (registration, dup) = match Registration::new(fd) {
        Ok(r) => (r, None),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor we own.
            let d = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
            if d < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `d` is ours alone.
            let dup = unsafe { OwnedFd::from_raw_fd(d) };
            (Registration::new(d)?, Some(dup))
        }
        Err(e) => return Err(e),
    };
    let closed = std::cell::Cell::new(false);
    let check = || {
        if identity(fd).ok() == Some(id) {
            return Ok(());
        }
        closed.set(true);
        Err(io::Error::other(format!("descriptor {fd} was closed while a thread waited on it")))
    };
    let outcome = registration.wait(bit, deadline, Some(&check));
    if closed.get() && dup.is_none() {
        // Its number may name another file now: not ours to delete.
        registration.abandon();
    } else {
        drop(registration);
    }
    // Only now: the registration left the poller first.
    drop(dup);
    outcome
}

/// `poll(2)` on a plain OS thread.
fn poll_blocking(fd: RawFd, bit: u8, deadline: Option<Instant>) -> io::Result<()> {
    let events = if bit == READ_BIT { libc::POLLIN } else { libc::POLLOUT };
    loop {
        let ms = match deadline {
            None => -1,
            // Rounded up: a wait of less than a millisecond must not end
            // at once, before its deadline.
            Some(d) => {
                d.saturating_duration_since(Instant::now()).as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(signal: libc::c_int) -> bool {
        let mut now = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: a null new mask only reads the current one into `now`.
        unsafe {
            libc::pthread_sigmask(libc::SIG_BLOCK, ptr::null(), now.as_mut_ptr());
            libc::sigismember(now.as_ptr(), signal) == 1
        }
    }

    #[test]
    fn the_call_runs_with_asynchronous_signals_blocked_and_faults_open() {
        assert!(!blocked(libc::SIGUSR1) && !blocked(libc::SIGALRM));
        let inside = with_signals_blocked(|| {
            (blocked(libc::SIGUSR1), blocked(libc::SIGALRM), blocked(libc::SIGSEGV), blocked(libc::SIGBUS))
        });
        assert_eq!(inside, (true, true, false, false));
        assert!(!blocked(libc::SIGUSR1) && !blocked(libc::SIGALRM), "the old mask is back");
        let caught = std::panic::catch_unwind(|| with_signals_blocked(|| panic!("inside")));
        assert!(caught.is_err());
        assert!(!blocked(libc::SIGUSR1), "the old mask is back after a panic too");
    }
}
