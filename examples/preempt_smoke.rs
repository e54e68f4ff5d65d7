use preemptive_mlthreading_rust::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;
fn main() {
    let s = RoundRobinScheduler::new().with_workers(1).with_time_slice(Duration::from_millis(1));
    let stop = Arc::new(AtomicBool::new(false));
    let counts: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let hogs: Vec<_> = (0..2)
        .map(|i| {
            let (st, c) = (stop.clone(), counts.clone());
            s.spawn(move || {
                while !st.load(Ordering::Relaxed) {
                    c[i].fetch_add(1, Ordering::Relaxed);
                }
            })
            .unwrap()
        })
        .collect();
    let sleeper = s
        .spawn(|| {
            let mut late = Vec::new();
            for _ in 0..500 {
                let t = Instant::now();
                sleep(Duration::from_millis(1));
                late.push(t.elapsed().as_micros() as u64 - 1000);
            }
            late.sort();
            (late[250], late[495], late[499])
        })
        .unwrap();
    let (p50, p99, max) = sleeper.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    for h in hogs {
        h.join().unwrap();
    }
    println!(
        "lateness us p50 {p50} p99 {p99} max {max}; hog counts {:?}; preemptions {:?} deferred {:?}",
        counts.iter().map(|c| c.load(Ordering::Relaxed)).collect::<Vec<_>>(),
        s.worker_preemptions(),
        s.worker_deferred_preemptions()
    );
}
