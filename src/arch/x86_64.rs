//! x86_64 System V: callee-saved rbx, rbp, r12–r15, plus MXCSR control bits
//! and the x87 control word, for the threads that change them.
//!
//! A suspended context's frame, from its saved rsp upwards (64 bytes; the
//! `call` into the switch left rsp 8 bytes off a multiple of 16, and the
//! switch pushes 56 bytes, so the saved rsp is 16-byte aligned):
//!
//! ```text
//!   0  MXCSR (4 bytes), x87 control word at 4 (2 bytes; 6–7 unused)
//!   8  r15
//!  16  r14
//!  24  r13
//!  32  r12
//!  40  rbx
//!  48  rbp
//!  56  return address (`ret` pops it)
//! ```
//!
//! The switch pushes rbp, rbx, r12, r13, r14, r15 in that order, then makes
//! the FP slot, and pops in reverse. The slot is always written: the running
//! MXCSR and x87 control word for a context that keeps them (`SAVE`), their
//! reset values (`DEFAULT_FP_SLOT`) otherwise. When either side keeps FP
//! state, the incoming slot's MXCSR and control word are each loaded where
//! they differ from the outgoing slot's. Nothing else is kept: the other
//! general registers and the vector and x87 data registers are
//! caller-saved, so the caller already treats them as clobbered.
//!
//! A fresh context's frame (`init_stack`): 80 bytes ending at the stack's
//! 16-byte aligned `top`, all zero but for four words:
//!
//! ```text
//!   0  0x1F80 (MXCSR), 0x037F at 4 (x87 control word): the reset values
//!   8  r15 = 0
//!  16  r14 = 0
//!  24  r13 = arg
//!  32  r12 = entry
//!  40  rbx = 0
//!  48  rbp = 0
//!  56  trampoline (the return address)
//!  64  16 bytes of zeros, up to top
//! ```
//!
//! The first switch into it pops the registers and `ret`s to the trampoline
//! with rsp at `top - 16`, 16-byte aligned as at a call site. The
//! trampoline moves `arg` to rdi and `call`s `entry`, pushing the address
//! of its own `ud2` over the slot at 56: `entry` starts as after any call,
//! with rbp = 0 to end frame-pointer walks and only zeros between its
//! frame and `top`.

use super::{Entry, Feature, FpSwitch, Isa, Support};
use core::arch::{asm, naked_asm};

pub(crate) struct X86_64;

/// MXCSR at reset (all exceptions masked, round to nearest) in the low half,
/// the x87 control word at reset (extended precision, round to nearest) at
/// byte 4.
const DEFAULT_FP_SLOT: u64 = 0x1F80 | (0x037F << 32);

impl Isa for X86_64 {
    const NAME: &'static str = "x86_64";

    // The fresh frame of the module docs: the 64 bytes a switch pops, and
    // 16 bytes of zeros that leave the trampoline's rsp 16-byte aligned.
    const INIT_FRAME_BYTES: usize = 80;

    unsafe fn init_stack(top: *mut u8, entry: Entry, arg: usize) -> usize {
        let words = [
            (0, DEFAULT_FP_SLOT as usize),
            (24, arg),                         // r13
            (32, entry as *const () as usize), // r12
            (56, trampoline as *const () as usize),
        ];
        // SAFETY: forwarded contract; the offsets lie inside the frame.
        unsafe { super::write_init_frame(top, Self::INIT_FRAME_BYTES, &words) }
    }

    #[inline(always)]
    unsafe fn switch(save_sp: *mut usize, load_sp: usize, fp: FpSwitch, pass: usize) -> usize {
        // SAFETY: forwarded contract.
        unsafe { switch_context(save_sp, load_sp, fp.0, pass) }
    }

    /// No FP data register is callee-saved here, so only a thread that
    /// changes the control state has anything to keep.
    fn keeps_fp(_uses_fp: bool, keeps_env: bool) -> bool {
        keeps_env
    }

    /// MXCSR's control bits (not its sticky exception flags, which any FP
    /// code sets) in the low half, the x87 control word at byte 4.
    #[cfg(debug_assertions)]
    fn fp_env_changed() -> Option<u64> {
        let mut slot = 0u64;
        // SAFETY: stores the two control registers into a local we own.
        unsafe {
            asm!(
                "stmxcsr [{p}]",
                "fnstcw [{p} + 4]",
                p = in(reg) &raw mut slot,
                options(nostack, preserves_flags),
            )
        };
        const CONTROL: u64 = 0xFFC0 | (0x1F3F << 32);
        (slot & CONTROL != DEFAULT_FP_SLOT & CONTROL).then_some(slot)
    }

