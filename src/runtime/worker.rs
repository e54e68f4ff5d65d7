//! A worker: one OS thread that runs green threads from its run queue.
//!
//! Green threads switch directly to one another; the worker's own OS stack
//! (the *idle context*) only runs when nothing is runnable, to sleep on a
//! futex until work or a timer is due. Whatever a switch leaves behind (the
//! thread that parked, slept or exited) is handed to the context that runs
//! next as a [`Post`] and dealt with there, once the old thread's registers
//! are safely saved: only then may another worker pick it up. A thread that
//! yields (or is preempted) goes straight back on this worker's run queue,
//! which no other worker pops.

use super::inbox::Inbox;
use super::park::Commit;
use super::pool::Pool;
use super::task::{Exec, Task, TaskRef};
use super::timers::{TimerKind, Timers};
use super::{clock, futex, monitor};
use crate::arch::{Current, FpSwitch, Isa};
use crate::preempt;
use crate::sched::run_queue::RunQueue;
use crate::stack::overflow;
use crate::stack::pool::LocalCache;
use crate::thread::ThreadError;
use std::cell::UnsafeCell;
use std::mem;
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
};
use std::time::{Duration, Instant};

const AWAKE: u32 = 0;
const SLEEPING: u32 = 1;

/// What the previous context left for the next one to finish.
#[derive(Default)]
enum Post {
    #[default]
    None,
    /// It parked (with an optional deadline): commit the park.
    Park(TaskRef, Option<Instant>),
    /// It sleeps until the deadline.
    Sleep(TaskRef, Instant),
    /// It finished: recycle its stack.
    Exit(TaskRef),
}

pub(crate) struct Worker {
    pub(crate) index: usize,
    /// The CPU this worker is pinned to (usize::MAX: none); a spare gets
    /// it just before its OS thread starts.
    cpu: AtomicUsize,
    /// What wakers on other OS threads touch; a blocked worker's signal
    /// handler hands its queued threads over through the same inbox.
    bell: Doorbell,
    /// Whether this worker's OS thread runs (spares start on demand).
    started: AtomicBool,
    /// For a spare: the blocked worker it relieves (usize::MAX: none). It
    /// also takes the threads woken into that worker's inject queue.
    relieving: AtomicUsize,
    /// For a blocked worker: the spare relieving it, woken with it.
    relieved_by: AtomicUsize,
    /// The pool this worker belongs to (it owns the worker, so it outlives
    /// every use); set when the worker's thread starts.
    pool: AtomicPtr<Pool>,
    /// Context switches performed by this worker (the monitor watches it
    /// move; a preemption check that finds nothing else to run bumps it too).
    switches: AtomicU64,
    /// Published for the monitor and for wake-up preemption.
    watch: Watch,
    local: UnsafeCell<Local>,
}

/// What a worker publishes for the monitor and for other workers: relaxed
/// stores on switches, never a clock read on the hot path.
/// Everything a waker on another OS thread reads or writes, in one cache
/// line of its own: a cross-worker wake-up then moves that line to the
/// waker and back, instead of one line per field scattered over `Worker`.
#[repr(C, align(64))]
struct Doorbell {
    /// Threads made runnable from other OS threads.
    inject: Inbox,
    /// Futex word the idle context sleeps on.
    wake: AtomicU32,
    /// A green thread (not the idle context) is running.
    running: AtomicBool,
    /// Priority of the running green thread.
    priority: AtomicU8,
}

struct Watch {
    /// Kernel thread id, for tgkill; 0 until the worker runs.
    tid: AtomicI32,
    /// Time slice of the running green thread in ns; 0 = the pool's.
    slice_ns: AtomicU64,
    /// Earliest timer deadline (clock::now_ns scale); u64::MAX = none.
    next_deadline: AtomicU64,
    /// A thread that outranks the running one was queued from elsewhere;
    /// the monitor keeps signalling until the worker has looked at its queue.
    urgent: AtomicBool,
    /// Monitor's bookkeeping: switch count it last saw, and when, and how
    /// long it waits before repeating a signal that was not acted on.
    seen_switches: AtomicU64,
    seen_at: AtomicU64,
    retry_ns: AtomicU64,
    /// Preemptions taken, and signals that found an unsafe point.
    preemptions: AtomicU64,
    deferred: AtomicU64,
    /// Spare worker this one should hand its queue to (usize::MAX: none),
    /// set by the monitor, acted on by the signal handler.
    hand_off_to: AtomicUsize,
    hand_offs: AtomicU64,
    /// Threads this worker took from another one's wake-up because they
    /// outranked both ([`Worker::takes_outranking_wake`]).
    wake_migrations: AtomicU64,
    /// The monitor's last sample of the worker OS thread's CPU clock during
    /// a stall, and when it took it (0: none): a thread blocked in the OS
    /// uses no CPU, a hog does.
    probe_cpu_ns: AtomicU64,
    probe_at: AtomicU64,
}

/// State only the worker's own OS thread touches.
#[derive(Default)]
struct Local {
    runq: RunQueue,
    current: Option<TaskRef>,
    /// Saved stack pointer of the idle context while a green thread runs.
    idle_sp: usize,
    post: Post,
    timers: Timers,
    stacks: LocalCache,
}

// SAFETY: `local` is only accessed from the worker's own OS thread (through
// the OS thread's worker slot); the other fields are thread-safe.
unsafe impl Sync for Worker {}

impl Worker {
    pub(crate) fn new(index: usize, cpu: Option<usize>, started: bool) -> Self {
        Worker {
            index,
            cpu: AtomicUsize::new(cpu.unwrap_or(usize::MAX)),
            bell: Doorbell {
                inject: Inbox::new(),
                wake: AtomicU32::new(AWAKE),
                running: AtomicBool::new(false),
                priority: AtomicU8::new(0),
            },
            started: AtomicBool::new(started),
            relieving: AtomicUsize::new(usize::MAX),
            relieved_by: AtomicUsize::new(usize::MAX),
            pool: AtomicPtr::new(ptr::null_mut()),
            switches: AtomicU64::new(0),
            watch: Watch {
                tid: AtomicI32::new(0),
                slice_ns: AtomicU64::new(0),
                next_deadline: AtomicU64::new(u64::MAX),
                urgent: AtomicBool::new(false),
                seen_switches: AtomicU64::new(0),
                seen_at: AtomicU64::new(0),
                retry_ns: AtomicU64::new(0),
                preemptions: AtomicU64::new(0),
                deferred: AtomicU64::new(0),
                hand_off_to: AtomicUsize::new(usize::MAX),
                hand_offs: AtomicU64::new(0),
                wake_migrations: AtomicU64::new(0),
                probe_cpu_ns: AtomicU64::new(0),
                probe_at: AtomicU64::new(0),
            },
            local: UnsafeCell::new(Local::default()),
        }
    }

