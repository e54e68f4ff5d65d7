//! Fixed-size blocks for task cells, cached per OS thread.
//!
//! A spawn+join is little runtime work, so where its one allocation comes
//! from matters: glibc's malloc is a large share of it even when warm
//! (bench/README.md, "Block pool against malloc"), and a burst of 10^5
//! spawns on a worker thread grows a non-main arena 4 KiB fault at a time
//! (`mprotect` plus a page fault per page). Here blocks come in size
//! classes of 64 bytes up to 1 KiB, are carved from 2 MiB chunks that may
//! be backed by transparent huge pages (one fault per chunk), and are
//! recycled through a per-OS-thread cache that trades whole batches with a
//! global list, as Go's mcache does with its mcentral. The cache is touched
//! with preemption disabled, so two green threads of one worker never
//! interleave inside it.
//!
//! Chunks come from [`chunks`](super::chunks), which faults the next one in
//! on a helper thread while the current one is carved.
//!
//! Memory is recycled, never returned to the kernel: a process keeps the
//! blocks of its peak number of live threads (about 320 bytes each for a
//! small closure), as glibc keeps a heap's freed chunks.

use super::chunks::{self, CHUNK};
use crate::preempt::Quiet;
use std::alloc::Layout;
use std::cell::UnsafeCell;
use std::ptr::{self, NonNull};
use std::sync::Mutex;

/// Granularity of the size classes, and the blocks' alignment.
const STEP: usize = 64;
/// Size classes: STEP, 2 × STEP, …, CLASSES × STEP.
const CLASSES: usize = 16;
/// Largest request served from blocks; bigger ones go to the global allocator.
pub(crate) const MAX_BLOCK: usize = STEP * CLASSES;
/// Bytes moved at once between a thread's cache and the global lists.
const BATCH_BYTES: usize = 32 << 10;

/// The class serving `layout`, if any.
#[inline]
fn class_of(layout: Layout) -> Option<usize> {
    (layout.size() <= MAX_BLOCK && layout.align() <= STEP && layout.size() > 0).then(|| (layout.size() - 1) / STEP)
}

#[inline]
fn block_size(class: usize) -> usize {
    (class + 1) * STEP
}

#[inline]
fn batch_len(class: usize) -> usize {
    BATCH_BYTES / block_size(class)
}

/// A free block's first word: the next free block.
struct Free {
    next: *mut Free,
}

/// A singly linked list of free blocks of one class.
#[derive(Clone, Copy)]
struct List {
    head: *mut Free,
    len: usize,
}

impl List {
    const EMPTY: List = List { head: ptr::null_mut(), len: 0 };

    /// # Safety
    /// `block` is a free block of this list's class, owned by the caller.
    #[inline]
    unsafe fn push(&mut self, block: NonNull<u8>) {
        let f = block.as_ptr().cast::<Free>();
        // SAFETY: the block is at least a word, aligned, and ours.
        unsafe { f.write(Free { next: self.head }) };
        self.head = f;
        self.len += 1;
    }

    #[inline]
    fn pop(&mut self) -> Option<NonNull<u8>> {
        let f = NonNull::new(self.head)?;
        // SAFETY: every block on the list was written by `push` or `carve`.
        self.head = unsafe { f.as_ref().next };
        self.len -= 1;
        Some(f.cast())
    }

    /// Detaches the first `n` blocks (n ≤ len) as a list of their own.
    fn split_off_front(&mut self, n: usize) -> List {
        debug_assert!(n > 0 && n <= self.len);
        let head = self.head;
        let mut last = head;
        for _ in 1..n {
            // SAFETY: the list has at least `n` linked blocks.
            last = unsafe { (*last).next };
        }
        // SAFETY: `last` is the n-th block.
        self.head = unsafe { ptr::replace(&mut (*last).next, ptr::null_mut()) };
        self.len -= n;
        List { head, len: n }
    }
}

/// What all threads share: full batches per class, and the chunk being carved.
struct Central {
    batches: [Vec<List>; CLASSES],
    /// Uncarved rest of the newest chunk.
    bump: usize,
    end: usize,
    chunks: usize,
}

