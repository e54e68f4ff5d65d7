//! Sampled scheduling latency: how long a woken thread waits before it
//! runs, for [`SystemMetrics`](crate::SystemMetrics), always on.
//!
//! One wake-up in [`SAMPLE_EVERY`] on each waking OS thread (an unpark,
//! or a timer firing) is sampled. The waker owns the woken thread at that
//! moment (it is on no queue yet), so it may move the thread's saved stack
//! pointer aside ([`crate::runtime::task::Exec::aside`]) and write the
//! wake time in the word below it, dead stack space while the thread is
//! switched out. The worker that picks the thread then takes the cold
//! path of a thread that never ran, which puts the stack pointer back and
//! records the wait in its histogram: no test is added where threads are
//! switched in, and the wake path pays a counter. A thread that never ran
//! (a spawn) has no stack to stamp and is not sampled; profiled threads
//! record every wait of their own instead ([`super::profile`]).
//!
//! A timer's wait counts from its deadline, not from when the worker
//! noticed it, so a late timer shows as latency.

use super::clock;
use super::profile;
use super::task::{Exec, Task};
use std::cell::Cell;

/// One wake-up in this many is sampled (a power of two).
pub(crate) const SAMPLE_EVERY: u32 = 64;
/// Bit 0 of `Exec::aside`: the stack holds a wake time below the saved
/// stack pointer (saved stack pointers are 16-byte aligned).
pub(crate) const STAMPED: usize = 1;

thread_local! {
    static WAKES: Cell<u32> = const { Cell::new(0) };
}

/// Whether this wake-up is to be sampled.
#[inline(always)]
pub(crate) fn tick() -> bool {
    WAKES.with(|w| {
        let n = w.get().wrapping_add(1);
        w.set(n);
        n & (SAMPLE_EVERY - 1) == 0
    })
}

/// `task` became runnable at `at_ns` (clock scale); it is sampled, or
/// profiled. The caller owns it: it is on no queue, in no `current` or
/// post slot, and not held.
///
/// # Safety
/// As above: nothing else touches the task's `Exec` meanwhile.
#[cold]
#[inline(never)]
pub(crate) unsafe fn woken(task: &Task, at_ns: u64) {
    if let Some(p) = task.spec.profile() {
        profile::runnable(p, at_ns);
        return;
    }
    // SAFETY: the caller's contract.
    let exec = unsafe { task.exec() };
    // SAFETY: as above.
    unsafe { set_aside(exec, at_ns) }
}

/// [`woken`] now.
///
/// # Safety
/// As [`woken`].
#[cold]
#[inline(never)]
pub(crate) unsafe fn woken_now(task: &Task) {
    // SAFETY: the caller's contract.
    unsafe { woken(task, clock::now_ns()) }
}

/// Moves a switched-out thread's stack pointer aside, stamped with
/// `at_ns`. Does nothing for a thread that never ran, is held, or has no
/// room below its stack pointer.
///
/// # Safety
/// As [`woken`].
unsafe fn set_aside(exec: &mut Exec, at_ns: u64) {
    if !exec.switchable() {
        return;
    }
    let Some(stack) = exec.stack.as_ref() else { return };
    let sp = exec.sp;
    if sp < stack.bottom().reserve_end + 16 || sp > stack.top() as usize {
        return;
    }
    // SAFETY: below the saved stack pointer of a switched-out thread, in
    // its own stack's usable part (checked above): memory nothing uses
    // until the thread runs again, and 8-aligned (sp is 16-aligned).
    unsafe { ((sp - 8) as *mut u64).write(at_ns) };
    exec.aside = sp | STAMPED;
    exec.sp = 0;
}

/// The wake time stamped below `sp`.
///
/// # Safety
/// `sp` was stamped by [`set_aside`], and the thread has not run since.
pub(crate) unsafe fn take_stamp(sp: usize) -> u64 {
    // SAFETY: the caller's contract.
    unsafe { ((sp - 8) as *const u64).read() }
}
