//! Every bad input is an `Err` with an actionable message; none panics or hangs.

use preemptive_mlthreading_rust::stack::StackError;
use preemptive_mlthreading_rust::{
    CpuSet, Duration, RoundRobinScheduler, ThreadBuilder, ThreadError, current_cpu, park, spawn,
};
mod common;
use common::{is_child, run_child};

fn err_of(r: Result<preemptive_mlthreading_rust::JoinHandle<()>, ThreadError>) -> ThreadError {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

#[test]
fn stack_size_zero() {
    let e = err_of(ThreadBuilder::new().stack_size(0).spawn(|| ()));
    assert!(matches!(e, ThreadError::InvalidStackSize { requested: 0, .. }), "{e:?}");
    assert!(e.to_string().contains("stack_size(0)"), "{e}");
}

#[test]
fn stack_size_beyond_the_machine() {
    let e = err_of(ThreadBuilder::new().stack_size(usize::MAX / 2).spawn(|| ()));
    let ThreadError::InvalidStackSize { max, .. } = e else { panic!("{e:?}") };
    assert!(max > 0);
    assert!(e.to_string().contains("more than this machine can back"), "{e}");
}

#[test]
fn tiny_stack_sizes_are_rounded_up_and_work() {
    let h = ThreadBuilder::new().stack_size(1).spawn(|| 3).unwrap();
    assert_eq!(h.join().unwrap(), 3);
}

#[test]
fn priority_above_twenty() {
    let e = err_of(ThreadBuilder::new().priority(21).spawn(|| ()));
    assert!(matches!(e, ThreadError::InvalidPriority { requested: 21, max: 20 }), "{e:?}");
    assert!(e.to_string().contains("0 (lowest) to 20 (highest)"), "{e}");
    assert!(ThreadBuilder::new().priority(20).spawn(|| ()).unwrap().join().is_ok());
    assert!(ThreadBuilder::new().priority(0).spawn(|| ()).unwrap().join().is_ok());
}

#[test]
fn impossible_affinity() {
    let sched = RoundRobinScheduler::new().with_workers(1);
    for mask in [0u64, 1 << 63] {
        let e = err_of(ThreadBuilder::new().cpu_affinity(mask).scheduler(sched.clone()).spawn(|| ()));
        let ThreadError::InvalidAffinity { mask: m, worker_cpus } = e else { panic!("{e:?}") };
        assert_eq!(m, mask);
        assert_ne!(worker_cpus, 0);
        assert!(e.to_string().contains("names no CPU"), "{e}");
    }
}

/// The CPU the one worker of `sched` is pinned to.
fn one_worker_cpu(sched: &RoundRobinScheduler) -> usize {
    sched.spawn(|| current_cpu().unwrap()).unwrap().join().unwrap()
}

#[test]
fn empty_cpu_set() {
    let sched = RoundRobinScheduler::new().with_workers(1);
    let worker = one_worker_cpu(&sched);
    let e = err_of(ThreadBuilder::new().cpu_set(CpuSet::new()).scheduler(sched.clone()).spawn(|| ()));
    let ThreadError::InvalidCpuSet { requested, worker_cpus, .. } = &e else { panic!("{e:?}") };
    assert!(requested.is_empty());
    assert_eq!(worker_cpus.iter().collect::<Vec<_>>(), [worker]);
    let msg = e.to_string();
    assert!(msg.contains("empty CpuSet") && msg.contains(&format!("({worker})")), "{msg}");
}

#[test]
fn cpu_set_naming_no_cpu_of_this_process() {
    let sched = RoundRobinScheduler::new().with_workers(1);
    let worker = one_worker_cpu(&sched);
    // CPUs beyond any this machine (up to 1023) offers this process.
    let foreign = CpuSet::from_cpus([1000, 1023]).unwrap();
    let e = err_of(ThreadBuilder::new().cpu_set(foreign).scheduler(sched.clone()).spawn(|| ()));
    let ThreadError::InvalidCpuSet { requested, worker_cpus, process_cpus } = &e else { panic!("{e:?}") };
    assert_eq!(**requested, foreign);
    assert!(worker_cpus.contains(worker) && process_cpus.contains(worker), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("cpu_set(1000,1023) names no CPU this process may run on"), "{msg}");
    assert!(msg.contains(&format!("workers run on ({worker})")), "{msg}");
}

#[test]
fn cpu_set_naming_only_cpus_without_a_worker() {
    let sched = RoundRobinScheduler::new().with_workers(1);
    let worker = one_worker_cpu(&sched);
    // This process's CPUs; the one worker takes the first.
    let mut mine = CpuSet::new();
    for cpu in 0..CpuSet::MAX_CPUS {
        let h = ThreadBuilder::new().cpu_set(CpuSet::from_cpus([cpu]).unwrap()).scheduler(sched.clone());
        if h.spawn(|| ()).is_ok() {
            mine.insert(cpu).unwrap();
        }
    }
    assert_eq!(mine.iter().collect::<Vec<_>>(), [worker], "only the worker's CPU places a thread");
    let e = err_of(ThreadBuilder::new().cpu_set(CpuSet::new()).scheduler(sched.clone()).spawn(|| ()));
    let ThreadError::InvalidCpuSet { process_cpus, .. } = e else { panic!("{e:?}") };
    let Some(other) = process_cpus.iter().find(|&c| c != worker) else {
        println!("skipped: this process may run on one CPU only");
        return;
    };
    let e =
        err_of(ThreadBuilder::new().cpu_set(CpuSet::from_cpus([other]).unwrap()).scheduler(sched.clone()).spawn(|| ()));
    assert!(matches!(&e, ThreadError::InvalidCpuSet { requested, .. } if requested.contains(other)), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains(&format!("cpu_set({other}) names no CPU this scheduler's workers run on")), "{msg}");
    assert!(msg.contains("more workers"), "{msg}");
}

#[test]
fn the_last_of_cpu_affinity_and_cpu_set_counts() {
    // `cpu_affinity` is `cpu_set` of the mask's CPUs, but its error names
    // the mask (`impossible_affinity`); a later `cpu_set` replaces it.
    let sched = RoundRobinScheduler::new().with_workers(1);
    let worker = one_worker_cpu(&sched);
    let e = err_of(ThreadBuilder::new().cpu_affinity(0).cpu_set(CpuSet::new()).scheduler(sched.clone()).spawn(|| ()));
    assert!(matches!(e, ThreadError::InvalidCpuSet { .. }), "{e:?}");
    let e = err_of(ThreadBuilder::new().cpu_set(CpuSet::new()).cpu_affinity(0).scheduler(sched.clone()).spawn(|| ()));
    assert!(matches!(e, ThreadError::InvalidAffinity { mask: 0, .. }), "{e:?}");
    if worker < 64 {
        let h = ThreadBuilder::new().cpu_set(CpuSet::new()).cpu_affinity(1 << worker).scheduler(sched.clone());
        assert_eq!(h.spawn(current_cpu).unwrap().join().unwrap(), Some(worker));
    }
}

#[test]
fn zero_workers_and_zero_time_slice() {
    let e = err_of(RoundRobinScheduler::new().with_workers(0).spawn(|| ()));
    assert!(matches!(&e, ThreadError::Config(m) if m.contains("with_workers(0)")), "{e:?}");
    let e = err_of(RoundRobinScheduler::new().with_time_slice(Duration::ZERO).spawn(|| ()));
    assert!(matches!(&e, ThreadError::Config(m) if m.contains("with_time_slice(0)")), "{e:?}");
}

#[test]
fn spawn_on_a_stopped_scheduler() {
    let sched = RoundRobinScheduler::new().with_workers(1);
    let running = sched.spawn(|| 1).unwrap();
    sched.shutdown();
    assert!(sched.is_shut_down());
    let e = err_of(sched.spawn(|| ()));
    assert!(matches!(e, ThreadError::SchedulerStopped), "{e:?}");
    assert!(e.to_string().contains("shut down"), "{e}");
    // Threads spawned before the shutdown still complete.
    assert_eq!(running.join().unwrap(), 1);
    // And the workers exit once nothing is left.
    let mut waited = 0;
    while sched.running_workers() != 0 {
        std::thread::sleep(Duration::from_millis(5));
        waited += 1;
        assert!(waited < 2000, "workers of a shut-down scheduler never exited");
    }
}

#[test]
fn workers_stop_when_the_last_handle_is_gone() {
    let sched = RoundRobinScheduler::new().with_workers(2).with_name("stoptest");
    // A thread outliving the handles keeps the workers alive until it ends.
    let h = sched.spawn(|| preemptive_mlthreading_rust::sleep(Duration::from_millis(50))).unwrap();
    assert_eq!(sched.running_workers(), 2);
    // Each worker's host threads name themselves as they start: the owner
    // `stoptest-{i}`, the idle one waiting for a preemption `stoptest-{i}.1`.
    let mut waited = 0;
    while threads_named("stoptest-") != 4 {
        std::thread::sleep(Duration::from_millis(5));
        waited += 1;
        assert!(waited < 2000, "workers never started");
    }
    drop(sched);
    h.join().unwrap();
    let mut waited = 0;
    while threads_named("stoptest-") != 0 {
        std::thread::sleep(Duration::from_millis(5));
        waited += 1;
        assert!(waited < 2000, "workers never exited");
    }
}

fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.starts_with(prefix))
        .count()
}

