//! Hosts taking a worker over from one another (see `runtime::host` for
//! why and the hand-over protocol). The host threads' own scheduling loop
//! is in `host_loop.rs`.
//!
//! Three ways a thread keeps its OS thread while the worker goes on:
//! - [`Worker::preempt_running`]: an involuntary switch (the preemption
//!   signal, or a preemption deferred until a preempt-disable scope ended).
//!   The thread is requeued and its host sleeps, *held*.
//! - [`Worker::hold_switch`]: a cooperative switch (yield, park, sleep) by
//!   a thread that is unwinding a panic: held likewise.
//! - [`Worker::detach_running`]: a thread blocked in the kernel; its host
//!   keeps it and goes on without the worker, *detached*, until the thread
//!   [reattaches](reattach) at its next runtime call.
//!
//! Whoever then picks a held thread hands it the worker: the scheduling
//! loop directly ([`Worker::hand_to_held`]), a green thread through its
//! host's scheduling context (`switch.rs`), and a preempting host by waking
//! it in place of an idle host.

use super::host_loop::{arc_of, spawn_host};
use super::{Local, Post, Worker};
use crate::arch::preempt_word;
use crate::preempt::{self, NoPreempt};
use crate::runtime::host::{self, Held, Host, HostState};
use crate::runtime::monitor;
use crate::runtime::profile::{self, SwitchOut};
use crate::runtime::task::TaskRef;
use crate::runtime::timers::TimerKind;
use std::mem;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// What a held thread was doing when its host took it out of the worker.
pub(super) enum Hold {
    /// Preempted or yielding: back on the run queue.
    Requeue,
    /// Parking, with an optional deadline.
    Park(Option<Instant>),
    /// Sleeping until the deadline.
    Sleep(Instant),
}

/// How long [`Worker::pick_or_start_host`] waits for the host it started
/// to be idle before it gives up (the caller then defers, and the monitor's
/// host starter carries on).
const HOST_START_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether a task's host keeps it.
///
/// # Safety
/// The caller owns the task's execution state (see `Task::exec`).
#[inline]
pub(super) unsafe fn is_held(t: &TaskRef) -> bool {
    // SAFETY: the caller's contract.
    unsafe { t.exec() }.held_by().is_some()
}

/// Why the signal handler's pick found no thread to preempt for.
enum NoPick {
    /// The monitor's reason has passed.
    Stale,
    /// Nothing else of the running thread's level or above waits.
    NothingElse,
}
use NoPick::{NothingElse, Stale};

impl Worker {
    /// The host owning this worker. Owner only.
    fn owner(&self) -> &Host {
        // SAFETY: the caller owns the worker; `host` is set by `adopt`
        // before any use, and hosts live as long as the worker.
        unsafe { &*self.with_local(|l| l.host) }
    }

