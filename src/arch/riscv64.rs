//! RISC-V 64 (RV64GC, LP64D ABI): callee-saved ra, s0–s11, and, for threads
//! that may use floating point, fs0–fs11 plus the rounding mode (`frm`).
//!
//! What the cooperative switch keeps, and why:
//! - `ra` and `s0`–`s11`: the integer registers the psABI makes callee-saved
//!   (`sp` is the switch itself). The caller treats `t0`–`t6` and `a0`–`a7`
//!   as clobbered by a call, so saving them would be wasted work; `gp` and
//!   `tp` are fixed for the whole process and OS thread respectively (a
//!   green thread resumes on whichever worker runs it, and must see *that*
//!   worker's `tp`), so they are never saved.
//! - `fs0`–`fs11`: only the low 64 bits exist with the D extension, and those
//!   are callee-saved; `ft*`/`fa*` are caller-saved.
//! - `frm`, the dynamic rounding mode in `fcsr` bits 7:5: the ABI gives it
//!   thread storage duration. The accrued exception flags (`fflags`, bits
//!   4:0) are sticky status, not control, and are left alone, as FPSR is on
//!   aarch64. `frm` is written only when it differs from the running value,
//!   because a CSR write may serialise the pipeline.
//! - The vector extension's registers are all caller-saved by the ABI (and
//!   the `riscv64gc` target does not use them); `vcsr`/`vl`/`vtype` are
//!   undefined across calls. Preemption needs none of this: it happens
//!   inside the signal handler, and the kernel's signal frame and
//!   `rt_sigreturn` keep every register, f0–f31, the whole `fcsr` and, on
//!   cores that have it, the V state.
//!
//! A suspended context's frame, from its saved sp upwards (208 bytes, a
//! multiple of 16 as the psABI requires of sp):
//!
//! ```text
//!   0  ra        8 + 8k  s_k (k = 0..11)     104 + 8k  fs_k (k = 0..11)
//! 200  frm (zero-extended)
//! ```
//!
//! The FP half always takes its room, so a frame means the same thing
//! whether or not its owner filled it in.
//!
//! Assembly that names FP registers enables the D extension itself with
//! `.option arch, +d` inside `.option push`/`.option pop`, and atomics the
//! A extension with `+a`: naked functions and inline asm are assembled
//! without the target's features in some builds (release, and release with
//! LTO, rust-lang/rust#80608), although `riscv64gc` has them.

use super::{Entry, Feature, FpSwitch, Isa, Support};
use core::arch::{asm, naked_asm};

pub(crate) struct Riscv64;

const FRAME_BYTES: usize = 208;
const FRAME_RA: usize = 0;
const FRAME_S0: usize = 8;
const FRAME_S1: usize = 16;
const FRAME_S2: usize = 24;
const FRAME_FS0: usize = 104;
const FRAME_FRM: usize = 200;

/// What the torture asm keeps in `fcsr`: round towards zero (`frm` = 1) and
/// the NX, UF and DZ flags (a pattern no FP-free loop produces by itself).
const TORTURE_FCSR: u64 = (1 << 5) | 0b01011;

impl Isa for Riscv64 {
    const NAME: &'static str = "riscv64";

    const INIT_FRAME_BYTES: usize = FRAME_BYTES;

    unsafe fn init_stack(top: *mut u8, entry: Entry, arg: usize) -> usize {
        // Zero s0 (the frame pointer) ends frame-pointer walks at the
        // trampoline; zero fs0–fs11 and frm = 0 (round to nearest, ties to
        // even) are the state a fresh thread is owed. The switch's `ret`
        // lands on the trampoline.
        let words =
            [(FRAME_S1, entry as *const () as usize), (FRAME_S2, arg), (FRAME_RA, trampoline as *const () as usize)];
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
        // SAFETY: an fcsr of 0 is the reset state (round to nearest, no
        // flags); nothing else changes.
        unsafe {
            asm!(
                ".option push",
                ".option arch, +d",
                "fscsr zero",
                ".option pop",
                options(nomem, nostack, preserves_flags)
            )
        };
    }

    unsafe fn signal_sp(ctx: *const libc::c_void) -> usize {
        // SAFETY: the caller passes the kernel's ucontext_t; `__gregs[REG_SP]`
        // is x2.
        unsafe { (*ctx.cast::<libc::ucontext_t>()).uc_mcontext.__gregs[libc::REG_SP] as usize }
    }

