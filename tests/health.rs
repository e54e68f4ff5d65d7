//! HealthMonitor: every kind of alert raised once its threshold is
//! crossed, seen by a callback; nothing after the monitor is dropped; and
//! the guide's "Real-Time Monitoring" block.

mod common;

use common::{ping_pong, wait_until};
use preemptive_mlthreading_rust::metrics::{HealthAlert, HealthMonitor, enable_thread_dumps};
use preemptive_mlthreading_rust::{Duration, RoundRobinScheduler, ThreadBuilder, preempt, sleep};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A monitor looking every 5 ms, recording what it raises.
fn recording() -> (HealthMonitor, Arc<Mutex<Vec<HealthAlert>>>) {
    let monitor = HealthMonitor::new();
    monitor.set_update_interval(Duration::from_millis(5));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    monitor.on_alert(move |a| s.lock().unwrap().push(a.clone()));
    (monitor, seen)
}

#[test]
fn each_threshold_crossed_raises_its_alert_once() {
    let sched = RoundRobinScheduler::new().with_workers(1);
    // Blocking switches to sample, so that the average is above zero.
    ping_pong(&sched, 2_000);
    let (monitor, seen) = recording();
    monitor.set_context_switch_threshold(Duration::ZERO);
    monitor.set_memory_usage_threshold(0.0);
    monitor.set_cpu_usage_threshold(0.0);
    monitor.set_long_run_threshold(Duration::from_millis(20));
    // A hog alone on its worker: busy, and no switch for as long as it runs.
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    let hog = sched
        .spawn(move || {
            while !s.load(Ordering::Relaxed) {
                std::hint::spin_loop()
            }
        })
        .unwrap();
    let kinds = |v: &[HealthAlert]| {
        let mut k = [0u32; 4];
        for a in v {
            match a {
                HealthAlert::SlowContextSwitch { .. } => k[0] += 1,
                HealthAlert::HighMemoryUsage { .. } => k[1] += 1,
                HealthAlert::HighCpuUsage { .. } => k[2] += 1,
                HealthAlert::LongRun { .. } => k[3] += 1,
                _ => {}
            }
        }
        k
    };
    wait_until(
        Duration::from_secs(30),
        || kinds(&seen.lock().unwrap()).iter().all(|&n| n >= 1),
        || format!("{:?}", seen.lock().unwrap()),
    );
    // Edge-triggered: still crossed, not raised again.
    std::thread::sleep(Duration::from_millis(50));
    let v = seen.lock().unwrap().clone();
    for a in &v {
        println!("alert: {a}");
    }
    assert_eq!(kinds(&v)[..3], [1, 1, 1], "{v:?}");
    assert!(monitor.alerts_raised() >= 4);
    stop.store(true, Ordering::Relaxed);
    hog.join().unwrap();
}

#[test]
fn a_dropped_monitor_raises_nothing_more() {
    let (monitor, _) = recording();
    let count = Arc::new(AtomicU64::new(0));
    let c = Arc::clone(&count);
    monitor.on_alert(move |_| {
        c.fetch_add(1, Ordering::Relaxed);
    });
    monitor.set_memory_usage_threshold(0.0);
    wait_until(Duration::from_secs(30), || count.load(Ordering::Relaxed) >= 1, || "no alert".into());
    drop(monitor);
    let after = count.load(Ordering::Relaxed);
    // Memory crosses 0 for good, but a new crossing after a clear would
    // need a look, and there are none: the watcher thread has ended.
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(count.load(Ordering::Relaxed), after);
}

// The guide's "Real-Time Monitoring" block, as written, with the imports
// it leaves out. Its monitoring thread loops for the rest of the test
// process; the HealthMonitor stops when the function returns (dropped).
#[allow(unused_imports)]
mod guide {
    use log::warn;
    use preemptive_mlthreading_rust::{Duration, MonitorError, ThreadBuilder, sleep};

    use preemptive_mlthreading_rust::{HealthMonitor, SystemMetrics};

    // Monitor system performance
    #[rustfmt::skip]
    pub fn start_performance_monitoring() -> Result<(), MonitorError> {
        let monitor = HealthMonitor::new();
        monitor.set_update_interval(Duration::from_millis(100));
        
        // Set performance thresholds
        monitor.set_context_switch_threshold(Duration::from_nanos(1000));
        monitor.set_memory_usage_threshold(0.85);  // 85% memory usage
        monitor.set_cpu_usage_threshold(0.95);     // 95% CPU usage
        
        // Start monitoring thread
        ThreadBuilder::new()
            .name("perf_monitor")
            .priority(18)  // High priority for monitoring
            .spawn(move || {
                loop {
                    let metrics = SystemMetrics::current();
                    
                    // Check for performance issues
                    if metrics.average_context_switch_time > Duration::from_nanos(1000) {
                        warn!("High context switch latency: {:?}", 
                              metrics.average_context_switch_time);
                    }
                    
                    if metrics.memory_usage > 0.85 {
                        warn!("High memory usage: {:.1}%", metrics.memory_usage * 100.0);
                    }
                    
                    sleep(Duration::from_millis(100));
                }
            })?;
        
        Ok(())
    }
}

