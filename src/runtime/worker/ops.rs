//! What a green thread calls: yield, sleep, park, exit, and taking a
//! preemption that was deferred.
//!
//! Each is a cooperative point: the thread switches in user space, on the
//! same OS thread or (resumed later) on another host of its worker. Two
//! exceptions keep the thread on its OS thread (`hold.rs`): a thread that
//! unwinds a panic, whose panic count std keeps per OS thread, and a
//! preemption deferred by a preempt-disable scope, which lands at whatever
//! instruction follows the scope. A thread detached from its worker
//! (blocked in the kernel) reattaches first.

use super::hold::{self, Hold};
use super::{Post, Worker};
use crate::preempt::{self, NoPreempt};
use crate::runtime::profile;
use std::time::{Duration, Instant};

pub(super) fn exit_current() -> ! {
    let g = preempt::disable();
    let (w, _) = hold::attached(g.token()).expect("a green thread always runs on a worker");
    w.poll();
    w.poll_io_now_and_then();
    let next = w.next_ready(None);
    // SAFETY: we are the running thread of `w`, preemption is disabled.
    unsafe { w.switch_out(next, Post::Exit) };
    // An exited thread is never resumed.
    std::process::abort()
}

/// `yield_now` for a green thread; false when the caller is not one.
/// Inlined into the caller, with the whole fast path: a call level around
/// the switch is measurable in a yield (bench/README.md, "A call level
/// around the yield").
#[inline(always)]
pub(crate) fn yield_now() -> bool {
    let g = preempt::disable();
    yield_inner(g.token())
}

/// Takes a pending preemption, once the preempt-disable depth is back to
/// zero: `involuntary` when it was deferred from the signal (the thread
/// then keeps its OS thread), else a wake-up preemption inside a runtime
/// call, taken as a yield. Goes round until nothing that outranks the
/// caller was queued while it ran; loops rather than recursing through
/// guard drops.
pub(crate) fn take_pending(mut involuntary: bool) {
    let q = preempt::Quiet::enter();
    loop {
        if involuntary {
            match hold::attached(q.token()) {
                Some((w, _)) => w.preempt_running(false, w.deferred_since_switched()),
                None => return,
            }
        } else if !yield_inner(q.token()) {
            return;
        }
        match preempt::take_pending_kind() {
            preempt::Pending::None => return,
            preempt::Pending::Cooperative => {}
            preempt::Pending::Involuntary => involuntary = true,
        }
    }
}

/// The body of a yield, inside a runtime critical section.
#[inline(always)]
fn yield_inner(np: NoPreempt<'_>) -> bool {
    let Some((w, cur)) = hold::attached(np) else { return false };
    w.poll();
    if std::thread::panicking() {
        // SAFETY: we are the running thread of `w`, preemption is disabled.
        if unsafe { w.hold_switch(Hold::Requeue) } {
            return true;
        }
    }
    let priority = cur.spec.priority;
    // SAFETY: we are the running thread of `w`, preemption is disabled.
    if unsafe { w.rotate_and_switch() } {
        return true;
    }
    match w.next_ready(Some(priority)) {
        // SAFETY: as above.
        Some(next) => unsafe { w.requeue_and_switch(next) },
        // A yield with nobody to yield to is still a scheduling point: the
        // monitor must not take the thread for stuck (or overrunning).
        None => w.count_switch(),
    }
    true
}

/// The calling green thread's code is done: if it is profiled, its profile
/// records its exit (the switch out that follows is not recorded again)
/// and is final from now on.
pub(crate) fn profile_exit_current() {
    let g = preempt::disable();
    if let Some((w, cur)) = hold::attached(g.token())
        && let Some(p) = cur.spec.profile()
    {
        profile::switched_out(p, w.index, profile::SwitchOut::Exit);
        profile::finished(p);
    }
}

/// Drops the calling green thread's `GreenLocal` values.
pub(crate) fn clear_current_locals() {
    if let Some(task) = Worker::current_task_ptr() {
        // SAFETY: the running thread's own task outlives its code.
        unsafe { &*task }.locals.clear();
    }
}

/// `sleep` for a green thread; false when the caller is not one.
pub(crate) fn sleep(dur: Duration) -> bool {
    let Some(deadline) = Instant::now().checked_add(dur) else {
        if Worker::is_green() {
            // Sleeping "forever": park until the end of the process.
            loop {
                park(None);
            }
        }
        return false;
    };
    let g = preempt::disable();
    let Some((w, _)) = hold::attached(g.token()) else { return false };
    w.poll();
    // SAFETY: we are the running thread of `w`, preemption is disabled.
    if std::thread::panicking() && unsafe { w.hold_switch(Hold::Sleep(deadline)) } {
        return true;
    }
    let next = w.next_ready(None);
    // SAFETY: as above.
    unsafe { w.switch_out(next, |t| Post::Sleep(t, deadline)) };
    true
}

/// `park`/`park_timeout` for a green thread; false when the caller is not one.
pub(crate) fn park(timeout: Option<Duration>) -> bool {
    let g = preempt::disable();
    let Some((w, cur)) = hold::attached(g.token()) else { return false };
    if cur.park.try_consume() {
        return true;
    }
    let deadline = match timeout {
        Some(Duration::ZERO) => return true,
        Some(d) => Instant::now().checked_add(d),
        None => None,
    };
    w.poll();
    w.poll_io_now_and_then();
    // SAFETY: we are the running thread of `w`, preemption is disabled.
    if std::thread::panicking() && unsafe { w.hold_switch(Hold::Park(deadline)) } {
        return true;
    }
    let next = w.next_ready(None);
    // SAFETY: as above.
    unsafe { w.switch_out(next, |t| Post::Park(t, deadline)) };
    true
}
