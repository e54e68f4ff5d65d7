//! A worker: a run queue of green threads and everything that schedules
//! them (timers, the inbox of remote wake-ups, the stacks it recycles),
//! run by one OS thread at a time, its owning [host](super::host).
//!
//! Green threads switch directly to one another; the host's own OS stack
//! (the *scheduling context*) only runs when nothing is runnable, to sleep
//! on a futex until work or a timer is due, and to hand the worker to
//! another host. Whatever a switch leaves behind (the thread that parked,
//! slept or exited) is handed to the context that runs next as a [`Post`]
//! and dealt with there, once the old thread's registers are safely saved:
//! only then may another worker pick it up. A thread that yields goes
//! straight back on this worker's run queue, which no other worker pops.
//!
//! The files:
//! - `wake.rs`: making threads runnable from anywhere, and the worker's
//!   side of that (the inbox, timers, idle sleep);
//! - `switch.rs`: choosing the next thread and the cooperative switch;
//! - `ops.rs`: what a green thread calls (yield, sleep, park, exit);
//! - `hold.rs`: hosts taking the worker over from one another (async
//!   preemption, panicking threads, threads blocked in the kernel), and the
//!   host threads' scheduling loop;
//! - `signal.rs`: the preemption signal's handler;
//! - `steal.rs`: work stealing (work-stealing pools only);
//! - `watch.rs`: what the monitor reads and decides.

mod hold;
mod host_loop;
mod ops;
mod signal;
#[cfg(test)]
pub(crate) mod stall_hook;
mod steal;
mod switch;
mod wake;
mod watch;

pub(crate) use host_loop::spawn_host;
pub(crate) use ops::{clear_current_locals, park, profile_exit_current, sleep, take_pending, yield_now};
pub(crate) use signal::{guard_lookup, on_preempt_signal};

use super::host::{self, Host, Hosts};
use super::inbox::Inbox;
use super::latency::Histogram;
use super::pool::Pool;
use super::steal::StealConfig;
use super::task::{Task, TaskRef};
use super::timers::Timers;
use crate::preempt::{self, NoPreempt};
use crate::runtime::run_queue::RunQueue;
use crate::stack::pool::LocalCache;
use std::cell::UnsafeCell;
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, Ordering, fence};
use std::time::Instant;

const AWAKE: u32 = 0;
const SLEEPING: u32 = 1;
/// Idle in the network poller's `epoll_wait` (`io_hook`): woken through
/// its eventfd, not the futex.
const POLLING: u32 = 2;

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
    /// The CPU this worker's hosts are pinned to.
    cpu: Option<usize>,
    /// The NUMA node (a [`numa`](super::numa) index) of `cpu`, 0 when
    /// unpinned, for
    /// [`MigrationPolicy::WithinNode`](crate::MigrationPolicy::WithinNode).
    node: usize,
    /// What wakers on other OS threads touch.
    bell: Doorbell,
    /// The pool this worker belongs to (it owns the worker, so it outlives
    /// every use); set when the first host starts.
    pool: AtomicPtr<Pool>,
    /// Context switches performed by this worker (the monitor watches it
    /// move; a preemption check that finds nothing else to run bumps it too).
    switches: AtomicU64,
    /// Published for the monitor and for wake-up preemption.
    watch: Watch,
    pub(crate) hosts: Hosts,
    /// Work stealing: the settings, and the other workers nearest first.
    steal: Option<(StealConfig, Box<[usize]>)>,
    /// What thieves read and write.
    steal_line: StealLine,
    local: UnsafeCell<Local>,
    /// Debug builds: `local` is borrowed (see [`Worker::with_local`]).
    #[cfg(debug_assertions)]
    local_borrowed: AtomicBool,
}

/// Everything a waker on another OS thread reads or writes, in one cache
/// line of its own: a cross-worker wake-up then moves that line to the
/// waker and back, instead of one line per field scattered over `Worker`.
#[repr(C, align(64))]
struct Doorbell {
    /// Threads made runnable from other OS threads.
    inject: Inbox,
    /// Futex word the scheduling context sleeps on.
    wake: AtomicU32,
    /// A green thread (not the scheduling context) is running.
    running: AtomicBool,
    /// Priority of the running green thread.
    priority: AtomicU8,
}

/// What other workers of a work-stealing pool read and write, in a cache
/// line of its own (`steal.rs`).
#[repr(C, align(64))]
struct StealLine {
    /// The index + 1 of a worker asking this one for threads; 0: none.
    request: std::sync::atomic::AtomicUsize,
    /// Threads in the run queue as of the last scheduling decision: a hint
    /// for thieves.
    waiting: AtomicU32,
    /// Threads this worker received from others' queues.
    stolen: AtomicU64,
}

