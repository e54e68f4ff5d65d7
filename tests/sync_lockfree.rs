//! Lock-free queue and stack, RCU and the fast-path counters under green
//! threads with preemption on (two workers, 100 µs slices), plus the
//! PERFORMANCE_TUNING.md snippets as written.

mod common;

use common::scaled;
use preemptive_mlthreading_rust::perf::fast_paths::{FastPaths, LockFreeQueue, QueueFull};
use preemptive_mlthreading_rust::sync::{LockFreeStack, Mutex, MutexGuard, RcuProtected};
use preemptive_mlthreading_rust::{Duration, JoinHandle, RoundRobinScheduler};
use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

fn preemptions(sched: &RoundRobinScheduler) -> u64 {
    sched.worker_preemptions().iter().sum()
}

// ---- The guide's types -------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
struct WorkItem {
    id: u64,
}

static PROCESSED: AtomicU64 = AtomicU64::new(0);

fn process_work_item(item: WorkItem) {
    PROCESSED.fetch_add(item.id, Ordering::Relaxed);
}

#[derive(Debug, Clone, PartialEq)]
struct SystemConfig {
    workers: usize,
    name: &'static str,
}

impl SystemConfig {
    /// A user `const fn`, so that the guide's `static CONFIG` compiles.
    const fn default() -> Self {
        SystemConfig { workers: 2, name: "default" }
    }
}

// ---- "Lock-Free Data Structures" (Memory Management) -------------------

static WORK_QUEUE: LockFreeQueue<WorkItem> = LockFreeQueue::new();

fn guide_producer(work_items: Vec<WorkItem>) -> Result<(), Box<dyn Error>> {
    // Producer thread
    for work_item in work_items {
        WORK_QUEUE.fast_enqueue(work_item)?;
    }
    Ok(())
}

fn guide_consumer() {
    // Consumer thread
    while let Some(work_item) = WORK_QUEUE.fast_dequeue() {
        process_work_item(work_item);
    }
}

#[test]
fn guide_work_queue_snippet() {
    let sched = common::preemptive(2, Duration::from_micros(100));
    let producers: Vec<_> = (0..4u64)
        .map(|p| {
            sched
                .spawn(move || {
                    guide_producer((1..=100).map(|i| WorkItem { id: p * 100 + i }).collect()).map_err(|e| e.to_string())
                })
                .unwrap()
        })
        .collect();
    for r in common::join_all(producers) {
        r.unwrap();
    }
    common::join_all((0..4).map(|_| sched.spawn(guide_consumer).unwrap()).collect());
    assert!(WORK_QUEUE.is_empty());
    assert_eq!(PROCESSED.load(Ordering::Relaxed), (1..=400).sum::<u64>());
}

// ---- "Fast Path Optimization" -----------------------------------------

const THRESHOLD: u64 = 1000;
static OVERFLOWS: AtomicU64 = AtomicU64::new(0);

fn handle_overflow_slow_path() {
    OVERFLOWS.fetch_add(1, Ordering::Relaxed);
}

// Fast path operations avoid locks entirely
fn optimized_increment_counter() {
    static COUNTER: AtomicU64 = AtomicU64::new(0);

    // Use fast atomic increment (single instruction)
    let old_value = FastPaths::fast_atomic_increment(&COUNTER);

    // Only use slow path if needed
    if old_value > THRESHOLD {
        handle_overflow_slow_path();
    }
}

struct Data(u64);

// Fast mutex operations
#[allow(mismatched_lifetime_syntaxes)] // as written in the guide
fn try_fast_lock(mutex: &Mutex<Data>) -> Option<MutexGuard<Data>> {
    // Try fast lock first (single CAS)
    if let Ok(guard) = mutex.try_lock() {
        FastPaths::record_fast_path();
        Some(guard)
    } else {
        FastPaths::record_slow_path();
        None
    }
}

