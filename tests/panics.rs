//! A panic in a green thread is caught and returned by `join`.

use preemptive_mlthreading_rust::{RoundRobinScheduler, ThreadError, spawn, yield_now};
use std::error::Error;

mod common;

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
    let sched = RoundRobinScheduler::new().with_workers(1);
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
    if !common::is_child("child_named_green_panic") {
        return;
    }
    let h =
        preemptive_mlthreading_rust::ThreadBuilder::new().name("cruncher-7").spawn(|| -> u32 { panic!("bad input") });
    assert!(h.unwrap().join().is_err());
}

#[test]
fn a_panic_message_names_the_green_thread() {
    let out = common::run_child("child_named_green_panic", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("bad input"), "std's own message is kept: {stderr}");
    assert!(stderr.contains("the panicking thread is the green thread 'cruncher-7'"), "{stderr}");
}
