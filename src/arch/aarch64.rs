//! AArch64 AAPCS64: callee-saved x19–x29, the link register, and the low
//! halves of v8–v15 (d8–d15), plus FPCR.
//!
//! A suspended context's frame, from its saved sp upwards (176 bytes, a
//! multiple of 16 because sp must stay 16-byte aligned whenever it is used
//! as a base register):
//!
//! ```text
//!   0  x19 x20      48  x25 x26      96  d8  d9      144  d14 d15
//!  16  x21 x22      64  x27 x28     112  d10 d11     160  fpcr
//!  32  x23 x24      80  x29 x30     128  d12 d13     168  (pad)
//! ```
//!
//! The FP half always takes its room, so a frame means the same thing
//! whether or not its owner filled it in.

use super::{Entry, Feature, FpSwitch, Isa, Support};
use core::arch::{asm, naked_asm};

pub(crate) struct Aarch64;

const FRAME_BYTES: usize = 176;
const FRAME_X19: usize = 0;
const FRAME_X20: usize = 8;
const FRAME_X30: usize = 88;
const FRAME_D8: usize = 96;
const FRAME_FPCR: usize = 160;

impl Isa for Aarch64 {
    const NAME: &'static str = "aarch64";

    const INIT_FRAME_BYTES: usize = FRAME_BYTES;

    unsafe fn init_stack(top: *mut u8, entry: Entry, arg: usize) -> usize {
        // Zero x29 ends frame-pointer walks at the trampoline; zero d8–d15
        // and FPCR are the state a fresh thread is owed (round to nearest,
        // no flush-to-zero, no default NaN). The switch's `ret` lands on
        // the trampoline.
        let words =
            [(FRAME_X19, entry as *const () as usize), (FRAME_X20, arg), (FRAME_X30, trampoline as *const () as usize)];
        // SAFETY: forwarded contract; the offsets lie inside the frame.
        unsafe { super::write_init_frame(top, FRAME_BYTES, &words) }
    }

    #[inline(always)]
    unsafe fn switch(save_sp: *mut usize, load_sp: usize, fp: FpSwitch, pass: usize) -> usize {
        // SAFETY: forwarded contract.
        unsafe { switch_context(save_sp, load_sp, fp.0, pass) }
    }

    /// The FP slot holds the callee-saved FP registers as well as the
    /// control state, so a thread that uses FP keeps it whole, and only a
    /// thread that saved the slot may have it read back; a thread that
    /// uses no FP may inherit any control state.
    fn keeps_fp(uses_fp: bool, keeps_env: bool) -> bool {
        uses_fp || keeps_env
    }

    fn reset_fp_env() {
        // SAFETY: FPCR 0 is the reset state (round to nearest, no flush to
        // zero, exceptions untrapped); nothing else changes.
        unsafe { asm!("msr fpcr, xzr", options(nomem, nostack, preserves_flags)) };
    }

    unsafe fn signal_sp(ctx: *const libc::c_void) -> usize {
        // SAFETY: the caller passes the kernel's ucontext_t.
        unsafe { (*ctx.cast::<libc::ucontext_t>()).uc_mcontext.sp as usize }
    }

