//! Hosts: the OS threads that run a worker's green threads (Go's Ms; the
//! worker is the P, the run queue and everything else that schedules).
//!
//! A worker is run by one host at a time, its *owner*. Green threads switch
//! among themselves in user space on the owner, and most of the time a
//! worker keeps one host for life. Another host takes over only when the
//! running thread must keep its OS thread while the worker goes on:
//!
//! - **An asynchronous preemption.** The thread was interrupted at an
//!   arbitrary instruction, possibly in the middle of a `RefCell` borrow of
//!   a `thread_local!`, inside libc's malloc with an arena locked, or in
//!   std's stdout lock. A sibling green thread that ran next on the same OS
//!   thread would see all of that half-done. So the preempted thread stays
//!   on its OS thread, which sleeps inside the signal handler (the host is
//!   *held*), and the worker moves to another host; when the scheduler
//!   picks the thread again, its host is woken and takes the worker back.
//!   Per-OS-thread state then behaves exactly as under kernel preemption.
//! - **A cooperative switch by a panicking thread.** std counts panics per
//!   OS thread; a sibling must not inherit the count, so the thread is held
//!   as above.
//! - **A thread blocked in the kernel** (a blocking syscall, a contended
//!   `std::sync::Mutex`). The monitor notices the worker making no progress
//!   while its owner sleeps in the kernel, and the signal handler *detaches*
//!   the thread: the host keeps it and goes back into its syscall without a
//!   worker, while another host runs the worker's queue. When the thread
//!   next calls into the runtime (or the monitor sees it running without a
//!   worker), it queues itself on its worker like any woken thread and its
//!   host sleeps until it is picked.
//!
//! Hand-over protocol, between the owner `X` and the host `H` it gives the
//! worker to:
//! 1. `X` finishes everything the worker owes (no post-switch work is left
//!    for `H`, which may resume inside a signal handler where only
//!    async-signal-safe code may run).
//! 2. `X` writes the thread `H` starts with into `H.resume` (a held host's
//!    own thread, or the next thread for an idle one) and stores `RUN` in
//!    `H.cmd` with release ordering, then futex-wakes it. From then on `X`
//!    touches nothing of the worker's.
//! 3. `H` sees `RUN` (acquire), so everything `X` did to the worker happens
//!    before `H` uses it.
//! 4. A host that expects to be handed the worker again stores `WAIT` in
//!    its own `cmd` before it makes itself findable (queues its held thread,
//!    or pushes itself on the idle list), so a hand-over that comes early is
//!    never lost: its futex wait returns at once.
//!
//! Idle hosts wait on a per-worker lock-free list. Only the owner pops it
//! (in the signal handler too: it must not allocate or lock), so popping is
//! free of ABA: a host can only be pushed back after the one consumer
//! popped it. Hosts going idle push themselves.
//!
//! Rejected: switching to the next green thread inside the signal handler,
//! on the same OS thread (what this crate did before). It is cheaper (no
//! futex hand-over on top of the signal: bench/README.md, "Preemption's
//! hand-over"), but it is only sound where the interrupted code keeps
//! nothing per OS thread, which no symbol table can tell: the program's own
//! Rust code borrows thread-locals too, and code the compiler inlines into
//! std's generics carries std's path. Hijacking the return address of the
//! innermost frame that returns into "safe" code (as .NET suspends threads)
//! makes libc preemptible but not thread-locals held by the program's own
//! code.

