//! Timer preemption: spinning threads that never call the runtime still
//! share their worker, and a preempted thread resumes with its complete
//! state. No wall-clock thresholds here except "not starved" bounds.

use preemptive_mlthreading_rust::{
    Duration, RoundRobinScheduler, ThreadBuilder, arch, preempt, sleep, spawn, yield_now,
};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

mod common;
use common::{is_child, run_child, scaled};

/// Spins (never calling the runtime) until `stop`, counting turns.
fn hog(
    sched: &impl preemptive_mlthreading_rust::Scheduler,
    stop: &Arc<AtomicBool>,
    count: &Arc<AtomicU64>,
) -> preemptive_mlthreading_rust::JoinHandle<()> {
    let (stop, count) = (Arc::clone(stop), Arc::clone(count));
    preemptive_mlthreading_rust::ThreadBuilder::new()
        .scheduler(sched.clone())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                count.fetch_add(1, Ordering::Relaxed);
            }
        })
        .unwrap()
}

#[test]
fn two_spinners_and_a_sleeper_on_one_worker() {
    let sched = common::preemptive(1, Duration::from_millis(1));
    let stop = Arc::new(AtomicBool::new(false));
    let counts = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
    let hogs: Vec<_> = counts.iter().map(|c| hog(&sched, &stop, c)).collect();
    const WAKEUPS: u64 = 200;
    let sleeper = sched
        .spawn(|| {
            let mut late = Vec::new();
            for _ in 0..WAKEUPS {
                let t = Instant::now();
                sleep(Duration::from_millis(1));
                late.push(t.elapsed() - Duration::from_millis(1));
            }
            late.sort();
            (late.len() as u64, late[late.len() / 2], late[late.len() * 99 / 100])
        })
        .unwrap();
    let (wakeups, p50, p99) = sleeper.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    hogs.into_iter().for_each(|h| h.join().unwrap());
    let c: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    println!(
        "1 ms sleeper among 2 spinners, 1 ms slices: lateness p50 {p50:?} p99 {p99:?}; spinner turns {c:?}; preemptions {:?}",
        sched.worker_preemptions()
    );
    assert_eq!(wakeups, WAKEUPS);
    assert!(c.iter().all(|&n| n > 0), "both spinners progress: {c:?}");
}

#[test]
fn spinners_alone_share_the_worker() {
    let sched = common::preemptive(1, Duration::from_millis(1));
    let stop = Arc::new(AtomicBool::new(false));
    let counts = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
    let hogs: Vec<_> = counts.iter().map(|c| hog(&sched, &stop, c)).collect();
    // Bounded: until every spinner has run after every other one a few times.
    common::wait_until(
        Duration::from_secs(30),
        || sched.total_preemptions() >= 30,
        || "no preemption: the spinners starve each other".into(),
    );
    stop.store(true, Ordering::Relaxed);
    hogs.into_iter().for_each(|h| h.join().unwrap());
    let c: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    println!("3 spinners on one worker: turns {c:?}, preemptions {:?}", sched.worker_preemptions());
    assert!(c.iter().all(|&n| n > 0), "{c:?}");
}