    /// The worker whose OS thread is calling, if any.
    ///
    /// Read from the OS thread's runtime slot (`arch::preempt_word`), never
    /// from an address computed earlier: a green thread may resume on
    /// another worker after any switch.
    #[inline]
    pub(crate) fn current() -> Option<&'static Worker> {
        let w = crate::arch::preempt_word::worker() as *const Worker;
        // SAFETY: the slot is set by `run` for the lifetime of the worker
        // thread, which owns an `Arc<Pool>` keeping the Worker alive.
        unsafe { w.as_ref() }
    }

    /// The worker-private state.
    ///
    /// # Safety
    /// Only on this worker's OS thread, and the reference must not be held
    /// across a context switch or a call that may re-enter the worker
    /// (scheduling, dropping a task, unparking).
    #[allow(clippy::mut_from_ref)]
    #[inline(always)]
    unsafe fn local(&self) -> &mut Local {
        // SAFETY: caller's contract.
        unsafe { &mut *self.local.get() }
    }

    pub(crate) fn switches(&self) -> u64 {
        self.switches.load(Ordering::Relaxed)
    }

    pub(crate) fn tid(&self) -> i32 {
        self.watch.tid.load(Ordering::Relaxed)
    }

    pub(crate) fn hand_offs(&self) -> u64 {
        self.watch.hand_offs.load(Ordering::Relaxed)
    }

    pub(crate) fn wake_migrations(&self) -> u64 {
        self.watch.wake_migrations.load(Ordering::Relaxed)
    }

    pub(crate) fn is_started(&self) -> bool {
        self.started.load(Ordering::SeqCst)
    }

    /// Whether the monitor considers this worker stuck right now.
    pub(crate) fn is_blocked(&self) -> bool {
        let w = &self.watch;
        self.bell.running.load(Ordering::SeqCst) && w.retry_ns.load(Ordering::Relaxed) != 0
    }

    /// Sets the CPU a spare will pin itself to when it starts.
    pub(crate) fn repin(&self, cpu: Option<usize>) {
        self.cpu.store(cpu.unwrap_or(usize::MAX), Ordering::SeqCst);
    }

    /// The CPU this worker is pinned to.
    pub(crate) fn cpu(&self) -> Option<usize> {
        match self.cpu.load(Ordering::SeqCst) {
            usize::MAX => None,
            c => Some(c),
        }
    }

    /// The pool this worker belongs to, once its thread has started.
    fn pool(&self) -> Option<&Pool> {
        // SAFETY: set by `run` from the Arc<Pool> the worker thread holds;
        // the pool owns this worker, so it is alive whenever we are used.
        unsafe { self.pool.load(Ordering::Acquire).as_ref() }
    }

    /// Marks a spare as started; true if the caller must start its thread.
    pub(crate) fn mark_started(&self) -> bool {
        !self.started.swap(true, Ordering::SeqCst)
    }

    /// Whether this worker has run one thread, without a switch, for so
    /// long that it may be stuck in the OS (the monitor's preemption
    /// signals found no safe point): at least two slices and 2 ms.
    pub(crate) fn is_stuck(&self, now: u64, pool_slice: u64) -> bool {
        let w = &self.watch;
        if !self.bell.running.load(Ordering::SeqCst) || w.hand_off_to.load(Ordering::Relaxed) != usize::MAX {
            return false;
        }
        let slice = match w.slice_ns.load(Ordering::Relaxed) {
            0 => pool_slice,
            s => s,
        };
        let since = w.seen_at.load(Ordering::Relaxed);
        since != 0
            && w.seen_switches.load(Ordering::Relaxed) == self.switches()
            && now.saturating_sub(since) >= slice.saturating_mul(2).max(2_000_000)
    }

    /// For a stuck worker, given its OS thread's CPU clock `cpu_ns` now:
    /// whether it used under a quarter of the wall time since the previous
    /// sample of the same stall. The first sample of a stall answers no, so
    /// a hand-off waits one more monitor tick. A thread sleeping in a
    /// syscall or on a lock uses no CPU; a hog that the kernel reports as
    /// sleeping for a moment (an emulator's internal lock, a page fault)
    /// does, and keeps its queue.
    pub(crate) fn idle_on_cpu(&self, now: u64, cpu_ns: u64) -> bool {
        let w = &self.watch;
        let at = w.probe_at.swap(now, Ordering::Relaxed);
        let was = w.probe_cpu_ns.swap(cpu_ns, Ordering::Relaxed);
        at != 0 && at >= w.seen_at.load(Ordering::Relaxed) && cpu_ns.saturating_sub(was) * 4 < now.saturating_sub(at)
    }

    /// Asks this worker's signal handler to move its queued threads to the
    /// spare `to`, and signals it.
    pub(crate) fn request_hand_off(&self, to: usize) {
        self.watch.hand_off_to.store(to, Ordering::SeqCst);
        // Counts as a scheduling event: the next stall is measured afresh.
        self.watch.seen_at.store(clock::now_ns(), Ordering::Relaxed);
        monitor::signal_worker(self.watch.tid.load(Ordering::Relaxed));
    }

    /// Run by the signal handler on this (blocked) worker's own OS thread,
    /// outside any runtime critical section: moves every queued thread to
    /// the spare. Async-signal-safe: pointer moves, atomics, one futex wake.
    fn hand_off_queue(&self) {
        let to = self.watch.hand_off_to.swap(usize::MAX, Ordering::SeqCst);
        if to == usize::MAX {
            return;
        }
        // SAFETY: on this worker's thread with depth 0: no runtime code is
        // in the middle of using the local state.
        let l = unsafe { self.local() };
        let Some(spare) = self.pool().and_then(|pool| pool.worker(to)) else { return };
        debug_assert_eq!(spare.cpu(), self.cpu(), "spares are pinned where the worker they relieve is");
        let mut moved = 0;
        while let Some(t) = l.runq.pop(None) {
            t.set_worker(to);
            spare.bell.inject.push(t);
            moved += 1;
        }
        spare.relieving.store(self.index, Ordering::SeqCst);
        self.relieved_by.store(to, Ordering::SeqCst);
        if moved > 0 {
            self.watch.hand_offs.fetch_add(1, Ordering::Relaxed);
        }
        spare.notify();
    }

    pub(crate) fn preemptions(&self) -> u64 {
        self.watch.preemptions.load(Ordering::Relaxed)
    }

    pub(crate) fn deferred_preemptions(&self) -> u64 {
        self.watch.deferred.load(Ordering::Relaxed)
    }

    #[inline]
    fn count_switch(&self) {
        self.switches.store(self.switches.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Publishes the thread about to run, for the monitor and wake-up
    /// preemption; true when the priority dropped, so that a wake-up may
    /// have been missed (see [`Worker::missed_wake_up`]).
    /// Equal or higher priorities need no check: a waker that judged its
    /// thread against the old priority judged it against a lower bar.
    #[inline(always)]
    fn publish_running(&self, task: &Task) -> bool {
        let lower = task.spec.priority < self.bell.priority.load(Ordering::Relaxed);
        self.bell.priority.store(task.spec.priority, Ordering::Relaxed);
        self.watch.slice_ns.store(task.spec.slice_ns, Ordering::Relaxed);
        lower
    }

    fn publish_deadline(&self, next: Option<Instant>) {
        self.watch.next_deadline.store(next.map_or(u64::MAX, clock::ns_of), Ordering::Relaxed);
    }

    /// The monitor's look at this worker at time `now`: signals it if its
    /// thread overran its slice or a timer is due, and returns when the
    /// monitor should look again (None: idle, nothing to watch).
    pub(crate) fn monitor_check(&self, now: u64, pool_slice: u64, min_tick: u64, max_tick: u64) -> Option<u64> {
        let w = &self.watch;
        if !self.bell.running.load(Ordering::SeqCst) {
            return None;
        }
        let slice = match w.slice_ns.load(Ordering::Relaxed) {
            0 => pool_slice,
            s => s,
        };
        let tick = (slice / 4).clamp(min_tick, max_tick);
        let switches = self.switches();
        if switches != w.seen_switches.load(Ordering::Relaxed) {
            w.seen_switches.store(switches, Ordering::Relaxed);
            w.seen_at.store(now, Ordering::Relaxed);
            w.retry_ns.store(0, Ordering::Relaxed);
        }
        let since = w.seen_at.load(Ordering::Relaxed);
        let deadline = w.next_deadline.load(Ordering::Relaxed);
        let urgent = w.urgent.load(Ordering::SeqCst);
        if urgent || now.saturating_sub(since) >= slice || deadline <= now {
            monitor::signal_worker(w.tid.load(Ordering::Relaxed));
            // Not acted on yet (the thread sits at an unsafe point, e.g. in
            // a blocking syscall): repeat, backing off so that a syscall the
            // signal interrupts still makes progress.
            let retry = match w.retry_ns.load(Ordering::Relaxed) {
                0 if urgent => min_tick,
                0 => tick,
                r => (r * 2).min(max_tick),
            };
            w.retry_ns.store(retry, Ordering::Relaxed);
            return Some(now + retry);
        }
        Some((since + slice).min(deadline))
    }

    /// Wake-up preemption: whether `task`, about to become runnable here
    /// from elsewhere, should interrupt the running thread at once.
    ///
    /// Called after `task` was pushed on the inject queue and a SeqCst fence:
    /// with the fence in [`Worker::missed_wake_up`] on the worker's side,
    /// either this sees the running thread the worker chose, or the worker
    /// sees the queued task and re-checks before that thread runs on.
    fn outranks_running(&self, priority: u8, preemptive: bool) -> bool {
        preemptive && self.bell.running.load(Ordering::SeqCst) && priority > self.bell.priority.load(Ordering::Relaxed)
    }

    /// The worker's half of the wake-up-preemption handshake, after it
    /// published a thread of `priority` to run that a waker may not have
    /// seen (a lower priority, or running after idle): takes in what was
    /// queued from elsewhere meanwhile, whose waker may have judged it
    /// against the old state and sent no signal, and says whether any of it
    /// outranks that thread, which then starts by taking a pending
    /// preemption. Threads of its own priority or below wait their turn: a
    /// thread must not yield at its first instruction to one woken a moment
    /// later (with preemption off, that would be a switch nobody asked for).
    #[cold]
    #[inline(never)]
    fn missed_wake_up(&self, runq: &mut RunQueue, priority: u8) -> bool {
        fence(Ordering::SeqCst);
        self.take_inbox(runq) && runq.top_priority().is_some_and(|top| top > priority)
    }

    /// Moves the threads woken from elsewhere into `runq`, in arrival
    /// order; false when there were none.
    fn take_inbox(&self, runq: &mut RunQueue) -> bool {
        if self.bell.inject.is_empty() {
            return false;
        }
        self.watch.urgent.store(false, Ordering::Relaxed);
        for t in self.bell.inject.take_all() {
            runq.push(t);
        }
        true
    }

    /// The green thread running on the calling worker, if the caller is one.
    ///
    /// Only with preemption disabled (a guard, or the runtime's own depth),
    /// and neither reference may be kept across a switch: a green thread
    /// preempted after this returned could be moved to another worker (a
    /// blocked worker's queue goes to a spare) and would go on with the
    /// first worker, reading what runs there now. From preemptible code use
    /// [`Worker::current_task_arc`] or [`Worker::is_green`].
    #[inline]
    pub(crate) fn current_task() -> Option<(&'static Worker, &'static TaskRef)> {
        let w = Worker::current()?;
        // SAFETY: on this worker's thread; the borrow ends before any switch
        // because callers only read through it.
        let t = unsafe { w.local() }.current.as_ref()?;
        // SAFETY: the Arc in `current` lives until this thread switches out,
        // which only this very thread can make happen.
        Some((w, unsafe { &*(t as *const TaskRef) }))
    }

    /// The calling green thread's task, from any code (None on a plain OS
    /// thread). The task is the thread itself, whichever worker runs it.
    pub(crate) fn current_task_arc() -> Option<TaskRef> {
        let _g = preempt::disable();
        Worker::current_task().map(|(_, t)| t.clone())
    }

    /// The pool running the calling green thread (None on a plain OS thread).
    pub(crate) fn current_pool() -> Option<Arc<super::pool::Pool>> {
        let _g = preempt::disable();
        Worker::current_task().map(|(_, t)| Arc::clone(&t.pool))
    }

    /// The calling green thread's task without touching its reference
    /// count. The pointer stays valid until the thread ends (the runtime
    /// holds the running thread's task), so only that thread may use it.
    pub(crate) fn current_task_ptr() -> Option<*const Task> {
        let _g = preempt::disable();
        Worker::current_task().map(|(_, t)| TaskRef::as_ptr(t))
    }

    /// Whether the caller is a green thread. Stable across migrations: a
    /// green thread only ever runs on workers.
    pub(crate) fn is_green() -> bool {
        Worker::current_task_ptr().is_some()
    }

    /// Makes a woken `task` runnable, from any thread: on its own worker,
    /// or on the waker's when it outranks the threads running on both (see
    /// [`Worker::takes_outranking_wake`]).
    pub(crate) fn schedule(task: TaskRef) {
        Worker::schedule_on(task, true)
    }

    /// Makes a new `task` runnable on the worker placement chose for it
    /// (round-robin, affinity): a spawn never moves it to the spawner's.
    pub(crate) fn schedule_new(task: TaskRef) {
        Worker::schedule_on(task, false)
    }

    fn schedule_on(task: TaskRef, may_move: bool) {
        let index = task.worker();
        // Before asking which worker this is: a green thread preempted in
        // between could be moved to another (see `current_task`).
        let _g = preempt::disable();
        let here = Worker::current();
        if let Some(w) = here
            && let Some(target) = task.pool.worker(index)
        {
            let same = ptr::eq(w, target);
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
                // SAFETY: we are on this worker's OS thread and hold no other
                // borrow of its local state (schedule is never called with one).
                unsafe { w.local() }.runq.push(task);
                return;
            }
        }
        // The target worker must outlive the notify below, but once queued
        // the task may finish and drop the last reference to its pool. A
        // worker of the same pool keeps the pool alive by running (its
        // thread holds a reference until it exits); any other waker holds
        // one meanwhile. Skipping that clone spares the pool's count a
        // cache-line transfer between workers on every wake-up.
        let same_pool = here.and_then(Worker::pool).is_some_and(|p| ptr::eq(p, Arc::as_ptr(&task.pool)));
        let _keep = (!same_pool).then(|| Arc::clone(&task.pool));
        // SAFETY: alive until the end of this function, as argued above.
        let pool = unsafe { &*Arc::as_ptr(&task.pool) };
        let Some(target) = pool.worker(index) else { return };
        // Queue first: the signal's handler looks in the queue.
        let (priority, preemptive) = (task.spec.priority, task.pool.is_preemptive());
        target.bell.inject.push(task);
        fence(Ordering::SeqCst);
        if target.outranks_running(priority, preemptive) {
            target.watch.urgent.store(true, Ordering::SeqCst);
            monitor::signal_worker(target.watch.tid.load(Ordering::Relaxed));
            monitor::urgent();
        }
        target.notify();
        // A blocked worker's spare takes its woken threads.
        let spare = target.relieved_by.load(Ordering::SeqCst);
        if spare != usize::MAX
            && let Some(spare) = pool.worker(spare)
        {
            spare.notify();
        }
    }

    /// Whether a wake-up of `task`, whose worker is `target`, runs it here,
    /// at once, instead: when it outranks the thread running here (the
    /// waker, which it then preempts) and the one running on `target`, which
    /// a signal would otherwise have to interrupt. A signal and the IPI
    /// behind it cost 10–40 µs on a VM; a switch here costs nanoseconds.
    /// Threads with a CPU affinity stay where they are, as do threads of
    /// another pool, and spares (which only stand in for a blocked worker)
    /// take none. Both workers run something of lower priority, so the
    /// thread is not taken from a worker that would run it sooner; it stays
    /// here afterwards, near the thread that wakes it.
    #[inline]
    fn takes_outranking_wake(&self, task: &Task, target: &Worker) -> bool {
        let p = task.spec.priority;
        // Cheapest and most often false first: most wake-ups are between
        // threads of one priority.
        task.spec.movable
            && p > self.bell.priority.load(Ordering::Relaxed)
            && self.bell.running.load(Ordering::Relaxed)
            && target.bell.running.load(Ordering::SeqCst)
            && p > target.bell.priority.load(Ordering::Relaxed)
            && self
                .pool()
                .is_some_and(|pool| ptr::eq(pool, Arc::as_ptr(&task.pool)) && self.index < pool.regular().len())
    }

    /// Wakes the idle context if it sleeps.
    pub(crate) fn notify(&self) {
        fence(Ordering::SeqCst);
        if self.bell.wake.load(Ordering::Relaxed) == SLEEPING
            && self.bell.wake.swap(AWAKE, Ordering::SeqCst) == SLEEPING
        {
            futex::wake_one(&self.bell.wake);
        }
    }

    /// Pulls in threads woken remotely and fires due timers.
    #[inline(always)]
    fn poll(&self) {
        // SAFETY: on this worker's thread; the borrow ends in this statement.
        let timers = !unsafe { self.local() }.timers.is_empty();
        if timers || self.relieving.load(Ordering::Relaxed) != usize::MAX || !self.bell.inject.is_empty() {
            self.poll_slow();
        }
    }

    #[cold]
    #[inline(never)]
    fn poll_slow(&self) {
        // SAFETY: on this worker's thread; no re-entrant call below.
        let l = unsafe { self.local() };
        let relieved = self.relieving.load(Ordering::Relaxed);
        if relieved != usize::MAX {
            self.relieve(relieved, l);
        }
        self.take_inbox(&mut l.runq);
        if !l.timers.is_empty() {
            let now = Instant::now();
            let mut fired = false;
            while let Some((kind, t)) = l.timers.pop_due(now) {
                fired = true;
                // A thread whose timer fires goes to the front of its level:
                // it waited its time already, and must not wait behind every
                // other thread's full slice too.
                match kind {
                    TimerKind::Sleep => l.runq.push_front(t),
                    // Parked threads are woken here, so they join this run queue.
                    TimerKind::ParkTimeout if t.park.unpark() => l.runq.push_front(t),
                    TimerKind::ParkTimeout => {}
                }
            }
            if fired {
                self.publish_deadline(l.timers.next_deadline());
            }
        }
    }

    /// A spare takes over the threads woken into the inject queue of the
    /// blocked worker it relieves (the queue is multi-consumer), until that
    /// worker runs again.
    #[cold]
    fn relieve(&self, index: usize, l: &mut Local) {
        let Some(blocked) = self.pool().and_then(|pool| pool.worker(index)) else { return };
        if !blocked.is_blocked() {
            self.relieving.store(usize::MAX, Ordering::Relaxed);
            blocked.relieved_by.store(usize::MAX, Ordering::Relaxed);
            return;
        }
        for t in blocked.bell.inject.take_all() {
            t.set_worker(self.index);
            l.runq.push(t);
        }
    }

    /// The next thread to run, with a stack; threads whose stack cannot be
    /// mapped end here with the error, reported through their join handle.
    #[inline(always)]
    fn next_ready(&self, running: Option<u8>) -> Option<TaskRef> {
        // SAFETY: on this worker's thread; the borrow ends in this statement.
        let next = unsafe { self.local() }.runq.pop(running)?;
        // SAFETY: the task came off our run queue, so we own its state.
        if unsafe { next.exec() }.sp != 0 {
            return Some(next);
        }
        self.first_run(next, running)
    }

    /// [`Worker::next_ready`] for a thread that never ran: gives it a stack
    /// and an initial frame; a thread that cannot get a stack fails its
    /// join, and the next one is tried.
    #[cold]
    #[inline(never)]
    fn first_run(&self, mut next: TaskRef, running: Option<u8>) -> Option<TaskRef> {
        loop {
            // SAFETY: the task came off our run queue, so we own its state.
            let exec = unsafe { next.exec() };
            if exec.sp != 0 {
                return Some(next);
            }
            // SAFETY: as above; the borrow of the stack cache ends here.
            match unsafe { self.local() }.stacks.take(next.spec.stack_size) {
                Ok(stack) => {
                    debug_assert!(stack.usable() > <Current as Isa>::INIT_FRAME_BYTES);
                    // SAFETY: a fresh stack nobody else uses, with room for the frame.
                    exec.sp = unsafe { Current::init_stack(stack.top(), task_entry, TaskRef::as_ptr(&next) as usize) };
                    exec.stack = Some(stack);
                    exec.preempt_depth = 1;
                    return Some(next);
                }
                Err(e) => {
                    exec.finished = true;
                    // SAFETY: the task came off our run queue, so we own it.
                    unsafe { next.fail_body(ThreadError::Stack(e)) };
                    next.pool.thread_ended();
                }
            }
            drop(next);
            // SAFETY: on this worker's thread; the borrow ends in this statement.
            next = unsafe { self.local() }.runq.pop(running)?;
        }
    }

    /// Switches the running green thread out for `next` (or the idle
    /// context), leaving `post(itself)` for whoever runs next. Returns when
    /// the thread is resumed, possibly on another worker: callers must
    /// re-fetch the worker afterwards.
    ///
    /// # Safety
    /// Called by the running green thread of `self`, inside a runtime
    /// critical section (preemption disabled), with no borrow of local state.
    unsafe fn switch_out(&self, next: Option<TaskRef>, post: impl FnOnce(TaskRef) -> Post) {
        // SAFETY: contract of this fn; the borrow ends before the switch.
        let l = unsafe { self.local() };
        let Some((cur, cur_exec, save_fp)) = take_current(l) else { return };
        // The slot is empty: the context that switched to us took it.
        debug_assert!(matches!(l.post, Post::None));
        l.post = post(cur);
        // SAFETY: the task is kept alive by the post, and nobody touches it
        // before the next context has finished the post; caller's contract.
        unsafe { self.switch_from(cur_exec, save_fp, next) }
    }

    /// A yield or preemption: puts the running thread at the back of its
    /// level and switches to `next`. The thread is queued before its
    /// registers are saved, which is sound because only this worker pops its
    /// run queue, and not before the switch is over (the queue is handed to
    /// a spare only at preempt depth 0, and this runs at depth 1).
    ///
    /// # Safety
    /// As [`Worker::switch_out`].
    #[inline(always)]
    unsafe fn requeue_and_switch(&self, next: TaskRef) {
        // SAFETY: contract of this fn; the borrow ends before the switch.
        let l = unsafe { self.local() };
        let Some((cur, cur_exec, save_fp)) = take_current(l) else { return };
        l.runq.push(cur);
        // SAFETY: the run queue keeps the task alive, and nothing pops it
        // before this switch is over (see above); caller's contract.
        unsafe { self.switch_from(cur_exec, save_fp, Some(next)) }
    }

    /// A yield among threads of one priority, the common case: swaps the
    /// running thread for the head of its level in one run-queue pass
    /// ([`RunQueue::rotate`]) and switches. False, having changed nothing,
    /// when other levels wait or the head never ran (it needs a stack
    /// first): the caller takes the general path.
    ///
    /// # Safety
    /// As [`Worker::switch_out`].
    #[inline(always)]
    unsafe fn rotate_and_switch(&self) -> bool {
        // SAFETY: contract of this fn; the borrow ends before the switch.
        let l = unsafe { self.local() };
        let Some((cur, cur_exec, save_fp)) = take_current(l) else { return false };
        // SAFETY: tasks in our run queue are ours to read.
        match l.runq.rotate(cur, |next| unsafe { next.exec() }.sp != 0) {
            // SAFETY: the run queue keeps the task alive, and nothing pops it
            // before this switch is over (see `requeue_and_switch`); caller's
            // contract.
            Ok(next) => unsafe { self.switch_from(cur_exec, save_fp, Some(next)) },
            Err(cur) => {
                l.current = Some(cur);
                return false;
            }
        }
        true
    }

    /// The switch itself, from the thread whose state is `cur_exec` (already
    /// out of `current`) to `next`, or to the idle context.
    ///
    /// # Safety
    /// As [`Worker::switch_out`]; `cur_exec` stays valid until this thread
    /// is resumed, and only this call touches it meanwhile.
    #[inline(always)]
    unsafe fn switch_from(&self, cur_exec: *mut Exec, save_fp: bool, next: Option<TaskRef>) {
        // SAFETY: contract of this fn; the borrow ends before the switch.
        let l = unsafe { self.local() };
        let (load_sp, restore_fp, depth, missed) = match next {
            Some(next) => {
                // SAFETY: `next` came off our run queue: we own its state.
                let exec = unsafe { next.exec() };
                if next.spec.prefetch_stack {
                    crate::arch::prefetch_read(exec.sp as *const u8);
                }
                next.set_worker(self.index);
                let missed = self.publish_running(&next) && self.missed_wake_up(&mut l.runq, next.spec.priority);
                let r = (exec.sp, next.spec.save_fp, exec.preempt_depth, missed);
                // SAFETY: `current` was emptied by our caller; a plain write
                // spares the drop check of the `None` there (4 instructions
                // of a yield's 165).
                unsafe { ptr::write(&mut l.current, Some(next)) };
                r
            }
            None => (l.idle_sp, true, 1, false),
        };
        self.count_switch();
        // SAFETY: `cur_exec` is valid (contract of this fn).
        unsafe { (*cur_exec).preempt_depth = preempt::switch_depth(depth) };
        if missed {
            // For the context switched in: look at the queue first thing.
            preempt::set_pending();
        }
        // SAFETY: `cur_exec` is valid (contract); `load_sp` was saved by a
        // context that is switched out (a queued task or the idle context),
        // and FP flags follow each context's own setting.
        let resumed_by = unsafe {
            Current::switch(
                &raw mut (*cur_exec).sp,
                load_sp,
                FpSwitch::new(save_fp, restore_fp),
                self as *const Worker as usize,
            )
        };
        // Resumed, by the worker now running us (another one after a
        // hand-off): it handed itself over, so no thread-local lookup.
        // SAFETY: every switch into a green thread passes its worker, which
        // lives as long as its pool, and the pool as long as our task.
        unsafe { &*(resumed_by as *const Worker) }.finish_post();
    }

    /// Runs a green thread from the idle context until something switches
    /// back to idle.
    fn run_from_idle(&self, next: TaskRef) {
        // SAFETY: on this worker's thread; the borrow ends before the switch.
        let l = unsafe { self.local() };
        // SAFETY: `next` came off our run queue.
        let exec = unsafe { next.exec() };
        let (load_sp, restore_fp, depth, priority) =
            (exec.sp, next.spec.save_fp, exec.preempt_depth, next.spec.priority);
        next.set_worker(self.index);
        // Leaving idle, the check below covers any priority.
        self.publish_running(&next);
        let slice_ns = match next.spec.slice_ns {
            0 if next.pool.is_preemptive() => next.pool.time_slice().as_nanos().min(u64::MAX as u128) as u64,
            0 => u64::MAX,
            s => s,
        };
        l.current = Some(next);
        let save_sp = &raw mut l.idle_sp;
        self.count_switch();
        self.bell.running.store(true, Ordering::SeqCst);
        // Wakers saw this worker idle and sent no signal.
        let missed = self.missed_wake_up(&mut l.runq, priority);
        monitor::worker_started_running(slice_ns);
        preempt::set_depth(depth);
        if missed {
            preempt::set_pending();
        }
        // SAFETY: `load_sp` belongs to a switched-out task we own; the idle
        // context's slot lives in this Worker, which outlives the switch.
        unsafe { Current::switch(save_sp, load_sp, FpSwitch::new(true, restore_fp), self as *const Worker as usize) };
        preempt::set_depth(1);
        self.bell.running.store(false, Ordering::SeqCst);
    }

    /// Finishes what the previous context left behind.
    #[inline(always)]
    fn finish_post(&self) {
        // SAFETY: on this worker's thread; the borrow ends in this statement.
        if matches!(unsafe { self.local() }.post, Post::None) {
            return;
        }
        // SAFETY: as above.
        let post = mem::take(&mut unsafe { self.local() }.post);
        self.finish_post_cold(post);
    }

    /// Parks, sleeps and exits. Each arm borrows the local state for one statement
    /// only; a task is dropped after that borrow ends (dropping may
    /// re-enter).
    #[cold]
    #[inline(never)]
    fn finish_post_cold(&self, post: Post) {
        match post {
            Post::None => {}
            // A park cut short by an unpark is a wake-up.
            Post::Park(t, deadline) => match (t.park.commit(), deadline) {
                (Commit::Runnable, _) => self.requeue_woken(t),
                (Commit::Parked, Some(d)) => self.add_timer(d, TimerKind::ParkTimeout, t),
                (Commit::Parked, None) => drop(t),
            },
            Post::Sleep(t, d) => self.add_timer(d, TimerKind::Sleep, t),
            Post::Exit(t) => {
                // SAFETY: the exited thread is switched out for good; we own it.
                let exec = unsafe { t.exec() };
                exec.finished = true;
                if let Some(stack) = exec.stack.take() {
                    // SAFETY: on this worker's thread; one-statement borrow.
                    unsafe { self.local() }.stacks.give(stack);
                }
                t.pool.thread_ended();
                drop(t);
            }
        }
    }

    #[inline]
    fn requeue_woken(&self, task: TaskRef) {
        // SAFETY: on this worker's thread; the borrow ends in this block.
        unsafe {
            let l = self.local();
            // A thread that outranks the one now running (e.g. its park was
            // cut short by an unpark): switch as soon as the runtime code
            // the running thread resumes in is done.
            if l.current.as_ref().is_some_and(|c| c.spec.priority < task.spec.priority) {
                preempt::set_pending();
            }
            l.runq.push(task)
        }
    }

    fn add_timer(&self, deadline: Instant, kind: TimerKind, task: TaskRef) {
        // SAFETY: on this worker's thread; the borrow ends in this block.
        let next = unsafe {
            let timers = &mut self.local().timers;
            timers.insert(deadline, kind, task);
            timers.next_deadline()
        };
        self.publish_deadline(next);
    }

    /// Sleeps until notified or until `deadline`, after spinning a little:
    /// a thread woken from another worker within [`IDLE_SPIN`] is picked up
    /// in a few hundred nanoseconds, and its waker skips the futex syscall
    /// (a sleeping worker takes ~10 µs to wake on these VMs). Go's idle Ms
    /// spin for the same reason.
    fn idle_wait(&self, deadline: Option<Instant>) {
        if self.idle_spin(deadline) {
            return;
        }
        self.bell.wake.store(SLEEPING, Ordering::SeqCst);
        if self.bell.inject.is_empty() {
            let mut timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if self.relieving.load(Ordering::Relaxed) != usize::MAX {
                // Relieving a blocked worker: look again soon, in case it
                // unblocked (then stop relieving) or a wake-up raced the notify.
                timeout = Some(timeout.map_or(Duration::from_millis(5), |t| t.min(Duration::from_millis(5))));
            }
            if timeout != Some(Duration::ZERO) {
                futex::wait(&self.bell.wake, SLEEPING, timeout);
            }
        }
        self.bell.wake.store(AWAKE, Ordering::SeqCst);
    }

    /// Polls for remote wake-ups for up to [`IDLE_SPIN`] (or until
    /// `deadline`); true when there is work or a timer is due.
    fn idle_spin(&self, deadline: Option<Instant>) -> bool {
        let start = Instant::now();
        let until = deadline.map_or(start + IDLE_SPIN, |d| d.min(start + IDLE_SPIN));
        loop {
            for _ in 0..64 {
                if !self.bell.inject.is_empty() {
                    return true;
                }
                crate::arch::spin_hint();
            }
            let now = Instant::now();
            if now >= until {
                return deadline.is_some_and(|d| now >= d);
            }
        }
    }
}