// SAFETY: the lists' blocks are plain memory owned by whoever holds the list;
// the Mutex gives that ownership to one thread at a time.
unsafe impl Send for Central {}

static CENTRAL: Mutex<Central> =
    Mutex::new(Central { batches: [const { Vec::new() }; CLASSES], bump: 0, end: 0, chunks: 0 });

impl Central {
    fn lock() -> std::sync::MutexGuard<'static, Central> {
        CENTRAL.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A batch of blocks of `class`: a returned one, or freshly carved.
    fn take_batch(&mut self, class: usize) -> Option<List> {
        if let Some(list) = self.batches[class].pop() {
            return Some(list);
        }
        let size = block_size(class);
        if self.end - self.bump < size {
            self.new_chunk()?;
        }
        let n = batch_len(class).min((self.end - self.bump) / size);
        let mut list = List::EMPTY;
        // Pushed from the back so the thread pops them in address order.
        for i in (0..n).rev() {
            // SAFETY: fresh, in-bounds, STEP-aligned memory of this chunk,
            // carved once.
            unsafe { list.push(NonNull::new_unchecked((self.bump + i * size) as *mut u8)) };
        }
        self.bump += n * size;
        Some(list)
    }

    fn new_chunk(&mut self) -> Option<()> {
        let chunk = chunks::take(self.chunks > 0)?;
        self.chunks += 1;
        self.bump = chunk;
        self.end = chunk + CHUNK;
        Some(())
    }
}

/// One OS thread's free blocks.
struct Cache {
    lists: [List; CLASSES],
}

impl Drop for Cache {
    fn drop(&mut self) {
        let mut central = Central::lock();
        for (class, list) in self.lists.iter_mut().enumerate() {
            if list.len > 0 {
                central.batches[class].push(std::mem::replace(list, List::EMPTY));
            }
        }
    }
}

thread_local! {
    static CACHE: UnsafeCell<Cache> = const { UnsafeCell::new(Cache { lists: [List::EMPTY; CLASSES] }) };
}

/// Allocates a block for `layout`; falls back to the global allocator for
/// what no class serves (large or over-aligned) and when the thread's cache
/// is already gone (thread exit).
pub(crate) fn alloc(layout: Layout) -> NonNull<u8> {
    if let Some(class) = class_of(layout) {
        let _q = Quiet::enter();
        let from_cache = CACHE.try_with(|c| {
            // SAFETY: preemption is off, so no other code of this OS thread
            // runs until the borrow ends, and nothing below re-enters.
            let list = unsafe { &mut (*c.get()).lists[class] };
            if list.len == 0 {
                *list = Central::lock().take_batch(class)?;
            }
            list.pop()
        });
        // Otherwise no chunk could be mapped, or the thread is exiting and
        // its cache is gone: the global allocator serves it.
        if let Ok(Some(block)) = from_cache {
            return block;
        }
    }
    from_global(layout)
}

/// A block from the global allocator. A block of a class is freed into the
/// pool whatever its origin, and may then serve any layout of that class:
/// so a class's block from here has the full class size and alignment.
fn from_global(layout: Layout) -> NonNull<u8> {
    let layout = match class_of(layout) {
        Some(class) => Layout::from_size_align(block_size(class), STEP).unwrap_or(layout),
        None => layout,
    };
    // SAFETY: a task cell's layout is never zero-sized.
    let p = unsafe { std::alloc::alloc(layout) };
    NonNull::new(p).unwrap_or_else(|| std::alloc::handle_alloc_error(layout))
}

