//! Mapped guards, as in `parking_lot`: a guard's `map` narrows it to a
//! part of the locked value, keeping the lock until the narrowed guard is
//! dropped.

mod mutex;
mod rwlock;

pub use mutex::MappedMutexGuard;
pub use rwlock::{MappedRwLockReadGuard, MappedRwLockWriteGuard};

/// Ends `guard` in favour of the guard `make` builds from `part`, handing
/// its lock over; or gives `guard` back if there is no part. `part` was
/// picked while `guard` still owned the lock, so a panic there unlocked.
fn hand_over<G, P, M>(guard: G, part: Option<P>, make: impl FnOnce(P) -> M) -> Result<M, G> {
    match part {
        Some(p) => {
            std::mem::forget(guard);
            Ok(make(p))
        }
        None => Err(guard),
    }
}