// ---- child-process tests: each runs this binary again with PMT_CHILD set ----

#[test]
fn child_stack_overflow() {
    if !is_child("child_stack_overflow") {
        return;
    }
    #[inline(never)]
    fn recurse(n: u64) -> u64 {
        let buf = std::hint::black_box([n as u8; 512]);
        if n == u64::MAX { 0 } else { recurse(n + 1) + buf[7] as u64 }
    }
    let h = ThreadBuilder::new().name("deep").spawn(|| recurse(0)).unwrap();
    let _ = h.join();
    unreachable!("the overflow aborts the process");
}

#[test]
fn stack_overflow_prints_the_thread_name_and_aborts() {
    let out = run_child("child_stack_overflow", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("thread 'deep' has overflowed its stack"), "stderr: {stderr}");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "status {:?}, stderr: {stderr}", out.status);
}

#[test]
fn child_mmap_failure() {
    if !is_child("child_mmap_failure") {
        return;
    }
    let sched = RoundRobinScheduler::new().with_workers(1).with_name("mmapfail");
    sched.spawn(|| ()).unwrap().join().unwrap(); // workers started first
    // Both host threads (the owner and the idle one a preemption would
    // take) have started: std maps a signal stack as a thread starts, which
    // the limit below would make fail.
    let t = std::time::Instant::now();
    while threads_named("mmapfail-") < 2 {
        assert!(t.elapsed() < Duration::from_secs(30), "the worker's hosts never started");
        std::thread::sleep(Duration::from_millis(1));
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let vm_kb: u64 =
        status.lines().find(|l| l.starts_with("VmSize:")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    let limit = vm_kb * 1024 + (16 << 20);
    let lim = libc::rlimit { rlim_cur: limit, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: setrlimit reads the struct we pass.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) }, 0);
    let h = ThreadBuilder::new().stack_size(64 << 20).scheduler(sched.clone()).spawn(|| ()).unwrap();
    let e = h.join().unwrap_err();
    assert!(matches!(e, ThreadError::Stack(StackError::OutOfMemory { address_space_limit: Some(_), .. })), "{e:?}");
    println!("CHILD-ERROR: {e}");
    // The worker survives: a small thread still runs.
    assert_eq!(sched.spawn(|| 9).unwrap().join().unwrap(), 9);
}