use super::futex;
use super::task::{Task, TaskRef};
use std::cell::{Cell, UnsafeCell};
use std::ptr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// `Host::cmd`: sleep until told otherwise.
const WAIT: u32 = 0;
/// `Host::cmd`: take the worker (and start with `resume`).
const RUN: u32 = 1;
/// `Host::cmd`: the pool is finished; end the OS thread.
const EXIT: u32 = 2;
/// `Host::cmd`, for a held host: run the thread on without the worker for
/// now (see [`Host::release`]).
const RELEASE: u32 = 3;
/// `Host::cmd` once a hand-over was taken, until the host can be found
/// again ([`Host::expect_turn`]): a release that raced the hand-over finds
/// no `WAIT` to replace. For a released host, while its thread runs
/// without the worker.
const BUSY: u32 = 4;
/// `Host::cmd` of a held host whose thread the owner picked
/// ([`Host::claim`]): the hand-over is on its way, and a release comes too
/// late.
const CLAIMED: u32 = 5;
/// `Host::cmd` of a released host whose thread the owner picked meanwhile
/// ([`Host::claim`]): the thread's queue entry waits in `resume`, and the
/// host queues it again when its thread wants the worker back
/// ([`Host::wait_again`]).
const UNQUEUED: u32 = 6;
/// `Host::cmd`: as `WAIT`, for a held host whose thread is runnable and was
/// stopped at an arbitrary instruction (a preemption, a recall), perhaps
/// holding an allocator lock: the monitor may release it
/// ([`Host::release`]). The only value a release replaces, so that a host
/// that is no longer in that state can never be released.
const WAIT_RELEASABLE: u32 = 7;

/// Most hosts one worker may have: the owner, plus one per thread that is
/// held or detached, plus idle ones. Past it, a preemption waits for the
/// thread's next cooperative point (see docs/preemption.md, "Preemption").
pub(crate) const MAX_HOSTS_PER_WORKER: usize = 1024;

/// Idle hosts a worker keeps for the next preemption; more exit.
const IDLE_KEPT: usize = 4;

/// What a host is doing, for the monitor and the counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum HostState {
    /// On the idle list, or being started.
    Idle = 0,
    /// Owns its worker.
    Owner = 1,
    /// Sleeps holding a thread that waits for its turn.
    Held = 2,
    /// Runs (or blocks in the kernel) holding a thread, without the worker.
    Detached = 3,
    /// Its OS thread ended; the slot may be reused.
    Exited = 4,
    /// Sleeps for good on the stack of a thread that parked forever while
    /// it kept the host (it was unwinding a panic) and that nobody can wake
    /// any more: no longer counted as live, never reused.
    Leaked = 5,
    /// A held host told to run its thread on without the worker, while the
    /// thread's entry stays queued on it (see [`Host::release`]).
    Released = 6,
}

/// How a held host's wait ended.
pub(crate) enum Held {
    /// Handed the worker, to resume its thread.
    Run(TaskRef),
    /// Released: run the thread on without the worker.
    Release,
}

pub(crate) struct Host {
    /// The futex word the host sleeps on. Who moves it where:
    ///
    /// | from       | to         | by                                           |
    /// |------------|------------|----------------------------------------------|
    /// | any        | `WAIT`     | the host, before it can be found (step 4)    |
    /// | `WAIT`     | `RUN`      | the owner handing an idle host the worker    |
    /// | `CLAIMED`  | `RUN`      | the owner handing a held host the worker     |
    /// | `WAIT`     | `CLAIMED`  | the owner picking the held host's thread     |
    /// | any        | `WAIT_RELEASABLE` | the host, held with a runnable thread stopped anywhere |
    /// | `WAIT_RELEASABLE` | `CLAIMED`, `RUN` | as from `WAIT`                  |
    /// | `WAIT_RELEASABLE` | `RELEASE` | the monitor, owner stuck in the kernel |
    /// | `RELEASE`  | `CLAIMED`  | the owner: the hand-over wins                |
    /// | `RELEASE`  | `BUSY`     | the released host, before its thread runs    |
    /// | `RUN`      | `BUSY`     | the host taking the worker                   |
    /// | `BUSY`     | `UNQUEUED` | the owner picking a released host's thread   |
    /// | `BUSY`     | `WAIT`     | the released host, its thread back           |
    /// | `UNQUEUED` | `WAIT`     | the released host, requeueing its thread     |
    /// | `WAIT`     | `EXIT`     | the last owner dismissing an idle host       |
    cmd: AtomicU32,
    state: AtomicU8,
    /// The thread to start with when told to `RUN`; written by the host
    /// that hands the worker over, before `RUN` (see the protocol).
    resume: UnsafeCell<Option<TaskRef>>,
    /// A detached host's thread; only the host itself touches it.
    kept: UnsafeCell<Option<TaskRef>>,
    /// Saved stack pointer of this host's scheduling context (its own OS
    /// stack) while green threads run on it.
    pub(crate) idle_sp: UnsafeCell<usize>,
    /// Kernel thread id, once the OS thread runs.
    pub(crate) tid: AtomicI32,
    next_idle: AtomicPtr<Host>,
    /// The monitor's sample of a detached or released host's CPU clock at
    /// the start of its current window (0: none yet), and when it was taken
    /// (see `Worker::recall_detached`).
    pub(crate) probe_cpu_ns: AtomicU64,
    pub(crate) probe_at: AtomicU64,
    /// The runnable thread a held host keeps (its entry is on the run
    /// queue), for [`Host::release`]; null otherwise.
    held_task: AtomicPtr<Task>,
    /// The monitor wants this detached or released host's thread back on
    /// its worker: the next preemption signal it gets is a recall, not a
    /// stale one sent while it owned the worker.
    recall: AtomicBool,
    /// Number of this host within its worker, for its OS thread's name.
    pub(crate) serial: usize,
}

