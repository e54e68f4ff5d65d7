//! A pool of workers: what a scheduler handle points at.
//!
//! Workers start on the first spawn, and stop once the pool can get no more
//! work: every handle is gone (or `shutdown` was called) and every thread
//! has finished.

use super::cpu;
use super::task::{TaskMain, TaskRef, TaskSpec};
use super::worker::{self, Worker};
use crate::stack::overflow;
use crate::thread::ThreadError;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Spare worker slots per pool: OS threads started on demand to run the
/// threads queued behind a worker that is blocked in the OS. At most this
/// many workers of one pool can be blocked at once without stalling others.
pub(crate) const SPARE_WORKERS: usize = 32;

/// Settings fixed when the workers start.
#[derive(Clone, Debug)]
pub(crate) struct PoolConfig {
    pub(crate) workers: usize,
    pub(crate) name: String,
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
    /// Worker OS threads that have not exited.
    running: AtomicUsize,
    /// Whether the monitor preempts this pool's threads.
    preemptive: AtomicBool,
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
            running: AtomicUsize::new(0),
            preemptive: AtomicBool::new(true),
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

    /// Every worker slot: the regular workers, then [`SPARE_WORKERS`]
    /// spares, started only when a blocked worker hands its threads off.
    pub(crate) fn workers(&self) -> &[Worker] {
        self.workers.get().map_or(&[], |w| w)
    }

    /// The regular workers: where new threads are placed.
    pub(crate) fn regular(&self) -> &[Worker] {
        let all = self.workers();
        &all[..all.len().saturating_sub(SPARE_WORKERS)]
    }

    /// Hands the queued threads of regular worker `w`, which is stuck in
    /// the OS, to its spare: starts the spare if needed, then asks `w`'s
    /// signal handler to move its run queue over.
    pub(crate) fn hand_off(self: &Arc<Self>, w: &Worker) {
        let n = self.regular().len();
        let spares = &self.workers()[n..];
        // A spare pinned where `w` is (so CPU affinity still holds) that is
        // started and not itself stuck; else a fresh one.
        let reusable =
            spares.iter().find(|s| s.index != w.index && s.cpu() == w.cpu() && s.is_started() && !s.is_blocked());
        let target = match reusable {
            Some(s) => s,
            None => {
                let Some(fresh) = spares.iter().find(|s| !s.is_started()) else {
                    log::warn!(
                        "worker {} is blocked in the OS and all {SPARE_WORKERS} spare workers are in use",
                        w.index
                    );
                    return;
                };
                fresh.repin(w.cpu());
                if fresh.mark_started() {
                    let pool = Arc::clone(self);
                    let index = fresh.index;
                    let name = format!("{}-spare-{}", self.config().name, index - n);
                    self.running.fetch_add(1, Ordering::SeqCst);
                    if let Err(e) = std::thread::Builder::new().name(name).spawn(move || worker::run(pool, index)) {
                        self.running.fetch_sub(1, Ordering::SeqCst);
                        log::error!("cannot start a spare worker for blocked worker {}: {e}", w.index);
                        return;
                    }
                }
                fresh
            }
        };
        w.request_hand_off(target.index);
    }

    /// Bit mask of the CPUs the workers are pinned to (CPUs below 64).
    pub(crate) fn worker_cpus(&self) -> u64 {
        self.regular().iter().filter_map(Worker::cpu).filter(|&c| c < 64).fold(0, |m, c| m | 1 << c)
    }

    pub(crate) fn is_preemptive(&self) -> bool {
        self.preemptive.load(Ordering::Relaxed)
    }

    pub(crate) fn set_preemptive(&self, on: bool) {
        self.preemptive.store(on, Ordering::Relaxed)
    }

    pub(crate) fn running_workers(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    pub(crate) fn worker_exited(&self) {
        self.running.fetch_sub(1, Ordering::SeqCst);
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

    /// Starts a green thread running `body` on a worker that `affinity`
    /// allows; returns it and where its body lies (valid while a reference
    /// to the thread is).
    pub(crate) fn spawn<B: TaskMain>(
        self: &Arc<Self>,
        spec: TaskSpec,
        affinity: Option<u64>,
        body: B,
    ) -> Result<(TaskRef, NonNull<B>), ThreadError> {
        // Count the thread before checking `closed`, so a worker that sees
        // the pool finished can never miss a thread spawned concurrently.
        self.live.fetch_add(1, Ordering::SeqCst);
        let placed = if self.closed.load(Ordering::SeqCst) {
            Err(ThreadError::SchedulerStopped)
        } else {
            self.start_workers().and_then(|()| self.place(affinity))
        };
        let index = match placed {
            Ok(i) => i,
            Err(e) => {
                self.thread_ended();
                return Err(e);
            }
        };
        let (task, body) = TaskRef::new(spec, Arc::clone(self), body);
        task.set_worker(index);
        Worker::schedule_new(task.clone());
        Ok((task, body))
    }

    /// Picks the worker a new thread starts on: round-robin over the
    /// workers its affinity allows.
    fn place(&self, affinity: Option<u64>) -> Result<usize, ThreadError> {
        let workers = self.regular();
        let n = workers.len();
        let allowed = |w: &Worker| match affinity {
            None => true,
            Some(mask) => w.cpu().is_some_and(|c| c < 64 && mask & (1 << c) != 0),
        };
        let eligible = workers.iter().filter(|w| allowed(w)).count();
        if eligible == 0 {
            return Err(ThreadError::InvalidAffinity { mask: affinity.unwrap_or(0), worker_cpus: self.worker_cpus() });
        }
        if n == 1 {
            return Ok(0);
        }
        let k = self.next_worker.fetch_add(1, Ordering::Relaxed) % eligible;
        Ok(workers.iter().filter(|w| allowed(w)).nth(k).map_or(0, |w| w.index))
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
        if self.is_preemptive() {
            crate::preempt::signal::install(worker::on_preempt_signal)?;
        }
        let cpus = cpu::allowed_cpus();
        let n = config.workers;
        let pin = |i: usize| (!cpus.is_empty()).then(|| cpus[i % cpus.len()]);
        // Spares get their CPU when first used (that of the worker they
        // stand in for).
        let workers: Box<[Worker]> = (0..n + SPARE_WORKERS)
            .map(|i| if i < n { Worker::new(i, pin(i), true) } else { Worker::new(i, None, false) })
            .collect();
        let _ = self.workers.set(workers);
        overflow::install(worker::guard_lookup);
        super::monitor::register(self);
        for i in 0..config.workers {
            let pool = Arc::clone(self);
            self.running.fetch_add(1, Ordering::SeqCst);
            let started =
                std::thread::Builder::new().name(format!("{}-{i}", config.name)).spawn(move || worker::run(pool, i));
            if let Err(e) = started {
                self.running.fetch_sub(1, Ordering::SeqCst);
                // Workers already started drain and stop; nothing was queued.
                self.shutdown();
                return Err(ThreadError::Os(e));
            }
        }
        Ok(())
    }
}

fn duration_ns(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128) as u64
}
