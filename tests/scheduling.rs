//! The round-robin policy: interleaving, strict priorities, the aging bound
//! and CPU affinity.

mod common;

use preemptive_mlthreading_rust::{
    CpuSet, MigrationPolicy, RoundRobinScheduler, ThreadBuilder, current_cpu, num_cpus, park, sched, yield_now,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Occupies the single worker of `sched` (no yield, so nothing else runs)
/// until the returned flag is set: lets a test queue threads before any run.
fn block_worker(sched: &RoundRobinScheduler) -> (Arc<AtomicBool>, preemptive_mlthreading_rust::JoinHandle<()>) {
    spinner(sched, 20, None)
}

/// A thread of `priority` (pinned to `cpu` if given) that spins without
/// yielding until the returned flag is set; returns once it runs.
fn spinner(
    sched: &RoundRobinScheduler,
    priority: u8,
    cpu: Option<usize>,
) -> (Arc<AtomicBool>, preemptive_mlthreading_rust::JoinHandle<()>) {
    let release = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicBool::new(false));
    let (r, s) = (Arc::clone(&release), Arc::clone(&started));
    let mut b = ThreadBuilder::new().priority(priority).scheduler(sched.clone());
    if let Some(cpu) = cpu {
        b = b.cpu_affinity(1 << cpu);
    }
    let h = b
        .spawn(move || {
            s.store(true, Ordering::Release);
            while !r.load(Ordering::Acquire) {
                std::hint::spin_loop();
            }
        })
        .unwrap();
    while !started.load(Ordering::Acquire) {
        std::thread::yield_now();
    }
    (release, h)
}

/// Lets the worker taken by [`block_worker`] go, then joins everything.
fn release_and_join(
    release: &AtomicBool,
    gate: preemptive_mlthreading_rust::JoinHandle<()>,
    handles: impl IntoIterator<Item = preemptive_mlthreading_rust::JoinHandle<()>>,
) {
    release.store(true, Ordering::Release);
    gate.join().unwrap();
    handles.into_iter().for_each(|h| h.join().unwrap());
}

#[test]
fn yielding_threads_interleave_on_one_worker() {
    let sched = common::workers(1);
    let log = Arc::new(Mutex::new(Vec::new()));
    let (release, gate) = block_worker(&sched);
    let handles: Vec<_> = (0..3)
        .map(|t| {
            let log = Arc::clone(&log);
            sched
                .spawn(move || {
                    for i in 0..5 {
                        log.lock().unwrap().push((t, i));
                        yield_now();
                    }
                })
                .unwrap()
        })
        .collect();
    release_and_join(&release, gate, handles);
    let log = log.lock().unwrap();
    let expected: Vec<_> = (0..5).flat_map(|i| (0..3).map(move |t| (t, i))).collect();
    assert_eq!(*log, expected, "three yielding threads must strictly alternate");
}

#[test]
fn priorities_run_highest_first_on_one_worker() {
    let sched = common::workers(1);
    let order = Arc::new(Mutex::new(Vec::new()));
    let (release, gate) = block_worker(&sched);
    let prios = [5u8, 10, 0, 20, 15, 18, 10];
    let handles: Vec<_> = prios
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            let order = Arc::clone(&order);
            ThreadBuilder::new()
                .priority(p)
                .scheduler(sched.clone())
                .spawn(move || order.lock().unwrap().push((p, i)))
                .unwrap()
        })
        .collect();
    release_and_join(&release, gate, handles);
    let order = order.lock().unwrap();
    // Highest level first; FIFO within a level (the two 10s keep spawn order).
    assert_eq!(*order, vec![(20, 3), (18, 5), (15, 4), (10, 1), (10, 6), (5, 0), (0, 2)]);
}

