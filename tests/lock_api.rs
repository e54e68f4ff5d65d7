//! `lock_api` on the crate's raw locks, and parking_lot's conveniences on
//! the crate's own `Mutex`/`RwLock`: mapped guards, downgrades, upgradable
//! reads, and a mutex reentrant per green thread.

mod common;

use common::{join_all, scaled};
use preemptive_mlthreading_rust::sync::RawMutex;
use preemptive_mlthreading_rust::{Duration, yield_now};
use std::sync::Arc;

type ApiMutex<T> = lock_api::Mutex<RawMutex, T>;

/// Plain read-modify-writes split by a yield: any break in mutual
/// exclusion loses increments. Every 128th unlock is a fair one (a direct
/// hand-off to the longest waiter).
#[test]
fn lock_api_mutex_on_our_raw_mutex_counts_exactly_under_preemption() {
    let sched = common::preemptive(2, Duration::from_micros(100));
    let per = scaled(10_000);
    let m = Arc::new(ApiMutex::new(0u64));
    let hs: Vec<_> = (0..16)
        .map(|_| {
            let m = Arc::clone(&m);
            sched
                .spawn(move || {
                    for i in 0..per {
                        let mut g = m.lock();
                        let v = std::hint::black_box(*g);
                        if v.is_multiple_of(64) {
                            yield_now();
                        }
                        *g = v + 1;
                        if i % 128 == 0 {
                            lock_api::MutexGuard::unlock_fair(g);
                        }
                    }
                })
                .unwrap()
        })
        .collect();
    join_all(hs);
    assert_eq!(*m.lock(), 16 * per);
    println!("16 x {per} increments through lock_api::Mutex<RawMutex, _>, fair unlocks included");
}

#[test]
fn timed_lock_api_mutex_times_out_when_held() {
    let short = Duration::from_millis(5);
    let am = ApiMutex::new(());
    let held = am.lock();
    assert!(am.try_lock_for(short).is_none(), "lock_api mutex timed lock");
    drop(held);
    assert!(am.try_lock_for(short).is_some());
    println!("lock_api timed lock gave up while held, succeeded once free");
}
