use crate::runtime::locals::LocalMap;
use crate::runtime::worker::Worker;

/// A value each green thread gets its own copy of, created on first use and
/// dropped when the thread ends. Unlike `thread_local!`, whose values belong
/// to the worker OS thread and are shared by every green thread that runs
/// on it, a `GreenLocal` follows its green thread from worker to worker.
/// On a plain OS thread, each OS thread gets its own copy.
///
/// A green thread's values are dropped when its code returns, before its
/// `join` does. If a destructor panics, the other values are still
/// dropped and `join` returns that panic as
/// [`ThreadError::Panicked`](crate::ThreadError::Panicked), unless the
/// thread's own code panicked first (then that panic is the one returned).
///
/// ```
/// use preemptive_mlthreading_rust::{spawn, thread::GreenLocal};
/// use std::cell::Cell;
///
/// static CALLS: GreenLocal<Cell<u32>> = GreenLocal::new(|| Cell::new(0));
///
/// let h = spawn(|| {
///     CALLS.with(|c| c.set(c.get() + 1));
///     CALLS.with(|c| c.get())
/// })
/// .unwrap();
/// assert_eq!(h.join().unwrap(), 1);
/// assert_eq!(CALLS.with(|c| c.get()), 0); // this OS thread's own copy
/// ```
pub struct GreenLocal<T: 'static> {
    init: fn() -> T,
}

thread_local! {
    static OS_LOCALS: LocalMap = LocalMap::default();
}

impl<T: 'static> GreenLocal<T> {
    /// A local initialised by `init` in each thread that uses it.
    pub const fn new(init: fn() -> T) -> Self {
        GreenLocal { init }
    }

    /// Runs `f` with this thread's value.
    pub fn with<R>(&'static self, f: impl FnOnce(&T) -> R) -> R {
        let key = self as *const Self as usize;
        let value = match Worker::current_task_ptr() {
            // SAFETY: the calling thread's own task, alive while it runs,
            // and its own map, used only by that thread; the value lives
            // until the thread ends, after `f` returns.
            Some(task) => unsafe { (*task).locals.get_or_insert(key, self.init) },
            // SAFETY: this OS thread's own map, alive while it runs `f`.
            None => OS_LOCALS.with(|m| unsafe { m.get_or_insert(key, self.init) }),
        };
        // SAFETY: non-null (the key's type is T) and valid as above; only
        // shared references are handed out.
        f(unsafe { &*value })
    }
}
