//! Read-copy-update: readers that never lock, wait or write shared cache
//! lines other than their own stripe, and writers that publish new
//! versions beside them.
//!
//! # Design (sleepable RCU, like Linux's SRCU)
//!
//! The current version is an `AtomicPtr`: null means the initial value,
//! stored inline so that [`RcuProtected::new`] is a `const fn` usable in a
//! `static`; every later version is a `Box`. Readers announce themselves in
//! one of two reader counts, chosen by the low bit of an `epoch`; each count
//! is striped over cache lines (`StripedCount`) so that readers on
//! different workers do not fight over one line. A read guard remembers its
//! slot and stripe and takes back its increment there when dropped, so every
//! stripe stays non-negative.
//!
//! - **`read`**: load `epoch`, increment `readers[epoch & 1]`, load the
//!   pointer. No loop, no wait: lock-free, and it never delays a writer's
//!   publication.
//! - **`update`**: under the writer lock (user code runs there, so it is a
//!   [`Mutex`] that parks, not a spin lock), compute the new value from the
//!   current one, publish it with one swap, and put the old version on the
//!   retired list. If both reader counts then read zero, the retired list is
//!   freed on the spot: a reader still holding a retired version
//!   incremented its count before loading the pointer, hence before the
//!   swap, hence before we read the counts, and it is still counted. So
//!   with no reader about, memory is reclaimed without any wait.
//! - **`synchronize`** (grace periods are serialised by a second lock, so
//!   writers keep publishing meanwhile): take the retired list; wait for
//!   `readers[!epoch]` to drain; flip the epoch; wait for
//!   `readers[old epoch]` to drain; free the list. A reader holding a
//!   retired version incremented one of the two counts before the list was
//!   taken, and one of the two waits sees it. New readers go to the count
//!   that is not being waited for, so a stream of them cannot starve the
//!   grace period; only a reader that loaded the epoch before the flip
//!   (at most one per thread) can land in the count being drained.
//!
//! **Memory ordering.** Every operation on the epoch, the counts and the
//! pointer is `SeqCst`: the argument "incremented, then loaded the pointer"
//! against "swapped the pointer, then read the counts" is store buffering,
//! which needs the single total order. A reader's guard drop is a
//! read-modify-write on its stripe, so the writer's load that reads zero
//! synchronises with it (release sequence), and everything the reader did
//! with the version happens before the version is freed.
//!
//! **Waiting.** A grace period waits with back-off — spins, then
//! [`yield_now`](crate::yield_now), then sleeps growing to 1 ms — because
//! the reader it waits for may be a green thread on the same worker.
//!
//! ```
//! use preemptive_mlthreading_rust::sync::RcuProtected;
//!
//! let routes = RcuProtected::new(vec!["a"]);
//! let before = routes.read();
//! routes.update(|old| { let mut v = old.clone(); v.push("b"); v });
//! assert_eq!(*before, ["a"]); // an old reader keeps its version
//! drop(before);
//! routes.synchronize(); // no reader of the old version is left: it is freed
//! assert_eq!(*routes.read(), ["a", "b"]);
//! ```

use super::Mutex;
use super::atomic::{AtomicPtr, AtomicUsize, Ordering, loom_const_fn};
use super::reclaim::{Backoff, Canary, StripedCount, free_box, sb_fence, stripe_index};
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr;

struct Version<T> {
    value: T,
    canary: Canary,
}

/// Versions replaced and not yet freed.
struct Retired<T>(Vec<*mut Version<T>>);

// SAFETY: the pointers are owned boxes of `T`, moved between writers.
unsafe impl<T: Send> Send for Retired<T> {}

impl<T> Retired<T> {
    /// Frees every version.
    ///
    /// # Safety
    /// No reader can still hold any of them.
    unsafe fn free(self) {
        for v in self.0 {
            // SAFETY: per the contract; each came from `Box::into_raw`.
            unsafe { free_box(v, |v| &v.canary) };
        }
    }
}

