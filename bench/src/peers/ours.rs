//! This crate's runtime.

use crate::common::{self, Hogs};
use crate::fairness;
use crate::outcome::Outcome;
use crate::scenario::{IMBALANCE_THREADS, Params};
use preemptive_mlthreading_rust::sched::AnyScheduler;
use preemptive_mlthreading_rust::sync::{Mutex, channel};
use preemptive_mlthreading_rust::{
    JoinHandle, RoundRobinScheduler, Scheduler, ThreadBuilder, WorkStealingScheduler, park, sleep, spawn, yield_now,
};
use preemptive_mlthreading_rust::{LatencyStats, SystemMetrics};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub fn run(scenario: &str, p: Params) -> Outcome {
    match scenario {
        "sleeper" => sleeper(p),
        "prio-wake" => prio_wake(p),
        "fairness" => fairness(p),
        "rss" => rss(p),
        "max-threads" => max_threads(p),
        "context-switch" => {
            let iterations = if p.quick { 2_000 } else { 20_000 };
            context_switch_outcome(100, iterations, 1)
        }
        "floor" => Outcome::na("no bare-coroutine API (the switch is internal); compare with yield2"),
        "pool-alloc" => pool_alloc(p),
        "profiling" => profiling(p),
        _ => run_on(scenario, p, |workers| RoundRobinScheduler::new().with_workers(workers).into()),
    }
}

/// The scenarios in which the scheduler decides something, on a
/// `WorkStealingScheduler`; the others are the same as `ours`.
pub fn run_work_stealing(scenario: &str, p: Params) -> Outcome {
    match scenario {
        "sleeper" | "prio-wake" | "fairness" | "rss" | "max-threads" | "floor" | "mutex-uncontended" | "pool-alloc"
        | "profiling" => Outcome::na("as ours: one thread or one worker, nothing to steal"),
        _ => run_on(scenario, p, |workers| WorkStealingScheduler::new().with_workers(workers).into()),
    }
}

/// The scenarios that run on a scheduler of `workers` workers made by `make`.
fn run_on(scenario: &str, p: Params, make: fn(usize) -> AnyScheduler) -> Outcome {
    let one = || make(1);
    let all = || make(common::allowed_cpus().len());
    match scenario {
        "yield2" => Outcome::ok(yields(&one(), 2, p.yields(), false))
            .extra("fp_env_ns", yields(&one(), 2, p.yields(), true))
            .note("fp_env_ns: preserve_fp_env(true), MXCSR and x87 control word kept per thread"),
        "yield100" => Outcome::ok(yields(&one(), 100, p.yields(), false))
            .extra(
                "prefetch_ns",
                yields_with(&one(), 100, p.yields(), || ThreadBuilder::new().enable_stack_prefetch(true)),
            )
            .note("prefetch_ns: enable_stack_prefetch(true) on every thread"),
        "spawn1" => {
            let sched = one();
            common::second_burst(|| spawn_join(&sched, p.spawns()))
        }
        "spawn-all" => {
            let sched = all();
            common::second_burst(|| spawn_join(&sched, p.spawns())).extra("workers", sched.workers() as f64)
        }
        "pingpong1" => Outcome::ok(ping_pong(&one(), None, p.trips())),
        "pingpong-cross" => match common::allowed_cpus()[..] {
            [a, b, ..] => Outcome::ok(ping_pong(&all(), None, p.trips()))
                .extra("pinned_ns", ping_pong(&all(), Some((1 << a, 1 << b)), p.trips()))
                .note("placed by us; pinned_ns: the two threads pinned to different workers (cpu_affinity)"),
            _ => Outcome::na("one CPU only"),
        },
        "mutex-uncontended" => Outcome::ok(mutex_uncontended(&one(), p.lock_ops())),
        "mutex-contended" => Outcome::ok(mutex_contended(&all(), p.contended_per_thread())),
        "thread-ring" if common::allowed_cpus().len() < 2 => Outcome::na("one CPU only"),
        "thread-ring" => Outcome::ok(thread_ring(&make(2), p.ring_hops()))
            .extra("one_worker_ns", thread_ring(&one(), p.ring_hops()))
            .note("bounded(1) channels, placed by us; one_worker_ns: the same ring on 1 worker"),
        "fork-join" if common::allowed_cpus().len() < 2 => Outcome::na("one CPU only"),
        "fork-join" => {
            let (depth, rounds) = p.fork_join();
            let with = |workers| {
                move || {
                    let sched = make(workers);
                    on(&sched, move || {
                        let t = Instant::now();
                        (fork_join(depth, 0), t.elapsed())
                    })
                }
            };
            common::fork_join_outcome(common::fork_join_times(rounds, with(1), with(2)))
                .note("spawn two, join both; with_workers(1) against (2)")
        }
        "chameneos" if common::allowed_cpus().len() < 2 => Outcome::na("one CPU only"),
        "chameneos" => chameneos(&make(2), p.meetings())
            .note("unbounded channel to the broker, bounded(1) back to each creature; placed by us"),
        "imbalance" if common::allowed_cpus().len() < 2 => Outcome::na("one CPU only"),
        "imbalance" => {
            let (unit, rounds) = p.imbalance();
            let with = |workers| {
                move || {
                    let sched = make(workers);
                    on(&sched, move || {
                        let t = Instant::now();
                        let hs: Vec<_> = (0..IMBALANCE_THREADS)
                            .map(|i| spawn(move || common::imbalance_work(i, unit)).unwrap())
                            .collect();
                        (hs.into_iter().fold(0u64, |a, h| a.wrapping_add(h.join().unwrap())), t.elapsed())
                    })
                }
            };
            common::fork_join_outcome(common::fork_join_times(rounds, with(1), with(2)))
                .note("spawned in a loop by one thread, then joined; with_workers(1) against (2)")
        }
        other => Outcome::failed(format!("unknown scenario {other}")),
    }
}

