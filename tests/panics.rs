//! A panic in a green thread is caught and returned by `join`.

use preemptive_mlthreading_rust::{RoundRobinScheduler, ThreadBuilder, ThreadError, spawn, yield_now};
use std::error::Error;
use std::os::unix::process::ExitStatusExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

mod common;
use common::{is_child, run_child};

fn quiet_panics() {
    std::panic::set_hook(Box::new(|_| {}));
}

#[test]
fn panic_is_returned_by_join_with_message_and_payload() {
    quiet_panics();
    let h = spawn(|| -> u32 { panic!("boom {}", std::hint::black_box(42)) }).unwrap();
    match h.join() {
        Err(ThreadError::Panicked(p)) => {
            assert_eq!(p.message(), "boom 42");
            let payload = p.take_payload().expect("payload");
            assert_eq!(payload.downcast_ref::<String>().map(String::as_str), Some("boom 42"));
            assert!(p.take_payload().is_none());
        }
        other => panic!("expected a panic error, got {other:?}"),
    }
}

#[test]
fn non_string_payload() {
    quiet_panics();
    let h = spawn(|| std::panic::panic_any(17u8)).unwrap();
    let Err(ThreadError::Panicked(p)) = h.join() else { panic!("expected panic") };
    assert_eq!(p.take_payload().unwrap().downcast_ref::<u8>(), Some(&17));
}

