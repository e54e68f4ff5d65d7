//! Plain OS threads (std), pinned with sched_setaffinity where the
//! scenario is "one worker".

use crate::common::{self, Hogs};
use crate::fairness;
use crate::outcome::Outcome;
use crate::scenario::{Params, STACK_BYTES};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Live OS threads in the spawn scenarios: 10^5 would exceed pid_max here.
const OS_SPAWNS: u64 = 10_000;

pub fn run(scenario: &str, p: Params) -> Outcome {
    let cpus = common::allowed_cpus();
    let (c0, c1) = (cpus[0], cpus.get(1).copied());
    match scenario {
        "yield2" => Outcome::ok(yields(c0, 2, p.yields())).note("sched_yield, threads pinned to one CPU"),
        "yield100" => Outcome::ok(yields(c0, 100, p.yields())).note("sched_yield, threads pinned to one CPU"),
        "spawn1" => {
            let n = p.spawns().min(OS_SPAWNS);
            common::second_burst(|| spawn_join(Some(c0), n)).note(format!("{n} threads (pid_max), pinned to one CPU"))
        }
        "spawn-all" => {
            let n = p.spawns().min(OS_SPAWNS);
            common::second_burst(|| spawn_join(None, n)).note(format!("{n} threads (pid_max)"))
        }
        "pingpong1" => Outcome::ok(ping_pong(c0, c0, p.trips())).note("sync_channel(1), both pinned to one CPU"),
        "pingpong-cross" => match c1 {
            Some(c1) => Outcome::ok(ping_pong(c0, c1, p.trips())).note("sync_channel(1), pinned to two CPUs"),
            None => Outcome::na("one CPU only"),
        },
        "mutex-uncontended" => Outcome::ok(mutex_uncontended(p.lock_ops())).note("std::sync::Mutex"),
        "mutex-contended" => Outcome::ok(mutex_contended(p.contended_per_thread())).note("std::sync::Mutex"),
        "sleeper" => sleeper(c0, p),
        "prio-wake" => prio_wake(c0, c1, p),
        "fairness" => fairness(c0, p),
        "rss" => rss(p),
        "max-threads" => max_threads(p),
        "floor" => Outcome::na("no coroutines"),
        "thread-ring" if c1.is_none() => Outcome::na("one CPU only"),
        "thread-ring" => Outcome::ok(thread_ring(p.ring_hops())).note("sync_channel(1), 503 threads on 2 CPUs"),
        "fork-join" => match c1 {
            None => Outcome::na("one CPU only"),
            Some(_) => {
                let (depth, rounds) = p.fork_join();
                // One worker: the root pinned to one CPU, which its
                // descendants inherit; two: no pinning.
                let one = move || pinned(c0, move || timed_tree(depth)).join().unwrap();
                common::fork_join_outcome(common::fork_join_times(rounds, one, move || timed_tree(depth)))
                    .note(format!("a thread per node ({} threads); pinned to one CPU against two", (2u64 << depth) - 2))
            }
        },
        "chameneos" => match c1 {
            None => Outcome::na("one CPU only"),
            Some(_) => chameneos(p.meetings()).note("std mpsc to the broker, sync_channel(1) back; 11 threads"),
        },
        "imbalance" => match c1 {
            None => Outcome::na("one CPU only"),
            Some(_) => {
                let (unit, rounds) = p.imbalance();
                let one = move || pinned(c0, move || timed_imbalance(unit)).join().unwrap();
                common::fork_join_outcome(common::fork_join_times(rounds, one, move || timed_imbalance(unit)))
                    .note("a thread each, spawned in a loop; pinned to one CPU against two")
            }
        },
        other => Outcome::failed(format!("unknown scenario {other}")),
    }
}

/// Scenario `chameneos`, the broker on this thread; see `ours::chameneos`.
fn chameneos(meetings: u64) -> Outcome {
    let (to_broker, visits) = mpsc::channel::<(common::Visit, mpsc::SyncSender<common::Met>)>();
    let t = Instant::now();
    let creatures: Vec<_> = (0..crate::scenario::CREATURES)
        .map(|id| {
            let to_broker = to_broker.clone();
            thread::spawn(move || {
                let (tx, rx) = mpsc::sync_channel(1);
                common::creature(id, |v| {
                    to_broker.send((v, tx.clone())).unwrap();
                    rx.recv().unwrap()
                })
            })
        })
        .collect();
    common::broker(meetings, || visits.recv().unwrap(), |r, met| r.send(met).unwrap());
    let counted = creatures.into_iter().map(|h| h.join().unwrap()).sum();
    common::chameneos_outcome(t, meetings, counted)
}