fn on<T: Send + 'static>(sched: &impl Scheduler, f: impl FnOnce() -> T + Send + 'static) -> T {
    ThreadBuilder::new().scheduler(sched.clone()).spawn(f).expect("spawn").join().expect("join")
}

fn yields(sched: &AnyScheduler, threads: u64, total: u64, fp_env: bool) -> f64 {
    yields_with(sched, threads, total, move || ThreadBuilder::new().preserve_fp_env(fp_env))
}

fn yields_with(
    sched: &AnyScheduler,
    threads: u64,
    total: u64,
    builder: impl Fn() -> ThreadBuilder + Send + 'static,
) -> f64 {
    let per = total / threads;
    let elapsed = on(sched, move || {
        let t = Instant::now();
        let hs: Vec<_> =
            (0..threads).map(|_| builder().spawn(move || (0..per).for_each(|_| yield_now())).unwrap()).collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        t.elapsed()
    });
    elapsed.as_nanos() as f64 / (per * threads) as f64
}

/// Scenario `profiling`: what `ThreadBuilder::enable_profiling` costs a
/// switch and a spawn, against the same work unprofiled in the same run.
fn profiling(p: Params) -> Outcome {
    use preemptive_mlthreading_rust::ThreadProfiler;
    let one = || -> AnyScheduler { RoundRobinScheduler::new().with_workers(1).into() };
    let plain = yields_with(&one(), 2, p.yields(), ThreadBuilder::new);
    let profiled = yields_with(&one(), 2, p.yields(), || ThreadBuilder::new().enable_profiling(true));
    let spawn_plain = spawn_join(&one(), p.spawns());
    let spawn_profiled = on(&one(), {
        let n = p.spawns();
        move || {
            let t = Instant::now();
            let hs: Vec<_> =
                (0..n).map(|i| ThreadBuilder::new().enable_profiling(true).spawn(move || i).unwrap()).collect();
            hs.into_iter().for_each(|h| {
                h.join().unwrap();
            });
            common::ns_per(t, n)
        }
    });
    ThreadProfiler::new().enable_context_switch_tracking();
    let tracked = yields_with(&one(), 2, p.yields(), || ThreadBuilder::new().enable_profiling(true));
    ThreadProfiler::new().disable_all();
    Outcome::ok(profiled)
        .extra("unprofiled_ns", plain)
        .extra("per_switch_ns", profiled - plain)
        .extra("tracking_ns", tracked)
        .extra("spawn_ns", spawn_plain)
        .extra("spawn_profiled_ns", spawn_profiled)
        .note(
            "yield2 with both threads profiled; unprofiled_ns: the same unprofiled in this run; tracking_ns: \
             profiled with context-switch tracking; spawn*: spawn+join of 1 thread, 1 worker",
        )
}

fn spawn_join(sched: &AnyScheduler, n: u64) -> f64 {
    on(sched, move || {
        let t = Instant::now();
        let hs: Vec<_> = (0..n).map(|i| spawn(move || i).unwrap()).collect();
        let sum: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sum, n * (n - 1) / 2);
        common::ns_per(t, n)
    })
}

