//! Making threads runnable, and the worker's side of it: the inbox of
//! remote wake-ups, due timers, and the idle sleep.
//!
//! The wake-up handshake with a worker on another OS thread:
//! 1. The waker pushes the thread on the worker's inbox (a SeqCst CAS).
//! 2. It fences, then reads whether the worker runs a thread and of which
//!    priority. If the woken thread outranks it, the waker marks the worker
//!    urgent and signals its owner; the monitor repeats the signal until
//!    the worker has looked at its inbox.
//! 3. It wakes the worker's scheduling context if that sleeps (`notify`).
//!
//! The worker's side: whenever it publishes a lower priority or leaves idle,
//! it fences and takes its inbox (`Worker::missed_wake_up`), so either the
//! waker saw the new state or the worker sees the woken thread.

use super::{AWAKE, POLLING, SLEEPING, Worker};
use crate::preempt;
use crate::runtime::task::{Task, TaskRef};
use crate::runtime::timers::TimerKind;
use crate::runtime::{clock, futex, io_hook, monitor, sampling, sleep_hook};
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};
use std::time::{Duration, Instant};

/// Why a thread is made runnable.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wake {
    /// Spawned: it stays where placement put it.
    New,
    /// Woken (unpark): it may move to the waker's worker, in the wake slot.
    Woken,
    /// Woken by a thread it joins, which finished: it may move, but waits
    /// its turn.
    Joiner,
    /// Woken by descriptor readiness (`net`): as `Woken`, and it has the
    /// threads ahead of it preempted early (`IO_WAKE_GRANULARITY_NS`). Not
    /// ahead of its level: tried, and a server's threads overtaking each
    /// other made its tail latency 30 times worse (bench/README.md,
    /// "Network poller").
    Io,
}

/// See [`Worker::poll_io_now_and_then`].
const IO_POLL_EVERY: u64 = 32;

/// How long an idle worker polls for remote wake-ups before it sleeps.
const IDLE_SPIN: Duration = Duration::from_micros(50);

impl Worker {
    /// Makes a woken `task` runnable, from any thread: on its own worker,
    /// or on the waker's when it outranks the threads running on both (see
    /// [`Worker::takes_outranking_wake`]).
    pub(crate) fn schedule(task: TaskRef) {
        Worker::schedule_on(task, Wake::Woken)
    }

    /// [`Worker::schedule`] for a thread woken because a thread it joins
    /// finished: on a work-stealing pool it goes to the back of its level,
    /// not in the wake slot.
    pub(crate) fn schedule_joiner(task: TaskRef) {
        Worker::schedule_on(task, Wake::Joiner)
    }

    /// [`Worker::schedule`] for a thread woken because a descriptor it
    /// waits on became ready (see [`Wake::Io`]).
    pub(crate) fn schedule_io(task: TaskRef) {
        Worker::schedule_on(task, Wake::Io)
    }

    /// Makes a new `task` runnable on the worker placement chose for it
    /// (round-robin, affinity): a spawn never moves it to the spawner's.
    pub(crate) fn schedule_new(task: TaskRef) {
        Worker::schedule_on(task, Wake::New)
    }

