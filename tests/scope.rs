//! thread::scope: threads that borrow from the caller's stack, joined
//! before the scope returns, with std's panic rules.

mod common;

use common::{preemptive, scaled};
use preemptive_mlthreading_rust::thread::{self, Scope};
use preemptive_mlthreading_rust::{Duration, Mutex, ThreadBuilder, ThreadError, current, sleep, yield_now};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Sums a borrowed local `Vec` in chunks, each on a thread of its own, and
/// writes to disjoint chunks of another one.
fn borrow_a_local_vec() {
    let data: Vec<u64> = (1..=10_000).collect();
    let mut squares = vec![0u64; data.len()];
    let total: u64 = thread::scope(|s| {
        let handles: Vec<_> = data.chunks(1000).map(|chunk| s.spawn(move || chunk.iter().sum::<u64>())).collect();
        for (out, inp) in squares.chunks_mut(1000).zip(data.chunks(1000)) {
            s.spawn(move || out.iter_mut().zip(inp).for_each(|(o, i)| *o = i * i));
        }
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(total, 10_000 * 10_001 / 2);
    assert!(squares.iter().zip(&data).all(|(sq, x)| *sq == x * x), "every chunk was written before the scope returned");
}

#[test]
fn a_scope_borrows_a_local_vec_from_an_os_thread() {
    borrow_a_local_vec();
}

#[test]
fn a_scope_borrows_a_local_vec_from_a_green_thread() {
    preemptive_mlthreading_rust::spawn(borrow_a_local_vec).unwrap().join().unwrap();
}

/// Threads nobody joins are joined by the scope: their writes are all
/// visible when it returns, even the one that sleeps first.
#[test]
fn unjoined_threads_finish_before_the_scope_returns() {
    let late = AtomicBool::new(false);
    let hits = AtomicUsize::new(0);
    let n = scaled(1000) as usize;
    thread::scope(|s| {
        s.spawn(|| {
            sleep(Duration::from_millis(50));
            late.store(true, Ordering::Relaxed);
        });
        for _ in 0..n {
            s.spawn(|| hits.fetch_add(1, Ordering::Relaxed));
        }
    });
    assert!(late.load(Ordering::Relaxed), "the sleeping thread was waited for");
    assert_eq!(hits.load(Ordering::Relaxed), n);
}

/// Spinning threads that never yield share one worker through preemption
/// and each increments a borrowed counter under a borrowed lock an exact
/// number of times; the scope's own thread is on that worker too.
#[test]
fn scoped_spinners_on_one_preemptive_worker_give_exact_counts() {
    let sched = preemptive(1, Duration::from_millis(1));
    let per = scaled(20_000);
    let total = sched
        .spawn(move || {
            let counter = Mutex::new(0u64);
            let spins = AtomicU64::new(0);
            thread::scope(|s| {
                for _ in 0..4 {
                    s.spawn(|| {
                        for _ in 0..per {
                            *counter.lock() += 1;
                            spins.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
            });
            println!("4 scoped spinners x {per} increments on one worker");
            (counter.into_inner(), spins.into_inner())
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(total, (4 * per, 4 * per));
}

/// An unjoined thread's panic makes the scope panic, after every other
/// thread has finished.
#[test]
fn an_unjoined_panic_makes_the_scope_panic_after_all_finish() {
    let finished = AtomicBool::new(false);
    let r = catch_unwind(AssertUnwindSafe(|| {
        thread::scope(|s| {
            s.spawn(|| panic!("scoped boom"));
            s.spawn(|| {
                sleep(Duration::from_millis(30));
                finished.store(true, Ordering::Relaxed);
            });
        })
    }));
    let payload = r.expect_err("the scope panics");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"a scoped thread panicked"));
    assert!(finished.load(Ordering::Relaxed), "the other thread finished first");
}

/// A panic taken by `join` is the joiner's to handle: the scope returns.
#[test]
fn a_joined_panic_is_not_reported_again() {
    let v = thread::scope(|s| {
        let h = s.spawn(|| -> u32 { panic!("handled") });
        match h.join() {
            Err(ThreadError::Panicked(p)) => {
                assert_eq!(p.message(), "handled");
                7
            }
            other => panic!("expected the panic, got {other:?}"),
        }
    });
    assert_eq!(v, 7);
}

/// A panic of the scope's closure is resumed, after its threads are done.
#[test]
fn the_closures_own_panic_is_resumed_after_the_wait() {
    let done = AtomicBool::new(false);
    let r = catch_unwind(AssertUnwindSafe(|| {
        thread::scope(|s| {
            s.spawn(|| {
                sleep(Duration::from_millis(30));
                done.store(true, Ordering::Relaxed);
            });
            panic!("closure boom");
        })
    }));
    assert_eq!(r.unwrap_err().downcast_ref::<&str>(), Some(&"closure boom"));
    assert!(done.load(Ordering::Relaxed));
}

/// `spawn_scoped` takes the builder's scheduler and name; a bad setting is
/// an error, and the scope still returns.
#[test]
fn spawn_scoped_uses_the_builder() {
    let sched = preemptive(1, Duration::from_millis(2));
    let local = String::from("borrowed");
    thread::scope(|s| {
        let h = ThreadBuilder::new()
            .name("scoped-one")
            .scheduler(sched.clone())
            .spawn_scoped(s, || (current().name().map(str::to_owned), current().is_green(), local.len()))
            .unwrap();
        assert_eq!(h.join().unwrap(), (Some("scoped-one".to_owned()), true, 8));
        let bad = ThreadBuilder::new().stack_size(0).spawn_scoped(s, || local.len());
        assert!(matches!(bad, Err(ThreadError::InvalidStackSize { .. })), "{bad:?}");
    });
}

/// Scopes nest, and a scoped thread may spawn into its enclosing scope.
#[test]
fn nested_scopes_and_spawning_from_a_scoped_thread() {
    let (inner_hits, outer_hits) = (AtomicUsize::new(0), AtomicUsize::new(0));
    thread::scope(|outer: &Scope<'_, '_>| {
        outer.spawn(|| {
            thread::scope(|inner| {
                for _ in 0..10 {
                    inner.spawn(|| inner_hits.fetch_add(1, Ordering::Relaxed));
                }
            });
            assert_eq!(inner_hits.load(Ordering::Relaxed), 10, "the inner scope joined its own");
        });
        outer.spawn(|| {
            outer.spawn(|| outer_hits.fetch_add(100, Ordering::Relaxed));
            yield_now();
        });
    });
    assert_eq!((inner_hits.into_inner(), outer_hits.into_inner()), (10, 100));
}

/// `is_finished` and the thread handle work as on a `JoinHandle`.
#[test]
fn a_scoped_handle_reports_its_thread() {
    thread::scope(|s| {
        let h = s.spawn(|| current().id());
        let id = h.thread().id();
        while !h.is_finished() {
            yield_now();
        }
        assert_eq!(h.join().unwrap(), id);
    });
}
