use super::condvar::Condvar;
use super::mutex::Mutex;
use std::fmt;

/// Lets `n` threads wait until all of them have arrived, then releases them
/// together; reusable for the next round at once. Waiting parks a green
/// thread (or blocks an OS thread).
///
/// ```
/// use preemptive_mlthreading_rust::{spawn, sync::Barrier};
/// use std::sync::Arc;
///
/// let barrier = Arc::new(Barrier::new(4));
/// let hs: Vec<_> = (0..4).map(|_| {
///     let b = Arc::clone(&barrier);
///     spawn(move || b.wait().is_leader()).unwrap()
/// }).collect();
/// let leaders = hs.into_iter().map(|h| h.join().unwrap()).filter(|&l| l).count();
/// assert_eq!(leaders, 1);
/// ```
pub struct Barrier {
    n: usize,
    state: Mutex<Round>,
    all_arrived: Condvar,
}

struct Round {
    arrived: usize,
    generation: u64,
}

/// What [`Barrier::wait`] tells one thread.
#[derive(Debug, Clone, Copy)]
pub struct BarrierWaitResult(bool);

impl BarrierWaitResult {
    /// True for exactly one thread of each round: the last to arrive.
    pub fn is_leader(&self) -> bool {
        self.0
    }
}

impl Barrier {
    /// A barrier for `n` threads (0 behaves like 1: `wait` returns at once).
    #[cfg(not(loom))]
    pub const fn new(n: usize) -> Self {
        Barrier { n, state: Mutex::new(Round { arrived: 0, generation: 0 }), all_arrived: Condvar::new() }
    }

    #[cfg(loom)]
    pub fn new(n: usize) -> Self {
        Barrier { n, state: Mutex::new(Round { arrived: 0, generation: 0 }), all_arrived: Condvar::new() }
    }

    /// Waits until `n` threads have called `wait` in this round.
    pub fn wait(&self) -> BarrierWaitResult {
        let mut round = self.state.lock();
        round.arrived += 1;
        if round.arrived >= self.n {
            round.arrived = 0;
            round.generation = round.generation.wrapping_add(1);
            drop(round);
            self.all_arrived.notify_all();
            return BarrierWaitResult(true);
        }
        let mine = round.generation;
        let _round = self.all_arrived.wait_while(round, |r| r.generation == mine);
        BarrierWaitResult(false)
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier").field("n", &self.n).finish_non_exhaustive()
    }
}

// Its internal state stays consistent if a panic unwinds through a waiter.
impl std::panic::RefUnwindSafe for Barrier {}
impl std::panic::UnwindSafe for Barrier {}