/// A value read without locks by many threads and replaced by copy and
/// publication ([read-copy-update](self)). Usable in a `static`.
///
/// Readers get a [`RcuReadGuard`] to the version current when they started
/// and keep it, untouched by later updates, until they drop the guard; old
/// versions are freed once no reader can hold them (see the
/// [module docs](self)).
///
/// ```
/// use preemptive_mlthreading_rust::sync::RcuProtected;
///
/// #[derive(Clone)]
/// struct Config { workers: usize }
/// impl Config {
///     const fn default() -> Self { Config { workers: 2 } }
/// }
///
/// static CONFIG: RcuProtected<Config> = RcuProtected::new(Config::default());
///
/// assert_eq!(CONFIG.read().workers, 2);
/// CONFIG.update(|old| Config { workers: old.workers * 2 });
/// CONFIG.synchronize();
/// assert_eq!(CONFIG.read().workers, 4);
/// ```
pub struct RcuProtected<T> {
    /// The initial value; current while `current` is null.
    initial: Version<T>,
    current: AtomicPtr<Version<T>>,
    /// Its low bit picks the reader count new readers use.
    epoch: AtomicUsize,
    readers: [StripedCount; 2],
    /// Serialises writers; holds the versions they retired.
    writer: Mutex<Retired<T>>,
    /// Serialises grace periods.
    grace: Mutex<()>,
}

// SAFETY: owns its `T`s (boxed versions included) like a `Box<T>` would.
unsafe impl<T: Send> Send for RcuProtected<T> {}
// SAFETY: readers on any thread get `&T` (needs `T: Sync`); versions are
// created and dropped by whichever thread updates or synchronises (needs
// `T: Send`).
unsafe impl<T: Send + Sync> Sync for RcuProtected<T> {}

/// A reader's access to the version of an [`RcuProtected`] that was current
/// when [`read`](RcuProtected::read) was called. While it lives, that
/// version is not freed; [`synchronize`](RcuProtected::synchronize) waits
/// for it. Not `Send`: drop it on the thread that took it.
///
/// ```
/// use preemptive_mlthreading_rust::sync::RcuProtected;
///
/// let n = RcuProtected::new(1);
/// let g = n.read();
/// n.update(|v| v + 1);
/// assert_eq!(*g, 1);
/// assert_eq!(*n.read(), 2);
/// ```
///
/// It cannot move to another thread:
///
/// ```compile_fail
/// use preemptive_mlthreading_rust::sync::RcuProtected;
///
/// let n = RcuProtected::new(1);
/// let g = n.read();
/// std::thread::scope(|s| {
///     s.spawn(move || drop(g));
/// });
/// ```
#[must_use = "the version may be freed as soon as the guard is dropped"]
pub struct RcuReadGuard<'a, T> {
    rcu: &'a RcuProtected<T>,
    version: &'a Version<T>,
    slot: usize,
    stripe: usize,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: a shared guard only gives `&T`.
unsafe impl<T: Sync> Sync for RcuReadGuard<'_, T> {}

impl<T> RcuProtected<T> {
    loom_const_fn! {
        /// Protects `value`; a `const fn`, so usable in a `static` with a
        /// value from a `const fn`. Nothing is allocated until the first
        /// update.
        ///
        /// ```
        /// use preemptive_mlthreading_rust::sync::RcuProtected;
        ///
        /// static LIMIT: RcuProtected<u64> = RcuProtected::new(100);
        /// assert_eq!(*LIMIT.read(), 100);
        /// ```
        pub fn new(value: T) -> Self {
            RcuProtected {
                initial: Version { value, canary: Canary::new() },
                current: AtomicPtr::new(ptr::null_mut()),
                epoch: AtomicUsize::new(0),
                readers: [StripedCount::new(), StripedCount::new()],
                writer: Mutex::new(Retired(Vec::new())),
                grace: Mutex::new(()),
            }
        }
    }

