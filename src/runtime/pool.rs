//! A pool of workers: what a scheduler handle points at.
//!
//! Workers start on the first spawn, and stop once the pool can get no more
//! work: every handle is gone (or `shutdown` was called) and every thread
//! has finished.

use super::cpu;
use super::steal::{self, StealConfig};
use super::task::{TaskMain, TaskRef, TaskSpec};
use super::worker::{self, Worker};
use crate::cpu_set::CpuSet;
use crate::error::ThreadError;
use crate::stack::overflow;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Settings fixed when the workers start.
#[derive(Clone, Debug)]
pub(crate) struct PoolConfig {
    pub(crate) workers: usize,
    pub(crate) name: String,
    /// Work stealing (a `WorkStealingScheduler`), or none (round-robin).
    pub(crate) steal: Option<StealConfig>,
}

pub(crate) struct Pool {
    config: Mutex<PoolConfig>,
    time_slice_ns: AtomicU64,
    workers: OnceLock<Box<[Worker]>>,
    start: Mutex<()>,
    /// Threads spawned and not yet finished.
    live: AtomicUsize,
    /// Scheduler handles alive.
    handles: AtomicUsize,
    closed: AtomicBool,
    next_worker: AtomicUsize,
    /// Whether the monitor preempts this pool's threads.
    preemptive: AtomicBool,
    /// Work stealing: threads spawned beyond a worker's local queue size,
    /// for whichever worker looks first.
    pub(crate) overflow: crossbeam_queue::SegQueue<TaskRef>,
    /// Work stealing: read on every local push that leaves two threads
    /// waiting, so kept off the line of `live`, which every spawn and exit
    /// writes.
    pub(crate) idle: crossbeam_utils::CachePadded<IdleCounts>,
}

/// Work stealing: how many workers spin looking for work, and sleep; and
/// which priority levels are in use.
#[derive(Default)]
pub(crate) struct IdleCounts {
    pub(crate) spinning: AtomicUsize,
    pub(crate) sleepers: AtomicUsize,
    /// Bit `p` set once a thread of priority `p` was spawned: with one
    /// level in use, nothing can outrank anything across workers.
    pub(crate) priorities: AtomicU32,
}

impl Pool {
    pub(crate) fn new(config: PoolConfig, time_slice: Duration) -> Self {
        Pool {
            config: Mutex::new(config),
            time_slice_ns: AtomicU64::new(duration_ns(time_slice)),
            workers: OnceLock::new(),
            start: Mutex::new(()),
            live: AtomicUsize::new(0),
            handles: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            next_worker: AtomicUsize::new(0),
            preemptive: AtomicBool::new(true),
            overflow: crossbeam_queue::SegQueue::new(),
            idle: Default::default(),
        }
    }