    fn torture(seed: u64, iterations: u64) -> u64 {
        let mismatches: u64;
        // SAFETY: the asm saves x19–x29 (x19 and x29 are reserved by LLVM
        // and cannot be operands; x20–x28 are callee-saved) in a 96-byte,
        // 16-byte aligned frame it carves below sp and restores them before
        // leaving, with sp back where it found it. Every other register it
        // writes (x0–x17, x30, v0–v31, NZCV) is an operand or declared
        // clobbered. x18, the platform register, is never touched. The only
        // memory it touches is its own stack space.
        unsafe {
            asm!(
                "sub sp, sp, #96",
                "stp x19, x20, [sp, #0]",
                "stp x21, x22, [sp, #16]",
                "stp x23, x24, [sp, #32]",
                "stp x25, x26, [sp, #48]",
                "stp x27, x28, [sp, #64]",
                "str x29, [sp, #80]",
                // v_k = (seed + 100 + k, !(seed + 100 + k)) as (low, high).
                "add x2, x0, #100",
                ".irp k, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31",
                "fmov d\\k, x2",
                "mvn x3, x2",
                "mov v\\k\\().d[1], x3",
                "add x2, x2, #1",
                ".endr",
                // Flags: N=1 Z=0 C=1 V=0.
                "mov x2, #0xa0000000",
                "msr nzcv, x2",
                // x_k = seed + k; x0 = seed is the base, x1 the loop counter.
                ".irp k, 2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,19,20,21,22,23,24,25,26,27,28,29,30",
                "add x\\k, x0, #\\k",
                ".endr",
                // Neither `sub` nor `cbnz` touches the flags.
                "2:",
                "sub x1, x1, #1",
                "cbnz x1, 2b",
                // Park x1/x2 to get scratch for the flags check without
                // disturbing NZCV (stp/mrs leave it alone).
                "stp x1, x2, [sp, #-16]!",
                "mrs x1, nzcv",
                "mov x2, #0xa0000000",
                "cmp x1, x2",
                "cset x1, ne",
                // From here x1 counts mismatches. The loop counter must be 0.
                "ldr x2, [sp, #0]",
                "cmp x2, #0",
                "cinc x1, x1, ne",
                "ldr x2, [sp, #8]",
                "add sp, sp, #16",
                // x_k - seed must be k.
                ".irp k, 2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,19,20,21,22,23,24,25,26,27,28,29,30",
                "sub x\\k, x\\k, x0",
                "cmp x\\k, #\\k",
                "cinc x1, x1, ne",
                ".endr",
                "add x3, x0, #100",
                ".irp k, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31",
                "fmov x2, d\\k",
                "cmp x2, x3",
                "cinc x1, x1, ne",
                "mov x2, v\\k\\().d[1]",
                "mvn x2, x2",
                "cmp x2, x3",
                "cinc x1, x1, ne",
                "add x3, x3, #1",
                ".endr",
                "ldp x19, x20, [sp, #0]",
                "ldp x21, x22, [sp, #16]",
                "ldp x23, x24, [sp, #32]",
                "ldp x25, x26, [sp, #48]",
                "ldp x27, x28, [sp, #64]",
                "ldr x29, [sp, #80]",
                "add sp, sp, #96",
                inout("x0") seed => _,
                inout("x1") iterations => mismatches,
                out("x2") _, out("x3") _, out("x4") _, out("x5") _,
                out("x6") _, out("x7") _, out("x8") _, out("x9") _,
                out("x10") _, out("x11") _, out("x12") _, out("x13") _,
                out("x14") _, out("x15") _, out("x16") _, out("x17") _,
                out("x30") _,
                out("v0") _, out("v1") _, out("v2") _, out("v3") _,
                out("v4") _, out("v5") _, out("v6") _, out("v7") _,
                out("v8") _, out("v9") _, out("v10") _, out("v11") _,
                out("v12") _, out("v13") _, out("v14") _, out("v15") _,
                out("v16") _, out("v17") _, out("v18") _, out("v19") _,
                out("v20") _, out("v21") _, out("v22") _, out("v23") _,
                out("v24") _, out("v25") _, out("v26") _, out("v27") _,
                out("v28") _, out("v29") _, out("v30") _, out("v31") _,
            );
        }
        mismatches
    }

    fn features() -> Vec<Feature> {
        // std reads AT_HWCAP: what the kernel lets this process use.
        vec![
            Feature { name: "NEON", support: Support::from_bool(std::arch::is_aarch64_feature_detected!("neon")) },
            Feature { name: "SVE", support: Support::from_bool(std::arch::is_aarch64_feature_detected!("sve")) },
        ]
    }

    #[inline(always)]
    fn cycles() -> u64 {
        let ticks: u64;
        // SAFETY: Linux lets EL0 read the virtual counter (CNTKCTL_EL1.EL0VCTEN)
        // and the read has no side effects. It ticks at CNTFRQ_EL0, usually
        // far slower than the core clock, which is all the trait promises.
        unsafe { asm!("mrs {}, cntvct_el0", out(reg) ticks, options(nomem, nostack, preserves_flags)) };
        ticks
    }