// SAFETY: `resume` is written by the hand-over's giver before the release
// store of `RUN` and read by the host after its acquire load, never both at
// once; `kept` and `idle_sp` are only touched by the host's own OS thread;
// the rest is atomic.
unsafe impl Sync for Host {}

impl Host {
    fn new(serial: usize, cmd: u32) -> Self {
        Host {
            cmd: AtomicU32::new(cmd),
            state: AtomicU8::new(HostState::Idle as u8),
            resume: UnsafeCell::new(None),
            kept: UnsafeCell::new(None),
            idle_sp: UnsafeCell::new(0),
            tid: AtomicI32::new(0),
            next_idle: AtomicPtr::new(ptr::null_mut()),
            probe_cpu_ns: AtomicU64::new(0),
            probe_at: AtomicU64::new(0),
            held_task: AtomicPtr::new(ptr::null_mut()),
            recall: AtomicBool::new(false),
            serial,
        }
    }

    pub(crate) fn state(&self) -> HostState {
        // Acquire, with the release below: whoever sees a state sees what
        // the host wrote before it (`held_task`, for `release`).
        match self.state.load(Ordering::Acquire) {
            0 => HostState::Idle,
            1 => HostState::Owner,
            2 => HostState::Held,
            3 => HostState::Detached,
            4 => HostState::Exited,
            5 => HostState::Leaked,
            _ => HostState::Released,
        }
    }

    pub(crate) fn set_state(&self, s: HostState) {
        self.state.store(s as u8, Ordering::Release)
    }

    /// Step 4 of the protocol: from now on a hand-over may come.
    pub(crate) fn expect_turn(&self) {
        self.cmd.store(WAIT, Ordering::Relaxed);
    }

    /// [`Host::expect_turn`] for a host held with `t`, a runnable thread
    /// stopped at an arbitrary instruction: the monitor may also release it
    /// (see `WAIT_RELEASABLE`). Only on this host's own OS thread.
    pub(crate) fn expect_turn_releasable(&self, t: *const Task) {
        self.set_held_task(t);
        self.cmd.store(WAIT_RELEASABLE, Ordering::Relaxed);
    }

    /// Steps 2 and 3, the giver's half: hands this host the worker, to start
    /// with `first`. Async-signal-safe.
    ///
    /// # Safety
    /// The caller owns the worker and gives it up: it must not touch the
    /// worker's state after this call.
    pub(crate) unsafe fn hand_worker(&self, first: Option<TaskRef>) {
        // SAFETY: the host waits (its cmd is WAIT) and reads `resume` only
        // after the release store below (protocol, step 2).
        unsafe { *self.resume.get() = first };
        self.cmd.store(RUN, Ordering::Release);
        futex::wake_one(&self.cmd);
    }