    /// Starts reading the current version. Lock-free and wait-free: two
    /// loads and one increment on this worker's stripe; never waits for a
    /// writer, and a writer never waits for it to publish.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::RcuProtected;
    ///
    /// let names = RcuProtected::new(String::from("ada"));
    /// let g = names.read();
    /// assert_eq!(g.len(), 3);
    /// ```
    pub fn read(&self) -> RcuReadGuard<'_, T> {
        let slot = self.epoch.load(Ordering::SeqCst) & 1;
        let stripe = stripe_index();
        self.readers[slot].increment(stripe);
        sb_fence();
        let current = self.current.load(Ordering::SeqCst);
        let version = if current.is_null() {
            &self.initial
        } else {
            // SAFETY: we are counted in `readers` since before the load, so
            // the version is not freed before the guard takes the count back
            // (module docs).
            unsafe { &*current }
        };
        RcuReadGuard { rcu: self, version, slot, stripe, _not_send: PhantomData }
    }

    /// Replaces the value by `f(current)`. Writers are serialised (`f` sees
    /// the latest value and no update is lost); readers are not blocked and
    /// keep the version they hold. The old version is freed at once when
    /// no reader is about, else by the next [`synchronize`](Self::synchronize)
    /// (or a later `update` that finds no reader), or on drop.
    ///
    /// `f` must not call `update` on the same value (it would deadlock);
    /// reading is fine.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::RcuProtected;
    ///
    /// let hits = RcuProtected::new(0u32);
    /// hits.update(|n| n + 1);
    /// hits.update(|n| n + 1);
    /// assert_eq!(*hits.read(), 2);
    /// ```
    pub fn update(&self, f: impl FnOnce(&T) -> T) {
        let mut retired = self.writer.lock();
        // Only writers store `current`, and we hold the writer lock, so the
        // current version stays alive while `f` looks at it.
        let current = self.current.load(Ordering::SeqCst);
        let old_value = if current.is_null() {
            &self.initial.value
        } else {
            // SAFETY: retired (and so freed) only by a writer, under the lock.
            unsafe { &(*current).value }
        };
        let new = Box::into_raw(Box::new(Version { value: f(old_value), canary: Canary::new() }));
        let old = self.current.swap(new, Ordering::SeqCst);
        sb_fence();
        if !old.is_null() {
            retired.0.push(old);
        }
        if self.readers.iter().all(StripedCount::is_zero) {
            // SAFETY: every retired version was replaced by a swap at or
            // before ours; a reader holding one was counted before that swap
            // and would still be counted now.
            unsafe { std::mem::replace(&mut *retired, Retired(Vec::new())).free() };
        }
    }

    /// Waits until every reader that started before this call has dropped
    /// its guard, then frees the versions retired before the call. Readers
    /// that start during the call do not delay it (except one that began
    /// just as the grace period flipped, at most one per thread). Writers
    /// may publish meanwhile; concurrent calls take turns.
    ///
    /// Calling it while this thread holds a guard of the same value never
    /// returns (the grace period waits for that guard), like
    /// `synchronize_rcu` inside a read-side critical section.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::RcuProtected;
    ///
    /// let v = RcuProtected::new(vec![0u8; 1024]);
    /// v.update(|_| vec![1; 1024]);
    /// v.synchronize();
    /// assert_eq!(v.read()[0], 1);
    /// ```
    pub fn synchronize(&self) {
        let _grace = self.grace.lock();
        let retired = std::mem::replace(&mut *self.writer.lock(), Retired(Vec::new()));
        // Orders the swaps that retired these versions (each followed by
        // the writer's fence, which happens before ours) before the counts
        // we read.
        sb_fence();
        // Only changed under `grace`, which we hold.
        let epoch = self.epoch.load(Ordering::SeqCst);
        Backoff::wait_until(|| self.readers[(epoch & 1) ^ 1].is_zero());
        self.epoch.store(epoch.wrapping_add(1), Ordering::SeqCst);
        Backoff::wait_until(|| self.readers[epoch & 1].is_zero());
        // SAFETY: every reader counted before we took the list has left.
        unsafe { retired.free() };
    }
}

impl<T> Drop for RcuProtected<T> {
    /// Drops the current value and every retired version.
    fn drop(&mut self) {
        let current = self.current.load(Ordering::Relaxed);
        let mut retired = std::mem::replace(self.writer.get_mut(), Retired(Vec::new()));
        if !current.is_null() {
            retired.0.push(current);
        }
        // SAFETY: `&mut self`: no guard is alive.
        unsafe { retired.free() };
    }
}

impl<T: Default> Default for RcuProtected<T> {
    /// Protects `T::default()`.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::RcuProtected;
    ///
    /// let r: RcuProtected<Vec<u8>> = Default::default();
    /// assert!(r.read().is_empty());
    /// ```
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T: fmt::Debug> fmt::Debug for RcuProtected<T> {
    /// Shows the current value.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::RcuProtected;
    ///
    /// assert_eq!(format!("{:?}", RcuProtected::new(3)), "RcuProtected(3)");
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RcuProtected").field(&*self.read()).finish()
    }
}