/// What a worker publishes for the monitor and for other workers: relaxed
/// stores on switches, never a clock read on the hot path.
struct Watch {
    /// Kernel thread id of the owning host, for tgkill; 0 until one runs.
    tid: AtomicI32,
    /// Time slice of the running green thread in ns; 0 = the pool's.
    slice_ns: AtomicU64,
    /// Earliest timer deadline (clock::now_ns scale); u64::MAX = none.
    next_deadline: AtomicU64,
    /// A thread that outranks the running one was queued from elsewhere;
    /// the monitor keeps signalling until the worker has looked at its queue.
    urgent: AtomicBool,
    /// When a thread woken by readiness was last queued here
    /// (`clock::now_ns`): for [`watch::IO_RECENT_NS`] after, while threads
    /// wait in the run queue or the inbox, the running one gets a short
    /// slice.
    io_at: AtomicU64,
    /// When the monitor last found a thread here that had run a short
    /// slice without a switch while woken threads waited (monitor only):
    /// until [`watch::LONG_RUN_MEMORY_NS`] after, it looks every short
    /// slice; otherwise every [`watch::IO_COARSE_LOOK_NS`].
    long_run_at: AtomicU64,
    /// Preemption checks that found nothing else to run: the running
    /// thread got a new slice without a switch.
    renewals: AtomicU64,
    /// Monitor's bookkeeping: switches plus renewals it last saw, and when
    /// (slice timing), the switch count alone and when it last moved (an
    /// owner stuck in the kernel makes no switch, whatever the signals
    /// find), and how long it waits before repeating a signal that was not
    /// acted on.
    seen_progress: AtomicU64,
    progress_at: AtomicU64,
    seen_switches: AtomicU64,
    seen_at: AtomicU64,
    /// The switch count when `watch_between_threads` last released held
    /// threads, plus one (0: never): they are not recalled before the
    /// owner switches again.
    released_at_switch: AtomicU64,
    retry_ns: AtomicU64,
    /// The switch count when the monitor last signalled: a signal that
    /// arrives after the worker switched anyway is stale.
    signalled_at: AtomicU64,
    /// Preemptions taken, and signals that could not be acted on at once.
    preemptions: AtomicU64,
    deferred: AtomicU64,
    /// The monitor found the owner blocked in the kernel: the signal
    /// handler detaches the running thread, if the worker has not switched
    /// since (`detach_at`, the switch count then).
    detach: AtomicBool,
    detach_at: AtomicU64,
    /// When the detach was asked for (clock::now_ns scale).
    detach_asked: AtomicU64,
    /// The switch count when a preemption was deferred: taken when the
    /// scope ends only if the same thread still runs.
    deferred_at: AtomicU64,
    /// Threads detached from this worker while blocked in the kernel.
    hand_offs: AtomicU64,
    /// The monitor's last signal was only to have a steal request
    /// answered: the handler answers it and preempts nothing.
    steal_only: AtomicBool,
    /// Threads this worker took from another one's wake-up because they
    /// outranked both ([`Worker::takes_outranking_wake`]).
    wake_migrations: AtomicU64,
    /// The monitor's last sample of the owner's CPU clock during a stall,
    /// and when it took it (0: none): a thread blocked in the OS uses no
    /// CPU, a hog does.
    probe_cpu_ns: AtomicU64,
    probe_at: AtomicU64,
    /// Sampled switch timing (`switch.rs`): the sum and count of the
    /// samples taken.
    switch_sum_ns: AtomicU64,
    switch_samples: AtomicU64,
    /// Sampled scheduling latencies of the threads this worker switched
    /// in (`runtime::sampling`).
    latency: Histogram,
    /// The running thread's id as the signal handler last found it, and
    /// the switch count then (it still runs while the count is the same):
    /// for the health monitor, which names a thread that runs long.
    running_id: AtomicU64,
    running_id_at: AtomicU64,
    /// The last thread handed off its worker (blocked in the kernel).
    handed_off_id: AtomicU64,
    /// Preemptions deferred because the worker has as many OS threads as
    /// it may, none free (`defer_for_host`).
    no_host: AtomicU64,
    /// Time the scheduling context spent waiting for work, and when the
    /// first host started (clock::now_ns scale; 0: not yet).
    idle_ns: AtomicU64,
    started_ns: AtomicU64,
}

