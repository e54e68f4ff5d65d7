//! The FP control state across switches: a thread built with
//! `preserve_fp_env(true)` finds its own rounding mode after every yield,
//! and a default thread sharing its worker runs under the default mode,
//! never the other thread's.

mod common;

use preemptive_mlthreading_rust::{ThreadBuilder, yield_now};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The rounding modes the test uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rounding {
    Nearest,
    TowardZero,
    /// Anything else, or the two x87/SSE modes disagreeing on x86_64.
    Other,
}

/// (MXCSR, x87 control word).
#[cfg(target_arch = "x86_64")]
fn control_words() -> (u32, u16) {
    let (mut mxcsr, mut fcw) = (0u32, 0u16);
    // SAFETY: stores the two control registers into locals we own.
    unsafe {
        core::arch::asm!(
            "stmxcsr [{m}]",
            "fnstcw [{f}]",
            m = in(reg) &mut mxcsr,
            f = in(reg) &mut fcw,
            options(nostack),
        )
    };
    (mxcsr, fcw)
}

#[cfg(target_arch = "x86_64")]
fn rounding() -> Rounding {
    let (mxcsr, fcw) = control_words();
    match ((mxcsr >> 13) & 3, (fcw >> 10) & 3) {
        (0, 0) => Rounding::Nearest,
        (3, 3) => Rounding::TowardZero,
        _ => Rounding::Other,
    }
}

#[cfg(target_arch = "x86_64")]
fn set_rounding(r: Rounding) {
    let rc: u32 = if r == Rounding::TowardZero { 3 } else { 0 };
    let (mxcsr, fcw) = control_words();
    let (mxcsr, fcw) = ((mxcsr & !(3 << 13)) | rc << 13, (fcw & !(3 << 10)) | (rc as u16) << 10);
    // SAFETY: loads the control registers with only their rounding fields
    // changed; the caller declared preserve_fp_env.
    unsafe {
        core::arch::asm!(
            "ldmxcsr [{m}]",
            "fldcw [{f}]",
            m = in(reg) &mxcsr,
            f = in(reg) &fcw,
            options(nostack),
        )
    };
}

#[cfg(target_arch = "aarch64")]
fn rounding() -> Rounding {
    let fpcr: u64;
    // SAFETY: reads FPCR.
    unsafe { core::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nostack, nomem)) };
    match (fpcr >> 22) & 3 {
        0 => Rounding::Nearest,
        3 => Rounding::TowardZero,
        _ => Rounding::Other,
    }
}

#[cfg(target_arch = "aarch64")]
fn set_rounding(r: Rounding) {
    let mode: u64 = if r == Rounding::TowardZero { 3 } else { 0 };
    let fpcr: u64;
    // SAFETY: changes only FPCR.RMode; the caller declared preserve_fp_env.
    unsafe {
        core::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nostack, nomem));
        core::arch::asm!("msr fpcr, {}", in(reg) (fpcr & !(3 << 22)) | mode << 22, options(nostack, nomem));
    }
}

#[cfg(target_arch = "riscv64")]
fn rounding() -> Rounding {
    let frm: u64;
    // SAFETY: reads the dynamic rounding mode.
    unsafe { core::arch::asm!("csrr {}, frm", out(reg) frm, options(nostack, nomem)) };
    match frm {
        0 => Rounding::Nearest,
        1 => Rounding::TowardZero,
        _ => Rounding::Other,
    }
}

#[cfg(target_arch = "riscv64")]
fn set_rounding(r: Rounding) {
    let frm: u64 = if r == Rounding::TowardZero { 1 } else { 0 };
    // SAFETY: changes only frm; the caller declared preserve_fp_env.
    unsafe { core::arch::asm!("csrw frm, {}", in(reg) frm, options(nostack, nomem)) };
}

const ROUNDS: u64 = 2_000;