    fn torture(seed: u64, iterations: u64) -> u64 {
        let mismatches: u64;
        // SAFETY: the asm saves s0 and s1 (which LLVM reserves and which
        // cannot be operands) and the caller's fcsr in a 32-byte, 16-byte
        // aligned frame it carves below sp, and restores them before
        // leaving, with sp back where it found it. Every other register it
        // writes (ra, t0–t6, a0–a7, s2–s11, f0–f31) is an operand or declared
        // clobbered. gp and tp are never touched. The only memory it
        // touches is its own stack space.
        unsafe {
            asm!(
                ".option push",
                ".option arch, +d",
                "addi sp, sp, -32",
                "sd s0, 0(sp)",
                "sd s1, 8(sp)",
                "frcsr t0",
                "sd t0, 16(sp)",
                // f_k = seed + 100 + k, as raw bits.
                "addi t0, a0, 100",
                ".irp k, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31",
                "fmv.d.x f\\k, t0",
                "addi t0, t0, 1",
                ".endr",
                "li t0, {fcsr}",
                "fscsr t0",
                // x_k = seed + k; x10 (a0) = seed is the base, x11 (a1) the
                // loop counter. x0, sp, gp and tp are not ours to change.
                ".irp k, 1,5,6,7,8,9,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31",
                "addi x\\k, x10, \\k",
                ".endr",
                "2:",
                "addi a1, a1, -1",
                "bnez a1, 2b",
                // From here a1 counts mismatches. The loop counter must be 0.
                "snez a1, a1",
                // x_k - seed must be k; each register checks itself.
                ".irp k, 1,5,6,7,8,9,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31",
                "sub x\\k, x\\k, x10",
                "addi x\\k, x\\k, -\\k",
                "snez x\\k, x\\k",
                "add x11, x11, x\\k",
                ".endr",
                // fmv.x.d and integer code leave fcsr alone, so it must still
                // hold the pattern.
                "frcsr t0",
                "li t1, {fcsr}",
                "sub t0, t0, t1",
                "snez t0, t0",
                "add a1, a1, t0",
                "addi t1, a0, 100",
                ".irp k, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31",
                "fmv.x.d t0, f\\k",
                "sub t0, t0, t1",
                "snez t0, t0",
                "add a1, a1, t0",
                "addi t1, t1, 1",
                ".endr",
                "ld t0, 16(sp)",
                "fscsr t0",
                "ld s0, 0(sp)",
                "ld s1, 8(sp)",
                "addi sp, sp, 32",
                ".option pop",
                fcsr = const TORTURE_FCSR,
                inout("a0") seed => _,
                inout("a1") iterations => mismatches,
                out("ra") _,
                out("t0") _, out("t1") _, out("t2") _, out("t3") _,
                out("t4") _, out("t5") _, out("t6") _,
                out("a2") _, out("a3") _, out("a4") _, out("a5") _,
                out("a6") _, out("a7") _,
                out("s2") _, out("s3") _, out("s4") _, out("s5") _,
                out("s6") _, out("s7") _, out("s8") _, out("s9") _,
                out("s10") _, out("s11") _,
                out("f0") _, out("f1") _, out("f2") _, out("f3") _,
                out("f4") _, out("f5") _, out("f6") _, out("f7") _,
                out("f8") _, out("f9") _, out("f10") _, out("f11") _,
                out("f12") _, out("f13") _, out("f14") _, out("f15") _,
                out("f16") _, out("f17") _, out("f18") _, out("f19") _,
                out("f20") _, out("f21") _, out("f22") _, out("f23") _,
                out("f24") _, out("f25") _, out("f26") _, out("f27") _,
                out("f28") _, out("f29") _, out("f30") _, out("f31") _,
            );
        }
        mismatches
    }

    fn features() -> Vec<Feature> {
        vec![Feature { name: "V", support: vector() }, Feature { name: "Zbb", support: zbb() }]
    }

    /// `rdtime`, the real-time counter. Linux lets user mode read `time`
    /// (directly, or by trapping to firmware on cores that do not implement
    /// the CSR), whereas `rdcycle` has been disabled for user mode since
    /// Linux 6.6 (it raises SIGILL) unless perf grants it. `time` ticks at
    /// the platform timebase (often 1–25 MHz), far slower than the core
    /// clock, which is all the trait promises.
    #[inline(always)]
    fn cycles() -> u64 {
        let ticks: u64;
        // SAFETY: reading the time CSR has no side effects, and Linux
        // enables it for user mode (scounteren.TM).
        unsafe { asm!("rdtime {}", out(reg) ticks, options(nomem, nostack, preserves_flags)) };
        ticks
    }

