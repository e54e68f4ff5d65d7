use super::latency::LatencyStats;
use super::memory;
use crate::runtime::clock;
use crate::runtime::contention;
use crate::runtime::monitor;
use crate::runtime::pool::RETIRED;
use crate::runtime::thread_id::ThreadId;
use crate::runtime::worker::Worker;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// A snapshot of the runtime: every running scheduler's workers, their
/// switches, preemptions, hand-offs and steals, how busy they are, and the
/// process's memory. A plain value: take two and subtract to measure a
/// stretch of work.
///
/// The totals cover every scheduler whose workers have started, those
/// dropped since included, so they only grow; [`workers`](Self::workers)
/// lists the schedulers still alive.
///
/// ```
/// use preemptive_mlthreading_rust::{yield_now, RoundRobinScheduler, SystemMetrics};
///
/// let sched = RoundRobinScheduler::new().with_workers(1);
/// sched.spawn(|| ()).unwrap().join().unwrap();
/// let before = SystemMetrics::current();
/// let hs: Vec<_> = (0..2).map(|_| sched.spawn(|| (0..1000).for_each(|_| { yield_now(); })).unwrap()).collect();
/// hs.into_iter().for_each(|h| h.join().unwrap());
/// let after = SystemMetrics::current();
/// assert!(after.total_context_switches - before.total_context_switches >= 2000);
/// assert!(after.memory_usage > 0.0 && after.memory_usage < 1.0);
/// ```
#[derive(Clone, Debug, Default)]
pub struct SystemMetrics {
    /// Context switches by all workers since they started.
    pub total_context_switches: u64,
    /// Mean time of a blocking switch (a park, sleep or exit), from the
    /// thread going out to the context coming in, over the switches
    /// sampled (about one in 128 switches); zero before any was sampled.
    pub average_context_switch_time: Duration,
    /// Resident memory as a fraction of the memory available to the
    /// process (its cgroup's `memory.max`, else the machine's), in [0, 1].
    pub memory_usage: f64,
    /// Resident memory, bytes.
    pub memory_bytes: u64,
    /// The memory available to the process, bytes.
    pub memory_limit_bytes: u64,
    /// Mean of the workers' [`busy_fraction`](WorkerMetrics::busy_fraction).
    pub cpu_utilization: f64,
    /// Green threads spawned and not finished.
    pub live_threads: usize,
    /// Green threads running or waiting in a run queue, as of each
    /// worker's last scheduling decision.
    pub runnable_threads: usize,
    /// Asynchronous preemptions taken.
    pub total_preemptions: u64,
    /// Preemptions deferred (a preempt-disable scope, no host free).
    pub deferred_preemptions: u64,
    /// Threads left on their OS thread, blocked in the kernel, while the
    /// worker went on with the others.
    pub hand_offs: u64,
    /// Threads taken from another worker's queue (work stealing).
    pub steals: u64,
    /// Threads moved to their waker's worker at a wake-up.
    pub wake_migrations: u64,
    /// Each worker of each running scheduler.
    pub workers: Vec<WorkerMetrics>,
    /// The switches behind `average_context_switch_time`: how many were
    /// timed, and their sum in ns.
    pub switch_samples: u64,
    /// See `switch_samples`.
    pub switch_samples_ns: u64,
    /// Sampled waits from runnable to running: one wake-up in 16 (an
    /// unpark, or a timer, counted from its deadline) on each waking OS
    /// thread, over every scheduler since the process started. Spawns are
    /// not sampled.
    pub scheduling_latency: LatencyStats,
    /// Acquisitions of the crate's `Mutex` and `RwLock` that had to park
    /// (spins that won are not counted), since the process started.
    pub lock_waits: u64,
    /// Their total time from first parking to holding the lock: over an
    /// interval, divided by the interval times the threads that use the
    /// locks, the guide's "lock contention".
    pub lock_wait_time: Duration,
    /// Address space held by green threads' stacks, running and cached,
    /// guard pages included (resident memory is far less: a stack's pages
    /// are committed as it grows).
    pub stack_bytes: u64,
}