/// qemu-user ignores a guest's RLIMIT_AS and maps memory of its own, so
/// kernel-limit tests say so and stop there (they test no ISA code).
fn emulated(what: &str) -> bool {
    let emulated = std::env::var_os("PMT_TEST_RUNNER").is_some();
    if emulated {
        println!("skipped under emulation: {what} depends on the host kernel's limits, not on the ISA");
    }
    emulated
}

#[test]
fn mmap_failure_is_an_error_naming_the_limit() {
    if emulated("RLIMIT_AS exhaustion") {
        return;
    }
    let out = run_child("child_mmap_failure", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("CHILD-ERROR: cannot map a 67108864-byte thread stack"), "{stdout}");
    assert!(stdout.contains("ulimit -v"), "{stdout}");
}

fn count_maps() -> usize {
    std::fs::read_to_string("/proc/self/maps").unwrap().lines().count()
}

#[test]
fn child_map_count_limit() {
    if !is_child("child_map_count_limit") {
        return;
    }
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    let start = std::time::Instant::now();
    let limit: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count").unwrap().trim().parse().unwrap();
    assert!(!preemptive_mlthreading_rust::stack::guard_regions_supported(), "PMT_STACK_GUARD=mprotect is set");
    let sched = RoundRobinScheduler::new().with_workers(1);
    // Threads that park until released each hold a stack (2 maps): 2000
    // more than the maps left could hold, had the runtime taken them all.
    let n = (limit - count_maps()) / 2 + 2000;
    static STARTED: AtomicUsize = AtomicUsize::new(0);
    static RELEASE: AtomicBool = AtomicBool::new(false);
    let mut handles: Vec<_> = (0..n)
        .map(|_| {
            ThreadBuilder::new()
                .stack_size(16 << 10)
                .scheduler(sched.clone())
                .spawn(|| {
                    STARTED.fetch_add(1, SeqCst);
                    while !RELEASE.load(SeqCst) {
                        park()
                    }
                })
                .unwrap()
        })
        .collect();
    // Wait until every thread ran (and parked) or failed to get a stack.
    while STARTED.load(SeqCst) + handles.iter().filter(|h| h.is_finished()).count() < n {
        std::thread::sleep(Duration::from_millis(10));
    }
    let at_limit = start.elapsed();
    let maps_left = limit - count_maps();
    let (failed, parked): (Vec<_>, Vec<_>) = handles.drain(..).partition(|h| h.is_finished());
    println!(
        "CHILD: {} of {n} threads got no stack; limit {limit}, {maps_left} maps left; {at_limit:?} to get there",
        failed.len()
    );
    assert!(!failed.is_empty(), "every thread got a stack: the limit was never reached");
    let mut first = None;
    for h in failed {
        let e = h.join().unwrap_err();
        assert!(matches!(e, ThreadError::Stack(StackError::MapCountLimit { .. })), "{e:?}");
        first.get_or_insert(e);
    }
    println!("CHILD-ERROR: {}", first.unwrap());
    assert!(maps_left >= preemptive_mlthreading_rust::stack::MIN_MAP_HEADROOM, "{maps_left} maps left");
    // The application's own mappings still work: glibc serves this with mmap.
    let v = std::hint::black_box(vec![7u8; 1 << 20]);
    assert_eq!(v[12345], 7);
    // Once the parked threads end, new threads get stacks again.
    RELEASE.store(true, SeqCst);
    for h in &parked {
        h.thread().unpark();
    }
    let released = parked.len();
    parked.into_iter().for_each(|h| h.join().unwrap());
    let more: Vec<_> = (0..1000).map(|i| sched.spawn(move || i * 2).unwrap()).collect();
    assert_eq!(more.into_iter().map(|h| h.join().unwrap()).sum::<usize>(), 999 * 1000);
    println!("CHILD: {released} threads released and 1000 more run; {:?} in all", start.elapsed());
}

