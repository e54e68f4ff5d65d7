//! Every live green thread, for thread dumps — once dumps are enabled.
//!
//! Go keeps all goroutines in one list at all times; here a thread is
//! reachable only from wherever it waits (a run queue, a timer, a lock's
//! waiter list), so a dump needs a list of its own, and keeping one costs
//! every spawn and every end a lock. It is kept only after
//! [`enable`] (`metrics::enable_thread_dumps`, or the dump signal): threads
//! spawned before are not listed. When off, a spawn and an end each pay
//! one relaxed load.
//!
//! Entries are raw pointers: the list must not keep threads alive. A
//! thread leaves it in `TaskRef::destroy`, under the lock, before its cell
//! is freed, so a dump holding the lock reads live cells only (their
//! atomics and immutable fields).

use super::task::Task;
use crate::preempt;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(false);

struct Entry(*const Task);
// SAFETY: only read under the registry's lock, while the task is alive
// (see the module docs); `Task` is `Sync`.
unsafe impl Send for Entry {}

static LIVE: Mutex<Option<HashMap<u64, Entry>>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut HashMap<u64, Entry>) -> R) -> R {
    // A green thread holding the lock must not be preempted: a sibling on
    // its worker would wait for an OS thread that sleeps.
    let _np = preempt::disable();
    let mut g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(HashMap::new))
}

/// Keeps the list from now on.
pub(crate) fn enable() {
    ENABLED.store(true, Ordering::SeqCst);
}

pub(crate) fn is_enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// A new thread, alive until [`remove`]d.
#[inline]
pub(crate) fn add(task: &Task) {
    if ENABLED.load(Ordering::Relaxed) {
        add_slow(task)
    }
}

#[cold]
fn add_slow(task: &Task) {
    with(|m| m.insert(task.id.as_u64().get(), Entry(task)));
}

/// `task` is being freed.
#[inline]
pub(crate) fn remove(task: &Task) {
    if ENABLED.load(Ordering::Relaxed) {
        remove_slow(task)
    }
}

#[cold]
fn remove_slow(task: &Task) {
    with(|m| m.remove(&task.id.as_u64().get()));
}

/// Calls `f` on each listed thread, under the lock (`f` must not spawn,
/// drop a thread or block).
pub(crate) fn for_each(mut f: impl FnMut(&Task)) {
    with(|m| {
        for e in m.values() {
            // SAFETY: listed, so alive while we hold the lock (module docs).
            f(unsafe { &*e.0 })
        }
    })
}

/// The name of listed thread `id`, if it has one.
pub(crate) fn name_of(id: u64) -> Option<String> {
    if !is_enabled() {
        return None;
    }
    with(|m| {
        // SAFETY: listed, so alive while we hold the lock.
        m.get(&id).and_then(|e| unsafe { &*e.0 }.spec.name().map(str::to_owned))
    })
}
