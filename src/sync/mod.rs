//! Green-aware synchronisation.
//!
//! Every blocking primitive here parks a waiting green thread, so its
//! worker runs other threads meanwhile, and blocks a waiting plain OS
//! thread; both kinds of thread can share one primitive. The uncontended
//! paths are a single atomic operation and never enter the runtime.
//!
//! Wake-ups are never lost and nothing is handed to a thread that gave up:
//! a timed wait either unlinks itself before anyone decided for it, or
//! takes what it was handed (see `waiter`).
//!
//! The locks carry `parking_lot`'s conveniences: mapped guards
//! ([`MutexGuard::map`]), [`RwLockWriteGuard::downgrade`], upgradable reads
//! ([`RwLock::upgradable_read`]). Their lock words plug into [`lock_api`]:
//! [`RawMutex`] and [`RawRwLock`] implement its raw traits, so code
//! written against `lock_api` (or `parking_lot`'s API) runs on them, and
//! [`ReentrantMutex`] is `lock_api`'s, reentrant per green thread.

mod atomic;
mod barrier;
pub mod channel;
mod condvar;
mod error;
pub(crate) mod lock_free_queue;
pub mod lock_free_stack;
mod mapped;
mod mutex;
pub mod oneshot;
#[cfg(not(loom))]
mod raw_api;
mod raw_mutex;
mod raw_rwlock;
pub mod rcu;
pub(crate) mod reclaim;
#[cfg(not(loom))]
mod reentrant;
mod rwlock;
mod semaphore;
pub(crate) mod spin;
mod upgradable;
mod wait_group;
mod waiter;

pub use barrier::{Barrier, BarrierWaitResult};
pub use condvar::{Condvar, WaitTimeoutResult};
pub use error::{TimedOut, WouldBlock};
pub use lock_free_queue::{LockFreeQueue, QueueFull};
pub use lock_free_stack::LockFreeStack;
pub use mapped::{MappedMutexGuard, MappedRwLockReadGuard, MappedRwLockWriteGuard};
pub use mutex::{Mutex, MutexGuard};
pub use raw_mutex::RawMutex;
pub use raw_rwlock::RawRwLock;
pub use rcu::{RcuProtected, RcuReadGuard};
#[cfg(not(loom))]
pub use reentrant::{RawThreadId, ReentrantMutex, ReentrantMutexGuard};
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use semaphore::{Semaphore, SemaphorePermit};
pub use upgradable::RwLockUpgradableReadGuard;
pub use wait_group::WaitGroup;

#[cfg(all(test, loom))]
mod loom_tests;