#[test]
fn map_count_exhaustion_is_an_error_naming_the_limit() {
    if emulated("vm.max_map_count exhaustion") {
        return;
    }
    let limit: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count").unwrap().trim().parse().unwrap();
    if limit > 70_000 {
        println!("vm.max_map_count is {limit}: skipping the exhaustion test (it would need {} threads)", limit / 2);
        return;
    }
    // Guard regions (Linux 6.13) keep stacks from using up maps at all:
    // the classic mprotect'ed guard shows the error.
    let out = run_child("child_map_count_limit", &[("PMT_STACK_GUARD", "mprotect")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("vm.max_map_count"), "{stdout}");
    assert!(stdout.contains("sysctl -w vm.max_map_count="), "{stdout}");
    for line in stdout.lines().filter(|l| l.contains("CHILD")) {
        println!("{line}");
    }
}

/// With guard regions, stacks merge into a few maps: the map budget counts
/// each as one and must look again rather than refuse them near the limit.
#[test]
fn child_guard_region_stacks_past_the_map_limit() {
    if !is_child("child_guard_region_stacks_past_the_map_limit") {
        return;
    }
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    let start = std::time::Instant::now();
    let limit: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count").unwrap().trim().parse().unwrap();
    let sched = RoundRobinScheduler::new().with_workers(2);
    let n = limit + 10_000;
    static STARTED: AtomicUsize = AtomicUsize::new(0);
    let handles: Vec<_> = (0..n)
        .map(|_| {
            ThreadBuilder::new()
                .stack_size(16 << 10)
                .scheduler(sched.clone())
                .spawn(|| {
                    STARTED.fetch_add(1, SeqCst);
                    loop {
                        park()
                    }
                })
                .unwrap()
        })
        .collect();
    while STARTED.load(SeqCst) + handles.iter().filter(|h| h.is_finished()).count() < n {
        std::thread::sleep(Duration::from_millis(10));
    }
    let failed = handles.iter().filter(|h| h.is_finished()).count();
    println!("CHILD: {n} threads parked past a limit of {limit} maps, {failed} failed, in {:?}", start.elapsed());
    assert_eq!(failed, 0, "{} maps", count_maps());
    std::process::exit(0);
}

#[test]
fn guard_region_stacks_are_not_capped_by_the_map_count() {
    if emulated("guard regions") {
        return;
    }
    if !preemptive_mlthreading_rust::stack::guard_regions_supported() {
        println!("skipped: this kernel has no guard regions (Linux 6.13)");
        return;
    }
    let limit: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count").unwrap().trim().parse().unwrap();
    if limit > 70_000 {
        println!("vm.max_map_count is {limit}: skipping (it would need {} threads)", limit + 10_000);
        return;
    }
    let out = run_child("child_guard_region_stacks_past_the_map_limit", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    println!("{}", stdout.lines().find(|l| l.contains("CHILD:")).unwrap_or_default());
}

#[test]
fn child_bad_env() {
    if !is_child("child_bad_env") {
        return;
    }
    let e = spawn(|| ()).unwrap_err();
    println!("CHILD-ERROR: {e}");
}

#[test]
fn a_bad_environment_variable_is_an_error_at_spawn() {
    let out = run_child("child_bad_env", &[("PMT_WORKERS", "lots")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("CHILD-ERROR: PMT_WORKERS=\"lots\" is not a positive integer"), "{stdout}");
}

#[test]
fn child_env_configures_default() {
    if !is_child("child_env_configures_default") {
        return;
    }
    let s = preemptive_mlthreading_rust::sched::default_scheduler().unwrap();
    println!("CHILD: workers={} slice={:?}", s.workers(), s.time_slice());
}

#[test]
fn environment_configures_the_default_scheduler() {
    let out = run_child("child_env_configures_default", &[("PMT_WORKERS", "3"), ("PMT_TIME_SLICE_US", "250")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("CHILD: workers=3 slice=250µs"), "{stdout}");
}

/// Spins two threads on one worker with 1 ms slices until both have run:
/// only preemption lets the second one in.
/// qemu-user keeps the last real-time signals for itself: the guest's
/// SIGRTMAX is accepted but never delivered under it. Real hardware (and
/// the native x86_64 run) checks that preemption works through it.
fn rtmax_deliverable() -> bool {
    std::env::var_os("PMT_TEST_RUNNER").is_none()
}

fn preemption_works() -> bool {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
    let sched = RoundRobinScheduler::new().with_workers(1).with_time_slice(Duration::from_millis(1));
    let stop = Arc::new(AtomicBool::new(false));
    let counts = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
    let hs: Vec<_> = counts
        .iter()
        .map(|c| {
            let (c, stop) = (Arc::clone(c), Arc::clone(&stop));
            sched
                .spawn(move || {
                    while !stop.load(Relaxed) {
                        c.fetch_add(1, Relaxed);
                    }
                })
                .unwrap()
        })
        .collect();
    let start = std::time::Instant::now();
    while counts.iter().any(|c| c.load(Relaxed) == 0) && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(1));
    }
    stop.store(true, Relaxed);
    hs.into_iter().for_each(|h| h.join().unwrap());
    counts.iter().all(|c| c.load(Relaxed) > 0) && sched.worker_preemptions()[0] > 0
}

#[test]
fn child_preempt_signal_choice() {
    if !is_child("child_preempt_signal_choice") {
        return;
    }
    use preemptive_mlthreading_rust::preempt;
    for bad in [libc::SIGINT, libc::SIGTERM, libc::SIGPROF, libc::SIGSEGV, libc::SIGKILL, 0, libc::SIGRTMAX() + 1] {
        let e = preempt::set_signal(bad).expect_err("a signal preemption must not take");
        assert!(matches!(e, ThreadError::Config(_)), "{e:?}");
        let msg = e.to_string();
        for accepted in ["SIGURG (", "SIGUSR1 (", "SIGUSR2 (", "SIGWINCH (", "SIGIO (", "SIGRTMAX ("] {
            assert!(msg.contains(accepted), "{bad}: {msg}");
        }
        println!("CHILD-ERROR: {msg}");
    }
    preempt::set_signal(libc::SIGRTMAX()).expect("SIGRTMAX is a real-time signal like the others");
    if !rtmax_deliverable() {
        println!("CHILD: preemption through SIGRTMAX (accepted; not deliverable under qemu-user)");
        return;
    }
    assert!(preemption_works(), "no preemption through SIGRTMAX");
    // SAFETY: sigaction only writes the struct we pass.
    let handler = unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(libc::SIGRTMAX(), std::ptr::null(), &mut old), 0);
        old.sa_sigaction
    };
    assert_ne!(handler, libc::SIG_DFL, "the handler sits on SIGRTMAX");
    println!("CHILD: preemption through SIGRTMAX");
}

