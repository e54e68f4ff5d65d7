//! Green-thread stacks: `mmap`'d memory with a guard page below, committed
//! lazily by the kernel, mapped when a thread first runs and recycled
//! through a per-worker and a process-wide pool by size.
//!
//! The guard is a lightweight guard region (`MADV_GUARD_INSTALL`, Linux
//! 6.13) where the kernel has them: it faults like `PROT_NONE` but leaves
//! the mapping whole, so neighbouring stacks merge into one kernel VMA and
//! `vm.max_map_count` (65530 by default) no longer caps the thread count
//! near 32k; stacks are then carved from slabs and never unmapped one by
//! one (see `slab`). Older kernels (and emulators that accept the advice
//! without acting on it, which a probe catches) get an `mprotect`ed page:
//! two VMAs per stack, each its own mapping.
//!
//! Between the guard and the size the thread asked for lies a reserve for
//! the preemption signal, which is delivered on the green thread's own
//! stack (see [`signal_reserve`]).
//!
//! A thread that runs into its guard page is reported as std reports OS
//! threads (`thread '<name>' has overflowed its stack`) and the process
//! aborts.

mod budget;
mod error;
mod guard;
pub(crate) mod huge;
pub(crate) mod overflow;
pub(crate) mod pool;
mod slab;

pub use budget::MIN_MAP_HEADROOM;
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

/// Room the runtime's preemption handler needs for its own frames, on top
/// of the kernel's signal frame: the handler polls the worker's queues,
/// may map the next thread's stack and switches, all on the preempted
/// thread's stack.
pub const HANDLER_RESERVE: usize = 8 * 1024;

/// Bytes every stack has between its guard page and the size the thread
/// asked for: the preemption signal arrives on the green thread's own stack
/// at whatever depth the thread has reached, and the kernel must write its
/// signal frame there (the registers and the whole XSAVE area: about
/// 3.5 KiB with AVX-512) before the runtime's handler runs on top of it. It
/// is the kernel's minimum signal stack size (`getauxval(AT_MINSIGSTKSZ)`,
/// or `SIGSTKSZ` where the kernel does not say) rounded up to whole pages,
/// plus [`HANDLER_RESERVE`], and is the same for every stack of the
/// process. The size asked for stays usable in full by the thread's own
/// code.
///
/// ```
/// use preemptive_mlthreading_rust::stack;
/// assert!(stack::signal_reserve() >= stack::HANDLER_RESERVE + 4096);
/// ```
pub fn signal_reserve() -> usize {
    stack_overhead().1
}

/// The guard page and the signal reserve, read once: (guard + reserve, reserve).
fn stack_overhead() -> (usize, usize) {
    use std::sync::OnceLock;
    static OVERHEAD: OnceLock<(usize, usize)> = OnceLock::new();
    *OVERHEAD.get_or_init(|| {
        let page = page_size();
        // SAFETY: getauxval has no preconditions; 0 means "not known".
        let frame = match unsafe { libc::getauxval(libc::AT_MINSIGSTKSZ) } as usize {
            0 => libc::SIGSTKSZ,
            n => n,
        };
        let reserve = frame.next_multiple_of(page) + HANDLER_RESERVE;
        (page + reserve, reserve)
    })
}

/// Bytes mapped for a stack with `usable` bytes (page-rounded).
#[inline]
pub(crate) fn mapped_len(usable: usize) -> usize {
    usable + stack_overhead().0
}

/// The bottom of a stack, as the overflow report reads it: the guard page
/// `[lo, guard_end)` and the signal reserve `[guard_end, reserve_end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Bottom {
    pub(crate) lo: usize,
    pub(crate) guard_end: usize,
    pub(crate) reserve_end: usize,
}

/// A mapped stack: `[guard | signal reserve | usable]`, growing down from
/// `top()`.
pub(crate) struct Stack {
    /// Never null, so that `Option<Stack>` costs no word in a thread's
    /// control block.
    base: ptr::NonNull<u8>,
    /// Bytes mapped (a multiple of the page size), with [`OWN_MAPPING`] in
    /// bit 0 for a stack that is a mapping of its own even where stacks are
    /// carved from slabs (a huge-page stack, see `huge`).
    len_bits: usize,
}

/// Bit 0 of [`Stack::len_bits`].
const OWN_MAPPING: usize = 1;

// SAFETY: a Stack is plain memory owned by one green thread at a time; it is
// moved between OS threads only while that thread is not running on it.
unsafe impl Send for Stack {}

