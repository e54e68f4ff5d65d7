//! Helpers every peer shares: /proc readings, CPU pinning, the CPU hog and
//! the turning of raw samples into an [`Outcome`].

use crate::outcome::Outcome;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    pages * page_size()
}

pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as usize } else { 4096 }
}

pub fn max_map_count() -> usize {
    read_number("/proc/sys/vm/max_map_count").unwrap_or(65530)
}

pub fn maps_in_use() -> usize {
    std::fs::read("/proc/self/maps").map(|m| m.iter().filter(|&&b| b == b'\n').count()).unwrap_or(0)
}

pub fn read_number(path: &str) -> Option<usize> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// MemAvailable from /proc/meminfo, in bytes.
pub fn mem_available() -> usize {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<usize>().ok())
        .map_or(usize::MAX, |kib| kib * 1024)
}

/// Below this much free memory the ceiling search stops: the machine is
/// shared.
pub const MEMORY_RESERVE: usize = 4 << 30;

/// Threads that fit under `vm.max_map_count` when each takes `per_thread`
/// maps, keeping 1000 for everything else.
pub fn map_capacity(per_thread: usize) -> usize {
    max_map_count().saturating_sub(maps_in_use() + 1000) / per_thread
}

/// The CPUs this process may run on.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity
    // writes at most size_of::<cpu_set_t>() bytes into it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return vec![0];
        }
        (0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &set)).collect()
    }
}

/// Pins the calling OS thread to one CPU.
pub fn pin_to(cpu: usize) -> std::io::Result<()> {
    // SAFETY: as in allowed_cpus; CPU_SET writes inside the set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The spawn scenarios' figure: the second of two equal bursts in one
/// process, for every peer. The first, in a fresh process, runs on memory
/// new to the process, whose cost is the kernel's and, under a VM, the
/// host's (bench/README.md, "Spawn bursts: the first against the second");
/// it is reported as `first_burst_ns`.
pub fn second_burst(mut burst: impl FnMut() -> f64) -> crate::outcome::Outcome {
    let first = burst();
    crate::outcome::Outcome::ok(burst()).extra("first_burst_ns", first)
}

pub fn ns_per(start: Instant, n: u64) -> f64 {
    start.elapsed().as_nanos() as f64 / n as f64
}

pub fn mops(start: Instant, ops: u64) -> f64 {
    ops as f64 / start.elapsed().as_secs_f64() / 1e6
}

/// ns per call of `op`, called `n` times.
pub fn time_per(n: u64, mut op: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        op();
    }
    ns_per(t, n)
}

/// Contended-lock throughput: `start` starts one of the
/// [`CONTENDERS`](crate::scenario::CONTENDERS) threads doing `per` locked
/// [`work`]s, `join` waits for one. Mops/s.
pub fn contended<H>(per: u64, start: impl FnMut() -> H, join: impl FnMut(H)) -> f64 {
    let n = crate::scenario::CONTENDERS;
    let t = Instant::now();
    let mut start = start;
    let hs: Vec<H> = (0..n).map(|_| start()).collect();
    hs.into_iter().for_each(join);
    mops(t, n * per)
}

