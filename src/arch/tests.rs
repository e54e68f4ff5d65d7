//! The switch is tested the ways it breaks: a value does not make it across,
//! the stack drifts a little on every switch, a register the other context
//! overwrote comes back wrong, or a fresh context starts misaligned or with
//! its creator's rounding mode. Only setting and reading registers needs
//! assembly, in one function per ISA at the end.

use super::{Current, Entry, FpSwitch, Isa};
use core::hint::black_box;
use core::ptr;

/// Far more than any test context needs, even unoptimised.
const STACK_LEN: usize = 256 * 1024;

/// An anonymous mapping with a `PROT_NONE` page at the bottom, so that a
/// test context that overflows faults instead of scribbling on the heap.
struct Stack {
    base: *mut u8,
    len: usize,
}

impl Stack {
    fn new(len: usize) -> Stack {
        // SAFETY: a fresh anonymous mapping at an address the kernel picks
        // aliases nothing.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED, "mmap of a {len}-byte test stack failed");
        // SAFETY: the first page lies inside the mapping made above.
        let rc = unsafe { libc::mprotect(base, page_size(), libc::PROT_NONE) };
        assert_eq!(rc, 0, "mprotect of the guard page failed");
        Stack { base: base.cast(), len }
    }

    fn top(&self) -> *mut u8 {
        self.base.wrapping_add(self.len)
    }

