//! What a green thread keeps per OS thread — its `thread_local!`s, libc's
//! state, std's panic count — is never seen by a sibling, whatever
//! instruction preemption lands on: a preempted thread keeps its OS thread
//! until it resumes, and so does a thread that switches while it unwinds a
//! panic. And code in libc or std is preempted like any other code.
//!
//! Each test runs until enough preemptions happened (bounded by a generous
//! "not stuck" limit) and prints what it saw.

use preemptive_mlthreading_rust::{Duration, RoundRobinScheduler, ThreadBuilder, ThreadError, yield_now};
use std::cell::{Cell, RefCell};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

mod common;
use common::{is_child, run_child};

/// Waits until the scheduler has taken `n` preemptions, failing after 60 s.
fn until_preempted(sched: &RoundRobinScheduler, n: u64, what: &str) {
    common::wait_until(
        Duration::from_secs(60),
        || sched.total_preemptions() >= n,
        || {
            format!(
                "{what}: only {} preemptions (deferred {:?})",
                sched.total_preemptions(),
                sched.worker_deferred_preemptions()
            )
        },
    );
}

fn spin_for(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

thread_local! {
    static BUF: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
    static OWNER: Cell<u64> = const { Cell::new(0) };
}

#[test]
fn a_thread_local_borrowed_across_a_preemption_is_never_seen_by_a_sibling() {
    // Each thread holds a RefCell borrow of a thread-local (and marks a
    // plain Cell, as UnsafeCell-based thread-locals such as rand's would)
    // for longer than a slice: preemption lands inside the borrow. A
    // sibling run on the same OS thread would panic "already borrowed", or
    // find the mark changed under it.
    let sched = common::preemptive(1, Duration::from_micros(200));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (1..=3u64)
        .map(|id| {
            let stop = Arc::clone(&stop);
            sched
                .spawn(move || {
                    let mut rounds = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        BUF.with(|b| {
                            let mut v = b.borrow_mut();
                            v.push(id);
                            OWNER.with(|o| o.set(id));
                            spin_for(Duration::from_micros(500));
                            assert_eq!(OWNER.with(Cell::get), id, "a sibling wrote this OS thread's thread-local");
                            assert_eq!(v.pop(), Some(id));
                        });
                        rounds += 1;
                    }
                    rounds
                })
                .unwrap()
        })
        .collect();
    until_preempted(&sched, 200, "thread-local borrowers");
    stop.store(true, Ordering::Relaxed);
    let rounds: Vec<u64> = threads.into_iter().map(|h| h.join().expect("a borrow was seen by a sibling")).collect();
    println!(
        "3 threads borrowing a thread-local across 200 µs slices: rounds {rounds:?}, preemptions {}, deferred {:?}",
        sched.total_preemptions(),
        sched.worker_deferred_preemptions()
    );
    assert!(rounds.iter().all(|&r| r > 0), "every thread ran: {rounds:?}");
}

#[test]
fn code_inside_a_thread_local_access_is_preempted() {
    // The closure passed to `with` is inlined into std's generic accessor,
    // whose symbol carries std's path: a spin there must still be
    // preempted, or the two threads never take turns.
    let sched = common::preemptive(1, Duration::from_micros(200));
    let stop = Arc::new(AtomicBool::new(false));
    let turns = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (1..=2u64)
        .map(|id| {
            let (stop, turns) = (Arc::clone(&stop), Arc::clone(&turns));
            sched
                .spawn(move || {
                    OWNER.with(|o| {
                        while !stop.load(Ordering::Relaxed) {
                            if o.replace(id) != id {
                                turns.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    })
                })
                .unwrap()
        })
        .collect();
    until_preempted(&sched, 50, "spins inside LocalKey::with");
    stop.store(true, Ordering::Relaxed);
    threads.into_iter().for_each(|h| h.join().unwrap());
    println!(
        "spins inside LocalKey::with: {} preemptions, {} hand-overs seen through the thread-local",
        sched.total_preemptions(),
        turns.load(Ordering::Relaxed)
    );
    // Each thread keeps its own OS thread's value: never the other's.
    assert!(turns.load(Ordering::Relaxed) <= 2, "a thread saw its sibling's thread-local");
}

fn counting_sibling(
    sched: &RoundRobinScheduler,
    stop: &Arc<AtomicBool>,
) -> preemptive_mlthreading_rust::JoinHandle<u64> {
    let stop = Arc::clone(stop);
    sched
        .spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n = black_box(n + 1);
            }
            n
        })
        .unwrap()
}

