//! Everything that depends on the instruction set lives here, one file per ISA.
//!
//! Each ISA module provides a type implementing the crate-private `Isa`
//! trait; the rest of the crate uses it through the `Current` alias and
//! never writes `cfg(target_arch)`. The public part is the portable helpers
//! below ([`cycles`], [`spin_hint`], [`prefetch_read`], [`prefetch_write`])
//! and the run-time CPU feature report [`features()`].
//!
//! The cooperative switch only has to preserve what the C ABI calls
//! callee-saved: every other register is dead at a call site, so saving it
//! would be wasted work. Callee-saved FP data registers (aarch64's d8–d15,
//! riscv64's fs0–fs11; x86_64 has none) are saved only for threads that may
//! use them, and the FP control state (rounding mode, flush-to-zero) only
//! for threads that change it (`FpSwitch`, `Isa::keeps_fp`).
//!
//! Why the control state can usually be skipped: Rust code always runs with
//! the default FP environment (changing the rounding mode or denormal flags
//! under Rust code is undefined behaviour, which is why `_mm_setcsr` is
//! deprecated), and a cooperative switch is only ever called from Rust. A
//! preemption needs none either: it switches inside the signal handler, and
//! the kernel's `rt_sigreturn` restores the interrupted FP state whole.

mod features;
#[cfg(any(target_arch = "aarch64", target_arch = "riscv64"))]
mod leaf_word;
pub(crate) mod os_thread_area;
pub(crate) mod preempt_word;
mod torture;
pub use features::{ArchFeatures, Feature, Support, features};
pub use torture::register_torture;

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "riscv64")]
mod riscv64;
#[cfg(target_arch = "x86_64")]
mod x86_64;

#[cfg(target_arch = "aarch64")]
pub(crate) use aarch64::Aarch64 as Current;
// The ISA module itself, for its preemption-word leaves (`preempt_word`),
// which are free functions: a trait method cannot be a naked leaf.
#[cfg(target_arch = "aarch64")]
use aarch64 as isa;
#[cfg(target_arch = "riscv64")]
use riscv64 as isa;
#[cfg(target_arch = "riscv64")]
pub(crate) use riscv64::Riscv64 as Current;
#[cfg(target_arch = "x86_64")]
use x86_64 as isa;
#[cfg(target_arch = "x86_64")]
pub(crate) use x86_64::X86_64 as Current;

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "riscv64")))]
compile_error!("preemptive_mlthreading_rust supports x86_64, aarch64 and riscv64 Linux");

/// Which sides of a switch keep FP state ([`Isa::keeps_fp`]): SAVE for the
/// context switched out, RESTORE for the one switched in.
///
/// The outgoing context saves its FP state only when it keeps it. On
/// aarch64 and riscv64 only a context that saved its slot has it loaded
/// back; on x86_64, where a context that keeps nothing leaves the default
/// control state in its slot, the control state is reloaded when either
/// side keeps it, so that a thread that keeps nothing resumes under the
/// default after one that changed it. A thread always saves its own frame
/// the same way, so the two halves never disagree about the frame layout
/// (the slot exists either way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FpSwitch(pub(crate) usize);

impl FpSwitch {
    pub(crate) const SAVE: usize = 1;
    pub(crate) const RESTORE: usize = 2;

    pub(crate) const fn new(save_from: bool, restore_to: bool) -> Self {
        FpSwitch(((save_from as usize) * Self::SAVE) | ((restore_to as usize) * Self::RESTORE))
    }
}

/// Entry point of a fresh context; receives the `arg` given to
/// [`Isa::init_stack`] and must never return.
pub(crate) type Entry = extern "C" fn(arg: usize) -> !;

/// Writes a fresh context's frame, which the switch pops from the saved sp
/// upwards: `bytes` of zeros ending at `top` (zero frame pointer, FP
/// registers and rounding mode: the outermost frame, with the default FP
/// state), then the words that differ, as (offset from the frame's start,
/// value) pairs. Returns the frame's start, the context's saved sp.
///
/// # Safety
/// As [`Isa::init_stack`], with `bytes` in place of `INIT_FRAME_BYTES`, and
/// every offset a multiple of 8 below `bytes`.
unsafe fn write_init_frame(top: *mut u8, bytes: usize, words: &[(usize, usize)]) -> usize {
    debug_assert_eq!(top as usize % 16, 0);
    // SAFETY: the caller gives us `bytes` of writable memory below `top`,
    // and every offset written lies inside it.
    unsafe {
        let frame = top.sub(bytes);
        frame.write_bytes(0, bytes);
        for &(offset, value) in words {
            debug_assert!(offset % 8 == 0 && offset < bytes);
            frame.add(offset).cast::<usize>().write(value);
        }
        frame as usize
    }
}

/// What every ISA module implements.
pub(crate) trait Isa {
    /// The ISA's name as Rust spells `target_arch`.
    const NAME: &'static str;

    /// Bytes [`Isa::init_stack`] writes below the top of the stack.
    const INIT_FRAME_BYTES: usize;

    /// Lays out a frame at the top of a fresh stack so that the first
    /// [`Isa::switch`] to the returned stack pointer calls `entry(arg)` with
    /// an ABI-aligned stack and default floating-point control state.
    ///
    /// # Safety
    /// `top` must be the 16-byte aligned, exclusive upper end of writable
    /// memory at least [`Isa::INIT_FRAME_BYTES`] long, not in use by anyone.
    unsafe fn init_stack(top: *mut u8, entry: Entry, arg: usize) -> usize;

