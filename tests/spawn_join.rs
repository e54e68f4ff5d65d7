//! Spawning and joining: exact results at scale, nesting, and joins from
//! both green and OS threads.

mod common;

use preemptive_mlthreading_rust::{Thread, ThreadBuilder, current, spawn, yield_now};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[test]
fn hundred_thousand_spawn_join_exact() {
    let sched = common::workers(2);
    let counter = Arc::new(AtomicU64::new(0));
    const N: u64 = 100_000;
    // Spawned from an OS thread in batches of 10k, joined in order.
    let mut sum = 0;
    for batch in 0..(N / 10_000) {
        let handles: Vec<_> = (0..10_000u64)
            .map(|i| {
                let c = Arc::clone(&counter);
                let id = batch * 10_000 + i;
                sched
                    .spawn(move || {
                        c.fetch_add(1, Ordering::Relaxed);
                        id * 3
                    })
                    .unwrap()
            })
            .collect();
        sum += handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>();
    }
    assert_eq!(counter.load(Ordering::Relaxed), N);
    assert_eq!(sum, 3 * N * (N - 1) / 2);
    println!("spawned and joined {N} green threads on 2 workers");
}

#[test]
fn hundred_thousand_spawned_inside_one_green_thread_before_any_runs() {
    // On one worker nothing spawned runs until the spawner joins, so all
    // 10^5 threads are pending at once: stacks are mapped only when a
    // thread first runs, which keeps this far below vm.max_map_count.
    let sched = common::workers(1);
    let total = sched
        .spawn(|| {
            let handles: Vec<_> = (0..100_000u64).map(|i| spawn(move || i).unwrap()).collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(total, 100_000 * 99_999 / 2);
}

#[test]
fn nested_spawn_join_inside_green_threads() {
    fn tree(depth: u32) -> u64 {
        if depth == 0 {
            return 1;
        }
        let l = spawn(move || tree(depth - 1)).unwrap();
        let r = spawn(move || tree(depth - 1)).unwrap();
        yield_now();
        l.join().unwrap() + r.join().unwrap()
    }
    let sched = common::workers(2);
    let leaves = sched.spawn(|| tree(10)).unwrap().join().unwrap();
    assert_eq!(leaves, 1024);
}

#[test]
fn join_from_os_thread_and_from_green_thread() {
    let sched = common::workers(2);
    // OS thread joins a green thread.
    let h = sched.spawn(|| 7).unwrap();
    assert_eq!(h.join().unwrap(), 7);
    // Green thread joins a green thread on another worker of the pool.
    let inner = sched.spawn(|| {
        for _ in 0..100 {
            yield_now();
        }
        11
    });
    let inner = inner.unwrap();
    let outer = sched.spawn(move || inner.join().unwrap() * 2).unwrap();
    assert_eq!(outer.join().unwrap(), 22);
    // Many OS threads joining green threads concurrently.
    let os: Vec<_> = (0..8u64)
        .map(|i| {
            let s = sched.clone();
            std::thread::spawn(move || s.spawn(move || i + 1).unwrap().join().unwrap())
        })
        .collect();
    assert_eq!(os.into_iter().map(|t| t.join().unwrap()).sum::<u64>(), 36);
}

#[test]
fn thread_handles_identify_threads() {
    fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync_clone::<Thread>();
    let h = ThreadBuilder::new().name("named").spawn(|| (current().id(), current().name().map(str::to_owned))).unwrap();
    let id = h.thread().id();
    assert_eq!(h.thread().name(), Some("named"));
    assert!(h.thread().is_green());
    let (inner_id, inner_name) = h.join().unwrap();
    assert_eq!(inner_id, id);
    assert_eq!(inner_name.as_deref(), Some("named"));
    assert!(!current().is_green());
    assert_ne!(current().id(), id);
    assert_eq!(current().id(), current().id());
}

#[test]
fn is_finished_turns_true() {
    let sched = common::workers(1);
    let gate = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let g = Arc::clone(&gate);
    let h = sched
        .spawn(move || {
            while !g.load(Ordering::Acquire) {
                yield_now();
            }
        })
        .unwrap();
    assert!(!h.is_finished());
    gate.store(true, Ordering::Release);
    while !h.is_finished() {
        std::thread::yield_now();
    }
    h.join().unwrap();
}

#[test]
fn threads_spawned_inside_a_scheduler_stay_on_it() {
    let sched = common::workers(1);
    let worker_name = sched
        .spawn(|| {
            spawn(|| std::thread::current().name().map(|n| n.split('.').next().unwrap().to_owned()))
                .unwrap()
                .join()
                .unwrap()
        })
        .unwrap()
        .join()
        .unwrap();
    // The child ran on the one worker of `sched`, not on the default pool.
    assert_eq!(worker_name.as_deref(), Some("pmt-worker-0"));
    assert_eq!(sched.worker_switches().len(), 1);
    assert!(sched.worker_switches()[0] >= 2);
}

#[test]
fn green_locals_are_per_green_thread_and_dropped_at_exit() {
    use preemptive_mlthreading_rust::thread::GreenLocal;
    use std::cell::Cell;
    static DROPPED: AtomicU64 = AtomicU64::new(0);
    struct Counter(Cell<u64>);
    impl Drop for Counter {
        fn drop(&mut self) {
            DROPPED.fetch_add(1, Ordering::SeqCst);
        }
    }
    static MINE: GreenLocal<Counter> = GreenLocal::new(|| Counter(Cell::new(0)));
    // One worker, so every thread shares one OS thread (and its
    // thread_local!s) while each keeps its own GreenLocal.
    let sched = common::workers(1);
    let handles: Vec<_> = (0..100u64)
        .map(|i| {
            sched
                .spawn(move || {
                    for _ in 0..=i {
                        MINE.with(|c| c.0.set(c.0.get() + 1));
                        yield_now();
                    }
                    MINE.with(|c| c.0.get())
                })
                .unwrap()
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), i as u64 + 1);
    }
    assert_eq!(DROPPED.load(Ordering::SeqCst), 100);
}

/// Counts its drops in a shared counter.
struct Counted(Arc<AtomicU64>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Held only to be dropped, at an alignment no block serves.
#[repr(align(256))]
struct OverAligned(#[allow(dead_code)] Counted);

#[test]
fn closures_and_results_of_every_size_and_alignment_are_dropped_exactly_once() {
    // A thread is one allocation holding its closure and its result: small
    // ones come from the block pool, large or over-aligned ones from the
    // global allocator. Whatever the path, and whether the result is
    // joined or the handle detached, each value is dropped exactly once.
    let sched = common::workers(2);
    let closures = Arc::new(AtomicU64::new(0));
    let results = Arc::new(AtomicU64::new(0));
    const EACH: u64 = 200;
    let mut joined = Vec::new();
    for i in 0..EACH {
        let (c, r) = (Counted(Arc::clone(&closures)), Arc::clone(&results));
        let small = sched.spawn(move || {
            let _c = c;
            Counted(r)
        });
        let (c, r) = (Counted(Arc::clone(&closures)), Arc::clone(&results));
        let big = [i; 512];
        let large = sched.spawn(move || {
            let _c = c;
            assert_eq!(big.iter().sum::<u64>(), 512 * i);
            (Counted(r), [0u8; 2048])
        });
        let (c, r) = (OverAligned(Counted(Arc::clone(&closures))), Arc::clone(&results));
        let aligned = sched.spawn(move || {
            assert_eq!(&c as *const _ as usize % 256, 0);
            OverAligned(Counted(r))
        });
        let (small, large, aligned) = (small.unwrap(), large.unwrap(), aligned.unwrap());
        if i % 2 == 0 {
            joined.push((small, large, aligned));
        } else {
            // Detached: the results are dropped with the thread.
            drop((small, large, aligned));
        }
    }
    for (s, l, a) in joined {
        drop((s.join().unwrap(), l.join().unwrap().0, a.join().unwrap()));
    }
    let expected = 3 * EACH;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while (closures.load(Ordering::SeqCst) < expected || results.load(Ordering::SeqCst) < expected)
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // A value dropped twice would push a count past `expected`.
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(closures.load(Ordering::SeqCst), expected, "closures dropped");
    assert_eq!(results.load(Ordering::SeqCst), expected, "results dropped");
    println!("{expected} closures and {expected} results of three layouts, each dropped once");
}

#[test]
fn a_thread_joining_itself_gets_an_error_and_runs_on() {
    use preemptive_mlthreading_rust::sync::oneshot;
    use preemptive_mlthreading_rust::{JoinHandle, ThreadError};
    let (handle_tx, handle_rx) = oneshot::channel::<JoinHandle<u32>>();
    let (report_tx, report_rx) = oneshot::channel::<String>();
    static RETURNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let h = spawn(move || -> u32 {
        let me = handle_rx.recv().unwrap();
        let report = match me.join() {
            Err(e @ ThreadError::JoinSelf) => e.to_string(),
            other => format!("unexpected: {other:?}"),
        };
        report_tx.send(report).unwrap();
        yield_now(); // still a thread of the runtime
        RETURNED.store(true, Ordering::Release);
        7
    })
    .unwrap();
    let thread = h.thread().clone();
    handle_tx.send(h).unwrap();
    let mut report_rx = report_rx;
    let report = report_rx.recv_timeout(std::time::Duration::from_secs(10)).expect("the self-join never returned");
    assert!(report.contains("joins itself, which would wait forever"), "{report}");
    let start = std::time::Instant::now();
    while !RETURNED.load(Ordering::Acquire) && start.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(RETURNED.load(Ordering::Acquire), "{thread:?} never returned");
}
