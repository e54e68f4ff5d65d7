use super::error::{Panic, ThreadError};
use super::handle::Thread;
use crate::preempt;
use crate::runtime::task::TaskMain;
use std::cell::UnsafeCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

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

/// A spawned thread's body: its closure, then where its result goes. It
/// lives inline in the thread's task cell, so a spawn allocates once.
pub(crate) struct Spawned<F, T> {
    packet: Packet<T>,
    /// Taken by the one `run` or `fail` the task allows.
    f: UnsafeCell<Option<F>>,
}

impl<F, T> Spawned<F, T> {
    pub(crate) fn new(f: F) -> Self {
        Spawned { packet: Packet::new(), f: UnsafeCell::new(Some(f)) }
    }

    fn take(&self) -> Option<F> {
        // SAFETY: the task calls `run` or `fail` at most once, from its
        // owner (`Task::run_body`/`fail_body`), and nothing else reads `f`.
        unsafe { (*self.f.get()).take() }
    }
}

// SAFETY: `f` is only touched by the single `run`/`fail` call (see `take`),
// which may happen on another thread than the spawner's: hence `F: Send`.
// The packet is Sync when `T: Send`.
unsafe impl<F: Send, T: Send> Sync for Spawned<F, T> {}

impl<F, T> TaskMain for Spawned<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn run(&self) {
        let Some(f) = self.take() else { return };
        let result = catch_unwind(AssertUnwindSafe(f)).map_err(|p| ThreadError::Panicked(Panic::new(p)));
        // Green-locals are dropped before the result is published, as an OS
        // thread's thread-locals are before its join returns.
        if catch_unwind(crate::runtime::worker::clear_current_locals).is_err() {
            log::error!("a GreenLocal destructor panicked");
        }
        self.packet.complete(result);
    }

    fn fail(&self, err: ThreadError) {
        drop(self.take());
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
    /// The thread, whose reference keeps `packet` alive.
    thread: Thread,
    packet: NonNull<Packet<T>>,
}

// SAFETY: the handle is a counted reference to the thread plus a pointer
// into the same allocation; the packet is shared safely when `T: Send`.
unsafe impl<T: Send> Send for JoinHandle<T> {}
// SAFETY: as above; `&JoinHandle` only reads `done`.
unsafe impl<T: Send> Sync for JoinHandle<T> {}

impl<T> JoinHandle<T> {
    pub(crate) fn new<F>(thread: Thread, body: NonNull<Spawned<F, T>>) -> Self {
        // SAFETY: `body` lies in the cell `thread` refers to, so it is valid
        // now; the field address is taken without creating a reference.
        let packet = unsafe { NonNull::new_unchecked(&raw mut (*body.as_ptr()).packet) };
        JoinHandle { thread, packet }
    }

    fn packet(&self) -> &Packet<T> {
        // SAFETY: `thread` keeps the cell holding the packet alive.
        unsafe { self.packet.as_ref() }
    }

    /// Waits for the thread to finish and returns its result, or
    /// [`ThreadError::Panicked`] if it panicked. A green caller parks (its
    /// worker runs other threads meanwhile); an OS caller blocks.
    pub fn join(self) -> Result<T, ThreadError> {
        loop {
            {
                let _np = preempt::disable();
                let mut slot = self.packet().slot.lock().unwrap_or_else(|p| p.into_inner());
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
        self.packet().done.load(Ordering::Acquire)
    }
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle").field("thread", &self.thread).finish_non_exhaustive()
    }
}
