use std::alloc::{GlobalAlloc, Layout};

/// A `#[global_allocator]` wrapper that disables preemption around every
/// call into the allocator it wraps.
///
/// No allocator needs it for correctness: a preempted thread keeps its OS
/// thread, so an allocator's per-OS-thread caches and locks (jemalloc,
/// mimalloc, glibc's arenas) are never seen by another green thread. It
/// keeps allocator calls short of preemption, which saves an OS-thread
/// hand-over when a preemption would land inside one: the preemption is
/// taken at the next runtime call or the monitor's next try instead.
///
/// ```
/// use preemptive_mlthreading_rust::preempt::PreemptSafeAlloc;
/// use std::alloc::System;
///
/// #[global_allocator]
/// static ALLOC: PreemptSafeAlloc<System> = PreemptSafeAlloc::new(System);
///
/// let v: Vec<u64> = (0..1000).collect();
/// assert_eq!(v.iter().sum::<u64>(), 499_500);
/// ```
pub struct PreemptSafeAlloc<A> {
    inner: A,
}

impl<A> PreemptSafeAlloc<A> {
    /// Wraps `inner`.
    pub const fn new(inner: A) -> Self {
        PreemptSafeAlloc { inner }
    }
}

// SAFETY: every method forwards to the wrapped allocator with the caller's
// arguments unchanged; the guard only adjusts a thread-local counter and
// never allocates.
unsafe impl<A: GlobalAlloc> GlobalAlloc for PreemptSafeAlloc<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _np = super::Quiet::enter();
        // SAFETY: forwarded contract.
        unsafe { self.inner.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _np = super::Quiet::enter();
        // SAFETY: forwarded contract.
        unsafe { self.inner.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let _np = super::Quiet::enter();
        // SAFETY: forwarded contract.
        unsafe { self.inner.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _np = super::Quiet::enter();
        // SAFETY: forwarded contract.
        unsafe { self.inner.realloc(ptr, layout, new_size) }
    }
}
