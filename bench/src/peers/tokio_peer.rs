//! tokio tasks: `current_thread` for one worker, `multi_thread` for all.

use crate::common::{self, Hogs};
use crate::outcome::Outcome;
use crate::scenario::{CONTENDERS, Params};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::runtime::{Builder, Runtime};
use tokio::sync::{Mutex, Notify, mpsc};
use tokio::task::yield_now;

fn one() -> Runtime {
    Builder::new_current_thread().enable_time().build().expect("tokio runtime")
}

fn all() -> Runtime {
    Builder::new_multi_thread().worker_threads(common::allowed_cpus().len()).build().expect("tokio runtime")
}

fn workers(n: usize) -> Runtime {
    Builder::new_multi_thread().worker_threads(n).build().expect("tokio runtime")
}

pub fn run(scenario: &str, p: Params) -> Outcome {
    let cpus = common::allowed_cpus().len();
    match scenario {
        "yield2" => Outcome::ok(yields(2, p.yields())).note("current_thread"),
        "yield100" => Outcome::ok(yields(100, p.yields())).note("current_thread"),
        "spawn1" => {
            let rt = one();
            common::second_burst(|| rt.block_on(spawn_join(p.spawns()))).note("current_thread")
        }
        "spawn-all" => {
            let rt = all();
            common::second_burst(|| rt.block_on(spawn_join(p.spawns()))).note(format!("multi_thread, {cpus} workers"))
        }
        "pingpong1" => Outcome::ok(one().block_on(ping_pong(p.trips()))).note("mpsc::channel(1), current_thread"),
        "pingpong-cross" if cpus > 1 => Outcome::ok(all().block_on(ping_pong(p.trips())))
            .note("mpsc::channel(1), multi_thread; tokio does not let us place the two tasks"),
        "pingpong-cross" => Outcome::na("one CPU only"),
        "mutex-uncontended" => {
            Outcome::ok(one().block_on(mutex_uncontended(p.lock_ops()))).note("tokio::sync::Mutex (async)")
        }
        "mutex-contended" => Outcome::ok(all().block_on(mutex_contended(p.contended_per_thread())))
            .note("tokio::sync::Mutex, multi_thread"),
        "sleeper" => sleeper(p),
        "prio-wake" => Outcome::na("no task priorities, and no preemption: a woken task waits for the hogs"),
        "fairness" => {
            Outcome::na("cooperative: a hog task that never .awaits keeps its worker, so its sibling never runs")
        }
        "rss" => rss(p),
        "max-threads" => {
            let rt = one();
            let mut parked = Parked::default();
            common::ceiling(p.ceiling_steps(), None, |total| Ok(rt.block_on(parked.grow(total))))
                .note("tasks have no stack")
        }
        "floor" => Outcome::na("stackless: no coroutine switch to measure"),
        "thread-ring" if cpus < 2 => Outcome::na("one CPU only"),
        "thread-ring" => Outcome::ok(workers(2).block_on(thread_ring(p.ring_hops())))
            .note("mpsc::channel(1), multi_thread(2); tokio places the tasks"),
        "fork-join" if cpus < 2 => Outcome::na("one CPU only"),
        "fork-join" => {
            let (depth, rounds) = p.fork_join();
            // multi_thread(1) rather than current_thread, so the only
            // difference between the two is the worker count.
            let with = |n| {
                move || {
                    workers(n).block_on(async move {
                        let t = Instant::now();
                        (fork_join(depth, 0).await, t.elapsed())
                    })
                }
            };
            common::fork_join_outcome(common::fork_join_times(rounds, with(1), with(2)))
                .note("tokio::spawn two, await both; multi_thread(1) against (2)")
        }
        "chameneos" if cpus < 2 => Outcome::na("one CPU only"),
        "chameneos" => workers(2)
            .block_on(async move { tokio::spawn(chameneos(p.meetings())).await.unwrap() })
            .note("mpsc::unbounded_channel to the broker, mpsc::channel(1) back; multi_thread(2)"),
        "imbalance" if cpus < 2 => Outcome::na("one CPU only"),
        "imbalance" => {
            let (unit, rounds) = p.imbalance();
            let with = |n| {
                move || {
                    workers(n).block_on(async move {
                        // From a task, as ours are spawned from a green thread.
                        tokio::spawn(async move {
                            let t = Instant::now();
                            let hs: Vec<_> = (0..crate::scenario::IMBALANCE_THREADS)
                                .map(|i| tokio::spawn(async move { common::imbalance_work(i, unit) }))
                                .collect();
                            let mut sum = 0u64;
                            for h in hs {
                                sum = sum.wrapping_add(h.await.unwrap());
                            }
                            (sum, t.elapsed())
                        })
                        .await
                        .unwrap()
                    })
                }
            };
            common::fork_join_outcome(common::fork_join_times(rounds, with(1), with(2)))
                .note("tokio::spawn in a loop from a task, then await; multi_thread(1) against (2)")
        }
        other => Outcome::failed(format!("unknown scenario {other}")),
    }
}