/// How long an idle worker polls for remote wake-ups before it sleeps.
const IDLE_SPIN: Duration = Duration::from_micros(50);

/// Takes the running thread out of `current`, with what its switch needs:
/// its execution state and whether it keeps FP state.
#[inline(always)]
fn take_current(l: &mut Local) -> Option<(TaskRef, *mut Exec, bool)> {
    let cur = l.current.take()?;
    check_fp_env(&cur);
    let (exec, save_fp) = (cur.exec_ptr(), cur.spec.save_fp);
    Some((cur, exec, save_fp))
}

/// Debug builds: a thread whose switches keep no FP control state must not
/// have changed it (see `ThreadBuilder::preserve_fp_env`). A broken promise
/// is reported with the thread's name and undone, so that the threads after
/// it on the worker keep the default. Where the ISA cannot tell at a switch
/// ([`crate::arch::fp_env_changed`]), nothing is checked.
#[inline(always)]
fn check_fp_env(task: &Task) {
    #[cfg(debug_assertions)]
    if !task.spec.save_fp
        && let Some(env) = crate::arch::fp_env_changed()
    {
        report_fp_env(task, env);
    }
    #[cfg(not(debug_assertions))]
    let _ = task;
}

#[cfg(debug_assertions)]
#[cold]
#[inline(never)]
fn report_fp_env(task: &Task, env: u64) {
    log::error!(
        "green thread {:?} changed the FP control state ({env:#x}) and yielded, locked or slept without \
         ThreadBuilder::preserve_fp_env(true): its neighbours would run under it; reset to the default",
        task.spec.name.as_deref().unwrap_or("<unnamed>")
    );
    crate::arch::reset_fp_env();
}