    fn schedule_on(task: TaskRef, kind: Wake) {
        // A spawn has no stack to stamp: not sampled (and `kind` is a
        // constant where this is inlined).
        if task.spec.profiled || (kind != Wake::New && sampling::tick()) {
            // SAFETY: the woken thread is ours until queued below.
            unsafe { sampling::woken_now(&task) };
        }
        let may_move = kind != Wake::New;
        let index = task.worker();
        // Before asking which worker this is: a green thread switched out
        // in between could resume on another host.
        let _g = preempt::disable();
        let here = Worker::current();
        if let Some(w) = here
            && let Some(target) = task.pool.worker(index)
        {
            let same = ptr::eq(w, target);
            if may_move && w.is_stealing() {
                if same {
                    w.push_local(task, kind != Wake::Joiner);
                    if kind == Wake::Io {
                        w.io_woken_queued();
                    }
                    return;
                }
                if w.takes_wake(&task, target) {
                    task.set_worker(w.index);
                    let moved = &w.watch.wake_migrations;
                    moved.store(moved.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                    w.push_local(task, kind != Wake::Joiner);
                    if kind == Wake::Io {
                        w.io_woken_queued();
                    }
                    return;
                }
            }
            if same || (may_move && w.takes_outranking_wake(&task, target)) {
                let outranks = if same {
                    task.spec.priority > w.bell.priority.load(Ordering::Relaxed)
                        && w.bell.running.load(Ordering::Relaxed)
                } else {
                    task.set_worker(w.index);
                    let moved = &w.watch.wake_migrations;
                    moved.store(moved.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                    true
                };
                if outranks {
                    // Outranks the running thread: switch when the guard drops.
                    preempt::set_pending();
                }
                // SAFETY: we own this worker, preemption is off (`_g`), and
                // schedule is never called inside `with_local`.
                unsafe { w.with_local(|l| l.runq.push(task)) };
                if kind == Wake::Io {
                    // A round-robin pool's own poll (or a wake taken over
                    // by priority): the short slices apply here too.
                    w.io_woken_queued();
                }
                return;
            }
        }
        // The target worker must outlive the notify below, but once queued
        // the task may finish and drop the last reference to its pool. A
        // worker of the same pool keeps the pool alive by running (its
        // hosts hold a reference until they exit); any other waker holds
        // one meanwhile. Skipping that clone spares the pool's count a
        // cache-line transfer between workers on every wake-up.
        let same_pool = here.and_then(Worker::pool).is_some_and(|p| ptr::eq(p, Arc::as_ptr(&task.pool)));
        let _keep = (!same_pool).then(|| Arc::clone(&task.pool));
        // SAFETY: alive until the end of this function, as argued above.
        let pool = unsafe { &*Arc::as_ptr(&task.pool) };
        if let Some(target) = pool.worker(index) {
            target.inject(task);
            if kind == Wake::Io {
                target.io_woken_queued();
            }
        }
    }

    /// A thread woken by readiness was queued here (by this worker's poll,
    /// or from another OS thread into the inbox): the threads it waits
    /// behind get short slices for a while (`watch::IO_RECENT_NS`). The
    /// first such wake in a while has the monitor look at once, which may
    /// be asleep for a whole slice.
    #[cold]
    fn io_woken_queued(&self) {
        let now = clock::now_ns();
        let before = self.watch.io_at.swap(now, Ordering::Relaxed);
        if now.saturating_sub(before) >= super::watch::IO_RECENT_NS && self.bell.running.load(Ordering::SeqCst) {
            monitor::urgent();
        }
    }

    /// Steps 1–3 of the wake-up handshake (module docs): queues `task` on
    /// this worker from another OS thread. Async-signal-safe.
    pub(super) fn inject(&self, task: TaskRef) {
        // Queue first: the signal's handler looks in the queue.
        let (priority, preemptive) = (task.spec.priority, task.pool.is_preemptive());
        self.bell.inject.push(task);
        fence(Ordering::SeqCst);
        if self.outranks_running(priority, preemptive) {
            self.watch.urgent.store(true, Ordering::SeqCst);
            monitor::signal_worker(self.watch.tid.load(Ordering::Relaxed));
            monitor::urgent();
        }
        self.notify();
    }

    /// Whether a wake-up of `task`, whose worker is `target`, runs it here,
    /// at once, instead: when it outranks the thread running here (the
    /// waker, which it then preempts) and the one running on `target`, which
    /// a signal would otherwise have to interrupt. A signal and the IPI
    /// behind it cost thousands of times a switch here (bench/README.md,
    /// "Signal against a switch for a wake-up").
    /// Threads with a CPU affinity stay where they are, as do threads of
    /// another pool. Both workers run something of lower priority, so the
    /// thread is not taken from a worker that would run it sooner; it stays
    /// here afterwards, near the thread that wakes it.
    #[inline]
    fn takes_outranking_wake(&self, task: &Task, target: &Worker) -> bool {
        let p = task.spec.priority;
        // Cheapest and most often false first: most wake-ups are between
        // threads of one priority.
        task.spec.movable
            && p > self.bell.priority.load(Ordering::Relaxed)
            && !task.is_held()
            && (!task.spec.within_node || self.node == target.node)
            && self.bell.running.load(Ordering::Relaxed)
            && target.bell.running.load(Ordering::SeqCst)
            && p > target.bell.priority.load(Ordering::Relaxed)
            && self.pool().is_some_and(|pool| ptr::eq(pool, Arc::as_ptr(&task.pool)))
    }

    /// Wakes the scheduling context if it sleeps, on its futex or in the
    /// network poller. Async-signal-safe.
    pub(crate) fn notify(&self) {
        fence(Ordering::SeqCst);
        if self.bell.wake.load(Ordering::Relaxed) != AWAKE {
            match self.bell.wake.swap(AWAKE, Ordering::SeqCst) {
                SLEEPING => futex::wake_one(&self.bell.wake),
                POLLING => io_hook::wake(),
                _ => {}
            }
        }
    }

    /// Pulls in threads woken remotely and fires due timers; true when a
    /// timer fired. Not for signal handlers: a stale timer's reference may
    /// be its thread's last, and dropping it runs the thread's destructors.
    /// Work stealing: also answers a steal request, and now and then takes
    /// a thread from the overflow queue.
    #[inline(always)]
    pub(super) fn poll(&self) -> bool {
        if self.has_peers() {
            self.serve_steal(false);
            self.poll_overflow();
        }
        // SAFETY: on this worker's owner.
        let timers = !unsafe { self.with_local(|l| l.timers.is_empty()) };
        (timers || !self.bell.inject.is_empty()) && self.poll_slow()
    }

    /// At every [`IO_POLL_EVERY`]th switch, and when the poller's monitor
    /// thread asks (`io_hook::POLL_WANTED`), from a park or an exit: polls
    /// the network without waiting, so that a worker too busy to go idle
    /// runs the threads whose descriptors became ready itself, rather than
    /// have them come through its inbox from the poller's monitor thread
    /// (a wake-up across OS threads each, and a preemption of whatever
    /// runs: `Wake::Io`). One system call per 32 parks while descriptors
    /// are registered; a load and a test otherwise.
    #[inline(always)]
    pub(super) fn poll_io_now_and_then(&self) {
        if self.switches().is_multiple_of(IO_POLL_EVERY) || io_hook::poll_wanted() {
            io_hook::poll_now();
        }
    }

    #[cold]
    #[inline(never)]
    fn poll_slow(&self) -> bool {
        // SAFETY: on this worker's owner; taking the inbox re-enters nothing.
        let any = unsafe {
            self.with_local(|l| {
                self.take_inbox(&mut l.runq);
                !l.timers.is_empty()
            })
        };
        if !any {
            return false;
        }
        let now = Instant::now();
        let mut fired = false;
        loop {
            // SAFETY: as above; a stale timer's reference is dropped outside
            // the borrow (it may be its thread's last).
            let stale = unsafe {
                self.with_local(|l| {
                    let (kind, t, deadline) = l.timers.pop_due(now)?;
                    let woken = |t: &TaskRef| {
                        if t.spec.profiled || sampling::tick() {
                            // The timer held the sleeping or parked thread,
                            // and it is queued only below: ours (the
                            // enclosing block's contract covers the call).
                            sampling::woken(t, clock::ns_of(deadline));
                        }
                    };
                    // A thread whose timer fires goes to the front of its
                    // level: it waited its time already, and must not wait
                    // behind every other thread's full slice too.
                    match kind {
                        TimerKind::Sleep => {
                            t.set_sleeping(false);
                            woken(&t);
                            l.runq.push_front(t)
                        }
                        // Parked threads are woken here, so they join this
                        // run queue.
                        TimerKind::ParkTimeout if t.park.unpark() => {
                            woken(&t);
                            l.runq.push_front(t)
                        }
                        // Already woken: the timer's reference goes.
                        TimerKind::ParkTimeout => return Some(Some(t)),
                    }
                    Some(None)
                })
            };
            match stale {
                None => break,
                Some(t) => {
                    fired = true;
                    drop(t);
                }
            }
        }
        if fired {
            // SAFETY: as above.
            let next = unsafe {
                self.with_local(|l| {
                    self.publish_waiting(&l.runq);
                    l.timers.next_deadline()
                })
            };
            self.publish_deadline(next);
        }
        fired
    }

    /// Sleeps until notified or until `deadline`, after spinning a little:
    /// a thread woken from another worker within [`IDLE_SPIN`] is picked up
    /// in a few hundred nanoseconds, and its waker skips the futex syscall
    /// (a sleeping worker takes far longer to wake: bench/README.md, "Idle
    /// spin before sleeping"). Go's idle Ms spin for the same reason.
    ///
    /// Work stealing: only up to half the workers spin, asking others for
    /// work as they do (`steal.rs`); a sleeping worker is counted, so that
    /// new work can wake it.
    pub(super) fn idle_wait(&self, deadline: Option<Instant>) {
        let since = clock::now_ns();
        self.idle_wait_inner(deadline);
        let idle = &self.watch.idle_ns;
        idle.store(idle.load(Ordering::Relaxed) + clock::now_ns().saturating_sub(since), Ordering::Relaxed);
    }

    fn idle_wait_inner(&self, deadline: Option<Instant>) {
        // Threads waiting on descriptors that are ready already: run them
        // rather than spin (a loopback peer's write made them ready).
        if io_hook::poll_now() {
            return;
        }
        let pool = self.pool().filter(|_| self.has_peers());
        let spin = pool.is_none_or(|p| self.start_spinning(p));
        if spin {
            let found = self.idle_spin(deadline);
            if let Some(p) = pool {
                p.idle.spinning.fetch_sub(1, Ordering::SeqCst);
            }
            if found {
                return;
            }
        }
        if let Some(p) = pool {
            p.idle.sleepers.fetch_add(1, Ordering::SeqCst);
        }
        // With descriptors registered, one idle worker sleeps in the poller
        // (`io_hook`), so that what becomes ready runs here at once.
        let poller = io_hook::active().filter(|h| (h.claim)());
        self.bell.wake.store(if poller.is_some() { POLLING } else { SLEEPING }, Ordering::SeqCst);
        // After announcing the sleep, one more look at the peers: a worker
        // that queued a thread before seeing `SLEEPING` is found here, and
        // one that queues after it sees `SLEEPING` and wakes us. Neither
        // side fences (a push would pay for it every time), so the two can
        // still miss each other; the monitor's periodic look
        // (`Worker::offer_work` in `monitor_check`) repairs that within
        // its longest tick.
        if pool.is_some() && self.request_steal().is_some() {
            // The victim did not answer while we spun: it runs one thread
            // long. The monitor has it answer now rather than at its next
            // look, up to a slice away.
            monitor::urgent();
        }
        if self.bell.inject.is_empty() && pool.is_none_or(|p| p.overflow.is_empty()) {
            // Between threads on the owner's OS thread: what it caches for
            // its green threads goes back before it sleeps.
            sleep_hook::before_sleep();
            let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if let Some(h) = poller {
                // Woken (`notify`) before it got here, it finds the eventfd
                // set and returns at once.
                if self.bell.wake.load(Ordering::SeqCst) == POLLING {
                    (h.poll)(timeout);
                }
            } else if timeout != Some(Duration::ZERO) {
                futex::wait(&self.bell.wake, SLEEPING, timeout);
            }
        }
        self.bell.wake.store(AWAKE, Ordering::SeqCst);
        if let Some(h) = poller {
            (h.release)();
        }
        if let Some(p) = pool {
            p.idle.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Polls for remote wake-ups for up to [`IDLE_SPIN`] (or until
    /// `deadline`); true when there is work or a timer is due. Work
    /// stealing: asks other workers for work every round, and takes the
    /// overflow queue's.
    fn idle_spin(&self, deadline: Option<Instant>) -> bool {
        let start = Instant::now();
        let until = deadline.map_or(start + IDLE_SPIN, |d| d.min(start + IDLE_SPIN));
        let (mut now, mut asked) = (start, None);
        loop {
            if self.has_peers() && self.spin_for_work(now, &mut asked) {
                return true;
            }
            for _ in 0..64 {
                if !self.bell.inject.is_empty() {
                    return true;
                }
                crate::arch::spin_hint();
            }
            // Descriptors that became ready while we spin: a system call
            // a round, only while some are registered.
            if io_hook::poll_now() {
                return true;
            }
            now = Instant::now();
            if now >= until {
                return deadline.is_some_and(|d| now >= d);
            }
        }
    }
}