#[test]
fn a_yielding_high_priority_thread_keeps_the_cpu_but_low_levels_still_get_turns() {
    let sched = common::workers(1);
    let low_ran = Arc::new(AtomicU64::new(0));
    let high_yields = Arc::new(AtomicU64::new(0));
    let (release, gate) = block_worker(&sched);
    let (l, hy) = (Arc::clone(&low_ran), Arc::clone(&high_yields));
    let high = ThreadBuilder::new()
        .priority(20)
        .scheduler(sched.clone())
        .spawn(move || {
            // Yields until the low thread has had a turn: strict priority
            // alone would never give it one.
            while l.load(Ordering::Acquire) == 0 {
                hy.fetch_add(1, Ordering::Relaxed);
                yield_now();
            }
        })
        .unwrap();
    let l = Arc::clone(&low_ran);
    let hy = Arc::clone(&high_yields);
    let low = ThreadBuilder::new()
        .priority(1)
        .scheduler(sched.clone())
        .spawn(move || l.store(hy.load(Ordering::Relaxed).max(1), Ordering::Release))
        .unwrap();
    release_and_join(&release, gate, [high, low]);
    let yields_before_low = low_ran.load(Ordering::Relaxed);
    // A worker that looks blocked in the kernel (as one can under an
    // emulator) detaches its thread, which queues again when it next
    // yields: the count can start afresh.
    let hand_offs = sched.worker_hand_offs()[0];
    println!("low-priority thread ran after {yields_before_low} high-priority yields ({hand_offs} hand-offs)");
    // Strictness: many decisions favoured the high thread first ...
    assert!(yields_before_low >= u64::from(sched::AGING_PERIOD) / 2);
    // ... and the aging bound held.
    assert!(yields_before_low <= (hand_offs + 1) * (u64::from(sched::AGING_PERIOD) + 1));
}

#[test]
fn a_woken_high_priority_thread_runs_next_however_often_it_is_woken() {
    // Two low-priority threads take turns waking a high-priority one and
    // yielding. Each wake-up passes over the other (waiting) low thread,
    // but the low level had the CPU, so no aging turn may delay the high
    // thread: every wake-up is followed by the high thread, never by the
    // other low thread (before the fix, the 256th was).
    const ROUNDS: usize = 2 * sched::AGING_PERIOD as usize;
    let sched = RoundRobinScheduler::new().with_workers(1).with_preemption(false);
    let log = Arc::new(Mutex::new(Vec::new()));
    let (release, gate) = block_worker(&sched);
    let stop = Arc::new(AtomicBool::new(false));
    let (hl, hs) = (Arc::clone(&log), Arc::clone(&stop));
    let high = ThreadBuilder::new()
        .priority(20)
        .scheduler(sched.clone())
        .spawn(move || {
            while !hs.load(Ordering::Acquire) {
                park();
                hl.lock().unwrap().push('H');
            }
        })
        .unwrap();
    let lows: Vec<_> = (0..2)
        .map(|_| {
            let (l, h) = (Arc::clone(&log), high.thread().clone());
            ThreadBuilder::new()
                .priority(1)
                .scheduler(sched.clone())
                .spawn(move || {
                    for _ in 0..ROUNDS / 2 {
                        l.lock().unwrap().push('w');
                        h.unpark();
                        yield_now();
                    }
                })
                .unwrap()
        })
        .collect();
    release.store(true, Ordering::Release);
    gate.join().unwrap();
    lows.into_iter().for_each(|h| h.join().unwrap());
    stop.store(true, Ordering::Release);
    high.thread().unpark();
    high.join().unwrap();
    let log: String = log.lock().unwrap().iter().collect();
    let wakes = log.matches('w').count();
    assert_eq!(wakes, ROUNDS);
    let late = log.find("ww");
    assert_eq!(late, None, "a wake-up was followed by the other low thread (log {log})");
}

#[test]
fn every_waiting_level_gets_turns_under_a_hog() {
    let sched = common::workers(1);
    let stop = Arc::new(AtomicBool::new(false));
    let counts: Arc<Vec<AtomicU64>> = Arc::new((0..3).map(|_| AtomicU64::new(0)).collect());
    let (release, gate) = block_worker(&sched);
    let levels = [2u8, 8, 14];
    let mut handles = Vec::new();
    for (k, &p) in levels.iter().enumerate() {
        let (stop, counts) = (Arc::clone(&stop), Arc::clone(&counts));
        handles.push(
            ThreadBuilder::new()
                .priority(p)
                .scheduler(sched.clone())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        counts[k].fetch_add(1, Ordering::Relaxed);
                        yield_now();
                    }
                })
                .unwrap(),
        );
    }
    let (s, c) = (Arc::clone(&stop), Arc::clone(&counts));
    let hog = ThreadBuilder::new()
        .priority(20)
        .scheduler(sched.clone())
        .spawn(move || {
            // Until every lower level has run a few times.
            while c.iter().any(|n| n.load(Ordering::Relaxed) < 5) {
                yield_now();
            }
            s.store(true, Ordering::Relaxed);
        })
        .unwrap();
    release_and_join(&release, gate, std::iter::once(hog).chain(handles));
    let c: Vec<u64> = counts.iter().map(|n| n.load(Ordering::Relaxed)).collect();
    println!("turns per level {levels:?} under a priority-20 hog: {c:?}");
    // Higher waiting levels get their turns no less often than lower ones.
    assert!(c[2] >= c[0], "{c:?}");
}

