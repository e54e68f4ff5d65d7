//! Work stealing, for the workers of a `WorkStealingScheduler`.
//!
//! # The design: private queues, and requests
//!
//! A worker's run queue stays private to its owner, as in a round-robin
//! pool. A worker that runs out of work does not reach into another's
//! queue: it *asks*. It writes its index into the victim's request word
//! (one compare-and-swap), and the victim, at its next scheduling point,
//! takes the request and pushes a batch of its waiting threads onto the
//! thief's inbox, the queue remote wake-ups already use. Scheduling points
//! are frequent: every yield, park, sleep, exit and spawn, and the
//! preemption signal, which the monitor sends within a quarter slice to a
//! victim that leaves a request unanswered.
//!
//! Rejected: thieves taking threads straight from a shared ring (Go's
//! `runq`, tokio's local queue, Chase–Lev deques). Here it would cost more
//! than it saves:
//! - Priorities. The queue is a set of priority levels with an aging
//!   bound; a ring is one FIFO. The victim choosing what to give can give
//!   the highest priority it has (what a thief should run first), skip
//!   what may not move, and keep the aging count true.
//! - Threads that may not move. A thread held by its host (preempted in
//!   the signal handler, or blocked in the kernel), a `Prohibited` one, one
//!   with CPU affinity, one whose `WithinNode` policy the thief's node
//!   breaks: in a ring, thieves would take them with the rest (stealing
//!   takes contiguous runs), so they would need queues of their own.
//! - A yielding thread is queued before its registers are saved (the yield
//!   fast path, `switch.rs`); a thief could start it on a stack still in
//!   use. Only the owner, between switches, ever hands threads over.
//! - The one-worker hot paths keep their plain pointer moves: no atomic
//!   read-modify-write on a push or pop, where a ring pays one per pop.
//!
//! The price is latency: a victim busy in one long thread answers at the
//! monitor's next look (a quarter slice) rather than at once. Fine-grained
//! work (spawns, joins, messages) passes through scheduling points
//! all the time; coarse work waits a quarter slice at most, which is
//! small beside the slice it will run. This is "work stealing with private
//! deques" (Acar, Charguéraud and Rainey, PPoPP 2013), which measured it
//! level with concurrent deques.
//!
//! # What a victim gives
//! Up to the batch size and at most half its waiting threads, rounded
//! down at a cooperative point (the running thread is about to block, and
//! the one waiting thread is likely its partner: a ping-pong must not be
//! split), up from the signal handler (the running thread has run a while
//! and will not free the worker soon). Highest priority first, oldest
//! first within a level; never a held thread, a thread that may not move,
//! or a `WithinNode` thread to another node.
//!
//! # Where threads go
//! - A thread spawned from a green thread of the pool joins its spawner's
//!   queue (an idle worker then asks for it), unless that queue already
//!   holds `local_queue_size` threads: then it goes to the pool's shared
//!   overflow queue, which idle workers take from first and busy ones look
//!   at every 64 switches.
//! - A thread woken by a green thread of the pool joins the waker's
//!   queue in the *wake slot*, at the front of its level (Go's `runnext`,
//!   tokio's LIFO slot): the partner of a message runs next, on the core
//!   whose cache holds the message. From another worker it comes only when
//!   the waker's queue is empty, so that it runs as soon as the waker
//!   blocks: moved behind a queue it only waits, and the idle worker steals
//!   it back (bench/README.md, "Work stealing", chameneos). At most
//!   [`WAKE_SLOT_LIMIT`] wake-ups in a row use the slot; the next goes to
//!   the back of its level, so two threads bouncing a message cannot starve
//!   the rest of the queue.
//!
//! # Idle workers
//! At most half the workers (at least one) spin looking for work; the
//! others sleep on their futex at once and cost no CPU. A worker that
//! queues a second waiting thread wakes a sleeper when nobody spins.

use super::{AWAKE, Worker};
use crate::preempt;
use crate::runtime::pool::Pool;
use crate::runtime::task::{Task, TaskRef};
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Wake-ups in a row that may go to the wake slot.
pub(crate) const WAKE_SLOT_LIMIT: u8 = 3;

/// How long an idle worker lets a victim run one thread, with threads
/// waiting behind it, before it has it answer at once (Go's thieves wait
/// about 3 µs before they take a `runnext`; a signal costs more here).
const NUDGE_AFTER: Duration = Duration::from_micros(10);

/// Every how many switches a busy worker looks at the overflow queue.
const OVERFLOW_PERIOD: u64 = 64;

impl Worker {
    /// Whether this worker belongs to a work-stealing pool.
    #[inline(always)]
    pub(crate) fn is_stealing(&self) -> bool {
        self.steal.is_some()
    }