    #[inline(always)]
    fn spin_hint() {
        core::hint::spin_loop()
    }

    #[inline(always)]
    fn prefetch_read(p: *const u8) {
        // SAFETY: prfm is a hint; it never faults, whatever the address.
        unsafe { asm!("prfm pldl1keep, [{}]", in(reg) p, options(nostack, readonly, preserves_flags)) }
    }

    #[inline(always)]
    fn prefetch_write(p: *const u8) {
        // SAFETY: as above; pst only asks for the line in a writable state.
        unsafe { asm!("prfm pstl1keep, [{}]", in(reg) p, options(nostack, readonly, preserves_flags)) }
    }
}

/// x0 = where to store the old sp, x1 = sp to load, x2 = FpSwitch bits,
/// x3 = the value handed to the resumed context (returned in x0).
///
/// Only the callee-saved registers are kept: the caller already treats
/// everything else as clobbered by a call. FPCR is written only when it
/// differs, because an FPCR write is self-synchronising on many cores and
/// costs more than the rest of the switch; it is read once (the outgoing
/// context's saved copy serves as the current value).
///
/// # Safety
/// As [`Isa::switch`], its only caller. Being naked, it relies on the
/// AAPCS64 call it is entered by: the arguments in the registers above,
/// the return address in x30.
#[unsafe(naked)]
unsafe extern "C" fn switch_context(_save_sp: *mut usize, _load_sp: usize, _fp: usize, _pass: usize) -> usize {
    naked_asm!(
        "sub sp, sp, #{frame}",
        "stp x19, x20, [sp, #0]",
        "stp x21, x22, [sp, #16]",
        "stp x23, x24, [sp, #32]",
        "stp x25, x26, [sp, #48]",
        "stp x27, x28, [sp, #64]",
        "stp x29, x30, [sp, #80]",
        "tbz x2, #{save}, 2f",
        "stp d8, d9, [sp, #{d8}]",
        "stp d10, d11, [sp, #{d8} + 16]",
        "stp d12, d13, [sp, #{d8} + 32]",
        "stp d14, d15, [sp, #{d8} + 48]",
        "mrs x10, fpcr",
        "str x10, [sp, #{fpcr}]",
        "2:",
        "mov x9, sp",
        "str x9, [x0]",
        "mov sp, x1",
        "tbz x2, #{restore}, 3f",
        "ldp d8, d9, [sp, #{d8}]",
        "ldp d10, d11, [sp, #{d8} + 16]",
        "ldp d12, d13, [sp, #{d8} + 32]",
        "ldp d14, d15, [sp, #{d8} + 48]",
        "ldr x9, [sp, #{fpcr}]",
        // x10 holds the current FPCR if the outgoing context saved it.
        "tbnz x2, #{save}, 4f",
        "mrs x10, fpcr",
        "4:",
        "cmp x9, x10",
        "b.eq 3f",
        "msr fpcr, x9",
        "3:",
        "ldp x19, x20, [sp, #0]",
        "ldp x21, x22, [sp, #16]",
        "ldp x23, x24, [sp, #32]",
        "ldp x25, x26, [sp, #48]",
        "ldp x27, x28, [sp, #64]",
        "ldp x29, x30, [sp, #80]",
        "mov x0, x3",
        "add sp, sp, #{frame}",
        "ret",
        frame = const FRAME_BYTES,
        d8 = const FRAME_D8,
        fpcr = const FRAME_FPCR,
        save = const FpSwitch::SAVE.trailing_zeros(),
        restore = const FpSwitch::RESTORE.trailing_zeros(),
    )
}

