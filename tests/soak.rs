//! A bounded soak: a mix of green threads on 2 workers with 100 µs slices,
//! for `PMT_SOAK_SECS` seconds (default 60), each kind checking exact
//! results while preemption lands anywhere in it: inside a `thread_local!`
//! borrow, inside `rand`'s thread-local generator, in libc's `write` and
//! `malloc`, in std's formatting, inside a crate `Mutex` or a
//! `std::sync::Mutex` critical section, around channel transfers, sleeps
//! and parks.
//!
//! Ignored by plain `cargo test`; `.ci/run` runs it in release mode:
//! `cargo test --release --test soak -- --ignored --nocapture`. Every
//! thread stops at the deadline (a stop flag). A heartbeat every 10 s
//! prints each kind's rounds, and each kind, and preemption, must have
//! moved on since the last one. A run whose threads are not all joined a
//! minute after the deadline has hung: a watchdog prints the counts and
//! aborts (CI's timeout is the backstop). No figure here is a performance
//! threshold: the counts are printed, not judged.

mod common;

use preemptive_mlthreading_rust::sched::AnyScheduler;
use preemptive_mlthreading_rust::sync::channel;
use preemptive_mlthreading_rust::{
    Duration, JoinHandle, Mutex, Thread, ThreadBuilder, WorkStealingScheduler, current, park_timeout, sleep, yield_now,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cell::RefCell;
use std::hint::black_box;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// The kinds of thread, for the heartbeat's progress counters.
const TLS: usize = 0;
const RAND: usize = 1;
const LOG: usize = 2;
const MALLOC: usize = 3;
const CHAN: usize = 4;
const MUTEX: usize = 5;
const SLEEP: usize = 6;
const NAMES: [&str; 7] = ["tls", "rand", "log", "malloc", "chan", "mutex", "sleep/park"];

/// What every thread shares: the stop flag and rounds done per kind.
#[derive(Default)]
struct Soak {
    stop: AtomicBool,
    rounds: [AtomicU64; 7],
}

impl Soak {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Runs `round(0)`, `round(1)`, ... until the stop flag is set (at
    /// least once). Returns the number of rounds.
    fn until_stop(&self, kind: usize, mut round: impl FnMut(u64)) -> u64 {
        let mut n = 0;
        loop {
            round(n);
            n += 1;
            self.rounds[kind].fetch_add(1, Ordering::Relaxed);
            if self.stopped() {
                return n;
            }
        }
    }
}

fn spawn<T: Send + 'static>(
    sched: &AnyScheduler,
    name: String,
    f: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<T> {
    ThreadBuilder::new().name(name).scheduler(sched.clone()).spawn(f).expect("spawn")
}

fn spin_for(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

thread_local! {
    static BORROWED: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
    static SEEDED: RefCell<Option<StdRng>> = const { RefCell::new(None) };
}

/// Holds a `RefCell` borrow of a thread-local across several slices. A
/// sibling run on this OS thread meanwhile would panic "already borrowed",
/// or find the vector not empty.
fn tls_borrower(s: &Soak, id: u64) -> u64 {
    s.until_stop(TLS, |round| {
        BORROWED.with(|b| {
            let mut v = b.borrow_mut();
            assert!(v.is_empty(), "thread {id} found {v:?} left in its OS thread's thread-local");
            v.push(id);
            spin_for(Duration::from_micros(300));
            assert_eq!(v.pop(), Some(id), "thread {id}: another green thread touched the borrowed vector");
        });
        if round % 8 == 0 {
            // A cooperative point: the thread may come back on another
            // OS thread, which is allowed here (no borrow is held).
            yield_now();
        }
    })
}

/// Uses `thread_rng` (an `UnsafeCell` in a thread-local) heavily, and a
/// seeded generator kept in a thread-local against a copy kept on the
/// stack: the two streams must match exactly within a round (a round has
/// no cooperative point, so the thread keeps its OS thread throughout).
fn rand_user(s: &Soak, id: u64) -> u64 {
    s.until_stop(RAND, |round| {
        let seed = (id << 32) | round;
        SEEDED.with(|r| *r.borrow_mut() = Some(StdRng::seed_from_u64(seed)));
        let mut copy = StdRng::seed_from_u64(seed);
        let mut thread = rand::thread_rng();
        let (mut a, mut b) = (0u64, 0u64);
        for _ in 0..2000 {
            let x = SEEDED.with(|r| r.borrow_mut().as_mut().expect("seeded this round").r#gen::<u64>());
            a = a.rotate_left(7) ^ x;
            b = b.rotate_left(7) ^ copy.r#gen::<u64>();
            let k: u32 = thread.gen_range(0..1000);
            assert!(k < 1000, "gen_range(0..1000) gave {k}");
            let f: f64 = thread.r#gen();
            assert!((0.0..1.0).contains(&f), "gen::<f64>() gave {f}");
        }
        assert_eq!(a, b, "thread {id} round {round}: the thread-local generator was used by another green thread");
    })
}

/// A writer that counts what the inner writer accepted.
struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Logging-style output: `format!` and `writeln!` to /dev/null (a `write`
/// syscall per piece), counting bytes exactly. Returns (rounds, bytes).
fn logger(s: &Soak, id: u64) -> (u64, u64) {
    let devnull = std::fs::OpenOptions::new().write(true).open("/dev/null").expect("/dev/null");
    let mut out = Counting { inner: devnull, bytes: 0 };
    let mut expected = 0u64;
    let rounds = s.until_stop(LOG, |round| {
        for i in 0..32u64 {
            let line = format!(
                "[soak] thread {id} round {round} line {i}: {:08x} {:.3}",
                round.wrapping_mul(2_654_435_761) ^ i,
                i as f64 / 7.0
            );
            let full = format!("{line} ({} bytes)", line.len());
            writeln!(out, "{full}").expect("write to /dev/null");
            expected += full.len() as u64 + 1;
        }
    });
    out.flush().expect("flush");
    assert_eq!(out.bytes, expected, "thread {id}: bytes written");
    (rounds, out.bytes)
}

/// Vec, String and Box churn, with sums checked exactly.
fn allocator(s: &Soak, id: u64) -> u64 {
    s.until_stop(MALLOC, |round| {
        let n = 64 + round % 64;
        let seed = id * 1_000_003 + round;
        let boxes: Vec<Box<u64>> = (0..n).map(|i| Box::new(seed + i)).collect();
        let sum: u64 = boxes.iter().map(|b| **b).sum();
        assert_eq!(sum, n * seed + n * (n - 1) / 2, "thread {id} round {round}: sum of boxes");
        let mut text = String::new();
        for b in &boxes {
            text.push_str(&b.to_string());
            text.push(',');
        }
        let parsed: u64 = text.split_terminator(',').map(|t| t.parse::<u64>().expect("a number")).sum();
        assert_eq!(parsed, sum, "thread {id} round {round}: sum through strings");
        let mut bufs: Vec<Vec<u8>> = (0..16usize).map(|k| vec![k as u8; 100 + k * 37]).collect();
        bufs.retain(|x| x.len() % 2 == 0);
        assert_eq!(
            bufs.iter().map(Vec::len).sum::<usize>(),
            (0..16).map(|k| 100 + k * 37).filter(|l| l % 2 == 0).sum()
        );
        black_box(bufs);
    })
}

/// Message totals: count and sum of sequence numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tally {
    count: u64,
    sum: u64,
}

impl Tally {
    fn add(&mut self, seq: u64) {
        self.count += 1;
        self.sum += seq;
    }

    fn plus(self, o: Tally) -> Tally {
        Tally { count: self.count + o.count, sum: self.sum + o.sum }
    }
}

/// Producers on the bounded channel send `producer << 48 | seq`, seq from 1.
const SEQ_BITS: u32 = 48;

fn bounded_producer(s: &Soak, p: u64, tx: channel::Sender<u64>) -> Tally {
    let mut sent = Tally::default();
    s.until_stop(CHAN, |_| {
        for _ in 0..64 {
            let seq = sent.count + 1;
            tx.send((p << SEQ_BITS) | seq).expect("the consumers outlive the producers");
            sent.add(seq);
        }
    });
    sent
}

/// Receives until every producer has gone; each producer's messages must
/// arrive in order (FIFO per producer), so none is seen twice.
fn bounded_consumer(rx: channel::Receiver<u64>, producers: usize) -> Tally {
    let mut last = vec![0u64; producers];
    let mut got = Tally::default();
    for v in rx.iter() {
        let (p, seq) = ((v >> SEQ_BITS) as usize, v & ((1 << SEQ_BITS) - 1));
        assert!(seq > last[p], "producer {p}: seq {seq} after {}", last[p]);
        last[p] = seq;
        got.add(seq);
    }
    got
}

/// Most messages the unbounded producer lets the consumer lag behind, so
/// that the queue's memory stays bounded.
const UNBOUNDED_LAG: u64 = 4096;

fn unbounded_producer(s: &Soak, tx: channel::Sender<String>, received: &AtomicU64) -> Tally {
    let mut sent = Tally::default();
    s.until_stop(CHAN, |_| {
        while sent.count - received.load(Ordering::Relaxed) > UNBOUNDED_LAG && !s.stopped() {
            sleep(Duration::from_micros(100));
        }
        for _ in 0..64 {
            let seq = sent.count + 1;
            tx.send(seq.to_string()).expect("the consumer outlives the producer");
            sent.add(seq);
        }
    });
    sent
}

/// One producer, one consumer: every message is the next one.
fn unbounded_consumer(rx: channel::Receiver<String>, received: &AtomicU64) -> Tally {
    let mut got = Tally::default();
    for m in rx.iter() {
        let seq: u64 = m.parse().expect("a number");
        assert_eq!(seq, got.count + 1, "unbounded channel: message out of order or lost");
        got.add(seq);
        received.store(got.count, Ordering::Relaxed);
    }
    got
}

/// A read-modify-write under the lock, sometimes with a spin between the
/// read and the write, so preemption lands inside the critical section.
fn crate_mutex_incrementer(s: &Soak, m: Arc<Mutex<u64>>) -> u64 {
    s.until_stop(MUTEX, |round| {
        let mut g = m.lock();
        let v = *g;
        if round % 16 == 0 {
            spin_for(Duration::from_micros(20));
        }
        *g = black_box(v) + 1;
    })
}

fn std_mutex_incrementer(s: &Soak, m: Arc<std::sync::Mutex<u64>>) -> u64 {
    s.until_stop(MUTEX, |round| {
        let mut g = m.lock().expect("no thread panics holding it");
        let v = *g;
        if round % 16 == 0 {
            spin_for(Duration::from_micros(20));
        }
        *g = black_box(v) + 1;
    })
}

fn sleeper(s: &Soak, id: u64) -> u64 {
    s.until_stop(SLEEP, |round| {
        let d = Duration::from_micros(100 + (round * 37 + id * 11) % 900);
        let t = Instant::now();
        sleep(d);
        let slept = t.elapsed();
        assert!(slept >= d, "sleep({d:?}) returned after {slept:?}");
    })
}

/// Two threads take turns through `turn` and wake each other with
/// `unpark`: the one of `parity` alone moves an even (or odd) turn on.
fn parker(s: &Soak, parity: u64, turn: &AtomicU64, threads: &[OnceLock<Thread>; 2]) -> u64 {
    threads[parity as usize].set(current()).expect("set once");
    let mut moves = 0;
    while !s.stopped() {
        let t = turn.load(Ordering::Acquire);
        if t % 2 == parity {
            let moved = turn.compare_exchange(t, t + 1, Ordering::AcqRel, Ordering::Acquire);
            assert_eq!(moved, Ok(t), "only the thread of parity {parity} moves turn {t} on");
            moves += 1;
            s.rounds[SLEEP].fetch_add(1, Ordering::Relaxed);
            if let Some(other) = threads[1 - parity as usize].get() {
                other.unpark();
            }
        } else {
            park_timeout(Duration::from_millis(1));
        }
    }
    moves
}

fn soak_secs() -> u64 {
    match std::env::var("PMT_SOAK_SECS") {
        // Bounded: the watchdog fires at the deadline plus JOIN_GRACE, and
        // CI kills the run at 300 s.
        Ok(v) => v.parse::<u64>().expect("PMT_SOAK_SECS: a whole number of seconds").clamp(1, 180),
        Err(_) => 60,
    }
}

/// How long after the deadline every thread must have been joined.
const JOIN_GRACE: Duration = Duration::from_secs(60);

/// A line formatted on the stack: the heartbeat and the watchdog must
/// print even when a thread holding a malloc lock is stuck.
struct Line {
    buf: [u8; 512],
    len: usize,
}

impl Line {
    fn new() -> Self {
        Line { buf: [0; 512], len: 0 }
    }

    /// Writes the line to stderr with one `write`, no allocation.
    fn emit(mut self) {
        if self.len < self.buf.len() {
            self.buf[self.len] = b'\n';
            self.len += 1;
        }
        // SAFETY: writes our own initialised buffer to stderr.
        unsafe { libc::write(2, self.buf.as_ptr().cast(), self.len) };
    }
}

impl std::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let n = s.len().min(self.buf.len() - 1 - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// `soak {what}: rounds tls N, ...; preemptions N`, formatted and
/// written without allocating.
fn progress_line(what: std::fmt::Arguments<'_>, s: &Soak, preemptions: u64) -> Line {
    use std::fmt::Write as _;
    let mut line = Line::new();
    let _ = write!(line, "soak {what}: rounds");
    for (i, (name, r)) in NAMES.iter().zip(&s.rounds).enumerate() {
        let _ = write!(line, "{} {name} {}", if i == 0 { "" } else { "," }, r.load(Ordering::Relaxed));
    }
    let _ = write!(line, "; preemptions {preemptions}");
    line
}

#[test]
#[ignore = "runs for a minute; .ci/run runs it: cargo test --release --test soak -- --ignored --nocapture"]
fn soak_mixed_green_threads_keep_exact_results() {
    soak(common::preemptive(2, Duration::from_micros(100)).into());
}

/// The same on a work-stealing scheduler, at the same time (the two soaks
/// run side by side, so each also runs under the other's load).
#[test]
#[ignore = "runs for a minute; .ci/run runs it: cargo test --release --test soak -- --ignored --nocapture"]
fn soak_on_work_stealing_keeps_exact_results() {
    soak(WorkStealingScheduler::new().with_workers(2).with_time_slice(Duration::from_micros(100)).into());
}

fn soak(sched: AnyScheduler) {
    // The watchdog dumps the threads if the soak hangs.
    preemptive_mlthreading_rust::metrics::enable_thread_dumps();
    let secs = soak_secs();
    let s = Arc::new(Soak::default());
    let start = Instant::now();

    let on = |name: String| {
        let s = Arc::clone(&s);
        (s, name)
    };
    let tls: Vec<_> = (1..=3u64)
        .map(|id| {
            let (s, n) = on(format!("tls-{id}"));
            spawn(&sched, n, move || tls_borrower(&s, id))
        })
        .collect();
    let rand: Vec<_> = (1..=2u64)
        .map(|id| {
            let (s, n) = on(format!("rand-{id}"));
            spawn(&sched, n, move || rand_user(&s, id))
        })
        .collect();
    let log: Vec<_> = (1..=2u64)
        .map(|id| {
            let (s, n) = on(format!("log-{id}"));
            spawn(&sched, n, move || logger(&s, id))
        })
        .collect();
    let malloc: Vec<_> = (1..=2u64)
        .map(|id| {
            let (s, n) = on(format!("malloc-{id}"));
            spawn(&sched, n, move || allocator(&s, id))
        })
        .collect();

    // Channels: 2 producers and 2 consumers on a bounded(16) channel; one
    // of each on an unbounded one.
    let (btx, brx) = channel::bounded::<u64>(16);
    let bounded_producers: Vec<_> = (0..2u64)
        .map(|p| {
            let (s, n) = on(format!("bounded-tx-{p}"));
            let tx = btx.clone();
            spawn(&sched, n, move || bounded_producer(&s, p, tx))
        })
        .collect();
    drop(btx);
    let bounded_consumers: Vec<_> = (0..2)
        .map(|c| {
            let rx = brx.clone();
            spawn(&sched, format!("bounded-rx-{c}"), move || bounded_consumer(rx, 2))
        })
        .collect();
    drop(brx);
    let (utx, urx) = channel::unbounded::<String>();
    let received = Arc::new(AtomicU64::new(0));
    let unbounded_producer = {
        let (s, n) = on("unbounded-tx".into());
        let r = Arc::clone(&received);
        spawn(&sched, n, move || unbounded_producer(&s, utx, &r))
    };
    let unbounded_consumer = {
        let r = Arc::clone(&received);
        spawn(&sched, "unbounded-rx".into(), move || unbounded_consumer(urx, &r))
    };

    let crate_mutex = Arc::new(Mutex::new(0u64));
    let std_mutex = Arc::new(std::sync::Mutex::new(0u64));
    let crate_incs: Vec<_> = (0..3)
        .map(|i| {
            let (s, n) = on(format!("mutex-{i}"));
            let m = Arc::clone(&crate_mutex);
            spawn(&sched, n, move || crate_mutex_incrementer(&s, m))
        })
        .collect();
    let std_incs: Vec<_> = (0..3)
        .map(|i| {
            let (s, n) = on(format!("std-mutex-{i}"));
            let m = Arc::clone(&std_mutex);
            spawn(&sched, n, move || std_mutex_incrementer(&s, m))
        })
        .collect();

    let sleepers: Vec<_> = (1..=2u64)
        .map(|id| {
            let (s, n) = on(format!("sleeper-{id}"));
            spawn(&sched, n, move || sleeper(&s, id))
        })
        .collect();
    let turn = Arc::new(AtomicU64::new(0));
    let parked: Arc<[OnceLock<Thread>; 2]> = Arc::new([OnceLock::new(), OnceLock::new()]);
    let parkers: Vec<_> = (0..2u64)
        .map(|parity| {
            let (s, n) = on(format!("parker-{parity}"));
            let (turn, parked) = (Arc::clone(&turn), Arc::clone(&parked));
            spawn(&sched, n, move || parker(&s, parity, &turn, &parked))
        })
        .collect();

    // A watchdog on its own OS thread: if the threads are not all joined
    // JOIN_GRACE after the deadline, something hangs. It says what it saw
    // and aborts, without allocating (a thread stuck holding a malloc lock
    // may be why).
    let deadline = start + Duration::from_secs(secs);
    let joined = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let (s, joined, sched) = (Arc::clone(&s), Arc::clone(&joined), sched.clone());
        std::thread::spawn(move || {
            while Instant::now() < deadline + JOIN_GRACE {
                if joined.load(Ordering::Acquire) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            progress_line(
                format_args!("HUNG {} s after the deadline", JOIN_GRACE.as_secs()),
                &s,
                sched.total_preemptions(),
            )
            .emit();
            // Then what each worker and green thread is doing, from another
            // thread: it allocates, and a thread stuck holding a malloc
            // lock would stop it, so the abort does not wait for it long.
            // (Straight to stderr: libtest captures `eprintln!`, and an
            // aborted test's captured output is lost.)
            std::thread::spawn(|| {
                let mut err = std::io::stderr();
                for w in preemptive_mlthreading_rust::SystemMetrics::current().workers {
                    let _ = writeln!(err, "HUNG worker: {w:?}");
                }
                let _ = writeln!(err, "{}", preemptive_mlthreading_rust::metrics::ThreadDump::capture());
            });
            std::thread::sleep(Duration::from_secs(5));
            std::process::abort();
        })
    };

    // The deadline, with a heartbeat every 10 s. Every kind must make
    // progress in every heartbeat's interval, and so must preemption: a
    // worker stuck for seconds is a failure even if it recovers once the
    // threads stop at the deadline. (Not a performance threshold: any
    // progress will do.) The first stall is kept without allocating.
    let mut seen = [0u64; NAMES.len() + 1];
    let mut first_stall: Option<(usize, u64)> = None;
    let mut last_beat = start;
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        std::thread::sleep((deadline - now).min(Duration::from_secs(10)));
        let preemptions = sched.total_preemptions();
        progress_line(format_args!("{:>3} s", start.elapsed().as_secs()), &s, preemptions).emit();
        let mut now_seen = [0u64; NAMES.len() + 1];
        for (n, r) in now_seen.iter_mut().zip(&s.rounds) {
            *n = r.load(Ordering::Relaxed);
        }
        now_seen[NAMES.len()] = preemptions;
        if last_beat.elapsed() >= Duration::from_secs(5) && first_stall.is_none() {
            first_stall = (0..seen.len()).find(|&k| now_seen[k] == seen[k]).map(|k| (k, start.elapsed().as_secs()));
        }
        seen = now_seen;
        last_beat = Instant::now();
    }
    s.stop.store(true, Ordering::Relaxed);

    let join = |h: JoinHandle<u64>| h.join().expect("a soak thread failed");
    let tls: u64 = tls.into_iter().map(join).sum();
    let rand: u64 = rand.into_iter().map(join).sum();
    let (log_rounds, log_bytes) =
        log.into_iter().map(|h| h.join().expect("a logger failed")).fold((0, 0), |(r, b), (r2, b2)| (r + r2, b + b2));
    let malloc: u64 = malloc.into_iter().map(join).sum();

    let tally = |hs: Vec<JoinHandle<Tally>>| {
        hs.into_iter().map(|h| h.join().expect("a channel thread failed")).fold(Tally::default(), Tally::plus)
    };
    let bounded_sent = tally(bounded_producers);
    let bounded_got = tally(bounded_consumers);
    assert_eq!(bounded_got, bounded_sent, "bounded channel: every message received exactly once");
    let unbounded_sent = unbounded_producer.join().expect("the unbounded producer failed");
    let unbounded_got = unbounded_consumer.join().expect("the unbounded consumer failed");
    assert_eq!(unbounded_got, unbounded_sent, "unbounded channel: every message received exactly once");

    let crate_incs: u64 = crate_incs.into_iter().map(join).sum();
    assert_eq!(*crate_mutex.lock(), crate_incs, "crate Mutex: lost or doubled increments");
    let std_incs: u64 = std_incs.into_iter().map(join).sum();
    assert_eq!(*std_mutex.lock().unwrap(), std_incs, "std Mutex: lost or doubled increments");

    let sleeps: u64 = sleepers.into_iter().map(join).sum();
    let moves: Vec<u64> = parkers.into_iter().map(join).collect();
    assert_eq!(turn.load(Ordering::Acquire), moves[0] + moves[1], "park/unpark turns");
    assert!(moves[0].abs_diff(moves[1]) <= 1, "the two parkers alternate strictly: {moves:?}");

    // The progress counters saw every round the threads reported.
    let per_kind: Vec<u64> = s.rounds.iter().map(|r| r.load(Ordering::Relaxed)).collect();
    assert_eq!(per_kind[TLS], tls);
    assert_eq!(per_kind[RAND], rand);
    assert_eq!(per_kind[LOG], log_rounds);
    assert_eq!(per_kind[MALLOC], malloc);
    assert_eq!(per_kind[MUTEX], crate_incs + std_incs);
    assert_eq!(per_kind[SLEEP], sleeps + moves[0] + moves[1]);

    joined.store(true, Ordering::Release);
    watchdog.join().expect("the watchdog");
    if let Some((k, at)) = first_stall {
        let what = NAMES.get(k).copied().unwrap_or("preemption");
        panic!("{what} made no progress in the heartbeat interval ending at {at} s (exact results held)");
    }

    let sum = |v: Vec<u64>| v.iter().sum::<u64>();
    println!(
        "soak {secs} s, 2 workers, 100 µs slices, 25 threads: tls {tls} borrows, rand {rand} rounds, log {log_rounds} \
         rounds ({log_bytes} bytes), malloc {malloc} rounds, channels {} + {} messages, mutex {crate_incs} + std \
         {std_incs} increments, {sleeps} sleeps, {} park turns; preemptions {}, deferred {}, hand-offs {}; took {:.1} s",
        bounded_got.count,
        unbounded_got.count,
        moves[0] + moves[1],
        sched.total_preemptions(),
        sum(sched.worker_deferred_preemptions()),
        sum(sched.worker_hand_offs()),
        start.elapsed().as_secs_f64()
    );
}