/// Frees a block that [`alloc`] gave for the same `layout`.
///
/// # Safety
/// `block` came from `alloc(layout)` and is not used again.
pub(crate) unsafe fn dealloc(block: NonNull<u8>, layout: Layout) {
    let Some(class) = class_of(layout) else {
        // SAFETY: `alloc` used the global allocator for this layout.
        unsafe { std::alloc::dealloc(block.as_ptr(), layout) };
        return;
    };
    let _q = Quiet::enter();
    let cached = CACHE.try_with(|c| {
        // SAFETY: as in `alloc`.
        let list = unsafe { &mut (*c.get()).lists[class] };
        // SAFETY: the caller gives the block up.
        unsafe { list.push(block) };
        let batch = batch_len(class);
        if list.len >= 2 * batch {
            let full = list.split_off_front(batch);
            Central::lock().batches[class].push(full);
        }
    });
    if cached.is_err() {
        let mut single = List::EMPTY;
        // SAFETY: as above.
        unsafe { single.push(block) };
        Central::lock().batches[class].push(single);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_cover_small_layouts_and_leave_the_rest_to_malloc() {
        assert_eq!(class_of(Layout::from_size_align(1, 1).unwrap()), Some(0));
        assert_eq!(class_of(Layout::from_size_align(64, 8).unwrap()), Some(0));
        assert_eq!(class_of(Layout::from_size_align(65, 8).unwrap()), Some(1));
        assert_eq!(class_of(Layout::from_size_align(MAX_BLOCK, 64).unwrap()), Some(CLASSES - 1));
        assert_eq!(class_of(Layout::from_size_align(MAX_BLOCK + 1, 8).unwrap()), None);
        assert_eq!(class_of(Layout::from_size_align(64, 128).unwrap()), None);
    }

    #[test]
    fn a_fallback_block_can_serve_any_layout_of_its_class() {
        // Taken from malloc when no chunk can be mapped, it joins the pool
        // when freed: it must be as large and as aligned as the class.
        let layout = Layout::from_size_align(130, 8).unwrap();
        let block = from_global(layout);
        assert_eq!(block.as_ptr() as usize % STEP, 0);
        // SAFETY: a live malloc'd block.
        assert!(unsafe { libc::malloc_usable_size(block.as_ptr().cast()) } >= block_size(class_of(layout).unwrap()));
        // SAFETY: freed once, as a pool block of its class.
        unsafe { dealloc(block, layout) };
    }

    #[test]
    fn blocks_are_distinct_aligned_and_recycled_across_threads() {
        let layout = Layout::from_size_align(200, 16).unwrap();
        let n = 3 * batch_len(class_of(layout).unwrap()) + 7;
        let blocks: Vec<_> = (0..n).map(|_| alloc(layout)).collect();
        let mut addrs: Vec<usize> = blocks.iter().map(|b| b.as_ptr() as usize).collect();
        for (i, b) in blocks.iter().enumerate() {
            assert_eq!(b.as_ptr() as usize % STEP, 0);
            // SAFETY: our own block, of at least 200 bytes.
            unsafe { b.as_ptr().write_bytes(i as u8, 200) };
        }
        addrs.sort_unstable();
        addrs.dedup();
        assert_eq!(addrs.len(), n, "a block was handed out twice");
        for (i, b) in blocks.iter().enumerate() {
            // SAFETY: as above.
            assert!(unsafe { std::slice::from_raw_parts(b.as_ptr(), 200) }.iter().all(|&x| x == i as u8));
        }
        // Freed on another thread, whose cache goes back to the central
        // lists when it exits; they are then reused rather than carved anew.
        let sent: Vec<usize> = blocks.iter().map(|b| b.as_ptr() as usize).collect();
        std::thread::spawn(move || {
            for a in sent {
                // SAFETY: each block is freed once, with its layout.
                unsafe { dealloc(NonNull::new(a as *mut u8).unwrap(), layout) };
            }
        })
        .join()
        .unwrap();
        let again: Vec<_> =
            std::thread::spawn(move || (0..n).map(|_| alloc(layout).as_ptr() as usize).collect()).join().unwrap();
        let reused = again.iter().filter(|a| addrs.binary_search(a).is_ok()).count();
        println!("{reused} of {n} blocks reused after a cross-thread free");
        assert!(reused >= n - batch_len(class_of(layout).unwrap()), "freed blocks were not recycled");
    }
}
