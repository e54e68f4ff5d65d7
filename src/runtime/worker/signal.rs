//! The preemption signal's handler, on the worker's side, and the stack
//! overflow reporter's lookup.
//!
//! The handler runs on the interrupted green thread's own stack, with the
//! signal blocked, at whatever instruction the thread was: only
//! async-signal-safe code may run here (no allocation, no lock the thread
//! could hold, no destructor). When it decides to switch, the thread keeps
//! this OS thread and sleeps in the handler (`hold.rs`); the kernel's signal
//! frame holds its complete register state, restored by `rt_sigreturn` when
//! it is resumed.

use super::Worker;
use super::hold;
use crate::preempt;
use crate::runtime::host::{self, Host};
use std::mem;
use std::sync::atomic::Ordering;

/// The preemption signal arrived on this OS thread.
pub(crate) fn on_preempt_signal() {
    let Some(w) = Worker::current() else {
        // Not an owner: a detached (or released) host whose thread runs
        // without its worker goes back to it when the monitor recalls it.
        // A signal sent while the host still owned the worker, and left
        // pending while it was held, is no recall: a released thread must
        // run on until it frees what the stuck owner waits for.
        if host::detached().is_some_and(Host::take_recall) {
            if preempt::depth() == 0 {
                preempt::set_depth(1);
                if let Some(me) = host::detached() {
                    hold::reattach(me, true);
                }
                take_pending_in_handler();
                preempt::set_depth(0);
            } else {
                preempt::set_pending_involuntary();
            }
        }
        return;
    };
    if !w.bell.running.load(Ordering::Relaxed) {
        // The scheduling context: nothing to preempt, nor to detach; it
        // answers steal requests itself.
        w.watch.detach.store(false, Ordering::Relaxed);
        w.watch.steal_only.store(false, Ordering::Relaxed);
        return;
    }
    // A steal-only mark (a thief's nudge, or the monitor's) must not
    // swallow a wake-up preemption that arrived with it (`urgent`).
    if w.watch.steal_only.swap(false, Ordering::SeqCst) && !w.watch.urgent.load(Ordering::SeqCst) {
        // Only a steal request to answer; inside a critical section it
        // waits for the next scheduling point, or the monitor's next try.
        if preempt::depth() == 0 {
            preempt::set_depth(1);
            w.serve_steal(true);
            w.offer_work();
            preempt::set_depth(0);
        }
        return;
    }
    if preempt::depth() != 0 {
        // In a runtime or user critical section: taken when it ends, if
        // the same thread still runs then.
        w.watch.deferred_at.store(w.switches(), Ordering::Relaxed);
        preempt::set_pending_involuntary();
        w.watch.deferred.fetch_add(1, Ordering::Relaxed);
        return;
    }
    preempt::set_depth(1);
    // Outside any scope now: an earlier deferral of this thread (one that
    // landed in its first instructions, say) no longer describes it, for
    // `running_thread` (a LongRun alert said "in a preempt-disable scope"
    // of a plain spinning thread under qemu), and this signal is taken
    // here rather than at that scope's end.
    w.watch.deferred_at.store(u64::MAX, Ordering::Relaxed);
    // SAFETY: on the owner, at depth 1: the interrupted code was in no
    // runtime critical section, so nothing borrows the local state.
    if let Some(id) = unsafe { w.with_local(|l| l.current.as_ref().map(|c| c.id.as_u64().get())) } {
        w.watch.running_id.store(id, Ordering::Relaxed);
        w.watch.running_id_at.store(w.switches(), Ordering::Relaxed);
    }
    w.serve_steal(true);
    w.offer_work();
    // A detach asked for a stall that has ended since (the worker switched)
    // is dropped: this is a plain preemption signal then.
    if w.watch.detach.swap(false, Ordering::Relaxed) && w.watch.detach_at.load(Ordering::Relaxed) == w.switches() {
        w.detach_running();
    } else {
        let stale = w.switches() != w.watch.signalled_at.load(Ordering::SeqCst);
        w.preempt_running(true, stale);
        take_pending_in_handler();
    }
    preempt::set_depth(0);
}

/// Once resumed inside the handler: if something that outranks the thread
/// was queued meanwhile, go round again rather than return to the
/// interrupted code with it waiting.
fn take_pending_in_handler() {
    while preempt::take_pending_kind() != preempt::Pending::None {
        match Worker::current() {
            Some(w) => w.preempt_running(true, false),
            None => return,
        }
    }
}

/// Stack-overflow lookup for the SIGSEGV handler: the name and the stack
/// bottom (guard page and signal reserve) of the green thread running on
/// this OS thread, for the handler to classify the fault.
pub(crate) fn guard_lookup() -> Option<(&'static [u8], crate::stack::Bottom)> {
    let w = crate::arch::preempt_word::worker() as *const Worker;
    // SAFETY: read-only peek from a signal handler on the worker's owner
    // (or a detached host's thread); a worker outlives its hosts' execution.
    let task = match unsafe { w.as_ref() } {
        // SAFETY: as above; we only read `current` and its stack bounds.
        Some(w) => unsafe { (*w.local.get()).current.as_ref() }?,
        // SAFETY: this OS thread is the detached host.
        None => unsafe { host::detached()?.kept() }?,
    };
    // SAFETY: the task is the one running here, so its state is ours to read.
    let bottom = unsafe { task.exec() }.stack.as_ref()?.bottom();
    // SAFETY: the name lives as long as the task, which lives until the
    // process aborts right after the handler prints it (or, when the fault
    // is not an overflow, until the handler returns).
    Some((unsafe { mem::transmute::<&[u8], &'static [u8]>(task.name_bytes()) }, bottom))
}