    /// Records the runnable thread this (held) host keeps, or null.
    fn set_held_task(&self, t: *const Task) {
        self.held_task.store(t.cast_mut(), Ordering::Relaxed);
    }

    /// Whether [`Host::release`] would act now: the host waits holding a
    /// runnable thread stopped anywhere (a preempted one). A guess for the
    /// monitor's bookkeeping; only the release's own CAS decides.
    pub(crate) fn is_releasable(&self) -> bool {
        self.cmd.load(Ordering::Relaxed) == WAIT_RELEASABLE
    }

    /// Lets a held host run its thread on without the worker, when the
    /// worker's owner is stuck in the kernel inside a runtime critical
    /// section (where it cannot be detached) or between threads, in its
    /// scheduling context (`Worker::watch_between_threads`), perhaps waiting for a lock
    /// the held thread holds (an allocator's arena, say). The thread runs
    /// until its next runtime call, then waits again; its entry stays on
    /// the run queue meanwhile. False (nothing done) unless the host holds a
    /// runnable thread and waits: one CAS from `WAIT_RELEASABLE`, never a
    /// check followed by an act, as an idle host or one taken over meanwhile
    /// waits on the same word. Called by the monitor.
    pub(crate) fn release(&self) -> bool {
        if self.cmd.compare_exchange(WAIT_RELEASABLE, RELEASE, Ordering::AcqRel, Ordering::Relaxed).is_err() {
            return false;
        }
        futex::wake_one(&self.cmd);
        true
    }

    /// For a released host: takes its thread's reference, to keep while it
    /// runs without the worker (identity calls find it there).
    ///
    /// # Safety
    /// Only on this host's own OS thread, after [`Held::Release`].
    pub(crate) unsafe fn keep_released(&self) {
        let t = self.held_task.load(Ordering::Relaxed);
        // SAFETY: the thread's queue entry holds a reference while it is
        // held or released, so the task is alive; we take one more.
        let t = unsafe { TaskRef::clone_raw(t) };
        self.set_state(HostState::Released);
        // SAFETY: the caller's contract.
        unsafe { self.keep(t) };
    }

    /// The owner picked `t`, the runnable thread this host keeps, off its
    /// run queue: marks the hand-over as coming (a release that has not
    /// been taken yet is overtaken) and gives `t` back, or, when the host
    /// was released and its thread runs without the worker, leaves `t`'s
    /// queue entry with the host, which queues it again when the thread
    /// wants the worker ([`Host::wait_again`]), and returns None: the
    /// owner picks another thread. Without this, the worker would be
    /// handed to a host that may be blocked in the kernel, on a lock that a
    /// thread queued on the same worker holds. Owner only; async-signal-safe.
    ///
    /// A claimed host can no longer be released: the owner claims it right
    /// before the hand-over, once nothing that may block is left to do (an
    /// owner that blocked in between, on an allocator lock the held thread
    /// holds, would wait for good).
    ///
    /// # Safety
    /// The caller owns the worker, `t` came off its run queue, and this
    /// host keeps `t`.
    pub(crate) unsafe fn claim(&self, t: TaskRef) -> Option<TaskRef> {
        let mut t = Some(t);
        loop {
            match self.cmd.load(Ordering::Acquire) {
                CLAIMED => return t,
                c @ (WAIT | WAIT_RELEASABLE | RELEASE) => {
                    if self.cmd.compare_exchange(c, CLAIMED, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                        return t;
                    }
                }
                BUSY => {
                    // SAFETY: the host reads `resume` only after it acquires
                    // UNQUEUED (or RUN), which only the owner, the caller,
                    // stores; until the CAS below succeeds it does not look.
                    unsafe { *self.resume.get() = t.take() };
                    if self.cmd.compare_exchange(BUSY, UNQUEUED, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                        return None;
                    }
                    // It waits again already: take the entry back and claim.
                    // SAFETY: as above; the CAS failed, so the host saw nothing.
                    t = unsafe { (*self.resume.get()).take() };
                }
                _ => std::process::abort(),
            }
        }
    }