/// A critical section of a few dozen instructions, the same for everyone.
#[inline]
pub fn work(v: &mut u64) {
    for _ in 0..8 {
        *v = std::hint::black_box(v.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

/// Shared state of the CPU-hog scenarios: a stop flag and one counter per
/// hog.
#[derive(Clone)]
pub struct Hogs {
    pub stop: Arc<AtomicBool>,
    pub counts: Arc<[AtomicU64; 2]>,
}

impl Default for Hogs {
    fn default() -> Self {
        Self::new()
    }
}

impl Hogs {
    pub fn new() -> Self {
        Hogs { stop: Arc::new(AtomicBool::new(false)), counts: Arc::new([AtomicU64::new(0), AtomicU64::new(0)]) }
    }

    /// The body of hog `i`: spins, never yields, until stopped.
    pub fn spin(&self, i: usize) {
        let mut local = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            local += 1;
            if local.is_multiple_of(1024) {
                self.counts[i].fetch_add(1024, Ordering::Relaxed);
            }
        }
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The slower hog's work over the faster one's (1 = fair).
    pub fn fairness(&self) -> f64 {
        let a = self.counts[0].load(Ordering::Relaxed) as f64;
        let b = self.counts[1].load(Ordering::Relaxed) as f64;
        if a.max(b) == 0.0 { 0.0 } else { a.min(b) / a.max(b) }
    }

    /// Stops the hogs at `deadline` unless stopped earlier, from a plain OS
    /// thread (the runtime under test may never run anything else).
    pub fn watchdog(&self, deadline: Duration) -> std::thread::JoinHandle<()> {
        let me = self.clone();
        std::thread::spawn(move || {
            let t = Instant::now();
            while !me.stopped() && t.elapsed() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            me.stop();
        })
    }
}

/// Sleeps of 1 ms, recording the lateness of each, until `n` sleeps or the
/// hogs are stopped; then stops them. `sleep` is the runtime's sleep.
pub fn sleeper_loop(hogs: &Hogs, n: usize, mut sleep: impl FnMut(Duration)) -> Vec<Duration> {
    let mut late = Vec::with_capacity(n);
    while late.len() < n && !hogs.stopped() {
        let t = Instant::now();
        sleep(Duration::from_millis(1));
        late.push(t.elapsed().saturating_sub(Duration::from_millis(1)));
    }
    hogs.stop();
    late
}

/// p50 lateness as the figure; p99, max and fairness as extras; "starved"
/// when one wait took over half the window (the sleeper could not run
/// until the hogs were stopped).
pub fn lateness_outcome(mut late: Vec<Duration>, asked: usize, deadline: Duration, hogs: &Hogs) -> Outcome {
    late.sort();
    let us: Vec<f64> = late.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    let fairness = hogs.fairness();
    if late.last().is_none_or(|l| *l > deadline / 2) {
        let longest = us.last().copied().unwrap_or(0.0);
        return Outcome::starved(format!(
            "woke {} times in {deadline:?} (asked {asked}); longest wait {:.0} ms",
            late.len(),
            longest / 1e3
        ))
        .extra("wakeups", late.len() as f64)
        .extra("fairness", fairness)
        .samples(us);
    }
    let n = us.len();
    let note = if fairness < 0.1 { "one hog hardly ran: the sleeper was not woken on the hogs' worker" } else { "" };
    Outcome::ok(us[n / 2])
        .note(note)
        .extra("p99_us", us[n * 99 / 100])
        .extra("max_us", us[n - 1])
        .extra("wakeups", n as f64)
        .extra("fairness", fairness)
        .samples(us)
}

/// p50 of latencies, with p99 and max as extras, all in µs.
pub fn latency_outcome(mut lat: Vec<Duration>) -> Outcome {
    lat.sort();
    let n = lat.len();
    if n == 0 {
        return Outcome::failed("no samples");
    }
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    Outcome::ok(us(lat[n / 2])).extra("p99_us", us(lat[n * 99 / 100])).extra("max_us", us(lat[n - 1]))
}

/// RSS per parked thread from readings before and after `n` threads parked.
pub fn rss_outcome(before: usize, after: usize, n: usize, note: Option<String>) -> Outcome {
    let o = Outcome::ok(after.saturating_sub(before) as f64 / n as f64).extra("threads", n as f64);
    match note {
        Some(s) => o.note(s),
        None => o,
    }
}

/// Measures a wake-up from the calling thread, which pauses with `sleep`
/// between rounds: `wake(i)` tells the woken thread to run round `i`, which
/// stores `origin.elapsed()` in `woke_at`.
pub fn wake_latencies(
    n: usize,
    origin: Instant,
    woke_at: &AtomicU64,
    sleep: impl Fn(Duration),
    mut wake: impl FnMut(u64),
) -> Vec<Duration> {
    let mut lat = Vec::with_capacity(n);
    for i in 1..=n as u64 {
        sleep(Duration::from_micros(500));
        let sent = origin.elapsed().as_nanos() as u64;
        wake(i);
        let t = Instant::now();
        loop {
            let w = woke_at.load(Ordering::Acquire);
            if w > sent {
                lat.push(Duration::from_nanos(w - sent));
                break;
            }
            if t.elapsed() > Duration::from_secs(2) {
                return lat;
            }
            std::hint::spin_loop();
        }
    }
    lat
}

/// The thread-count ceiling: calls `grow(total)` for each step, which adds
/// parked threads up to `total` and returns how many are parked, or the
/// count reached and why it stopped. Stops early when free memory runs low
/// or (for runtimes that would abort rather than return an error) when the
/// next step cannot fit under `vm.max_map_count` at `maps_per_thread`.
pub fn ceiling(
    steps: &[usize],
    maps_per_thread: Option<(usize, &str)>,
    mut grow: impl FnMut(usize) -> Result<usize, (usize, String)>,
) -> Outcome {
    let mut reached = 0;
    for &total in steps {
        if mem_available() < MEMORY_RESERVE {
            return ceiling_outcome(reached, format!("stopped: under {} GiB of memory left", MEMORY_RESERVE >> 30));
        }
        if let Some((per, who)) = maps_per_thread {
            let room = map_capacity(per);
            if total - reached > room {
                // Fill what fits, then stop short of the abort.
                let n = match grow(reached + room) {
                    Ok(n) | Err((n, _)) => n,
                };
                return ceiling_outcome(
                    n,
                    format!(
                        "stopped at vm.max_map_count={}: {who} threads take ~{per} maps each, and {who} \
                         aborts instead of returning an error past it",
                        max_map_count()
                    ),
                );
            }
        }
        match grow(total) {
            Ok(n) => reached = n,
            Err((n, why)) => return ceiling_outcome(n, why),
        }
    }
    ceiling_outcome(reached, format!("reached the cap of {reached}"))
}

fn ceiling_outcome(reached: usize, why: String) -> Outcome {
    Outcome::ok(reached as f64).note(why).extra("rss_mib", rss_bytes() as f64 / (1 << 20) as f64)
}

/// A fork-join leaf's fixed CPU work: a dependent multiply-xorshift chain of
/// [`LEAF_ITERS`](crate::scenario::LEAF_ITERS) steps. `black_box` on the
/// seed keeps the compiler from folding the loop into a constant; the
/// result is summed up the tree and checked, so it cannot be dropped.
/// `bench/go/main.go` runs the same loop.
#[inline(never)]
pub fn leaf(seed: u64) -> u64 {
    let mut x = std::hint::black_box(seed);
    for _ in 0..crate::scenario::LEAF_ITERS {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        x ^= x >> 29;
    }
    x
}

/// Times a fork-join tree on one worker and on two, `rounds` times each,
/// interleaved (so a burst of noise hits both), and returns the medians in
/// ms. Each closure builds its runtime and returns the tree's checksum and
/// how long the tree took; the two checksums must agree.
pub fn fork_join_times(
    rounds: usize,
    mut one: impl FnMut() -> (u64, Duration),
    mut two: impl FnMut() -> (u64, Duration),
) -> (f64, f64) {
    let (mut t1, mut t2) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (s1, d1) = one();
        let (s2, d2) = two();
        assert_eq!(s1, s2, "both worker counts compute the same tree");
        t1.push(d1);
        t2.push(d2);
    }
    (median_ms(t1), median_ms(t2))
}

pub fn median_ms(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

/// The fork-join figure: the speedup of 2 workers over 1, with both times.
/// The work of imbalance thread `i`: `i % 8 + 1` units of `unit` leaves,
/// so that the threads are uneven. Returns its checksum.
pub fn imbalance_work(i: u64, unit: u64) -> u64 {
    (0..(i % 8 + 1) * unit).fold(0u64, |acc, k| acc.wrapping_add(leaf(i * 1_000 + k)))
}

/// Chameneos-redux: the colour a creature of colour `a` takes after
/// meeting one of colour `b` (blue 0, red 1, yellow 2).
pub fn complement(a: u8, b: u8) -> u8 {
    if a == b { a } else { 3 - a - b }
}

/// What a creature asks the broker: its number, its colour.
pub type Visit = (u64, u8);
/// The broker's answer: the other creature's number and colour, or None
/// once every meeting has taken place.
pub type Met = Option<(u64, u8)>;

/// A chameneos creature's loop: visits the broker through `meet` until it
/// answers None; returns its meetings. `meet` sends the visit and waits.
pub fn creature(id: u64, mut meet: impl FnMut(Visit) -> Met) -> u64 {
    let (mut colour, mut meetings) = ((id % 3) as u8, 0);
    while let Some((_, other)) = meet((id, colour)) {
        colour = complement(colour, other);
        meetings += 1;
    }
    meetings
}

/// The broker: pairs `meetings` times the next two visits that `next`
/// gives (a visit and its reply path), answering each with the other,
/// then answers every creature's next visit with None.
pub fn broker<R>(meetings: u64, mut next: impl FnMut() -> (Visit, R), mut reply: impl FnMut(R, Met)) {
    for _ in 0..meetings {
        let (a, ra) = next();
        let (b, rb) = next();
        reply(ra, Some(b));
        reply(rb, Some(a));
    }
    for _ in 0..crate::scenario::CREATURES {
        let (_, r) = next();
        reply(r, None);
    }
}

/// ns per meeting, checking that the creatures counted two per meeting.
pub fn chameneos_outcome(start: Instant, meetings: u64, counted: u64) -> Outcome {
    if counted != 2 * meetings {
        return Outcome::failed(format!("{counted} creature-meetings counted for {meetings} meetings"));
    }
    Outcome::ok(ns_per(start, meetings))
}

pub fn fork_join_outcome((w1_ms, w2_ms): (f64, f64)) -> Outcome {
    Outcome::ok(w1_ms / w2_ms).extra("w1_ms", w1_ms).extra("w2_ms", w2_ms)
}

/// The links of the thread ring: for each of the
/// [`RING_THREADS`](crate::scenario::RING_THREADS) threads, its own
/// receiver and the next thread's sender, and apart a sender to the first
/// thread, for the token. Once the caller has sent the token and dropped
/// that one, only the threads hold senders: the thread that takes the last
/// hop returns, dropping the next one's sender, which ends that thread's
/// loop, and so on around the ring.
pub fn ring_links<S: Clone, R>(mut channel: impl FnMut() -> (S, R)) -> (S, Vec<(R, S)>) {
    let (mut nexts, rxs): (Vec<S>, Vec<R>) = (0..crate::scenario::RING_THREADS).map(|_| channel()).unzip();
    let first = nexts[0].clone();
    nexts.rotate_left(1);
    (first, rxs.into_iter().zip(nexts).collect())
}

/// ns per hop: from `start` to the time noted by the thread that took the
/// last hop, the one `Some` among `ends`.
pub fn ns_per_hop(start: Instant, ends: impl IntoIterator<Item = Option<Instant>>, hops: u64) -> f64 {
    let end = ends.into_iter().flatten().next().expect("one thread saw the last hop");
    (end - start).as_nanos() as f64 / hops as f64
}

/// A ring thread's loop: takes each token from `tokens` and `pass`es it on,
/// less one, until it takes the token at 0 (then it returns the time: it
/// took the last hop) or the ring winds down (`None`).
pub fn ring_thread(tokens: impl Iterator<Item = u64>, mut pass: impl FnMut(u64) -> bool) -> Option<Instant> {
    for v in tokens {
        if v == 0 {
            return Some(Instant::now());
        }
        if !pass(v - 1) {
            break;
        }
    }
    None
}