/// Processes the post-switch work on whatever worker the caller now runs on.
#[inline(never)]
fn after_switch() {
    if let Some(w) = Worker::current() {
        w.finish_post();
    }
}

/// The body of a worker OS thread.
pub(crate) fn run(pool: Arc<Pool>, index: usize) {
    let Some(w) = pool.worker(index) else { return };
    if let Some(cpu) = w.cpu()
        && let Err(e) = super::cpu::pin_current(cpu)
    {
        log::warn!("worker {index}: cannot pin to CPU {cpu}: {e}");
    }
    let _altstack = overflow::ensure_altstack()
        .map_err(|e| log::warn!("worker {index}: no alternate signal stack, overflows will not be reported: {e}"))
        .ok()
        .flatten();
    w.pool.store(Arc::as_ptr(&pool).cast_mut(), Ordering::Release);
    // SAFETY: gettid has no preconditions.
    w.watch.tid.store(unsafe { libc::gettid() }, Ordering::Relaxed);
    // Timers fire when asked, not up to 50 µs later; this also keeps a
    // sleep that preemption signals interrupt from growing by the slack on
    // every restart (the kernel reports remaining time including slack).
    // SAFETY: prctl(PR_SET_TIMERSLACK) only changes this thread's slack.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
    crate::arch::preempt_word::set_worker(w as *const Worker as usize);
    preempt::set_depth(1);
    loop {
        w.finish_post();
        w.poll();
        if let Some(next) = w.next_ready(None) {
            w.run_from_idle(next);
            continue;
        }
        if pool.is_finished() {
            break;
        }
        // SAFETY: on this worker's thread; the borrow ends in this statement.
        let deadline = unsafe { w.local() }.timers.next_deadline();
        w.idle_wait(deadline);
    }
    // Stale park-timeout timers may still hold finished tasks, and tasks
    // hold the pool: drop them now so the pool is freed with its last handle.
    // SAFETY: the worker is done; nothing else touches its local state.
    let (leftovers, timers) = unsafe {
        let l = w.local();
        (l.runq.drain(), mem::take(&mut l.timers))
    };
    drop((leftovers, timers));
    crate::arch::preempt_word::set_worker(0);
    preempt::set_depth(0);
    pool.worker_exited();
}

