//! A host OS thread's life: its start (`spawn_host`), its scheduling loop
//! while it owns the worker ([`Worker::run_turn`]), the hand-over from that
//! loop to a held thread's host, and the worker's retirement when its pool
//! is finished. How hosts take the worker from one another is in `hold.rs`.

use super::Worker;
use super::hold::{claim, is_held};
use crate::arch::preempt_word;
use crate::preempt;
use crate::runtime::cpu;
use crate::runtime::host::Host;
use crate::runtime::pool::Pool;
use crate::runtime::sleep_hook;
use crate::runtime::task::TaskRef;
use crate::stack::overflow;
use std::io;
use std::mem;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// How a host's turn with the worker ended.
enum Turn {
    /// It handed the worker to another host and waits on the idle list.
    Idle,
    /// It handed the worker over and ends (enough idle hosts wait).
    Retire,
    /// The pool is finished.
    Finished,
}

impl Worker {
    /// The scheduling loop of host `me`, which was just handed the worker
    /// to start with `first`.
    fn run_turn(&self, me: &Host, mut first: Option<TaskRef>) -> Turn {
        self.adopt(me);
        loop {
            self.finish_post();
            let next = match first.take() {
                Some(t) => self.ready(t, None),
                // SAFETY: we own the worker; one-statement borrow.
                None => match unsafe { self.with_local(|l| l.handover.take()) } {
                    Some(t) => Some(t),
                    None => {
                        self.poll();
                        self.next_ready(None)
                    }
                },
            };
            match next {
                // SAFETY: `t` is ours (popped, or handed to us). Claimed only
                // now, past `finish_post`, which may block on an allocator
                // lock that the held thread holds: the monitor can still
                // release it until it is claimed.
                Some(t) if unsafe { is_held(&t) } => match unsafe { claim(t) } {
                    Some(t) => return self.hand_to_held(me, t),
                    None => continue,
                },
                Some(t) => {
                    self.run_from_idle(t);
                    continue;
                }
                None => {}
            }
            if self.pool().is_none_or(Pool::is_finished) {
                self.retire();
                return Turn::Finished;
            }
            if self.has_peers() && self.look_for_work() {
                continue;
            }
            // SAFETY: we own the worker; one-statement borrow.
            let deadline = unsafe { self.with_local(|l| l.timers.next_deadline()) };
            self.idle_wait(deadline);
        }
    }

    /// From the scheduling loop: hands the worker to the host keeping `t`,
    /// and makes this host idle.
    fn hand_to_held(&self, me: &Host, t: TaskRef) -> Turn {
        // SAFETY: `t` is ours; a held task's host lives as long as the worker.
        let to = unsafe { &*t.exec().held_by().expect("held") };
        me.expect_turn();
        preempt_word::set_worker(0);
        // Findable before the hand-over, so that a pool finishing right
        // after it still tells this host to exit.
        let idle = self.hosts.push_idle(me);
        // SAFETY: we give the worker up.
        unsafe { to.hand_worker(Some(t)) };
        if idle { Turn::Idle } else { Turn::Retire }
    }

    /// The pool is finished: drops what is left (stale park timers still
    /// hold finished tasks, and tasks hold the pool) and dismisses the idle
    /// hosts.
    fn retire(&self) {
        // SAFETY: we own the worker and nothing runs on it any more.
        let (leftovers, timers) = unsafe { self.with_local(|l| (l.runq.drain(), mem::take(&mut l.timers))) };
        drop((leftovers, timers));
        self.hosts.dismiss_idle();
    }
}

/// Starts a host OS thread for worker `index` of `pool`, which waits on
/// the worker's idle list when `idle`; otherwise the caller hands it the
/// worker (`Host::hand_worker`). None when the worker has as many hosts as
/// it may ([`host::MAX_HOSTS_PER_WORKER`]).
pub(crate) fn spawn_host(pool: &Arc<Pool>, index: usize, idle: bool) -> io::Result<Option<&Host>> {
    let Some(w) = pool.worker(index) else { return Ok(None) };
    let Some(h) = w.hosts.reserve() else { return Ok(None) };
    let base = pool.config().name;
    let name = if h.serial == 0 { format!("{base}-{index}") } else { format!("{base}-{index}.{}", h.serial) };
    let (pool2, addr) = (Arc::clone(pool), h as *const Host as usize);
    match std::thread::Builder::new().name(name).spawn(move || host_main(pool2, index, addr, idle)) {
        Ok(_) => Ok(Some(h)),
        Err(e) => {
            w.hosts.exited(h);
            Err(e)
        }
    }
}

/// The body of a host OS thread.
fn host_main(pool: Arc<Pool>, index: usize, host: usize, idle: bool) {
    let Some(w) = pool.worker(index) else { return };
    // SAFETY: `host` is a boxed host of `w`, alive as long as the pool,
    // which this thread keeps.
    let me = unsafe { &*(host as *const Host) };
    if let Some(cpu) = w.cpu()
        && let Err(e) = cpu::pin_current(cpu)
    {
        log::warn!("worker {index}: cannot pin a host thread to CPU {cpu}: {e}");
    }
    let _altstack = overflow::ensure_altstack()
        .map_err(|e| log::warn!("worker {index}: no alternate signal stack, overflows will not be reported: {e}"))
        .ok()
        .flatten();
    // Signals the spawning thread had blocked must reach us: preemption,
    // and the overflow report.
    crate::preempt::signal::unblock_runtime_signals();
    // A thread inherits its creator's FP control state, and a green thread
    // that keeps its own (`preserve_fp_env`) may start hosts: the threads
    // this host runs expect the default.
    crate::arch::reset_fp_env();
    w.pool.store(Arc::as_ptr(&pool).cast_mut(), Ordering::Release);
    let _ =
        w.watch.started_ns.compare_exchange(0, crate::runtime::clock::now_ns(), Ordering::Relaxed, Ordering::Relaxed);
    // SAFETY: gettid has no preconditions.
    me.tid.store(unsafe { libc::gettid() }, Ordering::Relaxed);
    // Timers fire when asked, not up to 50 µs later; this also keeps a
    // sleep that preemption signals interrupt from growing by the slack on
    // every restart (the kernel reports remaining time including slack).
    // SAFETY: prctl(PR_SET_TIMERSLACK) only changes this thread's slack.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
    preempt::set_depth(1);
    // An idle host is findable once it can be signalled (its tid is set).
    // If the worker retired meanwhile, its owner may have dismissed the
    // idle hosts before this one was on the list.
    let mut waiting = !idle || (w.hosts.push_idle(me) && !w.hosts.is_retired());
    while waiting {
        // Idle: none of its green threads is on this OS thread any more (a
        // preempted one would hold the host), so its caches go back.
        sleep_hook::before_sleep();
        let Some(first) = me.wait_turn() else { break };
        waiting = matches!(w.run_turn(me, first), Turn::Idle);
    }
    preempt_word::set_worker(0);
    preempt::set_depth(0);
    w.hosts.exited(me);
}

/// # Safety
/// `pool` is alive, owned by an `Arc`.
pub(super) unsafe fn arc_of(pool: &Pool) -> Arc<Pool> {
    // SAFETY: the caller's contract: bump the count the Arc owns, then
    // build a second Arc from the same pointer.
    unsafe {
        Arc::increment_strong_count(pool);
        Arc::from_raw(pool)
    }
}