    fn reset_fp_env() {
        let slot = DEFAULT_FP_SLOT;
        // SAFETY: loads the reset values of both control registers.
        unsafe {
            asm!(
                "ldmxcsr [{p}]",
                "fldcw [{p} + 4]",
                p = in(reg) &raw const slot,
                options(nostack, preserves_flags, readonly),
            )
        };
    }

    unsafe fn signal_sp(ctx: *const libc::c_void) -> usize {
        // SAFETY: the caller passes the kernel's ucontext_t.
        unsafe { (*ctx.cast::<libc::ucontext_t>()).uc_mcontext.gregs[libc::REG_RSP as usize] as usize }
    }

    fn torture(seed: u64, iterations: u64) -> u64 {
        let mismatches: u64;
        // SAFETY: the asm saves and restores the registers LLVM reserves
        // (rbx, rbp) and the callee-saved ones on its own stack (below the
        // red zone is not touched: it only pushes), declares every other
        // register it writes as clobbered, and leaves rsp as it found it.
        unsafe {
            core::arch::asm!(
                "push rbx", "push rbp", "push r12", "push r13", "push r14", "push r15",
                // Values: seed * k + k for k = 1.., one per register.
                "mov rax, rdi",
                "lea rbx, [rax + 1]",
                "lea rbp, [rax + 2]",
                "lea rdx, [rax + 3]",
                "lea rsi, [rax + 4]",
                "lea r8, [rax + 5]",
                "lea r9, [rax + 6]",
                "lea r10, [rax + 7]",
                "lea r11, [rax + 8]",
                "lea r12, [rax + 9]",
                "lea r13, [rax + 10]",
                "lea r14, [rax + 11]",
                "lea r15, [rax + 12]",
                // xmm_k = (seed + 100 + k, !(seed + 100 + k))
                "lea rdi, [rax + 100]",
                ".irp k, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15",
                "movq xmm\\k, rdi",
                "not rdi",
                "pinsrq xmm\\k, rdi, 1",
                "not rdi",
                "inc rdi",
                ".endr",
                // Flags: CF set, survives `dec`/`jnz` (dec leaves CF alone).
                "stc",
                "2:",
                "dec rcx",
                "jnz 2b",
                // Count mismatches into rdi: first the flags.
                "mov rdi, 0",
                "adc rdi, 0",
                "xor rdi, 1",
                "cmp rcx, 0", "jne 8f", "jmp 9f", "8:", "inc rdi", "9:",
                "lea rcx, [rax + 1]", "cmp rbx, rcx", "je 3f", "inc rdi", "3:",
                "lea rcx, [rax + 2]", "cmp rbp, rcx", "je 3f", "inc rdi", "3:",
                "lea rcx, [rax + 3]", "cmp rdx, rcx", "je 3f", "inc rdi", "3:",
                "lea rcx, [rax + 4]", "cmp rsi, rcx", "je 3f", "inc rdi", "3:",
                "lea rcx, [rax + 5]", "cmp r8, rcx", "je 3f", "inc rdi", "3:",
                "lea rcx, [rax + 6]", "cmp r9, rcx", "je 3f", "inc rdi", "3:",
                "lea rcx, [rax + 7]", "cmp r10, rcx", "je 3f", "inc rdi", "3:",
                "lea rcx, [rax + 8]", "cmp r11, rcx", "je 3f", "inc rdi", "3:",
                "lea rcx, [rax + 9]", "cmp r12, rcx", "je 3f", "inc rdi", "3:",
                "lea rcx, [rax + 10]", "cmp r13, rcx", "je 3f", "inc rdi", "3:",
                "lea rcx, [rax + 11]", "cmp r14, rcx", "je 3f", "inc rdi", "3:",
                "lea rcx, [rax + 12]", "cmp r15, rcx", "je 3f", "inc rdi", "3:",
                "lea rsi, [rax + 100]",
                ".irp k, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15",
                "movq rcx, xmm\\k", "cmp rcx, rsi", "je 3f", "inc rdi", "3:",
                "pextrq rcx, xmm\\k, 1", "not rcx", "cmp rcx, rsi", "je 3f", "inc rdi", "3:",
                "inc rsi",
                ".endr",
                "pop r15", "pop r14", "pop r13", "pop r12", "pop rbp", "pop rbx",
                inout("rdi") seed => mismatches,
                inout("rcx") iterations => _,
                out("rax") _, out("rdx") _, out("rsi") _,
                out("r8") _, out("r9") _, out("r10") _, out("r11") _,
                out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
                out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
                out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
                out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
            );
        }
        mismatches
    }

