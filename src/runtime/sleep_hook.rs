//! What an OS thread of the runtime gives back before it sleeps. The
//! memory pools (`perf::memory_pools`, a layer above) keep a cache of free
//! buffers per OS thread; a host that sleeps idle, or an idle worker's
//! owner, would keep its cache out of everyone's reach for as long as it
//! sleeps, and a pool whose buffers all sat in such caches stayed
//! exhausted while a thread waited for one (`tests/memory_pools.rs` hung
//! so). The pools install their hand-back here on first use.

use std::sync::OnceLock;

static HOOK: OnceLock<fn()> = OnceLock::new();

/// Installs `f` (once; later calls are ignored).
pub(crate) fn install(f: fn()) {
    let _ = HOOK.set(f);
}

/// Runs the hook, if any: on a runtime OS thread between green threads,
/// about to sleep. One load when nothing is installed.
#[inline]
pub(crate) fn before_sleep() {
    if let Some(f) = HOOK.get() {
        f();
    }
}
