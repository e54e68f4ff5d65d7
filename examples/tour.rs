//! A guided tour of the crate: `cargo run --release --example tour`.
//!
//! Each section prints what it does and what happened.

use preemptive_mlthreading_rust::{
    Duration, JoinHandle, RoundRobinScheduler, ThreadBuilder, ThreadError, current, current_cpu, sched, sleep, spawn,
    yield_now,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    let default = sched::default_scheduler()?;
    println!("default scheduler: {} worker OS threads, time slice {:?}", default.workers(), default.time_slice());
    // One worker makes the order of events below deterministic.
    let one = RoundRobinScheduler::new().with_workers(1);

    heading("(a) spawn and join green threads");
    spawn_and_join()?;
    heading("(b) yield_now interleaves threads on one worker");
    interleaving(&one)?;
    heading("(c) strict priorities on one worker");
    priorities(&one)?;
    heading("(d) CPU affinity");
    affinity()?;
    heading("(e) sleep leaves the worker free");
    sleeping(&one)?;
    heading("(f) a panic is caught and returned by join");
    caught_panic()?;
    heading("(g) bad input is an error, never a panic");
    bad_input();
    heading("(h) preemption: spinning threads never starve the others");
    preemption()?;
    heading("(i) green-aware locks and channels");
    synchronisation()?;
    heading("(j) what the runtime tells about itself: SystemMetrics");
    metrics();
    println!("\nTour complete.");
    Ok(())
}

fn metrics() {
    let m = preemptive_mlthreading_rust::SystemMetrics::current();
    println!(
        "  {} context switches, {:?} a blocking switch (sampled), {} preemptions, {} hand-offs, {} steals",
        m.total_context_switches, m.average_context_switch_time, m.total_preemptions, m.hand_offs, m.steals
    );
    println!(
        "  {} live green threads, memory {:.2} % of {} MiB, {} workers busy {:.0} % on average",
        m.live_threads,
        m.memory_usage * 100.0,
        m.memory_limit_bytes >> 20,
        m.workers.len(),
        m.cpu_utilization * 100.0
    );
}

fn heading(title: &str) {
    println!("\n== {title} ==");
}

