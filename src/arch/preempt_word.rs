//! The calling OS thread's preemption word: two 32-bit slots (the
//! preempt-disable depth and the pending-preemption flag) in static TLS,
//! reached only through four accessors per ISA, written in assembly: on
//! x86_64 single FS-relative instructions inlined where they are used,
//! elsewhere leaf functions.
//!
//! Why not a `thread_local!`: its address is computed on one OS thread and
//! kept in a register (or, in unoptimised builds, passed through `core`
//! helpers such as `Option::ok_or`) before the access. A green thread that
//! switches cooperatively inside a preempt-disable scope may resume on
//! another host of its worker, and would then end the scope on the first
//! OS thread's depth: one host's depth underflows, the other's never drops
//! back to zero. Here the address exists only inside a leaf function
//! (which never switches), so it cannot outlive the OS thread it was
//! computed on; on x86_64 no address exists at all (every access is
//! relative to FS, which the kernel switches with the OS thread), and the
//! accessors are single inlined instructions, cheaper than a
//! `thread_local!` access.
//!
//! The word is defined once, in assembly, in the initial-exec model: one
//! GOT load of its offset from the thread pointer, valid in executables and
//! in shared libraries loaded at start-up.

/// The word's two halves (all three ISAs are little-endian): the
/// preempt-disable depth in the low 32 bits, the pending-preemption flag
/// (0, or 1 for a cooperative and 2 for an involuntary one) in the high 32.
pub(crate) const DEPTH: usize = 0;
/// Index of the pending flag's half, for [`store_half`].
pub(crate) const PENDING: usize = 1;

/// The depth half of a word.
#[inline]
pub(crate) fn depth_of(word: u64) -> u32 {
    word as u32
}

/// The pending half of a word.
#[inline]
pub(crate) fn pending_of(word: u64) -> bool {
    word >> 32 != 0
}

core::arch::global_asm!(
    ".pushsection .tbss,\"awT\",%nobits",
    ".p2align 3",
    ".globl __pmt_preempt_word_v1",
    ".hidden __pmt_preempt_word_v1",
    ".type __pmt_preempt_word_v1,%object",
    ".size __pmt_preempt_word_v1,16",
    "__pmt_preempt_word_v1:",
    ".zero 16",
    ".popsection",
);

use super::isa;

/// Reads this OS thread's word.
#[inline]
pub(crate) fn load() -> u64 {
    // SAFETY: every leaf touches only this OS thread's own word, at the
    // offset the linker resolved for it.
    unsafe { isa::word_load() }
}

/// Replaces this OS thread's word, returning the old one.
#[inline]
pub(crate) fn swap(word: u64) -> u64 {
    // SAFETY: as in `load`.
    unsafe { isa::word_swap(word) }
}

/// Adds one to the depth.
#[inline]
pub(crate) fn increment() {
    // SAFETY: as in `load`.
    unsafe { isa::word_increment() }
}

/// Subtracts one from the depth: None when the word is then all zero
/// (depth 0, nothing pending: nothing to do), else the new word.
/// Subtracting from depth 0 borrows from the pending half and leaves the
/// depth at `u32::MAX`, which callers check.
#[inline]
pub(crate) fn decrement() -> Option<u64> {
    // SAFETY: as in `load`.
    unsafe { isa::word_decrement() }
}

/// Writes one half ([`DEPTH`] or [`PENDING`]) of this OS thread's word.
#[inline]
pub(crate) fn store_half(half: usize, value: u32) {
    assert!(half <= PENDING, "the word has two halves");
    // SAFETY: as in `load`; `half` is 0 or 1, so the store stays in the word.
    unsafe { isa::word_store_half(half, value) }
}

/// The worker running on this OS thread, as an address (0: none). It lives
/// in the same static-TLS block, just after the word, for the same reason:
/// a green thread resumed on another worker must read that worker, never an
/// address computed before the switch. On x86_64 the read is one inlined
/// FS-relative load, where a `thread_local!` needed a call that could not
/// be inlined.
#[inline]
pub(crate) fn worker() -> usize {
    // SAFETY: as in `load`.
    unsafe { isa::worker_load() }
}

/// Sets this OS thread's worker (0: none).
#[inline]
pub(crate) fn set_worker(worker: usize) {
    // SAFETY: as in `load`; writes only this OS thread's slot.
    unsafe { isa::worker_store(worker) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_are_per_os_thread_and_independent() {
        let saved = load();
        swap(41);
        increment();
        assert_eq!(load(), 42);
        assert_eq!(decrement(), Some(41));
        store_half(PENDING, 1);
        assert_eq!(depth_of(load()), 41, "the pending half does not touch the depth");
        assert!(pending_of(load()));
        store_half(DEPTH, 3);
        assert_eq!(load(), 1 << 32 | 3);
        assert_eq!(swap(1), 1 << 32 | 3);
        assert_eq!(decrement(), None, "depth 0 and nothing pending: all clear");
        store_half(PENDING, 1);
        increment();
        assert_eq!(decrement(), Some(1 << 32), "depth 0 with a preemption pending");
        swap(0);
        assert_eq!(decrement().map(depth_of), Some(u32::MAX), "an underflow shows in the depth half");
        std::thread::spawn(|| {
            assert_eq!(load(), 0, "a new OS thread starts at zero");
            swap(7);
        })
        .join()
        .unwrap();
        assert_eq!(load(), u64::MAX, "another thread's word is its own");
        swap(saved);
    }

    #[test]
    fn the_worker_slot_is_per_os_thread_and_apart_from_the_word() {
        let (word, slot) = (load(), worker());
        set_worker(0x1234_5678);
        assert_eq!(worker(), 0x1234_5678);
        assert_eq!(load(), word, "the slot does not overlap the word");
        swap(5);
        assert_eq!(worker(), 0x1234_5678, "the word does not overlap the slot");
        std::thread::spawn(|| assert_eq!(worker(), 0, "a new OS thread has no worker")).join().unwrap();
        swap(word);
        set_worker(slot);
    }
}