    pub(crate) fn config(&self) -> PoolConfig {
        // Every std lock the runtime takes is held with preemption disabled:
        // a green thread suspended while holding one would block a sibling
        // on the same worker for good.
        let _np = crate::preempt::disable();
        self.config.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Changes the configuration; false once the workers have started.
    pub(crate) fn reconfigure(&self, f: impl FnOnce(&mut PoolConfig)) -> bool {
        let _np = crate::preempt::disable();
        let _start = self.start.lock().unwrap_or_else(|p| p.into_inner());
        if self.workers.get().is_some() {
            return false;
        }
        f(&mut self.config.lock().unwrap_or_else(|p| p.into_inner()));
        true
    }

    pub(crate) fn time_slice(&self) -> Duration {
        Duration::from_nanos(self.time_slice_ns.load(Ordering::Relaxed))
    }

    pub(crate) fn set_time_slice(&self, d: Duration) {
        self.time_slice_ns.store(duration_ns(d), Ordering::Relaxed)
    }

    pub(crate) fn worker(&self, index: usize) -> Option<&Worker> {
        self.workers.get()?.get(index)
    }

    /// The workers.
    pub(crate) fn workers(&self) -> &[Worker] {
        self.workers.get().map_or(&[], |w| w)
    }

    /// The CPUs the workers are pinned to.
    pub(crate) fn worker_cpus(&self) -> CpuSet {
        let mut set = CpuSet::new();
        for cpu in self.workers().iter().filter_map(Worker::cpu) {
            // Workers are pinned to CPUs of a `cpu_set_t`, which a set holds.
            let _ = set.insert(cpu);
        }
        set
    }

    pub(crate) fn is_preemptive(&self) -> bool {
        self.preemptive.load(Ordering::Relaxed)
    }

    pub(crate) fn set_preemptive(&self, on: bool) {
        self.preemptive.store(on, Ordering::Relaxed)
    }

    /// Threads spawned and not yet finished.
    pub(crate) fn live_threads(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Whether this pool steals work.
    pub(crate) fn is_work_stealing(&self) -> bool {
        self.workers().first().is_some_and(Worker::is_stealing)
    }

    /// Workers that still have a host OS thread running.
    pub(crate) fn running_workers(&self) -> usize {
        self.workers().iter().filter(|w| w.hosts.live() > 0).count()
    }

    pub(crate) fn handle_created(&self) {
        self.handles.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn handle_dropped(&self) {
        if self.handles.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.wake_all();
        }
    }

    pub(crate) fn shutdown(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.wake_all();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// True once no more work can ever arrive.
    pub(crate) fn is_finished(&self) -> bool {
        (self.closed.load(Ordering::SeqCst) || self.handles.load(Ordering::SeqCst) == 0)
            && self.live.load(Ordering::SeqCst) == 0
    }

    pub(crate) fn thread_ended(&self) {
        if self.live.fetch_sub(1, Ordering::SeqCst) == 1 && self.is_finished() {
            self.wake_all();
        }
    }

    fn wake_all(&self) {
        for w in self.workers() {
            w.notify();
        }
    }

    /// Starts a green thread running `body` on a worker pinned to a CPU of
    /// `affinity` (any worker for None); returns it and where its body lies
    /// (valid while a reference to the thread is).
    pub(crate) fn spawn<B: TaskMain>(
        self: &Arc<Self>,
        spec: TaskSpec,
        affinity: Option<&CpuSet>,
        body: B,
    ) -> Result<(TaskRef, NonNull<B>), ThreadError> {
        // Count the thread before checking `closed`, so a worker that sees
        // the pool finished can never miss a thread spawned concurrently.
        self.live.fetch_add(1, Ordering::SeqCst);
        let placed = if self.closed.load(Ordering::SeqCst) {
            Err(ThreadError::SchedulerStopped)
        } else {
            // A spawn that stays on its spawner's worker needs no turn of
            // the round-robin counter, a line every worker would write.
            let local = (affinity.is_none() && spec.movable).then(|| Worker::local_spawn_index(self)).flatten();
            self.start_workers().and_then(|()| local.map_or_else(|| self.place(affinity), Ok))
        };
        let index = match placed {
            Ok(i) => i,
            Err(e) => {
                self.thread_ended();
                return Err(e);
            }
        };
        let level = 1u32 << spec.priority.min(31);
        if self.idle.priorities.load(Ordering::Relaxed) & level == 0 {
            self.idle.priorities.fetch_or(level, Ordering::Relaxed);
        }
        let (task, body) = TaskRef::new(spec, Arc::clone(self), body);
        task.set_worker(index);
        if !(affinity.is_none() && Worker::spawn_locally(self, &task)) {
            Worker::schedule_new(task.clone());
        }
        Ok((task, body))
    }

    /// Picks the worker a new thread starts on: round-robin over the
    /// workers its affinity allows.
    fn place(&self, affinity: Option<&CpuSet>) -> Result<usize, ThreadError> {
        let workers = self.workers();
        let cpus = workers.iter().map(Worker::cpu);
        // One worker needs no turn: save the shared counter's cache line.
        let turn = if workers.len() == 1 { 0 } else { self.next_worker.fetch_add(1, Ordering::Relaxed) };
        match pick(cpus, affinity, turn) {
            Some(i) => Ok(workers[i].index),
            None => Err(ThreadError::InvalidCpuSet {
                requested: Box::new(affinity.copied().unwrap_or_default()),
                worker_cpus: Box::new(self.worker_cpus()),
                process_cpus: Box::new(CpuSet::from_cpus(cpu::allowed_cpus()).unwrap_or_default()),
            }),
        }
    }

    fn start_workers(self: &Arc<Self>) -> Result<(), ThreadError> {
        if self.workers.get().is_some() {
            return Ok(());
        }
        let _np = crate::preempt::disable();
        let _start = self.start.lock().unwrap_or_else(|p| p.into_inner());
        if self.workers.get().is_some() {
            return Ok(());
        }
        let config = self.config();
        if config.workers == 0 {
            return Err(ThreadError::Config("with_workers(0): a scheduler needs at least one worker".into()));
        }
        if self.time_slice().is_zero() {
            return Err(ThreadError::Config("with_time_slice(0): the time slice must be positive".into()));
        }
        crate::preempt::set_pending_handler(worker::take_pending);
        if self.is_preemptive() {
            crate::preempt::signal::install(worker::on_preempt_signal).map_err(ThreadError::Config)?;
        }
        if let Some(s) = &config.steal {
            if s.batch == 0 {
                return Err(ThreadError::Config(
                    "with_steal_batch_size(0): a thief must take at least one thread; 1 moves one at a time".into(),
                ));
            }
            if s.local_queue == 0 {
                return Err(ThreadError::Config(
                    "with_local_queue_size(0): a worker's queue must hold at least one thread (256 is the default)"
                        .into(),
                ));
            }
        }
        let cpus = cpu::allowed_cpus();
        let pinned: Vec<Option<usize>> =
            (0..config.workers).map(|i| (!cpus.is_empty()).then(|| cpus[i % cpus.len()])).collect();
        let topology = super::numa::get_numa_topology();
        let workers: Box<[Worker]> = (0..config.workers)
            .map(|i| {
                let victims = config
                    .steal
                    .map(|s| (s, steal::victim_order(i, &pinned, &s, &topology, steal::live_last_level_cache)));
                Worker::new(i, pinned[i], victims)
            })
            .collect();
        let _ = self.workers.set(workers);
        overflow::install(worker::guard_lookup);
        super::monitor::register(self);
        for i in 0..config.workers {
            // The owner, and one idle host ready for the first preemption.
            let idle = self.is_preemptive();
            let started = worker::spawn_host(self, i, false).and_then(|owner| {
                if let Some(owner) = owner {
                    // SAFETY: nobody owns the new worker yet: this gives it
                    // its first owner.
                    unsafe { owner.hand_worker(None) };
                }
                if idle { worker::spawn_host(self, i, true).map(|_| ()) } else { Ok(()) }
            });
            if let Err(e) = started {
                // Workers already started drain and stop; nothing was queued.
                self.shutdown();
                return Err(ThreadError::Os(e));
            }
        }
        Ok(())
    }
}

/// The counters of pools already dropped, added up, so that process-wide
/// totals ([`SystemMetrics`](crate::metrics::SystemMetrics)) never go
/// down when a scheduler goes away.
#[derive(Default)]
pub(crate) struct Retired {
    pub(crate) switches: AtomicU64,
    pub(crate) preemptions: AtomicU64,
    pub(crate) deferred: AtomicU64,
    pub(crate) hand_offs: AtomicU64,
    pub(crate) steals: AtomicU64,
    pub(crate) wake_migrations: AtomicU64,
    pub(crate) switch_sum_ns: AtomicU64,
    pub(crate) switch_samples: AtomicU64,
    pub(crate) latency: super::latency::Histogram,
}

pub(crate) static RETIRED: Retired = Retired {
    switches: AtomicU64::new(0),
    preemptions: AtomicU64::new(0),
    deferred: AtomicU64::new(0),
    hand_offs: AtomicU64::new(0),
    steals: AtomicU64::new(0),
    wake_migrations: AtomicU64::new(0),
    switch_sum_ns: AtomicU64::new(0),
    switch_samples: AtomicU64::new(0),
    latency: super::latency::Histogram::new(),
};

impl Drop for Pool {
    fn drop(&mut self) {
        let r = &RETIRED;
        for w in self.workers() {
            r.latency.merge(w.latency());
            let (sum, n) = w.switch_samples();
            for (total, v) in [
                (&r.switches, w.switches()),
                (&r.preemptions, w.preemptions()),
                (&r.deferred, w.deferred_preemptions()),
                (&r.hand_offs, w.hand_offs()),
                (&r.steals, w.stolen()),
                (&r.wake_migrations, w.wake_migrations()),
                (&r.switch_sum_ns, sum),
                (&r.switch_samples, n),
            ] {
                total.fetch_add(v, Ordering::Relaxed);
            }
        }
    }
}

/// The position, among workers pinned to `worker_cpus` (None: unpinned),
/// of the `turn`-th (modulo their number) worker that `affinity` allows:
/// every worker for None, else one pinned to a CPU of the set. None when
/// no worker is allowed.
fn pick(
    worker_cpus: impl Iterator<Item = Option<usize>> + Clone,
    affinity: Option<&CpuSet>,
    turn: usize,
) -> Option<usize> {
    let allowed = |cpu: &Option<usize>| affinity.is_none_or(|set| cpu.is_some_and(|c| set.contains(c)));
    let eligible = worker_cpus.clone().filter(allowed).count();
    if eligible == 0 {
        return None;
    }
    worker_cpus.enumerate().filter(|(_, cpu)| allowed(cpu)).nth(turn % eligible).map(|(i, _)| i)
}

fn duration_ns(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::pick;
    use crate::cpu_set::CpuSet;

    fn picks(workers: &[Option<usize>], affinity: Option<&CpuSet>, turns: usize) -> Vec<Option<usize>> {
        (0..turns).map(|t| pick(workers.iter().copied(), affinity, t)).collect()
    }

    #[test]
    fn without_affinity_every_worker_takes_its_turn() {
        assert_eq!(picks(&[Some(0), Some(1), Some(0)], None, 4), [Some(0), Some(1), Some(2), Some(0)]);
        assert_eq!(picks(&[None], None, 2), [Some(0), Some(0)]);
    }

    #[test]
    fn a_set_picks_only_workers_on_its_cpus_round_robin() {
        let workers = [Some(0), Some(1), Some(0), Some(1)];
        let set = CpuSet::from_cpus([1]).unwrap();
        assert_eq!(picks(&workers, Some(&set), 3), [Some(1), Some(3), Some(1)]);
        assert_eq!(picks(&[None, Some(1)], Some(&CpuSet::from_mask(u64::MAX)), 2), [Some(1), Some(1)]);
    }

    #[test]
    fn cpus_from_64_on_are_placed_on() {
        let workers = [Some(3), Some(64), Some(130), Some(1023)];
        let high = CpuSet::from_cpus([130, 1023]).unwrap();
        assert_eq!(picks(&workers, Some(&high), 3), [Some(2), Some(3), Some(2)]);
        // CPU 64 is not bit 0 of a mask, nor is any CPU above 63 in one.
        assert_eq!(picks(&workers, Some(&CpuSet::from_cpus([64]).unwrap()), 1), [Some(1)]);
        assert_eq!(picks(&workers, Some(&CpuSet::from_mask(u64::MAX)), 2), [Some(0), Some(0)]);
        assert_eq!(picks(&workers, Some(&CpuSet::from_mask(1)), 1), [None]);
    }

    #[test]
    fn an_empty_or_foreign_set_places_nowhere() {
        let workers = [Some(0), Some(1)];
        assert_eq!(picks(&workers, Some(&CpuSet::new()), 1), [None]);
        assert_eq!(picks(&workers, Some(&CpuSet::from_cpus([2, 700]).unwrap()), 1), [None]);
    }
}