/// Locks a std mutex, ignoring poisoning (the demo threads never panic with it held).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn spawn_and_join() -> Result<(), Error> {
    let handles = (1..=4u64)
        .map(|i| {
            ThreadBuilder::new().name(format!("square-{i}")).spawn(move || {
                let (me, os) = (current(), std::thread::current());
                let (name, os_name) = (me.name().unwrap_or("?"), os.name().unwrap_or("?"));
                println!("  green thread {name:?} (id {}) runs on OS thread {os_name:?}", me.id().as_u64());
                i * i
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    for h in handles {
        let name = h.thread().name().unwrap_or("?").to_owned();
        println!("  joined {name}: result {}", h.join()?);
    }
    Ok(())
}

fn interleaving(one: &RoundRobinScheduler) -> Result<(), Error> {
    let order = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&order);
    // A parent green thread spawns A, B, C on its own (only) worker and joins
    // them: they start once it parks, then take turns at every yield.
    let parent = ThreadBuilder::new().scheduler(one.clone()).spawn(move || -> Result<(), ThreadError> {
        let kids = ["A", "B", "C"]
            .into_iter()
            .map(|name| {
                let log = Arc::clone(&log);
                spawn(move || {
                    for step in 0..3 {
                        // The guard is a temporary, dropped before the yield.
                        lock(&log).push(format!("{name}{step}"));
                        yield_now();
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        kids.into_iter().try_for_each(JoinHandle::join)
    })?;
    parent.join()??;
    println!("  order: {}", lock(&order).join(" "));
    Ok(())
}

fn priorities(one: &RoundRobinScheduler) -> Result<(), Error> {
    let started = Arc::new(AtomicBool::new(false));
    let release = Arc::new(AtomicBool::new(false));
    let (started2, release2) = (Arc::clone(&started), Arc::clone(&release));
    let gate = ThreadBuilder::new().scheduler(one.clone()).priority(20).spawn(move || {
        started2.store(true, Ordering::Release);
        while !release2.load(Ordering::Acquire) {
            std::hint::spin_loop(); // busy and never yields: the worker is taken
        }
    })?;
    while !started.load(Ordering::Acquire) {
        std::thread::yield_now();
    }
    let ran = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for prio in [5u8, 10, 15, 20] {
        let ran = Arc::clone(&ran);
        let builder = ThreadBuilder::new().scheduler(one.clone()).priority(prio);
        handles.push(builder.spawn(move || lock(&ran).push(prio))?);
    }
    println!("  spawned priorities 5, 10, 15, 20 (in that order) while a gate thread held the worker");
    release.store(true, Ordering::Release);
    gate.join()?;
    for h in handles {
        h.join()?;
    }
    println!("  once the gate finished they ran in order: {:?}", lock(&ran));
    Ok(())
}

fn affinity() -> Result<(), Error> {
    // An impossible mask is refused at spawn, and the error names the CPUs
    // the default scheduler's workers are pinned to.
    let worker_cpus = match ThreadBuilder::new().cpu_affinity(1 << 63).spawn(current_cpu) {
        Err(e @ ThreadError::InvalidAffinity { worker_cpus, .. }) => {
            println!("  cpu_affinity(1 << 63) -> Err:\n    {e}");
            worker_cpus
        }
        Err(e) => return Err(e.into()),
        Ok(h) => {
            println!("  cpu_affinity(1 << 63) -> this machine has a worker on CPU 63 ({:?})", h.join()?);
            1 << 63
        }
    };
    for cpu in (0..64).filter(|c| worker_cpus & (1 << c) != 0) {
        let h = ThreadBuilder::new().cpu_affinity(1 << cpu).spawn(current_cpu)?;
        println!("  cpu_affinity(1 << {cpu}) -> current_cpu() inside = {:?}", h.join()?);
    }
    Ok(())
}

fn sleeping(one: &RoundRobinScheduler) -> Result<(), Error> {
    let done = Arc::new(AtomicBool::new(false));
    let yields = Arc::new(AtomicU64::new(0));
    let done2 = Arc::clone(&done);
    let sleeper = one.spawn(move || {
        let t = Instant::now();
        sleep(Duration::from_millis(50));
        done2.store(true, Ordering::Release);
        t.elapsed()
    })?;
    let count = Arc::clone(&yields);
    let counter = one.spawn(move || {
        while !done.load(Ordering::Acquire) {
            count.fetch_add(1, Ordering::Relaxed);
            yield_now();
        }
    })?;
    let slept = sleeper.join()?;
    counter.join()?;
    println!("  thread 1 slept {slept:.1?}; meanwhile thread 2, on the same (only) worker,");
    println!("  kept running and yielded {} times", yields.load(Ordering::Relaxed));
    Ok(())
}

fn caught_panic() -> Result<(), Error> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {})); // keep the demo output tidy
    let doomed = ThreadBuilder::new().name("doomed").spawn(|| -> u32 { panic!("something went wrong") });
    let fine = spawn(|| 6 * 7);
    let outcome = doomed.map(JoinHandle::join);
    std::panic::set_hook(hook);
    match outcome? {
        Err(ThreadError::Panicked(p)) => println!("  join(doomed) -> Err(Panicked): {:?}", p.message()),
        other => println!("  join(doomed) -> unexpected: {other:?}"),
    }
    println!("  join(another thread) -> Ok({})", fine?.join()?);
    Ok(())
}

fn bad_input() {
    let stopped = RoundRobinScheduler::new().with_workers(1);
    stopped.shutdown();
    let attempts = [
        ("stack_size(0)", ThreadBuilder::new().stack_size(0).spawn(|| ())),
        ("priority(21)", ThreadBuilder::new().priority(21).spawn(|| ())),
        ("spawn on a shut-down scheduler", stopped.spawn(|| ())),
    ];
    for (what, result) in attempts {
        match result {
            Err(e) => println!("  {what}:\n    {e}"),
            Ok(h) => println!("  {what}: unexpectedly accepted ({:?})", h.join()),
        }
    }
}

fn preemption() -> Result<(), Error> {
    // Two threads that spin without ever calling the runtime, and one that
    // wants to tick every millisecond, all on one worker with 1 ms slices.
    let one = RoundRobinScheduler::new().with_workers(1).with_time_slice(Duration::from_millis(1));
    let stop = Arc::new(AtomicBool::new(false));
    let spins: Vec<Arc<AtomicU64>> = (0..2).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let mut hogs = Vec::new();
    for n in &spins {
        let (stop, n) = (Arc::clone(&stop), Arc::clone(n));
        hogs.push(one.spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                n.fetch_add(1, Ordering::Relaxed); // no yield, no sleep, no lock
            }
        })?);
    }
    let ticker = one.spawn(|| {
        let start = Instant::now();
        let mut worst = Duration::ZERO;
        for _ in 0..200 {
            let t = Instant::now();
            sleep(Duration::from_millis(1));
            worst = worst.max(t.elapsed() - Duration::from_millis(1));
        }
        (start.elapsed(), worst)
    })?;
    let (took, worst) = ticker.join()?;
    stop.store(true, Ordering::Relaxed);
    for h in hogs {
        h.join()?;
    }
    let turns: Vec<u64> = spins.iter().map(|n| n.load(Ordering::Relaxed)).collect();
    println!("  200 ticks of 1 ms took {took:.1?} (worst tick late by {worst:.1?}) beside two spinning threads");
    println!("  the spinners made {turns:?} turns; the worker preempted {:?} times", one.worker_preemptions());
    println!(
        "  (with_preemption(false) would have let the first spinner keep the worker for good, as in may or tokio)"
    );
    Ok(())
}

fn synchronisation() -> Result<(), Error> {
    use preemptive_mlthreading_rust::sync::{self, channel};

    // 16 green threads on one worker and 2 OS threads share one lock. A
    // holder yields with it held, so the others must park (a std Mutex here
    // would block the worker, and the holder could never run again).
    let one = RoundRobinScheduler::new().with_workers(1);
    let total = Arc::new(preemptive_mlthreading_rust::Mutex::new(0u64));
    let mut green = Vec::new();
    for _ in 0..16 {
        let total = Arc::clone(&total);
        green.push(one.spawn(move || {
            for _ in 0..1000 {
                let mut t = total.lock();
                *t += 1;
                if t.is_multiple_of(100) {
                    yield_now(); // with the lock held
                }
            }
        })?);
    }
    let os: Vec<_> = (0..2)
        .map(|_| {
            let total = Arc::clone(&total);
            std::thread::spawn(move || (0..1000).for_each(|_| *total.lock() += 1))
        })
        .collect();
    for h in green {
        h.join()?;
    }
    for h in os {
        h.join().map_err(|_| "an OS thread panicked")?;
    }
    println!("  16 green threads (one worker) + 2 OS threads x 1000 increments: {}", *total.lock());

    // A pipeline over a rendezvous channel and a bounded one; dropping the
    // senders ends it, and every value arrives once, in order.
    let (raw_tx, raw_rx) = channel::bounded::<u64>(0);
    let (sq_tx, sq_rx) = channel::bounded::<u64>(4);
    let producer = spawn(move || (1..=1000).try_for_each(|i| raw_tx.send(i)))?;
    let squarer = spawn(move || raw_rx.iter().try_for_each(|i| sq_tx.send(i * i)))?;
    let sum: u64 = sq_rx.iter().sum();
    producer.join()?.map_err(|e| e.to_string())?;
    squarer.join()?.map_err(|e| e.to_string())?;
    println!("  sum of squares 1..=1000 through a 3-stage channel pipeline: {sum}");

    // A timed receive gives up with an error value, not a hang.
    let (_keep, rx) = channel::bounded::<u64>(1);
    let t = Instant::now();
    let err = rx.recv_timeout(Duration::from_millis(5)).unwrap_err();
    println!("  recv_timeout on an empty channel after {:.1?}: {err}", t.elapsed());

    // RCU: readers never lock; a writer publishes, then waits for the old readers.
    static LIMIT: sync::RcuProtected<u64> = sync::RcuProtected::new(10);
    let before = *LIMIT.read();
    LIMIT.update(|old| old * 2);
    LIMIT.synchronize();
    println!("  RcuProtected limit {before} -> {}", *LIMIT.read());
    Ok(())
}