    /// Whether this worker belongs to a work-stealing pool of more than
    /// one worker: only then is there anyone to steal from or for.
    #[inline(always)]
    pub(super) fn has_peers(&self) -> bool {
        self.steal.as_ref().is_some_and(|(_, victims)| !victims.is_empty())
    }

    /// The index of the calling worker if it belongs to work-stealing
    /// `pool`: where a spawn from it is queued ([`Worker::spawn_locally`]).
    pub(crate) fn local_spawn_index(pool: &Arc<Pool>) -> Option<usize> {
        let _g = preempt::disable();
        let w = Worker::current()?;
        (w.is_stealing() && w.pool().is_some_and(|p| ptr::eq(p, Arc::as_ptr(pool)))).then_some(w.index)
    }

    /// A spawn from a green thread of a work-stealing `pool`: queues
    /// `task` on the spawner's worker, or on the pool's overflow queue when
    /// that is full. False, having done nothing, elsewhere (a round-robin
    /// pool, a plain OS thread, another pool's thread, a thread that may
    /// not move): the caller places it.
    pub(crate) fn spawn_locally(pool: &Arc<Pool>, task: &TaskRef) -> bool {
        if !task.spec.movable {
            return false;
        }
        let _g = preempt::disable();
        let Some(w) = Worker::current() else { return false };
        let Some((config, _)) = &w.steal else { return false };
        if !w.pool().is_some_and(|p| ptr::eq(p, Arc::as_ptr(pool))) {
            return false;
        }
        // SAFETY: on this worker's owner, preemption off; one statement.
        if w.has_peers() && unsafe { w.with_local(|l| l.runq.len()) } >= config.local_queue {
            pool.overflow.push(task.clone());
            wake_thief(pool);
            return true;
        }
        task.set_worker(w.index);
        w.push_local(task.clone(), false);
        true
    }

    /// A wake-up from a green thread of a work-stealing pool: whether
    /// `task`, whose worker is `target`, another one, joins this worker's
    /// queue instead (see the module docs). On the owner, preemption off, outside any
    /// local borrow.
    #[inline]
    pub(super) fn takes_wake(&self, task: &Task, target: &Worker) -> bool {
        let Some(pool) = self.pool().filter(|pool| ptr::eq(*pool, Arc::as_ptr(&task.pool))) else { return false };
        task.spec.movable
            && !task.is_held()
            && (!task.spec.within_node || self.node == target.node)
            // Without preemption nothing would make the waker answer a
            // thief if it ran on: the woken thread stays where it can run.
            && pool.is_preemptive()
            && {
                // From another worker, only onto an empty queue: then it
                // runs as soon as the waker blocks. Behind other threads it
                // would wait anyway, and moving it only churns (a broker
                // answering many clients would pull them all in, for the
                // idle worker to steal back).
                // SAFETY: on the owner (the caller's contract); one statement.
                unsafe { self.with_local(|l| l.runq.len()) == 0 }
            }
    }

    /// Queues `task`, spawned or `woken` here, on this worker, from its
    /// running thread with preemption off, outside any local borrow.
    pub(super) fn push_local(&self, task: TaskRef, woken: bool) {
        let task = if self.has_peers() {
            let Err(task) = self.send_outranking(task) else { return };
            task
        } else {
            task
        };
        if task.spec.priority > self.bell.priority.load(Ordering::Relaxed) && self.bell.running.load(Ordering::Relaxed)
        {
            // Outranks the running thread: switch when the guard drops.
            preempt::set_pending();
        }
        // SAFETY: the caller's contract; queueing re-enters nothing.
        let waiting = unsafe {
            self.with_local(|l| {
                if woken && l.wake_streak < WAKE_SLOT_LIMIT {
                    l.wake_streak += 1;
                    l.runq.push_wake(task);
                } else {
                    l.wake_streak = 0;
                    l.runq.push(task);
                }
                l.runq.len()
            })
        };
        if self.has_peers() {
            self.steal_line.waiting.store(waiting as u32, Ordering::Relaxed);
            self.serve_steal(false);
            // The thread waits behind the running one: if that one runs on
            // rather than blocking, an idle worker should take it (Go's
            // `wakep`). A sleeper is woken only when nobody spins.
            if let Some(pool) = self.pool() {
                wake_thief(pool);
            }
        }
    }

