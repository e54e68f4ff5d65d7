//! The map behind `GreenLocal`: one per green thread (in its `Task`) and one
//! per plain OS thread. Only the thread that owns it touches it.

use std::any::Any;
use std::cell::UnsafeCell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

/// Values keyed by the address of their `GreenLocal` static. Each value is
/// boxed on its own, so a reference handed out stays valid while later
/// insertions grow the list. The list itself is boxed too: most threads use
/// no green-local, and the map sits in every thread's control block.
#[derive(Default)]
pub(crate) struct LocalMap {
    entries: UnsafeCell<Option<Box<Entries>>>,
}

type Entries = Vec<(usize, *mut (dyn Any + 'static))>;

impl LocalMap {
    /// The value for `key`, created with `init` on first use.
    ///
    /// # Safety
    /// Only the owning thread may call this, and the returned pointer is
    /// valid until [`LocalMap::clear`] or drop, which only that thread does.
    pub(crate) unsafe fn get_or_insert<T: 'static>(&self, key: usize, init: fn() -> T) -> *const T {
        // SAFETY: owner-only access (caller's contract); no borrow of the
        // vector outlives this statement.
        let found =
            unsafe { &*self.entries.get() }.as_deref().and_then(|e| e.iter().find(|(k, _)| *k == key)).map(|&(_, p)| p);
        let p = match found {
            Some(p) => p,
            None => {
                // `init` may itself use other locals: no borrow is held here.
                let p: *mut (dyn Any + 'static) = Box::into_raw(Box::new(init()));
                // SAFETY: as above.
                unsafe { &mut *self.entries.get() }.get_or_insert_default().push((key, p));
                p
            }
        };
        // SAFETY: `p` came from Box::into_raw of a T stored under this key
        // (keys are the addresses of distinct statics of one type each).
        unsafe { (*p).downcast_ref::<T>().map_or(std::ptr::null(), |t| t as *const T) }
    }

    /// Drops every value, newest first; values created while dropping are
    /// dropped too. If a destructor panics, the others are still dropped,
    /// and then the first panic resumes.
    #[inline]
    pub(crate) fn clear(&self) {
        // SAFETY: owner-only access, and the borrow ends at once.
        if unsafe { &*self.entries.get() }.is_some() {
            self.clear_slow();
        }
    }

    #[cold]
    #[inline(never)]
    fn clear_slow(&self) {
        let mut first_panic = None;
        // SAFETY: owner-only access; the list is taken out before any
        // destructor runs, so destructors may use locals again.
        while let Some(entries) = unsafe { &mut *self.entries.get() }.take() {
            if entries.is_empty() {
                break;
            }
            for (_, p) in entries.into_iter().rev() {
                // SAFETY: each pointer came from Box::into_raw and is dropped once.
                let dropped = catch_unwind(AssertUnwindSafe(|| drop(unsafe { Box::from_raw(p) })));
                if let Err(payload) = dropped {
                    first_panic.get_or_insert(payload);
                }
            }
        }
        if let Some(payload) = first_panic {
            resume_unwind(payload);
        }
    }
}

impl Drop for LocalMap {
    fn drop(&mut self) {
        self.clear();
    }
}