    /// `pause` (Zihintpause). Its encoding is `fence w, 0`, which the base
    /// ISA defines as a HINT, so cores without Zihintpause run it as a
    /// no-op; emitting it unconditionally is what `core::hint::spin_loop`
    /// does on riscv64, so this forwards to it.
    #[inline(always)]
    fn spin_hint() {
        core::hint::spin_loop()
    }

    /// Nothing: the `riscv64gc` baseline has no prefetch instruction
    /// (Zicbop's `prefetch.r`/`prefetch.w` would be the ones).
    #[inline(always)]
    fn prefetch_read(_p: *const u8) {}

    /// Nothing, as [`Riscv64::prefetch_read`].
    #[inline(always)]
    fn prefetch_write(_p: *const u8) {}
}

/// a0 = where to store the old sp, a1 = sp to load, a2 = FpSwitch bits,
/// a3 = the value handed to the resumed context (returned in a0).
///
/// Only the callee-saved registers are kept: the caller already treats
/// everything else as clobbered by a call.
///
/// # Safety
/// As [`Isa::switch`], its only caller. Being naked, it relies on the
/// psABI call it is entered by: the arguments in the registers above, the
/// return address in ra.
#[unsafe(naked)]
unsafe extern "C" fn switch_context(_save_sp: *mut usize, _load_sp: usize, _fp: usize, _pass: usize) -> usize {
    naked_asm!(
        ".option push",
        ".option arch, +d",
        "addi sp, sp, -{frame}",
        "sd ra, {ra}(sp)",
        ".irp k, 0,1,2,3,4,5,6,7,8,9,10,11",
        "sd s\\k, {s0} + 8 * \\k(sp)",
        ".endr",
        "andi t0, a2, {save}",
        "beqz t0, 2f",
        ".irp k, 0,1,2,3,4,5,6,7,8,9,10,11",
        "fsd fs\\k, {fs0} + 8 * \\k(sp)",
        ".endr",
        "frrm t1",
        "sd t1, {frm}(sp)",
        "2:",
        "sd sp, 0(a0)",
        "mv sp, a1",
        "andi t0, a2, {restore}",
        "beqz t0, 3f",
        ".irp k, 0,1,2,3,4,5,6,7,8,9,10,11",
        "fld fs\\k, {fs0} + 8 * \\k(sp)",
        ".endr",
        "ld t0, {frm}(sp)",
        // t1 holds the current rounding mode if the outgoing context saved it.
        "andi t2, a2, {save}",
        "bnez t2, 4f",
        "frrm t1",
        "4:",
        "beq t0, t1, 3f",
        "fsrm t0",
        "3:",
        "ld ra, {ra}(sp)",
        ".irp k, 0,1,2,3,4,5,6,7,8,9,10,11",
        "ld s\\k, {s0} + 8 * \\k(sp)",
        ".endr",
        "mv a0, a3",
        "addi sp, sp, {frame}",
        "ret",
        ".option pop",
        frame = const FRAME_BYTES,
        ra = const FRAME_RA,
        s0 = const FRAME_S0,
        fs0 = const FRAME_FS0,
        frm = const FRAME_FRM,
        save = const FpSwitch::SAVE,
        restore = const FpSwitch::RESTORE,
    )
}

/// First code a fresh context runs: `entry(arg)` from s1/s2, with sp at the
/// 16-byte aligned top of the stack.
///
/// It jumps rather than calls so that `entry` starts with ra = 0 and, from
/// the frame, s0 = 0, the outermost-frame marker: unwinders and profilers
/// stop there instead of walking into the old stack's garbage. `entry`
/// never returns; if it did, it would fault at address 0.
///
/// # Safety
/// Never called from Rust: it is only reached by the `ret` of the first
/// [`switch_context`] into a frame [`Isa::init_stack`] built, which is
/// what puts `entry` in s1 and `arg` in s2. Reached any other way, it
/// jumps to whatever s1 holds.
#[unsafe(naked)]
unsafe extern "C" fn trampoline() {
    naked_asm!("mv a0, s2", "mv t1, s1", "li ra, 0", "jr t1")
}

/// V from the single-letter bits of `AT_HWCAP` (bit `'V' - 'A'`). The kernel
/// sets it only when it supports and enables V for user mode, so a clear
/// bit means "not usable here"; an auxiliary vector without `AT_HWCAP` at
/// all (zero: not even I) says nothing.
fn vector() -> Support {
    // SAFETY: getauxval has no preconditions.
    let hwcap = unsafe { libc::getauxval(libc::AT_HWCAP) };
    if hwcap == 0 {
        return Support::Unknown;
    }
    Support::from_bool(hwcap & libc::COMPAT_HWCAP_ISA_V != 0)
}