/// One worker's figures in a [`SystemMetrics`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkerMetrics {
    /// Which scheduler, in the order their workers started, among those
    /// alive.
    pub scheduler: usize,
    /// The worker's index in its scheduler.
    pub index: usize,
    /// The CPU it is pinned to.
    pub cpu: Option<usize>,
    /// Whether its scheduler steals work.
    pub work_stealing: bool,
    /// Context switches.
    pub switches: u64,
    /// Asynchronous preemptions taken, and deferred.
    pub preemptions: u64,
    /// See [`SystemMetrics::deferred_preemptions`].
    pub deferred_preemptions: u64,
    /// See [`SystemMetrics::hand_offs`].
    pub hand_offs: u64,
    /// Threads it took from other workers' queues.
    pub steals: u64,
    /// See [`SystemMetrics::wake_migrations`].
    pub wake_migrations: u64,
    /// The fraction of the time since it started that it was not waiting
    /// for work, in [0, 1].
    pub busy_fraction: f64,
    /// Whether a green thread runs on it now.
    pub running: bool,
    /// Threads in its run queue as of its last scheduling decision.
    pub waiting: usize,
    /// The thread running on it, when known: the last preemption signal
    /// found it there and the worker has not switched since (a thread
    /// that runs past its time slice is signalled, so one that runs long
    /// is known).
    pub running_thread: Option<ThreadId>,
    /// The last signal found the running thread in a preempt-disable
    /// scope, and it has not switched since: it cannot be preempted.
    pub preemption_disabled: bool,
    /// The last thread handed off this worker while blocked in the kernel.
    pub last_handed_off: Option<ThreadId>,
    /// OS threads the worker has (its owner, those keeping preempted or
    /// blocked threads, and idle spares).
    pub os_threads: usize,
    /// Preemptions deferred because the worker has as many OS threads as
    /// it may (1024), every one keeping a preempted or blocked thread.
    /// (A preemption that waits while the monitor starts a spare is not
    /// counted.)
    pub preemptions_without_spare: u64,
}

impl SystemMetrics {
    /// The figures now.
    pub fn current() -> SystemMetrics {
        let now = clock::now_ns();
        let r = &RETIRED;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let mut m = SystemMetrics {
            total_context_switches: load(&r.switches),
            total_preemptions: load(&r.preemptions),
            deferred_preemptions: load(&r.deferred),
            hand_offs: load(&r.hand_offs),
            steals: load(&r.steals),
            wake_migrations: load(&r.wake_migrations),
            ..SystemMetrics::default()
        };
        let (mut switch_ns, mut samples) = (load(&r.switch_sum_ns), load(&r.switch_samples));
        let mut latency = r.latency.snapshot();
        for (scheduler, pool) in monitor::pools().iter().enumerate() {
            m.live_threads += pool.live_threads();
            let work_stealing = pool.is_work_stealing();
            for w in pool.workers() {
                let wm = worker_metrics(scheduler, w, work_stealing, now);
                let (sum, n) = w.switch_samples();
                w.latency().add_to(&mut latency);
                switch_ns += sum;
                samples += n;
                m.total_context_switches += wm.switches;
                m.total_preemptions += wm.preemptions;
                m.deferred_preemptions += wm.deferred_preemptions;
                m.hand_offs += wm.hand_offs;
                m.steals += wm.steals;
                m.wake_migrations += wm.wake_migrations;
                m.runnable_threads += wm.waiting + usize::from(wm.running);
                m.workers.push(wm);
            }
        }
        m.scheduling_latency = LatencyStats::from_snapshot(&latency);
        let (waits, wait_ns) = contention::totals();
        m.lock_waits = waits;
        m.lock_wait_time = Duration::from_nanos(wait_ns);
        m.stack_bytes = crate::stack::mapped_bytes() as u64;
        m.switch_samples = samples;
        m.switch_samples_ns = switch_ns;
        if let Some(mean) = switch_ns.checked_div(samples) {
            m.average_context_switch_time = Duration::from_nanos(mean);
        }
        if !m.workers.is_empty() {
            m.cpu_utilization = m.workers.iter().map(|w| w.busy_fraction).sum::<f64>() / m.workers.len() as f64;
        }
        m.memory_bytes = memory::resident_bytes();
        m.memory_limit_bytes = memory::limit_bytes();
        if m.memory_limit_bytes > 0 {
            m.memory_usage = (m.memory_bytes as f64 / m.memory_limit_bytes as f64).clamp(0.0, 1.0);
        }
        m
    }
}

fn worker_metrics(scheduler: usize, w: &Worker, work_stealing: bool, now: u64) -> WorkerMetrics {
    let (idle, started) = w.idle_and_start_ns();
    let up = now.saturating_sub(started);
    let busy_fraction = if started == 0 || up == 0 { 0.0 } else { (1.0 - idle as f64 / up as f64).clamp(0.0, 1.0) };
    let (running_id, preemption_disabled) = w.running_thread();
    let (no_host, os_threads) = w.spare_pressure();
    WorkerMetrics {
        scheduler,
        index: w.index,
        cpu: w.cpu(),
        work_stealing,
        switches: w.switches(),
        preemptions: w.preemptions(),
        deferred_preemptions: w.deferred_preemptions(),
        hand_offs: w.hand_offs(),
        steals: w.stolen(),
        wake_migrations: w.wake_migrations(),
        busy_fraction,
        running: w.is_running(),
        waiting: w.waiting(),
        running_thread: ThreadId::from_u64(running_id),
        preemption_disabled,
        last_handed_off: ThreadId::from_u64(w.last_handed_off()),
        os_threads,
        preemptions_without_spare: no_host,
    }
}