/// Scenario `imbalance`: the threads started in a loop, then joined.
fn timed_imbalance(unit: u64) -> (u64, Duration) {
    let t = Instant::now();
    let hs: Vec<_> = (0..crate::scenario::IMBALANCE_THREADS)
        .map(|i| thread::Builder::new().stack_size(STACK_BYTES).spawn(move || common::imbalance_work(i, unit)).unwrap())
        .collect();
    (hs.into_iter().fold(0u64, |a, h| a.wrapping_add(h.join().unwrap())), t.elapsed())
}

fn pinned<T: Send + 'static>(cpu: usize, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    thread::spawn(move || {
        common::pin_to(cpu).expect("sched_setaffinity");
        f()
    })
}

fn yields(cpu: usize, threads: u64, total: u64) -> f64 {
    let per = total / threads;
    let start = Arc::new(Barrier::new(threads as usize + 1));
    let hs: Vec<_> = (0..threads)
        .map(|_| {
            let start = Arc::clone(&start);
            pinned(cpu, move || {
                start.wait();
                for _ in 0..per {
                    // SAFETY: sched_yield has no preconditions.
                    unsafe { libc::sched_yield() };
                }
            })
        })
        .collect();
    start.wait();
    let t = Instant::now();
    hs.into_iter().for_each(|h| h.join().unwrap());
    common::ns_per(t, per * threads)
}

fn spawn_join(cpu: Option<usize>, n: u64) -> f64 {
    let body = move || {
        let t = Instant::now();
        let hs: Vec<_> =
            (0..n).map(|i| thread::Builder::new().stack_size(STACK_BYTES).spawn(move || i).unwrap()).collect();
        let sum: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sum, n * (n - 1) / 2);
        common::ns_per(t, n)
    };
    match cpu {
        Some(c) => pinned(c, body).join().unwrap(),
        None => body(),
    }
}

fn ping_pong(ca: usize, cb: usize, trips: u64) -> f64 {
    let (to_b, b_rx) = mpsc::sync_channel::<u64>(1);
    let (to_a, a_rx) = mpsc::sync_channel::<u64>(1);
    let b = pinned(cb, move || {
        for v in b_rx.iter() {
            if to_a.send(v + 1).is_err() {
                break;
            }
        }
    });
    let a = pinned(ca, move || {
        let t = Instant::now();
        for i in 0..trips {
            to_b.send(i).unwrap();
            assert_eq!(a_rx.recv().unwrap(), i + 1);
        }
        common::ns_per(t, trips)
    });
    let ns = a.join().unwrap();
    b.join().unwrap();
    ns
}

/// ns per hop of a token passed around a ring of threads; see
/// `ours::thread_ring`.
fn thread_ring(hops: u64) -> f64 {
    let (first, links) = common::ring_links(|| mpsc::sync_channel::<u64>(1));
    let hs: Vec<_> = links
        .into_iter()
        .map(|(rx, next)| {
            thread::Builder::new()
                .stack_size(STACK_BYTES)
                .spawn(move || common::ring_thread(rx.iter(), |v| next.send(v).is_ok()))
                .unwrap()
        })
        .collect();
    let t = Instant::now();
    first.send(hops).unwrap();
    drop(first);
    common::ns_per_hop(t, hs.into_iter().map(|h| h.join().unwrap()), hops)
}

fn timed_tree(depth: u32) -> (u64, Duration) {
    let t = Instant::now();
    (fork_join(depth, 0), t.elapsed())
}

/// A node of the fork-join tree, an OS thread per child; see `ours::fork_join`.
fn fork_join(depth: u32, index: u64) -> u64 {
    if depth == 0 {
        return common::leaf(index);
    }
    let child = |i| thread::Builder::new().stack_size(STACK_BYTES).spawn(move || fork_join(depth - 1, i)).unwrap();
    let (a, b) = (child(2 * index), child(2 * index + 1));
    a.join().unwrap().wrapping_add(b.join().unwrap())
}

fn mutex_uncontended(n: u64) -> f64 {
    let m = std::sync::Mutex::new(0u64);
    common::time_per(n, || *std::hint::black_box(&m).lock().unwrap() += 1)
}

