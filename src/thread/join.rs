use super::error::{Panic, ThreadError};
use super::handle::Thread;
use crate::preempt;
use crate::runtime::task::TaskMain;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Where a thread leaves its result and finds who waits for it.
pub(crate) struct Packet<T> {
    done: AtomicBool,
    slot: Mutex<Slot<T>>,
}

struct Slot<T> {
    result: Option<Result<T, ThreadError>>,
    waiter: Option<Thread>,
}

impl<T> Packet<T> {
    pub(crate) fn new() -> Self {
        Packet { done: AtomicBool::new(false), slot: Mutex::new(Slot { result: None, waiter: None }) }
    }

    fn complete(&self, result: Result<T, ThreadError>) {
        let waiter = {
            let _np = preempt::disable();
            let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
            slot.result = Some(result);
            self.done.store(true, Ordering::Release);
            slot.waiter.take()
        };
        if let Some(w) = waiter {
            w.unpark();
        }
    }
}

/// A spawned thread's closure together with where its result goes: one
/// allocation shared by the task (which runs it) and the join handle.
pub(crate) struct Spawned<F, T> {
    pub(crate) packet: Packet<T>,
    pub(crate) f: Mutex<Option<F>>,
}

/// The join handle's view of a [`Spawned`], without the closure type.
pub(crate) trait JoinSlot<T>: Send + Sync {
    fn packet(&self) -> &Packet<T>;
}

impl<F: Send, T: Send> JoinSlot<T> for Spawned<F, T> {
    fn packet(&self) -> &Packet<T> {
        &self.packet
    }
}

impl<F, T> TaskMain for Spawned<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn run(self: Arc<Self>) {
        let f = self.f.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(f) = f else { return };
        let result = catch_unwind(AssertUnwindSafe(f)).map_err(|p| ThreadError::Panicked(Panic::new(p)));
        // Green-locals are dropped before the result is published, as an OS
        // thread's thread-locals are before its join returns.
        if catch_unwind(crate::runtime::worker::clear_current_locals).is_err() {
            log::error!("a GreenLocal destructor panicked");
        }
        self.packet.complete(result);
    }

    fn fail(self: Arc<Self>, err: ThreadError) {
        drop(self.f.lock().unwrap_or_else(|p| p.into_inner()).take());
        self.packet.complete(Err(err));
    }
}

/// An owned permission to join a green thread (wait for it and take its
/// result). Dropping it detaches the thread.
///
/// ```
/// use preemptive_mlthreading_rust::ThreadBuilder;
///
/// let h = ThreadBuilder::new().spawn(|| "done").unwrap();
/// assert_eq!(h.join().unwrap(), "done");
/// ```
pub struct JoinHandle<T> {
    pub(crate) spawned: Arc<dyn JoinSlot<T>>,
    pub(crate) thread: Thread,
}

impl<T> JoinHandle<T> {
    /// Waits for the thread to finish and returns its result, or
    /// [`ThreadError::Panicked`] if it panicked. A green caller parks (its
    /// worker runs other threads meanwhile); an OS caller blocks.
    pub fn join(self) -> Result<T, ThreadError> {
        loop {
            {
                let _np = preempt::disable();
                let mut slot = self.spawned.packet().slot.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(result) = slot.result.take() {
                    return result;
                }
                slot.waiter = Some(super::current());
            }
            super::park();
        }
    }

    /// The thread being joined.
    pub fn thread(&self) -> &Thread {
        &self.thread
    }

    /// Whether the thread has finished (its result is ready).
    pub fn is_finished(&self) -> bool {
        self.spawned.packet().done.load(Ordering::Acquire)
    }
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle").field("thread", &self.thread).finish_non_exhaustive()
    }
}