    /// Sleeps, held, until handed the worker or released. Async-signal-safe.
    pub(crate) fn wait_held(&self) -> Held {
        loop {
            match self.cmd.load(Ordering::Acquire) {
                c @ (WAIT | WAIT_RELEASABLE | CLAIMED) => futex::wait(&self.cmd, c, None),
                RUN => {
                    self.cmd.store(BUSY, Ordering::Relaxed);
                    self.set_held_task(ptr::null());
                    // SAFETY: written before RUN, which we acquired; the giver
                    // no longer touches it.
                    let t = unsafe { (*self.resume.get()).take() };
                    return Held::Run(t.expect("a held host is handed its own thread"));
                }
                RELEASE => {
                    // BUSY while the thread runs without the worker, so that
                    // no second release lands before it waits again
                    // ([`Host::wait_again`]); a hand-over that came already
                    // wins.
                    if self.cmd.compare_exchange(RELEASE, BUSY, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                        return Held::Release;
                    }
                }
                _ => std::process::abort(),
            }
        }
    }

    /// A released host's thread wants the worker back, and the host waits
    /// for the hand-over: releasable again when `releasable` is its thread
    /// (a recall stopped it at an arbitrary instruction), not when null (it
    /// called into the runtime). None when the thread's queue entry is
    /// still queued; the entry, for the caller to queue again, when the
    /// owner picked it meanwhile ([`Host::claim`]); the host then expects
    /// its turn, not releasable. The host is `Held` on return.
    pub(crate) fn wait_again(&self, releasable: *const Task) -> Option<TaskRef> {
        self.set_held_task(releasable);
        self.set_state(HostState::Held);
        let waiting = if releasable.is_null() { WAIT } else { WAIT_RELEASABLE };
        match self.cmd.compare_exchange(BUSY, waiting, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => None,
            Err(UNQUEUED) => {
                // SAFETY: written before UNQUEUED, which we acquired; the
                // owner no longer touches it.
                let Some(entry) = (unsafe { (*self.resume.get()).take() }) else { std::process::abort() };
                self.expect_turn();
                Some(entry)
            }
            Err(_) => std::process::abort(),
        }
    }

    /// Marks a recall (see `recall`), before the monitor's signal.
    pub(crate) fn ask_recall(&self) {
        self.recall.store(true, Ordering::SeqCst);
    }

    /// Forgets a recall asked for before this host last went without its
    /// worker: one that its thread's own reattachment overtook would
    /// otherwise send it back early the next time it is detached or
    /// released.
    pub(crate) fn clear_recall(&self) {
        self.recall.store(false, Ordering::SeqCst);
    }

    /// Whether a recall was asked for since the last look; clears it.
    /// Async-signal-safe.
    pub(crate) fn take_recall(&self) -> bool {
        self.recall.swap(false, Ordering::SeqCst)
    }

    /// Tells an idle host to end its OS thread.
    pub(crate) fn tell_exit(&self) {
        self.cmd.store(EXIT, Ordering::Release);
        futex::wake_one(&self.cmd);
    }

    /// Sleeps until handed the worker (`Some`, with the thread to start
    /// with) or told to exit (`None`). Async-signal-safe.
    pub(crate) fn wait_turn(&self) -> Option<Option<TaskRef>> {
        loop {
            match self.cmd.load(Ordering::Acquire) {
                WAIT => futex::wait(&self.cmd, WAIT, None),
                RUN => {
                    self.cmd.store(BUSY, Ordering::Relaxed);
                    // SAFETY: written before RUN, which we acquired; the giver
                    // no longer touches it.
                    return Some(unsafe { (*self.resume.get()).take() });
                }
                EXIT => return None,
                // An idle host is told nothing else: anything else is a
                // broken protocol, not a reason to exit quietly.
                _ => std::process::abort(),
            }
        }
    }

    /// Keeps `task` while detached.
    ///
    /// # Safety
    /// Only on this host's own OS thread.
    pub(crate) unsafe fn keep(&self, task: TaskRef) {
        // SAFETY: the caller's contract.
        unsafe { *self.kept.get() = Some(task) }
    }