    fn features() -> Vec<Feature> {
        // std checks CPUID and that the OS enabled the state (XCR0).
        vec![
            Feature { name: "AVX", support: Support::from_bool(std::is_x86_feature_detected!("avx")) },
            Feature { name: "AVX2", support: Support::from_bool(std::is_x86_feature_detected!("avx2")) },
            Feature { name: "AVX-512F", support: Support::from_bool(std::is_x86_feature_detected!("avx512f")) },
        ]
    }

    #[inline(always)]
    fn cycles() -> u64 {
        // SAFETY: rdtsc has no preconditions on x86_64 Linux.
        unsafe { core::arch::x86_64::_rdtsc() }
    }

    #[inline(always)]
    fn spin_hint() {
        core::hint::spin_loop()
    }

    #[inline(always)]
    fn prefetch_read(p: *const u8) {
        // SAFETY: prefetch never faults, whatever the address.
        unsafe { core::arch::x86_64::_mm_prefetch(p.cast(), core::arch::x86_64::_MM_HINT_T0) }
    }

    #[inline(always)]
    fn prefetch_write(p: *const u8) {
        // SAFETY: prefetchw never faults; it is a hint (a no-op on CPUs
        // without it, which decode it as a NOP).
        unsafe { core::arch::asm!("prefetchw [{}]", in(reg) p, options(nostack, readonly, preserves_flags)) }
    }
}

/// rdi = where to store the old rsp, rsi = rsp to load, rdx = FpSwitch bits,
/// rcx = the value handed to the resumed context (returned in rax).
///
/// The outgoing context's FP slot gets its MXCSR and x87 control word when
/// it keeps them (SAVE), and otherwise the defaults, which is what Rust code
/// runs with: writing two constants costs next to nothing, where `stmxcsr`
/// is a large share of a yield (bench/README.md, "FP control state in a
/// switch"). When either side keeps its state (SAVE or
/// RESTORE), the incoming slot is loaded where it differs from the outgoing
/// one, which stands for the current state, so a thread that keeps nothing
/// resumes under the default after one that changed it: `ldmxcsr` and
/// `fldcw` cost more than the rest of the switch.
///
/// # Safety
/// As [`Isa::switch`], its only caller. Being naked, it relies on the
/// System V call it is entered by: the arguments in the registers above,
/// the return address on top of the stack.
#[unsafe(naked)]
unsafe extern "C" fn switch_context(_save_sp: *mut usize, _load_sp: usize, _fp: usize, _pass: usize) -> usize {
    naked_asm!(
        "push rbp",
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "sub rsp, 8",
        "test dl, {save}",
        "jnz 6f",
        "mov dword ptr [rsp], {mxcsr}",
        "mov dword ptr [rsp + 4], {fcw}",
        "4:",
        "mov [rdi], rsp",
        "mov r8, rsp",
        "mov rsp, rsi",
        "test dl, {either}",
        "jz 3f",
        "mov eax, [r8]",
        "cmp eax, [rsp]",
        "je 5f",
        "ldmxcsr [rsp]",
        "5:",
        "mov ax, [r8 + 4]",
        "cmp ax, [rsp + 4]",
        "je 3f",
        "fldcw [rsp + 4]",
        "3:",
        "mov rax, rcx",
        "add rsp, 8",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "ret",
        // SAVE, out of the common path.
        "6:",
        "stmxcsr [rsp]",
        "fnstcw [rsp + 4]",
        "jmp 4b",
        save = const FpSwitch::SAVE,
        either = const FpSwitch::SAVE | FpSwitch::RESTORE,
        mxcsr = const DEFAULT_FP_SLOT & 0xFFFF_FFFF,
        fcw = const DEFAULT_FP_SLOT >> 32,
    )
}

/// First code a fresh context runs: `entry(arg)` from r12/r13, with rsp at
/// `top - 16` (see the fresh frame in the module docs).
///
/// The `call` gives `entry` the stack every function starts with (rsp 8
/// bytes off a multiple of 16, a return address on top), and that return
/// address is the `ud2` after it: `entry` never returns; if it did, it
/// would trap there.
///
/// # Safety
/// Never called from Rust: it is only reached by the `ret` of the first
/// [`switch_context`] into a frame [`Isa::init_stack`] built, which is
/// what puts `entry` in r12 and `arg` in r13. Reached any other way, it
/// calls whatever r12 holds.
#[unsafe(naked)]
unsafe extern "C" fn trampoline() {
    naked_asm!("mov rdi, r13", "call r12", "ud2")
}

// The preemption word's accessors (see `arch::preempt_word`). The offset
// from the FS base comes from the GOT (initial-exec model) and is the same on
// every OS thread; each access to the word is one FS-relative instruction,
// so no thread address is ever formed, and a preemption between any two
// instructions finds the word whole. Unlike the other ISAs' leaves, these
// may therefore inline into any code. None is `pure`: a signal handler
// changes the word behind the compiler's back.

