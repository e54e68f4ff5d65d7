//! The preemption word's composite accessors for ISAs whose accessors are
//! leaf functions (aarch64, riscv64), built on those leaves; x86_64 has
//! single-instruction versions of its own.

use super::isa::word_add;

/// One unit more depth.
///
/// # Safety
/// No precondition (see `word_add`).
#[inline(always)]
pub(crate) unsafe fn word_increment() {
    // SAFETY: forwarded contract of `word_add`.
    unsafe { word_add(1) };
}

/// One unit less depth; the new word, or None when it is all zero.
///
/// # Safety
/// No precondition (see `word_add`).
#[inline(always)]
pub(crate) unsafe fn word_decrement() -> Option<u64> {
    // SAFETY: forwarded contract of `word_add`.
    let word = unsafe { word_add(u64::MAX) };
    (word != 0).then_some(word)
}