/// A thread that lives in libc (`write`) or in std's allocation and
/// formatting paths is preempted like any other: its preemptions are taken,
/// not deferred, and its sibling gets turns.
fn libc_heavy_thread_is_preempted(what: &str, work: fn()) {
    let sched = common::preemptive(1, Duration::from_millis(1));
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    let heavy = sched
        .spawn(move || {
            let mut n = 0u64;
            while !s.load(Ordering::Relaxed) {
                work();
                n += 1;
            }
            n
        })
        .unwrap();
    let sibling = counting_sibling(&sched, &stop);
    until_preempted(&sched, 100, what);
    stop.store(true, Ordering::Relaxed);
    let (calls, counted) = (heavy.join().unwrap(), sibling.join().unwrap());
    let (taken, deferred) = (sched.total_preemptions(), sched.worker_deferred_preemptions()[0]);
    println!("{what}: {calls} calls, sibling counted {counted}; preemptions taken {taken}, deferred {deferred}");
    assert!(counted > 0, "{what}: the sibling never ran");
    // Were libc's calls preempt-disable scopes, nearly every signal would
    // be deferred. A few are on a loaded machine: a host descheduled in the
    // middle of a switch has the monitor's repeated signals deferred, each
    // counted (26 against 101 taken once in CI, 0-4 usually).
    assert!(deferred <= taken, "{what}: most preemptions were deferred ({deferred} of {})", taken + deferred);
}

#[test]
fn a_thread_looping_on_write_is_preempted() {
    let devnull = std::fs::OpenOptions::new().write(true).open("/dev/null").unwrap();
    use std::os::fd::IntoRawFd;
    static FD: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
    FD.get_or_init(|| devnull.into_raw_fd());
    libc_heavy_thread_is_preempted("write() to /dev/null", || {
        let buf = [7u8; 64];
        // SAFETY: writes our own buffer to a descriptor we opened.
        unsafe { libc::write(*FD.get().unwrap(), buf.as_ptr().cast(), buf.len()) };
    });
}

#[test]
fn a_thread_looping_on_getppid_is_preempted() {
    libc_heavy_thread_is_preempted("getppid()", || {
        // SAFETY: getppid has no preconditions.
        black_box(unsafe { libc::getppid() });
    });
}

#[test]
fn a_thread_looping_on_malloc_and_formatting_is_preempted() {
    libc_heavy_thread_is_preempted("malloc/free and to_string", || {
        let v: Vec<String> = (0..16u64).map(|i| (i * 7919).to_string()).collect();
        black_box(v);
    });
}

/// Drops `Unwinder` during a panic: its destructor switches (yields,
/// sleeps, parks on a channel) while std counts the thread as panicking.
struct Unwinder {
    rounds: u32,
}

impl Drop for Unwinder {
    fn drop(&mut self) {
        assert!(std::thread::panicking());
        let (tx, rx) = preemptive_mlthreading_rust::sync::channel::bounded::<u32>(1);
        for i in 0..self.rounds {
            yield_now();
            preemptive_mlthreading_rust::sleep(Duration::from_micros(50));
            tx.send(i).unwrap();
            assert_eq!(rx.recv().unwrap(), i);
        }
        // Still panicking: the count stayed with this thread.
        assert!(std::thread::panicking());
    }
}