/// The word's offset from the FS base, into the `{off}` operand.
macro_rules! word_offset {
    () => {
        "mov {off}, qword ptr [rip + __pmt_preempt_word_v1@GOTTPOFF]"
    };
}

/// # Safety
/// No precondition: it reads the calling OS thread's own word, which every
/// thread of the process has (static TLS).
/// [`preempt_word`](super::preempt_word) wraps the accessors in safe
/// functions.
#[inline(always)]
pub(super) unsafe fn word_load() -> u64 {
    let word: u64;
    // SAFETY: reads this OS thread's word at the offset the linker resolved.
    unsafe {
        asm!(
            word_offset!(),
            "mov {word}, qword ptr fs:[{off}]",
            off = out(reg) _,
            word = out(reg) word,
            options(nostack, preserves_flags, readonly),
        )
    };
    word
}

/// Two instructions: a preemption signal between them may set the pending
/// flag, which the store then clears. Callers (a switch, which counts as the
/// preemption) run with the depth above zero, so nothing else can happen
/// there.
///
/// # Safety
/// A pending flag that a signal sets between the read and the write is
/// lost: only for callers that need none, such as a switch, which serves as
/// the preemption.
#[inline(always)]
pub(super) unsafe fn word_swap(word: u64) -> u64 {
    let old: u64;
    // SAFETY: as in `word_load`; writes only this OS thread's word.
    unsafe {
        asm!(
            word_offset!(),
            "mov {old}, qword ptr fs:[{off}]",
            "mov qword ptr fs:[{off}], {word}",
            off = out(reg) _,
            old = out(reg) old,
            word = in(reg) word,
            options(nostack, preserves_flags),
        )
    };
    old
}

/// One unit more depth: an `add` to memory, cheaper than `xadd` and with
/// no result to wait for; one instruction, so a signal lands before or
/// after it.
///
/// # Safety
/// No precondition (see [`word_load`]).
#[inline(always)]
pub(super) unsafe fn word_increment() {
    // SAFETY: as in `word_swap`.
    unsafe { asm!(word_offset!(), "add qword ptr fs:[{off}], 1", off = out(reg) _, options(nostack)) };
}

/// One unit less depth; the new word, or None when it is all zero (depth 0,
/// nothing pending), which a `sub` reports in its zero flag: the common
/// case costs no read of the word. The read that follows otherwise may see
/// a pending flag a signal set after the `sub`; the caller acts on it then.
///
/// # Safety
/// No precondition (see [`word_load`]).
#[inline(always)]
pub(super) unsafe fn word_decrement() -> Option<u64> {
    let clear: u8;
    // SAFETY: as in `word_swap`.
    unsafe {
        asm!(
            word_offset!(),
            "sub qword ptr fs:[{off}], 1",
            "setz {clear}",
            off = out(reg) _,
            clear = out(reg_byte) clear,
            options(nostack),
        )
    };
    // SAFETY: as in `word_load`.
    if clear != 0 { None } else { Some(unsafe { word_load() }) }
}

/// The worker slot, 8 bytes past the word.
///
/// # Safety
/// No precondition (see [`word_load`]).
#[inline(always)]
pub(super) unsafe fn worker_load() -> usize {
    let w: usize;
    // SAFETY: reads this OS thread's worker slot, 8 bytes past the word.
    unsafe {
        asm!(
            word_offset!(),
            "mov {w}, qword ptr fs:[{off} + 8]",
            off = out(reg) _,
            w = out(reg) w,
            options(nostack, preserves_flags, readonly),
        )
    };
    w
}

/// # Safety
/// No precondition of its own, but `Worker::current` dereferences what it
/// stores: 0, or a worker that this OS thread owns while it stays there.
#[inline(always)]
pub(super) unsafe fn worker_store(w: usize) {
    // SAFETY: writes only this OS thread's worker slot, 8 bytes past the word.
    unsafe {
        asm!(
            word_offset!(),
            "mov qword ptr fs:[{off} + 8], {w}",
            off = out(reg) _,
            w = in(reg) w,
            options(nostack, preserves_flags),
        )
    };
}

/// # Safety
/// `half` is 0 or 1: any other value writes past the word, into the worker
/// slot and then past the 16 bytes the symbol defines.
#[inline(always)]
pub(super) unsafe fn word_store_half(half: usize, value: u32) {
    // SAFETY: as in `word_swap`; the caller keeps `half` in the word.
    unsafe {
        asm!(
            word_offset!(),
            "mov dword ptr fs:[{off} + 4*{half}], {value:e}",
            off = out(reg) _,
            half = in(reg) half,
            value = in(reg) value,
            options(nostack, preserves_flags),
        )
    };
}