    /// The thread a detached host keeps.
    ///
    /// # Safety
    /// Only on this host's own OS thread, and the reference must not be
    /// kept past [`Host::take_kept`].
    pub(crate) unsafe fn kept(&self) -> Option<&TaskRef> {
        // SAFETY: the caller's contract.
        unsafe { (*self.kept.get()).as_ref() }
    }

    /// # Safety
    /// Only on this host's own OS thread.
    pub(crate) unsafe fn take_kept(&self) -> Option<TaskRef> {
        // SAFETY: the caller's contract.
        unsafe { (*self.kept.get()).take() }
    }
}

thread_local! {
    /// The detached host this OS thread is, if it is one. Read from signal
    /// handlers: a const-initialised Cell without destructor needs no lazy
    /// registration.
    static DETACHED: Cell<*const Host> = const { Cell::new(ptr::null()) };
}

/// The calling OS thread's host, if it is detached.
pub(crate) fn detached() -> Option<&'static Host> {
    let h = DETACHED.with(Cell::get);
    // SAFETY: set by `set_detached` to a host of a live pool; the host's
    // own thread (the caller) keeps that pool alive.
    unsafe { h.as_ref() }
}

/// Marks the calling OS thread as the detached host `h` (or not, for null).
pub(crate) fn set_detached(h: *const Host) {
    DETACHED.with(|c| c.set(h));
}

/// A worker's hosts.
pub(crate) struct Hosts {
    /// Idle hosts: a Treiber stack through `Host::next_idle`, popped only by
    /// the worker's owner.
    idle: AtomicPtr<Host>,
    idle_count: AtomicUsize,
    /// Every host this worker ever had, in `MAX_HOSTS_PER_WORKER` slots
    /// of which the first `count` are filled; a host whose thread exited is
    /// reused. Hosts are never freed before the worker, and the monitor
    /// walks the slots without a lock (see [`Hosts::for_each`]).
    all: Box<[AtomicPtr<Host>]>,
    count: AtomicUsize,
    /// Serialises [`Hosts::reserve`]. Nothing allocates while holding it:
    /// a host starter that waited here for an allocator lock held by a held
    /// thread would keep the owner, which reserves too, stuck with it.
    reserving: Mutex<()>,
    /// Host OS threads alive.
    live: AtomicUsize,
    /// The owner found no idle host: the monitor starts one.
    wanted: AtomicBool,
    /// The pool finished and its owner dismissed the idle hosts: no host
    /// is started or reused any more.
    retired: AtomicBool,
}

impl Hosts {
    pub(crate) fn new() -> Self {
        Hosts {
            idle: AtomicPtr::new(ptr::null_mut()),
            idle_count: AtomicUsize::new(0),
            all: (0..MAX_HOSTS_PER_WORKER).map(|_| AtomicPtr::new(ptr::null_mut())).collect(),
            count: AtomicUsize::new(0),
            reserving: Mutex::new(()),
            live: AtomicUsize::new(0),
            wanted: AtomicBool::new(false),
            retired: AtomicBool::new(false),
        }
    }

    /// Takes an idle host. Only the worker's owner may call it;
    /// async-signal-safe.
    pub(crate) fn pop_idle(&self) -> Option<&Host> {
        // SeqCst: a host that pushes itself and then sees the pool
        // unfinished is seen here by an owner that later finds it finished.
        let mut head = self.idle.load(Ordering::SeqCst);
        loop {
            // SAFETY: hosts are never freed while their worker lives, and a
            // host on the list is not popped by anyone else (one consumer),
            // so its link is stable until our CAS succeeds or fails.
            let h = unsafe { head.as_ref() }?;
            let next = h.next_idle.load(Ordering::Relaxed);
            match self.idle.compare_exchange_weak(head, next, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => {
                    self.idle_count.fetch_sub(1, Ordering::Relaxed);
                    return Some(h);
                }
                Err(now) => head = now,
            }
        }
    }