fn mutex_contended(per: u64) -> f64 {
    let m = Arc::new(std::sync::Mutex::new(0u64));
    let start = || {
        let m = Arc::clone(&m);
        thread::spawn(move || (0..per).for_each(|_| common::work(&mut m.lock().unwrap())))
    };
    common::contended(per, start, |h| h.join().unwrap())
}

fn sleeper(cpu: usize, p: Params) -> Outcome {
    let (n, deadline) = p.sleeps();
    let hogs = Hogs::new();
    let dog = hogs.watchdog(deadline);
    let hs: Vec<_> = (0..2)
        .map(|i| {
            let h = hogs.clone();
            pinned(cpu, move || h.spin(i))
        })
        .collect();
    let h2 = hogs.clone();
    let late = pinned(cpu, move || common::sleeper_loop(&h2, n, thread::sleep)).join().unwrap();
    hs.into_iter().for_each(|h| h.join().unwrap());
    dog.join().unwrap();
    common::lateness_outcome(late, n, deadline, &hogs).note("3 threads pinned to one CPU, CFS")
}

/// Scenario `fairness`: the sibling and a hog pinned to one CPU.
fn fairness(cpu: usize, p: Params) -> Outcome {
    fairness::measure(p.fairness_time(), |f| pinned(cpu, f), |h| h.join().unwrap())
        .note("2 threads pinned to one CPU, CFS")
}

/// Makes the calling thread SCHED_FIFO (needs root or CAP_SYS_NICE).
fn make_realtime() -> bool {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: sched_setscheduler reads the param struct we pass.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) == 0 }
}

fn prio_wake(c0: usize, c1: Option<usize>, p: Params) -> Outcome {
    let hogs = Hogs::new();
    let hs: Vec<_> = (0..2)
        .map(|i| {
            let h = hogs.clone();
            pinned(c0, move || h.spin(i))
        })
        .collect();
    let n = p.wakeups();
    let woke_at = Arc::new(AtomicU64::new(0));
    let go = Arc::new(AtomicU64::new(0));
    let origin = Instant::now();
    let (w, g) = (Arc::clone(&woke_at), Arc::clone(&go));
    let high = pinned(c0, move || {
        let rt = make_realtime();
        for i in 1..=n as u64 {
            while g.load(Ordering::Acquire) < i {
                thread::park();
            }
            w.store(origin.elapsed().as_nanos() as u64, Ordering::Release);
        }
        rt
    });
    if let Some(c1) = c1 {
        common::pin_to(c1).ok();
    }
    let lat = common::wake_latencies(n, origin, &woke_at, thread::sleep, |i| {
        go.store(i, Ordering::Release);
        high.thread().unpark();
    });
    go.store(u64::MAX, Ordering::Release);
    high.thread().unpark();
    let rt = high.join().unwrap();
    hogs.stop();
    hs.into_iter().for_each(|h| h.join().unwrap());
    let how = if rt { "SCHED_FIFO" } else { "SCHED_OTHER (SCHED_FIFO refused)" };
    let mut floor = signal_floor(c0, n);
    floor.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let mut o = common::latency_outcome(lat);
    if !floor.is_empty() {
        o = o
            .extra("signal_p50_us", us(floor[floor.len() / 2]))
            .extra("signal_p99_us", us(floor[floor.len() * 99 / 100]));
    }
    o.note(format!(
        "{how} thread unparked over 2 CFS hogs on its CPU; signal_*: tgkill to a spinning thread on that CPU, \
         the floor of any wake-up that must interrupt a hog from user space"
    ))
}

/// When the interrupting signal's handler ran, in ns since `SIGNAL_ORIGIN`.
static SIGNAL_SEEN: AtomicU64 = AtomicU64::new(0);
static SIGNAL_ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

extern "C" fn note_signal(_: libc::c_int) {
    if let Some(origin) = SIGNAL_ORIGIN.get() {
        SIGNAL_SEEN.store(origin.elapsed().as_nanos() as u64, Ordering::Release);
    }
}