#[test]
fn other_threads_run_on_after_a_panic() {
    quiet_panics();
    let sched = common::workers(1);
    let handles: Vec<_> = (0..50u32)
        .map(|i| {
            sched
                .spawn(move || {
                    yield_now();
                    if i % 5 == 0 {
                        panic!("thread {i} fails");
                    }
                    i
                })
                .unwrap()
        })
        .collect();
    let (mut ok, mut failed) = (0, 0);
    for (i, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok(v) => {
                assert_eq!(v as usize, i);
                ok += 1
            }
            Err(ThreadError::Panicked(p)) => {
                assert_eq!(p.message(), format!("thread {i} fails"));
                failed += 1
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((ok, failed), (40, 10));
    // The worker is still healthy.
    assert_eq!(sched.spawn(|| 5).unwrap().join().unwrap(), 5);
}

#[test]
fn errors_work_with_question_mark_in_boxed_error_functions() {
    quiet_panics();
    fn run() -> Result<u32, Box<dyn Error + Send + Sync>> {
        let h = spawn(|| 1)?;
        let v = h.join()?;
        let bad = spawn(|| -> u32 { panic!("inner") })?;
        Ok(v + bad.join()?)
    }
    let err = run().unwrap_err();
    assert!(err.to_string().contains("inner"), "{err}");
    fn assert_error<E: Error + Send + Sync + 'static>() {}
    assert_error::<ThreadError>();
}

#[test]
fn child_named_green_panic() {
    if !is_child("child_named_green_panic") {
        return;
    }
    let h =
        preemptive_mlthreading_rust::ThreadBuilder::new().name("cruncher-7").spawn(|| -> u32 { panic!("bad input") });
    assert!(h.unwrap().join().is_err());
}

#[test]
fn a_panic_message_names_the_green_thread() {
    let out = run_child("child_named_green_panic", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("bad input"), "std's own message is kept: {stderr}");
    assert!(stderr.contains("the panicking thread is the green thread 'cruncher-7'"), "{stderr}");
}

/// A value whose destructor panics.
struct PanicsOnDrop(&'static str);

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("{} panicked on drop", self.0);
    }
}

/// Waits up to 10 s for a fresh thread on `sched` to run: a worker killed
/// by an unwinding destructor never runs it.
fn worker_still_runs(sched: &RoundRobinScheduler) -> bool {
    let probe = sched.spawn(|| 7).unwrap();
    let t = Instant::now();
    while !probe.is_finished() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    probe.is_finished()
}

#[test]
fn child_unjoined_result_panics_on_drop() {
    if !is_child("child_unjoined_result_panics_on_drop") {
        return;
    }
    let sched = common::workers(1);
    let go = Arc::new(AtomicBool::new(false));
    let g = Arc::clone(&go);
    let h = ThreadBuilder::new()
        .name("unjoined")
        .scheduler(sched.clone())
        .spawn(move || {
            while !g.load(Ordering::Acquire) {
                yield_now();
            }
            PanicsOnDrop("the result")
        })
        .unwrap();
    // Detached before it finishes: the runtime drops the result.
    drop(h);
    go.store(true, Ordering::Release);
    let alive = worker_still_runs(&sched);
    println!("CHILD: no abort; the worker {}", if alive { "still runs" } else { "died" });
    std::process::exit(3);
}

#[test]
fn a_detached_result_that_panics_on_drop_aborts_naming_the_thread() {
    let out = run_child("child_unjoined_result_panics_on_drop", &[]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "status {:?}\n{stdout}\n{stderr}", out.status);
    assert!(stderr.contains("the result panicked on drop"), "the panic itself is reported: {stderr}");
    assert!(
        stderr.contains("fatal runtime error: thread result panicked on drop (green thread 'unjoined'), aborting"),
        "{stderr}"
    );
}

#[test]
fn child_unrun_closure_panics_on_drop() {
    if !is_child("child_unrun_closure_panics_on_drop") {
        return;
    }
    let sched = common::workers(1);
    sched.spawn(|| ()).unwrap().join().unwrap(); // the worker is started
    // An address-space limit that leaves no room for a 64 MiB stack.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let vm_kb: u64 =
        status.lines().find(|l| l.starts_with("VmSize:")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    let lim = libc::rlimit { rlim_cur: vm_kb * 1024 + (16 << 20), rlim_max: libc::RLIM_INFINITY };
    // SAFETY: setrlimit reads the struct we pass.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) }, 0);
    let captured = PanicsOnDrop("the closure");
    let h = ThreadBuilder::new()
        .name("stackless")
        .stack_size(64 << 20)
        .scheduler(sched.clone())
        .spawn(move || drop(captured))
        .unwrap();
    drop(h);
    let alive = worker_still_runs(&sched);
    println!("CHILD: no abort; the worker {}", if alive { "still runs" } else { "died" });
    std::process::exit(3);
}

#[test]
fn the_captures_of_a_thread_that_never_ran_abort_if_they_panic_on_drop() {
    if std::env::var_os("PMT_TEST_RUNNER").is_some() {
        println!("skipped under emulation: qemu-user ignores RLIMIT_AS");
        return;
    }
    let out = run_child("child_unrun_closure_panics_on_drop", &[]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "status {:?}\n{stdout}\n{stderr}", out.status);
    assert!(
        stderr.contains(
            "fatal runtime error: the closure of a thread that never ran panicked on drop (green thread \
             'stackless'), aborting"
        ),
        "{stderr}"
    );
}

#[test]
fn a_joined_result_that_panics_on_drop_panics_in_the_joiner_only() {
    quiet_panics();
    let v = spawn(|| PanicsOnDrop("mine")).unwrap().join().unwrap();
    let r = std::panic::catch_unwind(AssertUnwindSafe(|| drop(v)));
    let msg = r.unwrap_err().downcast::<String>().unwrap();
    assert_eq!(*msg, "mine panicked on drop");
    assert_eq!(spawn(|| 5).unwrap().join().unwrap(), 5, "the runtime is unaffected");
}

/// A green-local whose destructor panics, and one that records its drop.
struct Exploding;

impl Drop for Exploding {
    fn drop(&mut self) {
        panic!("a green-local destructor panicked");
    }
}

static EXPLODING: preemptive_mlthreading_rust::thread::GreenLocal<Exploding> =
    preemptive_mlthreading_rust::thread::GreenLocal::new(|| Exploding);

struct Counted;

static COUNTED_DROPS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Drop for Counted {
    fn drop(&mut self) {
        COUNTED_DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

static COUNTED: preemptive_mlthreading_rust::thread::GreenLocal<Counted> =
    preemptive_mlthreading_rust::thread::GreenLocal::new(|| Counted);

#[test]
fn a_panicking_green_local_destructor_fails_the_join() {
    quiet_panics();
    let before = COUNTED_DROPS.load(Ordering::SeqCst);
    let h = spawn(|| {
        COUNTED.with(|_| ());
        EXPLODING.with(|_| ());
        5u32
    })
    .unwrap();
    match h.join() {
        Err(ThreadError::Panicked(p)) => assert_eq!(p.message(), "a green-local destructor panicked"),
        other => panic!("expected the destructor's panic, got {other:?}"),
    }
    assert_eq!(COUNTED_DROPS.load(Ordering::SeqCst), before + 1, "the other locals are dropped all the same");

    // When the thread itself panicked, its own panic is the one reported.
    let h = spawn(|| -> u32 {
        EXPLODING.with(|_| ());
        panic!("the body panicked")
    })
    .unwrap();
    match h.join() {
        Err(ThreadError::Panicked(p)) => assert_eq!(p.message(), "the body panicked"),
        other => panic!("expected the body's panic, got {other:?}"),
    }
}
