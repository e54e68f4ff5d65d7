//! The Linux futex, the one blocking primitive idle workers and OS-thread
//! waiters sleep on.

use std::ptr;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Sleeps while `*word == expected`, at most `timeout`. Returns on wake-up,
/// timeout, signal or spurious wake: callers re-check their condition.
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts.as_ref().map_or(ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, aligned u32 for the duration of the call and
    // the timespec outlives it.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG, expected, ts_ptr);
    }
}

/// Wakes one sleeper on the word at `word`, which may have gone away (its
/// owner returned after the last write to it): FUTEX_WAKE only uses the
/// address as a key, and a sleeper that now waits at that address on
/// something else takes it for a spurious wake-up, which every futex
/// waiter re-checks for.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn wake_one_at(word: *const AtomicU32) {
    // SAFETY: FUTEX_WAKE (private) neither reads nor writes the word.
    unsafe {
        libc::syscall(libc::SYS_futex, word, libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, 1);
    }
}

/// Wakes one sleeper on `word`.
pub(crate) fn wake_one(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE only uses the address as a key.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, 1);
    }
}
