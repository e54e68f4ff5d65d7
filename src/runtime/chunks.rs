//! Where the block pool's 2 MiB chunks come from: anonymous mappings
//! aligned to their size, so that transparent huge pages can back them,
//! and, from the second chunk on, faulted in ahead of need by a helper
//! thread.
//!
//! Why ahead: the first touch of a huge page makes the kernel zero all of
//! it inside the page fault. On the VMs this crate is measured on, that
//! zeroing is sometimes slow: they report free 2 MiB blocks to the host
//! (virtio-balloon free page reporting, order 9), which must back them
//! again when they are reused. A burst of spawns then spent much of its
//! time there (bench/README.md, "Huge-page zeroing in spawn bursts").
//! The helper (`pmt-chunks`, one OS thread per process, started by the
//! second chunk) maps and faults in the next chunk while the current one
//! is carved, so that work runs beside the spawning thread, not in it. The
//! cost is one extra chunk held ready, and the helper's stack.

use super::futex;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

/// The chunk size, and its alignment.
pub(super) const CHUNK: usize = 2 << 20;

/// A chunk the helper has faulted in (its address), or 0.
static READY: AtomicUsize = AtomicUsize::new(0);
/// 1 when the helper should prepare a chunk; its futex word.
static WANTED: AtomicU32 = AtomicU32::new(0);
static HELPER_STARTED: AtomicBool = AtomicBool::new(false);

/// A fresh chunk: on small pages when `huge` is false (the first chunk, so
/// that a program with a few threads does not hold a 2 MiB page for them),
/// else advised for huge pages and, when the helper was quick enough,
/// already faulted in. None when the kernel refuses the mapping.
pub(super) fn take(huge: bool) -> Option<usize> {
    if !huge {
        return map(false);
    }
    let ready = READY.swap(0, Ordering::AcqRel);
    want_one();
    if ready != 0 { Some(ready) } else { map(true) }
}

/// Asks the helper for the next chunk, starting it the first time.
fn want_one() {
    WANTED.store(1, Ordering::Release);
    if !HELPER_STARTED.swap(true, Ordering::AcqRel) {
        let started = std::thread::Builder::new().name("pmt-chunks".into()).stack_size(64 << 10).spawn(helper);
        if let Err(e) = started {
            // Chunks are then faulted in by whoever carves them, as before.
            log::warn!("block pool: no helper thread to fault chunks in ahead ({e})");
        }
        return;
    }
    futex::wake_one(&WANTED);
}

/// The helper's loop: waits until a chunk is wanted and none is ready,
/// then maps and faults one in.
fn helper() {
    loop {
        while WANTED.swap(0, Ordering::AcqRel) == 0 {
            futex::wait(&WANTED, 0, None);
        }
        if READY.load(Ordering::Acquire) != 0 {
            continue;
        }
        let Some(chunk) = map(true) else { continue };
        fault_in(chunk);
        // The slot is still empty: only this thread fills it, and `take`
        // only empties it.
        READY.store(chunk, Ordering::Release);
    }
}

/// Makes the kernel back `chunk` now: MADV_POPULATE_WRITE (Linux 5.14),
/// else a write per page (with huge pages, the first write faults in the
/// whole 2 MiB). Writing zeros keeps the memory as a fresh mapping's.
fn fault_in(chunk: usize) {
    // SAFETY: advice on a mapping this module owns, not yet handed out.
    if unsafe { libc::madvise(chunk as *mut libc::c_void, CHUNK, libc::MADV_POPULATE_WRITE) } == 0 {
        return;
    }
    for page in (chunk..chunk + CHUNK).step_by(4096) {
        // SAFETY: inside the writable mapping, which nobody else uses yet.
        unsafe { ptr::write_volatile(page as *mut u8, 0) };
    }
}

/// Maps a CHUNK-aligned chunk: over-maps by a chunk and trims.
fn map(huge: bool) -> Option<usize> {
    // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            2 * CHUNK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return None;
    }
    let start = p as usize;
    let aligned = (start + CHUNK - 1) & !(CHUNK - 1);
    // SAFETY: both ranges lie in the mapping just made and are not used.
    unsafe {
        if aligned > start {
            libc::munmap(p, aligned - start);
        }
        let tail = start + 2 * CHUNK - (aligned + CHUNK);
        if tail > 0 {
            libc::munmap((aligned + CHUNK) as *mut libc::c_void, tail);
        }
    }
    if huge {
        // Where THP is off the advice fails, harmlessly.
        // SAFETY: advice on our own mapping.
        unsafe { libc::madvise(aligned as *mut libc::c_void, CHUNK, libc::MADV_HUGEPAGE) };
    }
    Some(aligned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_aligned_writable_and_distinct() {
        let first = take(false).expect("a small-page chunk");
        let mut huge: Vec<usize> = (0..3).map(|_| take(true).expect("a huge-page chunk")).collect();
        huge.push(first);
        for &c in &huge {
            assert_eq!(c % CHUNK, 0, "chunk {c:#x} is not 2 MiB aligned");
            // SAFETY: each chunk is ours, writable and CHUNK long.
            unsafe {
                ptr::write_volatile((c + CHUNK - 1) as *mut u8, 7);
                assert_eq!(ptr::read_volatile(c as *const u8), 0, "a fresh chunk reads as zeros");
            }
        }
        huge.sort();
        huge.dedup();
        assert_eq!(huge.len(), 4, "a chunk was handed out twice");
        // SAFETY: the test's own chunks, no longer used.
        huge.into_iter().for_each(|c| unsafe {
            libc::munmap(c as *mut libc::c_void, CHUNK);
        });
    }
}