/// One figure of a worker, for the export.
type WorkerFigure = fn(&WorkerMetrics) -> f64;

impl SystemMetrics {
    /// The snapshot in the Prometheus text exposition format (version
    /// 0.0.4): totals as counters, the rest as gauges, per-worker figures
    /// labelled `scheduler` and `worker`. Names begin `pmt_`.
    ///
    /// ```
    /// let text = preemptive_mlthreading_rust::SystemMetrics::current().to_prometheus();
    /// assert!(text.contains("# TYPE pmt_context_switches_total counter"));
    /// assert!(text.lines().any(|l| l.starts_with("pmt_memory_usage_ratio ")));
    /// ```
    pub fn to_prometheus(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        };
        metric(
            "pmt_context_switches_total",
            "counter",
            "Context switches by all workers.",
            self.total_context_switches as f64,
        );
        metric(
            "pmt_context_switch_seconds",
            "gauge",
            "Mean time of a sampled blocking switch.",
            self.average_context_switch_time.as_secs_f64(),
        );
        metric("pmt_preemptions_total", "counter", "Asynchronous preemptions taken.", self.total_preemptions as f64);
        metric("pmt_deferred_preemptions_total", "counter", "Preemptions deferred.", self.deferred_preemptions as f64);
        metric(
            "pmt_hand_offs_total",
            "counter",
            "Threads left blocked in the kernel on their OS thread.",
            self.hand_offs as f64,
        );
        metric("pmt_steals_total", "counter", "Threads taken from another worker's queue.", self.steals as f64);
        metric(
            "pmt_wake_migrations_total",
            "counter",
            "Threads moved to their waker's worker.",
            self.wake_migrations as f64,
        );
        metric("pmt_live_threads", "gauge", "Green threads spawned and not finished.", self.live_threads as f64);
        metric("pmt_runnable_threads", "gauge", "Green threads running or queued.", self.runnable_threads as f64);
        metric("pmt_memory_usage_ratio", "gauge", "Resident memory over the memory available.", self.memory_usage);
        metric("pmt_memory_resident_bytes", "gauge", "Resident memory.", self.memory_bytes as f64);
        metric("pmt_memory_limit_bytes", "gauge", "Memory available to the process.", self.memory_limit_bytes as f64);
        metric("pmt_cpu_utilization_ratio", "gauge", "Mean busy fraction of the workers.", self.cpu_utilization);
        metric("pmt_stack_bytes", "gauge", "Address space held by green threads' stacks.", self.stack_bytes as f64);
        metric("pmt_lock_waits_total", "counter", "Lock acquisitions that had to park.", self.lock_waits as f64);
        metric(
            "pmt_lock_wait_seconds_total",
            "counter",
            "Time lock waiters spent parked.",
            self.lock_wait_time.as_secs_f64(),
        );
        let name = "pmt_scheduling_latency_seconds";
        let _ = writeln!(out, "# HELP {name} Sampled waits from runnable to running.\n# TYPE {name} histogram");
        // The same bounds in every scrape: powers of two from 64 ns to
        // 2^38 ns, each a bucket boundary of the histogram, so exact.
        for shift in 6..=38 {
            let bound = std::time::Duration::from_nanos(1 << shift);
            let below: u64 = self.scheduling_latency.buckets.iter().filter(|b| b.0 <= bound).map(|b| b.1).sum();
            let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {below}", bound.as_secs_f64());
        }
        let l = &self.scheduling_latency;
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", l.samples);
        let _ = writeln!(out, "{name}_sum {}", (l.mean * l.samples.min(u32::MAX as u64) as u32).as_secs_f64());
        let _ = writeln!(out, "{name}_count {}", l.samples);
        let per_worker: [(&str, &str, &str, WorkerFigure); 6] = [
            ("pmt_worker_switches_total", "counter", "Context switches by the worker.", |w| w.switches as f64),
            ("pmt_worker_preemptions_total", "counter", "Preemptions taken by the worker.", |w| w.preemptions as f64),
            ("pmt_worker_busy_ratio", "gauge", "Fraction of time the worker was not waiting for work.", |w| {
                w.busy_fraction
            }),
            ("pmt_worker_waiting_threads", "gauge", "Threads in the worker's run queue.", |w| w.waiting as f64),
            ("pmt_worker_os_threads", "gauge", "OS threads the worker has.", |w| w.os_threads as f64),
            (
                "pmt_worker_preemptions_without_spare_total",
                "counter",
                "Preemptions deferred for want of a free OS thread.",
                |w| w.preemptions_without_spare as f64,
            ),
        ];
        for (name, kind, help, value) in per_worker {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for w in &self.workers {
                let _ = writeln!(out, "{name}{{scheduler=\"{}\",worker=\"{}\"}} {}", w.scheduler, w.index, value(w));
            }
        }
        out
    }
}
