//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses some of these

use std::process::{Command, Output};

/// Runs the test `name` of the current test binary in a child process with
/// `PMT_CHILD=name`. Under an emulator (`.ci/cross-*.sh` sets
/// `PMT_TEST_RUNNER`, e.g. to `qemu-aarch64 -L ...`) the child is started
/// through it too.
pub fn run_child(name: &str, env: &[(&str, &str)]) -> Output {
    run_child_unset(name, env, &[])
}

/// [`run_child`], with the variables `unset` removed from the child's
/// environment.
pub fn run_child_unset(name: &str, env: &[(&str, &str)], unset: &[&str]) -> Output {
    run_child_of(&std::env::current_exe().unwrap(), name, env, unset)
}

/// [`run_child_unset`], running the test binary `exe` (a copy of this
/// one, say) instead of the current one.
pub fn run_child_of(exe: &std::path::Path, name: &str, env: &[(&str, &str)], unset: &[&str]) -> Output {
    let runner = std::env::var("PMT_TEST_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    let mut cmd = match words.next() {
        Some(emulator) => {
            let mut c = Command::new(emulator);
            c.args(words).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"]).env("PMT_CHILD", name);
    for (k, v) in env {
        cmd.env(k, v);
    }
    for k in unset {
        cmd.env_remove(k);
    }
    // qemu-user now and then hangs a forked child of a multithreaded
    // process before it execs (a lock of the emulator's held across the
    // fork): such a child is killed after a bound no real child test comes
    // near, and started once more, loudly.
    let emulated = std::env::var_os("PMT_TEST_RUNNER").is_some();
    let limit = std::time::Duration::from_secs(if emulated { 240 } else { 120 });
    match output_within(&mut cmd, limit) {
        Some(out) => out,
        None => {
            eprintln!("!! child test {name} did not finish in {limit:?}; killed and started once more");
            output_within(&mut cmd, limit).unwrap_or_else(|| panic!("child test {name} hung twice"))
        }
    }
}

/// Runs `cmd` to completion with its output captured; None, having
/// killed it, when it takes longer than `limit`.
fn output_within(cmd: &mut Command, limit: std::time::Duration) -> Option<Output> {
    use std::process::Stdio;
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => Some(out.unwrap()),
        Err(_) => {
            // SAFETY: signalling our own child, which has not been reaped
            // (the waiting thread reaps it after this kill).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = rx.recv();
            None
        }
    }
}

/// [`run_child`], failing unless the child succeeded and printed
/// `marker`; its standard output, printed too.
pub fn child_passes(name: &str, marker: &str) -> String {
    let out = run_child(name, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{stdout}");
    assert!(out.status.success() && stdout.contains(marker), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// Whether this process is the child started by [`run_child`] for `name`.
pub fn is_child(name: &str) -> bool {
    std::env::var("PMT_CHILD").as_deref() == Ok(name)
}

/// `n`, or a twentieth of it under an emulator (`PMT_TEST_RUNNER` set),
/// where every instruction costs ~20 times more, divided again by
/// `PMT_TEST_SLOWDOWN` when that is set (`.ci/cross.sh --singlestep` runs
/// qemu one instruction per translation block, ~10 times slower still).
pub fn scaled(n: u64) -> u64 {
    let slowdown = std::env::var("PMT_TEST_SLOWDOWN").ok().and_then(|s| s.parse::<u64>().ok()).unwrap_or(1).max(1);
    let emulated = if std::env::var_os("PMT_TEST_RUNNER").is_some() { 20 } else { 1 };
    (n / emulated / slowdown).max(1)
}

use preemptive_mlthreading_rust::{Duration, JoinHandle, RoundRobinScheduler};
use std::time::Instant;

/// The scheduler most tests run on: `workers` workers, preempting a thread
/// that runs `slice` without a switch.
pub fn preemptive(workers: usize, slice: Duration) -> RoundRobinScheduler {
    RoundRobinScheduler::new().with_workers(workers).with_time_slice(slice)
}

/// `workers` workers with the default time slice.
pub fn workers(workers: usize) -> RoundRobinScheduler {
    RoundRobinScheduler::new().with_workers(workers)
}

/// `trips` round trips of a value between two threads of `sched` over
/// capacity-1 channels: each side parks in turn (blocking switches).
pub fn ping_pong(sched: &RoundRobinScheduler, trips: u64) {
    use preemptive_mlthreading_rust::sync::channel;
    let (to_b, from_a) = channel::bounded::<u64>(1);
    let (to_a, from_b) = channel::bounded::<u64>(1);
    let b = sched.spawn(move || from_a.iter().for_each(|v| to_a.send(v).unwrap())).unwrap();
    let a = sched
        .spawn(move || {
            for i in 0..trips {
                to_b.send(i).unwrap();
                assert_eq!(from_b.recv().unwrap(), i);
            }
        })
        .unwrap();
    a.join().unwrap();
    b.join().unwrap();
}

/// Joins every handle, in order, failing on a thread's panic.
pub fn join_all<T>(handles: Vec<JoinHandle<T>>) -> Vec<T> {
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// Polls `done` every 5 ms until it holds, and fails with `why()` once
/// `limit` has passed. A liveness bound, never a speed check: `limit` is
/// tens of seconds where the wait normally takes milliseconds, so that a
/// hang fails its test with a diagnosis instead of stalling the suite.
pub fn wait_until(limit: Duration, mut done: impl FnMut() -> bool, why: impl Fn() -> String) {
    let t = Instant::now();
    while !done() {
        assert!(t.elapsed() < limit, "still waiting after {limit:?}: {}", why());
        std::thread::sleep(Duration::from_millis(5));
    }
}