#[test]
fn guide_real_time_monitoring_runs() {
    guide::start_performance_monitoring().unwrap();
}

/// Waits for an alert `pick` accepts, and returns it.
fn alert_where(seen: &Mutex<Vec<HealthAlert>>, pick: impl Fn(&HealthAlert) -> bool) -> HealthAlert {
    wait_until(
        Duration::from_secs(30),
        || seen.lock().unwrap().iter().any(&pick),
        || format!("{:?}", seen.lock().unwrap()),
    );
    let a = seen.lock().unwrap().iter().find(|a| pick(a)).unwrap().clone();
    println!("alert: {a}");
    a
}

fn spinner(stop: &Arc<AtomicBool>, in_scope: bool) -> impl FnOnce() + Send + 'static {
    let stop = Arc::clone(stop);
    move || {
        let _g = in_scope.then(preempt::disable);
        while !stop.load(Ordering::Relaxed) {
            std::hint::spin_loop()
        }
    }
}

#[test]
fn a_long_run_names_the_thread() {
    enable_thread_dumps();
    let sched = common::preemptive(1, Duration::from_millis(1));
    let (monitor, seen) = recording();
    monitor.set_long_run_threshold(Duration::from_millis(20));
    let stop = Arc::new(AtomicBool::new(false));
    let h = ThreadBuilder::new().name("long-runner").scheduler(sched.clone()).spawn(spinner(&stop, false)).unwrap();
    let id = h.thread().id();
    let a = alert_where(&seen, |a| matches!(a, HealthAlert::LongRun { thread: Some(t), .. } if *t == id));
    let HealthAlert::LongRun { name, preemption_disabled, .. } = &a else { unreachable!() };
    assert_eq!(name.as_deref(), Some("long-runner"));
    assert!(!preemption_disabled);
    assert!(a.to_string().contains("\"long-runner\""), "{a}");
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap();
}

#[test]
fn a_thread_that_cannot_be_preempted_is_reported_so() {
    let sched = common::preemptive(1, Duration::from_millis(1));
    let (monitor, seen) = recording();
    monitor.set_long_run_threshold(Duration::from_millis(20));
    let stop = Arc::new(AtomicBool::new(false));
    // A sibling waits, so the monitor signals the worker every slice.
    let sibling = sched.spawn(spinner(&stop, false)).unwrap();
    let stuck = sched.spawn(spinner(&stop, true)).unwrap();
    let a = alert_where(&seen, |a| matches!(a, HealthAlert::LongRun { preemption_disabled: true, .. }));
    assert!(a.to_string().contains("preempt-disable scope"), "{a}");
    stop.store(true, Ordering::Relaxed);
    stuck.join().unwrap();
    sibling.join().unwrap();
}

#[test]
fn woken_threads_starved_behind_a_hog_raise_starvation() {
    // Sleepers of priority 5 whose 50 ms timers come due while a hog of
    // priority 15 runs (from 20 ms to 220 ms) wait until it ends; one
    // wake-up in 64 is sampled, so 128 sleepers give samples.
    let sched = common::preemptive(1, Duration::from_millis(1));
    let (monitor, seen) = recording();
    monitor.set_starvation_threshold(Duration::from_millis(20));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicU64::new(0));
    let sleepers: Vec<_> = (0..128)
        .map(|_| {
            let started = Arc::clone(&started);
            ThreadBuilder::new()
                .priority(5)
                .scheduler(sched.clone())
                .spawn(move || {
                    started.fetch_add(1, Ordering::Relaxed);
                    sleep(Duration::from_millis(50))
                })
                .unwrap()
        })
        .collect();
    wait_until(Duration::from_secs(30), || started.load(Ordering::Relaxed) == 128, || "sleepers not started".into());
    let hog = ThreadBuilder::new().priority(15).scheduler(sched.clone()).spawn(spinner(&stop, false)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    hog.join().unwrap();
    sleepers.into_iter().for_each(|h| h.join().unwrap());
    let a = alert_where(&seen, |a| matches!(a, HealthAlert::Starvation { .. }));
    let HealthAlert::Starvation { waited, threshold } = a else { unreachable!() };
    assert!(waited > threshold);
}

#[test]
fn a_hand_off_names_the_blocked_thread() {
    enable_thread_dumps();
    // Alone on its worker, a thread blocked in the kernel is not worth
    // preempting (nothing else waits) but is handed off, so that threads
    // woken later can run.
    let sched = common::preemptive(1, Duration::from_millis(1));
    let (_monitor, seen) = recording();
    let blocked = ThreadBuilder::new()
        .name("in-the-kernel")
        .scheduler(sched.clone())
        .spawn(|| std::thread::sleep(Duration::from_millis(300)))
        .unwrap();
    let id = blocked.thread().id();
    let a = alert_where(&seen, |a| matches!(a, HealthAlert::HandOffs { last: Some((t, _)), .. } if *t == id));
    assert!(a.to_string().contains("\"in-the-kernel\""), "{a}");
    blocked.join().unwrap();
}