/// Maps `len` bytes of zeroed, private, read-write memory at an address
/// the kernel picks: the one anonymous mapping of the crate that is not a
/// thread's stack (alternate signal stacks, node-bound buffers).
pub(crate) fn map_anonymous(len: usize) -> std::io::Result<std::ptr::NonNull<u8>> {
    // SAFETY: an anonymous private mapping at a kernel-chosen address
    // cannot alias any existing Rust object.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    std::ptr::NonNull::new(p.cast()).ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENOMEM))
}

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
    /// Maps `usable` bytes (already rounded) plus the signal reserve and
    /// one guard page: carved from a slab where the kernel has guard
    /// regions (see `slab`), a mapping of its own otherwise.
    pub(crate) fn map(usable: usize) -> Result<Stack, StackError> {
        let len = mapped_len(usable);
        if guard_regions_supported() {
            let stack = Stack { base: non_null(slab::carve(len, usable)?), len_bits: len };
            MAPPED.fetch_add(len, std::sync::atomic::Ordering::Relaxed);
            return Ok(stack);
        }
        let base = non_null(map_for_stacks(len, usable)?);
        // From here on, dropping the stack gives its maps back.
        let stack = Stack { base, len_bits: len };
        MAPPED.fetch_add(len, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: the first page of our own fresh mapping; nothing uses it.
        unsafe { guard::install(base.as_ptr().cast(), page_size()) }
            .map_err(|e| StackError::from_map_failure(usable, e))?;
        Ok(stack)
    }

    /// A stack of its own mapping `[base, base + len)`, laid out as `map`
    /// lays one out; guard page installed by the caller.
    fn own(base: ptr::NonNull<u8>, len: usize) -> Stack {
        MAPPED.fetch_add(len, std::sync::atomic::Ordering::Relaxed);
        Stack { base, len_bits: len | OWN_MAPPING }
    }

    fn len(&self) -> usize {
        self.len_bits & !OWN_MAPPING
    }

    /// A stack on huge pages: never recycled for other threads, which did
    /// not ask for them.
    pub(crate) fn is_huge(&self) -> bool {
        self.len_bits & OWN_MAPPING != 0
    }

    /// Exclusive upper end, 16-byte aligned (mappings are page aligned).
    pub(crate) fn top(&self) -> *mut u8 {
        self.base.as_ptr().wrapping_add(self.len())
    }

    /// Bytes the thread's code may use: the size it asked for, rounded
    /// (the signal reserve and the guard page lie below).
    pub(crate) fn usable(&self) -> usize {
        self.len() - stack_overhead().0
    }

    /// Bytes mapped in all.
    pub(crate) fn mapped(&self) -> usize {
        self.len()
    }

    /// The guard page and the signal reserve above it.
    pub(crate) fn bottom(&self) -> Bottom {
        let lo = self.base.as_ptr() as usize;
        let guard_end = lo + page_size();
        Bottom { lo, guard_end, reserve_end: guard_end + signal_reserve() }
    }
}

/// Maps `len` bytes of stack memory (one stack, or a slab of them) at a
/// kernel-chosen address, committed only as used, having taken the maps
/// from the budget; errors speak of the `usable` bytes a thread asked for.
fn map_for_stacks(len: usize, usable: usize) -> Result<*mut u8, StackError> {
    budget::take()?;
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
        let err = io::Error::last_os_error();
        budget::give_back();
        return Err(StackError::from_map_failure(usable, err));
    }
    Ok(base.cast())
}

/// A mapping's address: mmap never returns null on success.
fn non_null(p: *mut u8) -> ptr::NonNull<u8> {
    ptr::NonNull::new(p).expect("mmap returned a null mapping")
}

/// Bytes of address space held by stacks (running threads' and cached
/// ones), guard pages included: most of it is never touched, so resident
/// memory is far less.
static MAPPED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// See [`MAPPED`].
pub(crate) fn mapped_bytes() -> usize {
    MAPPED.load(std::sync::atomic::Ordering::Relaxed)
}

impl Drop for Stack {
    fn drop(&mut self) {
        MAPPED.fetch_sub(self.len(), std::sync::atomic::Ordering::Relaxed);
        if guard_regions_supported() && !self.is_huge() {
            // SAFETY: carved by `map` with this length (the answer of
            // guard_regions_supported never changes); nothing runs on it.
            unsafe { slab::release(self.base.as_ptr(), self.len()) };
            return;
        }
        // SAFETY: we own the whole mapping and nothing runs on it any more.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len()) };
        budget::give_back();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_size_asked_for_lies_whole_above_the_signal_reserve() {
        let page = page_size();
        for asked in [MIN_STACK_SIZE, DEFAULT_STACK_SIZE + 1] {
            let usable = round_size(asked);
            let s = Stack::map(usable).unwrap();
            let b = s.bottom();
            assert_eq!(s.usable(), usable);
            assert_eq!(s.top() as usize - b.reserve_end, usable, "asked {asked}");
            assert_eq!(b.guard_end - b.lo, page);
            assert_eq!(b.reserve_end - b.guard_end, signal_reserve());
            assert!(signal_reserve() >= HANDLER_RESERVE + page && signal_reserve().is_multiple_of(page));
            assert_eq!(s.mapped(), mapped_len(usable));
            // SAFETY: the reserve and the usable part are our own writable
            // memory; nothing runs on this stack.
            unsafe { ptr::write_bytes(b.guard_end as *mut u8, 0x5a, s.top() as usize - b.guard_end) };
        }
    }

    #[test]
    fn the_pool_hands_a_stack_back_only_for_its_own_size() {
        let mut cache = pool::LocalCache::default();
        let small = round_size(MIN_STACK_SIZE);
        let s = cache.take(small).unwrap();
        let base = s.bottom().lo;
        cache.give(s);
        let other = cache.take(small + page_size()).unwrap();
        assert_ne!(other.bottom().lo, base, "a stack of another size class");
        assert_eq!(other.usable(), small + page_size());
        let again = cache.take(small).unwrap();
        assert_eq!(again.bottom().lo, base, "the recycled stack");
        assert_eq!(again.usable(), small);
    }
}