    /// Priorities across workers: a thread about to wait here behind one
    /// of its priority or higher goes instead to a worker that runs a lower
    /// priority (nearest first), which it then preempts at once. Gives the
    /// thread back when it stays.
    fn send_outranking(&self, task: TaskRef) -> Result<(), TaskRef> {
        let Some(pool) = self.pool() else { return Err(task) };
        let p = task.spec.priority;
        if pool.idle.priorities.load(Ordering::Relaxed).count_ones() < 2
            || !pool.is_preemptive()
            || !task.spec.movable
            || task.is_held()
            || !self.bell.running.load(Ordering::Relaxed)
            || self.bell.priority.load(Ordering::Relaxed) < p
        {
            return Err(task);
        }
        let Some((_, victims)) = &self.steal else { return Err(task) };
        let target = victims.iter().filter_map(|&v| pool.worker(v)).find(|w| {
            (!task.spec.within_node || w.node == self.node)
                && w.bell.running.load(Ordering::SeqCst)
                && w.bell.priority.load(Ordering::Relaxed) < p
        });
        match target {
            Some(w) => {
                task.set_worker(w.index);
                w.inject(task);
                Ok(())
            }
            None => Err(task),
        }
    }

    /// When this worker has threads waiting that an idle worker could take,
    /// and nobody spins for work: wakes a sleeping worker. From the signal
    /// handler at each preemption tick, and from the monitor at each look,
    /// so that threads queued while the other workers fell asleep spread
    /// out. Async-signal-safe.
    pub(super) fn offer_work(&self) {
        if let Some(pool) = self.pool()
            && self.has_peers()
            && self.steal_line.waiting.load(Ordering::Relaxed) > 0
        {
            wake_thief(pool);
        }
    }

    /// Answers a pending steal request, if any (module docs): `generous`
    /// from the signal handler. On the owner, preemption off, outside any
    /// local borrow, never between a yield's requeue and its switch.
    /// Async-signal-safe.
    #[inline(always)]
    pub(super) fn serve_steal(&self, generous: bool) {
        if self.steal_line.request.load(Ordering::Relaxed) != 0 {
            self.serve_steal_slow(generous);
        }
    }