#[test]
fn affinity_is_honoured() {
    let sched = RoundRobinScheduler::new();
    let cpus: Vec<usize> = (0..64).filter(|c| sched_cpus(&sched) & (1 << c) != 0).collect();
    for &cpu in &cpus {
        let handles: Vec<_> = (0..20)
            .map(|_| {
                ThreadBuilder::new()
                    .cpu_affinity(1 << cpu)
                    .scheduler(sched.clone())
                    .spawn(move || {
                        let mut seen = Vec::new();
                        for _ in 0..50 {
                            seen.push(current_cpu().unwrap());
                            yield_now();
                        }
                        seen
                    })
                    .unwrap()
            })
            .collect();
        for h in handles {
            let seen = h.join().unwrap();
            assert!(seen.iter().all(|&c| c == cpu), "pinned to {cpu}, ran on {seen:?}");
        }
    }
    println!("affinity honoured on CPUs {cpus:?}");
}

/// Where threads restricted by `cpus` on `sched` run, `n` of them, each
/// looking a few times across yields.
fn cpus_seen(sched: &RoundRobinScheduler, cpus: CpuSet, n: usize) -> std::collections::BTreeSet<usize> {
    let handles: Vec<_> = (0..n)
        .map(|_| {
            ThreadBuilder::new()
                .cpu_set(cpus)
                .scheduler(sched.clone())
                .spawn(|| {
                    (0..20)
                        .map(|_| {
                            yield_now();
                            current_cpu().unwrap()
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap()
        })
        .collect();
    handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
}

#[test]
fn a_cpu_set_is_honoured() {
    let sched = RoundRobinScheduler::new().with_workers(2);
    let workers = sched_cpus(&sched);
    let cpus: Vec<usize> = (0..64).filter(|c| workers & (1 << c) != 0).collect();
    for &cpu in &cpus {
        let seen = cpus_seen(&sched, CpuSet::from_cpus([cpu]).unwrap(), 10);
        assert_eq!(seen, [cpu].into(), "restricted to CPU {cpu}");
        // CPUs no worker runs on (here: none from 64 on) do not count.
        let seen = cpus_seen(&sched, CpuSet::from_cpus([cpu, 64, 1023]).unwrap(), 10);
        assert_eq!(seen, [cpu].into(), "restricted to CPUs {cpu},64,1023");
    }
    if cpus.len() >= 2 {
        // A set of both workers' CPUs deals its threads to both in turn.
        let both = CpuSet::from_cpus(cpus.iter().copied()).unwrap();
        assert_eq!(cpus_seen(&sched, both, 8), cpus.iter().copied().collect());
    }
    println!("cpu_set honoured on CPUs {cpus:?}");
}

#[test]
fn cpu_set_of_cpu_1_runs_on_cpu_1() {
    let sched = RoundRobinScheduler::new().with_workers(2);
    if sched_cpus(&sched) & 0b10 == 0 {
        println!("skipped: no worker on CPU 1 here");
        return;
    }
    let h = ThreadBuilder::new().cpu_set(CpuSet::from_cpus([1]).unwrap()).scheduler(sched.clone());
    assert_eq!(h.spawn(current_cpu).unwrap().join().unwrap(), Some(1));
}

#[test]
fn the_default_worker_count_is_num_cpus() {
    assert_eq!(RoundRobinScheduler::new().workers(), num_cpus());
}

/// CPUs the scheduler's workers run on (workers start on first spawn).
/// The worker running the caller: its host OS threads are named
/// `{scheduler}-{index}`, and `{scheduler}-{index}.{n}` for the extra
/// hosts that take the worker over while a preempted thread keeps its own.
fn worker_name() -> String {
    let name = std::thread::current().name().unwrap().to_owned();
    name.split('.').next().unwrap().to_owned()
}

fn sched_cpus(sched: &RoundRobinScheduler) -> u64 {
    let seen = Arc::new(Mutex::new(0u64));
    let hs: Vec<_> = (0..sched.workers() * 4)
        .map(|_| {
            let seen = Arc::clone(&seen);
            sched.spawn(move || *seen.lock().unwrap() |= 1 << current_cpu().unwrap()).unwrap()
        })
        .collect();
    hs.into_iter().for_each(|h| h.join().unwrap());
    *seen.lock().unwrap()
}

#[test]
fn workers_spread_new_threads_round_robin() {
    let sched = RoundRobinScheduler::new().with_workers(2).with_name("spread");
    let names = Arc::new(preemptive_mlthreading_rust::Mutex::new(std::collections::BTreeSet::new()));
    let hs: Vec<_> = (0..8)
        .map(|_| {
            let names = Arc::clone(&names);
            sched.spawn(move || names.lock().insert(worker_name())).unwrap()
        })
        .collect();
    hs.into_iter().for_each(|h| {
        h.join().unwrap();
    });
    let names = names.lock();
    for worker in ["spread-0", "spread-1"] {
        assert!(names.contains(worker), "both workers get threads: {names:?}");
    }
}

/// What the outranking-wake tests observe of the high-priority thread.
struct WakeSeen {
    /// Whether it had run by the time the waker's `unpark` returned.
    ran_before_unpark_returned: bool,
    /// The workers (OS thread names) it parked on and woke on.
    parked_on: String,
    woke_on: String,
    migrations: u64,
}

/// How the woken thread of [`outranking_wake`] is spawned.
#[derive(Clone, Copy, PartialEq)]
enum Placed {
    Movable,
    Pinned,
    Policy(MigrationPolicy),
}

/// A priority-20 thread parks on one worker of two, a priority-5 hog that
/// never yields takes that worker, and a priority-10 thread on the other
/// worker unparks the first. `placed` says whether the high thread has a
/// CPU affinity or a migration policy. None when the machine has fewer
/// than two CPUs to pin to.
fn outranking_wake(placed: Placed) -> Option<WakeSeen> {
    let name = match placed {
        Placed::Movable => "movable",
        Placed::Pinned => "pinned",
        Placed::Policy(MigrationPolicy::Prohibited) => "prohibited",
        Placed::Policy(_) => "policy",
    };
    let sched = RoundRobinScheduler::new().with_workers(2).with_name(name);
    let cpus: Vec<usize> = (0..64).filter(|c| sched_cpus(&sched) & (1 << c) != 0).collect();
    if cpus.len() < 2 {
        println!("skipped: the workers share one CPU ({cpus:?})");
        return None;
    }
    let (parked_cpu, go, woke) =
        (Arc::new(AtomicU64::new(u64::MAX)), Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let (pc, g, w) = (Arc::clone(&parked_cpu), Arc::clone(&go), Arc::clone(&woke));
    let mut high = ThreadBuilder::new().priority(20).scheduler(sched.clone());
    match placed {
        Placed::Movable => {}
        Placed::Pinned => high = high.cpu_affinity(1 << cpus[0]),
        Placed::Policy(p) => high = high.migration_policy(p),
    }
    let high = high
        .spawn(move || {
            let parked_on = worker_name();
            pc.store(current_cpu().unwrap() as u64, Ordering::Release);
            while !g.load(Ordering::Acquire) {
                park();
            }
            w.store(true, Ordering::Release);
            (parked_on, worker_name())
        })
        .unwrap();
    while parked_cpu.load(Ordering::Acquire) == u64::MAX {
        std::thread::yield_now();
    }
    let home = parked_cpu.load(Ordering::Acquire) as usize;
    let other = *cpus.iter().find(|&&c| c != home).unwrap();
    // The hog runs only once the high thread, above it on that worker, parks.
    let (stop, hog) = spinner(&sched, 5, Some(home));
    let (g, w, t) = (Arc::clone(&go), Arc::clone(&woke), high.thread().clone());
    let ran_before_unpark_returned = ThreadBuilder::new()
        .priority(10)
        .cpu_affinity(1 << other)
        .scheduler(sched.clone())
        .spawn(move || {
            g.store(true, Ordering::Release);
            t.unpark();
            w.load(Ordering::Acquire)
        })
        .unwrap()
        .join()
        .unwrap();
    let (parked_on, woke_on) = high.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    hog.join().unwrap();
    let migrations = sched.worker_wake_migrations().iter().sum();
    Some(WakeSeen { ran_before_unpark_returned, parked_on, woke_on, migrations })
}

#[test]
fn an_outranking_wake_from_another_worker_runs_at_once_on_the_wakers_worker() {
    let Some(seen) = outranking_wake(Placed::Movable) else { return };
    println!("parked on {}, woke on {}, {} migration(s)", seen.parked_on, seen.woke_on, seen.migrations);
    assert!(seen.ran_before_unpark_returned, "the woken thread waited for its own worker");
    assert_ne!(seen.parked_on, seen.woke_on, "the woken thread stayed on the hog's worker");
    assert_eq!(seen.migrations, 1);
}

#[test]
fn a_thread_with_cpu_affinity_is_woken_on_its_own_worker() {
    let Some(seen) = outranking_wake(Placed::Pinned) else { return };
    println!("parked on {}, woke on {}", seen.parked_on, seen.woke_on);
    assert_eq!(seen.parked_on, seen.woke_on, "a pinned thread moved");
    assert_eq!(seen.migrations, 0);
}

#[test]
fn a_thread_whose_migration_is_prohibited_is_woken_on_its_own_worker() {
    let Some(seen) = outranking_wake(Placed::Policy(MigrationPolicy::Prohibited)) else { return };
    println!("prohibited: parked on {}, woke on {}", seen.parked_on, seen.woke_on);
    assert_eq!(seen.parked_on, seen.woke_on, "a thread that may not migrate moved");
    assert_eq!(seen.migrations, 0);
}

#[test]
fn a_thread_kept_within_its_node_moves_between_workers_of_that_node() {
    // Both workers' CPUs are on one node here (as on most machines with
    // two CPUs): the move is allowed.
    let topology = preemptive_mlthreading_rust::perf::numa::get_numa_topology();
    let nodes: std::collections::HashSet<usize> =
        (0..num_cpus()).map(|c| topology.node_of_cpu(c).unwrap_or(0)).collect();
    if nodes.len() != 1 {
        println!("skipped: the CPUs span {} nodes", nodes.len());
        return;
    }
    let Some(seen) = outranking_wake(Placed::Policy(MigrationPolicy::WithinNode)) else { return };
    println!("within node: parked on {}, woke on {}", seen.parked_on, seen.woke_on);
    assert_ne!(seen.parked_on, seen.woke_on, "a move within the node was refused");
    assert_eq!(seen.migrations, 1);
}

#[test]
fn high_priority_spawns_from_a_lower_thread_keep_their_placement() {
    let sched = RoundRobinScheduler::new().with_workers(2).with_name("placed");
    let cpus: Vec<usize> = (0..64).filter(|c| sched_cpus(&sched) & (1 << c) != 0).collect();
    if cpus.len() < 2 {
        println!("skipped: the workers share one CPU ({cpus:?})");
        return;
    }
    // Worker 0 runs a priority-5 hog, the spawner runs at priority 10 on
    // worker 1: a wake-up of a priority-20 thread would move it to the
    // spawner's worker, but a spawn keeps the round-robin placement.
    let (stop, hog) = spinner(&sched, 5, Some(cpus[0]));
    let s = sched.clone();
    let names = ThreadBuilder::new()
        .priority(10)
        .cpu_affinity(1 << cpus[1])
        .scheduler(sched.clone())
        .spawn(move || {
            let children: Vec<_> = (0..4)
                .map(|_| ThreadBuilder::new().priority(20).scheduler(s.clone()).spawn(worker_name).unwrap())
                .collect();
            children.into_iter().map(|h| h.join().unwrap()).collect::<std::collections::BTreeSet<_>>()
        })
        .unwrap()
        .join()
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    hog.join().unwrap();
    println!("priority-20 children ran on {names:?}");
    assert!(names.contains("placed-0") && names.contains("placed-1"), "the children were not spread: {names:?}");
    assert_eq!(sched.worker_wake_migrations(), vec![0, 0]);
}
