//! Stack depth under preemption: the preemption signal's frame and the
//! runtime's handler land on the green thread's own stack, so every stack
//! carries a reserve for them on top of the size asked for, and an overflow
//! is reported by name whether the code or the kernel's signal frame ran
//! into the guard page. Each case runs in a child process: the failures
//! being guarded against kill the process.

use preemptive_mlthreading_rust::{Duration, RoundRobinScheduler, ThreadBuilder};
use std::hint::black_box;
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

mod common;
use common::{is_child, run_child};

/// The address of a local in the caller's frame: a stack position.
#[inline(always)]
fn sp_here() -> usize {
    let probe = black_box(0u8);
    &probe as *const u8 as usize
}

/// Recurses in ~300-byte frames until `floor` says the stack reached deep
/// enough (given the address of a local), then runs `bottom` there, in the
/// deepest frames.
#[inline(never)]
fn descend(floor: &dyn Fn(usize) -> bool, bottom: &dyn Fn()) -> u64 {
    let buf = black_box([1u8; 256]);
    let here = buf.as_ptr() as usize;
    let below = if floor(here) { bottom_frame(bottom) } else { descend(floor, bottom) };
    // Uses the frame after the call, so the recursion is not a tail call.
    below + black_box(buf)[(below % 256) as usize] as u64
}

#[inline(never)]
fn bottom_frame(bottom: &dyn Fn()) -> u64 {
    bottom();
    0
}

/// Spins in user code (never calling the runtime) until `deadline`, with
/// only occasional clock reads, so that preemption signals land here.
fn spin_until(deadline: Instant) {
    let mut n = 0u64;
    loop {
        for _ in 0..10_000 {
            n = black_box(n.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    black_box(n);
}

/// A CPU hog that shares the worker until `stop`: every slice ends in a
/// preemption, of it or of its neighbour.
fn hog(sched: &RoundRobinScheduler, stop: &Arc<AtomicBool>) -> preemptive_mlthreading_rust::JoinHandle<()> {
    let stop = Arc::clone(stop);
    sched
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                black_box(0);
            }
        })
        .unwrap()
}

/// `PMT_DEEP=<stack size>:<bytes used>:<slice µs>`: a thread with that
/// stack uses that much of it while spinning next to a hog on one worker,
/// for 300 ms, and must finish.
#[test]
fn child_deep_thread_under_preemption() {
    if !is_child("child_deep_thread_under_preemption") {
        return;
    }
    let spec: Vec<u64> = std::env::var("PMT_DEEP").unwrap().split(':').map(|v| v.parse().unwrap()).collect();
    let (size, used, slice_us) = (spec[0] as usize, spec[1] as usize, spec[2]);
    let sched = match slice_us {
        0 => RoundRobinScheduler::new().with_workers(1).with_preemption(false),
        _ => common::preemptive(1, Duration::from_micros(slice_us)),
    };
    let stop = Arc::new(AtomicBool::new(slice_us == 0));
    let h = hog(&sched, &stop);
    let reached = Arc::new(AtomicU64::new(0));
    let r = Arc::clone(&reached);
    let deep = ThreadBuilder::new()
        .name("deep")
        .stack_size(size)
        .scheduler(sched.clone())
        .spawn(move || {
            let top = sp_here();
            let deadline = Instant::now() + Duration::from_millis(300);
            descend(&|here| top - here >= used, &|| {
                r.store((top - sp_here()) as u64, Ordering::Relaxed);
                spin_until(deadline);
            })
        })
        .unwrap();
    deep.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap();
    let preemptions: u64 = sched.worker_preemptions().iter().sum();
    println!("CHILD: {size}-byte stack, {} bytes used, {preemptions} preemptions", reached.load(Ordering::Relaxed));
    assert!(reached.load(Ordering::Relaxed) as usize >= used, "the thread did not go as deep as asked");
    if slice_us != 0 {
        assert!(preemptions >= 20, "only {preemptions} preemptions: the case was not exercised");
    }
}

fn deep_thread_finishes(size: usize, used: usize, slice_us: u64) {
    let spec = format!("{size}:{used}:{slice_us}");
    let out = run_child("child_deep_thread_under_preemption", &[("PMT_DEEP", &spec)]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "{spec}: status {:?} (signal {:?})\n{stdout}\n{stderr}",
        out.status,
        out.status.signal()
    );
    println!("{}", stdout.lines().find(|l| l.contains("CHILD:")).unwrap_or_default());
}