/// First code of every green thread, reached from the arch trampoline.
extern "C" fn task_entry(task: usize) -> ! {
    after_switch();
    preempt::set_depth(0);
    preempt::take_pending_now();
    // SAFETY: `task` is `TaskRef::as_ptr` of the task now in its worker's
    // `current` slot, which keeps it alive until the thread exits below.
    let task = unsafe { &*(task as *const Task) };
    // SAFETY: this is the running thread, on its own stack.
    unsafe { task.run_body() };
    // Green-locals are dropped by their own thread, like thread_local!s.
    task.locals.clear();
    exit_current()
}

fn exit_current() -> ! {
    let _g = preempt::disable();
    let w = Worker::current().expect("a green thread always runs on a worker");
    w.poll();
    let next = w.next_ready(None);
    // SAFETY: we are the running thread of `w`, preemption is disabled.
    unsafe { w.switch_out(next, Post::Exit) };
    // An exited thread is never resumed.
    std::process::abort()
}

/// `yield_now` for a green thread; false when the caller is not one.
/// Inlined into the caller, with the whole fast path: a call level around
/// the switch made a yield 8.3 -> 11.7 ns in A/B runs of `core_figures
/// yield` (the bench binary, where the compiler chose not to inline it,
/// measured 17 ns against core_figures' 14 in the same phase).
#[inline(always)]
pub(crate) fn yield_now() -> bool {
    let _g = preempt::disable();
    yield_inner()
}

