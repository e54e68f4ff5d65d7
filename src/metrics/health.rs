use super::system::SystemMetrics;
use crate::error::ThreadError;
use crate::runtime::registry;
use crate::runtime::thread_id::ThreadId;
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
/// for 1 s without a switch (named when known); a sampled wake-up waiting
/// over 100 ms; any thread handed off its worker; any preemption put off
/// for want of a spare OS thread.
///
/// Not watched: how close a stack is to its guard page (a stack's depth
/// is not recorded as it runs; an overflow is reported by the guard page
/// itself, naming the thread).
///
/// ```
/// use preemptive_mlthreading_rust::metrics::{HealthAlert, HealthMonitor};
/// use preemptive_mlthreading_rust::Duration;
/// use std::sync::{Arc, Mutex};
///
/// let monitor = HealthMonitor::new();
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let s = Arc::clone(&seen);
/// // Before the thresholds: an alert raised with no callback yet goes to
/// // the log only.
/// monitor.on_alert(move |a| s.lock().unwrap().push(a.clone()));
/// monitor.set_update_interval(Duration::from_millis(10));
/// monitor.set_memory_usage_threshold(0.0); // any memory at all
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
        /// The thread, when known ([`WorkerMetrics::running_thread`](super::WorkerMetrics::running_thread)).
        thread: Option<ThreadId>,
        /// Its name, when it has one and thread dumps are enabled
        /// ([`enable_thread_dumps`](super::enable_thread_dumps)).
        name: Option<String>,
        /// It was found in a preempt-disable scope: it cannot be preempted
        /// until the scope ends.
        preemption_disabled: bool,
    },
    /// Threads blocked in the kernel were left on their OS thread while
    /// their worker went on (a `std` lock, blocking I/O).
    HandOffs {
        /// How many since the last look.
        count: u64,
        /// The last of them, and its name as for `LongRun`.
        last: Option<(ThreadId, Option<String>)>,
    },
    /// A sampled wake-up waited this long to run
    /// ([`SystemMetrics::scheduling_latency`]): threads starve behind
    /// others (of higher priority, or hogs on a non-preemptive scheduler).
    Starvation {
        /// The longest new wait, rounded up to its histogram bucket.
        waited: Duration,
        /// The threshold it crossed.
        threshold: Duration,
    },
    /// Preemptions were put off because a worker has as many OS threads as
    /// it may, every one keeping a preempted or blocked thread.
    SparesExhausted {
        /// How many since the last look, over all workers.
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
            HealthAlert::LongRun { scheduler, worker, running_for, thread, name, preemption_disabled } => {
                write!(f, "worker {worker} of scheduler {scheduler} has run ")?;
                match thread {
                    Some(id) => write!(f, "thread {}{}", id.as_u64(), named(name))?,
                    None => write!(f, "one thread")?,
                }
                write!(f, " for {running_for:?} without a switch")?;
                if *preemption_disabled {
                    write!(f, ", in a preempt-disable scope")?;
                }
                Ok(())
            }
            HealthAlert::HandOffs { count, last } => {
                write!(f, "{count} thread(s) blocked in the kernel were handed off their worker")?;
                if let Some((id, name)) = last {
                    write!(f, ", the last thread {}{}", id.as_u64(), named(name))?;
                }
                Ok(())
            }
            HealthAlert::Starvation { waited, threshold } => {
                write!(f, "a woken thread waited {waited:?} to run, above {threshold:?}")
            }
            HealthAlert::SparesExhausted { count } => {
                write!(f, "{count} preemption(s) put off: no OS thread free to take the worker over")
            }
        }
    }
}

fn named(name: &Option<String>) -> String {
    name.as_deref().map(|n| format!(" \"{n}\"")).unwrap_or_default()
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
    starvation: Duration,
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
                starvation: Duration::from_millis(100),
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

    /// Alert when a sampled wake-up waits longer than `threshold` to run.
    pub fn set_starvation_threshold(&self, threshold: Duration) {
        self.set(|s| s.starvation = threshold);
    }

    /// Calls `f` with every alert raised from now on, on the monitor's
    /// thread (keep it short). Register it before changing thresholds: a
    /// condition that starts before `f` is registered is raised (and
    /// logged) without it, and not raised again until it clears.
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
    let first = SystemMetrics::current();
    let mut hand_offs = first.hand_offs;
    let mut worker_hand_offs: std::collections::HashMap<(usize, usize), u64> =
        first.workers.iter().map(|w| ((w.scheduler, w.index), w.hand_offs)).collect();
    let mut no_spare: u64 = first.workers.iter().map(|w| w.preemptions_without_spare).sum();
    let mut latency = first.scheduling_latency;
    loop {
        let (switch, memory, cpu, long_run, starvation) = {
            let g = shared.settings.lock().unwrap_or_else(PoisonError::into_inner);
            let interval = g.interval;
            let (g, _) = shared.wake.wait_timeout(g, interval).unwrap_or_else(PoisonError::into_inner);
            if g.stop {
                return;
            }
            (g.switch, g.memory, g.cpu, g.long_run, g.starvation)
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
                let name = w.running_thread.and_then(|id| registry::name_of(id.as_u64().get()));
                alerts.push(HealthAlert::LongRun {
                    scheduler: w.scheduler,
                    worker: w.index,
                    running_for,
                    thread: w.running_thread,
                    name,
                    preemption_disabled: w.preemption_disabled,
                });
            }
        }
        if m.hand_offs > hand_offs {
            // The last thread handed off by a worker whose count moved.
            let last = m
                .workers
                .iter()
                .filter(|w| worker_hand_offs.get(&(w.scheduler, w.index)).is_none_or(|&n| w.hand_offs > n))
                .find_map(|w| w.last_handed_off)
                .map(|id| (id, registry::name_of(id.as_u64().get())));
            alerts.push(HealthAlert::HandOffs { count: m.hand_offs - hand_offs, last });
        }
        hand_offs = m.hand_offs;
        worker_hand_offs = m.workers.iter().map(|w| ((w.scheduler, w.index), w.hand_offs)).collect();
        // The highest histogram bucket that gained waits since the last look.
        let newest = m
            .scheduling_latency
            .buckets
            .iter()
            .rev()
            .find(|(ub, n)| latency.buckets.iter().find(|b| b.0 == *ub).is_none_or(|b| b.1 < *n))
            .map(|b| b.0);
        if let Some(waited) = newest.filter(|w| *w > starvation) {
            alerts.push(HealthAlert::Starvation { waited, threshold: starvation });
        }
        latency = m.scheduling_latency.clone();
        let spare: u64 = m.workers.iter().map(|w| w.preemptions_without_spare).sum();
        if spare > no_spare {
            alerts.push(HealthAlert::SparesExhausted { count: spare - no_spare });
        }
        no_spare = spare;
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
