use super::handle::Thread;
use crate::error::{Panic, ThreadError};
use crate::runtime::task::TaskMain;
use std::cell::UnsafeCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// Where a thread leaves its result and finds who waits for it.
///
/// One atomic word orders the two sides: the thread writes the result,
/// then swaps in `DONE`; the (single) joiner writes its handle, then moves
/// `EMPTY` to `WAITING`. Whoever comes second sees the other's write. A
/// joiner that is an OS thread leaves no handle and sleeps on the word
/// itself (a futex), so that it needs no thread-local of its own: it may
/// be joining from a `thread_local!` destructor.
pub(crate) struct Packet<T> {
    state: AtomicU32,
    /// Written once by the thread before `DONE`; taken by the joiner after.
    /// The error is boxed: it is rare, and unboxed it would add 40 bytes to
    /// every thread's control block.
    result: UnsafeCell<Option<Result<T, Box<ThreadError>>>>,
    /// Written by a green joiner before `WAITING`; taken by the thread after.
    waiter: UnsafeCell<Option<Thread>>,
    /// The thread records a profile, which its end makes final (beside
    /// `state`, in what would be padding).
    profiled: bool,
}

const EMPTY: u32 = 0;
const WAITING: u32 = 1;
const DONE: u32 = 2;

impl<T> Packet<T> {
    pub(crate) fn new(profiled: bool) -> Self {
        Packet { state: AtomicU32::new(EMPTY), result: UnsafeCell::new(None), waiter: UnsafeCell::new(None), profiled }
    }

    /// Publishes the result; called once, by the thread (or for it when it
    /// can never run).
    fn complete(&self, result: Result<T, ThreadError>) {
        // SAFETY: nobody reads the result before `DONE` is published below.
        unsafe { *self.result.get() = Some(result.map_err(Box::new)) };
        if self.state.swap(DONE, Ordering::AcqRel) == WAITING {
            // SAFETY: the joiner wrote its handle before `WAITING` and, once
            // it is there, leaves the slot to us.
            match unsafe { (*self.waiter.get()).take() } {
                Some(w) => w.unpark_joiner(),
                // An OS joiner, asleep on the word; its handle keeps the
                // packet alive.
                None => crate::runtime::futex::wake_one(&self.state),
            }
        }
    }

    fn is_done(&self) -> bool {
        self.state.load(Ordering::Acquire) == DONE
    }

    /// Takes the result once `DONE` was seen.
    ///
    /// # Safety
    /// Only the joiner, once, after an acquiring load saw `DONE`.
    unsafe fn take(&self) -> Result<T, ThreadError> {
        // SAFETY: the caller's contract; the thread wrote it before `DONE`.
        let result = unsafe { (*self.result.get()).take() }.expect("a finished thread always leaves a result");
        result.map_err(|e| *e)
    }

    /// Waits for the result: parks a green caller, blocks an OS one.
    ///
    /// # Safety
    /// Only the joiner, once.
    unsafe fn wait(&self) -> Result<T, ThreadError> {
        if self.state.load(Ordering::Acquire) == EMPTY {
            let green = crate::runtime::worker::Worker::current_task_arc().map(Thread::green);
            // SAFETY: before `WAITING` the waiter slot is the joiner's.
            unsafe { *self.waiter.get() = green };
            if let Err(state) = self.state.compare_exchange(EMPTY, WAITING, Ordering::AcqRel, Ordering::Acquire) {
                debug_assert_eq!(state, DONE);
            }
        }
        while !self.is_done() {
            if !crate::runtime::worker::park(None) {
                crate::runtime::futex::wait(&self.state, WAITING, None);
            }
        }
        // SAFETY: `DONE` seen, and we are the joiner.
        unsafe { self.take() }
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
    pub(crate) fn new(f: F, profiled: bool) -> Self {
        Spawned { packet: Packet::new(profiled), f: UnsafeCell::new(Some(f)) }
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
        let mut result = catch_unwind(AssertUnwindSafe(f)).map_err(|p| ThreadError::Panicked(Panic::new(p)));
        // Green-locals are dropped before the result is published, as an OS
        // thread's thread-locals are before its join returns. A destructor
        // that panics fails the join as a panic of the thread's own code
        // would, unless that code panicked first.
        if let Err(payload) = catch_unwind(crate::runtime::worker::clear_current_locals) {
            match result {
                Ok(value) => {
                    result = Err(ThreadError::Panicked(Panic::new(payload)));
                    // Nobody will take the value: it is dropped here, on the
                    // thread, and its own panic has no one left to go to.
                    let _ = catch_unwind(AssertUnwindSafe(|| drop(value)));
                }
                Err(_) => log::error!("a GreenLocal destructor panicked after the thread itself had"),
            }
        }
        if self.packet.profiled {
            // Its profile is final before its joiner can read it.
            crate::runtime::worker::profile_exit_current();
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
    ///
    /// A thread that joins its own handle gets [`ThreadError::JoinSelf`]
    /// at once instead of waiting forever; the handle is gone and the
    /// thread runs on.
    pub fn join(self) -> Result<T, ThreadError> {
        if self.thread.is_current() {
            return Err(ThreadError::JoinSelf);
        }
        // SAFETY: `join` consumes the only handle, so this is the one joiner.
        unsafe { self.packet().wait() }
    }

    /// The thread being joined.
    pub fn thread(&self) -> &Thread {
        &self.thread
    }

    /// Whether the thread has finished (its result is ready).
    pub fn is_finished(&self) -> bool {
        self.packet().is_done()
    }
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle").field("thread", &self.thread).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::Spawned;
    use crate::runtime::task::cell_size;

    #[test]
    fn a_thread_with_a_small_closure_fits_in_three_cache_lines() {
        // Spawn touches every byte of the cell, and a burst of spawns is
        // bound by memory: 192 bytes is the block class it must stay in.
        fn size_for<F: FnOnce() -> u64>(_: &F) -> usize {
            cell_size::<Spawned<F, u64>>()
        }
        let n = 7u64;
        let size = size_for(&move || n + 1);
        assert!(size <= 192, "a spawn+join of a one-word closure takes {size} bytes");
    }
}