    /// Step 3 of the hand-over: host `me` now owns the worker.
    /// Async-signal-safe.
    pub(super) fn adopt(&self, me: &Host) {
        preempt_word::set_worker(self as *const Worker as usize);
        host::set_detached(std::ptr::null());
        // SAFETY: we own the worker from now on.
        unsafe { self.with_local(|l| l.host = me) };
        me.set_state(HostState::Owner);
        self.watch.tid.store(me.tid.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// A held host, handed the worker, resumes its own thread `t`.
    /// Async-signal-safe: the giver left no post-switch work.
    fn resume_held(&self, me: &Host, t: TaskRef) {
        self.adopt(me);
        // SAFETY: we own the worker; nothing below re-enters it.
        debug_assert!(unsafe { self.with_local(|l| matches!(l.post, Post::None)) }, "a hand-over leaves no post");
        debug_assert_eq!(t.worker(), self.index, "a held thread stays on its worker");
        t.set_held(false);
        if let Some(p) = t.spec.profile() {
            // Maybe in a signal handler: no opening of counters.
            profile::switched_in(p, self.index, false);
        }
        let priority = t.spec.priority;
        self.publish_running(&t);
        // SAFETY: as above.
        unsafe { self.with_local(|l| l.current = Some(t)) };
        self.started_running();
        // SAFETY: as above.
        if unsafe { self.with_local(|l| self.missed_wake_up(&mut l.runq, priority)) } {
            // The thread resumes at an arbitrary instruction: the next
            // switch must keep its OS thread too.
            preempt::set_pending_involuntary();
        }
    }

    /// Who takes the worker so that `next` runs: the host keeping `next`
    /// if it is held (claimed: the caller hands the worker over next, with
    /// nothing on the way that may block), else an idle host (which starts
    /// with `next`, or with its scheduling loop for None; also when `next`
    /// was held by a host since released, see [`claim`]). Hands `next` back
    /// when no host is free, having asked the monitor for one. Owner only;
    /// async-signal-safe.
    fn pick_host(&self, mut next: Option<TaskRef>) -> Result<(&Host, Option<TaskRef>), Option<TaskRef>> {
        if let Some(n) = next.take() {
            // SAFETY: `n` came off our run queue.
            match unsafe { claim(n) } {
                // SAFETY: as above; a held task's host lives as long as the
                // worker.
                Some(n) if unsafe { is_held(&n) } => {
                    // SAFETY: as above.
                    let h = unsafe { &*n.exec().held_by().expect("held") };
                    return Ok((h, Some(n)));
                }
                n => next = n,
            }
        }
        match self.hosts.pop_idle() {
            Some(h) => {
                if !self.hosts.has_idle() {
                    self.hosts.want();
                }
                Ok((h, next))
            }
            None => {
                self.hosts.want();
                Err(next)
            }
        }
    }

    /// When no host is free for `next`: a held thread of `next`'s priority
    /// or above (of `min` or above when there is no `next`) needs none (its
    /// own host takes the worker), so it runs instead and `next` waits at
    /// the front of its level; a held thread of lower priority than `next`
    /// does not jump ahead of it. Without this, a
    /// worker whose hosts are all taken could never resume the held thread
    /// that holds what the host starter waits for (an allocator's lock, in
    /// a thread start): preemption would stop there for good. Owner only;
    /// async-signal-safe.
    fn held_instead(&self, next: Option<TaskRef>, min: u8) -> Result<(&Host, Option<TaskRef>), Option<TaskRef>> {
        let min = next.as_ref().map_or(min, |n| n.spec.priority.max(min));
        let held = loop {
            // SAFETY: we own the worker; nothing here re-enters it.
            let Some(held) = (unsafe { self.with_local(|l| l.runq.take_first(min, |t| t.is_held())) }) else {
                return Err(next);
            };
            // SAFETY: it came off our run queue.
            if let Some(held) = unsafe { claim(held) } {
                break held;
            }
        };
        if let Some(n) = next {
            // SAFETY: as above.
            unsafe { self.with_local(|l| l.runq.push_front(n)) };
        }
        // SAFETY: the task came off our run queue; a held task's host lives
        // as long as the worker.
        let h = unsafe { &*held.exec().held_by().expect("held") };
        Ok((h, Some(held)))
    }

    /// [`Worker::pick_host`] from normal code: when no host is idle, starts
    /// one here and now (unless the worker has as many as it may) and
    /// waits, a bounded time, until it is idle. The worker is never handed
    /// to a host still starting: std and libc may allocate or lock there
    /// (an arena's lock, the output capture), perhaps waiting for a thread
    /// held on this very worker, and with the worker handed over the
    /// monitor would take it for idle and release nobody. Waiting here
    /// instead, this owner stays stuck in plain sight: the monitor releases
    /// the held threads if the start does not finish.
    fn pick_or_start_host(&self, next: Option<TaskRef>) -> Result<(&Host, Option<TaskRef>), Option<TaskRef>> {
        let mut next = match self.pick_host(next) {
            Ok(found) => return Ok(found),
            Err(back) => back,
        };
        let Some(pool) = self.pool() else { return Err(next) };
        // SAFETY: the pool is alive (we run on it); a clone of its Arc is
        // what a host thread keeps.
        let pool = unsafe { arc_of(pool) };
        match spawn_host(&pool, self.index, true) {
            Ok(Some(_)) => {}
            Ok(None) => return Err(next),
            Err(e) => {
                log::warn!("worker {}: cannot start another host thread: {e}", self.index);
                return Err(next);
            }
        }
        let start = Instant::now();
        while start.elapsed() < HOST_START_WAIT {
            // `next` is no held thread (pick_host took those): no claim is
            // pending while we wait.
            next = match self.pick_host(next) {
                Ok(found) => return Ok(found),
                Err(back) => back,
            };
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
        Err(next)
    }

    /// An involuntary switch of the running thread: called by the signal
    /// handler (`in_handler`: only async-signal-safe code, and `stale` when
    /// the monitor's reason may have passed), or when a deferred preemption
    /// is taken at the end of a preempt-disable scope. If a thread should
    /// run instead, the running one is requeued and keeps its OS thread,
    /// which sleeps until the thread is picked again.
    pub(super) fn preempt_running(&self, in_handler: bool, stale: bool) {
        // SAFETY: we own the worker (callers run on its owner, at depth
        // >= 1); no borrow below spans a call that re-enters.
        let Some(priority) = (unsafe { self.with_local(|l| l.current.as_ref().map(|c| c.spec.priority)) }) else {
            return;
        };
        let next = if in_handler {
            // The worker looks at its queue now: a wake-up that was urgent
            // is dealt with here, or deferred again below.
            self.watch.urgent.store(false, Ordering::Relaxed);
            let pick = |l: &mut Local| {
                self.take_inbox(&mut l.runq);
                if l.timers.due(Instant::now()).is_some_and(|p| p >= priority) {
                    // A sleeper of this priority or higher is due: the next
                    // host fires the timers (that may drop tasks, which a
                    // handler must not) and picks.
                    Ok(None)
                } else if stale && l.runq.top_priority().is_none_or(|top| top <= priority) {
                    // The monitor judged a thread that has switched out since.
                    Err(Stale)
                } else {
                    l.runq.pop(Some(priority)).map(Some).ok_or(NothingElse)
                }
            };
            // SAFETY: as above.
            let picked = unsafe { self.with_local(pick) };
            match picked {
                Ok(next) => next,
                Err(Stale) => return,
                Err(NothingElse) => {
                    // Work stealing: nothing waits here, and the thread has
                    // run a while; ask for a share of another's queue.
                    self.request_steal();
                    return self.renew_slice();
                }
            }
        } else {
            self.poll();
            // SAFETY: as above.
            if stale && unsafe { self.with_local(|l| l.runq.top_priority().is_none_or(|top| top <= priority)) } {
                // Deferred for a thread that has switched out since.
                return;
            }
            match self.next_ready(Some(priority)) {
                Some(n) => Some(n),
                None => return self.renew_slice(),
            }
        };
        let outranks = next.as_ref().is_some_and(|n| n.spec.priority > priority);
        let picked = if in_handler { self.pick_host(next) } else { self.pick_or_start_host(next) }
            .or_else(|next| self.held_instead(next, priority));
        match picked {
            Ok((to, first)) => {
                self.watch.preemptions.fetch_add(1, Ordering::Relaxed);
                // SAFETY: we own the worker and the running thread is its current.
                unsafe { self.hold(to, first, Hold::Requeue, true) }
            }
            Err(next) => {
                // No host free: the thread runs on until the monitor, which
                // starts a host, tries again.
                if let Some(n) = next {
                    // SAFETY: as above.
                    unsafe { self.with_local(|l| l.runq.push_front(n)) };
                }
                self.defer_for_host(outranks);
            }
        }
    }

    /// No host was free to take the worker: counts a deferred preemption,
    /// and has the monitor start a host (unless the worker has as many as
    /// it may) and try again, soon (`outranks`: a thread of higher priority
    /// waits) or after its usual back-off. Async-signal-safe.
    fn defer_for_host(&self, outranks: bool) {
        self.watch.deferred.fetch_add(1, Ordering::Relaxed);
        if outranks {
            self.watch.urgent.store(true, Ordering::SeqCst);
        }
        if self.hosts.live() < host::MAX_HOSTS_PER_WORKER {
            self.hosts.want();
            monitor::urgent();
        } else {
            // Every OS thread the worker may have is taken.
            self.watch.no_host.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A cooperative switch by a thread that must keep its OS thread (it is
    /// unwinding a panic, and std counts panics per OS thread). False when
    /// no host could take the worker: the caller switches in place.
    ///
    /// # Safety
    /// Called by the running green thread of `self`, preemption disabled.
    pub(super) unsafe fn hold_switch(&self, what: Hold) -> bool {
        // SAFETY: we are the running thread; the borrow ends here.
        let Some(priority) = (unsafe { self.with_local(|l| l.current.as_ref().map(|c| c.spec.priority)) }) else {
            return false;
        };
        self.poll();
        let next = match what {
            Hold::Requeue => match self.next_ready(Some(priority)) {
                Some(n) => Some(n),
                // A yield with nobody to yield to.
                None => {
                    self.count_switch();
                    return true;
                }
            },
            _ => self.next_ready(None),
        };
        if matches!(what, Hold::Sleep(_) | Hold::Park(Some(_))) {
            // The timer goes in after the next thread's host is claimed,
            // when nothing may allocate any more (see `claim`).
            // SAFETY: as above.
            unsafe { self.with_local(|l| l.timers.reserve_one()) };
        }
        let min = if matches!(what, Hold::Requeue) { priority } else { 0 };
        match self.pick_or_start_host(next).or_else(|next| self.held_instead(next, min)) {
            Ok((to, first)) => {
                // SAFETY: the caller's contract.
                unsafe { self.hold(to, first, what, false) };
                true
            }
            Err(next) => {
                if let Some(n) = next {
                    // SAFETY: as above.
                    unsafe { self.with_local(|l| l.runq.push_front(n)) };
                }
                static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
                if !WARNED.swap(true, Ordering::Relaxed) {
                    log::warn!(
                        "worker {}: no OS thread could take the worker over from a thread unwinding a panic; it \
                         switches in place, and its panic count is seen by the thread that runs next",
                        self.index
                    );
                }
                false
            }
        }
    }

    /// Takes the running thread out of the worker, keeping it on this OS
    /// thread, hands the worker to `to` (to start with `first`), and sleeps
    /// until the thread is picked again; returns with the worker owned
    /// again and the thread running. Async-signal-safe for `Hold::Requeue`.
    /// `preempted`: the thread did not ask to switch (its profile says so).
    ///
    /// # Safety
    /// The caller owns the worker, its running thread is the caller, and no
    /// post-switch work is pending.
    unsafe fn hold(&self, to: &Host, first: Option<TaskRef>, what: Hold, preempted: bool) {
        let me = self.owner();
        // SAFETY: the caller's contract; one-statement borrows.
        let cur = unsafe { self.with_local(|l| l.current.take()) }.expect("a held thread is the running one");
        if let Some(p) = cur.spec.profile() {
            let why = match what {
                Hold::Requeue if preempted => SwitchOut::Preempted,
                Hold::Requeue => SwitchOut::Yield,
                Hold::Park(_) => SwitchOut::Park,
                Hold::Sleep(_) => SwitchOut::Sleep,
            };
            profile::switched_out(p, self.index, why);
        }
        // Step 4: before the thread can be found and handed back to us. A
        // requeued thread may have been stopped anywhere (inside malloc,
        // say): the monitor may release it. A parked or sleeping one is
        // not runnable, and made the runtime call itself.
        if matches!(what, Hold::Requeue) {
            me.expect_turn_releasable(TaskRef::as_ptr(&cur));
        } else {
            me.expect_turn();
        }
        me.set_state(HostState::Held);
        // SAFETY: the running thread's state is ours.
        let exec = unsafe { cur.exec() };
        exec.hold(me);
        cur.set_held(true);
        match what {
            // SAFETY: as above.
            Hold::Requeue => unsafe {
                self.with_local(|l| {
                    l.runq.push(cur);
                    self.publish_waiting(&l.runq);
                })
            },
            Hold::Park(deadline) => self.commit_park(cur, deadline),
            Hold::Sleep(deadline) => {
                cur.set_sleeping(true);
                self.add_timer(deadline, TimerKind::Sleep, cur)
            }
        }
        self.bell.running.store(false, Ordering::SeqCst);
        // A stray signal on a held host finds no worker to act on.
        preempt_word::set_worker(0);
        // SAFETY: we give the worker up and touch it no more until resumed.
        unsafe { to.hand_worker(first) };
        match me.wait_held() {
            Held::Run(t) => self.resume_held(me, t),
            // SAFETY: on this host's own OS thread.
            Held::Release => unsafe { run_released(me) },
        }
    }

    /// The monitor found this worker's owner blocked in the kernel: from
    /// the signal handler, gives the worker to another host and lets the
    /// running thread go on (back into its syscall) on this OS thread,
    /// without a worker. Async-signal-safe.
    pub(super) fn detach_running(&self) {
        // SAFETY: the handler runs on the owner, at depth 1.
        if unsafe { self.with_local(|l| l.current.is_none()) } {
            return;
        }
        // SAFETY: as above.
        let next = unsafe { self.with_local(|l| l.runq.pop(None)) };
        let (to, first) = match self.pick_host(next).or_else(|next| self.held_instead(next, 0)) {
            Ok(found) => found,
            Err(next) => {
                if let Some(n) = next {
                    // SAFETY: as above.
                    unsafe { self.with_local(|l| l.runq.push_front(n)) };
                }
                // Try again at the next signal.
                self.watch.detach.store(true, Ordering::Relaxed);
                self.defer_for_host(false);
                return;
            }
        };
        let me = self.owner();
        // SAFETY: as above; checked above.
        let cur = unsafe { self.with_local(|l| l.current.take()) }.expect("checked above");
        self.watch.handed_off_id.store(cur.id.as_u64().get(), Ordering::Relaxed);
        // SAFETY: the handler runs on this host's own OS thread.
        unsafe { me.keep(cur) };
        me.set_state(HostState::Detached);
        me.clear_recall();
        me.probe_cpu_ns.store(0, Ordering::Relaxed);
        host::set_detached(me);
        self.bell.running.store(false, Ordering::SeqCst);
        preempt_word::set_worker(0);
        self.watch.hand_offs.fetch_add(1, Ordering::Relaxed);
        // SAFETY: we give the worker up.
        unsafe { to.hand_worker(first) };
    }
}

/// A detached host's thread calls into the runtime, or the monitor saw it
/// running without its worker and recalled it (`recalled`: the signal
/// stopped it at an arbitrary instruction): queue it on its worker like a
/// woken thread, and sleep until it is picked. A recalled thread may hold
/// an allocator lock that the owner then waits for, so its host stays
/// releasable, as after a preemption. Called at preempt depth >= 1.
/// Async-signal-safe.
pub(super) fn reattach(me: &Host, recalled: bool) {
    // SAFETY: the caller runs on this host's own OS thread.
    let Some(mut t) = (unsafe { me.take_kept() }) else { return };
    // The pool outlives its live threads, and `t` is one.
    let pool = Arc::as_ptr(&t.pool);
    // SAFETY: as just argued.
    let Some(w) = (unsafe { &*pool }).worker(t.worker()) else { unreachable_abort("a thread's worker exists") };
    let releasable = |t: &TaskRef| if recalled { TaskRef::as_ptr(t) } else { std::ptr::null() };
    if me.state() == HostState::Released {
        // `t` is our own reference; the queue entry holds another, so
        // dropping ours frees nothing (no destructor in a handler).
        match me.wait_again(releasable(&t)) {
            None => {
                // Its entry is still queued: wait for the worker to come to it.
                drop(t);
                host::set_detached(std::ptr::null());
                return wait_reattached(me, w);
            }
            // The owner picked the entry while we ran: queue it again.
            Some(entry) => drop(mem::replace(&mut t, entry)),
        }
    }
    if recalled {
        me.expect_turn_releasable(TaskRef::as_ptr(&t));
    } else {
        me.expect_turn();
    }
    me.set_state(HostState::Held);
    // SAFETY: a detached (or unqueued) thread's state belongs to its host,
    // the caller.
    let exec = unsafe { t.exec() };
    exec.hold(me);
    t.set_held(true);
    host::set_detached(std::ptr::null());
    w.inject(t);
    wait_reattached(me, w);
}

/// A reattaching host waits for its turn: handed the worker, it resumes
/// its thread; released (only after a recall), the thread runs on without
/// the worker once more.
fn wait_reattached(me: &Host, w: &Worker) {
    match me.wait_held() {
        Held::Run(t) => w.resume_held(me, t),
        // SAFETY: on our own OS thread, right after the release.
        Held::Release => unsafe { run_released(me) },
    }
}

/// `t`, popped off the run queue, if it can be run: a held thread whose
/// host was released is left with its host instead (see [`Host::claim`]),
/// and None says to pick another. A claimed host can no longer be
/// released, so the caller hands the worker over right after, with nothing
/// in between that may block (allocate, free, lock). Owner only;
/// async-signal-safe.
///
/// # Safety
/// The caller owns the worker and `t` came off its run queue.
#[inline]
pub(super) unsafe fn claim(t: TaskRef) -> Option<TaskRef> {
    // SAFETY: the caller's contract.
    match unsafe { t.exec() }.held_by() {
        None => Some(t),
        // SAFETY: a held task's host lives as long as the worker; the
        // caller's contract is `claim`'s.
        Some(h) => unsafe { (*h).claim(t) },
    }
}

/// A held host was released ([`Host::release`]): its thread goes on without
/// the worker, as a detached one, until its next runtime call.
///
/// # Safety
/// On `me`'s own OS thread, right after [`Held::Release`].
unsafe fn run_released(me: &Host) {
    // SAFETY: the caller's contract.
    unsafe { me.keep_released() };
    me.clear_recall();
    // CPU used before the release is no sign that the thread left the
    // kernel since (see `recall_detached`).
    me.probe_cpu_ns.store(0, Ordering::Relaxed);
    host::set_detached(me);
}

/// The running green thread's worker, reattaching a detached thread first;
/// None on a plain OS thread.
#[inline]
pub(super) fn attached(np: NoPreempt<'_>) -> Option<(&'static Worker, &TaskRef)> {
    match Worker::current_task(np) {
        Some(found) => Some(found),
        None => reattach_slow(np),
    }
}

#[cold]
#[inline(never)]
fn reattach_slow(np: NoPreempt<'_>) -> Option<(&'static Worker, &TaskRef)> {
    reattach(host::detached()?, false);
    Worker::current_task(np)
}

/// Reports a broken runtime invariant and aborts: not a panic, since this
/// runs in signal handlers and on held threads. Async-signal-safe.
#[cold]
pub(super) fn unreachable_abort(what: &'static str) -> ! {
    for part in ["fatal runtime error: ", what, "; aborting\n"] {
        // SAFETY: write(2) of a string we own.
        unsafe { libc::write(2, part.as_ptr().cast(), part.len()) };
    }
    std::process::abort()
}