/// `riscv_hwprobe`'s syscall number (Linux 6.4+), one `struct riscv_hwprobe`
/// key/value pair, and the key and bit for Zbb, from the kernel's
/// `asm/hwprobe.h` (the libc crate does not have them yet).
const SYS_RISCV_HWPROBE: libc::c_long = 258;
const HWPROBE_KEY_IMA_EXT_0: i64 = 4;
const HWPROBE_EXT_ZBB: u64 = 1 << 4;

#[repr(C)]
struct HwprobePair {
    key: i64,
    value: u64,
}

/// Zbb from `riscv_hwprobe` over all CPUs. `Unknown` when the kernel (or an
/// emulator such as qemu-user 7.2) has no such syscall or does not know
/// the key: older kernels do not report Zbb anywhere else.
fn zbb() -> Support {
    let mut pair = HwprobePair { key: HWPROBE_KEY_IMA_EXT_0, value: 0 };
    // SAFETY: one valid, writable pair; cpusetsize 0 with a null set means
    // "all online CPUs"; flags 0.
    let rc =
        unsafe { libc::syscall(SYS_RISCV_HWPROBE, &raw mut pair, 1usize, 0usize, core::ptr::null_mut::<u8>(), 0u32) };
    // The kernel sets the key to -1 when it does not know it.
    if rc != 0 || pair.key != HWPROBE_KEY_IMA_EXT_0 {
        return Support::Unknown;
    }
    Support::from_bool(pair.value & HWPROBE_EXT_ZBB != 0)
}

// The preemption word's four leaves (see `arch::preempt_word`). The offset
// from tp comes from the GOT (initial-exec model); the thread address lives
// in t0 only until the leaf returns.

/// This OS thread's word's address into t0.
macro_rules! word_address {
    () => {
        "la.tls.ie t0, __pmt_preempt_word_v1
        add t0, t0, tp"
    };
}

/// # Safety
/// No precondition: it reads the calling OS thread's own word, which every
/// thread of the process has (static TLS). Like the other leaves, it
/// clobbers only caller-saved registers (t0 and t1), as any call may.
/// [`preempt_word`](super::preempt_word) wraps the leaves in safe functions.
#[unsafe(naked)]
pub(super) unsafe extern "C" fn word_load() -> u64 {
    naked_asm!(word_address!(), "ld a0, 0(t0)", "ret")
}

/// a0 = new word. The read-modify-writes are single AMO instructions: a
/// preemption signal may set the pending half at any instruction, and a
/// load-then-store would overwrite it.
///
/// # Safety
/// No precondition (see [`word_load`]).
#[unsafe(naked)]
pub(super) unsafe extern "C" fn word_swap(_word: u64) -> u64 {
    naked_asm!(word_address!(), ".option push", ".option arch, +a", "amoswap.d a0, a0, (t0)", ".option pop", "ret",)
}

/// a0 = delta; see `word_swap`.
///
/// # Safety
/// No precondition (see [`word_load`]).
#[unsafe(naked)]
pub(super) unsafe extern "C" fn word_add(_delta: u64) -> u64 {
    naked_asm!(
        word_address!(),
        ".option push",
        ".option arch, +a",
        "amoadd.d t1, a0, (t0)",
        ".option pop",
        "add a0, t1, a0",
        "ret",
    )
}

/// a0 = half (0 or 1), a1 = value.
///
/// # Safety
/// `half` is 0 or 1: any other value writes past the word, into the worker
/// slot and then past the 16 bytes the symbol defines.
#[unsafe(naked)]
pub(super) unsafe extern "C" fn word_store_half(_half: usize, _value: u32) {
    naked_asm!(word_address!(), "slli a0, a0, 2", "add t0, t0, a0", "sw a1, 0(t0)", "ret",)
}

/// The worker slot, 8 bytes past the word.
///
/// # Safety
/// No precondition (see [`word_load`]).
#[unsafe(naked)]
pub(super) unsafe extern "C" fn worker_load() -> usize {
    naked_asm!(word_address!(), "ld a0, 8(t0)", "ret")
}

/// a0 = worker.
///
/// # Safety
/// No precondition of its own, but `Worker::current` dereferences what it
/// stores: 0, or a worker that this OS thread owns while it stays there.
#[unsafe(naked)]
pub(super) unsafe extern "C" fn worker_store(_worker: usize) {
    naked_asm!(word_address!(), "sd a0, 8(t0)", "ret")
}

pub(super) use super::leaf_word::{word_decrement, word_increment};
