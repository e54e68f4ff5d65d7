//! Scoped green threads: [`scope`] and [`Scope::spawn`], with the
//! semantics of `std::thread::scope`, so that threads may borrow from the
//! caller's stack.
//!
//! How the borrow stays sound: every thread spawned in a scope counts
//! itself in the scope's `running`, and [`scope`] does not return (nor
//! unwind) before that count is back at zero. A thread leaves the count
//! last of all, after its closure, its result (when nobody will take it)
//! and everything it captured are dropped; the runtime then touches only
//! its own state. The closure's lifetime is erased to hand it to the
//! ordinary spawn path (a box and a transmute, as std does), which that
//! wait makes sound.
//!
//! The wait parks the scope's own thread (green or OS) and the last thread
//! to finish unparks it, so a scope on a green thread leaves its worker to
//! the threads it waits for.

use super::builder::ThreadBuilder;
use super::handle::{Thread, current};
use super::join::JoinHandle;
use crate::error::{Panic, ThreadError};
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// A scope to spawn threads that borrow from outside it; see [`scope`].
///
/// `'scope` is the scope's own lifetime, `'env` that of what its threads
/// borrow (it outlives `'scope`), as in `std::thread::Scope`.
pub struct Scope<'scope, 'env: 'scope> {
    data: Arc<ScopeData>,
    /// Invariant in `'scope`, as std's: a shorter scope cannot stand in.
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

/// What a scope and its threads share.
struct ScopeData {
    /// Threads spawned and not yet completely finished.
    running: AtomicUsize,
    /// Threads that panicked and whose panic no `join` has taken.
    unjoined_panics: AtomicUsize,
    /// The thread that called [`scope`], unparked by the last to finish.
    owner: Thread,
}

impl ScopeData {
    /// A thread is completely done: the last one wakes the owner.
    fn finished(&self) {
        if self.running.fetch_sub(1, Ordering::Release) == 1 {
            self.owner.unpark();
        }
    }

    /// Parks the owner until every thread is completely done.
    fn wait_all(&self) {
        while self.running.load(Ordering::Acquire) != 0 {
            super::park();
        }
    }
}

/// Runs `f` with a [`Scope`] whose threads may borrow anything that
/// outlives the call; returns once every thread spawned in it has
/// finished, with `f`'s value.
///
/// Threads not joined by hand are joined here. If one of them panicked
/// and no [`ScopedJoinHandle::join`] took its panic, `scope` panics once
/// all are done; a panic of `f` itself is resumed after the wait.
/// Threads go to the default scheduler; [`ThreadBuilder::spawn_scoped`]
/// chooses another, or a name, priority, stack size and the rest.
///
/// ```
/// use preemptive_mlthreading_rust::thread;
///
/// let mut data = vec![1, 2, 3, 4, 5, 6];
/// let total: i32 = data.iter().sum();
/// let (left, right) = data.split_at_mut(3);
/// let sums = thread::scope(|s| {
///     let a = s.spawn(|| left.iter_mut().map(|x| { *x *= 10; *x }).sum::<i32>());
///     let b = s.spawn(|| right.iter().sum::<i32>());
///     (a.join().unwrap(), b.join().unwrap())
/// });
/// assert_eq!(sums, (60, 15));
/// assert_eq!(data, [10, 20, 30, 4, 5, 6]);
/// assert_eq!(total, 21);
/// ```
pub fn scope<'env, F, T>(f: F) -> T
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
{
    let scope = Scope {
        data: Arc::new(ScopeData {
            running: AtomicUsize::new(0),
            unjoined_panics: AtomicUsize::new(0),
            owner: current(),
        }),
        scope: PhantomData,
        env: PhantomData,
    };
    let result = catch_unwind(AssertUnwindSafe(|| f(&scope)));
    scope.data.wait_all();
    match result {
        Err(payload) => resume_unwind(payload),
        Ok(_) if scope.data.unjoined_panics.load(Ordering::Acquire) > 0 => panic!("a scoped thread panicked"),
        Ok(value) => value,
    }
}

impl<'scope> Scope<'scope, '_> {
    /// Spawns a thread that may borrow from outside the scope, on the
    /// default scheduler. Panics if the thread cannot be spawned (as
    /// `std::thread::Scope::spawn` does); [`ThreadBuilder::spawn_scoped`]
    /// returns the error instead.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::thread;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    ///
    /// let hits = AtomicUsize::new(0);
    /// thread::scope(|s| {
    ///     for _ in 0..100 {
    ///         s.spawn(|| hits.fetch_add(1, Ordering::Relaxed));
    ///     }
    /// }); // all 100 are joined here
    /// assert_eq!(hits.into_inner(), 100);
    /// ```
    pub fn spawn<F, T>(&'scope self, f: F) -> ScopedJoinHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        ThreadBuilder::new().spawn_scoped(self, f).unwrap_or_else(|e| panic!("failed to spawn a scoped thread: {e}"))
    }
}

