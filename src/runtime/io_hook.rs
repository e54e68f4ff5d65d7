//! A hook through which an idle worker polls for ready descriptors before
//! it sleeps: the network poller (`net`, a layer above) installs it when
//! it starts. Until then an idle worker pays one load.

use std::sync::atomic::{AtomicPtr, Ordering};

static POLL: AtomicPtr<()> = AtomicPtr::new(std::ptr::null_mut());

/// Installs `poll`: it dispatches whatever is ready without waiting, and
/// says whether it woke a thread.
pub(crate) fn install(poll: fn() -> bool) {
    POLL.store(poll as *mut (), Ordering::Release);
}

/// Runs the installed poll, if any.
pub(crate) fn poll_ready() -> bool {
    let p = POLL.load(Ordering::Acquire);
    if p.is_null() {
        return false;
    }
    // SAFETY: only `install` stores here, and it stores a `fn() -> bool`.
    let poll: fn() -> bool = unsafe { std::mem::transmute::<*mut (), fn() -> bool>(p) };
    poll()
}