fn ping_pong(sched: &AnyScheduler, masks: Option<(u64, u64)>, trips: u64) -> f64 {
    let (to_b, b_rx) = channel::bounded::<u64>(1);
    let (to_a, a_rx) = channel::bounded::<u64>(1);
    let builder = |mask: Option<u64>| {
        let b = ThreadBuilder::new().scheduler(sched.clone());
        match mask {
            Some(m) => b.cpu_affinity(m),
            None => b,
        }
    };
    let b = builder(masks.map(|m| m.1))
        .spawn(move || {
            for v in b_rx.iter() {
                if to_a.send(v + 1).is_err() {
                    break;
                }
            }
        })
        .unwrap();
    let a = builder(masks.map(|m| m.0))
        .spawn(move || {
            let t = Instant::now();
            for i in 0..trips {
                to_b.send(i).unwrap();
                assert_eq!(a_rx.recv().unwrap(), i + 1);
            }
            common::ns_per(t, trips)
        })
        .unwrap();
    let ns = a.join().unwrap();
    b.join().unwrap();
    ns
}

/// ns per hop of a token passed `hops` times around a ring of threads
/// ([`common::ring_links`]), each waiting on its own channel and sending
/// the token, less one, to the next one's; the thread that takes it at 0
/// notes the time.
fn thread_ring(sched: &AnyScheduler, hops: u64) -> f64 {
    on(sched, move || {
        let (first, links) = common::ring_links(|| channel::bounded::<u64>(1));
        let hs: Vec<_> = links
            .into_iter()
            .map(|(rx, next)| spawn(move || common::ring_thread(rx.iter(), |v| next.send(v).is_ok())).unwrap())
            .collect();
        let t = Instant::now();
        first.send(hops).unwrap();
        drop(first);
        common::ns_per_hop(t, hs.into_iter().map(|h| h.join().unwrap()), hops)
    })
}

/// Scenario `pool-alloc`: allocate+free pairs of a 64-byte buffer from
/// `perf::memory_pools` on a green thread (the same-CPU fast path), against
/// the system allocator and mimalloc called directly, in one process.
fn pool_alloc(p: Params) -> Outcome {
    use preemptive_mlthreading_rust::perf::memory_pools::{
        MemoryPoolConfig, allocate_from_small_pool, init_memory_pools,
    };
    use std::alloc::{GlobalAlloc, Layout, System};
    let n = p.lock_ops();
    init_memory_pools(MemoryPoolConfig::default());
    let sched: AnyScheduler = RoundRobinScheduler::new().with_workers(1).into();
    let pool_ns = on(&sched, move || {
        common::time_per(n, || {
            let mut b = allocate_from_small_pool().expect("a buffer");
            b[0] = 1;
            std::hint::black_box(&b);
        })
    });
    let layout = Layout::new::<[u8; 64]>();
    let with = |a: &dyn GlobalAlloc| {
        common::time_per(n, || {
            // SAFETY: a non-zero-sized layout; the block is freed with it.
            unsafe {
                let q = a.alloc(layout);
                assert!(!q.is_null());
                q.write(1);
                std::hint::black_box(q);
                a.dealloc(q, layout);
            }
        })
    };
    let system_ns = with(&System);
    let mimalloc_ns = with(&mimalloc::MiMalloc);
    // Issue 16's target: the same-CPU fast path at most half of mimalloc's time.
    let of_mimalloc = pool_ns / mimalloc_ns;
    let status = if of_mimalloc <= 0.5 { "met" } else { "NOT met" };
    Outcome::ok(pool_ns)
        .extra("system_ns", system_ns)
        .extra("mimalloc_ns", mimalloc_ns)
        .extra("of_mimalloc", of_mimalloc)
        .note("small_pool, per-CPU cache, one green thread; system_ns and mimalloc_ns: GlobalAlloc alloc+dealloc")
        .note(format!("target, at most 0.5 of mimalloc: {status}"))
}

/// Scenario `chameneos` ([`common::broker`], [`common::creature`]).
fn chameneos(sched: &AnyScheduler, meetings: u64) -> Outcome {
    on(sched, move || {
        let (to_broker, visits) = channel::unbounded::<(common::Visit, channel::Sender<common::Met>)>();
        let t = Instant::now();
        let creatures: Vec<_> = (0..crate::scenario::CREATURES)
            .map(|id| {
                let to_broker = to_broker.clone();
                spawn(move || {
                    let (tx, rx) = channel::bounded(1);
                    common::creature(id, |v| {
                        to_broker.send((v, tx.clone())).unwrap();
                        rx.recv().unwrap()
                    })
                })
                .unwrap()
            })
            .collect();
        common::broker(meetings, || visits.recv().unwrap(), |r, met| r.send(met).unwrap());
        let counted = creatures.into_iter().map(|h| h.join().unwrap()).sum();
        common::chameneos_outcome(t, meetings, counted)
    })
}