/// State only the worker's owning host touches.
struct Local {
    runq: RunQueue,
    current: Option<TaskRef>,
    /// The owning host.
    host: *const Host,
    /// A held thread that a green thread chose to run next: the scheduling
    /// context hands the worker to its host.
    handover: Option<TaskRef>,
    post: Post,
    timers: Timers,
    stacks: LocalCache,
    /// Wake-ups in a row that went to the run queue's wake slot.
    wake_streak: u8,
    /// When the switch that left `post` began, if it is a sampled one
    /// (`switch.rs`); 0 otherwise.
    post_t0: u64,
}

// SAFETY: `local` is only accessed by the worker's owning host (through the
// OS thread's worker slot, which only the owner has set), and ownership
// passes between hosts with release/acquire ordering (`host` module); the
// other fields are thread-safe.
unsafe impl Sync for Worker {}
// SAFETY: the only non-Send field is `Local::host`, a pointer to one of
// this worker's own hosts, which live as long as the worker.
unsafe impl Send for Worker {}

impl Worker {
    /// Worker `index`, pinned to `cpu`, of a work-stealing pool when
    /// `steal` gives its settings and victims.
    pub(crate) fn new(index: usize, cpu: Option<usize>, steal: Option<(StealConfig, Box<[usize]>)>) -> Self {
        Worker {
            index,
            cpu,
            node: cpu.and_then(|c| super::numa::get_numa_topology().node_of_cpu(c)).unwrap_or(0),
            bell: Doorbell {
                inject: Inbox::new(),
                wake: AtomicU32::new(AWAKE),
                running: AtomicBool::new(false),
                priority: AtomicU8::new(0),
            },
            pool: AtomicPtr::new(ptr::null_mut()),
            switches: AtomicU64::new(0),
            watch: Watch {
                tid: AtomicI32::new(0),
                slice_ns: AtomicU64::new(0),
                next_deadline: AtomicU64::new(u64::MAX),
                urgent: AtomicBool::new(false),
                io_at: AtomicU64::new(0),
                long_run_at: AtomicU64::new(0),
                renewals: AtomicU64::new(0),
                seen_progress: AtomicU64::new(0),
                progress_at: AtomicU64::new(0),
                seen_switches: AtomicU64::new(0),
                seen_at: AtomicU64::new(0),
                released_at_switch: AtomicU64::new(0),
                retry_ns: AtomicU64::new(0),
                signalled_at: AtomicU64::new(u64::MAX),
                preemptions: AtomicU64::new(0),
                deferred: AtomicU64::new(0),
                detach: AtomicBool::new(false),
                detach_at: AtomicU64::new(0),
                detach_asked: AtomicU64::new(0),
                deferred_at: AtomicU64::new(u64::MAX),
                hand_offs: AtomicU64::new(0),
                steal_only: AtomicBool::new(false),
                wake_migrations: AtomicU64::new(0),
                probe_cpu_ns: AtomicU64::new(0),
                probe_at: AtomicU64::new(0),
                switch_sum_ns: AtomicU64::new(0),
                switch_samples: AtomicU64::new(0),
                latency: Histogram::default(),
                running_id: AtomicU64::new(0),
                running_id_at: AtomicU64::new(u64::MAX),
                handed_off_id: AtomicU64::new(0),
                no_host: AtomicU64::new(0),
                idle_ns: AtomicU64::new(0),
                started_ns: AtomicU64::new(0),
            },
            hosts: Hosts::new(),
            steal,
            steal_line: StealLine {
                request: std::sync::atomic::AtomicUsize::new(0),
                waiting: AtomicU32::new(0),
                stolen: AtomicU64::new(0),
            },
            local: UnsafeCell::new(Local {
                runq: RunQueue::default(),
                current: None,
                host: ptr::null(),
                handover: None,
                post: Post::None,
                timers: Timers::default(),
                stacks: LocalCache::default(),
                wake_streak: 0,
                post_t0: 0,
            }),
            #[cfg(debug_assertions)]
            local_borrowed: AtomicBool::new(false),
        }
    }