#[test]
fn a_thread_switching_while_it_unwinds_leaves_no_panic_state_behind() {
    std::panic::set_hook(Box::new(|_| {}));
    let sched = common::preemptive(1, Duration::from_millis(1));
    let stop = Arc::new(AtomicBool::new(false));
    let seen_panicking = Arc::new(AtomicU64::new(0));
    let lock = Arc::new(std::sync::Mutex::new(0u64));
    // Siblings that check what they see of std's per-OS-thread panic state,
    // and lock a std Mutex (which poisons on a guard dropped while
    // "panicking").
    let siblings: Vec<_> = (0..2)
        .map(|_| {
            let (stop, seen, lock) = (Arc::clone(&stop), Arc::clone(&seen_panicking), Arc::clone(&lock));
            sched
                .spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        if std::thread::panicking() {
                            seen.fetch_add(1, Ordering::Relaxed);
                        }
                        *lock.lock().expect("a sibling's panic poisoned a std Mutex") += 1;
                        n += 1;
                        if n.is_multiple_of(64) {
                            yield_now();
                        }
                    }
                })
                .unwrap()
        })
        .collect();
    let panickers: Vec<_> = (0..3)
        .map(|_| {
            sched
                .spawn(|| {
                    let _u = Unwinder { rounds: 200 };
                    panic!("unwinding through a switching destructor");
                })
                .unwrap()
        })
        .collect();
    for p in panickers {
        match p.join() {
            Err(ThreadError::Panicked(e)) => assert_eq!(e.message(), "unwinding through a switching destructor"),
            other => panic!("expected the panic back, got {other:?}"),
        }
    }
    // Preemption still works on this worker: a fresh hog is preempted.
    let before = sched.total_preemptions();
    let hog_stop = Arc::new(AtomicBool::new(false));
    let hog = counting_sibling(&sched, &hog_stop);
    until_preempted(&sched, before + 20, "after the unwinding threads");
    hog_stop.store(true, Ordering::Relaxed);
    hog.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    siblings.into_iter().for_each(|h| h.join().expect("a sibling failed"));
    let _ = std::panic::take_hook();
    println!(
        "3 threads yielding, sleeping and parking 200 times each while unwinding: siblings saw panicking() {} times; {} std Mutex locks; preemptions {}",
        seen_panicking.load(Ordering::Relaxed),
        lock.lock().unwrap(),
        sched.total_preemptions()
    );
    assert_eq!(seen_panicking.load(Ordering::Relaxed), 0, "a sibling inherited the panic count");
}

#[test]
fn child_panic_hook_that_yields() {
    if !is_child("child_panic_hook_that_yields") {
        return;
    }
    // A hook that switches: a sibling that panics on the same worker while
    // the first one sits in the hook must not be taken for a panic inside
    // a panic (std aborts "thread panicked while processing panic").
    std::panic::set_hook(Box::new(|_| {
        for _ in 0..20 {
            yield_now();
            preemptive_mlthreading_rust::sleep(Duration::from_micros(100));
        }
    }));
    let sched = common::preemptive(1, Duration::from_millis(1));
    let hs: Vec<_> = (0..4)
        .map(|i| ThreadBuilder::new().scheduler(sched.clone()).spawn(move || -> u32 { panic!("hooked {i}") }).unwrap())
        .collect();
    for (i, h) in hs.into_iter().enumerate() {
        match h.join() {
            Err(ThreadError::Panicked(p)) => assert_eq!(p.message(), format!("hooked {i}")),
            other => panic!("expected a panic, got {other:?}"),
        }
    }
    eprintln!("4 panics through a yielding hook: all returned by join");
}