    /// Puts `h` (the caller's own host, about to wait) on the idle list;
    /// false when enough hosts wait already and this one should exit.
    pub(crate) fn push_idle(&self, h: &Host) -> bool {
        if self.idle_count.load(Ordering::Relaxed) >= IDLE_KEPT {
            return false;
        }
        h.set_state(HostState::Idle);
        self.idle_count.fetch_add(1, Ordering::Relaxed);
        let p = h as *const Host as *mut Host;
        let mut head = self.idle.load(Ordering::Relaxed);
        loop {
            h.next_idle.store(head, Ordering::Relaxed);
            match self.idle.compare_exchange_weak(head, p, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => head = now,
            }
        }
    }

    pub(crate) fn has_idle(&self) -> bool {
        !self.idle.load(Ordering::Relaxed).is_null()
    }

    /// Asks the monitor for another idle host.
    pub(crate) fn want(&self) {
        self.wanted.store(true, Ordering::Relaxed);
    }

    /// Whether the owner asked for a host, without taking the request (the
    /// host starter takes it: [`Self::take_wanted`]).
    pub(crate) fn is_wanted(&self) -> bool {
        self.wanted.load(Ordering::Relaxed)
    }

    /// Whether the owner asked for a host (clears the request).
    pub(crate) fn take_wanted(&self) -> bool {
        self.wanted.load(Ordering::Relaxed) && self.wanted.swap(false, Ordering::Relaxed)
    }

    /// Makes a slot for a new host, reusing one whose thread exited; None
    /// at [`MAX_HOSTS_PER_WORKER`]. The host starts `Idle`, waiting.
    pub(crate) fn reserve(&self) -> Option<&Host> {
        // Allocated before the lock is taken, and only when no slot can be
        // reused (see `reserving`).
        let mut fresh: Option<Box<Host>> = None;
        loop {
            let guard = self.reserving.lock().unwrap_or_else(|p| p.into_inner());
            if self.is_retired() {
                return None;
            }
            let n = self.count.load(Ordering::Acquire);
            if let Some(h) = (0..n).map(|i| self.slot(i)).find(|h| h.state() == HostState::Exited) {
                h.cmd.store(WAIT, Ordering::Relaxed);
                h.set_state(HostState::Idle);
                self.live.fetch_add(1, Ordering::SeqCst);
                drop(guard);
                drop(fresh);
                return Some(h);
            }
            if n >= MAX_HOSTS_PER_WORKER {
                return None;
            }
            let Some(mut h) = fresh.take() else {
                drop(guard);
                fresh = Some(Box::new(Host::new(0, WAIT)));
                continue;
            };
            h.serial = n;
            let h = Box::into_raw(h);
            self.all[n].store(h, Ordering::Release);
            self.count.store(n + 1, Ordering::Release);
            self.live.fetch_add(1, Ordering::SeqCst);
            // SAFETY: just published; hosts are freed only with `self`.
            return Some(unsafe { &*h });
        }
    }

    /// Slot `i`, below `count`.
    fn slot(&self, i: usize) -> &Host {
        // SAFETY: slots below `count` were filled before `count` was
        // raised (release, acquired by our reader), and hosts are freed
        // only when `self` is dropped.
        unsafe { &*self.all[i].load(Ordering::Acquire) }
    }

    /// A host's OS thread ended (or never started); true for the last one.
    pub(crate) fn exited(&self, h: &Host) -> bool {
        h.tid.store(0, Ordering::Relaxed);
        h.set_state(HostState::Exited);
        self.live.fetch_sub(1, Ordering::SeqCst) == 1
    }

    /// The thread host `h` keeps can never run again (see
    /// [`HostState::Leaked`]).
    pub(crate) fn leaked(&self, h: &Host) {
        h.set_state(HostState::Leaked);
        self.live.fetch_sub(1, Ordering::SeqCst);
    }

    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// Tells every idle host to exit (the pool is finished). Owner only.
    pub(crate) fn dismiss_idle(&self) {
        // SeqCst, before the pops: a host that pushes itself and then finds
        // this unset is popped below (see `Hosts::pop_idle`).
        self.retired.store(true, Ordering::SeqCst);
        while let Some(h) = self.pop_idle() {
            h.tell_exit();
        }
    }

