use preemptive_mlthreading_rust::*;
use std::time::Instant;
fn main() {
    let n: u64 = std::env::args().nth(1).map_or(5_000_000, |s| s.parse().unwrap());
    let s = RoundRobinScheduler::new().with_workers(1);
    let h = ThreadBuilder::new()
        .scheduler(s.clone())
        .spawn(move || {
            let fp = std::env::var("FP").is_ok();
            let a = ThreadBuilder::new()
                .enable_fpu(fp)
                .enable_vector(fp)
                .spawn(move || {
                    for _ in 0..n {
                        yield_now();
                    }
                })
                .unwrap();
            let b = ThreadBuilder::new()
                .enable_fpu(fp)
                .enable_vector(fp)
                .spawn(move || {
                    for _ in 0..n {
                        yield_now();
                    }
                })
                .unwrap();
            let t = Instant::now();
            a.join().unwrap();
            b.join().unwrap();
            t.elapsed()
        })
        .unwrap();
    let e = h.join().unwrap();
    println!("{} yields: {:?} = {:.1} ns/yield", 2 * n, e, e.as_nanos() as f64 / (2 * n) as f64);
}