impl<T> Deref for RcuReadGuard<'_, T> {
    type Target = T;

    /// The version current when the guard was taken.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::RcuProtected;
    ///
    /// let r = RcuProtected::new((1, 1));
    /// let g = r.read();
    /// assert_eq!(g.0, g.1);
    /// ```
    fn deref(&self) -> &T {
        self.version.canary.check();
        &self.version.value
    }
}

impl<T> Drop for RcuReadGuard<'_, T> {
    fn drop(&mut self) {
        self.rcu.readers[self.slot].decrement(self.stripe);
    }
}

impl<T: fmt::Debug> fmt::Debug for RcuReadGuard<'_, T> {
    /// Shows the value like `T` does.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::RcuProtected;
    ///
    /// let r = RcuProtected::new("x");
    /// assert_eq!(format!("{:?}", r.read()), "\"x\"");
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::RcuProtected;
    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicUsize, Ordering};
    use loom::thread;

    /// A version whose two halves must agree, counting its drops.
    struct Pair {
        a: usize,
        b: Box<usize>,
        drops: Arc<AtomicUsize>,
    }

    impl Pair {
        fn new(n: usize, drops: &Arc<AtomicUsize>) -> Self {
            Pair { a: n, b: Box::new(n), drops: Arc::clone(drops) }
        }
        fn check(&self) -> usize {
            assert_eq!(self.a, *self.b);
            self.a
        }
    }

    impl Drop for Pair {
        fn drop(&mut self) {
            self.drops.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn start() -> (Arc<RcuProtected<Pair>>, Arc<AtomicUsize>) {
        let drops = Arc::new(AtomicUsize::new(0));
        (Arc::new(RcuProtected::new(Pair::new(0, &drops))), drops)
    }

    fn assert_all_dropped(rcu: Arc<RcuProtected<Pair>>, drops: &AtomicUsize, versions: usize) {
        drop(rcu);
        assert_eq!(drops.load(Ordering::Relaxed), versions);
    }

    /// A reader against two rounds of update + synchronize: the reader's
    /// version is never freed under it (the canary), every version is
    /// dropped once.
    #[test]
    fn loom_rcu_read_vs_update_synchronize() {
        loom::model(|| {
            let (rcu, drops) = start();
            let r = Arc::clone(&rcu);
            let reader = thread::spawn(move || {
                let g = r.read();
                let seen = g.check();
                assert!(seen <= 2);
                seen
            });
            rcu.update(|old| Pair::new(old.a + 1, &drops));
            rcu.synchronize();
            rcu.update(|old| Pair::new(old.a + 1, &drops));
            // A reader that took the epoch before the first flip is in the
            // count this grace period drains first.
            rcu.synchronize();
            reader.join().unwrap();
            assert_eq!(rcu.read().check(), 2);
            assert_all_dropped(rcu, &drops, 3);
        });
    }

    /// Two readers, one holding its guard across a second read, against
    /// updates that free opportunistically (no synchronize at all).
    #[test]
    fn loom_rcu_opportunistic_free() {
        loom::model(|| {
            let (rcu, drops) = start();
            let r = Arc::clone(&rcu);
            let reader = thread::spawn(move || {
                let first = r.read();
                let second = r.read();
                assert!(first.check() <= second.check());
            });
            rcu.update(|old| Pair::new(old.a + 1, &drops));
            rcu.update(|old| Pair::new(old.a + 1, &drops));
            reader.join().unwrap();
            assert_all_dropped(rcu, &drops, 3);
        });
    }

    /// A grace period racing an update on another thread and a reader: the
    /// version the writer retires mid-grace-period is not freed under the
    /// reader either.
    #[test]
    fn loom_rcu_synchronize_races_update() {
        loom::model(|| {
            let (rcu, drops) = start();
            rcu.update(|old| Pair::new(old.a + 1, &drops));
            let r = Arc::clone(&rcu);
            let reader = thread::spawn(move || {
                r.read().check();
            });
            let w = Arc::clone(&rcu);
            let d = Arc::clone(&drops);
            let writer = thread::spawn(move || w.update(|old| Pair::new(old.a + 1, &d)));
            rcu.synchronize();
            reader.join().unwrap();
            writer.join().unwrap();
            assert_all_dropped(rcu, &drops, 3);
        });
    }
}