/// A node of the fork-join tree: a leaf does the fixed work, any other
/// node spawns its two children and joins both. Returns the checksum.
fn fork_join(depth: u32, index: u64) -> u64 {
    if depth == 0 {
        return common::leaf(index);
    }
    let a = spawn(move || fork_join(depth - 1, 2 * index)).unwrap();
    let b = spawn(move || fork_join(depth - 1, 2 * index + 1)).unwrap();
    a.join().unwrap().wrapping_add(b.join().unwrap())
}

fn mutex_uncontended(sched: &AnyScheduler, n: u64) -> f64 {
    on(sched, move || {
        let m = Mutex::new(0u64);
        common::time_per(n, || *std::hint::black_box(&m).lock() += 1)
    })
}

fn mutex_contended(sched: &AnyScheduler, per: u64) -> f64 {
    let m = Arc::new(Mutex::new(0u64));
    let start = || {
        let m = Arc::clone(&m);
        sched.spawn(move || (0..per).for_each(|_| common::work(&mut m.lock()))).unwrap()
    };
    common::contended(per, start, |h| h.join().unwrap())
}

fn hog(sched: &RoundRobinScheduler, prio: u8, hogs: &Hogs, i: usize) -> JoinHandle<()> {
    let hogs = hogs.clone();
    ThreadBuilder::new().priority(prio).scheduler(sched.clone()).spawn(move || hogs.spin(i)).unwrap()
}

fn sleeper(p: Params) -> Outcome {
    let (n, deadline) = p.sleeps();
    let sched = RoundRobinScheduler::new().with_workers(1).with_time_slice(Duration::from_millis(1));
    let hogs = Hogs::new();
    let hs: Vec<_> = (0..2).map(|i| hog(&sched, 10, &hogs, i)).collect();
    let dog = hogs.watchdog(deadline);
    let h2 = hogs.clone();
    let before = SystemMetrics::current().scheduling_latency;
    let late = on(&sched, move || common::sleeper_loop(&h2, n, sleep));
    let after = SystemMetrics::current().scheduling_latency;
    hs.into_iter().for_each(|h| h.join().unwrap());
    dog.join().unwrap();
    with_metrics_latency(common::lateness_outcome(late, n, deadline, &hogs), &before, &after).note(
        "1 worker, 1 ms slices; metrics_*: SystemMetrics::scheduling_latency over the same sleeps (one wake-up in 64 \
         sampled)",
    )
}

/// Adds what `SystemMetrics::scheduling_latency` recorded between two
/// snapshots (its samples, p50 and p99 in µs), to set beside what the
/// scenario measured itself.
fn with_metrics_latency(o: Outcome, before: &LatencyStats, after: &LatencyStats) -> Outcome {
    let mut buckets: Vec<(Duration, u64)> = after.buckets.clone();
    for (ub, n) in &before.buckets {
        if let Some(b) = buckets.iter_mut().find(|b| b.0 == *ub) {
            b.1 -= n;
        }
    }
    let samples: u64 = buckets.iter().map(|b| b.1).sum();
    let quantile = |q: f64| {
        let rank = ((q * samples as f64).ceil() as u64).max(1);
        let mut seen = 0;
        buckets
            .iter()
            .find(|b| {
                seen += b.1;
                seen >= rank
            })
            .map_or(f64::NAN, |b| b.0.as_secs_f64() * 1e6)
    };
    o.extra("metrics_samples", samples as f64)
        .extra("metrics_p50_us", quantile(0.5))
        .extra("metrics_p99_us", quantile(0.99))
}

/// Scenario `fairness`: the sibling and a hog on one worker, 1 ms slices.
fn fairness(p: Params) -> Outcome {
    let sched = RoundRobinScheduler::new().with_workers(1).with_time_slice(Duration::from_millis(1));
    let outcome = fairness::measure(p.fairness_time(), |f| sched.spawn(f).unwrap(), |h| h.join().unwrap());
    let deferred: u64 = sched.worker_deferred_preemptions().iter().sum();
    outcome.note(format!("1 worker, 1 ms slices; {} preemptions taken, {deferred} deferred", sched.total_preemptions()))
}