    /// Whether [`Hosts::dismiss_idle`] ran. A host that pushed itself on the
    /// idle list and then finds this set may not be popped any more: it
    /// exits, and its slot is never reused.
    pub(crate) fn is_retired(&self) -> bool {
        self.retired.load(Ordering::SeqCst)
    }

    /// Calls `f` on every host. Takes no lock, so the monitor never waits
    /// here: a host starting may hold the reservation lock while it waits
    /// for an allocator lock that a held thread holds, and releasing that
    /// thread is the monitor's job.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Host)) {
        for i in 0..self.count.load(Ordering::Acquire) {
            f(self.slot(i));
        }
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for slot in &self.all[..*self.count.get_mut()] {
            // SAFETY: every slot below `count` holds a host boxed by
            // `reserve`, freed once, here, when nothing refers to it any
            // more (the worker, and so its hosts' threads, are gone).
            drop(unsafe { Box::from_raw(slot.load(Ordering::Relaxed)) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_host_held_with_a_runnable_thread_can_be_released() {
        let h = Host::new(0, WAIT);
        assert!(!h.release(), "an idle (or parked-thread) host");
        h.expect_turn_releasable(ptr::dangling());
        assert!(h.release());
        assert!(matches!(h.wait_held(), Held::Release));
        assert!(!h.release(), "running released: not twice");
        // Back to waiting, releasable again (a recall stopped the thread).
        assert!(h.wait_again(ptr::dangling()).is_none());
        assert!(h.release());
        assert!(matches!(h.wait_held(), Held::Release));
        // Back to waiting after a runtime call: not releasable.
        assert!(h.wait_again(ptr::null()).is_none());
        assert!(!h.release());
    }

    #[test]
    fn a_claim_overtakes_a_release_and_blocks_later_ones() {
        let h = Host::new(0, WAIT);
        h.expect_turn_releasable(ptr::dangling());
        assert!(h.release(), "released, but the host has not woken yet");
        assert_eq!(h.cmd.load(Ordering::Relaxed), RELEASE);
        // The owner's claim wins over the release not yet taken.
        h.cmd.compare_exchange(RELEASE, CLAIMED, Ordering::AcqRel, Ordering::Relaxed).unwrap();
        assert!(!h.release(), "a claimed host cannot be released");
        h.expect_turn_releasable(ptr::dangling());
        h.cmd.compare_exchange(WAIT_RELEASABLE, CLAIMED, Ordering::AcqRel, Ordering::Relaxed).unwrap();
        assert!(!h.release());
    }

    #[test]
    fn reserve_numbers_hosts_reuses_exited_ones_and_stops_at_the_cap() {
        let hosts = Hosts::new();
        let (a, b) = (hosts.reserve().unwrap(), hosts.reserve().unwrap());
        assert_eq!((a.serial, b.serial), (0, 1));
        assert_eq!(hosts.live(), 2);
        assert!(!hosts.exited(a), "another host still lives");
        let c = hosts.reserve().unwrap();
        assert!(ptr::eq(a, c), "an exited host's slot is reused");
        assert_eq!((c.state(), hosts.live()), (HostState::Idle, 2));
        let mut walked = 0;
        hosts.for_each(|_| walked += 1);
        assert_eq!(walked, 2);
        while hosts.reserve().is_some() {}
        let mut serials = Vec::new();
        hosts.for_each(|h| serials.push(h.serial));
        assert_eq!(serials, (0..MAX_HOSTS_PER_WORKER).collect::<Vec<_>>(), "every slot once, in order");
        assert_eq!(hosts.live(), MAX_HOSTS_PER_WORKER);
        // Once retired, not even an exited slot is handed out again.
        hosts.exited(b);
        hosts.dismiss_idle();
        assert!(hosts.reserve().is_none());
    }
}
