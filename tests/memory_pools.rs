//! perf::memory_pools. The pools are process-wide, so the scenarios run in
//! one test, in order; "allocate before init" runs in a child process.

mod common;

use common::{is_child, join_all, run_child, scaled};
use preemptive_mlthreading_rust::WorkStealingScheduler;
use preemptive_mlthreading_rust::perf::memory_pools::{
    MemoryPoolConfig, PoolError, allocate_from_medium_pool, allocate_from_small_pool, init_memory_pools,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

// The guide's "Memory Pool Optimization" block, as written, with the
// imports it leaves out, in a function for its `?`.
#[allow(unused_variables)]
#[rustfmt::skip]
fn guide_memory_pool_optimization() -> Result<(), BoxError> {
    use preemptive_mlthreading_rust::perf::memory_pools::{allocate_from_small_pool, allocate_from_medium_pool};
    use preemptive_mlthreading_rust::perf::memory_pools::{
        init_memory_pools, MemoryPoolConfig
    };

    // Initialize optimized memory pools
    let pool_config = MemoryPoolConfig {
        small_object_size: 64,        // 64-byte objects
        small_pool_capacity: 1000,    // 1000 objects per pool
        medium_object_size: 1024,     // 1KB objects  
        medium_pool_capacity: 100,    // 100 objects per pool
        enable_per_cpu_pools: true,   // Per-CPU pools for better locality
    };

    init_memory_pools(pool_config);

    // Use pools in performance-critical code
    let small_buffer = allocate_from_small_pool()?;
    let medium_buffer = allocate_from_medium_pool()?;
    assert_eq!((small_buffer.len(), medium_buffer.len()), (64, 1024));
    Ok(())
}

fn capacity_is_the_most_buffers_in_existence(per_cpu: bool) {
    init_memory_pools(MemoryPoolConfig {
        small_pool_capacity: 10,
        medium_pool_capacity: 0,
        enable_per_cpu_pools: per_cpu,
        ..MemoryPoolConfig::default()
    });
    let held: Vec<_> = (0..10).map(|_| allocate_from_small_pool().unwrap()).collect();
    let err = allocate_from_small_pool().unwrap_err();
    assert_eq!(err, PoolError::Exhausted { pool: "small", field: "small_pool_capacity", capacity: 10 });
    assert!(err.to_string().contains("raise small_pool_capacity"), "{err}");
    assert!(matches!(allocate_from_medium_pool(), Err(PoolError::Exhausted { field: "medium_pool_capacity", .. })));
    drop(held);
    // All ten came back: ten can be had again, and no more.
    let again: Vec<_> = (0..10).map(|_| allocate_from_small_pool().unwrap()).collect();
    assert!(allocate_from_small_pool().is_err());
    drop(again);
}

/// Green threads on two workers (and so on two OS threads, moving between
/// them) allocate, fill with their own pattern, check and free buffers;
/// some are freed by another thread than the one that allocated them.
fn concurrent_buffers_never_alias() {
    init_memory_pools(MemoryPoolConfig { small_pool_capacity: 64, ..MemoryPoolConfig::default() });
    let sched = WorkStealingScheduler::new().with_workers(2);
    let rounds = scaled(50_000);
    let (tx, rx) = preemptive_mlthreading_rust::sync::channel::bounded(16);
    let consumer = sched
        .spawn(move || {
            let mut n = 0u64;
            for (tag, buf) in rx.iter() {
                let buf: preemptive_mlthreading_rust::perf::memory_pools::PoolBuffer = buf;
                assert!(buf.iter().all(|&b| b == tag), "a buffer handed over was written by another thread");
                n += 1;
            }
            n
        })
        .unwrap();
    let producers: Vec<_> = (1..=4u8)
        .map(|tag| {
            let tx = tx.clone();
            sched
                .spawn(move || {
                    for i in 0..rounds {
                        let mut b = loop {
                            match allocate_from_small_pool() {
                                Ok(b) => break b,
                                // Others hold all 64: wait for one back.
                                Err(_) => preemptive_mlthreading_rust::yield_now(),
                            }
                        };
                        b.fill(tag);
                        preemptive_mlthreading_rust::yield_now();
                        assert!(b.iter().all(|&x| x == tag), "a buffer in use was written by another thread");
                        if i % 8 == 0 {
                            tx.send((tag, b)).unwrap();
                        }
                    }
                })
                .unwrap()
        })
        .collect();
    drop(tx);
    join_all(producers);
    let handed = consumer.join().unwrap();
    println!("4 x {rounds} buffers, {handed} freed by another thread");
    assert_eq!(handed, 4 * rounds.div_ceil(8));
}

fn reinitialising_replaces_the_pools() {
    init_memory_pools(MemoryPoolConfig {
        small_object_size: 16,
        small_pool_capacity: 2,
        ..MemoryPoolConfig::default()
    });
    let old = allocate_from_small_pool().unwrap();
    assert_eq!(old.len(), 16);
    init_memory_pools(MemoryPoolConfig { small_object_size: 0, small_pool_capacity: 1, ..MemoryPoolConfig::default() });
    let new = allocate_from_small_pool().unwrap();
    assert!(new.is_empty(), "zero-sized objects are buffers of length 0");
    assert!(allocate_from_small_pool().is_err(), "the new capacity counts from zero");
    drop(old); // freed to the allocator: not a buffer of the new pools
    assert!(allocate_from_small_pool().is_err());
    drop(new);
    assert!(allocate_from_small_pool().is_ok());
}

/// One OS thread frees 100 buffers: its cache keeps `CPU_CACHE` of them
/// and the rest go to the shared list, which is all another OS thread can
/// then have (the documented cost of per-CPU caches). Objects of one byte
/// (less than the two words a free buffer needs) survive the round trip.
fn a_cache_keeps_at_most_cpu_cache_buffers() {
    use preemptive_mlthreading_rust::perf::memory_pools::CPU_CACHE;
    init_memory_pools(MemoryPoolConfig {
        small_object_size: 1,
        small_pool_capacity: 100,
        ..MemoryPoolConfig::default()
    });
    let mut held: Vec<_> = (0..100).map(|_| allocate_from_small_pool().unwrap()).collect();
    for (i, b) in held.iter_mut().enumerate() {
        assert_eq!(b.len(), 1);
        b[0] = i as u8;
    }
    assert!(allocate_from_small_pool().is_err());
    drop(held);
    // The other thread's buffers come back here, held until the end.
    let elsewhere = std::thread::spawn(|| std::iter::from_fn(|| allocate_from_small_pool().ok()).collect::<Vec<_>>())
        .join()
        .unwrap();
    assert_eq!(elsewhere.len(), 100 - CPU_CACHE, "the freeing thread's cache keeps exactly CPU_CACHE");
    let here: Vec<_> = std::iter::from_fn(|| allocate_from_small_pool().ok()).collect();
    assert_eq!(here.len(), CPU_CACHE, "and hands them back to its own thread");
    assert!(here.iter().all(|b| b.len() == 1));
}

/// Buffers freed by green threads sit in their OS threads' caches; a worker
/// that goes idle gives them back, so they can be had from elsewhere (here a
/// plain OS thread). Before, they stayed in the sleeping worker's cache and
/// the pool reported exhaustion for good.
fn an_idle_workers_cached_buffers_can_be_had_elsewhere() {
    init_memory_pools(MemoryPoolConfig { small_pool_capacity: 8, ..MemoryPoolConfig::default() });
    let sched = WorkStealingScheduler::new().with_workers(1);
    sched
        .spawn(|| {
            let all: Vec<_> = (0..8).map(|_| allocate_from_small_pool().unwrap()).collect();
            assert!(allocate_from_small_pool().is_err());
            drop(all); // into this OS thread's cache
        })
        .unwrap()
        .join()
        .unwrap();
    // The worker has nothing left to run: it goes to sleep, giving its
    // cache back on the way.
    let mut tries = 0u32;
    let again = loop {
        let got: Vec<_> = (0..8).map_while(|_| allocate_from_small_pool().ok()).collect();
        if got.len() == 8 {
            break got;
        }
        drop(got); // into this plain thread's cache, where the next try finds them
        tries += 1;
        assert!(tries < 200, "the idle worker kept the 8 buffers in its cache");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    println!("8 buffers freed on an idle worker, had from an OS thread after {tries} retries");
    drop(again);
    drop(sched);
}

#[test]
fn memory_pools_in_order() {
    guide_memory_pool_optimization().unwrap();
    capacity_is_the_most_buffers_in_existence(true);
    capacity_is_the_most_buffers_in_existence(false);
    concurrent_buffers_never_alias();
    reinitialising_replaces_the_pools();
    a_cache_keeps_at_most_cpu_cache_buffers();
    an_idle_workers_cached_buffers_can_be_had_elsewhere();
}

#[test]
fn child_allocate_before_init() {
    if !is_child("child_allocate_before_init") {
        return;
    }
    let b = allocate_from_small_pool().unwrap();
    let m = allocate_from_medium_pool().unwrap();
    println!("CHILD: {} {}", b.len(), m.len());
}

#[test]
fn allocating_before_init_uses_the_defaults() {
    let out = run_child("child_allocate_before_init", &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("CHILD: 64 1024"), "{out:?}");
}