/// Who wakes the priority-20 thread, and whether it may move.
#[derive(Clone, Copy, PartialEq)]
enum Waker {
    /// A priority-10 green thread on the other worker; the woken thread
    /// has no affinity, so it may run on the waker's worker.
    Green,
    /// The same waker; the woken thread is pinned to the hogs' CPU, so a
    /// signal must interrupt them.
    GreenToPinned,
    /// An OS thread on the other CPU; the woken thread pinned as above.
    OsToPinned,
}

fn prio_wake(p: Params) -> Outcome {
    let n = p.wakeups();
    let cpus = common::allowed_cpus();
    let [c0, c1, ..] = cpus[..] else {
        return Outcome::na("needs two CPUs: the waker runs on another worker");
    };
    let pct = |mut lat: Vec<Duration>, q: usize| {
        lat.sort();
        lat.get(lat.len() * q / 100).map_or(f64::NAN, |d| d.as_secs_f64() * 1e6)
    };
    let pinned = priority_wakeup(n, Waker::GreenToPinned, c0, c1);
    let os = priority_wakeup(n, Waker::OsToPinned, c0, c1);
    let before = SystemMetrics::current().scheduling_latency;
    let green = priority_wakeup(n, Waker::Green, c0, c1);
    let after = SystemMetrics::current().scheduling_latency;
    with_metrics_latency(common::latency_outcome(green), &before, &after)
        .extra("pinned_p50_us", pct(pinned.clone(), 50))
        .extra("pinned_p99_us", pct(pinned, 99))
        .extra("os_waker_p50_us", pct(os.clone(), 50))
        .extra("os_waker_p99_us", pct(os, 99))
        .note(
            "priority-20 thread unparked by a priority-10 thread on the other worker, 2 priority-5 hogs on the \
             first, 10 ms slices: it runs at once on the waker's worker; pinned_*: the woken thread pinned to \
             the hogs' CPU, so a signal interrupts them; os_waker_*: the same, woken from an OS thread; metrics_*: \
             SystemMetrics::scheduling_latency over the first case's wake-ups and the waker's sleeps (one in 64)",
        )
}

fn priority_wakeup(n: usize, waker: Waker, c0: usize, c1: usize) -> Vec<Duration> {
    let sched = RoundRobinScheduler::new().with_workers(2).with_time_slice(Duration::from_millis(10));
    let hogs = Hogs::new();
    let hs: Vec<_> = (0..2)
        .map(|i| {
            let hogs = hogs.clone();
            let b = ThreadBuilder::new().priority(5).cpu_affinity(1 << c0).scheduler(sched.clone());
            b.spawn(move || hogs.spin(i)).unwrap()
        })
        .collect();
    let woke_at = Arc::new(AtomicU64::new(0));
    let go = Arc::new(AtomicU64::new(0));
    let origin = Instant::now();
    let (w, g) = (Arc::clone(&woke_at), Arc::clone(&go));
    let mut high = ThreadBuilder::new().priority(20).scheduler(sched.clone());
    if waker != Waker::Green {
        high = high.cpu_affinity(1 << c0);
    }
    let high = high
        .spawn(move || {
            for i in 1..=n as u64 {
                while g.load(Ordering::Acquire) < i {
                    park();
                }
                w.store(origin.elapsed().as_nanos() as u64, Ordering::Release);
            }
        })
        .unwrap();
    let (t, g) = (high.thread().clone(), Arc::clone(&go));
    let wake = move |i| {
        g.store(i, Ordering::Release);
        t.unpark();
    };
    let lat = if waker == Waker::OsToPinned {
        // Its own OS thread: pinning the caller would pin every later pool.
        std::thread::spawn(move || {
            common::pin_to(c1).ok();
            common::wake_latencies(n, origin, &woke_at, std::thread::sleep, wake)
        })
        .join()
        .unwrap()
    } else {
        let b = ThreadBuilder::new().cpu_affinity(1 << c1).scheduler(sched.clone());
        b.spawn(move || common::wake_latencies(n, origin, &woke_at, sleep, wake)).unwrap().join().unwrap()
    };
    // Ends the high thread's loop even if a round timed out.
    go.store(u64::MAX, Ordering::Release);
    high.thread().unpark();
    high.join().unwrap();
    hogs.stop();
    hs.into_iter().for_each(|h| h.join().unwrap());
    lat
}

