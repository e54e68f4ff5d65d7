//! Preemption control.
//!
//! A thread that runs past its time slice while others wait is suspended
//! asynchronously: a monitor thread sends its worker a signal, and the
//! handler hands the worker to another OS thread while the interrupted
//! thread keeps its own OS thread, asleep in the handler, until it is
//! picked again (see the runtime's `host` module). So nothing the thread
//! keeps per OS thread (its `thread_local!`s, libc's state, std's locks
//! and panic count) is ever seen by another green thread, whatever
//! instruction it was interrupted at. The one condition is that the
//! worker's preempt-disable depth is zero: the runtime raises it around its
//! own critical sections, and user code with [`disable`].
//!
//! Otherwise the preemption stays pending: it is taken (the same way) when
//! the depth drops back to zero, or at the monitor's next try.
//!
//! The depth is part of a green thread's context: it is saved when the
//! thread switches out and restored when it switches back in, so a guard
//! held across a `yield_now` still covers its owner and not the sibling that
//! runs in between.

mod alloc;
pub(crate) mod signal;
mod status;

pub use alloc::PreemptSafeAlloc;
pub use signal::{DEFAULT_SIGNAL, set_signal};
pub use status::{PreemptStatus, status};

pub(crate) use status::{check as check_status, report_change as report_status_change};

use crate::arch::preempt_word::{self, DEPTH, PENDING, depth_of, pending_of};
use std::marker::PhantomData;

// The depth and the pending flag live in the OS thread's preemption word
// (`arch::preempt_word`), not in `thread_local!`s: a cooperative switch may
// resume a thread on another host, and the word's accessors leave no
// window between computing a thread-local's address and using it.

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
/// A preemption requested meanwhile is taken when the last guard drops:
/// one the timer signal deferred keeps the thread's OS thread, as any
/// preemption does; a thread of higher priority that a runtime call inside
/// the scope woke on this worker (an unpark, a send) runs then, as after a
/// yield, so the end of such a scope is a cooperative point.
///
/// Called from a plain OS thread it is harmless (nothing preempts those).
#[inline]
pub fn disable() -> PreemptGuard {
    preempt_word::increment();
    PreemptGuard { _not_send: PhantomData }
}

/// Whether preemption is currently disabled on this OS thread.
#[inline]
pub fn is_disabled() -> bool {
    depth_of(preempt_word::load()) > 0
}

impl PreemptGuard {
    /// Proof that preemption is off while this guard lives.
    #[inline(always)]
    pub(crate) fn token(&self) -> NoPreempt<'_> {
        NoPreempt(PhantomData)
    }
}

impl Drop for PreemptGuard {
    #[inline]
    fn drop(&mut self) {
        let Some(word) = preempt_word::decrement() else { return };
        match depth_of(word) {
            0 if pending_of(word) => take_pending(word),
            u32::MAX => depth_underflow(),
            _ => {}
        }
    }
}

#[cold]
#[inline(never)]
fn depth_underflow() -> ! {
    panic!("preemption depth underflow: more preempt-disable scopes ended than began on this worker (a runtime bug)")
}

#[cold]
fn take_pending(word: u64) {
    preempt_word::store_half(PENDING, 0);
    // Only the runtime sets a pending preemption, and it registers the
    // handler before its first worker starts.
    if let Some(on_pending) = ON_PENDING.get() {
        on_pending(Pending::of(word) == Pending::Involuntary);
    }
}

/// What the end of the outermost preempt-disable scope calls when a
/// preemption is pending: `true` when it was deferred from the signal.
pub(crate) type OnPending = fn(bool);

static ON_PENDING: std::sync::OnceLock<OnPending> = std::sync::OnceLock::new();

/// Hands down the runtime's switch for a pending preemption (as
/// [`signal::install`] hands down the signal's), so that this layer never
/// calls up into the runtime.
pub(crate) fn set_pending_handler(on_pending: OnPending) {
    let _ = ON_PENDING.set(on_pending);
}

