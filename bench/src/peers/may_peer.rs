//! `may` stackful coroutines. Its configuration is process-global and read
//! at the first spawn, which the one-scenario-per-process harness allows.

use crate::common::{self, Hogs};
use crate::outcome::Outcome;
use crate::scenario::{Params, STACK_BYTES};
use may::coroutine::{self as co, JoinHandle};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub fn run(scenario: &str, p: Params) -> Outcome {
    let all = common::allowed_cpus().len();
    let workers = match scenario {
        "spawn-all" | "pingpong-cross" | "mutex-contended" => all,
        "thread-ring" | "fork-join" | "imbalance" | "chameneos" => 2,
        _ => 1,
    };
    // `may` counts the stack size in machine words, not bytes.
    may::config().set_workers(workers).set_stack_size(STACK_BYTES / std::mem::size_of::<usize>());
    match scenario {
        "yield2" => Outcome::ok(yields(2, p.yields())),
        "yield100" => Outcome::ok(yields(100, p.yields())),
        "spawn1" | "spawn-all" => {
            // All live at once, two maps a stack; past the limit may aborts.
            let n = p.spawns().min(common::map_capacity(2) as u64);
            let o = common::second_burst(|| spawn_join(n)).extra("workers", workers as f64).extra("threads", n as f64);
            if n < p.spawns() { o.note(format!("{n} coroutines: vm.max_map_count allows no more")) } else { o }
        }
        "pingpong1" => Outcome::ok(ping_pong(p.trips())).note("mpsc::channel (may has no bounded channel)"),
        "pingpong-cross" if all > 1 => Outcome::ok(ping_pong(p.trips()))
            .note("mpsc::channel, 2 workers; may does not let us place the two coroutines"),
        "pingpong-cross" => Outcome::na("one CPU only"),
        "mutex-uncontended" => Outcome::ok(go(move || mutex_uncontended(p.lock_ops()))),
        "mutex-contended" => Outcome::ok(mutex_contended(p.contended_per_thread())),
        "sleeper" => sleeper(p),
        "prio-wake" => Outcome::na("no coroutine priorities, and no preemption: a woken coroutine waits for the hogs"),
        "fairness" => Outcome::na("cooperative: a hog that never yields keeps its worker, so its sibling never runs"),
        "rss" => rss(p),
        "max-threads" => max_threads(p),
        "floor" => Outcome::na("no bare-coroutine API; compare with yield2"),
        "thread-ring" if all < 2 => Outcome::na("one CPU only"),
        "thread-ring" => Outcome::ok(thread_ring(p.ring_hops())).note("mpsc::channel, 2 workers; may places them"),
        "fork-join" if all < 2 => Outcome::na("one CPU only"),
        "fork-join" => fork_join_two(p),
        // The 1-worker half of fork-join, in a process of its own (see
        // `fork_join_two`); not a scenario of the table.
        FORK_JOIN_ONE => {
            let (depth, rounds) = p.fork_join();
            let times: Vec<_> = (0..rounds).map(|_| timed_tree(depth)).collect();
            Outcome::ok(common::median_ms(times.iter().map(|t| t.1).collect())).extra("checksum", exact_f64(times[0].0))
        }
        "chameneos" if all < 2 => Outcome::na("one CPU only"),
        "chameneos" => go(move || chameneos(p.meetings())).note("may::sync::mpsc both ways, 2 workers"),
        "imbalance" if all < 2 => Outcome::na("one CPU only"),
        "imbalance" => imbalance_two(p),
        IMBALANCE_ONE => {
            let (unit, rounds) = p.imbalance();
            let times: Vec<_> = (0..rounds).map(|_| timed_imbalance(unit)).collect();
            Outcome::ok(common::median_ms(times.iter().map(|t| t.1).collect())).extra("checksum", exact_f64(times[0].0))
        }
        other => Outcome::failed(format!("unknown scenario {other}")),
    }
}

fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    // SAFETY: may's spawn is unsafe because a coroutine must not block its
    // worker on OS primitives or hold thread-locals across yields; these
    // closures only use may's own primitives and atomics.
    unsafe { co::spawn(f) }
}

