//! [`ReentrantMutex`]: a mutex the holding thread may lock again, built
//! with `lock_api` on [`RawMutex`] and [`RawThreadId`], whose notion of
//! "the same thread" is the green thread, wherever it runs.

use super::raw_mutex::RawMutex;
use crate::runtime::thread_id::ThreadId;
use crate::runtime::worker::Worker;
use std::cell::Cell;
use std::num::NonZeroUsize;

/// Who is calling, for [`ReentrantMutex`]: the running green thread's
/// [`ThreadId`](crate::ThreadId) (what [`current()`](crate::current)`.id()`
/// gives), or on a plain OS thread an id of that OS thread from the same
/// never-reused counter.
///
/// A green thread migrates between worker OS threads (at a preemption, a
/// park, a steal), so an OS thread's id, which is what `parking_lot`'s
/// `RawThreadId` gives, would be wrong twice over: a green thread that
/// moved would not be recognised as the holder and would deadlock against
/// itself, and another green thread later run by the holder's OS thread
/// would be taken for the holder and let in. Ids are never reused, so a
/// thread that ended holding the lock is never mistaken for a new one.
///
/// ```
/// use lock_api::GetThreadId;
/// use preemptive_mlthreading_rust::{spawn, sync::RawThreadId};
///
/// let me = RawThreadId.nonzero_thread_id();
/// assert_eq!(me, RawThreadId.nonzero_thread_id());
/// let other = spawn(|| RawThreadId.nonzero_thread_id()).unwrap().join().unwrap();
/// assert_ne!(me, other);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct RawThreadId;

// SAFETY: the id is unique to the calling thread among all live threads
// (green task ids and OS ids come from one counter and are never reused)
// and stays the same for that thread wherever it runs: a green thread's
// comes from its task, not from the OS thread.
unsafe impl lock_api::GetThreadId for RawThreadId {
    const INIT: Self = RawThreadId;

    #[inline]
    fn nonzero_thread_id(&self) -> NonZeroUsize {
        let id = match Worker::current_task_ptr() {
            // SAFETY: the task of the running green thread stays alive
            // while it runs (`current_task_ptr`), and we are that thread.
            Some(task) => unsafe { (*task).id },
            None => os_thread_id(),
        };
        NonZeroUsize::try_from(id.as_u64()).expect("thread ids fit a usize on 64-bit targets")
    }
}

/// The calling OS thread's id, made on first use. A `const` thread-local
/// without a destructor, so it works in thread-local destructors too.
#[cold]
fn os_thread_id() -> ThreadId {
    thread_local! {
        static ID: Cell<Option<ThreadId>> = const { Cell::new(None) };
    }
    ID.with(|id| {
        let v = id.get().unwrap_or_else(ThreadId::next);
        id.set(Some(v));
        v
    })
}

/// A mutex that the green thread holding it may lock again (each lock
/// unlocks when its guard drops; the last one releases the mutex). Guards
/// give `&T` only, since the holder may have several; use a `Cell` or
/// `RefCell` inside for changes.
///
/// "The same thread" is the green thread, whichever worker OS thread it
/// runs on at the moment (see [`RawThreadId`]); a plain OS thread is
/// itself. Waiting parks a green thread, as with [`Mutex`](super::Mutex).
/// This is `lock_api`'s `ReentrantMutex` over [`RawMutex`], as
/// `parking_lot`'s is over its own, so its API is `lock_api`'s:
/// `try_lock` returns an `Option`, `try_lock_for` too.
///
/// ```
/// use preemptive_mlthreading_rust::{spawn, sync::ReentrantMutex, yield_now};
/// use std::{cell::Cell, sync::Arc};
///
/// let m = Arc::new(ReentrantMutex::new(Cell::new(0)));
/// let m2 = Arc::clone(&m);
/// spawn(move || {
///     let outer = m2.lock();
///     yield_now(); // may resume on another worker
///     let inner = m2.lock(); // the same green thread: no deadlock
///     inner.set(outer.get() + 1);
/// })
/// .unwrap()
/// .join()
/// .unwrap();
/// assert_eq!(m.lock().get(), 1);
/// ```
pub type ReentrantMutex<T> = lock_api::ReentrantMutex<RawMutex, RawThreadId, T>;

/// The guard of a [`ReentrantMutex`] lock; unlocks one level when
/// dropped.
///
/// ```
/// use preemptive_mlthreading_rust::sync::{ReentrantMutex, ReentrantMutexGuard};
///
/// let m = ReentrantMutex::new(5);
/// let a: ReentrantMutexGuard<'_, i32> = m.lock();
/// let b = m.lock();
/// assert_eq!(*a + *b, 10);
/// drop((a, b));
/// assert!(!m.is_locked());
/// ```
pub type ReentrantMutexGuard<'a, T> = lock_api::ReentrantMutexGuard<'a, RawMutex, RawThreadId, T>;
