//! Pieces shared by the lock-free structures: the striped counters that keep
//! a hot count off a single cache line, the back-off used by waiting loops,
//! and the canary through which the loom models catch a use after free.

use super::atomic::{AtomicUsize, Ordering};
use crossbeam_utils::CachePadded;

/// How many stripes a striped counter has. Threads are spread over them
/// round robin; a green thread uses the stripe of the worker it runs on.
#[cfg(not(loom))]
pub(crate) const STRIPES: usize = 8;
/// Two stripes are enough for the models to read a sum that is not a
/// snapshot, and keep the state space small.
#[cfg(loom)]
pub(crate) const STRIPES: usize = 2;

/// The stripe of the calling OS thread (a green thread: of its worker).
///
/// Assigned round robin on first use, so workers do not share a stripe
/// while there are no more of them than stripes. A green thread migrating
/// between reading its stripe and using it only costs some contention: the
/// counters are atomic either way.
#[cfg(not(loom))]
#[inline]
pub(crate) fn stripe_index() -> usize {
    use std::sync::atomic::AtomicUsize as StdAtomic;
    static NEXT: StdAtomic = StdAtomic::new(0);
    std::thread_local!(static STRIPE: usize = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % STRIPES);
    STRIPE.with(|s| *s)
}

/// Under loom the assignment must repeat identically in every execution.
#[cfg(loom)]
pub(crate) fn stripe_index() -> usize {
    loom::lazy_static! { static ref NEXT: AtomicUsize = AtomicUsize::new(0); }
    loom::thread_local!(static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES);
    STRIPE.with(|s| *s)
}

/// Orders this thread's preceding store or read-modify-write before its
/// following load against another thread doing the same the other way
/// round (the store-buffering pattern every protocol here rests on).
///
/// Outside loom it is nothing: the operations on both sides are `SeqCst`,
/// whose single total order already forbids both loads missing both
/// stores, and a fence would cost an `mfence` on the readers' fast path.
/// Loom regards `SeqCst` accesses as merely `AcqRel` (its README,
/// "Unsupported features") but does model `fence(SeqCst)`, so under loom it
/// is that fence: the models then check the same protocol with an ordering
/// guarantee C11 gives the real code anyway.
#[inline(always)]
pub(crate) fn sb_fence() {
    #[cfg(loom)]
    loom::sync::atomic::fence(Ordering::SeqCst);
}

/// A count spread over [`STRIPES`] cache lines; each stripe only ever goes
/// up and then down by the same thread's operations, so every stripe stays
/// non-negative and a sum of zero means no increment was outstanding when
/// its stripe was read.
pub(crate) struct StripedCount {
    stripes: [CachePadded<AtomicUsize>; STRIPES],
}

impl StripedCount {
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        StripedCount { stripes: [const { CachePadded::new(AtomicUsize::new(0)) }; STRIPES] }
    }

    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        StripedCount { stripes: std::array::from_fn(|_| CachePadded::new(AtomicUsize::new(0))) }
    }

    /// Adds one to `stripe`.
    #[inline]
    pub(crate) fn increment(&self, stripe: usize) {
        self.stripes[stripe].fetch_add(1, Ordering::SeqCst);
    }

    /// Takes back an [`increment`](Self::increment) of the same stripe.
    #[inline]
    pub(crate) fn decrement(&self, stripe: usize) {
        self.stripes[stripe].fetch_sub(1, Ordering::SeqCst);
    }

    /// Whether every stripe read zero (each read in turn, not a snapshot).
    pub(crate) fn is_zero(&self) -> bool {
        self.stripes.iter().all(|s| s.load(Ordering::SeqCst) == 0)
    }
}

/// Waiting with growing politeness: a few spins (the awaited thread runs on
/// another CPU), then yields (it is a green thread on this worker), then
/// sleeps of growing length up to 1 ms (it was preempted or holds on for
/// long), so a waiter never keeps a worker spinning for good.
pub(crate) struct Backoff {
    step: u32,
}

impl Backoff {
    const SPIN_STEPS: u32 = 6;
    const YIELD_STEPS: u32 = 16;

    pub(crate) fn new() -> Self {
        Backoff { step: 0 }
    }

