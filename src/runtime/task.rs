//! The green thread control block.

use super::park::ParkState;
use super::pool::Pool;
use crate::stack::Stack;
use crate::thread::{ThreadError, ThreadId};
use std::cell::UnsafeCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The body of a green thread, type-erased: run it, or report why it could
/// not run.
pub(crate) trait TaskMain: Send + Sync {
    fn run(self: Arc<Self>);
    fn fail(self: Arc<Self>, err: ThreadError);
}

/// What a thread asked for at spawn.
pub(crate) struct TaskSpec {
    pub(crate) name: Option<Box<str>>,
    pub(crate) priority: u8,
    pub(crate) affinity: Option<u64>,
    pub(crate) stack_size: usize,
    pub(crate) save_fp: bool,
    pub(crate) prefetch_stack: bool,
    /// Time slice in ns; 0 = the scheduler's.
    pub(crate) slice_ns: u64,
}

/// A green thread. Shared as `Arc<Task>` between its `Thread` handles, the
/// run queues and the timers; the execution state in the `UnsafeCell`s
/// belongs to whichever worker holds it in its run queue, `current` slot or
/// post-switch slot, and only that worker touches it.
pub(crate) struct Task {
    pub(crate) id: ThreadId,
    pub(crate) spec: TaskSpec,
    pub(crate) pool: Arc<Pool>,
    /// Index of the worker that runs (or last ran) this thread.
    worker: AtomicUsize,
    pub(crate) park: ParkState,
    /// `GreenLocal` values; only the thread itself touches them.
    pub(crate) locals: super::locals::LocalMap,
    exec: UnsafeCell<Exec>,
}

/// Execution state; see the ownership rule on [`Task`].
pub(crate) struct Exec {
    /// Saved stack pointer while switched out; 0 before the first run.
    pub(crate) sp: usize,
    pub(crate) stack: Option<Stack>,
    pub(crate) main: Option<Arc<dyn TaskMain>>,
    /// Preempt-disable depth at the switch-out point.
    pub(crate) preempt_depth: u32,
    pub(crate) finished: bool,
    /// Link to the next task in the run-queue level holding this one.
    pub(crate) next: *const Task,
}

// SAFETY: `exec` is only touched by the single worker that owns the task at
// that moment (see the type's docs); everything else is immutable or atomic.
unsafe impl Sync for Task {}
// SAFETY: as above; TaskMain is Send and so is Stack.
unsafe impl Send for Task {}

impl Task {
    pub(crate) fn new(spec: TaskSpec, pool: Arc<Pool>, main: Arc<dyn TaskMain>) -> Self {
        Task {
            id: ThreadId::next(),
            spec,
            pool,
            worker: AtomicUsize::new(0),
            park: ParkState::new(),
            locals: Default::default(),
            exec: UnsafeCell::new(Exec {
                sp: 0,
                stack: None,
                main: Some(main),
                preempt_depth: 0,
                finished: false,
                next: std::ptr::null(),
            }),
        }
    }

    #[inline]
    pub(crate) fn worker(&self) -> usize {
        self.worker.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn set_worker(&self, index: usize) {
        self.worker.store(index, Ordering::Relaxed)
    }

    /// The execution state.
    ///
    /// # Safety
    /// Only the worker that currently owns the task may call this, and it
    /// must not keep the reference across a context switch.
    #[allow(clippy::mut_from_ref)]
    #[inline]
    pub(crate) unsafe fn exec(&self) -> &mut Exec {
        // SAFETY: exclusivity is the caller's contract.
        unsafe { &mut *self.exec.get() }
    }

    /// The execution state as a raw pointer, for a switch that must keep
    /// it past moving the task's `Arc` elsewhere. Same rules as [`Task::exec`].
    #[inline]
    pub(crate) fn exec_ptr(&self) -> *mut Exec {
        self.exec.get()
    }

    pub(crate) fn name_bytes(&self) -> &[u8] {
        self.spec.name.as_deref().unwrap_or("<unnamed>").as_bytes()
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        // A thread dropped before it finished (parked forever with nobody
        // left to wake it, or never run) still counted as live.
        if !self.exec.get_mut().finished {
            if let Some(main) = self.exec.get_mut().main.take() {
                main.fail(ThreadError::SchedulerStopped);
            }
            self.pool.thread_ended();
        }
    }
}
