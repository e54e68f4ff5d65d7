//! How an idle worker waits in the network poller (`net`, a layer above)
//! instead of on its futex: the poller installs these hooks when it
//! starts. Until then an idle worker pays one load.

use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::time::Duration;

/// The poller's side.
pub(crate) struct Hooks {
    /// Whether any descriptor is registered (else there is nothing to poll).
    pub(crate) active: fn() -> bool,
    /// Claims the poller: one caller at a time may `poll`.
    pub(crate) claim: fn() -> bool,
    /// With the claim: waits up to the timeout for events and wakes their
    /// threads; true when it woke one.
    pub(crate) poll: fn(Option<Duration>) -> bool,
    /// Gives the claim back.
    pub(crate) release: fn(),
    /// Breaks the wait of the claim's holder. Async-signal-safe.
    pub(crate) wake: fn(),
}

static HOOKS: AtomicPtr<Hooks> = AtomicPtr::new(std::ptr::null_mut());

/// Set by the poller's monitor thread when nobody has polled lately: the
/// next worker to park polls (rather than the monitor thread, whose finds
/// reach their workers through inboxes). Cleared by every poll.
pub(crate) static POLL_WANTED: AtomicBool = AtomicBool::new(false);

/// Whether a poll is wanted (see [`POLL_WANTED`]): one relaxed load.
#[inline(always)]
pub(crate) fn poll_wanted() -> bool {
    POLL_WANTED.load(Ordering::Relaxed)
}

/// Installs `hooks` (once; later calls are ignored).
pub(crate) fn install(hooks: &'static Hooks) {
    let _ = HOOKS.compare_exchange(
        std::ptr::null_mut(),
        (hooks as *const Hooks).cast_mut(),
        Ordering::AcqRel,
        Ordering::Acquire,
    );
}

/// The hooks, when a poller exists and has descriptors registered.
#[inline]
pub(crate) fn active() -> Option<&'static Hooks> {
    let p = HOOKS.load(Ordering::Acquire);
    // SAFETY: only `install` stores here, a `&'static Hooks`.
    let hooks = unsafe { p.as_ref() }?;
    (hooks.active)().then_some(hooks)
}

/// Dispatches whatever is ready now, if the poller is free; true when it
/// woke a thread.
pub(crate) fn poll_now() -> bool {
    let Some(h) = active() else { return false };
    if !(h.claim)() {
        return false;
    }
    let woke = (h.poll)(Some(Duration::ZERO));
    (h.release)();
    woke
}

/// Breaks an idle worker's wait in the poller. Async-signal-safe.
pub(crate) fn wake() {
    let p = HOOKS.load(Ordering::Acquire);
    // SAFETY: as in `active`.
    if let Some(h) = unsafe { p.as_ref() } {
        (h.wake)();
    }
}
