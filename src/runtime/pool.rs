//! A pool of workers: what a scheduler handle points at.
//!
//! Workers start on the first spawn, and stop once the pool can get no more
//! work: every handle is gone (or `shutdown` was called) and every thread
//! has finished.

use super::cpu;
use super::task::{TaskMain, TaskRef, TaskSpec};
use super::worker::{self, Worker};
use crate::error::ThreadError;
use crate::stack::overflow;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

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

    /// The workers.
    pub(crate) fn workers(&self) -> &[Worker] {
        self.workers.get().map_or(&[], |w| w)
    }

    /// Bit mask of the CPUs the workers are pinned to (CPUs below 64).
    pub(crate) fn worker_cpus(&self) -> u64 {
        self.workers().iter().filter_map(Worker::cpu).filter(|&c| c < 64).fold(0, |m, c| m | 1 << c)
    }

    pub(crate) fn is_preemptive(&self) -> bool {
        self.preemptive.load(Ordering::Relaxed)
    }

    pub(crate) fn set_preemptive(&self, on: bool) {
        self.preemptive.store(on, Ordering::Relaxed)
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
        let workers = self.workers();
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
        crate::preempt::set_pending_handler(worker::take_pending);
        if self.is_preemptive() {
            crate::preempt::signal::install(worker::on_preempt_signal).map_err(ThreadError::Config)?;
        }
        let cpus = cpu::allowed_cpus();
        let pin = |i: usize| (!cpus.is_empty()).then(|| cpus[i % cpus.len()]);
        let workers: Box<[Worker]> = (0..config.workers).map(|i| Worker::new(i, pin(i))).collect();
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

fn duration_ns(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128) as u64
}
