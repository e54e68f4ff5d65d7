//! Stacks carved from slabs, where the kernel has guard regions.
//!
//! Mapping every stack on its own costs, at a thread's first run, an `mmap`
//! (which takes the process's mmap lock for writing, so two workers mapping
//! at once wait for each other) and, when a recycled stack is let go, a
//! `munmap` (the lock again, and a TLB shootdown on every CPU the process
//! runs on). Starting 10^6 sleeping threads spent most of its time there.
//!
//! With guard regions, a guard does not split its mapping, so many stacks
//! of one size can share one: a *slab* of them is mapped at once, and each
//! stack gets its guard region when it is carved (`madvise`, under the lock
//! taken for reading). A stack that is let go is not unmapped: its pages go
//! back to the kernel with `MADV_DONTNEED` (its guard stays), and the stack
//! waits on a free list of its size for the next thread, which faults in
//! fresh zero pages. Slabs are never unmapped: a process keeps the address
//! space of its peak number of stacks, not their memory.
//!
//! Without guard regions (`mprotect`ed guard pages split the mapping anyway)
//! every stack keeps a mapping of its own.

use super::{StackError, guard};
use std::collections::HashMap;
use std::sync::Mutex;

/// A slab is at least this big, and holds at least [`MIN_PER_SLAB`] stacks.
const SLAB_BYTES: usize = 2 << 20;
const MIN_PER_SLAB: usize = 8;

/// Per mapped stack size: stacks let go, and the part of the last slab not
/// carved yet.
#[derive(Default)]
struct Class {
    /// Bases of stacks whose pages went back to the kernel.
    free: Vec<usize>,
    /// `[next, end)` of the newest slab, not carved yet.
    next: usize,
    end: usize,
}

static CLASSES: Mutex<Option<HashMap<usize, Class>>> = Mutex::new(None);

/// A stack of `len` mapped bytes (guard page included, page-aligned), its
/// guard installed on its first page: a freed one, or one carved from a
/// slab (mapping a new slab when the last is used up). Errors speak of the
/// `usable` bytes the thread asked for.
pub(super) fn carve(len: usize, usable: usize) -> Result<*mut u8, StackError> {
    let page = super::page_size();
    let mut classes = CLASSES.lock().unwrap_or_else(|p| p.into_inner());
    let class = classes.get_or_insert_with(HashMap::new).entry(len).or_default();
    if let Some(base) = class.free.pop() {
        return Ok(base as *mut u8);
    }
    if class.next == class.end {
        let per = (SLAB_BYTES / len).max(MIN_PER_SLAB);
        let bytes = per * len;
        let base = super::map_for_stacks(bytes, usable)?;
        class.next = base as usize;
        class.end = base as usize + bytes;
    }
    let base = class.next;
    // SAFETY: the first page of a part of our own slab that nobody uses yet.
    unsafe { guard::install(base as *mut libc::c_void, page) }.map_err(|e| StackError::from_map_failure(usable, e))?;
    class.next += len;
    Ok(base as *mut u8)
}

/// Lets go of a carved stack of `len` mapped bytes at `base`: its pages go
/// back to the kernel, and it waits for the next thread of its size.
///
/// # Safety
/// `base` came from [`carve`] with the same `len`, and nothing runs on it
/// or refers to its memory any more.
pub(super) unsafe fn release(base: *mut u8, len: usize) {
    let page = super::page_size();
    // SAFETY: the caller's contract; above the guard page, which the advice
    // would keep anyway, the stack's pages are dropped and read as zeros
    // when touched again.
    unsafe { libc::madvise(base.add(page).cast(), len - page, libc::MADV_DONTNEED) };
    let mut classes = CLASSES.lock().unwrap_or_else(|p| p.into_inner());
    classes.get_or_insert_with(HashMap::new).entry(len).or_default().free.push(base as usize);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether reading `p` faults (a syscall reading it fails with EFAULT
    /// instead of raising SIGSEGV).
    fn faults(p: *const u8) -> bool {
        let mut fds = [0i32; 2];
        // SAFETY: pipe writes two descriptors; write reads one byte at `p`
        // or fails; both descriptors are closed.
        unsafe {
            assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
            let n = libc::write(fds[1], p.cast(), 1);
            libc::close(fds[0]);
            libc::close(fds[1]);
            n < 0
        }
    }

    #[test]
    fn a_released_stack_is_reused_with_its_guard_and_zeroed_pages() {
        if !guard::guard_regions_supported() {
            return;
        }
        let page = super::super::page_size();
        // A size no other test uses, so that the free list is ours.
        let len = 23 * page;
        let a = carve(len, len).unwrap();
        let b = carve(len, len).unwrap();
        assert_eq!(b as usize - a as usize, len, "neighbours in one slab");
        assert!(faults(a) && faults(b), "each stack's first page is a guard");
        // SAFETY: the page above the guard is the stack's own memory.
        unsafe { a.add(page).write(0xAB) };
        // SAFETY: nothing uses `a` any more.
        unsafe { release(a, len) };
        let again = carve(len, len).unwrap();
        assert_eq!(again, a, "a released stack is the next one carved");
        assert!(faults(again), "the guard survived the release");
        // SAFETY: as above.
        assert_eq!(unsafe { again.add(page).read() }, 0, "the pages went back to the kernel");
    }
}