#[test]
fn panics_through_a_hook_that_switches_are_each_returned_by_join() {
    let out = run_child("child_panic_hook_that_yields", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed ({:?}): {stderr}", out.status);
    assert!(stderr.contains("4 panics through a yielding hook"), "{stderr}");
}

/// Parks (until `go`) from a destructor that runs during a panic: the
/// thread keeps its OS thread while it is parked.
struct ParkOnDrop {
    go: Arc<AtomicBool>,
    parking: Arc<AtomicBool>,
}

impl Drop for ParkOnDrop {
    fn drop(&mut self) {
        self.parking.store(true, Ordering::SeqCst);
        while !self.go.load(Ordering::SeqCst) {
            preemptive_mlthreading_rust::park();
        }
    }
}

#[test]
fn child_held_parked_thread_woken_from_another_worker() {
    if !is_child("child_held_parked_thread_woken_from_another_worker") {
        return;
    }
    std::panic::set_hook(Box::new(|_| {}));
    let sched = common::preemptive(2, Duration::from_millis(5));
    let stop = Arc::new(AtomicBool::new(false));
    // Worker 0 (placement is round-robin): a low-priority spinner.
    let s = Arc::clone(&stop);
    let spinner = ThreadBuilder::new()
        .priority(0)
        .scheduler(sched.clone())
        .spawn(move || {
            while !s.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        })
        .unwrap();
    // Worker 1: a low-priority waker. A wake-up from it of a thread that
    // outranks both it and worker 0's spinner would move that thread to
    // worker 1, but a thread its host keeps can only resume on its own.
    let (htx, hrx) = std::sync::mpsc::channel::<preemptive_mlthreading_rust::Thread>();
    let (go, parking) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let waker_done = Arc::new(AtomicBool::new(false));
    let (g, p, d) = (Arc::clone(&go), Arc::clone(&parking), Arc::clone(&waker_done));
    let waker = ThreadBuilder::new()
        .priority(0)
        .scheduler(sched.clone())
        .spawn(move || {
            let t: preemptive_mlthreading_rust::Thread = loop {
                if let Ok(t) = hrx.try_recv() {
                    break t;
                }
                std::hint::spin_loop();
            };
            while !p.load(Ordering::SeqCst) {
                std::hint::spin_loop();
            }
            spin_for(Duration::from_millis(50));
            g.store(true, Ordering::SeqCst);
            t.unpark();
            d.store(true, Ordering::SeqCst);
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    // Worker 0 again: a high-priority thread that parks while it unwinds.
    let (g, p) = (Arc::clone(&go), Arc::clone(&parking));
    let panicker = ThreadBuilder::new()
        .priority(10)
        .scheduler(sched.clone())
        .spawn(move || {
            let _d = ParkOnDrop { go: g, parking: p };
            htx.send(preemptive_mlthreading_rust::current()).unwrap();
            panic!("parks while it unwinds");
        })
        .unwrap();
    let t = Instant::now();
    while !waker_done.load(Ordering::SeqCst) {
        assert!(t.elapsed() < Duration::from_secs(30), "the waker's worker lost its owner");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(panicker.join().is_err());
    stop.store(true, Ordering::Relaxed);
    waker.join().unwrap();
    spinner.join().unwrap();
    eprintln!("held parked thread woken from another worker: wake migrations {:?}", sched.worker_wake_migrations());
}

#[test]
fn a_held_parked_thread_is_never_moved_to_its_wakers_worker() {
    let out = run_child("child_held_parked_thread_woken_from_another_worker", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed ({:?}): {stderr}", out.status);
    assert!(stderr.contains("wake migrations [0, 0]"), "{stderr}");
}

struct ParkForever;

impl Drop for ParkForever {
    fn drop(&mut self) {
        loop {
            preemptive_mlthreading_rust::park();
        }
    }
}

#[test]
fn a_thread_parked_forever_while_unwinding_does_not_keep_its_scheduler_running() {
    // Nobody can wake it once its handle is gone; its OS thread sleeps for
    // good (documented), but the scheduler must still stop.
    std::panic::set_hook(Box::new(|_| {}));
    let sched = common::preemptive(1, Duration::from_millis(1));
    let h = sched
        .spawn(|| {
            let _d = ParkForever;
            panic!("parks forever while it unwinds");
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(h);
    sched.shutdown();
    let t = Instant::now();
    while sched.running_workers() != 0 {
        assert!(t.elapsed() < Duration::from_secs(30), "the scheduler never stopped");
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = std::panic::take_hook();
}