fn yields(tasks: u64, total: u64) -> f64 {
    let per = total / tasks;
    one().block_on(async move {
        let t = Instant::now();
        let hs: Vec<_> = (0..tasks)
            .map(|_| {
                tokio::spawn(async move {
                    for _ in 0..per {
                        yield_now().await;
                    }
                })
            })
            .collect();
        for h in hs {
            h.await.unwrap();
        }
        common::ns_per(t, per * tasks)
    })
}

async fn spawn_join(n: u64) -> f64 {
    let t = Instant::now();
    let hs: Vec<_> = (0..n).map(|i| tokio::spawn(async move { i })).collect();
    let mut sum = 0;
    for h in hs {
        sum += h.await.unwrap();
    }
    assert_eq!(sum, n * (n - 1) / 2);
    common::ns_per(t, n)
}

async fn ping_pong(trips: u64) -> f64 {
    let (to_b, mut b_rx) = mpsc::channel::<u64>(1);
    let (to_a, mut a_rx) = mpsc::channel::<u64>(1);
    let b = tokio::spawn(async move {
        while let Some(v) = b_rx.recv().await {
            if to_a.send(v + 1).await.is_err() {
                break;
            }
        }
    });
    let a = tokio::spawn(async move {
        let t = Instant::now();
        for i in 0..trips {
            to_b.send(i).await.unwrap();
            assert_eq!(a_rx.recv().await.unwrap(), i + 1);
        }
        common::ns_per(t, trips)
    });
    let ns = a.await.unwrap();
    b.await.unwrap();
    ns
}

/// ns per hop of a token passed around a ring of tasks; see
/// `ours::thread_ring`.
/// Scenario `chameneos`: the broker is this task; see `ours::chameneos`.
async fn chameneos(meetings: u64) -> Outcome {
    let (to_broker, mut visits) = mpsc::unbounded_channel::<(common::Visit, mpsc::Sender<common::Met>)>();
    let t = Instant::now();
    let creatures: Vec<_> = (0..crate::scenario::CREATURES)
        .map(|id| {
            let to_broker = to_broker.clone();
            tokio::spawn(async move {
                let (tx, mut rx) = mpsc::channel(1);
                let (mut colour, mut meetings) = ((id % 3) as u8, 0u64);
                loop {
                    to_broker.send(((id, colour), tx.clone())).unwrap();
                    match rx.recv().await.unwrap() {
                        Some((_, other)) => {
                            colour = common::complement(colour, other);
                            meetings += 1;
                        }
                        None => return meetings,
                    }
                }
            })
        })
        .collect();
    // `common::broker`, with awaits.
    for _ in 0..meetings {
        let (a, ra) = visits.recv().await.unwrap();
        let (b, rb) = visits.recv().await.unwrap();
        ra.send(Some(b)).await.unwrap();
        rb.send(Some(a)).await.unwrap();
    }
    for _ in 0..crate::scenario::CREATURES {
        let (_, r) = visits.recv().await.unwrap();
        r.send(None).await.unwrap();
    }
    let mut counted = 0;
    for h in creatures {
        counted += h.await.unwrap();
    }
    common::chameneos_outcome(t, meetings, counted)
}

