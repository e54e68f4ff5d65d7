//! A green thread blocked in the OS must not stall the threads queued
//! behind it on its worker, even with one worker: the thread keeps its OS
//! thread (detached) and the worker goes on on another one.

mod common;

use preemptive_mlthreading_rust::Duration;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[test]
fn std_mutex_shared_by_green_threads_on_one_worker_never_deadlocks() {
    let sched = common::preemptive(1, Duration::from_millis(1));
    let shared = Arc::new(Mutex::new(0u64));
    const THREADS: u64 = 6;
    const ROUNDS: u64 = 20;
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let shared = Arc::clone(&shared);
            sched
                .spawn(move || {
                    for _ in 0..ROUNDS {
                        let mut g = shared.lock().unwrap();
                        // Hold the lock past a time slice: the holder gets
                        // preempted, and a sibling on this worker blocks on
                        // the mutex in the kernel.
                        let t = Instant::now();
                        while t.elapsed() < Duration::from_millis(2) {
                            std::hint::spin_loop();
                        }
                        *g += 1;
                    }
                })
                .unwrap()
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(*shared.lock().unwrap(), THREADS * ROUNDS);
    println!(
        "std::sync::Mutex on one worker: {} increments, hand-offs {:?}, preemptions {:?}",
        THREADS * ROUNDS,
        sched.worker_hand_offs(),
        sched.worker_preemptions()
    );
}

/// How far a thread of priority `counting` that yields in a loop counts
/// while one of priority `sleeping` sleeps 300 ms in the OS (not the green
/// sleep: its worker's owner is stuck in the kernel), on one worker.
fn counted_beside_a_blocked_thread(counting: u8, sleeping: u8) -> u64 {
    let sched = common::preemptive(1, Duration::from_millis(1));
    let counter = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (c, s) = (Arc::clone(&counter), Arc::clone(&stop));
    let counter_thread = preemptive_mlthreading_rust::ThreadBuilder::new()
        .priority(counting)
        .scheduler(sched.clone())
        .spawn(move || {
            while !s.load(Ordering::Relaxed) {
                c.fetch_add(1, Ordering::Relaxed);
                preemptive_mlthreading_rust::yield_now();
            }
        })
        .unwrap();
    let c = Arc::clone(&counter);
    let blocker = preemptive_mlthreading_rust::ThreadBuilder::new()
        .priority(sleeping)
        .scheduler(sched.clone())
        .spawn(move || {
            let before = c.load(Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(300));
            c.load(Ordering::Relaxed) - before
        })
        .unwrap();
    let progressed = blocker.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    counter_thread.join().unwrap();
    println!(
        "while a priority-{sleeping} thread slept 300 ms in the OS, a priority-{counting} one counted {progressed}; \
         hand-offs {:?} switches {:?} deferred {:?} preemptions {:?}",
        sched.worker_hand_offs(),
        sched.worker_switches(),
        sched.worker_deferred_preemptions(),
        sched.worker_preemptions(),
    );
    progressed
}

#[test]
fn a_blocking_syscall_does_not_stall_the_threads_behind_it() {
    assert!(counted_beside_a_blocked_thread(10, 10) > 0, "the sibling was stalled behind the blocking call");
}

#[test]
fn a_thread_woken_while_a_sibling_blocks_in_the_os_still_runs() {
    let sched = common::preemptive(1, Duration::from_millis(1));
    let flag = Arc::new(AtomicBool::new(false));
    let ran = Arc::new(AtomicBool::new(false));
    let (f, r) = (Arc::clone(&flag), Arc::clone(&ran));
    let parked = sched
        .spawn(move || {
            while !f.load(Ordering::Acquire) {
                preemptive_mlthreading_rust::park();
            }
            r.store(true, Ordering::Release);
        })
        .unwrap();
    let r = Arc::clone(&ran);
    let blocker = sched
        .spawn(move || {
            // Blocks the only worker in the OS for up to 10 s, or until the
            // woken thread has run elsewhere.
            let t = Instant::now();
            while !r.load(Ordering::Acquire) && t.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(50));
            }
            r.load(Ordering::Acquire)
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    flag.store(true, Ordering::Release);
    parked.thread().unpark();
    assert!(blocker.join().unwrap(), "the woken thread waited for its blocked worker");
    parked.join().unwrap();
    println!("woken thread ran while its worker was blocked; hand-offs {:?}", sched.worker_hand_offs());
}

