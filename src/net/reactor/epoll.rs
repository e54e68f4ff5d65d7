//! The epoll instance and the eventfd that breaks a worker's wait on it:
//! three system calls, called directly. The `polling` crate was the first
//! version's choice; its `wait` re-arms a timerfd and its notifier around
//! every call, five system calls where one does (bench/README.md,
//! "Network poller").

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The key of the wake-up eventfd's events; slot keys never reach it (a
/// slot index is below 2^32 - 1).
pub(super) const WAKE_KEY: u64 = u64::MAX;

/// Readiness reported for a registered descriptor.
pub(super) const READABLE: u32 =
    (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR | libc::EPOLLPRI) as u32;
pub(super) const WRITABLE: u32 = (libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) as u32;
/// A FIN, a hang-up or an error: after it a short read no longer proves
/// the receive queue empty (`slot.rs`).
pub(super) const HUNG_UP: u32 = (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;
/// Urgent data: as [`HUNG_UP`] for the drained shortcut, and reads may
/// stop at its mark (`waits.rs`).
pub(super) const PRIORITY: u32 = libc::EPOLLPRI as u32;

pub(super) struct Epoll {
    epfd: OwnedFd,
    wake: OwnedFd,
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

impl Epoll {
    pub(super) fn new() -> io::Result<Epoll> {
        // SAFETY: plain system calls; the descriptors are owned at once.
        let epfd = unsafe { OwnedFd::from_raw_fd(check(libc::epoll_create1(libc::EPOLL_CLOEXEC))?) };
        // SAFETY: as above.
        let wake = unsafe { OwnedFd::from_raw_fd(check(libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK))?) };
        let ep = Epoll { epfd, wake };
        ep.ctl(libc::EPOLL_CTL_ADD, ep.wake.as_raw_fd(), WAKE_KEY)?;
        Ok(ep)
    }

    /// Registers `fd` for both directions, edge-triggered, under `key`
    /// (and for urgent data, which `CLOSED` needs to see).
    pub(super) fn add(&self, fd: RawFd, key: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, key)
    }

    /// Removes `fd`; errors are the caller's to ignore (a descriptor
    /// closed behind our back has left already).
    pub(super) fn delete(&self, fd: RawFd) -> io::Result<()> {
        // SAFETY: a null event is allowed for EPOLL_CTL_DEL since 2.6.9.
        check(unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) })
            .map(drop)
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, key: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLPRI | libc::EPOLLET) as u32,
            u64: key,
        };
        // SAFETY: `ev` is valid for the call.
        check(unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut ev) }).map(drop)
    }

    /// Waits up to `timeout` (None: forever) and fills `events`; an
    /// interrupted wait returns no events. `epoll_pwait2` takes the
    /// timeout in nanoseconds (an idle worker's next timer may be due in
    /// microseconds); kernels before 5.11 get `epoll_wait`, rounded up to
    /// a millisecond.
    pub(super) fn wait(&self, events: &mut [libc::epoll_event], timeout: Option<Duration>) -> io::Result<usize> {
        static NO_PWAIT2: AtomicBool = AtomicBool::new(false);
        let (ep, buf, len) = (self.epfd.as_raw_fd(), events.as_mut_ptr(), events.len() as libc::c_int);
        let n = if let Some(t) = timeout.filter(|t| !t.is_zero() && !NO_PWAIT2.load(Ordering::Relaxed)) {
            let ts = libc::timespec {
                tv_sec: t.as_secs().min(i32::MAX as u64) as libc::time_t,
                tv_nsec: t.subsec_nanos() as libc::c_long,
            };
            // SAFETY: `events` is writable for its length, `ts` readable;
            // no signal mask is passed.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_epoll_pwait2,
                    ep,
                    buf,
                    len,
                    &ts as *const libc::timespec,
                    std::ptr::null::<u8>(),
                    0,
                )
            };
            if r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
                NO_PWAIT2.store(true, Ordering::Relaxed);
                return self.wait(events, timeout);
            }
            r as libc::c_int
        } else {
            let ms = match timeout {
                None => -1,
                Some(t) => t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32,
            };
            // SAFETY: `events` is writable for its length.
            unsafe { libc::epoll_wait(ep, buf, len, ms) }
        };
        match check(n) {
            Ok(n) => Ok(n as usize),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Breaks a wait. Async-signal-safe.
    pub(super) fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64; a full counter (EAGAIN)
        // still has the wait broken.
        unsafe { libc::write(self.wake.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Resets the eventfd after its event was seen.
    pub(super) fn clear_wake(&self) {
        let mut n: u64 = 0;
        // SAFETY: reads 8 bytes into a valid u64; EAGAIN when already clear.
        unsafe { libc::read(self.wake.as_raw_fd(), (&mut n as *mut u64).cast(), 8) };
    }
}