async fn thread_ring(hops: u64) -> f64 {
    let (first, links) = common::ring_links(|| mpsc::channel::<u64>(1));
    let hs: Vec<_> = links
        .into_iter()
        .map(|(mut rx, next)| {
            tokio::spawn(async move {
                while let Some(v) = rx.recv().await {
                    if v == 0 {
                        return Some(Instant::now());
                    }
                    next.send(v - 1).await.ok()?;
                }
                None
            })
        })
        .collect();
    let t = Instant::now();
    first.send(hops).await.unwrap();
    drop(first);
    let mut ends = Vec::with_capacity(hs.len());
    for h in hs {
        ends.push(h.await.unwrap());
    }
    common::ns_per_hop(t, ends, hops)
}

/// A node of the fork-join tree, a task per child; see `ours::fork_join`.
/// Boxed: an async fn cannot hold itself.
fn fork_join(depth: u32, index: u64) -> std::pin::Pin<Box<dyn Future<Output = u64> + Send>> {
    Box::pin(async move {
        if depth == 0 {
            return common::leaf(index);
        }
        let a = tokio::spawn(fork_join(depth - 1, 2 * index));
        let b = tokio::spawn(fork_join(depth - 1, 2 * index + 1));
        a.await.unwrap().wrapping_add(b.await.unwrap())
    })
}

async fn mutex_uncontended(n: u64) -> f64 {
    let m = Mutex::new(0u64);
    let t = Instant::now();
    for _ in 0..n {
        *std::hint::black_box(&m).lock().await += 1;
    }
    common::ns_per(t, n)
}

async fn mutex_contended(per: u64) -> f64 {
    let m = Arc::new(Mutex::new(0u64));
    let t = Instant::now();
    let hs: Vec<_> = (0..CONTENDERS)
        .map(|_| {
            let m = Arc::clone(&m);
            tokio::spawn(async move {
                for _ in 0..per {
                    common::work(&mut *m.lock().await);
                }
            })
        })
        .collect();
    for h in hs {
        h.await.unwrap();
    }
    common::mops(t, CONTENDERS * per)
}

fn sleeper(p: Params) -> Outcome {
    let (n, deadline) = p.sleeps();
    let hogs = Hogs::new();
    let dog = hogs.watchdog(deadline);
    let h2 = hogs.clone();
    let late = one().block_on(async move {
        let hs: Vec<_> = (0..2)
            .map(|i| {
                let h = h2.clone();
                tokio::spawn(async move { h.spin(i) })
            })
            .collect();
        let mut late = Vec::with_capacity(n);
        while late.len() < n && !h2.stopped() {
            let t = Instant::now();
            tokio::time::sleep(Duration::from_millis(1)).await;
            late.push(t.elapsed().saturating_sub(Duration::from_millis(1)));
        }
        h2.stop();
        for h in hs {
            h.await.unwrap();
        }
        late
    });
    dog.join().unwrap();
    common::lateness_outcome(late, n, deadline, &hogs).note("current_thread; no preemption")
}

#[derive(Default)]
struct Parked {
    parked: Arc<AtomicUsize>,
    release: Arc<Notify>,
    spawned: usize,
}

impl Parked {
    /// Adds tasks waiting on a `Notify` up to `total`; runs them until each
    /// is waiting.
    async fn grow(&mut self, total: usize) -> usize {
        while self.spawned < total {
            let (p, r) = (Arc::clone(&self.parked), Arc::clone(&self.release));
            // Detached: the child process exits with them waiting.
            drop(tokio::spawn(async move {
                p.fetch_add(1, Ordering::Release);
                r.notified().await;
            }));
            self.spawned += 1;
        }
        while self.parked.load(Ordering::Acquire) < total {
            yield_now().await;
        }
        total
    }
}

fn rss(p: Params) -> Outcome {
    let n = p.parked();
    let rt = one();
    let mut parked = Parked::default();
    rt.block_on(parked.grow(1));
    let before = common::rss_bytes();
    rt.block_on(parked.grow(n + 1));
    let after = common::rss_bytes();
    common::rss_outcome(before, after, n, Some("tasks waiting on a Notify; no stacks".into()))
}