/// Takes a pending preemption: yields until nothing that outranks the
/// caller was queued while it ran. Loops rather than recursing through
/// guard drops.
pub(crate) fn yield_pending() {
    let _q = preempt::Quiet::enter();
    while yield_inner() && preempt::take_pending_flag() {}
}

/// The body of a yield, inside a runtime critical section.
#[inline(always)]
fn yield_inner() -> bool {
    let Some((w, cur)) = Worker::current_task() else { return false };
    w.poll();
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
    let _g = preempt::disable();
    let Some((w, _)) = Worker::current_task() else { return false };
    w.poll();
    let next = w.next_ready(None);
    // SAFETY: we are the running thread of `w`, preemption is disabled.
    unsafe { w.switch_out(next, |t| Post::Sleep(t, deadline)) };
    true
}

/// `park`/`park_timeout` for a green thread; false when the caller is not one.
pub(crate) fn park(timeout: Option<Duration>) -> bool {
    let _g = preempt::disable();
    let Some((w, cur)) = Worker::current_task() else { return false };
    if cur.park.try_consume() {
        return true;
    }
    let deadline = match timeout {
        Some(Duration::ZERO) => return true,
        Some(d) => Instant::now().checked_add(d),
        None => None,
    };
    w.poll();
    let next = w.next_ready(None);
    // SAFETY: we are the running thread of `w`, preemption is disabled.
    unsafe { w.switch_out(next, |t| Post::Park(t, deadline)) };
    true
}