static RELEASE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Threads that count themselves parked, then park until released.
struct Parked {
    sched: RoundRobinScheduler,
    parked: Arc<AtomicUsize>,
    handles: Vec<JoinHandle<()>>,
}

impl Parked {
    fn new() -> Self {
        Parked { sched: RoundRobinScheduler::new().with_workers(1), parked: Arc::default(), handles: Vec::new() }
    }

    /// Adds threads up to `total`; waits until each has parked or failed.
    fn grow(&mut self, total: usize) -> Result<usize, (usize, String)> {
        let start = self.handles.len();
        while self.handles.len() < total {
            let p = Arc::clone(&self.parked);
            let h = self.sched.spawn(move || {
                p.fetch_add(1, Ordering::Release);
                // Never released: the child process exits with them parked.
                while !RELEASE.load(Ordering::Acquire) {
                    park();
                }
            });
            match h {
                Ok(h) => self.handles.push(h),
                Err(e) => return Err((self.parked.load(Ordering::Acquire), format!("spawn returned: {e}"))),
            }
        }
        loop {
            let parked = self.parked.load(Ordering::Acquire);
            let failed = self.handles[start..].iter().position(|h| h.is_finished());
            if let Some(i) = failed {
                // Let the rest of the step settle before counting.
                std::thread::sleep(Duration::from_millis(200));
                let parked = self.parked.load(Ordering::Acquire);
                let h = self.handles.swap_remove(start + i);
                let why = match h.join() {
                    Err(e) => format!("join returned: {e}"),
                    Ok(()) => "a thread ended".to_owned(),
                };
                return Err((parked, why));
            }
            if parked == total {
                return Ok(parked);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn rss(p: Params) -> Outcome {
    // With guard regions (Linux 6.13) stacks merge into a few maps; an
    // mprotect'ed guard costs two per stack.
    let n = if preemptive_mlthreading_rust::stack::guard_regions_supported() {
        p.parked()
    } else {
        p.parked().min(common::map_capacity(2))
    };
    let mut parked = Parked::new();
    parked.grow(1).expect("one thread");
    let before = common::rss_bytes();
    if let Err((_, why)) = parked.grow(n + 1) {
        return Outcome::failed(why);
    }
    let after = common::rss_bytes();
    let note = (n < p.parked()).then(|| format!("{n} threads: vm.max_map_count allows no more; 64 KiB stacks"));
    let guard =
        if preemptive_mlthreading_rust::stack::guard_regions_supported() { "guard regions" } else { "mprotect guards" };
    common::rss_outcome(before, after, n, note.or(Some(format!("64 KiB stacks, {guard}"))))
}

fn max_threads(p: Params) -> Outcome {
    let mut parked = Parked::new();
    common::ceiling(p.ceiling_steps(), None, |total| parked.grow(total))
}

/// The guide's context-switch benchmark: `threads` threads on `workers`
/// workers each yield `iterations` times; the switch count is the
/// scheduler's own counter. Returns (switches, elapsed).
pub fn context_switches(threads: usize, iterations: u64, workers: usize) -> (u64, Duration) {
    let sched = RoundRobinScheduler::new().with_workers(workers);
    // Start the workers so their counters exist before the baseline reading.
    sched.spawn(|| ()).unwrap().join().unwrap();
    let before: u64 = sched.worker_switches().iter().sum();
    let t = Instant::now();
    let hs: Vec<_> = (0..threads)
        .map(|i| {
            ThreadBuilder::new()
                .name(format!("bench_thread_{i}"))
                .scheduler(sched.clone())
                .spawn(move || (0..iterations).for_each(|_| yield_now()))
                .unwrap()
        })
        .collect();
    hs.into_iter().for_each(|h| h.join().unwrap());
    let elapsed = t.elapsed();
    let after: u64 = sched.worker_switches().iter().sum();
    (after - before, elapsed)
}

/// [`context_switches`] as an outcome: ns per switch, with switches/s.
pub fn context_switch_outcome(threads: usize, iterations: u64, workers: usize) -> Outcome {
    let (switches, elapsed) = context_switches(threads, iterations, workers);
    if switches == 0 {
        return Outcome::failed("the scheduler counted no switches");
    }
    Outcome::ok(elapsed.as_nanos() as f64 / switches as f64)
        .extra("switches", switches as f64)
        .extra("switches_per_s", switches as f64 / elapsed.as_secs_f64())
        .extra("elapsed_ms", elapsed.as_secs_f64() * 1e3)
        .note(format!("{threads} threads x {iterations} yields on {workers} worker(s)"))
}