/// The only test that records fast/slow paths (the counters are
/// process-wide), so the deltas it checks are exact.
#[test]
fn fast_paths_snippets_and_counters_are_exact_under_preemption() {
    let sched = common::preemptive(2, Duration::from_micros(100));
    let per = scaled(20_000);
    let threads = 8u64;

    // The guide's counter: exact, and the slow path ran for every value
    // past the threshold.
    common::join_all(
        (0..threads)
            .map(|_| sched.spawn(move || (0..per).for_each(|_| optimized_increment_counter())).unwrap())
            .collect(),
    );
    assert_eq!(OVERFLOWS.load(Ordering::Relaxed), threads * per - THRESHOLD - 1);

    // The guide's try_fast_lock: every attempt is recorded exactly once.
    let before = FastPaths::stats();
    let m = Arc::new(Mutex::new(Data(0)));
    let hs = (0..threads)
        .map(|_| {
            let m = Arc::clone(&m);
            sched
                .spawn(move || {
                    let mut got = 0u64;
                    for _ in 0..per {
                        if let Some(mut g) = try_fast_lock(&m) {
                            g.0 += 1;
                            got += 1;
                        }
                    }
                    got
                })
                .unwrap()
        })
        .collect();
    let got: u64 = common::join_all(hs).into_iter().sum();
    let after = FastPaths::stats();
    assert_eq!(m.lock().0, got);
    assert_eq!(after.fast - before.fast, got);
    assert_eq!(after.fast + after.slow - before.fast - before.slow, threads * per);

    // Raw recording from green and OS threads at once.
    let before = FastPaths::stats();
    let mut hs: Vec<_> = (0..threads)
        .map(|_| sched.spawn(move || (0..per).for_each(|_| FastPaths::record_fast_path())).unwrap())
        .collect();
    hs.extend((0..2).map(|_| sched.spawn(move || (0..per).for_each(|_| FastPaths::record_slow_path())).unwrap()));
    let os: Vec<_> =
        (0..2).map(|_| std::thread::spawn(move || (0..per).for_each(|_| FastPaths::record_slow_path()))).collect();
    common::join_all(hs);
    os.into_iter().for_each(|t| t.join().unwrap());
    let after = FastPaths::stats();
    assert_eq!(after.fast - before.fast, threads * per);
    assert_eq!(after.slow - before.slow, 4 * per);
    println!(
        "fast paths: {got} of {} try_locks fast; ratio now {:.3}; {} preemptions",
        threads * per,
        after.fast_ratio(),
        preemptions(&sched)
    );

    FastPaths::reset();
    assert_eq!(FastPaths::stats(), Default::default());
    assert!(FastPaths::stats().fast_ratio().is_nan());
}

// ---- "Lock-Free Data Structures" (Lock-Free Programming) ---------------

static WORK_STACK: LockFreeStack<WorkItem> = LockFreeStack::new();
static STACK_PROCESSED: AtomicU64 = AtomicU64::new(0);

fn process_item(item: WorkItem) {
    STACK_PROCESSED.fetch_add(item.id, Ordering::Relaxed);
}

// Multiple producers can push simultaneously
fn producer_thread(work_items: Vec<WorkItem>) {
    for item in work_items {
        WORK_STACK.push(item); // No locks needed
    }
}

// Multiple consumers can pop simultaneously
fn consumer_thread() {
    while let Some(item) = WORK_STACK.pop() {
        process_item(item);
    }
}

#[test]
fn guide_work_stack_snippet() {
    let sched = common::preemptive(2, Duration::from_micros(100));
    let n = scaled(10_000);
    let producers = (0..4u64)
        .map(|p| sched.spawn(move || producer_thread((1..=n).map(|i| WorkItem { id: p * n + i }).collect())).unwrap())
        .collect();
    common::join_all(producers);
    common::join_all((0..4).map(|_| sched.spawn(consumer_thread).unwrap()).collect());
    assert!(WORK_STACK.is_empty());
    assert_eq!(STACK_PROCESSED.load(Ordering::Relaxed), (1..=4 * n).sum::<u64>());
}

// ---- "Read-Copy-Update (RCU) Patterns" --------------------------------

// RCU-protected configuration that changes rarely
static CONFIG: RcuProtected<SystemConfig> = RcuProtected::new(SystemConfig::default());

// Readers access data without locks
fn read_config() -> SystemConfig {
    let guard = CONFIG.read();
    (*guard).clone() // Fast read access
}

// Writers update atomically
fn update_config(new_config: SystemConfig) {
    CONFIG.update(|_old| new_config); // Atomic update
    CONFIG.synchronize(); // Wait for readers
}