#[test]
fn preemption_refuses_signals_the_program_needs_and_takes_sigrtmax() {
    let out = run_child("child_preempt_signal_choice", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    let sigint = format!("CHILD-ERROR: preempt::set_signal({}): the program's own stop signals", libc::SIGINT);
    assert!(stdout.contains(&sigint), "{stdout}");
    assert!(stdout.contains("CHILD: preemption through SIGRTMAX"), "{stdout}");
}

#[test]
fn child_preempt_signal_from_env() {
    if !is_child("child_preempt_signal_from_env") {
        return;
    }
    let v = std::env::var("PMT_PREEMPT_SIGNAL").unwrap();
    match RoundRobinScheduler::new().with_workers(1).spawn(|| ()) {
        Ok(h) => {
            h.join().unwrap();
            assert!(!rtmax_deliverable() || preemption_works(), "no preemption through {v}");
            println!("CHILD: preemption through {v}");
        }
        Err(e) => println!("CHILD-ERROR: {e}"),
    }
}

#[test]
fn pmt_preempt_signal_is_checked_like_set_signal() {
    let term = libc::SIGTERM.to_string();
    let out = run_child("child_preempt_signal_from_env", &[("PMT_PREEMPT_SIGNAL", &term)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    let expected = format!("CHILD-ERROR: PMT_PREEMPT_SIGNAL=\"{term}\": the program's own stop signals");
    assert!(stdout.contains(&expected) && stdout.contains("SIGRTMIN ("), "{stdout}");

    let max = libc::SIGRTMAX().to_string();
    let out = run_child("child_preempt_signal_from_env", &[("PMT_PREEMPT_SIGNAL", &max)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("CHILD: preemption through {max}")), "{stdout}");
}

/// Each error of a chain says its own part once: no cause's message is
/// repeated in the message of the error it explains (anyhow and eyre
/// print every link of `source()`).
#[test]
fn error_sources_are_not_repeated_in_messages() {
    use std::error::Error;
    let io = || std::io::Error::from_raw_os_error(libc::EAGAIN);
    let chains: Vec<Box<dyn Error>> = vec![
        Box::new(ThreadError::Os(io())),
        Box::new(ThreadError::Stack(StackError::Os(io()))),
        Box::new(StackError::Os(io())),
        Box::new(preemptive_mlthreading_rust::metrics::MonitorError::Spawn(ThreadError::Os(io()))),
    ];
    for top in chains {
        let mut links = vec![top.to_string()];
        let mut cause = top.source();
        while let Some(c) = cause {
            links.push(c.to_string());
            cause = c.source();
        }
        assert!(links.len() >= 2, "the OS error is reachable as a source: {links:?}");
        assert_eq!(links.last().unwrap(), &io().to_string(), "the chain ends at the OS error: {links:?}");
        for pair in links.windows(2) {
            assert!(!pair[0].contains(&pair[1]), "{:?} repeats its source {:?}", pair[0], pair[1]);
        }
        println!("{}", links.join(" <- "));
    }
}