fn go<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    spawn(f).join().expect("coroutine panicked")
}

fn yields(threads: u64, total: u64) -> f64 {
    let per = total / threads;
    go(move || {
        let t = Instant::now();
        let hs: Vec<_> = (0..threads).map(|_| spawn(move || (0..per).for_each(|_| co::yield_now()))).collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        common::ns_per(t, per * threads)
    })
}

fn spawn_join(n: u64) -> f64 {
    go(move || {
        let t = Instant::now();
        let hs: Vec<_> = (0..n).map(|i| spawn(move || i)).collect();
        let sum: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sum, n * (n - 1) / 2);
        common::ns_per(t, n)
    })
}

fn ping_pong(trips: u64) -> f64 {
    let (to_b, b_rx) = may::sync::mpsc::channel::<u64>();
    let (to_a, a_rx) = may::sync::mpsc::channel::<u64>();
    let b = spawn(move || {
        while let Ok(v) = b_rx.recv() {
            if to_a.send(v + 1).is_err() {
                break;
            }
        }
    });
    let a = spawn(move || {
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

/// ns per hop of a token passed around a ring of coroutines; see
/// `ours::thread_ring`.
fn thread_ring(hops: u64) -> f64 {
    let (first, links) = common::ring_links(may::sync::mpsc::channel::<u64>);
    let hs: Vec<_> = links
        .into_iter()
        .map(|(rx, next)| {
            spawn(move || common::ring_thread(std::iter::from_fn(|| rx.recv().ok()), |v| next.send(v).is_ok()))
        })
        .collect();
    let t = Instant::now();
    first.send(hops).unwrap();
    drop(first);
    common::ns_per_hop(t, hs.into_iter().map(|h| h.join().unwrap()), hops)
}

const FORK_JOIN_ONE: &str = "fork-join-one-worker";

/// may's worker count is process-global and fixed at the first spawn, so
/// the 1-worker times come from a child process (`run-one
/// fork-join-one-worker may`), run first, and the 2-worker ones from this one.
fn fork_join_two(p: Params) -> Outcome {
    let (depth, rounds) = p.fork_join();
    two_against_one_child(p, FORK_JOIN_ONE, || (0..rounds).map(|_| timed_tree(depth)).collect())
        .map_or_else(Outcome::failed, |o| o.note("spawn two, join both; set_workers(1) (another process) against (2)"))
}

const IMBALANCE_ONE: &str = "imbalance-one-worker";

/// Scenario `imbalance`, as `fork_join_two` does fork-join.
fn imbalance_two(p: Params) -> Outcome {
    let (unit, rounds) = p.imbalance();
    two_against_one_child(p, IMBALANCE_ONE, || (0..rounds).map(|_| timed_imbalance(unit)).collect())
        .map_or_else(Outcome::failed, |o| {
            o.note("spawned in a loop by one coroutine; set_workers(1) (another process) against (2)")
        })
}

/// The speedup of this process's 2 workers (`times`: checksums and
/// durations) over the 1-worker median that `run-one ONE may` reports.
fn two_against_one_child(
    p: Params,
    one: &str,
    times: impl FnOnce() -> Vec<(u64, Duration)>,
) -> Result<Outcome, String> {
    let exe = std::env::current_exe().map_err(|e| format!("the bench binary's path: {e}"))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["run-one", one, "may"]).args(p.flag());
    let child = crate::harness::run_child(cmd, Duration::from_secs(60));
    let (Some(w1_ms), Some(&sum)) = (child.value, child.extra.get("checksum")) else {
        return Err(format!("the 1-worker child: {}", child.note.unwrap_or_default()));
    };
    let times = times();
    // The checksum went through f64 and JSON: compare it the same way.
    assert_eq!(exact_f64(times[0].0), sum, "both worker counts compute the same work");
    Ok(common::fork_join_outcome((w1_ms, common::median_ms(times.into_iter().map(|t| t.1).collect()))))
}

/// Scenario `chameneos`; see `ours::chameneos`.
fn chameneos(meetings: u64) -> Outcome {
    use may::sync::mpsc;
    let (to_broker, visits) = mpsc::channel::<(common::Visit, mpsc::Sender<common::Met>)>();
    let t = Instant::now();
    let creatures: Vec<_> = (0..crate::scenario::CREATURES)
        .map(|id| {
            let to_broker = to_broker.clone();
            spawn(move || {
                let (tx, rx) = mpsc::channel();
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

/// The top 53 bits of a checksum: what an f64 (and its JSON form) keeps
/// exactly.
fn exact_f64(sum: u64) -> f64 {
    (sum >> 11) as f64
}

fn timed_imbalance(unit: u64) -> (u64, Duration) {
    go(move || {
        let t = Instant::now();
        let hs: Vec<_> =
            (0..crate::scenario::IMBALANCE_THREADS).map(|i| spawn(move || common::imbalance_work(i, unit))).collect();
        (hs.into_iter().fold(0u64, |a, h| a.wrapping_add(h.join().unwrap())), t.elapsed())
    })
}

fn timed_tree(depth: u32) -> (u64, Duration) {
    go(move || {
        let t = Instant::now();
        (fork_join(depth, 0), t.elapsed())
    })
}

/// A node of the fork-join tree, a coroutine per child; see `ours::fork_join`.
fn fork_join(depth: u32, index: u64) -> u64 {
    if depth == 0 {
        return common::leaf(index);
    }
    let a = spawn(move || fork_join(depth - 1, 2 * index));
    let b = spawn(move || fork_join(depth - 1, 2 * index + 1));
    a.join().unwrap().wrapping_add(b.join().unwrap())
}

fn mutex_uncontended(n: u64) -> f64 {
    let m = may::sync::Mutex::new(0u64);
    common::time_per(n, || *std::hint::black_box(&m).lock().unwrap() += 1)
}

fn mutex_contended(per: u64) -> f64 {
    let m = Arc::new(may::sync::Mutex::new(0u64));
    let start = || {
        let m = Arc::clone(&m);
        spawn(move || (0..per).for_each(|_| common::work(&mut m.lock().unwrap())))
    };
    common::contended(per, start, |h| h.join().unwrap())
}

fn sleeper(p: Params) -> Outcome {
    let (n, deadline) = p.sleeps();
    let hogs = Hogs::new();
    let dog = hogs.watchdog(deadline);
    let h2 = hogs.clone();
    let sleeper = spawn(move || common::sleeper_loop(&h2, n, co::sleep));
    let hs: Vec<_> = (0..2)
        .map(|i| {
            let h = hogs.clone();
            spawn(move || h.spin(i))
        })
        .collect();
    let late = sleeper.join().unwrap();
    hs.into_iter().for_each(|h| h.join().unwrap());
    dog.join().unwrap();
    common::lateness_outcome(late, n, deadline, &hogs).note("1 worker; no preemption")
}

static RELEASE: AtomicBool = AtomicBool::new(false);

#[derive(Default)]
struct Parked {
    parked: Arc<AtomicUsize>,
    handles: Vec<JoinHandle<()>>,
}

impl Parked {
    fn grow(&mut self, total: usize) -> usize {
        while self.handles.len() < total {
            let p = Arc::clone(&self.parked);
            self.handles.push(spawn(move || {
                p.fetch_add(1, Ordering::Release);
                while !RELEASE.load(Ordering::Acquire) {
                    co::park();
                }
            }));
        }
        while self.parked.load(Ordering::Acquire) < total {
            std::thread::sleep(Duration::from_millis(2));
        }
        total
    }
}

fn rss(p: Params) -> Outcome {
    // A guard-paged stack takes two maps; past the limit may aborts.
    let n = p.parked().min(common::map_capacity(2));
    let mut parked = Parked::default();
    parked.grow(1);
    let before = common::rss_bytes();
    parked.grow(n + 1);
    let after = common::rss_bytes();
    let note = if n < p.parked() {
        format!("{n} coroutines: vm.max_map_count allows no more; 64 KiB stacks")
    } else {
        "64 KiB stacks".into()
    };
    common::rss_outcome(before, after, n, Some(note))
}

fn max_threads(p: Params) -> Outcome {
    let mut parked = Parked::default();
    common::ceiling(p.ceiling_steps(), Some((2, "may")), |total| Ok(parked.grow(total)))
}
