//! Green-thread stacks: `mmap`'d memory with a guard page below, committed
//! lazily by the kernel, mapped when a thread first runs and recycled
//! through a per-worker and a process-wide pool by size.
//!
//! The guard is a lightweight guard region (`MADV_GUARD_INSTALL`, Linux
//! 6.13) where the kernel has them: it faults like `PROT_NONE` but leaves
//! the mapping whole, so neighbouring stacks merge into one kernel VMA and
//! `vm.max_map_count` (65530 by default) no longer caps the thread count
//! near 32k. Older kernels (and emulators that accept the advice without
//! acting on it, which a probe catches) get an `mprotect`ed page: two VMAs
//! per stack.
//!
//! A thread that runs into its guard page is reported as std reports OS
//! threads (`thread '<name>' has overflowed its stack`) and the process
//! aborts.

mod error;
mod guard;
pub(crate) mod overflow;
pub(crate) mod pool;

pub use error::StackError;
pub(crate) use error::address_space_limit;
pub use guard::guard_regions_supported;

use std::io;
use std::ptr;

/// Stack size used when a builder names none.
pub const DEFAULT_STACK_SIZE: usize = 64 * 1024;

/// Smallest usable stack; smaller requests are rounded up to it, as std
/// rounds up to `PTHREAD_STACK_MIN`.
pub const MIN_STACK_SIZE: usize = 16 * 1024;

/// A mapped stack: `[guard | usable]`, growing down from `top()`.
pub(crate) struct Stack {
    base: *mut u8,
    len: usize,
}

// SAFETY: a Stack is plain memory owned by one green thread at a time; it is
// moved between OS threads only while that thread is not running on it.
unsafe impl Send for Stack {}

pub(crate) fn page_size() -> usize {
    use std::sync::OnceLock;
    static PAGE: OnceLock<usize> = OnceLock::new();
    // SAFETY: sysconf has no memory-safety preconditions.
    *PAGE.get_or_init(|| unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize)
}

/// Rounds a requested size up to whole pages and at least `MIN_STACK_SIZE`.
pub(crate) fn round_size(requested: usize) -> usize {
    let page = page_size();
    // Page sizes are powers of two: no division on the spawn path.
    (requested.max(MIN_STACK_SIZE) + page - 1) & !(page - 1)
}

impl Stack {
    /// Maps `usable` bytes (already rounded) plus one guard page.
    pub(crate) fn map(usable: usize) -> Result<Stack, StackError> {
        let guard = page_size();
        let len = usable + guard;
        // SAFETY: an anonymous private mapping at a kernel-chosen address
        // cannot alias any existing Rust object.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(StackError::from_map_failure(usable, io::Error::last_os_error()));
        }
        let stack = Stack { base: base.cast(), len };
        // SAFETY: the first page of our own fresh mapping; nothing uses it.
        unsafe { guard::install(base, guard) }.map_err(|e| StackError::from_map_failure(usable, e))?;
        Ok(stack)
    }

    /// Exclusive upper end, 16-byte aligned (mappings are page aligned).
    pub(crate) fn top(&self) -> *mut u8 {
        self.base.wrapping_add(self.len)
    }

    /// Bytes usable above the guard page.
    pub(crate) fn usable(&self) -> usize {
        self.len - page_size()
    }

    /// `[start, end)` of the guard page.
    pub(crate) fn guard(&self) -> (usize, usize) {
        (self.base as usize, self.base as usize + page_size())
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: we own the whole mapping and nothing runs on it any more.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}