/// The preemption signal arrived on this OS thread, interrupting `pc`.
/// Runs inside the signal handler, on the interrupted green thread's stack.
pub(crate) fn on_preempt_signal(pc: usize, ctx: *mut libc::c_void) {
    if preempt::depth() == 0
        && let Some((w, _)) = Worker::current_task()
    {
        // Whatever the interrupted instruction, the local state is at rest.
        w.hand_off_queue();
    }
    if preempt::depth() != 0 {
        // In a runtime or user critical section: taken when it ends.
        preempt::set_pending();
        if let Some(w) = Worker::current() {
            w.watch.deferred.fetch_add(1, Ordering::Relaxed);
        }
        return;
    }
    let Some((w, _)) = Worker::current_task() else { return };
    if std::thread::panicking() || !crate::preempt::safepoint::is_safe(pc) {
        // Unwinding (std counts panics per OS thread), in a shared library
        // or in std: the monitor tries again a tick later, and the next
        // runtime call takes it.
        preempt::set_pending();
        w.watch.deferred.fetch_add(1, Ordering::Relaxed);
        return;
    }
    preempt::set_depth(1);
    // The handler runs with the signal blocked; the thread we switch to must
    // stay preemptible. (The preempted thread gets its own mask back from
    // rt_sigreturn when it resumes.)
    crate::preempt::signal::unblock();
    // Re-fetched each turn: the borrow of `current` must not span a switch.
    while let Some((w, cur)) = Worker::current_task() {
        w.poll();
        match w.next_ready(Some(cur.spec.priority)) {
            Some(next) => {
                w.watch.preemptions.fetch_add(1, Ordering::Relaxed);
                // SAFETY: we are the running thread of `w` (at a safe point),
                // with preemption disabled.
                unsafe { w.requeue_and_switch(next) };
            }
            // Nothing else to run: the thread keeps the CPU for a new slice.
            None => {
                w.count_switch();
                break;
            }
        }
        // Resumed. If something that outranks us was queued meanwhile, go
        // round again rather than return to user code with it waiting.
        if !preempt::take_pending_flag() {
            break;
        }
    }
    // Block the signal again for the rest of the handler: once the depth is
    // back to zero, its last instructions are this crate's code, and a
    // second preemption landing there would nest a frame whose return
    // undoes what this one set up below (and, after a hand-off, could
    // resume this frame on yet another worker). rt_sigreturn restores the
    // interrupted code's own mask.
    crate::preempt::signal::block();
    // After a blocked-worker hand-off the thread resumes on another OS
    // thread: the context rt_sigreturn loads must not bring back the first
    // one's thread pointer (riscv64's tp).
    // SAFETY: `ctx` is the kernel's writable ucontext of the running handler.
    unsafe { crate::arch::signal_adopt_thread(ctx) };
    preempt::set_depth(0);
}