#[test]
fn a_16k_stack_with_12k_in_use_survives_preemption() {
    deep_thread_finishes(16 << 10, 12 << 10, 1000);
    deep_thread_finishes(16 << 10, 12 << 10, 100);
}

#[test]
fn a_64k_stack_with_56k_in_use_survives_preemption() {
    deep_thread_finishes(64 << 10, 56 << 10, 1000);
    deep_thread_finishes(64 << 10, 56 << 10, 100);
}

/// The size asked for is the thread's own in full: what fits without
/// preemption (about 1.3 KiB goes to the runtime's entry frames and the
/// deepest frames of the test itself, in a debug build) fits with it.
#[test]
fn a_stack_filled_to_the_brim_survives_preemption() {
    for slice_us in [0, 100] {
        deep_thread_finishes(16 << 10, 14 << 10, slice_us);
        deep_thread_finishes(64 << 10, 62 << 10, slice_us);
    }
}

/// Unbounded recursion next to a hog under 100 µs slices: the fault may
/// come from the code or from a signal frame the kernel could not write.
#[test]
fn child_overflow_under_preemption() {
    if !is_child("child_overflow_under_preemption") {
        return;
    }
    let sched = common::preemptive(1, Duration::from_micros(100));
    let stop = Arc::new(AtomicBool::new(false));
    let _hog = hog(&sched, &stop);
    let h =
        ThreadBuilder::new().name("bottomless").scheduler(sched.clone()).spawn(|| descend(&|_| false, &|| ())).unwrap();
    let _ = h.join();
    println!("CHILD: the recursion returned");
    std::process::exit(3);
}

#[test]
fn an_overflow_under_preemption_is_reported_by_name() {
    let out = run_child("child_overflow_under_preemption", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("thread 'bottomless' has overflowed its stack"), "{:?}: {stderr}", out.status);
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{:?}: {stderr}", out.status);
}

/// The start of the readable mapping holding `addr`: with
/// `PMT_STACK_GUARD=mprotect`, the top of a stack's guard page.
fn mapping_start(addr: usize) -> usize {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    for line in maps.lines() {
        let range = line.split_whitespace().next().unwrap();
        let (lo, hi) = range.split_once('-').unwrap();
        let (lo, hi) = (usize::from_str_radix(lo, 16).unwrap(), usize::from_str_radix(hi, 16).unwrap());
        if (lo..hi).contains(&addr) {
            return lo;
        }
    }
    panic!("{addr:#x} is in no mapping");
}

/// A thread takes its stack pointer to within about 1.5 KiB of its guard
/// page (touching nothing below it) and spins there: the preemption
/// signal's frame (siginfo, ucontext and the XSAVE area, below a 128-byte
/// red zone on x86_64) does not fit, and the kernel forces a SIGSEGV instead
/// of delivering the signal.
#[test]
fn child_signal_frame_overflow() {
    if !is_child("child_signal_frame_overflow") {
        return;
    }
    let sched = common::preemptive(1, Duration::from_micros(100));
    let stop = Arc::new(AtomicBool::new(false));
    let _hog = hog(&sched, &stop);
    let h = ThreadBuilder::new()
        .name("brink")
        .stack_size(16 << 10)
        .scheduler(sched.clone())
        .spawn(|| {
            let top = sp_here();
            let guard_top = mapping_start(top);
            descend(&|here| here - guard_top < 1536, &|| {
                // A plain loop: no calls that could reach the guard page
                // themselves. Bounded, in case no signal ever lands.
                let mut n = 0u64;
                while n < 1 << 30 {
                    n = black_box(n + 1);
                }
            })
        })
        .unwrap();
    let _ = h.join();
    println!("CHILD: no fault");
    std::process::exit(3);
}

#[test]
fn a_signal_frame_that_does_not_fit_is_reported_as_an_overflow() {
    let out = run_child("child_signal_frame_overflow", &[("PMT_STACK_GUARD", "mprotect")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("thread 'brink' has overflowed its stack"), "{:?}: {stderr}", out.status);
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{:?}: {stderr}", out.status);
}
