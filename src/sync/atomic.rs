//! The atomics, cells and parking the synchronisation code is written
//! against: std's normally, loom's when the crate is built with
//! `--cfg loom` so that the lock-free protocols can be model-checked.

// `AtomicPtr` and `AtomicU32` are not used by every build yet.
#[allow(unused_imports)]
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU32, AtomicUsize, Ordering};

#[allow(unused_imports)]
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU32, AtomicUsize, Ordering};

/// The hint inside a spin loop. Under loom a spin must let the model run
/// someone else, or it would explore one thread spinning forever.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(not(loom))]
    std::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// Declares a function `const` except under loom, whose atomics have no
/// const constructors. The loom models build their values at run time.
macro_rules! loom_const_fn {
    ($(#[$m:meta])* $vis:vis fn $name:ident $(<$($g:tt),*>)? ($($args:tt)*) -> $ret:ty $body:block) => {
        #[cfg(not(loom))]
        $(#[$m])* $vis const fn $name $(<$($g),*>)? ($($args)*) -> $ret $body
        #[cfg(loom)]
        $(#[$m])* $vis fn $name $(<$($g),*>)? ($($args)*) -> $ret $body
    };
}
pub(crate) use loom_const_fn;
