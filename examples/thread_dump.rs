//! A thread dump and a thread's profile: a few named green threads (one
//! blocked on a channel, one sleeping, two spinning on one preemptive
//! worker, one profiled), the dump of them, and the profiled thread's
//! `ThreadMetrics`.
//!
//! `cargo run --release --example thread_dump`; add `--signal` to print
//! the dump from `kill -QUIT` instead (the example waits 10 s for it).

use preemptive_mlthreading_rust::metrics::{ThreadDump, dump_threads_on_signal, enable_thread_dumps};
use preemptive_mlthreading_rust::sync::channel;
use preemptive_mlthreading_rust::{
    Duration, RoundRobinScheduler, SystemMetrics, ThreadBuilder, ThreadMetrics, ThreadProfiler, sleep, yield_now,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn main() {
    let on_signal = std::env::args().any(|a| a == "--signal");
    if on_signal {
        dump_threads_on_signal(libc::SIGQUIT).expect("install the SIGQUIT dump");
    } else {
        enable_thread_dumps();
    }
    ThreadProfiler::new().enable_context_switch_tracking();
    let sched = RoundRobinScheduler::new().with_workers(1).with_time_slice(Duration::from_millis(1));
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = channel::bounded::<u64>(1);

    let receiver = ThreadBuilder::new()
        .name("receiver")
        .priority(15)
        .enable_profiling(true)
        .scheduler(sched.clone())
        .spawn(move || rx.iter().sum::<u64>())
        .unwrap();
    let ticker = {
        let stop = stop.clone();
        ThreadBuilder::new()
            .name("ticker")
            .scheduler(sched.clone())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    sleep(Duration::from_millis(5));
                }
            })
            .unwrap()
    };
    let spinners: Vec<_> = (0..2)
        .map(|i| {
            let stop = stop.clone();
            ThreadBuilder::new()
                .name(format!("spinner-{i}"))
                .scheduler(sched.clone())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
                .unwrap()
        })
        .collect();
    for i in 0..100 {
        tx.send(i).unwrap();
        yield_now();
    }
    std::thread::sleep(std::time::Duration::from_millis(50));

    if on_signal {
        println!("pid {}: `kill -QUIT {}` prints the dump; waiting 10 s", std::process::id(), std::process::id());
        std::thread::sleep(std::time::Duration::from_secs(10));
    } else {
        print!("{}", ThreadDump::capture());
    }

    let id = receiver.thread().id();
    drop(tx);
    assert_eq!(receiver.join().unwrap(), 4950);
    stop.store(true, Ordering::Relaxed);
    ticker.join().unwrap();
    spinners.into_iter().for_each(|h| h.join().unwrap());

    let m = ThreadMetrics::for_thread(id).unwrap();
    println!(
        "\nreceiver: {} switches ({} parks, {} yields, {} preemptions), ran {:?} of {:?} ({:.1} %)",
        m.context_switches,
        m.parks,
        m.yields,
        m.preemptions,
        m.run_time,
        m.lifetime,
        m.cpu_utilization * 100.0
    );
    let l = &m.scheduling_latency;
    println!("  waits to run: {} — p50 {:?}, p99 {:?}, max {:?}", l.samples, l.p50, l.p99, l.max);
    println!(
        "  cache miss rate {:.2} %, branch mispredict rate {:.2} %",
        m.cache_miss_rate * 100.0,
        m.branch_mispredict_rate * 100.0
    );
    for s in m.recent_switches.iter().rev().take(3).rev() {
        println!("  at {:?}: {:?} on worker {:?} after {:?}", s.at, s.reason, s.worker, s.ran);
    }
    // Some unprofiled wake-ups for the system-wide sample: a ping-pong.
    let (to_b, from_a) = channel::bounded::<u64>(1);
    let (to_a, from_b) = channel::bounded::<u64>(1);
    let echo = sched.spawn(move || from_a.iter().for_each(|v| to_a.send(v).unwrap())).unwrap();
    sched
        .spawn(move || {
            for i in 0..20_000 {
                to_b.send(i).unwrap();
                from_b.recv().unwrap();
            }
        })
        .unwrap()
        .join()
        .unwrap();
    echo.join().unwrap();
    let s = SystemMetrics::current().scheduling_latency;
    println!("system: {} sampled waits — p50 {:?}, p99 {:?}, max {:?}", s.samples, s.p50, s.p99, s.max);
}