    /// Saves the callee-saved state of the running context on its stack,
    /// stores its stack pointer in `*save_sp`, and resumes the context whose
    /// stack pointer is `load_sp`, handing it `pass`. Returns when something
    /// switches back to the saved context, with the `pass` of that switch
    /// (the runtime passes the worker, so a resumed thread knows which OS
    /// thread it is on without a thread-local lookup). A fresh context
    /// started by `init_stack`'s entry does not receive it.
    ///
    /// # Safety
    /// - `save_sp` is valid for a write, and the running context's stack
    ///   stays mapped, and untouched by anyone else, until a switch resumes
    ///   it from the value stored there.
    /// - `load_sp` comes from [`Isa::init_stack`] or from a previous
    ///   `switch` that stored it, is not running on any OS thread, and is
    ///   not resumed a second time.
    /// - `fp`'s RESTORE half matches how that context saved its own FP slot
    ///   (the SAVE half of the switch that stored `load_sp`; a fresh frame
    ///   counts as saved): on aarch64 and riscv64 a slot that was never
    ///   written would be loaded into its callee-saved FP registers and
    ///   rounding mode. A context keeps its FP state across the switch only
    ///   if `fp`'s SAVE half is set.
    unsafe fn switch(save_sp: *mut usize, load_sp: usize, fp: FpSwitch, pass: usize) -> usize;

    /// Whether a thread's switch must save FP state, for a thread that
    /// `uses_fp` (FP or vector registers: `enable_fpu`/`enable_vector`) and
    /// `keeps_env` (changes the FP control state and must find it again:
    /// `preserve_fp_env`).
    fn keeps_fp(uses_fp: bool, keeps_env: bool) -> bool;

    /// The interrupted stack pointer in a signal handler's context: where
    /// the code stood when the kernel tried to deliver a signal, which the
    /// overflow report needs when the kernel could not write the signal's
    /// frame there.
    ///
    /// # Safety
    /// `ctx` must be the third argument the kernel passed to an
    /// `SA_SIGINFO` handler.
    unsafe fn signal_sp(ctx: *const libc::c_void) -> usize;

    /// See [`register_torture`]: fills every register with values derived
    /// from `seed`, loops `iterations` times, returns the mismatch count.
    fn torture(seed: u64, iterations: u64) -> u64;

    /// Run-time checks of the optional features [`features()`] reports.
    fn features() -> Vec<Feature>;

    /// A cheap, monotonic-per-CPU cycle or tick counter.
    fn cycles() -> u64;

    /// Hint for a spin-wait loop.
    fn spin_hint();

    /// Prefetches the cache line at `p` for reading; never faults.
    fn prefetch_read(p: *const u8);

    /// Prefetches the cache line at `p` for writing; never faults.
    fn prefetch_write(p: *const u8);

    /// The FP control state, when it differs from the default and the ISA
    /// can tell at a switch: for the debug check of threads that keep none
    /// ([`Isa::keeps_fp`]). Only where a signal handler starts from the
    /// default state too (x86_64: the kernel gives it a fresh FP state), so
    /// that a preemption of C code that legitimately changed it is not
    /// taken for a broken promise; None elsewhere.
    #[cfg(debug_assertions)]
    fn fp_env_changed() -> Option<u64> {
        None
    }

    /// Puts the FP control state back to the default (round to nearest,
    /// no flush-to-zero, exceptions masked).
    fn reset_fp_env();
}

/// See [`Isa::fp_env_changed`].
#[cfg(debug_assertions)]
#[inline]
pub(crate) fn fp_env_changed() -> Option<u64> {
    Current::fp_env_changed()
}

/// See [`Isa::reset_fp_env`].
#[inline]
pub(crate) fn reset_fp_env() {
    Current::reset_fp_env()
}

/// See [`Isa::keeps_fp`].
#[inline]
pub(crate) fn keeps_fp(uses_fp: bool, keeps_env: bool) -> bool {
    Current::keeps_fp(uses_fp, keeps_env)
}

/// The stack pointer a signal interrupted; see [`Isa::signal_sp`].
///
/// # Safety
/// As [`Isa::signal_sp`].
#[inline]
pub(crate) unsafe fn signal_sp(ctx: *const libc::c_void) -> usize {
    // SAFETY: forwarded contract.
    unsafe { Current::signal_sp(ctx) }
}

/// Reads the cycle counter of this CPU (TSC on x86_64, `cntvct_el0` on
/// aarch64, `rdtime` on riscv64 — the latter two tick at a fixed timebase,
/// not at the core clock).
///
/// ```
/// let a = preemptive_mlthreading_rust::arch::cycles();
/// let b = preemptive_mlthreading_rust::arch::cycles();
/// assert!(b >= a);
/// ```
#[inline]
pub fn cycles() -> u64 {
    Current::cycles()
}

/// Tells the CPU the caller is in a spin-wait loop.
#[inline]
pub fn spin_hint() {
    Current::spin_hint()
}

/// Prefetches the cache line holding `p` for reading. Never faults, even on
/// an invalid address.
///
/// ```
/// let data = [1u64; 64];
/// preemptive_mlthreading_rust::arch::prefetch_read(&data[32]);
/// assert_eq!(data[32], 1);
/// ```
#[inline]
pub fn prefetch_read<T: ?Sized>(p: *const T) {
    Current::prefetch_read(p.cast())
}

/// Prefetches the cache line holding `p` for writing. Never faults.
#[inline]
pub fn prefetch_write<T: ?Sized>(p: *const T) {
    Current::prefetch_write(p.cast())
}

#[cfg(test)]
mod tests;