    /// Waits a little longer than the previous call did.
    pub(crate) fn snooze(&mut self) {
        #[cfg(loom)]
        loom::thread::yield_now();
        #[cfg(not(loom))]
        if self.step < Self::SPIN_STEPS {
            for _ in 0..1u32 << self.step {
                std::hint::spin_loop();
            }
        } else if self.step < Self::YIELD_STEPS {
            crate::yield_now();
        } else {
            let doublings = (self.step - Self::YIELD_STEPS).min(7);
            crate::sleep(std::time::Duration::from_micros(8 << doublings).min(std::time::Duration::from_millis(1)));
        }
        self.step = self.step.saturating_add(1);
    }

    /// Snoozes until `done` returns true.
    pub(crate) fn wait_until(mut done: impl FnMut() -> bool) {
        let mut backoff = Backoff::new();
        while !done() {
            backoff.snooze();
        }
    }
}

/// A marker inside every block a lock-free structure frees: nothing outside
/// the loom models, where it is a loom cell written when the block is
/// "freed" (the models quarantine blocks instead of freeing them). Loom then
/// reports an access that is not ordered before the free as a causality
/// violation, and one ordered after it fails the liveness assertion.
#[cfg(not(loom))]
pub(crate) struct Canary;

#[cfg(loom)]
pub(crate) struct Canary(loom::cell::UnsafeCell<bool>);

#[cfg(not(loom))]
impl Canary {
    pub(crate) const fn new() -> Self {
        Canary
    }
    #[inline(always)]
    pub(crate) fn check(&self) {}
}

#[cfg(loom)]
impl Canary {
    pub(crate) fn new() -> Self {
        Canary(loom::cell::UnsafeCell::new(false))
    }

    /// Asserts the block is still live: a read access to it.
    pub(crate) fn check(&self) {
        // SAFETY: loom checks this read against the write in `kill`.
        self.0.with(|dead| assert!(!unsafe { *dead }, "use after free"));
    }

    /// Marks the block freed: a write access to it.
    pub(crate) fn kill(&self) {
        self.0.with_mut(|dead| {
            // SAFETY: loom checks this write against every access.
            let dead = unsafe { &mut *dead };
            assert!(!*dead, "double free");
            *dead = true;
        });
    }
}

/// Frees a block that came from `Box::into_raw`. Under loom the block is
/// marked dead and its contents dropped, but its memory is leaked, so that
/// a later access is caught rather than undefined (a loom cell has no drop
/// glue of its own).
///
/// # Safety
/// `ptr` came from `Box::into_raw`, is not freed yet, and no thread accesses
/// it after this call.
pub(crate) unsafe fn free_box<T>(ptr: *mut T, canary: impl FnOnce(&T) -> &Canary) {
    #[cfg(loom)]
    {
        // SAFETY: live per the caller's contract.
        canary(unsafe { &*ptr }).kill();
        // SAFETY: live, and never dropped again: the memory is leaked.
        unsafe { std::ptr::drop_in_place(ptr) };
    }
    #[cfg(not(loom))]
    {
        let _ = canary;
        // SAFETY: per the caller's contract.
        drop(unsafe { Box::from_raw(ptr) });
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::{StripedCount, stripe_index};
    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicBool, Ordering};
    use loom::thread;

    /// The property RCU's grace periods rest on, with readers on two
    /// stripes: after "store, then read zero", every thread that "counted
    /// itself in, then loaded" either saw the store or is no longer counted.
    #[test]
    fn loom_counters_count_in_then_load() {
        loom::model(|| {
            let count = Arc::new(StripedCount::new());
            let retired = Arc::new(AtomicBool::new(false));
            let freed = Arc::new(AtomicBool::new(false));
            let readers: Vec<_> = (0..2)
                .map(|_| {
                    let (c, r, f) = (Arc::clone(&count), Arc::clone(&retired), Arc::clone(&freed));
                    thread::spawn(move || {
                        let stripe = stripe_index();
                        c.increment(stripe);
                        super::sb_fence();
                        if !r.load(Ordering::SeqCst) {
                            // Holds the old value: it must not be freed yet.
                            assert!(!f.load(Ordering::SeqCst));
                        }
                        c.decrement(stripe);
                    })
                })
                .collect();
            retired.store(true, Ordering::SeqCst);
            super::sb_fence();
            if count.is_zero() {
                freed.store(true, Ordering::SeqCst);
            }
            readers.into_iter().for_each(|t| t.join().unwrap());
            assert!(count.is_zero());
        });
    }
}