#[test]
fn guide_rcu_config_snippet() {
    let sched = common::preemptive(2, Duration::from_micros(100));
    assert_eq!(read_config(), SystemConfig::default());
    let rounds = scaled(2_000) as usize;
    let readers: Vec<_> = (0..4)
        .map(|_| {
            sched
                .spawn(move || {
                    let mut last = 0;
                    for _ in 0..rounds {
                        let c = read_config();
                        assert!(c.workers >= last, "configs are seen in order");
                        assert_eq!(c.name, if c.workers == 2 { "default" } else { "tuned" });
                        last = c.workers;
                    }
                })
                .unwrap()
        })
        .collect();
    let writer = sched
        .spawn(move || (3..3 + rounds / 10).for_each(|w| update_config(SystemConfig { workers: w, name: "tuned" })))
        .unwrap();
    writer.join().unwrap();
    common::join_all(readers);
    assert_eq!(read_config().workers, 2 + rounds / 10);
}

// ---- "Issue: Lock Contention" ------------------------------------------

mod lock_contention {
    use super::WorkItem;

    // 1. Use lock-free data structures
    use preemptive_mlthreading_rust::sync::LockFreeQueue;
    static QUEUE: LockFreeQueue<WorkItem> = LockFreeQueue::new();

    #[test]
    fn guide_lock_contention_queue_snippet() {
        QUEUE.fast_enqueue(WorkItem { id: 1 }).unwrap();
        assert_eq!(QUEUE.fast_dequeue(), Some(WorkItem { id: 1 }));
        assert_eq!(QUEUE.capacity(), None);
    }
}

// ---- Queue and stack: exactly once, nothing leaked -------------------

/// An item that counts its drops and whose pops are ticked off once each.
struct Tracked {
    id: u64,
    drops: Arc<AtomicU64>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

/// Ticks off ids; panics on a duplicate.
struct Seen(Vec<AtomicBool>);

impl Seen {
    fn new(n: u64) -> Arc<Self> {
        Arc::new(Seen((0..n).map(|_| AtomicBool::new(false)).collect()))
    }
    fn tick(&self, id: u64) {
        assert!(!self.0[id as usize].swap(true, Ordering::Relaxed), "item {id} taken twice");
    }
    fn all(&self) -> bool {
        self.0.iter().all(|b| b.load(Ordering::Relaxed))
    }
}

/// `producers` green threads push `per` tracked items each through `push`
/// while `consumers` green threads pop through `pop` until every item was
/// taken. Checks each item is taken once, sum and count, and that every
/// item was dropped exactly once, counting `leftover` items the caller
/// puts in afterwards and that the container's own drop must free.
fn exactly_once<C: Send + Sync + 'static>(
    what: &str,
    container: C,
    push: fn(&C, Tracked),
    pop: fn(&C) -> Option<Tracked>,
    leftover: u64,
) {
    let sched = common::preemptive(2, Duration::from_micros(100));
    let (producers, consumers, per) = (8u64, 8u64, scaled(20_000));
    let total = producers * per;
    let c = Arc::new(container);
    let drops = Arc::new(AtomicU64::new(0));
    let seen = Seen::new(total + leftover);
    let taken = Arc::new(AtomicU64::new(0));
    let mut hs: Vec<JoinHandle<u64>> = (0..producers)
        .map(|p| {
            let (c, drops) = (Arc::clone(&c), Arc::clone(&drops));
            sched
                .spawn(move || {
                    (p * per..(p + 1) * per).for_each(|id| push(&c, Tracked { id, drops: Arc::clone(&drops) }));
                    0
                })
                .unwrap()
        })
        .collect();
    hs.extend((0..consumers).map(|_| {
        let (c, seen, taken) = (Arc::clone(&c), Arc::clone(&seen), Arc::clone(&taken));
        sched
            .spawn(move || {
                let mut sum = 0;
                while taken.load(Ordering::Relaxed) < total {
                    match pop(&c) {
                        Some(item) => {
                            seen.tick(item.id);
                            sum += item.id;
                            taken.fetch_add(1, Ordering::Relaxed);
                        }
                        None => preemptive_mlthreading_rust::yield_now(),
                    }
                }
                sum
            })
            .unwrap()
    }));
    let sum: u64 = common::join_all(hs).into_iter().sum();
    assert_eq!(sum, (0..total).sum::<u64>());
    assert!(pop(&c).is_none());
    assert_eq!(drops.load(Ordering::Relaxed), total);
    for id in total..total + leftover {
        seen.tick(id);
        push(&c, Tracked { id, drops: Arc::clone(&drops) });
    }
    drop(Arc::into_inner(c).expect("all threads joined"));
    assert!(seen.all());
    assert_eq!(drops.load(Ordering::Relaxed), total + leftover, "every item dropped exactly once");
    println!(
        "{what}: {producers} producers x {per} items, {consumers} consumers, {leftover} left to drop; {} preemptions",
        preemptions(&sched)
    );
}