#[test]
fn a_thread_keeps_its_rounding_mode_and_its_neighbour_keeps_the_default() {
    let sched = common::workers(1);
    let keeper_mode_set = Arc::new(AtomicBool::new(false));
    let keeper_done = Arc::new(AtomicBool::new(false));
    let plain_started = Arc::new(AtomicBool::new(false));
    let (set, done, started) = (Arc::clone(&keeper_mode_set), Arc::clone(&keeper_done), Arc::clone(&plain_started));
    let keeper = ThreadBuilder::new()
        .scheduler(sched.clone())
        .preserve_fp_env(true)
        .spawn(move || {
            set_rounding(Rounding::TowardZero);
            set.store(true, Ordering::Release);
            // Until the other thread has started too: a thread spawned a
            // moment later from the test's OS thread may not be queued yet.
            while !started.load(Ordering::Acquire) {
                yield_now();
            }
            let mut wrong = Vec::new();
            for round in 0..ROUNDS {
                yield_now();
                let found = rounding();
                if found != Rounding::TowardZero {
                    wrong.push((round, found));
                }
            }
            done.store(true, Ordering::Release);
            set_rounding(Rounding::Nearest);
            wrong
        })
        .unwrap();
    let seen_beside_keeper = Arc::new(AtomicU64::new(0));
    let (set, done, seen, started) =
        (Arc::clone(&keeper_mode_set), Arc::clone(&keeper_done), Arc::clone(&seen_beside_keeper), plain_started);
    let plain = ThreadBuilder::new()
        .scheduler(sched.clone())
        .spawn(move || {
            // Starts beside the keeper, whichever of the two runs first.
            while !set.load(Ordering::Acquire) {
                yield_now();
            }
            started.store(true, Ordering::Release);
            let mut wrong = Vec::new();
            for round in 0..ROUNDS {
                yield_now();
                let found = rounding();
                if found != Rounding::Nearest {
                    wrong.push((round, found));
                }
                if !done.load(Ordering::Acquire) {
                    seen.fetch_add(1, Ordering::Relaxed);
                }
            }
            wrong
        })
        .unwrap();
    let keeper_wrong = keeper.join().unwrap();
    let plain_wrong = plain.join().unwrap();
    let beside = seen_beside_keeper.load(Ordering::Relaxed);
    println!("the default thread checked its mode {beside} times while the keeper's mode was set");
    assert!(
        keeper_wrong.is_empty(),
        "the keeper lost its rounding mode: {:?}",
        &keeper_wrong[..keeper_wrong.len().min(5)]
    );
    assert!(
        plain_wrong.is_empty(),
        "the default thread ran under another mode: {:?}",
        &plain_wrong[..plain_wrong.len().min(5)]
    );
    assert!(beside > ROUNDS / 2, "the two threads did not interleave ({beside} of {ROUNDS} checks beside the keeper)");
}

#[test]
fn a_fresh_thread_starts_under_the_default_mode_after_a_keeper() {
    let sched = common::workers(1);
    let s = sched.clone();
    let found = ThreadBuilder::new()
        .scheduler(sched.clone())
        .preserve_fp_env(true)
        .spawn(move || {
            set_rounding(Rounding::TowardZero);
            // Spawned while the keeper's mode is set, run at its join.
            let child = s.spawn(rounding).unwrap();
            let found = child.join().unwrap();
            let mine = rounding();
            set_rounding(Rounding::Nearest);
            (found, mine)
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(found, (Rounding::Nearest, Rounding::TowardZero));
}

/// Debug builds on x86_64 check the promise a thread without the flag makes:
/// a changed state is reported by name and undone at its next switch.
#[cfg(all(debug_assertions, target_arch = "x86_64"))]
#[test]
fn debug_builds_undo_a_state_changed_without_the_flag() {
    let sched = common::workers(1);
    let changed = Arc::new(AtomicBool::new(false));
    let c = Arc::clone(&changed);
    let careless = ThreadBuilder::new()
        .name("careless")
        .scheduler(sched.clone())
        .spawn(move || {
            set_rounding(Rounding::TowardZero);
            c.store(true, Ordering::Release);
            yield_now();
            let mine = rounding();
            set_rounding(Rounding::Nearest);
            mine
        })
        .unwrap();
    let c = Arc::clone(&changed);
    let neighbour = ThreadBuilder::new()
        .scheduler(sched.clone())
        .spawn(move || {
            while !c.load(Ordering::Acquire) {
                yield_now();
            }
            rounding()
        })
        .unwrap();
    assert_eq!(neighbour.join().unwrap(), Rounding::Nearest, "the neighbour ran under the careless thread's mode");
    assert_eq!(careless.join().unwrap(), Rounding::Nearest, "the change was not undone at the switch");
}
