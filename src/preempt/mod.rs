//! Preemption control.
//!
//! A thread that runs past its time slice while others wait is suspended
//! asynchronously (see `signal`): a monitor thread sends its worker a
//! signal, and the handler switches to the next thread if the interrupted
//! instruction is a safe point. It is one only when
//! 1. the worker's preempt-disable depth is zero — the runtime raises it
//!    around its own critical sections, user code with [`disable`], and the
//!    [`PreemptSafeAlloc`] allocator wrapper around allocator calls;
//! 2. the thread is not unwinding a panic (std counts panics per OS thread);
//! 3. the PC is in the executable's own code, not in a shared library and
//!    not in a Rust std function (see `safepoint`).
//!
//! Otherwise the preemption stays pending: it is taken when the depth drops
//! back to zero, at the next runtime call, or at the monitor's next try.
//!
//! The depth is part of a green thread's context: it is saved when the
//! thread switches out and restored when it switches back in, so a guard
//! held across a `yield_now` still covers its owner and not the sibling that
//! runs in between.

mod alloc;
pub(crate) mod safepoint;
pub(crate) mod signal;

pub use alloc::PreemptSafeAlloc;
pub use signal::{DEFAULT_SIGNAL, set_signal};

use std::cell::Cell;
use std::marker::PhantomData;

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// A preemption arrived at an unsafe point and waits for depth zero.
    static PENDING: Cell<bool> = const { Cell::new(false) };
}

/// Keeps preemption disabled on this worker until dropped. Guards nest.
///
/// ```
/// use preemptive_mlthreading_rust::preempt;
///
/// let guard = preempt::disable();
/// assert!(preempt::is_disabled());
/// drop(guard);
/// assert!(!preempt::is_disabled());
/// ```
#[must_use = "preemption is enabled again as soon as the guard is dropped"]
pub struct PreemptGuard {
    // Tied to the worker whose depth it raised: must not move to another
    // OS thread.
    _not_send: PhantomData<*const ()>,
}

/// Disables preemption of the calling green thread until the guard drops.
/// A preemption requested meanwhile is taken when the last guard drops.
///
/// Called from a plain OS thread it is harmless (nothing preempts those).
#[inline]
pub fn disable() -> PreemptGuard {
    DEPTH.with(|d| d.set(d.get() + 1));
    PreemptGuard { _not_send: PhantomData }
}

/// Whether preemption is currently disabled on this OS thread.
#[inline]
pub fn is_disabled() -> bool {
    DEPTH.with(|d| d.get()) > 0
}

impl Drop for PreemptGuard {
    #[inline]
    fn drop(&mut self) {
        let depth = DEPTH.with(|d| {
            let n = d.get() - 1;
            d.set(n);
            n
        });
        if depth == 0 && PENDING.with(Cell::get) {
            take_pending();
        }
    }
}

#[cold]
fn take_pending() {
    PENDING.with(|p| p.set(false));
    crate::runtime::worker::yield_pending();
}

/// A preempt-disable scope that never takes a pending preemption when it
/// ends: for scopes that may close inside std or other unsafe code (the
/// allocator wrapper), where a switch is not allowed either. The pending
/// preemption is then taken at the next runtime call or monitor retry.
pub(crate) struct Quiet;

impl Quiet {
    #[inline]
    pub(crate) fn enter() -> Quiet {
        DEPTH.with(|d| d.set(d.get() + 1));
        Quiet
    }
}

impl Drop for Quiet {
    #[inline]
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get() - 1));
    }
}

/// The current depth, saved into a green thread's context at a switch.
#[inline]
pub(crate) fn depth() -> u32 {
    DEPTH.with(|d| d.get())
}

/// Installs the depth of the context being switched in.
#[inline]
pub(crate) fn set_depth(depth: u32) {
    DEPTH.with(|d| d.set(depth))
}

/// Records a preemption to take when the depth drops to zero.
#[inline]
pub(crate) fn set_pending() {
    PENDING.with(|p| p.set(true))
}

/// Takes a pending preemption now, from a point where switching is allowed
/// and no guard is about to drop (a fresh thread's first instruction).
#[inline]
pub(crate) fn take_pending_now() {
    if PENDING.with(Cell::get) {
        take_pending();
    }
}

/// Clears the pending flag, returning whether it was set.
#[inline]
pub(crate) fn take_pending_flag() -> bool {
    PENDING.with(|p| p.replace(false))
}

/// Clears a pending preemption (the thread is switching anyway).
#[inline]
pub(crate) fn clear_pending() {
    PENDING.with(|p| p.set(false))
}
