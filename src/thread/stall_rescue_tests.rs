//! An owner blocked between threads, on a lock that one of its preempted
//! threads holds, end to end (`Worker::watch_between_threads`): without
//! the monitor's release, the worker waits for good.

use crate::runtime::worker::stall_hook;
use crate::sched::RoundRobinScheduler;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn an_owner_waiting_for_a_preempted_threads_lock_between_threads_goes_on() {
    static HELD: AtomicBool = AtomicBool::new(false);
    let sched = RoundRobinScheduler::new().with_workers(1).with_time_slice(Duration::from_millis(1));
    let holder = sched
        .spawn(|| {
            let guard = stall_hook::LOCK.lock().unwrap_or_else(PoisonError::into_inner);
            HELD.store(true, Ordering::SeqCst);
            // Preempted here, held. It sees the owner waiting for the lock
            // only if the monitor releases it to run beside the worker.
            while !stall_hook::ENTERED.load(Ordering::SeqCst) {
                std::hint::spin_loop();
            }
            drop(guard);
        })
        .unwrap();
    let sleeper = sched
        .spawn(|| {
            while !HELD.load(Ordering::SeqCst) {
                std::hint::spin_loop();
            }
            stall_hook::arm(super::current().id().as_u64().get());
            super::sleep(Duration::from_millis(1));
        })
        .unwrap();
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        holder.join().unwrap();
        sleeper.join().unwrap();
        done.send(()).unwrap();
    });
    // A liveness bound, not a timing: the rescue takes milliseconds.
    finished
        .recv_timeout(Duration::from_secs(120))
        .expect("the owner still waits for the lock: the held thread was never released");
    println!("hand-offs {:?}", sched.worker_hand_offs());
}