#[test]
fn queue_unbounded_every_item_once_under_preemption() {
    exactly_once(
        "unbounded queue",
        LockFreeQueue::new(),
        |q, t| q.fast_enqueue(t).unwrap(),
        LockFreeQueue::fast_dequeue,
        100,
    );
}

#[test]
fn queue_bounded_every_item_once_under_preemption() {
    exactly_once(
        "bounded queue (64)",
        LockFreeQueue::bounded(64),
        |q, mut t| {
            while let Err(QueueFull(back)) = q.fast_enqueue(t) {
                t = back;
                preemptive_mlthreading_rust::yield_now();
            }
        },
        LockFreeQueue::fast_dequeue,
        64,
    );
}

#[test]
fn stack_every_item_once_under_preemption() {
    exactly_once("stack", LockFreeStack::new(), LockFreeStack::push, LockFreeStack::pop, 100);
}

#[test]
fn bounded_queue_full_returns_the_item() {
    let q = LockFreeQueue::bounded(2);
    let drops = Arc::new(AtomicU64::new(0));
    for id in 0..2 {
        q.fast_enqueue(Tracked { id, drops: Arc::clone(&drops) }).unwrap();
    }
    let err = q.fast_enqueue(Tracked { id: 7, drops: Arc::clone(&drops) }).unwrap_err();
    assert_eq!(err.to_string(), "lock-free queue is full");
    assert_eq!(format!("{err:?}"), "QueueFull(..)");
    let back = err.into_inner();
    assert_eq!(back.id, 7);
    assert_eq!(drops.load(Ordering::Relaxed), 0, "nothing dropped on the way");
    assert_eq!((q.len(), q.capacity()), (2, Some(2)));
    assert_eq!(q.fast_dequeue().unwrap().id, 0);
    q.fast_enqueue(back).unwrap();
    drop(q);
    assert_eq!(drops.load(Ordering::Relaxed), 3);
}

// ---- RCU --------------------------------------------------------------

const ALIVE: u64 = 0xA11CE;
const DEAD: u64 = 0xDEAD;

/// A version with an invariant: `a == b`, `items == [a; 64]`. Its drop
/// poisons it, so a reader that reads a freed version (whose memory was not
/// reused yet) panics, and counts itself.
struct Version {
    a: u64,
    items: Vec<u64>,
    b: u64,
    magic: u64,
    drops: Arc<AtomicU64>,
}

impl Version {
    fn new(n: u64, drops: &Arc<AtomicU64>) -> Self {
        Version { a: n, items: vec![n; 64], b: n, magic: ALIVE, drops: Arc::clone(drops) }
    }
    fn check(&self) -> u64 {
        assert_eq!(std::hint::black_box(self.magic), ALIVE, "read after free");
        assert_eq!(self.a, self.b);
        assert!(self.items.iter().all(|&x| x == self.a));
        self.a
    }
}