#[test]
fn preempted_computations_equal_their_unpreempted_replay() {
    fn int_hash(seed: u64, n: u64) -> u64 {
        let mut h = seed ^ 0xcbf2_9ce4_8422_2325;
        for i in 0..n {
            h = (h ^ black_box(i)).wrapping_mul(0x100_0000_01b3).rotate_left(7);
        }
        h
    }
    fn float_sum(seed: u64, n: u64) -> u64 {
        let mut acc = seed as f64;
        for i in 0..n {
            let x = black_box(i as f64) * 1.000_000_1 + 0.5;
            acc = acc.mul_add(0.999_999_9, x.sqrt());
        }
        acc.to_bits()
    }
    fn simd_sum(seed: u64, n: u64) -> u64 {
        // Auto-vectorised lanes: keeps vector registers live across preemptions.
        let mut lanes = [seed as u32; 16];
        for i in 0..n {
            for (k, l) in lanes.iter_mut().enumerate() {
                *l = l.wrapping_mul(31).wrapping_add(black_box(i as u32) ^ k as u32);
            }
        }
        lanes.iter().fold(0u64, |a, &l| a.rotate_left(5) ^ l as u64)
    }
    let n = scaled(3_000_000);
    let work: [fn(u64, u64) -> u64; 3] = [int_hash, float_sum, simd_sum];
    let sched = common::preemptive(1, Duration::from_micros(100));
    let handles: Vec<_> = (0..12u64)
        .map(|i| {
            let f = work[(i % 3) as usize];
            sched.spawn(move || (i, f(i, n))).unwrap()
        })
        .collect();
    for h in handles {
        let (i, got) = h.join().unwrap();
        assert_eq!(got, work[(i % 3) as usize](i, n), "computation {i} differs from its replay");
    }
    println!(
        "12 computations under 100 µs slices: {:?} preemptions, all bit-identical to replays",
        sched.worker_preemptions()
    );
    assert!(sched.total_preemptions() > 0);
}

#[test]
fn register_torture_survives_preemption() {
    // Many short runs rather than one long one, so that preemption also
    // lands in the set-up and checking code, not only in the loop: that
    // matters under `qemu -singlestep` (`.ci/cross.sh <arch> --singlestep`),
    // where it can land on any instruction.
    const PER_RUN: u64 = 1_000;
    let runs = scaled(300_000_000).div_ceil(PER_RUN);
    let sched = common::preemptive(1, Duration::from_micros(100));
    let handles: Vec<_> = (0..4u64)
        .map(|i| {
            sched
                .spawn(move || (0..runs).map(|r| arch::register_torture(i * 1_000_003 + r, PER_RUN)).sum::<u64>())
                .unwrap()
        })
        .collect();
    let mismatches: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    println!(
        "register torture: mismatches {mismatches:?}, preemptions {:?}, deferred {:?}, hand-offs {:?}",
        sched.worker_preemptions(),
        sched.worker_deferred_preemptions(),
        sched.worker_hand_offs()
    );
    assert_eq!(mismatches, vec![0; 4]);
    assert!(sched.total_preemptions() > 0, "the torture loops were never preempted");
}

#[test]
fn child_println_under_preemption() {
    if !is_child("child_println_under_preemption") {
        return;
    }
    let sched = common::preemptive(2, Duration::from_micros(100));
    let handles: Vec<_> = (0..16)
        .map(|t| {
            sched
                .spawn(move || {
                    for i in 0..300 {
                        println!("thread {t} line {i} {}", "x".repeat(i % 50));
                    }
                })
                .unwrap()
        })
        .collect();
    for h in handles {
        h.join().expect("println! panicked under preemption");
    }
    eprintln!("preemptions {:?}", sched.worker_preemptions());
}

