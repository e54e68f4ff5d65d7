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

/// The closure of a green thread and where its result goes.
pub(crate) struct Main<F, T> {
    pub(crate) f: F,
    pub(crate) packet: Arc<Packet<T>>,
}

impl<F, T> TaskMain for Main<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn run(self: Box<Self>) {
        let Main { f, packet } = *self;
        let result = catch_unwind(AssertUnwindSafe(f)).map_err(|p| ThreadError::Panicked(Panic::new(p)));
        packet.complete(result);
    }

    fn fail(self: Box<Self>, err: ThreadError) {
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
    pub(crate) packet: Arc<Packet<T>>,
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
                let mut slot = self.packet.slot.lock().unwrap_or_else(|p| p.into_inner());
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
        self.packet.done.load(Ordering::Acquire)
    }
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle").field("thread", &self.thread).finish_non_exhaustive()
    }
}
