//! Preemption control.
//!
//! Each worker OS thread has a preempt-disable depth. While it is above
//! zero the thread running on that worker is not preempted asynchronously:
//! the runtime raises it around its own critical sections (run-queue and
//! timer updates, the switch itself), and user code can raise it with
//! [`disable`] around code that must not be interrupted by a sibling green
//! thread on the same worker.
//!
//! The depth is part of a green thread's context: it is saved when the
//! thread switches out and restored when it switches back in, so a guard
//! held across a `yield_now` still covers its owner and not the sibling that
//! runs in between.

use std::cell::Cell;
use std::marker::PhantomData;

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
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