    fn contains(&self, addr: usize) -> bool {
        (self.base as usize + page_size()..self.top() as usize).contains(&addr)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours, and no context on it is ever resumed
        // once its Stack goes away.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// A context that runs `entry(arg)` on `stack` the first time it is
/// switched to.
fn fresh(stack: &Stack, entry: Entry, arg: usize) -> usize {
    // SAFETY: the top of a mapping is page-aligned, the mapping is far larger
    // than the initial frame, and nothing else runs on it.
    unsafe { Current::init_stack(stack.top(), entry, arg) }
}

// ---------------------------------------------------------------------------
// Values through shared memory, and no drift of either stack pointer.

/// Shared by a test and its context, which take turns: both reach it only
/// through a raw pointer, never a reference held across a switch.
struct PingPong {
    main_sp: usize,
    green_sp: usize,
    fp_main: bool,
    fp_green: bool,
    request: u64,
    reply: u64,
}

extern "C" fn echo(arg: usize) -> ! {
    let pp = arg as *mut PingPong;
    loop {
        // SAFETY: the test sits suspended in its switch while this runs, so
        // *pp is ours; the switch stored main_sp before jumping here.
        unsafe {
            (*pp).reply = (*pp).request.wrapping_mul(3).wrapping_add(1);
            let fp = FpSwitch::new((*pp).fp_green, (*pp).fp_main);
            Current::switch(&raw mut (*pp).green_sp, (*pp).main_sp, fp, (*pp).reply as usize);
        }
    }
}

fn thousand_round_trips(fp_main: bool, fp_green: bool) {
    let stack = Stack::new(STACK_LEN);
    let mut state = PingPong { main_sp: 0, green_sp: 0, fp_main, fp_green, request: 0, reply: 0 };
    let pp = &raw mut state;
    let first_sp = fresh(&stack, echo, pp as usize);
    // SAFETY: nothing runs on the context yet.
    unsafe { (*pp).green_sp = first_sp };
    let mut parked_at = None;
    for i in 0..1000u64 {
        // SAFETY: green_sp is the context's own, stored by its last switch
        // (or init_stack), and it matches how that context treats FP state.
        let (reply, passed, main_sp, green_sp) = unsafe {
            (*pp).request = i;
            let passed = Current::switch(&raw mut (*pp).main_sp, (*pp).green_sp, FpSwitch::new(fp_main, fp_green), 0);
            ((*pp).reply, passed, (*pp).main_sp, (*pp).green_sp)
        };
        assert_eq!(reply, i * 3 + 1, "round trip {i}");
        assert_eq!(passed as u64, reply, "the value handed back through the switch, round trip {i}");
        assert!(stack.contains(green_sp), "context sp {green_sp:#x} left its stack");
        let (main0, green0) = *parked_at.get_or_insert((main_sp, green_sp));
        assert_eq!((main_sp, green_sp), (main0, green0), "a stack pointer drifted by round trip {i}");
    }
}

#[test]
fn thousand_round_trips_with_fp() {
    thousand_round_trips(true, true);
}

#[test]
fn thousand_round_trips_without_fp() {
    thousand_round_trips(false, false);
}

#[test]
fn thousand_round_trips_mixed_fp() {
    thousand_round_trips(true, false);
    thousand_round_trips(false, true);
}

// ---------------------------------------------------------------------------
// What a fresh context finds on entry.

#[repr(C, align(16))]
struct Aligned([u8; 16]);

struct Probe {
    main_sp: usize,
    green_sp: usize,
    arg_seen: usize,
    local_at: usize,
    nearest: bool,
}

/// True when the FP unit rounds to nearest. 2^-60 is far below half an ulp
/// of 1.0, so it vanishes in either direction only under that mode.
fn rounds_to_nearest() -> bool {
    let (one, tiny) = (black_box(1.0f64), black_box(2f64.powi(-60)));
    black_box(one + tiny) == 1.0 && black_box(one - tiny) == 1.0
}

/// What the probe hands back through its switch.
const PROBE_PASS: usize = 0x5eed_f00d;

extern "C" fn probe_entry(arg: usize) -> ! {
    // Equal to the ABI's stack alignment, so the compiler places it by
    // assuming sp was aligned on entry instead of realigning: a misaligned
    // entry shows up as a misaligned address.
    let local = Aligned([0; 16]);
    let local_at = black_box(&local) as *const Aligned as usize;
    let nearest = rounds_to_nearest();
    let p = arg as *mut Probe;
    // SAFETY: the test is suspended in its switch; it saved FP state.
    unsafe {
        (*p).arg_seen = arg;
        (*p).local_at = local_at;
        (*p).nearest = nearest;
        Current::switch(&raw mut (*p).green_sp, (*p).main_sp, FpSwitch::new(true, true), PROBE_PASS);
    }
    unreachable!("the test never resumes a probe context")
}

#[test]
fn entry_gets_arg_on_aligned_stack() {
    let stack = Stack::new(STACK_LEN);
    let mut probe = Probe { main_sp: 0, green_sp: 0, arg_seen: 0, local_at: 1, nearest: false };
    let p = &raw mut probe;
    let green_sp = fresh(&stack, probe_entry, p as usize);
    // SAFETY: a fresh context, switched to once; its slot holds default FP.
    let passed = unsafe { Current::switch(&raw mut (*p).main_sp, green_sp, FpSwitch::new(true, true), 1) };
    assert_eq!(passed, PROBE_PASS, "the value the probe's switch handed back");
    assert_eq!(probe.arg_seen, p as usize);
    assert_eq!(probe.local_at % 16, 0, "entry ran on a misaligned stack");
    assert!(stack.contains(probe.local_at) && stack.top() as usize - probe.local_at < 4096);
    assert!(probe.nearest);
}

#[test]
fn fresh_context_starts_with_default_rounding() {
    let stack = Stack::new(STACK_LEN);
    let mut probe = Probe { main_sp: 0, green_sp: 0, arg_seen: 0, local_at: 0, nearest: false };
    let p = &raw mut probe;
    let green_sp = fresh(&stack, probe_entry, p as usize);
    // SAFETY: as above; the test's context runs with a non-default rounding
    // mode across the switch, which the fresh one must not inherit.
    let report = unsafe { switch_with_registers(&raw mut (*p).main_sp, green_sp, 2, Some(Rounding::TowardZero)) };
    assert!(probe.nearest, "a fresh context inherited its creator's rounding mode");
    assert_survived(&report, "the test's context");
}

// ---------------------------------------------------------------------------
// Callee-saved state, with both contexts overwriting all of it.

/// Non-default modes, one per side, so that finding the other side's mode
/// or the default one after a switch is a failure either way.
#[derive(Clone, Copy)]
enum Rounding {
    Upward,
    TowardZero,
}

/// (register, value set before the switch, value found after it).
type Report = Vec<(&'static str, u64, u64)>;

/// Distinct for every register and every seed.
fn pattern(seed: u64, reg: usize) -> u64 {
    (seed << 8 | reg as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The first `checked` registers' names with the values set and found.
fn report(names: &[&'static str], set: &[u64], found: &[u64], checked: usize) -> Report {
    names.iter().zip(set).zip(found).take(checked).map(|((&r, &s), &f)| (r, s, f)).collect()
}

fn assert_survived(report: &Report, who: &str) {
    for &(reg, set, found) in report {
        assert_eq!(found, set, "{reg} of {who} was {set:#x} before a switch and {found:#x} after");
    }
}

/// The assembly calls the switch through this C-ABI function, so it knows
/// which registers carry the arguments. Optimised, this is a jump into the
/// switch; unoptimised, it keeps a frame record of its own, which hides a
/// lost frame pointer (x29/rbp) from debug-build runs of these tests.
unsafe extern "C" fn do_switch(save_sp: *mut usize, load_sp: usize, fp: usize) {
    // SAFETY: the callers pass on the contract of Isa::switch.
    unsafe { Current::switch(save_sp, load_sp, FpSwitch(fp), 0) };
}

struct Duel {
    main_sp: usize,
    green_sp: usize,
    fp: Option<Rounding>,
    green_rounds: u32,
    green_failures: Vec<String>,
}

extern "C" fn duel_entry(arg: usize) -> ! {
    let d = arg as *mut Duel;
    for round in 0u64.. {
        // SAFETY: the test is suspended in its own switch while this runs;
        // both sides treat FP state alike, as `fp` says.
        unsafe {
            let report = switch_with_registers(&raw mut (*d).green_sp, (*d).main_sp, round * 2 + 1, (*d).fp);
            (*d).green_rounds += 1;
            for (reg, set, found) in report {
                if set != found {
                    (*d).green_failures.push(format!("{reg}: {set:#x} -> {found:#x} (round {round})"));
                }
            }
        }
    }
    unreachable!()
}

fn duel(fp: Option<Rounding>) {
    let stack = Stack::new(STACK_LEN);
    let mut duel = Duel { main_sp: 0, green_sp: 0, fp, green_rounds: 0, green_failures: Vec::new() };
    let d = &raw mut duel;
    let first_sp = fresh(&stack, duel_entry, d as usize);
    // SAFETY: nothing runs on the context yet.
    unsafe { (*d).green_sp = first_sp };
    for round in 0..100u64 {
        // SAFETY: green_sp is stored by the context's last switch (or
        // init_stack), and it treats FP state as the test does.
        let report = unsafe { switch_with_registers(&raw mut (*d).main_sp, (*d).green_sp, round * 2, fp) };
        assert_survived(&report, "the test's context");
    }
    // Its first switch only set registers; each later one came back.
    assert_eq!(duel.green_rounds, 99);
    assert!(duel.green_failures.is_empty(), "the context's registers changed: {:#?}", duel.green_failures);
}

#[test]
fn callee_saved_gprs_survive_switch() {
    duel(None);
}

#[test]
fn fp_registers_and_control_survive_switch() {
    duel(Some(Rounding::Upward));
}

// ---------------------------------------------------------------------------

#[test]
fn helpers_never_fault() {
    let start = super::cycles();
    let mut spins = 0u64;
    while super::cycles() == start && spins < 100_000_000 {
        super::spin_hint();
        spins += 1;
    }
    assert_ne!(super::cycles(), start, "the cycle counter did not move");
    let guard = Stack::new(STACK_LEN);
    for p in [ptr::null(), guard.base.cast_const(), usize::MAX as *const u8] {
        super::prefetch_read(p);
        super::prefetch_write(p);
    }
}

// ---------------------------------------------------------------------------
// Per ISA: set every callee-saved register (and, with `fp`, the callee-saved
// FP registers and a rounding mode) to values from `seed`, switch, and report
// what each held once something switched back. The asm saves and restores
// what LLVM will not let it name (x19/x29, rbx/rbp) and the FP control
// state itself, and declares everything else it changes.
//
// Safety: as for Isa::switch, with FpSwitch on both sides set by `fp`.

#[cfg(target_arch = "aarch64")]
unsafe fn switch_with_registers(save_sp: *mut usize, load_sp: usize, seed: u64, fp: Option<Rounding>) -> Report {
    const NAMES: [&str; 20] = [
        "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27", "x28", "x29", "d8", "d9", "d10", "d11", "d12",
        "d13", "d14", "d15", "fpcr",
    ];
    let mut set: [u64; 20] = core::array::from_fn(|i| pattern(seed, i));
    // FPCR.RMode, bits 23:22.
    set[19] = match fp {
        Some(Rounding::Upward) => 0b01 << 22,
        Some(Rounding::TowardZero) => 0b11 << 22,
        None => 0,
    };
    let mut found = [0u64; 20];
    let bits = FpSwitch::new(fp.is_some(), fp.is_some()).0;
    // SAFETY: see above; sp stays 16-byte aligned for the call.
    unsafe {
        core::arch::asm!(
            "stp x19, x29, [sp, #-32]!",
            "mrs x9, fpcr",
            "stp x4, x9, [sp, #16]",
            "ldp x19, x20, [x3, #0]",
            "ldp x21, x22, [x3, #16]",
            "ldp x23, x24, [x3, #32]",
            "ldp x25, x26, [x3, #48]",
            "ldp x27, x28, [x3, #64]",
            "ldr x29, [x3, #80]",
            "cbz x5, 2f",
            "ldp d8, d9, [x3, #88]",
            "ldp d10, d11, [x3, #104]",
            "ldp d12, d13, [x3, #120]",
            "ldp d14, d15, [x3, #136]",
            "ldr x9, [x3, #152]",
            "msr fpcr, x9",
            "2:",
            "blr x6",
            "ldr x4, [sp, #16]",
            "stp x19, x20, [x4, #0]",
            "stp x21, x22, [x4, #16]",
            "stp x23, x24, [x4, #32]",
            "stp x25, x26, [x4, #48]",
            "stp x27, x28, [x4, #64]",
            "str x29, [x4, #80]",
            "stp d8, d9, [x4, #88]",
            "stp d10, d11, [x4, #104]",
            "stp d12, d13, [x4, #120]",
            "stp d14, d15, [x4, #136]",
            "mrs x9, fpcr",
            "str x9, [x4, #152]",
            "ldr x9, [sp, #24]",
            "msr fpcr, x9",
            "ldp x19, x29, [sp], #32",
            in("x0") save_sp,
            in("x1") load_sp,
            in("x2") bits,
            in("x3") set.as_ptr(),
            in("x4") found.as_mut_ptr(),
            in("x5") fp.is_some() as u64,
            in("x6") do_switch as *const () as usize,
            out("x20") _, out("x21") _, out("x22") _, out("x23") _, out("x24") _,
            out("x25") _, out("x26") _, out("x27") _, out("x28") _,
            clobber_abi("C"),
        );
    }
    let checked = if fp.is_some() { 20 } else { 11 };
    report(&NAMES, &set, &found, checked)
}

#[cfg(target_arch = "riscv64")]
unsafe fn switch_with_registers(save_sp: *mut usize, load_sp: usize, seed: u64, fp: Option<Rounding>) -> Report {
    const NAMES: [&str; 25] = [
        "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "fs0", "fs1", "fs2", "fs3", "fs4",
        "fs5", "fs6", "fs7", "fs8", "fs9", "fs10", "fs11", "frm",
    ];
    let mut set: [u64; 25] = core::array::from_fn(|i| pattern(seed, i));
    // frm: RUP = 3, RTZ = 1.
    set[24] = match fp {
        Some(Rounding::Upward) => 3,
        Some(Rounding::TowardZero) => 1,
        None => 0,
    };
    let mut found = [0u64; 25];
    let bits = FpSwitch::new(fp.is_some(), fp.is_some()).0;
    // SAFETY: see above; a 32-byte frame keeps sp 16-byte aligned for the
    // call. fs0–fs11 are callee-saved, so clobber_abi("C") does not cover
    // them: they are declared one by one.
    unsafe {
        core::arch::asm!(
            ".option push",
            ".option arch, +d",
            "addi sp, sp, -32",
            "sd s0, 0(sp)",
            "sd s1, 8(sp)",
            "sd a4, 16(sp)",
            "frcsr t0",
            "sd t0, 24(sp)",
            ".irp k, 0,1,2,3,4,5,6,7,8,9,10,11",
            "ld s\\k, 8 * \\k(a3)",
            ".endr",
            "beqz a5, 2f",
            ".irp k, 0,1,2,3,4,5,6,7,8,9,10,11",
            "fld fs\\k, 96 + 8 * \\k(a3)",
            ".endr",
            "ld t0, 192(a3)",
            "fsrm t0",
            "2:",
            "jalr a6",
            "ld a4, 16(sp)",
            ".irp k, 0,1,2,3,4,5,6,7,8,9,10,11",
            "sd s\\k, 8 * \\k(a4)",
            "fsd fs\\k, 96 + 8 * \\k(a4)",
            ".endr",
            "frrm t0",
            "sd t0, 192(a4)",
            "ld t0, 24(sp)",
            "fscsr t0",
            "ld s0, 0(sp)",
            "ld s1, 8(sp)",
            "addi sp, sp, 32",
            ".option pop",
            in("a0") save_sp,
            in("a1") load_sp,
            in("a2") bits,
            in("a3") set.as_ptr(),
            in("a4") found.as_mut_ptr(),
            in("a5") fp.is_some() as u64,
            in("a6") do_switch as *const () as usize,
            out("s2") _, out("s3") _, out("s4") _, out("s5") _, out("s6") _,
            out("s7") _, out("s8") _, out("s9") _, out("s10") _, out("s11") _,
            out("fs0") _, out("fs1") _, out("fs2") _, out("fs3") _, out("fs4") _, out("fs5") _,
            out("fs6") _, out("fs7") _, out("fs8") _, out("fs9") _, out("fs10") _, out("fs11") _,
            clobber_abi("C"),
        );
    }
    let checked = if fp.is_some() { 25 } else { 12 };
    report(&NAMES, &set, &found, checked)
}

#[cfg(target_arch = "x86_64")]
unsafe fn switch_with_registers(save_sp: *mut usize, load_sp: usize, seed: u64, fp: Option<Rounding>) -> Report {
    const NAMES: [&str; 7] = ["rbx", "rbp", "r12", "r13", "r14", "r15", "mxcsr | fcw << 32"];
    let mut set: [u64; 7] = core::array::from_fn(|i| pattern(seed, i));
    // The same mode in MXCSR.RC (bits 14:13) and the x87 FCW.RC (11:10), so
    // that losing either one shows; everything else at its reset value.
    let rc = match fp {
        Some(Rounding::Upward) => 0b10,
        Some(Rounding::TowardZero) => 0b11,
        None => 0,
    };
    set[6] = (0x1F80 | rc << 13) | (0x037F | rc << 10) << 32;
    let mut found = [0u64; 7];
    let bits = FpSwitch::new(fp.is_some(), fp.is_some()).0;
    // SAFETY: see above; two pushes and 32 bytes keep rsp 16-byte aligned
    // for the call.
    unsafe {
        core::arch::asm!(
            "push rbx",
            "push rbp",
            "sub rsp, 32",
            "mov [rsp], r8",
            "stmxcsr [rsp + 8]",
            "fnstcw [rsp + 12]",
            "mov rbx, [rcx]",
            "mov rbp, [rcx + 8]",
            "mov r12, [rcx + 16]",
            "mov r13, [rcx + 24]",
            "mov r14, [rcx + 32]",
            "mov r15, [rcx + 40]",
            "test r9, r9",
            "jz 2f",
            "ldmxcsr [rcx + 48]",
            "fldcw [rcx + 52]",
            "2:",
            "call r10",
            "mov r8, [rsp]",
            "mov [r8], rbx",
            "mov [r8 + 8], rbp",
            "mov [r8 + 16], r12",
            "mov [r8 + 24], r13",
            "mov [r8 + 32], r14",
            "mov [r8 + 40], r15",
            "stmxcsr [r8 + 48]",
            "fnstcw [r8 + 52]",
            "ldmxcsr [rsp + 8]",
            "fldcw [rsp + 12]",
            "add rsp, 32",
            "pop rbp",
            "pop rbx",
            in("rdi") save_sp,
            in("rsi") load_sp,
            in("rdx") bits,
            in("rcx") set.as_ptr(),
            in("r8") found.as_mut_ptr(),
            in("r9") fp.is_some() as u64,
            in("r10") do_switch as *const () as usize,
            out("r12") _, out("r13") _, out("r14") _, out("r15") _,
            clobber_abi("C"),
        );
    }
    // MXCSR's low six bits are sticky exception flags that whatever ran in
    // between may have raised; only the control bits are the switch's.
    found[6] &= !0x3F;
    let checked = if fp.is_some() { 7 } else { 6 };
    report(&NAMES, &set, &found, checked)
}
