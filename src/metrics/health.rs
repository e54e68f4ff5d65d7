use super::system::SystemMetrics;
use crate::error::ThreadError;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

/// Watches [`SystemMetrics`] from an OS thread of its own and raises a
/// [`HealthAlert`] when a threshold is crossed: through `log::warn!` and
/// the callbacks given to [`on_alert`](Self::on_alert). An alert is raised
/// when its condition starts, and again only after it has cleared.
///
/// It watches from creation until dropped; [`keep`](Self::keep) leaves it
/// watching for the rest of the process. (The guide's "Real-Time
/// Monitoring" block configures one and drops it at the end of its
/// function, which stops it there: its own loop of `SystemMetrics` reads
/// goes on without it.)
///
/// Defaults: every second; a sampled switch slower than 1 µs; memory above
/// 90 %; workers busier than 95 % on average; a worker running one thread
/// for 1 s without a switch.
///
/// ```
/// use preemptive_mlthreading_rust::metrics::{HealthAlert, HealthMonitor};
/// use preemptive_mlthreading_rust::Duration;
/// use std::sync::{Arc, Mutex};
///
/// let monitor = HealthMonitor::new();
/// monitor.set_update_interval(Duration::from_millis(10));
/// monitor.set_memory_usage_threshold(0.0); // any memory at all
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let s = Arc::clone(&seen);
/// monitor.on_alert(move |a| s.lock().unwrap().push(a.clone()));
/// while seen.lock().unwrap().is_empty() {
///     std::thread::sleep(Duration::from_millis(5));
/// }
/// assert!(matches!(seen.lock().unwrap()[0], HealthAlert::HighMemoryUsage { .. }));
/// ```
pub struct HealthMonitor {
    shared: Arc<Shared>,
    watcher: Option<std::thread::JoinHandle<()>>,
}

/// What a [`HealthMonitor`] saw.
#[derive(Clone, Debug, PartialEq)]
pub enum HealthAlert {
    /// The mean sampled switch time is above the threshold.
    SlowContextSwitch {
        /// [`SystemMetrics::average_context_switch_time`].
        average: Duration,
        /// The threshold it crossed.
        threshold: Duration,
    },
    /// [`SystemMetrics::memory_usage`] is above the threshold.
    HighMemoryUsage {
        /// The fraction used.
        usage: f64,
        /// The threshold it crossed.
        threshold: f64,
    },
    /// [`SystemMetrics::cpu_utilization`] is above the threshold.
    HighCpuUsage {
        /// The workers' mean busy fraction.
        utilization: f64,
        /// The threshold it crossed.
        threshold: f64,
    },
    /// A worker has run one thread this long without a switch: a thread
    /// that never blocks with nothing else to run (normal), preemption off,
    /// or a thread stuck in a preempt-disable scope or in foreign code.
    LongRun {
        /// [`WorkerMetrics::scheduler`](super::WorkerMetrics::scheduler).
        scheduler: usize,
        /// The worker's index.
        worker: usize,
        /// How long, at least.
        running_for: Duration,
    },
    /// Threads blocked in the kernel were left on their OS thread while
    /// their worker went on (a `std` lock, blocking I/O).
    HandOffs {
        /// How many since the last look.
        count: u64,
    },
}

impl fmt::Display for HealthAlert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HealthAlert::SlowContextSwitch { average, threshold } => {
                write!(f, "context switches take {average:?} on average, above {threshold:?}")
            }
            HealthAlert::HighMemoryUsage { usage, threshold } => {
                write!(f, "memory usage {:.2} %, above {:.2} %", usage * 100.0, threshold * 100.0)
            }
            HealthAlert::HighCpuUsage { utilization, threshold } => {
                write!(f, "workers busy {:.1} % on average, above {:.1} %", utilization * 100.0, threshold * 100.0)
            }
            HealthAlert::LongRun { scheduler, worker, running_for } => write!(
                f,
                "worker {worker} of scheduler {scheduler} has run one thread for {running_for:?} without a switch"
            ),
            HealthAlert::HandOffs { count } => {
                write!(f, "{count} thread(s) blocked in the kernel were handed off their worker")
            }
        }
    }
}

/// Why monitoring could not be set up: the error type of the guide's
/// `start_performance_monitoring`.
#[derive(Debug)]
pub enum MonitorError {
    /// Spawning a thread failed.
    Spawn(ThreadError),
}

impl fmt::Display for MonitorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MonitorError::Spawn(_) => f.write_str("cannot spawn the monitoring thread"),
        }
    }
}

impl std::error::Error for MonitorError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MonitorError::Spawn(e) => Some(e),
        }
    }
}

impl From<ThreadError> for MonitorError {
    fn from(e: ThreadError) -> Self {
        MonitorError::Spawn(e)
    }
}

type Callback = Box<dyn Fn(&HealthAlert) + Send + Sync>;

struct Settings {
    interval: Duration,
    switch: Duration,
    memory: f64,
    cpu: f64,
    long_run: Duration,
    stop: bool,
}

struct Shared {
    settings: Mutex<Settings>,
    wake: Condvar,
    callbacks: Mutex<Vec<Callback>>,
    raised: AtomicU64,
}

impl Default for HealthMonitor {
    fn default() -> Self {
        Self::new()
    }
}