    #[cold]
    #[inline(never)]
    fn serve_steal_slow(&self, generous: bool) {
        let asked = self.steal_line.request.swap(0, Ordering::Acquire);
        let (Some((config, _)), Some(pool)) = (&self.steal, self.pool()) else { return };
        let Some(thief) = asked.checked_sub(1).and_then(|i| pool.worker(i)) else { return };
        let same_node = thief.node == self.node;
        let movable = |t: &Task| {
            // SAFETY: a task in our run queue is ours to read.
            t.spec.movable && (!t.spec.within_node || same_node) && unsafe { t.exec() }.held_by().is_none()
        };
        // SAFETY: on the owner (the caller's contract); one statement.
        let waiting = unsafe { self.with_local(|l| l.runq.len()) };
        let give = if generous { waiting.div_ceil(2) } else { waiting / 2 }.min(config.batch);
        let mut given = 0;
        while given < give {
            // SAFETY: as above; taking a task re-enters nothing.
            let Some(t) = (unsafe { self.with_local(|l| l.runq.take_first(0, movable)) }) else { break };
            t.set_worker(thief.index);
            thief.inject(t);
            given += 1;
        }
        if given > 0 {
            thief.steal_line.stolen.fetch_add(given as u64, Ordering::Relaxed);
            // Threads woken by readiness lately are among those given: the
            // thief's running thread gets the short slice too. The thief
            // asks while its thread runs on (a CPU-bound one that used up
            // its slice with nothing waiting), and the batch would otherwise
            // wait in its inbox for that thread's whole next slice.
            // (An old time passes on harmlessly: the monitor asks how recent.)
            thief.watch.io_at.fetch_max(self.watch.io_at.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        // Nothing given although threads wait and some could have been:
        // none may move now (held, pinned, prohibited, another node).
        // Thieves then see nothing to ask for until the queue changes,
        // rather than ask (and be woken to ask) again and again. A thread
        // kept for a partner (`give` 0) still counts: if its waker runs on,
        // a thief's nudge has it handed over.
        let left = if give > 0 && given == 0 { 0 } else { waiting - given };
        self.steal_line.waiting.store(left as u32, Ordering::Relaxed);
    }

    /// Asks the nearest worker with threads waiting for some; true when a
    /// request of ours waits there (the answer arrives in this worker's
    /// inbox). Async-signal-safe.
    pub(super) fn request_steal(&self) -> Option<&Worker> {
        let (Some((_, victims)), Some(pool)) = (&self.steal, self.pool()) else { return None };
        let me = self.index + 1;
        for &v in victims.iter() {
            let Some(victim) = pool.worker(v) else { continue };
            let line = &victim.steal_line;
            let asked = line.request.load(Ordering::Relaxed);
            if line.waiting.load(Ordering::Relaxed) == 0 {
                // Nothing there (any more): withdraw a request of ours, so
                // that it does not hold us while others have work.
                if asked == me {
                    let _ = line.request.compare_exchange(me, 0, Ordering::Relaxed, Ordering::Relaxed);
                }
                continue;
            }
            match asked {
                r if r == me => return Some(victim),
                0 if line.request.compare_exchange(0, me, Ordering::Release, Ordering::Relaxed).is_ok() => {
                    return Some(victim);
                }
                _ => {}
            }
        }
        None
    }

    /// Has this worker answer a steal request now, by a signal, rather
    /// than at its next scheduling point: it has been running one thread
    /// since the request was made. Async-signal-safe.
    pub(super) fn nudge_for_steal(&self) {
        if self.pool().is_some_and(Pool::is_preemptive) {
            self.watch.steal_only.store(true, Ordering::SeqCst);
            crate::runtime::monitor::signal_worker(self.tid());
        }
    }

    /// From the scheduling context with nothing to run: takes threads from
    /// the pool's overflow queue, else asks another worker for some. True
    /// when threads were queued here.
    pub(super) fn look_for_work(&self) -> bool {
        if self.take_overflow(usize::MAX) {
            return true;
        }
        self.request_steal();
        false
    }

    /// An idle worker's look for work while it spins: as
    /// [`Worker::look_for_work`], and when the victim it asked has been
    /// running the same thread for [`NUDGE_AFTER`], a nudge
    /// ([`Worker::nudge_for_steal`]): the thread behind it should not wait
    /// for its slice to end while this worker idles. `asked` keeps the
    /// victim, its switch count and when it was first seen unanswered.
    pub(super) fn spin_for_work(&self, now: Instant, asked: &mut Option<(usize, u64, Instant)>) -> bool {
        if self.take_overflow(usize::MAX) {
            return true;
        }
        let Some(victim) = self.request_steal() else {
            *asked = None;
            return false;
        };
        let switches = victim.switches();
        match *asked {
            Some((v, s, since)) if v == victim.index && s == switches => {
                if now.saturating_duration_since(since) >= NUDGE_AFTER {
                    victim.nudge_for_steal();
                    // Once per stretch: the next nudge after another.
                    *asked = Some((v, s, now));
                }
            }
            _ => *asked = Some((victim.index, switches, now)),
        }
        false
    }

    /// Moves up to the batch size (and at most `max`) threads from the
    /// pool's overflow queue to this worker's; true when any came. Not for
    /// signal handlers (the queue may free a block).
    pub(super) fn take_overflow(&self, max: usize) -> bool {
        let (Some((config, _)), Some(pool)) = (&self.steal, self.pool()) else { return false };
        let mut taken = 0;
        while taken < config.batch.min(max)
            && let Some(t) = pool.overflow.pop()
        {
            t.set_worker(self.index);
            // SAFETY: on the owner (callers are its scheduling points);
            // queueing re-enters nothing.
            unsafe {
                self.with_local(|l| {
                    l.runq.push(t);
                    self.publish_waiting(&l.runq);
                })
            };
            taken += 1;
        }
        taken > 0
    }

    /// A busy worker's periodic look at the overflow queue, so that
    /// threads there do not wait for a worker to run out of work. Work
    /// stealing only.
    #[inline(always)]
    pub(super) fn poll_overflow(&self) {
        if self.switches().is_multiple_of(OVERFLOW_PERIOD) {
            self.take_overflow(1);
        }
    }

    /// Whether this idle worker may spin for work: fewer than half the
    /// workers (at least one) do. Counts it as spinning when it may.
    pub(super) fn start_spinning(&self, pool: &Pool) -> bool {
        let limit = (pool.workers().len() / 2).max(1);
        let mut n = pool.idle.spinning.load(Ordering::Relaxed);
        loop {
            if n >= limit {
                return false;
            }
            match pool.idle.spinning.compare_exchange_weak(n, n + 1, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => n = now,
            }
        }
    }
}

/// Work was queued that an idle worker could take: wakes a sleeping worker
/// of `pool` if none spins (Go's `wakep`).
///
/// No fence orders the queueing before the look at the sleepers: a worker
/// falling asleep at that moment can be missed. Nothing is lost by it (the
/// work is in a queue its owner runs), and the monitor's next look or the
/// owner's next preemption tick offers it again ([`Worker::offer_work`]).
fn wake_thief(pool: &Pool) {
    if pool.idle.sleepers.load(Ordering::Relaxed) == 0 || pool.idle.spinning.load(Ordering::Relaxed) != 0 {
        return;
    }
    let me = Worker::current().map(|w| w.index);
    if let Some(w) = pool.workers().iter().find(|w| Some(w.index) != me && w.bell.wake.load(Ordering::Relaxed) != AWAKE)
    {
        w.notify();
    }
}
