use preemptive_mlthreading_rust::*;
use std::time::Instant;
fn main() {
    let s = RoundRobinScheduler::new().with_workers(1);
    let h = ThreadBuilder::new()
        .scheduler(s.clone())
        .spawn(|| {
            let a = spawn(|| {
                for _ in 0..1_000_000 {
                    yield_now();
                }
            })
            .unwrap();
            let b = spawn(|| {
                for _ in 0..1_000_000 {
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
    println!("2M yields: {:?} = {:.1} ns/yield", e, e.as_nanos() as f64 / 2e6);
    let h = ThreadBuilder::new()
        .scheduler(s.clone())
        .spawn(|| {
            let t = Instant::now();
            let hs: Vec<_> = (0..100_000u64).map(|i| spawn(move || i * 2).unwrap()).collect();
            let sum: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
            (t.elapsed(), sum)
        })
        .unwrap();
    let (e, sum) = h.join().unwrap();
    println!("1e5 spawn+join: {:?} = {:.1} ns each, sum {sum}", e, e.as_nanos() as f64 / 1e5);
    let t = Instant::now();
    let h = ThreadBuilder::new()
        .spawn(|| {
            sleep(Duration::from_millis(20));
            5
        })
        .unwrap();
    println!("sleep {} {:?}", h.join().unwrap(), t.elapsed());
    let h = spawn(|| panic!("boom")).unwrap();
    println!("{:?}", h.join().err());
}