impl HealthMonitor {
    /// Starts watching with the defaults (see the type's docs).
    pub fn new() -> Self {
        let shared = Arc::new(Shared {
            settings: Mutex::new(Settings {
                interval: Duration::from_secs(1),
                switch: Duration::from_micros(1),
                memory: 0.9,
                cpu: 0.95,
                long_run: Duration::from_secs(1),
                stop: false,
            }),
            wake: Condvar::new(),
            callbacks: Mutex::new(Vec::new()),
            raised: AtomicU64::new(0),
        });
        let s = Arc::clone(&shared);
        let watcher = std::thread::Builder::new()
            .name("pmt-health".into())
            .spawn(move || watch(&s))
            .map_err(|e| log::error!("HealthMonitor: cannot start its thread, nothing is watched: {e}"))
            .ok();
        HealthMonitor { shared, watcher }
    }

    fn set(&self, f: impl FnOnce(&mut Settings)) {
        f(&mut self.shared.settings.lock().unwrap_or_else(PoisonError::into_inner));
        self.shared.wake.notify_all();
    }

    /// How often it looks (at least 1 ms).
    pub fn set_update_interval(&self, interval: Duration) {
        self.set(|s| s.interval = interval.max(Duration::from_millis(1)));
    }

    /// Alert when the mean sampled switch time exceeds `threshold`.
    pub fn set_context_switch_threshold(&self, threshold: Duration) {
        self.set(|s| s.switch = threshold);
    }

    /// Alert when memory usage exceeds `fraction` (0 to 1).
    pub fn set_memory_usage_threshold(&self, fraction: f64) {
        self.set(|s| s.memory = fraction);
    }

    /// Alert when the workers' mean busy fraction exceeds `fraction`.
    pub fn set_cpu_usage_threshold(&self, fraction: f64) {
        self.set(|s| s.cpu = fraction);
    }

    /// Alert when a worker runs one thread this long without a switch.
    pub fn set_long_run_threshold(&self, threshold: Duration) {
        self.set(|s| s.long_run = threshold);
    }

    /// Calls `f` with every alert raised from now on, on the monitor's
    /// thread (keep it short).
    pub fn on_alert(&self, f: impl Fn(&HealthAlert) + Send + Sync + 'static) {
        self.shared.callbacks.lock().unwrap_or_else(PoisonError::into_inner).push(Box::new(f));
    }

    /// Alerts raised so far.
    pub fn alerts_raised(&self) -> u64 {
        self.shared.raised.load(Ordering::Relaxed)
    }

    /// Leaves it watching for the rest of the process.
    pub fn keep(mut self) {
        self.watcher.take();
        std::mem::forget(self);
    }
}

impl Drop for HealthMonitor {
    fn drop(&mut self) {
        self.set(|s| s.stop = true);
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
    }
}

/// Per-worker state between two looks: switch count, and since when it
/// has not moved while the worker ran.
#[derive(Default)]
struct Seen {
    switches: u64,
    since: Option<std::time::Instant>,
    alerted: bool,
}

fn watch(shared: &Shared) {
    let mut active = [false; 3];
    let mut workers: std::collections::HashMap<(usize, usize), Seen> = Default::default();
    let mut hand_offs = SystemMetrics::current().hand_offs;
    loop {
        let (switch, memory, cpu, long_run) = {
            let g = shared.settings.lock().unwrap_or_else(PoisonError::into_inner);
            let interval = g.interval;
            let (g, _) = shared.wake.wait_timeout(g, interval).unwrap_or_else(PoisonError::into_inner);
            if g.stop {
                return;
            }
            (g.switch, g.memory, g.cpu, g.long_run)
        };
        let m = SystemMetrics::current();
        let mut alerts = Vec::new();
        let mut edge = |i: usize, on: bool, alert: HealthAlert| {
            if on && !active[i] {
                alerts.push(alert);
            }
            active[i] = on;
        };
        let avg = m.average_context_switch_time;
        edge(0, avg > switch, HealthAlert::SlowContextSwitch { average: avg, threshold: switch });
        edge(1, m.memory_usage > memory, HealthAlert::HighMemoryUsage { usage: m.memory_usage, threshold: memory });
        edge(2, m.cpu_utilization > cpu, HealthAlert::HighCpuUsage { utilization: m.cpu_utilization, threshold: cpu });
        let now = std::time::Instant::now();
        for w in &m.workers {
            let seen = workers.entry((w.scheduler, w.index)).or_default();
            if w.switches != seen.switches || !w.running {
                *seen = Seen { switches: w.switches, since: w.running.then_some(now), alerted: false };
                continue;
            }
            let since = *seen.since.get_or_insert(now);
            let running_for = now.duration_since(since);
            if running_for >= long_run && !seen.alerted {
                seen.alerted = true;
                alerts.push(HealthAlert::LongRun { scheduler: w.scheduler, worker: w.index, running_for });
            }
        }
        if m.hand_offs > hand_offs {
            alerts.push(HealthAlert::HandOffs { count: m.hand_offs - hand_offs });
        }
        hand_offs = m.hand_offs;
        if alerts.is_empty() {
            continue;
        }
        let callbacks = shared.callbacks.lock().unwrap_or_else(PoisonError::into_inner);
        for a in &alerts {
            log::warn!("health: {a}");
            shared.raised.fetch_add(1, Ordering::Relaxed);
            for f in callbacks.iter() {
                f(a);
            }
        }
    }
}