/// Latencies of a signal sent (from the calling thread, pinned elsewhere by
/// the caller) to a thread spinning on `cpu`, from `tgkill` to its handler:
/// what a preemptive runtime pays at least to reach a worker that runs a
/// hog. Empty when the handler cannot be installed.
fn signal_floor(cpu: usize, n: usize) -> Vec<Duration> {
    let origin = *SIGNAL_ORIGIN.get_or_init(Instant::now);
    // SAFETY: a zeroed sigaction with a plain handler and an empty mask is
    // valid; the handler only does atomic stores and reads a set OnceLock.
    let installed = unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = note_signal as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()) == 0
    };
    if !installed {
        return Vec::new();
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tid = Arc::new(AtomicU64::new(0));
    let (st, t) = (Arc::clone(&stop), Arc::clone(&tid));
    let spinner = pinned(cpu, move || {
        // SAFETY: gettid has no preconditions.
        t.store(unsafe { libc::gettid() } as u64, Ordering::Release);
        while !st.load(Ordering::Relaxed) {
            std::hint::spin_loop();
        }
    });
    while tid.load(Ordering::Acquire) == 0 {
        std::hint::spin_loop();
    }
    let target = tid.load(Ordering::Acquire) as libc::c_long;
    let lat = common::wake_latencies(n, origin, &SIGNAL_SEEN, thread::sleep, |_| {
        // SAFETY: the spinner is alive until `stop`, and SIGUSR1 has our
        // handler, so the signal cannot kill the process.
        unsafe {
            libc::syscall(libc::SYS_tgkill, libc::getpid() as libc::c_long, target, libc::SIGUSR1 as libc::c_long)
        };
    });
    stop.store(true, Ordering::Relaxed);
    spinner.join().unwrap();
    lat
}

static RELEASE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[derive(Default)]
struct Parked {
    parked: Arc<AtomicUsize>,
    handles: Vec<JoinHandle<()>>,
}

impl Parked {
    fn grow(&mut self, total: usize) -> Result<usize, (usize, String)> {
        while self.handles.len() < total {
            let p = Arc::clone(&self.parked);
            let h = thread::Builder::new().stack_size(STACK_BYTES).spawn(move || {
                p.fetch_add(1, Ordering::Release);
                while !RELEASE.load(Ordering::Acquire) {
                    thread::park();
                }
            });
            match h {
                Ok(h) => self.handles.push(h),
                Err(e) => {
                    let n = self.settle(self.handles.len());
                    return Err((
                        n,
                        format!(
                            "thread spawn failed: {e} (kernel.pid_max={}, threads-max={}, vm.max_map_count={})",
                            common::read_number("/proc/sys/kernel/pid_max").unwrap_or(0),
                            common::read_number("/proc/sys/kernel/threads-max").unwrap_or(0),
                            common::max_map_count()
                        ),
                    ));
                }
            }
        }
        Ok(self.settle(total))
    }

    fn settle(&self, total: usize) -> usize {
        while self.parked.load(Ordering::Acquire) < total {
            thread::sleep(Duration::from_millis(2));
        }
        total
    }
}

fn rss(p: Params) -> Outcome {
    let n = p.parked().min(OS_SPAWNS as usize);
    let mut parked = Parked::default();
    parked.grow(1).expect("one thread");
    let before = common::rss_bytes();
    if let Err((_, why)) = parked.grow(n + 1) {
        return Outcome::failed(why);
    }
    let after = common::rss_bytes();
    common::rss_outcome(before, after, n, Some(format!("{n} threads, 64 KiB stacks; kernel stacks not in RSS")))
}

/// PIDs are machine-wide: leave this many for everyone else.
const PID_RESERVE: usize = 4096;

/// Threads the machine can still start, less [`PID_RESERVE`].
fn pid_room() -> usize {
    let limit = common::read_number("/proc/sys/kernel/pid_max")
        .unwrap_or(32768)
        .min(common::read_number("/proc/sys/kernel/threads-max").unwrap_or(usize::MAX));
    // The 4th field of /proc/loadavg is running/total scheduling entities.
    let total = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().nth(3)?.split('/').nth(1)?.parse().ok())
        .unwrap_or(limit);
    limit.saturating_sub(total + PID_RESERVE)
}

fn max_threads(p: Params) -> Outcome {
    let mut parked = Parked::default();
    // A thread's stack and its signal stack, each with a guard page.
    common::ceiling(p.ceiling_steps(), Some((4, "std")), |total| {
        let room = pid_room();
        let have = parked.handles.len();
        if total - have > room {
            let n = parked.grow(have + room)?;
            return Err((
                n,
                format!(
                    "stopped: kernel.pid_max={} is machine-wide, and {PID_RESERVE} PIDs are left for the rest \
                     of the machine",
                    common::read_number("/proc/sys/kernel/pid_max").unwrap_or(0)
                ),
            ));
        }
        parked.grow(total)
    })
}