/// A preemption waiting for the depth to drop to zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pending {
    None,
    /// A thread that outranks the running one was made runnable by a
    /// runtime call (an unpark, a send): a cooperative point, so the switch
    /// is a plain yield.
    Cooperative,
    /// The preemption signal found the thread in a critical section: the
    /// switch lands wherever the section ends, so the thread keeps its OS
    /// thread.
    Involuntary,
}

const COOPERATIVE: u32 = 1;
const INVOLUNTARY: u32 = 2;

impl Pending {
    fn of(word: u64) -> Pending {
        match (word >> 32) as u32 {
            0 => Pending::None,
            COOPERATIVE => Pending::Cooperative,
            _ => Pending::Involuntary,
        }
    }
}

/// A preempt-disable scope that never takes a pending preemption when it
/// ends: for scopes that may close inside std or other unsafe code (the
/// allocator wrapper), where a switch is not allowed either. The pending
/// preemption is then taken at the next runtime call or monitor retry.
pub(crate) struct Quiet;

impl Quiet {
    #[inline]
    pub(crate) fn enter() -> Quiet {
        preempt_word::increment();
        Quiet
    }

    /// Proof that preemption is off while this scope lasts.
    #[inline(always)]
    pub(crate) fn token(&self) -> NoPreempt<'_> {
        NoPreempt(PhantomData)
    }
}

/// Proof that preemption stays disabled on this OS thread for `'g`, borrowed
/// from the scope that disables it. What the running green thread reads of
/// its worker (`Worker::current_task`) is valid only while nothing can
/// switch it out behind its back; tying those references to this lifetime
/// keeps them inside the scope. A switch the thread makes itself (a yield
/// inside the scope) is the runtime's own business: its switch paths do not
/// hand such references on.
#[derive(Clone, Copy)]
pub(crate) struct NoPreempt<'g>(PhantomData<(&'g (), *const ())>);

impl Drop for Quiet {
    #[inline]
    fn drop(&mut self) {
        if preempt_word::decrement().is_some_and(|word| depth_of(word) == u32::MAX) {
            depth_underflow();
        }
    }
}

/// The current depth.
#[inline]
pub(crate) fn depth() -> u32 {
    depth_of(preempt_word::load())
}

/// Sets the depth, leaving the pending flag alone.
#[inline]
pub(crate) fn set_depth(depth: u32) {
    preempt_word::store_half(DEPTH, depth)
}

/// At a switch: installs the depth of the context being switched in,
/// clears any pending preemption (the switch is one), and returns the
/// depth of the context being switched out, to save in it.
#[inline]
pub(crate) fn switch_depth(depth: u32) -> u32 {
    depth_of(preempt_word::swap(u64::from(depth)))
}

/// Records a wake-up preemption to take, as a yield, when the depth drops
/// to zero. An involuntary one already pending stays involuntary.
#[inline]
pub(crate) fn set_pending() {
    if !pending_of(preempt_word::load()) {
        preempt_word::store_half(PENDING, COOPERATIVE)
    }
}

/// Records a preemption the signal could not take at once: taken when the
/// depth drops to zero, keeping the thread's OS thread.
#[inline]
pub(crate) fn set_pending_involuntary() {
    preempt_word::store_half(PENDING, INVOLUNTARY)
}

/// Takes a pending preemption now, from a point where switching is allowed
/// and no guard is about to drop (a fresh thread's first instruction).
#[inline]
pub(crate) fn take_pending_now() {
    let word = preempt_word::load();
    if pending_of(word) {
        take_pending(word);
    }
}

/// Clears the pending preemption, returning what it was.
#[inline]
pub(crate) fn take_pending_kind() -> Pending {
    let pending = Pending::of(preempt_word::load());
    if pending != Pending::None {
        preempt_word::store_half(PENDING, 0);
    }
    pending
}