impl std::fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("running", &self.data.running.load(Ordering::Relaxed))
            .field("unjoined_panics", &self.data.unjoined_panics.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Where a scoped thread leaves its result for [`ScopedJoinHandle::join`].
type Slot<T> = Mutex<Option<Result<T, ThreadError>>>;

/// What a scoped thread runs. Its fields drop in this order, whether it
/// ran or the runtime dropped it unrun: the closure and the result (if
/// the handle is gone, the result is dropped here, on the thread) before
/// the scope learns that the thread is done.
struct ScopedMain<F, T> {
    f: Option<F>,
    slot: Arc<Slot<T>>,
    finish: Finished,
}

/// Counts its thread out of the scope when dropped.
struct Finished(Arc<ScopeData>);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.finished();
    }
}

impl<F: FnOnce() -> T, T> ScopedMain<F, T> {
    fn run(mut self) {
        let Some(f) = self.f.take() else { return };
        let result = catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
            self.finish.0.unjoined_panics.fetch_add(1, Ordering::Release);
            ThreadError::Panicked(Panic::new(p))
        });
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
        // `self` drops here: the slot (with the result, if the handle is
        // gone), then `finish`.
    }
}

impl ThreadBuilder {
    /// Spawns a thread in `scope` with this builder's settings (scheduler,
    /// name, priority, stack size, ...): like [`ThreadBuilder::spawn`], but
    /// the closure may borrow what outlives the scope.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::{thread, RoundRobinScheduler, ThreadBuilder};
    ///
    /// let sched = RoundRobinScheduler::new().with_workers(1);
    /// let words = vec!["scoped", "threads"];
    /// thread::scope(|s| {
    ///     let h = ThreadBuilder::new()
    ///         .name("reader")
    ///         .scheduler(sched.clone())
    ///         .spawn_scoped(s, || (thread::current().name().map(str::to_owned), words.len()))
    ///         .unwrap();
    ///     assert_eq!(h.join().unwrap(), (Some("reader".to_owned()), 2));
    /// });
    /// ```
    pub fn spawn_scoped<'scope, 'env, F, T>(
        self,
        scope: &'scope Scope<'scope, 'env>,
        f: F,
    ) -> Result<ScopedJoinHandle<'scope, T>, ThreadError>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        let slot: Arc<Slot<T>> = Arc::new(Mutex::new(None));
        scope.data.running.fetch_add(1, Ordering::Relaxed);
        let main = ScopedMain { f: Some(f), slot: Arc::clone(&slot), finish: Finished(Arc::clone(&scope.data)) };
        let main: Box<dyn FnOnce() + Send + 'scope> = Box::new(move || main.run());
        // SAFETY: only the lifetime changes. The box borrows for 'scope,
        // and `scope` does not return or unwind before `running` is zero,
        // which `Finished` makes it only once the box's contents are
        // dropped, run or not (a failed spawn drops it unrun, and with it
        // `Finished`); after that the runtime touches only its own state.
        let main: Box<dyn FnOnce() + Send + 'static> = unsafe { std::mem::transmute(main) };
        let handle = self.spawn(main)?;
        Ok(ScopedJoinHandle { handle, slot, data: Arc::clone(&scope.data), scope: PhantomData })
    }
}

/// An owned permission to join a scoped thread; dropping it leaves the
/// join to the end of the [`scope`].
pub struct ScopedJoinHandle<'scope, T> {
    handle: JoinHandle<()>,
    slot: Arc<Slot<T>>,
    data: Arc<ScopeData>,
    scope: PhantomData<&'scope ()>,
}

impl<T> ScopedJoinHandle<'_, T> {
    /// Waits for the thread to finish and returns its result, or
    /// `ThreadError::Panicked` with its panic (which the [`scope`] then no
    /// longer reports), or the error that kept it from running.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::{thread, ThreadError};
    ///
    /// thread::scope(|s| {
    ///     let h = s.spawn(|| -> u8 { panic!("boom") });
    ///     assert!(matches!(h.join(), Err(ThreadError::Panicked(p)) if p.message() == "boom"));
    /// }); // taken by the join: the scope does not panic
    /// ```
    pub fn join(self) -> Result<T, ThreadError> {
        let ran = self.handle.join();
        let result = self.slot.lock().unwrap_or_else(PoisonError::into_inner).take();
        match (result, ran) {
            (Some(Err(e)), _) => {
                self.data.unjoined_panics.fetch_sub(1, Ordering::AcqRel);
                Err(e)
            }
            (Some(Ok(value)), _) => Ok(value),
            (None, Err(e)) => Err(e),
            (None, Ok(())) => unreachable!("a scoped thread that ran left no result"),
        }
    }

    /// The thread's handle.
    pub fn thread(&self) -> &Thread {
        self.handle.thread()
    }

    /// Whether the thread has finished running its closure.
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }
}

impl<T> std::fmt::Debug for ScopedJoinHandle<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopedJoinHandle").field("thread", self.thread()).finish_non_exhaustive()
    }
}