    /// The worker the calling OS thread owns, if any.
    ///
    /// Read from the OS thread's runtime slot (`arch::preempt_word`), never
    /// from an address computed earlier: a green thread may resume on
    /// another host after any cooperative switch.
    #[inline]
    pub(crate) fn current() -> Option<&'static Worker> {
        let w = crate::arch::preempt_word::worker() as *const Worker;
        // SAFETY: the slot is set by a host while it owns the worker, and a
        // host's thread holds an `Arc<Pool>`, which keeps the Worker alive.
        unsafe { w.as_ref() }
    }

    /// Runs `f` on the worker-private state: the one way to reach it. The
    /// borrow cannot leave `f`, and debug builds abort on a nested one (a
    /// call inside `f` that re-enters the worker).
    ///
    /// # Safety
    /// Only on this worker's owning host, with preemption disabled (so the
    /// signal handler does not borrow it meanwhile); `f` must not switch,
    /// hand the worker over, or call back into the worker (scheduling,
    /// unparking, dropping what may be a task's last reference).
    #[inline(always)]
    unsafe fn with_local<R>(&self, f: impl FnOnce(&mut Local) -> R) -> R {
        #[cfg(debug_assertions)]
        let _borrow = LocalBorrow::enter(&self.local_borrowed);
        // SAFETY: the caller's contract: on the owner, one borrow at a time.
        f(unsafe { &mut *self.local.get() })
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

    /// Threads this worker received from other workers' queues.
    pub(crate) fn stolen(&self) -> u64 {
        self.steal_line.stolen.load(Ordering::Relaxed)
    }

    /// Sampled context-switch timing: the sum of the samples in ns and
    /// their number.
    pub(crate) fn switch_samples(&self) -> (u64, u64) {
        (self.watch.switch_sum_ns.load(Ordering::Relaxed), self.watch.switch_samples.load(Ordering::Relaxed))
    }

    /// The thread running now, as the last preemption signal found it,
    /// if it has not switched since: its id (0: unknown), and whether it
    /// was in a preempt-disable scope then (when the handler cannot look).
    pub(crate) fn running_thread(&self) -> (u64, bool) {
        let now = self.switches();
        let w = &self.watch;
        let in_scope = w.deferred_at.load(Ordering::Relaxed) == now && w.deferred.load(Ordering::Relaxed) > 0;
        let id = if w.running_id_at.load(Ordering::Relaxed) == now { w.running_id.load(Ordering::Relaxed) } else { 0 };
        (id, in_scope)
    }

    /// Preemptions deferred for want of a free OS thread, and the OS
    /// threads (hosts) the worker has now.
    pub(crate) fn spare_pressure(&self) -> (u64, usize) {
        (self.watch.no_host.load(Ordering::Relaxed), self.hosts.live())
    }

    /// The last thread handed off this worker (0: none yet).
    pub(crate) fn last_handed_off(&self) -> u64 {
        self.watch.handed_off_id.load(Ordering::Relaxed)
    }

    /// Sampled scheduling latencies of the threads it switched in.
    pub(crate) fn latency(&self) -> &Histogram {
        &self.watch.latency
    }

    /// Time spent idle, and when the worker started (clock::now_ns scale,
    /// 0 before it did).
    pub(crate) fn idle_and_start_ns(&self) -> (u64, u64) {
        (self.watch.idle_ns.load(Ordering::Relaxed), self.watch.started_ns.load(Ordering::Relaxed))
    }

    /// Whether a green thread runs on it now.
    pub(crate) fn is_running(&self) -> bool {
        self.bell.running.load(Ordering::Relaxed)
    }

    /// Threads in its run queue as of its last scheduling decision.
    pub(crate) fn waiting(&self) -> usize {
        self.steal_line.waiting.load(Ordering::Relaxed) as usize
    }

    pub(crate) fn wake_migrations(&self) -> u64 {
        self.watch.wake_migrations.load(Ordering::Relaxed)
    }

    pub(crate) fn preemptions(&self) -> u64 {
        self.watch.preemptions.load(Ordering::Relaxed)
    }

    pub(crate) fn deferred_preemptions(&self) -> u64 {
        self.watch.deferred.load(Ordering::Relaxed)
    }

    /// The CPU this worker is pinned to.
    pub(crate) fn cpu(&self) -> Option<usize> {
        self.cpu
    }

    /// The pool this worker belongs to, once its first host has started.
    fn pool(&self) -> Option<&Pool> {
        // SAFETY: set from the Arc<Pool> every host thread holds; the pool
        // owns this worker, so it is alive whenever we are used.
        unsafe { self.pool.load(Ordering::Acquire).as_ref() }
    }

    #[inline]
    fn count_switch(&self) {
        self.switches.store(self.switches.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Whether the worker switched since a preemption was deferred (the
    /// deferral then concerned another thread).
    fn deferred_since_switched(&self) -> bool {
        self.watch.deferred_at.load(Ordering::Relaxed) != self.switches()
    }

    /// A preemption check found nothing else to run: the running thread
    /// goes on with a new slice. Not a switch: an owner blocked in the
    /// kernel, whose syscall the signal interrupts, must still look stuck.
    fn renew_slice(&self) {
        let r = &self.watch.renewals;
        r.store(r.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
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
        self.watch.next_deadline.store(next.map_or(u64::MAX, super::clock::ns_of), Ordering::Relaxed);
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
    /// order; false when there were none. Async-signal-safe.
    fn take_inbox(&self, runq: &mut RunQueue) -> bool {
        if self.bell.inject.is_empty() {
            self.publish_waiting(runq);
            return false;
        }
        self.watch.urgent.store(false, Ordering::Relaxed);
        for t in self.bell.inject.take_all() {
            runq.push(t);
        }
        self.publish_waiting(runq);
        true
    }

    /// Publishes how many threads `runq` holds, for thieves (`steal.rs`).
    /// A hint: refreshed at every switch, every look at the inbox (so at
    /// every preemption tick), and wherever threads are queued in bulk.
    #[inline(always)]
    fn publish_waiting(&self, runq: &RunQueue) {
        self.steal_line.waiting.store(runq.len() as u32, Ordering::Relaxed);
    }

    /// The green thread running on the calling worker, if the caller is one.
    ///
    /// Only with preemption disabled (a guard, or the runtime's own depth),
    /// and neither reference may be kept across a switch: a green thread
    /// switched out cooperatively may resume on another host. From
    /// preemptible code use [`Worker::current_task_arc`] or
    /// [`Worker::is_green`]. A thread detached from its worker (blocked in
    /// the kernel) is not found here: see [`Worker::running_task`].
    #[inline]
    pub(crate) fn current_task<'g>(_np: NoPreempt<'g>) -> Option<(&'static Worker, &'g TaskRef)> {
        let w = Worker::current()?;
        // SAFETY: on this worker's owner, preemption disabled (`_np`).
        let t: *const TaskRef = unsafe { w.with_local(|l| l.current.as_ref().map(ptr::from_ref)) }?;
        // SAFETY: the task in `current` stays there until this thread
        // switches out, which only this very thread can make happen, and
        // not by preemption while `_np` lives.
        Some((w, unsafe { &*t }))
    }

    /// The green thread running on this OS thread, with or without its
    /// worker (a detached thread runs on its host without one).
    #[inline]
    fn running_task(np: NoPreempt<'_>) -> Option<&TaskRef> {
        match Worker::current_task(np) {
            Some((_, t)) => Some(t),
            None => Worker::detached_task(np),
        }
    }

    #[cold]
    fn detached_task<'g>(_np: NoPreempt<'g>) -> Option<&'g TaskRef> {
        let h = host::detached()?;
        // SAFETY: the calling OS thread is that host; the kept thread is the
        // caller itself, alive while it runs.
        let t: *const TaskRef = unsafe { h.kept() }?;
        // SAFETY: as above; it stays kept while preemption is off (`_np`).
        Some(unsafe { &*t })
    }

    /// The calling green thread's task, from any code (None on a plain OS
    /// thread). The task is the thread itself, whichever host runs it.
    pub(crate) fn current_task_arc() -> Option<TaskRef> {
        let g = preempt::disable();
        Worker::running_task(g.token()).cloned()
    }

    /// The pool running the calling green thread (None on a plain OS thread).
    pub(crate) fn current_pool() -> Option<Arc<super::pool::Pool>> {
        let g = preempt::disable();
        Worker::running_task(g.token()).map(|t| Arc::clone(&t.pool))
    }

    /// The calling green thread's task without touching its reference
    /// count. The pointer stays valid until the thread ends (the runtime
    /// holds the running thread's task), so only that thread may use it.
    pub(crate) fn current_task_ptr() -> Option<*const Task> {
        let g = preempt::disable();
        Worker::running_task(g.token()).map(TaskRef::as_ptr)
    }

    /// Whether the caller is a green thread. Stable across hand-overs: a
    /// green thread only ever runs on hosts.
    pub(crate) fn is_green() -> bool {
        Worker::current_task_ptr().is_some()
    }
}

/// Debug builds: marks the worker-private state borrowed for the length of
/// a [`Worker::with_local`] call. A nested borrow is a runtime bug that
/// could corrupt the run queue, reported and aborted on the spot (this may
/// run in the signal handler, where a panic may not).
#[cfg(debug_assertions)]
struct LocalBorrow<'a>(&'a AtomicBool);

#[cfg(debug_assertions)]
impl<'a> LocalBorrow<'a> {
    #[inline(always)]
    fn enter(flag: &'a AtomicBool) -> Self {
        if flag.swap(true, Ordering::Relaxed) {
            hold::unreachable_abort("the worker's local state was borrowed twice (with_local re-entered)");
        }
        LocalBorrow(flag)
    }
}

#[cfg(debug_assertions)]
impl Drop for LocalBorrow<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}