#[test]
fn println_from_many_preempted_threads_never_panics() {
    // In a child so the 4800 lines can be checked (green threads print to
    // the real stdout, not the test harness's capture).
    let out = run_child("child_println_under_preemption", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed ({:?}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    let mut seen = std::collections::HashSet::new();
    // The harness's own "test child_println... " has no newline of its own,
    // so the first line may follow it.
    for line in stdout.lines().filter_map(|l| l.find("thread ").map(|i| &l[i..])) {
        let w: Vec<&str> = line.split(' ').collect();
        let (t, i): (usize, usize) = (w[1].parse().unwrap(), w[3].parse().unwrap());
        assert_eq!(w.get(4).copied().unwrap_or(""), "x".repeat(i % 50), "torn line: {line:?}");
        assert!(seen.insert((t, i)), "duplicate line {line:?}");
    }
    assert_eq!(seen.len(), 16 * 300, "every line printed exactly once");
    println!("{}", String::from_utf8_lossy(&out.stderr).lines().find(|l| l.starts_with("preemptions")).unwrap_or(""));
}

#[test]
fn allocation_heavy_threads_stay_correct_under_100us_slices() {
    let sched = common::preemptive(2, Duration::from_micros(100));
    let handles: Vec<_> = (0..8u64)
        .map(|t| {
            sched
                .spawn(move || {
                    let mut total = 0u64;
                    for round in 0..200u64 {
                        let v: Vec<u64> = (0..1000).map(|i| i * t + round).collect();
                        let s: String = v.iter().take(20).map(|x| x.to_string()).collect();
                        let mut m = std::collections::BTreeMap::new();
                        for x in &v {
                            m.insert(*x % 97, *x);
                        }
                        total = total.wrapping_add(v.iter().sum::<u64>() + s.len() as u64 + m.len() as u64);
                    }
                    total
                })
                .unwrap()
        })
        .collect();
    for (t, h) in handles.into_iter().enumerate() {
        let t = t as u64;
        let expected: u64 = (0..200u64)
            .map(|round| {
                let v: Vec<u64> = (0..1000).map(|i| i * t + round).collect();
                let s: String = v.iter().take(20).map(|x| x.to_string()).collect();
                let m: std::collections::BTreeSet<u64> = v.iter().map(|x| x % 97).collect();
                v.iter().sum::<u64>() + s.len() as u64 + m.len() as u64
            })
            .fold(0u64, u64::wrapping_add);
        assert_eq!(h.join().unwrap(), expected);
    }
}

#[test]
fn errno_survives_preemption() {
    fn errno() -> i32 {
        // SAFETY: __errno_location returns this OS thread's errno slot.
        unsafe { *libc::__errno_location() }
    }
    fn set_errno(v: i32) {
        // SAFETY: as above.
        unsafe { *libc::__errno_location() = v }
    }
    let sched = common::preemptive(1, Duration::from_micros(100));
    let handles: Vec<_> = (0..4)
        .map(|t| {
            sched
                .spawn(move || {
                    let mut changed = 0u64;
                    for i in 0..scaled(2_000_000) {
                        set_errno(1000 + t);
                        black_box(i);
                        if errno() != 1000 + t {
                            changed += 1;
                        }
                    }
                    changed
                })
                .unwrap()
        })
        .collect();
    let changed: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    println!("errno changed under a thread {changed:?} times; preemptions {:?}", sched.worker_preemptions());
    assert_eq!(changed, vec![0; 4]);
}

#[test]
fn std_sleep_and_file_reads_never_see_eintr() {
    let sched = common::preemptive(1, Duration::from_micros(100));
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let spinner = hog(&sched, &stop, &count);
    let path = std::env::temp_dir().join(format!("pmt-eintr-{}", std::process::id()));
    std::fs::write(&path, vec![7u8; 1 << 20]).unwrap();
    let p = path.clone();
    let reader = sched
        .spawn(move || -> std::io::Result<u64> {
            let mut total = 0;
            for _ in 0..20 {
                // Blocks the worker (std, not green): signals keep arriving
                // meanwhile, and SA_RESTART / std's retry loops hide them.
                std::thread::sleep(Duration::from_millis(2));
                total += std::fs::read(&p)?.len() as u64;
            }
            Ok(total)
        })
        .unwrap();
    let total = reader.join().unwrap().expect("an I/O call surfaced an error (EINTR?)");
    stop.store(true, Ordering::Relaxed);
    spinner.join().unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(total, 20 << 20);
}

#[test]
fn priority_20_thread_preempts_priority_5_hogs() {
    // A slice so long that only wake-up preemption can run the woken thread
    // in time: each round trip must finish within the "not starved" bound.
    let sched = common::preemptive(1, Duration::from_secs(30));
    let stop = Arc::new(AtomicBool::new(false));
    let hogs: Vec<_> = (0..2)
        .map(|_| {
            let stop = Arc::clone(&stop);
            ThreadBuilder::new()
                .priority(5)
                .scheduler(sched.clone())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
                .unwrap()
        })
        .collect();
    let acks = Arc::new(AtomicU64::new(0));
    let a = Arc::clone(&acks);
    let high = ThreadBuilder::new()
        .priority(20)
        .scheduler(sched.clone())
        .spawn(move || {
            for i in 1..=50 {
                while a.load(Ordering::Acquire) != 2 * i - 1 {
                    preemptive_mlthreading_rust::park();
                }
                a.store(2 * i, Ordering::Release);
            }
        })
        .unwrap();
    let mut worst = Duration::ZERO;
    for i in 1..=50u64 {
        // Let the high thread park and a hog take the worker.
        std::thread::sleep(Duration::from_millis(2));
        let t = Instant::now();
        acks.store(2 * i - 1, Ordering::Release);
        high.thread().unpark();
        let mut reported = false;
        while acks.load(Ordering::Acquire) != 2 * i {
            if !reported && t.elapsed() > Duration::from_secs(1) {
                // What the worker did meanwhile tells a lost signal from a
                // signal that keeps landing where it must wait.
                reported = true;
                eprintln!(
                    "round {i}: no answer after 1 s; preemptions {:?}, deferred {:?}, switches {:?}",
                    sched.worker_preemptions(),
                    sched.worker_deferred_preemptions(),
                    sched.worker_switches()
                );
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "priority-20 thread starved behind priority-5 hogs (round {i}): preemptions {:?}, deferred {:?}, switches {:?}",
                sched.worker_preemptions(),
                sched.worker_deferred_preemptions(),
                sched.worker_switches()
            );
            std::hint::spin_loop();
        }
        worst = worst.max(t.elapsed());
    }
    high.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    hogs.into_iter().for_each(|h| h.join().unwrap());
    println!("priority wake-up: 50 round trips, worst {worst:?}, preemptions {:?}", sched.worker_preemptions());
}

#[test]
fn a_preempt_disable_scope_is_never_interrupted() {
    let sched = common::preemptive(1, Duration::from_micros(100));
    let in_section = Arc::new(AtomicBool::new(false));
    let intrusions = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (s, i, st) = (Arc::clone(&in_section), Arc::clone(&intrusions), Arc::clone(&stop));
    let other = sched
        .spawn(move || {
            while !st.load(Ordering::Relaxed) {
                if s.load(Ordering::Relaxed) {
                    i.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
        .unwrap();
    let s = Arc::clone(&in_section);
    let guarded = sched
        .spawn(move || {
            for _ in 0..5 {
                {
                    let _np = preempt::disable();
                    s.store(true, Ordering::Relaxed);
                    let t = Instant::now();
                    while t.elapsed() < Duration::from_millis(5) {
                        std::hint::spin_loop();
                    }
                    s.store(false, Ordering::Relaxed);
                }
                yield_now();
            }
        })
        .unwrap();
    guarded.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    other.join().unwrap();
    println!("deferred preemptions {:?}, taken {:?}", sched.worker_deferred_preemptions(), sched.worker_preemptions());
    // `other` could only have run by preempting the guarded section (not
    // even a detach, when the worker looks blocked in the kernel as it can
    // under an emulator, happens inside a preempt-disable scope).
    assert_eq!(intrusions.load(Ordering::Relaxed), 0);
    assert!(sched.worker_deferred_preemptions()[0] > 0, "the monitor did try to preempt the guarded section");
}

#[test]
fn time_slice_settings_change_how_often_spinners_switch() {
    let count = |slice: Duration| {
        let sched = common::preemptive(1, slice);
        let stop = Arc::new(AtomicBool::new(false));
        let counts = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
        let hogs: Vec<_> = counts.iter().map(|c| hog(&sched, &stop, c)).collect();
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
        hogs.into_iter().for_each(|h| h.join().unwrap());
        sched.total_preemptions()
    };
    let (short, long) = (count(Duration::from_millis(1)), count(Duration::from_millis(50)));
    println!("preemptions in 500 ms of 2 spinners: 1 ms slices {short}, 50 ms slices {long}");
    assert!(long >= 1, "50 ms slices still preempt");
    assert!(short > 2 * long, "1 ms slices preempt far more often than 50 ms ones");
}

#[test]
fn per_thread_time_slice_and_preemption_off() {
    assert!(ThreadBuilder::new().time_slice(Duration::ZERO).spawn(|| ()).is_err());
    // With preemption off the scheduler is cooperative: a spinner keeps the
    // worker until it yields.
    let sched = common::preemptive(1, Duration::from_millis(1)).with_preemption(false);
    let flag = Arc::new(AtomicBool::new(false));
    let f = Arc::clone(&flag);
    let spinner = sched
        .spawn(move || {
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(50) {
                std::hint::spin_loop();
            }
            f.load(Ordering::Relaxed)
        })
        .unwrap();
    let f = Arc::clone(&flag);
    let other = sched.spawn(move || f.store(true, Ordering::Relaxed)).unwrap();
    assert!(!spinner.join().unwrap(), "the other thread ran during the spin although preemption is off");
    other.join().unwrap();
    assert_eq!(sched.worker_preemptions(), vec![0]);
    // And a per-thread slice shorter than the scheduler's is honoured.
    let sched = common::preemptive(1, Duration::from_secs(30));
    let stop = Arc::new(AtomicBool::new(false));
    let c = Arc::new(AtomicU64::new(0));
    let short = {
        let (stop, c) = (Arc::clone(&stop), Arc::clone(&c));
        ThreadBuilder::new()
            .time_slice(Duration::from_millis(1))
            .scheduler(sched.clone())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    c.fetch_add(1, Ordering::Relaxed);
                }
            })
            .unwrap()
    };
    let ran = Arc::new(AtomicBool::new(false));
    let r = Arc::clone(&ran);
    let waiter = sched.spawn(move || r.store(true, Ordering::Release)).unwrap();
    common::wait_until(
        Duration::from_secs(10),
        || ran.load(Ordering::Acquire),
        || "a 1 ms per-thread slice was not enforced".into(),
    );
    stop.store(true, Ordering::Relaxed);
    short.join().unwrap();
    waiter.join().unwrap();
    let _ = spawn(|| ()).unwrap().join();
}

#[test]
fn child_foreign_signal_handler() {
    if !is_child("child_foreign_signal_handler") {
        return;
    }
    extern "C" fn theirs(_: libc::c_int) {}
    // SAFETY: installing a plain handler for SIGURG in this child process.
    unsafe { libc::signal(libc::SIGURG, theirs as *const () as libc::sighandler_t) };
    let err = RoundRobinScheduler::new().with_workers(1).spawn(|| ()).unwrap_err();
    println!("CHILD-ERROR: {err}");
    // Preemption off needs no signal: that scheduler still works.
    let ok = RoundRobinScheduler::new().with_workers(1).with_preemption(false).spawn(|| 5).unwrap();
    assert_eq!(ok.join().unwrap(), 5);
}

#[test]
fn a_foreign_handler_on_the_preemption_signal_is_a_clear_error() {
    let out = run_child("child_foreign_signal_handler", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("already has a handler installed by someone else"), "{stdout}");
    assert!(stdout.contains("PMT_PREEMPT_SIGNAL"), "{stdout}");
}

/// Two hogs on a 1 ms scheduler, next to `other` work: runs until they were
/// preempted 20 times (the monitor still works), bounded at 60 s.
fn monitor_still_preempts(what: &str) {
    let sched = common::preemptive(1, Duration::from_millis(1));
    let stop = Arc::new(AtomicBool::new(false));
    let counts = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
    let hogs: Vec<_> = counts.iter().map(|c| hog(&sched, &stop, c)).collect();
    common::wait_until(
        Duration::from_secs(60),
        || sched.total_preemptions() >= 20,
        || format!("{what}: the monitor stopped preempting"),
    );
    stop.store(true, Ordering::Relaxed);
    hogs.into_iter().for_each(|h| h.join().unwrap());
    println!("{what}: a 1 ms scheduler beside it was preempted {} times", sched.total_preemptions());
}

#[test]
fn the_longest_time_slices_are_clamped_and_break_nothing() {
    // A slice of Duration::MAX used to overflow the monitor's arithmetic:
    // in debug builds its thread panicked and preemption stopped for every
    // scheduler; in release it looked again every microsecond.
    let forever = common::preemptive(1, Duration::MAX);
    assert_eq!(forever.time_slice(), Duration::from_nanos(u64::MAX));
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let long_hog = hog(&forever, &stop, &count);
    let per_thread = ThreadBuilder::new().time_slice(Duration::MAX).scheduler(forever.clone()).spawn(|| 6 * 7).unwrap();
    monitor_still_preempts("a Duration::MAX scheduler slice and thread slice");
    stop.store(true, Ordering::Relaxed);
    long_hog.join().unwrap();
    // The thread with the endless slice ran once the hog stopped.
    assert_eq!(per_thread.join().unwrap(), 42);
}

#[test]
fn child_longest_env_time_slice() {
    if !is_child("child_longest_env_time_slice") {
        return;
    }
    let default = preemptive_mlthreading_rust::sched::default_scheduler().unwrap();
    assert_eq!(default.time_slice(), Duration::from_nanos(u64::MAX));
    // A hog on the default scheduler, so that the monitor watches its slice.
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let long_hog = hog(&default, &stop, &count);
    monitor_still_preempts("PMT_TIME_SLICE_US=u64::MAX");
    stop.store(true, Ordering::Relaxed);
    long_hog.join().unwrap();
    eprintln!("child done");
}

#[test]
fn the_longest_env_time_slice_is_clamped() {
    let out = run_child("child_longest_env_time_slice", &[("PMT_TIME_SLICE_US", "18446744073709551615")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.contains("child done"), "child failed ({:?}): {stderr}", out.status);
}

/// Blocks `signals` on the calling (main) thread, before any scheduler
/// starts: the runtime's threads inherit the mask.
fn block_signals(signals: &[i32]) {
    // SAFETY: sigset operations on a local set; pthread_sigmask changes
    // only the calling thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        assert_eq!(libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()), 0);
    }
}

#[test]
fn child_stripped_copy() {
    if !is_child("child_stripped_copy") {
        return;
    }
    monitor_still_preempts("a stripped copy of this test binary");
    assert!(matches!(preempt::status(), preempt::PreemptStatus::Active { .. }), "{:?}", preempt::status());
    println!("stripped child done");
}

/// Asynchronous preemption needs no symbols: a copy of this test binary
/// with its symbol table stripped still preempts spinning threads and
/// reports `Active`.
#[test]
fn a_stripped_binary_still_preempts() {
    let copy = std::env::temp_dir().join(format!("pmt-stripped-{}", std::process::id()));
    std::fs::copy(std::env::current_exe().unwrap(), &copy).unwrap();
    // Under qemu the binary is another ISA's: binutils' cross strip.
    let strip = match std::env::var_os("PMT_TEST_RUNNER") {
        None => "strip".to_owned(),
        Some(_) => format!("{}-linux-gnu-strip", std::env::consts::ARCH),
    };
    let status = std::process::Command::new(&strip).arg(&copy).status();
    assert!(matches!(status, Ok(s) if s.success()), "{strip} {}: {status:?}", copy.display());
    let sections = std::process::Command::new("readelf").arg("-S").arg(&copy).output().unwrap();
    assert!(!String::from_utf8_lossy(&sections.stdout).contains(".symtab"), "the copy still has a symbol table");
    let out = common::run_child_of(&copy, "child_stripped_copy", &[], &[]);
    let _ = std::fs::remove_file(&copy);
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success() && stdout.contains("stripped child done"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn child_signals_blocked_before_the_first_spawn() {
    if !is_child("child_signals_blocked_before_the_first_spawn") {
        return;
    }
    block_signals(&[libc::SIGURG, libc::SIGSEGV, libc::SIGBUS]);
    monitor_still_preempts("SIGURG blocked before the first spawn");
    assert!(matches!(preempt::status(), preempt::PreemptStatus::Active { .. }), "{:?}", preempt::status());
    // And an overflow is still reported, not a bare crash.
    #[inline(never)]
    fn recurse(n: u64) -> u64 {
        let buf = black_box([n as u8; 512]);
        if n == u64::MAX { 0 } else { recurse(n + 1) + buf[7] as u64 }
    }
    let h = ThreadBuilder::new().name("deep-masked").spawn(|| recurse(0)).unwrap();
    let _ = h.join();
    unreachable!("the overflow aborts the process");
}

#[test]
fn signals_blocked_before_the_first_spawn_are_unblocked_on_the_workers() {
    let out = run_child("child_signals_blocked_before_the_first_spawn", &[]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("was preempted"), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stderr.contains("thread 'deep-masked' has overflowed its stack"), "stderr: {stderr}");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "status {:?}, stderr: {stderr}", out.status);
}

#[test]
fn child_handler_replaced_after_start() {
    if !is_child("child_handler_replaced_after_start") {
        return;
    }
    monitor_still_preempts("before the handler is replaced");
    extern "C" fn theirs(_: libc::c_int) {}
    // SAFETY: installing a plain handler for SIGURG in this child process.
    unsafe { libc::signal(libc::SIGURG, theirs as *const () as libc::sighandler_t) };
    let sched = common::preemptive(1, Duration::from_millis(1));
    let stop = Arc::new(AtomicBool::new(false));
    let counts = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
    let hogs: Vec<_> = counts.iter().map(|c| hog(&sched, &stop, c)).collect();
    let t = Instant::now();
    while !matches!(preempt::status(), preempt::PreemptStatus::HandlerReplaced { .. }) {
        assert!(t.elapsed() < Duration::from_secs(30), "not detected: {:?}", preempt::status());
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    hogs.into_iter().for_each(|h| h.join().unwrap());
    println!("CHILD-STATUS: {:?}", preempt::status());
}

#[test]
fn a_handler_replaced_after_start_is_reported() {
    let out = run_child("child_handler_replaced_after_start", &[]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("CHILD-STATUS: HandlerReplaced"), "{stdout}");
    assert!(stderr.contains("was replaced by someone else"), "stderr without a logger: {stderr}");
}

#[test]
fn child_signal_blocked_by_a_green_thread() {
    if !is_child("child_signal_blocked_by_a_green_thread") {
        return;
    }
    let sched = common::preemptive(1, Duration::from_millis(1));
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    // Blocks the signal on the OS thread it runs on, then spins.
    let blocker = sched
        .spawn(move || {
            block_signals(&[libc::SIGURG]);
            while !s.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        })
        .unwrap();
    let count = Arc::new(AtomicU64::new(0));
    let sibling = hog(&sched, &stop, &count);
    let t = Instant::now();
    while !matches!(preempt::status(), preempt::PreemptStatus::Unanswered { .. }) {
        assert!(t.elapsed() < Duration::from_secs(30), "not detected: {:?}", preempt::status());
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("CHILD-STATUS: {:?}", preempt::status());
    // The blocker's worker never preempts it again: end the process here.
    stop.store(true, Ordering::Relaxed);
    drop((blocker, sibling));
    std::process::exit(0);
}

#[test]
fn a_signal_blocked_on_a_worker_is_reported() {
    let out = run_child("child_signal_blocked_by_a_green_thread", &[]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("CHILD-STATUS: Unanswered"), "{stdout}");
    assert!(stderr.contains("never arrives"), "stderr without a logger: {stderr}");
}
