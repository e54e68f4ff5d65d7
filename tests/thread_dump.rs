//! Thread dumps: a parked thread listed by name, sleeping, held, runnable
//! and finished threads told apart, run and wait times of profiled
//! threads, and the dump printed on a signal (in a child process).

mod common;

use common::{is_child, run_child, wait_until};
use preemptive_mlthreading_rust::metrics::{
    ThreadDump, ThreadInfo, ThreadState, dump_threads_on_signal, enable_thread_dumps, signal_dumps_printed,
};
use preemptive_mlthreading_rust::{Duration, ThreadBuilder, park, sleep};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn find(dump: &ThreadDump, name: &str) -> Option<ThreadInfo> {
    dump.threads.iter().find(|t| t.name.as_deref() == Some(name)).cloned()
}

fn wait_for_state(name: &str, state: ThreadState) -> ThreadInfo {
    wait_until(
        Duration::from_secs(30),
        || find(&ThreadDump::capture(), name).is_some_and(|t| t.state == state),
        || format!("{name} not {state:?}:\n{}", ThreadDump::capture()),
    );
    find(&ThreadDump::capture(), name).unwrap()
}

#[test]
fn a_dump_lists_threads_by_name_and_state() {
    enable_thread_dumps();
    let sched = common::preemptive(1, Duration::from_millis(2));
    let stop = Arc::new(AtomicBool::new(false));
    let parked = {
        let stop = stop.clone();
        ThreadBuilder::new()
            .name("dump-parked")
            .scheduler(sched.clone())
            .enable_profiling(true)
            .spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    park();
                }
            })
            .unwrap()
    };
    let sleeper = {
        let stop = stop.clone();
        ThreadBuilder::new()
            .name("dump-sleeper")
            .scheduler(sched.clone())
            .spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    sleep(Duration::from_millis(50));
                }
            })
            .unwrap()
    };
    let spinners: Vec<_> = (0..2)
        .map(|i| {
            let stop = stop.clone();
            ThreadBuilder::new()
                .name(format!("dump-spin-{i}"))
                .scheduler(sched.clone())
                .spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        std::hint::spin_loop();
                    }
                })
                .unwrap()
        })
        .collect();
    let done = ThreadBuilder::new().name("dump-done").scheduler(sched.clone()).spawn(|| 7).unwrap();

    let p = wait_for_state("dump-parked", ThreadState::Parked);
    assert_eq!(p.id, parked.thread().id());
    assert!(p.profiled && p.run_time.is_some());
    assert!(p.waiting.is_some(), "a parked profiled thread is off the CPU");
    wait_for_state("dump-sleeper", ThreadState::Sleeping);
    wait_for_state("dump-done", ThreadState::Finished);
    // Two spinners on one preemptive worker: one runs, the other waits in
    // the queue or on its OS thread after a preemption.
    let dump = ThreadDump::capture();
    for i in 0..2 {
        let s = find(&dump, &format!("dump-spin-{i}")).unwrap();
        assert!(matches!(s.state, ThreadState::Runnable | ThreadState::Held), "{s:?}");
        assert!(!s.profiled && s.run_time.is_none());
    }
    assert!(dump.live_threads >= dump.threads.iter().filter(|t| t.state != ThreadState::Finished).count());
    let text = dump.to_string();
    println!("{text}");
    assert!(text.contains("\"dump-parked\" [Parked]"), "{text}");

    stop.store(true, Ordering::Release);
    parked.thread().unpark();
    parked.join().unwrap();
    sleeper.join().unwrap();
    spinners.into_iter().for_each(|h| h.join().unwrap());
    let id = done.thread().id();
    assert_eq!(done.join().unwrap(), 7);
    // Joined and dropped: gone from the list.
    assert!(ThreadDump::capture().threads.iter().all(|t| t.id != id));
}

#[test]
fn a_signal_prints_the_dump() {
    let out = run_child("child_dump_on_signal", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("child stderr:\n{stderr}");
    assert!(out.status.success(), "{out:?}");
    assert!(stderr.contains("\"signal-waiter\" [Parked]"), "{stderr}");
}

#[test]
fn child_dump_on_signal() {
    if !is_child("child_dump_on_signal") {
        return;
    }
    dump_threads_on_signal(libc::SIGQUIT).unwrap();
    dump_threads_on_signal(libc::SIGQUIT).unwrap(); // again: nothing more
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let h = ThreadBuilder::new()
        .name("signal-waiter")
        .spawn(move || {
            while !s.load(Ordering::Acquire) {
                park();
            }
        })
        .unwrap();
    wait_for_state("signal-waiter", ThreadState::Parked);
    // SAFETY: raising a signal whose handler we installed.
    assert_eq!(unsafe { libc::raise(libc::SIGQUIT) }, 0);
    // The helper thread prints asynchronously.
    wait_until(Duration::from_secs(30), || signal_dumps_printed() >= 1, || "no dump printed".into());
    stop.store(true, Ordering::Release);
    h.thread().unpark();
    h.join().unwrap();
}