/// Threads preempted while they toggle preemption guards, ask for their own
/// handle and count, and block in the kernel themselves now and then (so
/// they are detached and reattach): the worker changes hosts again and
/// again under them. A thread-local address computed on one OS thread and
/// used on another would corrupt a preempt depth (an underflow panic, or a
/// worker that never preempts again) or return another thread's handle;
/// and a thread blocked in the OS keeps its own OS thread throughout.
#[test]
fn threads_moved_between_hosts_keep_their_own_state() {
    let sched = common::preemptive(1, Duration::from_micros(200));
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    const TOGGLERS: usize = 4;
    let togglers: Vec<_> = (0..TOGGLERS)
        .map(|i| {
            let (stop, total) = (Arc::clone(&stop), Arc::clone(&total));
            preemptive_mlthreading_rust::ThreadBuilder::new()
                .name(format!("toggler-{i}"))
                .scheduler(sched.clone())
                .spawn(move || {
                    let me = preemptive_mlthreading_rust::current();
                    let mut n = 0u64;
                    let mut last_block = Instant::now();
                    while !stop.load(Ordering::Relaxed) {
                        if last_block.elapsed() > Duration::from_millis(20) {
                            // Block in the kernel, so that this thread is
                            // detached and the worker changes hosts.
                            // SAFETY: gettid has no preconditions.
                            let tid = unsafe { libc::gettid() };
                            std::thread::sleep(Duration::from_millis(2));
                            // SAFETY: as above.
                            assert_eq!(unsafe { libc::gettid() }, tid, "a blocked thread changed OS threads");
                            last_block = Instant::now();
                        }
                        let g = preemptive_mlthreading_rust::preempt::disable();
                        std::hint::black_box(&g);
                        drop(g);
                        assert!(!preemptive_mlthreading_rust::preempt::is_disabled());
                        let now = preemptive_mlthreading_rust::current();
                        assert_eq!(now.id(), me.id(), "current() named another thread");
                        n += 1;
                    }
                    total.fetch_add(n, Ordering::Relaxed);
                    n
                })
                .unwrap()
        })
        .collect();
    let s = Arc::clone(&stop);
    let blocker = sched
        .spawn(move || {
            let mut blocks = 0u32;
            while !s.load(Ordering::Relaxed) {
                // Blocks in the kernel: the monitor detaches this thread
                // and the worker runs the (preempted) togglers meanwhile.
                std::thread::sleep(Duration::from_millis(3));
                blocks += 1;
                preemptive_mlthreading_rust::yield_now();
            }
            blocks
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    let blocks = blocker.join().unwrap();
    for t in togglers {
        assert!(t.join().unwrap() > 0, "a toggler never ran");
    }
    println!(
        "{blocks} blocking sleeps, {} guard toggles, hand-offs {:?}, preemptions {:?}",
        total.load(Ordering::Relaxed),
        sched.worker_hand_offs(),
        sched.worker_preemptions()
    );
}

#[test]
fn a_high_priority_thread_blocked_in_the_os_lets_lower_ones_run() {
    // The preemption signal interrupts the blocked thread's syscall and
    // finds nothing of its priority to run: that renews its slice, but is
    // no switch, so the worker still looks stuck and the thread is
    // detached; the low-priority sleeper's timer fires on the worker and
    // it writes what the blocked thread waits for.
    let sched = common::preemptive(1, Duration::from_millis(1));
    let mut fds = [0i32; 2];
    // SAFETY: pipe writes two descriptors into the array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (rfd, wfd) = (fds[0], fds[1]);
    let started = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&started);
    let low = preemptive_mlthreading_rust::ThreadBuilder::new()
        .priority(0)
        .scheduler(sched.clone())
        .spawn(move || {
            s.store(true, Ordering::SeqCst);
            // A green sleep: its wake-up is a timer on this worker.
            preemptive_mlthreading_rust::sleep(Duration::from_millis(20));
            // SAFETY: writes one byte from a buffer we own to our pipe.
            unsafe { libc::write(wfd, b"x".as_ptr().cast(), 1) }
        })
        .unwrap();
    while !started.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let high = preemptive_mlthreading_rust::ThreadBuilder::new()
        .priority(10)
        .scheduler(sched.clone())
        .spawn(move || {
            let mut b = [0u8; 1];
            // SAFETY: reads one byte into a buffer we own from our pipe.
            let n = unsafe { libc::read(rfd, b.as_mut_ptr().cast(), 1) };
            tx.send(n).unwrap();
        })
        .unwrap();
    let got = rx.recv_timeout(Duration::from_secs(30));
    println!(
        "blocked high-priority reader: {got:?}; hand-offs {:?} preemptions {:?}",
        sched.worker_hand_offs(),
        sched.worker_preemptions()
    );
    assert_eq!(got, Ok(1), "the low-priority writer never ran while the reader was blocked");
    assert_eq!(low.join().unwrap(), 1);
    high.join().unwrap();
    // SAFETY: closing the descriptors we opened.
    unsafe {
        libc::close(rfd);
        libc::close(wfd);
    }
}

#[test]
fn a_lower_priority_thread_runs_while_a_higher_one_sleeps_in_the_os() {
    assert!(counted_beside_a_blocked_thread(0, 10) > 0, "the lower-priority thread was stalled behind the blocked one");
}

#[test]
fn an_owner_blocked_inside_a_critical_section_gets_its_lock_back() {
    // A thread preempted while it holds a std Mutex keeps its OS thread,
    // held, until its worker comes back to it. If a sibling on that worker
    // then blocks on the Mutex inside a preempt-disable scope (as the
    // runtime's own code may block on an allocator lock the held thread
    // holds), the worker cannot detach it and cannot go on: the monitor
    // releases the held thread to run without the worker until it unlocks.
    let sched = common::preemptive(1, Duration::from_millis(1));
    let lock = Arc::new(Mutex::new(0u64));
    let locked = Arc::new(AtomicBool::new(false));
    let (l, f) = (Arc::clone(&lock), Arc::clone(&locked));
    let holder = sched
        .spawn(move || {
            let mut g = l.lock().unwrap();
            f.store(true, Ordering::SeqCst);
            // Longer than a slice: preempted (held) with the lock.
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(20) {
                std::hint::spin_loop();
            }
            *g += 1;
        })
        .unwrap();
    while !locked.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let l = Arc::clone(&lock);
    let blocker = sched
        .spawn(move || {
            let _np = preemptive_mlthreading_rust::preempt::disable();
            *l.lock().unwrap() += 1;
        })
        .unwrap();
    let t = Instant::now();
    common::wait_until(
        Duration::from_secs(30),
        || holder.is_finished() && blocker.is_finished(),
        || {
            format!(
                "the worker stayed stuck behind the held lock holder: preemptions {:?}, deferred {:?}, hand-offs {:?}",
                sched.worker_preemptions(),
                sched.worker_deferred_preemptions(),
                sched.worker_hand_offs()
            )
        },
    );
    holder.join().unwrap();
    blocker.join().unwrap();
    assert_eq!(*lock.lock().unwrap(), 2);
    println!("a critical section blocked on a held thread's lock: done in {:?}", t.elapsed());
}

#[test]
fn a_released_thread_blocked_in_the_os_does_not_take_its_worker_back() {
    // A released thread (see above) runs without its worker while its entry
    // stays queued. If it then blocks in the kernel, on a lock that a thread
    // queued on the same worker holds, the worker must pass its entry over
    // when it comes to it: handing the worker to a host that sleeps in the
    // kernel would leave the lock holder queued on a worker nobody runs.
    let sched = common::preemptive(1, Duration::from_millis(1));
    let lock = Arc::new(Mutex::new(0u64));
    let (locked, go, let_go) =
        (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let build =
        |priority: u8| preemptive_mlthreading_rust::ThreadBuilder::new().priority(priority).scheduler(sched.clone());
    // Low priority: holds the lock across cooperative switches, so it waits
    // queued (not held) while the others run.
    let (l, f, lg) = (Arc::clone(&lock), Arc::clone(&locked), Arc::clone(&let_go));
    let holder = build(0)
        .spawn(move || {
            let mut g = l.lock().unwrap();
            f.store(true, Ordering::SeqCst);
            while !lg.load(Ordering::SeqCst) {
                preemptive_mlthreading_rust::yield_now();
            }
            *g += 1;
        })
        .unwrap();
    while !locked.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
    // Spins until preempted (held, as a sibling of its priority waits),
    // and blocks on the lock once released.
    let (l, g) = (Arc::clone(&lock), Arc::clone(&go));
    let waiter = build(10)
        .spawn(move || {
            while !g.load(Ordering::SeqCst) {
                std::hint::spin_loop();
            }
            *l.lock().unwrap() += 1;
            preemptive_mlthreading_rust::yield_now();
        })
        .unwrap();
    // Blocks in the kernel inside a preempt-disable scope, so that the
    // monitor releases the held waiter, then lets the holder go and exits:
    // the worker comes to the waiter's entry first.
    let (g, lg) = (Arc::clone(&go), Arc::clone(&let_go));
    let stuck = build(10)
        .spawn(move || {
            g.store(true, Ordering::SeqCst);
            {
                let _np = preemptive_mlthreading_rust::preempt::disable();
                std::thread::sleep(Duration::from_millis(100));
            }
            lg.store(true, Ordering::SeqCst);
        })
        .unwrap();
    let t = Instant::now();
    common::wait_until(
        Duration::from_secs(30),
        || holder.is_finished() && waiter.is_finished() && stuck.is_finished(),
        || {
            format!(
                "the worker went to a released thread blocked on a lock its queued holder keeps: preemptions {:?}, \
                 hand-offs {:?}",
                sched.worker_preemptions(),
                sched.worker_hand_offs()
            )
        },
    );
    for h in [holder, waiter, stuck] {
        h.join().unwrap();
    }
    assert_eq!(*lock.lock().unwrap(), 2);
    println!(
        "a released thread blocked on a queued thread's lock: done in {:?}; preemptions {:?}, hand-offs {:?}, deferred {:?}",
        t.elapsed(),
        sched.worker_preemptions(),
        sched.worker_hand_offs(),
        sched.worker_deferred_preemptions()
    );
}
