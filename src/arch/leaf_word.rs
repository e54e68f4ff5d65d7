//! The preemption word's composite accessors for ISAs whose accessors are
//! leaf functions (aarch64, riscv64), built on those leaves; x86_64 has
//! single-instruction versions of its own.

use super::isa::{word_add, word_load, word_store_half, word_swap, worker_load, worker_store};

/// One unit more depth.
#[inline(always)]
pub(crate) unsafe fn word_increment() {
    // SAFETY: forwarded contract of `word_add`.
    unsafe { word_add(1) };
}

/// One unit less depth; the new word, or None when it is all zero.
#[inline(always)]
pub(crate) unsafe fn word_decrement() -> Option<u64> {
    // SAFETY: forwarded contract of `word_add`.
    let word = unsafe { word_add(u64::MAX) };
    (word != 0).then_some(word)
}

/// The accessors' leaf functions, for `preempt_word::code`.
pub(crate) fn word_leaves() -> Vec<usize> {
    vec![
        word_load as *const () as usize,
        word_swap as *const () as usize,
        word_add as *const () as usize,
        word_store_half as *const () as usize,
        worker_load as *const () as usize,
        worker_store as *const () as usize,
    ]
}