/// Stack-overflow lookup for the SIGSEGV handler: the name of the green
/// thread running on this OS thread and the bottom of its stack (the
/// handler decides whether the fault is an overflow).
pub(crate) fn guard_lookup() -> Option<(&'static [u8], crate::stack::Bottom)> {
    let w = crate::arch::preempt_word::worker() as *const Worker;
    // SAFETY: read-only peek from a signal handler on the worker's own
    // thread; a worker outlives its thread's execution.
    let w = unsafe { w.as_ref() }?;
    // SAFETY: as above; we only read `current` and its stack bounds.
    let task = unsafe { (*w.local.get()).current.as_ref() }?;
    // SAFETY: the task is the one running here, so its state is ours to read.
    let bottom = unsafe { task.exec() }.stack.as_ref()?.bottom();
    // SAFETY: the name lives as long as the task, which lives until the
    // process aborts right after the handler prints it (or, when the fault
    // is not an overflow, until the handler returns).
    Some((unsafe { mem::transmute::<&[u8], &'static [u8]>(task.name_bytes()) }, bottom))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stall_hands_off_only_after_two_cpu_samples_show_no_progress() {
        let w = Worker::new(0, None, true);
        w.watch.seen_at.store(1_000, Ordering::Relaxed);
        assert!(!w.idle_on_cpu(5_000_000, 100), "the first sample of a stall decides nothing");
        assert!(w.idle_on_cpu(10_000_000, 200_000), "0.2 ms of CPU in 5 ms: blocked");
        assert!(!w.idle_on_cpu(15_000_000, 3_000_000), "2.8 ms of CPU in 5 ms: running");
        // A new stall (the switch count moved): samples from the old one do not count.
        w.watch.seen_at.store(20_000_000, Ordering::Relaxed);
        assert!(!w.idle_on_cpu(25_000_000, 3_000_000));
        assert!(w.idle_on_cpu(30_000_000, 3_000_000));
    }
}