/// First code a fresh context runs: `entry(arg)` from x19/x20, with sp at
/// the 16-byte aligned top of the stack.
///
/// It jumps rather than calls so that `entry` starts with lr = 0 and
/// x29 = 0, the AAPCS64 marker for the outermost frame: unwinders and
/// profilers stop there instead of walking into the old stack's garbage.
/// The jump goes through x16 because a BTI-guarded `entry` only accepts
/// `br` from x16/x17 at its `bti c` landing pad. `entry` never returns; if
/// it did, it would fault at address 0.
///
/// # Safety
/// Never called from Rust: it is only reached by the `ret` of the first
/// [`switch_context`] into a frame [`Isa::init_stack`] built, which is
/// what puts `entry` in x19 and `arg` in x20. Reached any other way, it
/// jumps to whatever x19 holds.
#[unsafe(naked)]
unsafe extern "C" fn trampoline() {
    naked_asm!("mov x0, x20", "mov x16, x19", "mov x30, xzr", "br x16")
}

// The preemption word's four leaves (see `arch::preempt_word`). The offset
// from TPIDR_EL0 comes from the GOT (initial-exec model); the thread
// address lives in x8 only until the leaf returns.

/// This OS thread's word's address into x8 (x9 clobbered).
macro_rules! word_address {
    () => {
        "adrp x8, :gottprel:__pmt_preempt_word_v1
        ldr x8, [x8, :gottprel_lo12:__pmt_preempt_word_v1]
        mrs x9, tpidr_el0
        add x8, x8, x9"
    };
}

/// # Safety
/// No precondition: it reads the calling OS thread's own word, which every
/// thread of the process has (static TLS). Like the other leaves, it
/// clobbers only caller-saved registers (x8–x11), as any call may.
/// [`preempt_word`](super::preempt_word) wraps the leaves in safe functions.
#[unsafe(naked)]
pub(super) unsafe extern "C" fn word_load() -> u64 {
    naked_asm!(word_address!(), "ldr x0, [x8]", "ret",)
}

/// x0 = new word. The read-modify-writes are exclusive-monitor loops: a
/// preemption signal may land between the load and the store (it may set
/// the pending half), and the exception return clears the monitor, so the
/// store fails and the loop reads again instead of overwriting it.
///
/// # Safety
/// No precondition (see [`word_load`]).
#[unsafe(naked)]
pub(super) unsafe extern "C" fn word_swap(_word: u64) -> u64 {
    naked_asm!(word_address!(), "1:", "ldxr x9, [x8]", "stxr w10, x0, [x8]", "cbnz w10, 1b", "mov x0, x9", "ret",)
}

/// x0 = delta; see `word_swap`.
///
/// # Safety
/// No precondition (see [`word_load`]).
#[unsafe(naked)]
pub(super) unsafe extern "C" fn word_add(_delta: u64) -> u64 {
    naked_asm!(
        word_address!(),
        "mov x11, x0",
        "1:",
        "ldxr x9, [x8]",
        "add x0, x9, x11",
        "stxr w10, x0, [x8]",
        "cbnz w10, 1b",
        "ret",
    )
}

/// x0 = half (0 or 1), w1 = value.
///
/// # Safety
/// `half` is 0 or 1: any other value writes past the word, into the worker
/// slot and then past the 16 bytes the symbol defines.
#[unsafe(naked)]
pub(super) unsafe extern "C" fn word_store_half(_half: usize, _value: u32) {
    naked_asm!(word_address!(), "str w1, [x8, x0, lsl #2]", "ret",)
}

/// The worker slot, 8 bytes past the word.
///
/// # Safety
/// No precondition (see [`word_load`]).
#[unsafe(naked)]
pub(super) unsafe extern "C" fn worker_load() -> usize {
    naked_asm!(word_address!(), "ldr x0, [x8, #8]", "ret",)
}

/// x0 = worker.
///
/// # Safety
/// No precondition of its own, but `Worker::current` dereferences what it
/// stores: 0, or a worker that this OS thread owns while it stays there.
#[unsafe(naked)]
pub(super) unsafe extern "C" fn worker_store(_worker: usize) {
    naked_asm!(word_address!(), "str x0, [x8, #8]", "ret",)
}

pub(super) use super::leaf_word::{word_decrement, word_increment};