impl Drop for Version {
    fn drop(&mut self) {
        assert_eq!(self.magic, ALIVE, "dropped twice");
        self.magic = DEAD;
        self.items.iter_mut().for_each(|x| *x = u64::MAX);
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn rcu_readers_see_whole_versions_while_writers_update_and_synchronize() {
    let sched = common::preemptive(2, Duration::from_micros(100));
    let drops = Arc::new(AtomicU64::new(0));
    let rcu = Arc::new(RcuProtected::new(Version::new(0, &drops)));
    let (writers, updates) = (2u64, scaled(2_000));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..12)
        .map(|_| {
            let (rcu, stop) = (Arc::clone(&rcu), Arc::clone(&stop));
            sched
                .spawn(move || {
                    let (mut reads, mut last) = (0u64, 0);
                    while !stop.load(Ordering::Relaxed) {
                        let g = rcu.read();
                        let n = g.check();
                        assert!(n >= last, "versions go forward");
                        last = n;
                        // Hold the guard a while, across possible preemption.
                        for _ in 0..reads % 8 {
                            std::hint::black_box(g.check());
                        }
                        reads += 1;
                    }
                    reads
                })
                .unwrap()
        })
        .collect();
    let ws: Vec<_> = (0..writers)
        .map(|w| {
            let (rcu, drops) = (Arc::clone(&rcu), Arc::clone(&drops));
            sched
                .spawn(move || {
                    for i in 0..updates {
                        rcu.update(|old| Version::new(old.check() + 1, &drops));
                        if (i + w) % 4 == 0 {
                            rcu.synchronize();
                        }
                    }
                })
                .unwrap()
        })
        .collect();
    common::join_all(ws);
    stop.store(true, Ordering::Relaxed);
    let reads: u64 = common::join_all(readers).into_iter().sum();
    assert_eq!(rcu.read().check(), writers * updates);
    let freed_early = drops.load(Ordering::Relaxed);
    drop(Arc::into_inner(rcu).unwrap());
    assert_eq!(drops.load(Ordering::Relaxed), writers * updates + 1, "every version dropped once");
    println!(
        "rcu: {reads} reads, {} updates, {freed_early} versions freed before drop; {} preemptions",
        writers * updates,
        preemptions(&sched)
    );
}

#[test]
fn synchronize_waits_for_earlier_reader_but_not_for_later_ones() {
    let sched = common::preemptive(2, Duration::from_micros(100));
    let drops = Arc::new(AtomicU64::new(0));
    // Version 1 is boxed (the initial value is inline and lives as long as
    // the RcuProtected), so that the grace period has a version to free.
    let rcu = Arc::new(RcuProtected::new(Version::new(0, &drops)));
    rcu.update(|old| Version::new(old.a + 1, &drops));
    // The earlier reader: this OS thread.
    let early = rcu.read();
    rcu.update(|old| Version::new(old.a + 1, &drops));
    assert_eq!(drops.load(Ordering::Relaxed), 0, "a reader holds the old version");

    let (started, done, stop) =
        (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let later_reads = Arc::new(AtomicU64::new(0));
    // Later readers, hand over hand, so that one guard is always alive: a
    // grace period that waited for all readers would never end.
    let later: Vec<_> = (0..2)
        .map(|_| {
            let (rcu, started, stop, reads) =
                (Arc::clone(&rcu), Arc::clone(&started), Arc::clone(&stop), Arc::clone(&later_reads));
            sched
                .spawn(move || {
                    while !started.load(Ordering::Acquire) {
                        preemptive_mlthreading_rust::yield_now();
                    }
                    let mut g = rcu.read();
                    while !stop.load(Ordering::Acquire) {
                        let next = rcu.read();
                        assert_eq!(next.check(), 2);
                        g = next;
                        reads.fetch_add(1, Ordering::Relaxed);
                    }
                    drop(g);
                })
                .unwrap()
        })
        .collect();
    let sync = {
        let (rcu, started, done) = (Arc::clone(&rcu), Arc::clone(&started), Arc::clone(&done));
        sched
            .spawn(move || {
                started.store(true, Ordering::Release);
                rcu.synchronize();
                done.store(true, Ordering::Release);
            })
            .unwrap()
    };
    // Let the later readers make plenty of progress (not a timing
    // threshold: a count of their reads) with the early guard held.
    let target = scaled(50_000);
    while later_reads.load(Ordering::Relaxed) < target {
        std::thread::sleep(Duration::from_micros(200));
    }
    assert!(!done.load(Ordering::Acquire), "synchronize returned while an earlier reader held its guard");
    assert_eq!(early.check(), 1);
    assert_eq!(drops.load(Ordering::Relaxed), 0);
    drop(early);
    // Must finish while the later readers keep reading.
    sync.join().unwrap();
    assert!(done.load(Ordering::Acquire));
    assert_eq!(drops.load(Ordering::Relaxed), 1, "the old version is freed by the grace period");
    let during = later_reads.load(Ordering::Relaxed);
    stop.store(true, Ordering::Release);
    common::join_all(later);
    println!("synchronize: waited through {during} later reads, returned while later readers ran");
}
