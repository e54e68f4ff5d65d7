//! The green thread control block, and the counted reference to it.
//!
//! A thread is one allocation: the runtime's header ([`Task`]) followed by
//! its body (the closure and the slot its result goes to, see
//! `thread::join`). [`TaskRef`] counts references to it, as `Arc` would,
//! but stays one pointer wide, so the run queue can link tasks intrusively
//! whatever their body's type.
//!
//! # Life cycle
//!
//! A thread's state is no single word: it is where its references are (a
//! run queue, the worker's `current` slot, a timer, a host) together with
//! [`Exec`] and the park token. Moves the second table does not give to
//! someone else are made by the owner of the thread's worker. Held goes
//! with queued, parked or sleeping, and their rows apply to a held thread
//! too; it stays held, and on its worker, until its host resumes it.
//!
//! | state    | how it shows                                                                       |
//! |----------|------------------------------------------------------------------------------------|
//! | new      | `Exec::sp` 0, no stack; queued                                                     |
//! | set aside| `Exec::sp` 0 with a stack (queued, parked or sleeping): see `Exec::aside`          |
//! | queued   | on its worker's run queue or inbox (`Doorbell::inject`)                            |
//! | running  | in its worker's `current` slot (`Exec::sp` is stale)                               |
//! | parked   | park token `PARKED`, on no queue; a `ParkTimeout` timer if the park is timed       |
//! | sleeping | a `Sleep` timer of its worker                                                      |
//! | held     | `Exec::sp` its host with the top bit set, `Task::held`; queued, parked or sleeping |
//! | detached | in its host's `kept` slot (`HostState::Detached`), running without a worker        |
//! | released | held and queued, but run meanwhile by its host (`HostState::Released`)             |
//! | finished | `Exec::finished`; its stack, if it had one, back in the worker's cache             |
//!
//! | from         | to             | by                                                                      |
//! |--------------|----------------|-------------------------------------------------------------------------|
//! | (spawn)      | new            | the spawner (`Pool::spawn`), onto a run queue or an inbox (1)           |
//! | new          | running        | `Worker::first_run`: a stack, the first frame, preempt depth 1          |
//! | new          | finished       | `Worker::first_run` when no stack can be mapped                         |
//! | queued       | running        | `next_ready` or `RunQueue::rotate`, then a switch                       |
//! | running      | queued         | the thread yielding (`rotate_and_switch`, `requeue_and_switch`)         |
//! | running      | parked         | the thread (`Post::Park`), committed by the next context (2)            |
//! | running      | sleeping       | the thread (`Post::Sleep`); the next context adds the timer             |
//! | parked       | queued         | an unparker (`ParkState::unpark`, `Worker::schedule` (3)), or its timer |
//! | sleeping     | queued         | its timer (`poll`), at the front of its level                           |
//! | running      | held, queued   | the signal handler, or a deferred preemption (`preempt_running`) (4)    |
//! | running      | held, parked   | a panicking thread's park (`hold_switch`)                               |
//! | running      | held, sleeping | a panicking thread's sleep (`hold_switch`)                              |
//! | held, queued | running        | the owner picking it (`Host::claim`) hands its host the worker (5)      |
//! | running      | detached       | the signal handler, owner blocked in the kernel (`detach_running`)      |
//! | detached     | held, queued   | its host, at the thread's next runtime call or a recall (6)             |
//! | held, queued | released       | the monitor, owner stuck in the kernel in a critical section (7)        |
//! | released     | held, queued   | its host, as for a detached thread (`Host::wait_again`) (8)             |
//! | running      | finished       | the thread exiting (`Post::Exit`); the next context ends it             |
//! | finished     | freed          | the last reference dropped (`TaskRef::destroy`)                         |
//! | not finished | freed          | the last reference dropped all the same (9)                             |
//!
//! 1. On the spawner's own run queue when it owns the chosen worker
//!    (`Worker::schedule_new`), else on that worker's inbox.
//! 2. `ParkState::commit`; an unpark that came before the commit queues the
//!    thread at once. A timed park adds its `ParkTimeout` timer.
//! 3. A woken thread that is not held, has no CPU affinity and outranks
//!    what runs on both its worker and the waker's moves to the waker's
//!    worker (`takes_outranking_wake`). A timer fires in `poll`, on the
//!    owner; one that finds the thread unparked already is dropped.
//! 4. Also a yield by a panicking thread (`hold_switch`): std counts panics
//!    per OS thread.
//! 5. `pick_host` in a preemption, `hand_to_held` from the scheduling loop
//!    (a green thread that picks it switches to that loop first,
//!    `Local::handover`); the host then resumes it (`resume_held`).
//! 6. Its next yield, park, sleep or exit (`hold::attached`), or the
//!    monitor's recall signal: `reattach` queues it through the inbox, and
//!    the host waits, held.
//! 7. `release_if_stuck`, `Host::release`, for a thread held by a
//!    preemption or a yield (its host records it in `held_task`), which may
//!    hold what the owner waits for. Its entry stays queued.
//! 8. When the owner picked the entry meanwhile (`Host::claim` left it
//!    `UNQUEUED`), the host queues it again through the inbox.
//! 9. A thread that never ran (drained by a retiring worker) has its body
//!    failed with `SchedulerStopped`; one parked for good just ends. Both
//!    are counted out of their pool; a held thread's cell is kept and its
//!    host leaked (`HostState::Leaked`), since that host sleeps on the
//!    thread's stack.

use super::block_pool;
use super::park::ParkState;
use super::pool::Pool;
use super::profile::ThreadProfile;
use crate::error::ThreadError;
use crate::runtime::thread_id::ThreadId;
use crate::stack::Stack;
use std::alloc::Layout;
use std::cell::UnsafeCell;
use std::io::Write;
use std::marker::PhantomData;
use std::ops::Deref;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::sync::atomic::{self, AtomicU8, AtomicU32, AtomicUsize, Ordering};

/// The body of a green thread: what it runs, stored inline after its
/// [`Task`] header.
pub(crate) trait TaskMain: Send + Sync + 'static {
    /// Runs the thread's code, on its own stack.
    fn run(&self);
    /// Reports why the code will never run, dropping it.
    fn fail(&self, err: ThreadError);
}

/// Bit 0 of [`TaskSpec::stack_size`]: the stack goes on huge pages
/// (`ThreadBuilder::use_huge_pages`).
pub(crate) const HUGE_STACK: usize = 1;

/// [`TaskSpec::numa_node`] of a thread bound to no node.
pub(crate) const NO_NUMA_NODE: u16 = u16::MAX;

/// What a thread asked for at spawn.
pub(crate) struct TaskSpec {
    /// Its name and profile, boxed together: most threads have neither,
    /// and the pair would take two words of the control block.
    pub(crate) extra: Option<Box<TaskExtra>>,
    pub(crate) priority: u8,
    /// Usable stack bytes, page-rounded, with [`HUGE_STACK`] in bit 0 for
    /// a stack on huge pages.
    pub(crate) stack_size: usize,
    /// Whether its switches save FP state ([`crate::arch::keeps_fp`]).
    pub(crate) save_fp: bool,
    /// Whether a wake-up may move it to the waker's worker (no CPU
    /// affinity, and not [`MigrationPolicy::Prohibited`]); see
    /// [`Worker::schedule`](super::worker::Worker::schedule).
    ///
    /// [`MigrationPolicy::Prohibited`]: super::migration::MigrationPolicy::Prohibited
    pub(crate) movable: bool,
    /// Moves only between workers of one NUMA node
    /// ([`MigrationPolicy::WithinNode`](super::migration::MigrationPolicy::WithinNode)).
    pub(crate) within_node: bool,
    /// The kernel id of the NUMA node its stack is bound to
    /// ([`ThreadBuilder::numa_node`](crate::ThreadBuilder::numa_node)).
    /// [`NO_NUMA_NODE`] for none: two bytes, where an `Option` would push
    /// the cell out of its block class (ids are below 1024, the kernel's
    /// usual limit).
    pub(crate) numa_node: u16,
    pub(crate) prefetch_stack: bool,
    /// It records a [`ThreadProfile`] (`extra` holds it): tested where the
    /// thread switches out, one byte beside `save_fp`.
    pub(crate) profiled: bool,
    /// Time slice in ns; 0 = the scheduler's.
    pub(crate) slice_ns: u64,
}

/// What few threads have (see [`TaskSpec::extra`]).
pub(crate) struct TaskExtra {
    pub(crate) name: Option<String>,
    pub(crate) profile: Option<Arc<ThreadProfile>>,
}

impl TaskSpec {
    /// The name it was given.
    pub(crate) fn name(&self) -> Option<&str> {
        self.extra.as_deref().and_then(|e| e.name.as_deref())
    }

    /// Its profile, when spawned with profiling on.
    pub(crate) fn profile(&self) -> Option<&ThreadProfile> {
        self.extra.as_deref().and_then(|e| e.profile.as_deref())
    }
}

/// A green thread. Shared through [`TaskRef`]s between its `Thread`
/// handles, the run queues and the timers; the execution state in the
/// `UnsafeCell` belongs to whichever worker holds it in its run queue,
/// `current` slot or post-switch slot, and only that worker touches it.
pub(crate) struct Task {
    refs: AtomicUsize,
    body: &'static BodyVTable,
    pub(crate) id: ThreadId,
    pub(crate) spec: TaskSpec,
    pub(crate) pool: Arc<Pool>,
    /// Index of the worker that runs (or last ran) this thread (a u32 so
    /// that it packs with `park`: the header fits two cache lines).
    worker: AtomicU32,
    pub(crate) park: ParkState,
    /// `HELD` (see [`Exec::hold`]) and `SLEEPING`: unlike `Exec`, readable
    /// by any thread.
    flags: AtomicU8,
    /// `GreenLocal` values; only the thread itself touches them.
    pub(crate) locals: super::locals::LocalMap,
    exec: UnsafeCell<Exec>,
}

/// Execution state; see the ownership rule on [`Task`]. `repr(C)`: `aside`
/// follows `sp`, so a switch picks either without a branch.
#[repr(C)]
pub(crate) struct Exec {
    /// Saved stack pointer while switched out; 0 before the first run;
    /// while its host keeps it, the host's address with the top bit set
    /// ([`Exec::hold`]): user-space addresses leave it clear, so a plain
    /// switch can resume the thread exactly when `sp` is positive as an
    /// `isize`, one comparison on the yield path.
    pub(crate) sp: usize,
    /// The saved stack pointer while `sp` is 0 for a thread that ran: it is
    /// profiled, or its next switch in is sampled. Whoever picks it takes
    /// the path of a thread that never ran, which puts it back
    /// (`Worker::first_run`). Bit 0 set: a sampled wake-up, stamped just
    /// below the saved stack pointer (`runtime::sampling`).
    pub(crate) aside: usize,
    pub(crate) stack: Option<Stack>,
    /// Link to the next task in the run-queue level holding this one.
    pub(crate) next: *const Task,
    /// Preempt-disable depth at the switch-out point.
    pub(crate) preempt_depth: u32,
    /// The body has been run or failed (it is used at most once).
    body_used: bool,
    pub(crate) finished: bool,
}

/// [`Task`]'s flags: its host keeps it (readable by any thread, so that a
/// waker on another worker never moves it: only that host can resume it,
/// and the host belongs to this worker), and it sleeps (for dumps).
const HELD: u8 = 1;
const SLEEPING: u8 = 2;
const FINISHED: u8 = 4;

/// The top bit of [`Exec::sp`]: set while a host keeps the thread.
const HELD_BIT: usize = 1 << (usize::BITS - 1);

impl Exec {
    /// Records that `host` keeps the thread: it was switched out by its
    /// host's OS thread going to sleep, not by saving its registers, and
    /// only that host can resume it.
    #[inline]
    pub(crate) fn hold(&mut self, host: *const super::host::Host) {
        debug_assert!((host as usize) < HELD_BIT);
        self.sp = host as usize | HELD_BIT;
    }

    /// Whether its host keeps the thread.
    #[inline(always)]
    pub(crate) fn is_held(&self) -> bool {
        (self.sp as isize) < 0
    }

    /// The host keeping the thread, if one does.
    #[inline]
    pub(crate) fn held_by(&self) -> Option<*const super::host::Host> {
        self.is_held().then_some((self.sp & !HELD_BIT) as *const super::host::Host)
    }

    /// Whether a plain switch can resume the thread: it ran, and its
    /// registers are saved on its stack (no host keeps it).
    #[inline(always)]
    pub(crate) fn switchable(&self) -> bool {
        (self.sp as isize) > 0
    }
}

// SAFETY: `exec` is only touched by the single worker that owns the task at
// that moment (see the type's docs); everything else is immutable or atomic,
// and the body is `TaskMain: Send + Sync`.
unsafe impl Sync for Task {}
// SAFETY: as above; Stack is Send.
unsafe impl Send for Task {}

/// How to reach a task's body without knowing its type.
struct BodyVTable {
    run: unsafe fn(NonNull<Task>),
    fail: unsafe fn(NonNull<Task>, ThreadError),
    /// Drops the whole cell (header and body) in place.
    drop_cell: unsafe fn(NonNull<Task>),
    layout: Layout,
}

/// The allocation behind a [`TaskRef`]: the header first, so a pointer to
/// the cell is a pointer to its [`Task`].
#[repr(C)]
struct Cell<B> {
    task: Task,
    body: B,
}

/// Bytes a thread with body `B` takes, for tests that keep it small.
#[cfg(test)]
pub(crate) fn cell_size<B>() -> usize {
    std::mem::size_of::<Cell<B>>()
}

struct VTableOf<B>(PhantomData<B>);

impl<B: TaskMain> VTableOf<B> {
    const VTABLE: BodyVTable =
        BodyVTable { run: Self::run, fail: Self::fail, drop_cell: Self::drop_cell, layout: Layout::new::<Cell<B>>() };

    /// # Safety
    /// `t` heads a live `Cell<B>`.
    unsafe fn body<'a>(t: NonNull<Task>) -> &'a B {
        // SAFETY: the caller's contract; `Cell` is repr(C) with the header first.
        unsafe { &(*t.cast::<Cell<B>>().as_ptr()).body }
    }

    unsafe fn run(t: NonNull<Task>) {
        // SAFETY: only called through the vtable of the cell's own type.
        unsafe { Self::body(t) }.run()
    }

    unsafe fn fail(t: NonNull<Task>, err: ThreadError) {
        // SAFETY: as in `run`.
        unsafe { Self::body(t) }.fail(err)
    }

    unsafe fn drop_cell(t: NonNull<Task>) {
        let cell = t.cast::<Cell<B>>().as_ptr();
        // The body holds the user's values: a result nobody took, or what is
        // left of a closure. The last reference is often dropped by a
        // worker's scheduling loop, which a panic from their `Drop` must not
        // unwind through, so it aborts as std's thread packet does.
        // SAFETY: the last reference is gone; each part is dropped once,
        // the body first so that the header (the name) is still there to
        // report it.
        let dropped = catch_unwind(AssertUnwindSafe(|| unsafe { ptr::drop_in_place(&raw mut (*cell).body) }));
        if dropped.is_err() {
            // SAFETY: the header is still alive (see above).
            abort_dropping(unsafe { &(*cell).task }, "thread result panicked on drop");
        }
        // SAFETY: as above.
        unsafe { ptr::drop_in_place(&raw mut (*cell).task) }
    }
}

impl Task {
    #[inline]
    pub(crate) fn worker(&self) -> usize {
        self.worker.load(Ordering::Relaxed) as usize
    }

    #[inline]
    pub(crate) fn set_worker(&self, index: usize) {
        // Worker indices are small: one per worker.
        self.worker.store(index as u32, Ordering::Relaxed)
    }

    /// Whether its host keeps it, from any thread.
    #[inline]
    pub(crate) fn is_held(&self) -> bool {
        self.flags.load(Ordering::Acquire) & HELD != 0
    }

    /// Sets [`Task::is_held`]; by the task's owner, before the task can be
    /// found by wakers (and cleared once it runs again). Async-signal-safe.
    #[inline]
    pub(crate) fn set_held(&self, held: bool) {
        if held {
            self.flags.fetch_or(HELD, Ordering::Release);
        } else {
            self.flags.fetch_and(!HELD, Ordering::Release);
        }
    }

    /// Whether its code has ended (for thread dumps only).
    pub(crate) fn has_finished(&self) -> bool {
        self.flags.load(Ordering::Relaxed) & FINISHED != 0
    }

    /// Sets [`Task::has_finished`], where `Exec::finished` is set.
    pub(crate) fn set_finished(&self) {
        self.flags.fetch_or(FINISHED, Ordering::Relaxed);
    }

    /// Whether it waits for a sleep's timer (for thread dumps only).
    pub(crate) fn is_sleeping(&self) -> bool {
        self.flags.load(Ordering::Relaxed) & SLEEPING != 0
    }

    /// Sets [`Task::is_sleeping`]: by its worker's owner, when its sleep's
    /// timer is added and when it fires (cold paths).
    pub(crate) fn set_sleeping(&self, sleeping: bool) {
        if sleeping {
            self.flags.fetch_or(SLEEPING, Ordering::Relaxed);
        } else {
            self.flags.fetch_and(!SLEEPING, Ordering::Relaxed);
        }
    }

    /// The execution state.
    ///
    /// # Safety
    /// Only the worker that currently owns the task may call this, and it
    /// must not keep the reference across a context switch.
    #[allow(clippy::mut_from_ref)]
    #[inline]
    pub(crate) unsafe fn exec(&self) -> &mut Exec {
        // SAFETY: exclusivity is the caller's contract.
        unsafe { &mut *self.exec.get() }
    }

    /// The execution state as a raw pointer, for a switch that must keep
    /// it past moving the task's reference elsewhere. Same rules as [`Task::exec`].
    #[inline]
    /// The task whose execution state is at `exec`.
    ///
    /// # Safety
    /// `exec` came from [`Task::exec_ptr`] of a task that is alive for `'a`.
    pub(crate) unsafe fn of_exec<'a>(exec: *mut Exec) -> &'a Task {
        // SAFETY: `Exec` is the `exec` field of its task (`UnsafeCell` is
        // `repr(transparent)`), alive for 'a (the caller's contract).
        unsafe { &*exec.byte_sub(std::mem::offset_of!(Task, exec)).cast::<Task>() }
    }

    pub(crate) fn exec_ptr(&self) -> *mut Exec {
        self.exec.get()
    }

    pub(crate) fn name_bytes(&self) -> &[u8] {
        self.spec.name().unwrap_or("<unnamed>").as_bytes()
    }

    /// Runs the body, unless it already ran or failed.
    ///
    /// # Safety
    /// Only the running thread itself, on its own stack.
    pub(crate) unsafe fn run_body(&self) {
        // SAFETY: the running thread owns its execution state; the borrow
        // ends before the body runs.
        if !std::mem::replace(&mut unsafe { self.exec() }.body_used, true) {
            // SAFETY: the vtable is that of this cell's body.
            unsafe { (self.body.run)(NonNull::from(self)) }
        }
    }

    /// Fails the body with `err`, unless it already ran or failed.
    ///
    /// # Safety
    /// Only the task's owner (see [`Task::exec`]).
    pub(crate) unsafe fn fail_body(&self, err: ThreadError) {
        // SAFETY: the caller owns the execution state; the borrow ends
        // before the body's code runs.
        if !std::mem::replace(&mut unsafe { self.exec() }.body_used, true) {
            // Failing drops the closure, and so its captures, usually on a
            // worker's scheduling loop: see `drop_cell`.
            // SAFETY: the vtable is that of this cell's body.
            if catch_unwind(AssertUnwindSafe(|| unsafe { (self.body.fail)(NonNull::from(self), err) })).is_err() {
                abort_dropping(self, "the closure of a thread that never ran panicked on drop");
            }
        }
    }
}

/// Reports that a user value of `task` panicked while the runtime dropped
/// it, and aborts: unwinding on would kill whichever thread dropped it (a
/// worker, in general), and then every thread queued there.
#[cold]
fn abort_dropping(task: &Task, what: &str) -> ! {
    let whose = match task.spec.name() {
        Some(name) => format!("green thread '{name}'"),
        None => "an unnamed green thread".to_owned(),
    };
    let _ = writeln!(std::io::stderr(), "fatal runtime error: {what} ({whose}), aborting");
    std::process::abort()
}

/// A counted reference to a [`Task`], like `Arc<Task>` but for a cell whose
/// body type only the task's vtable knows.
pub(crate) struct TaskRef(NonNull<Task>);

// SAFETY: Task is Send + Sync, and the count is atomic, as for Arc.
unsafe impl Send for TaskRef {}
// SAFETY: as above.
unsafe impl Sync for TaskRef {}

impl TaskRef {
    /// Allocates a thread running `body`. Returns the reference and the
    /// body's address, which stays valid as long as a reference does.
    pub(crate) fn new<B: TaskMain>(spec: TaskSpec, pool: Arc<Pool>, body: B) -> (TaskRef, NonNull<B>) {
        // The run queue indexes its levels by priority without a bounds check.
        assert!(
            spec.priority <= crate::runtime::run_queue::MAX_PRIORITY,
            "priority {} is above MAX_PRIORITY",
            spec.priority
        );
        let cell = block_pool::alloc(Layout::new::<Cell<B>>()).cast::<Cell<B>>();
        let c = cell.as_ptr();
        // SAFETY: a fresh block with the cell's layout; every field is
        // written exactly once, in place (building the cell on the stack and
        // moving it cost two `memcpy`s of its ~200 bytes per spawn).
        unsafe {
            (&raw mut (*c).body).write(body);
            let t = &raw mut (*c).task;
            (&raw mut (*t).refs).write(AtomicUsize::new(1));
            (&raw mut (*t).body).write(&VTableOf::<B>::VTABLE);
            (&raw mut (*t).id).write(ThreadId::next());
            (&raw mut (*t).spec).write(spec);
            (&raw mut (*t).pool).write(pool);
            (&raw mut (*t).worker).write(AtomicU32::new(0));
            (&raw mut (*t).park).write(ParkState::new());
            (&raw mut (*t).flags).write(AtomicU8::new(0));
            (&raw mut (*t).locals).write(Default::default());
            (&raw mut (*t).exec).write(UnsafeCell::new(Exec {
                sp: 0,
                aside: 0,
                stack: None,
                body_used: false,
                preempt_depth: 0,
                finished: false,
                next: std::ptr::null(),
            }));
        }
        // SAFETY: written just above.
        let task = unsafe { &(*cell.as_ptr()).task };
        super::registry::add(task);
        if let Some(extra) = task.spec.extra.as_deref()
            && let Some(prof) = &extra.profile
        {
            super::profile::register(task.id, prof);
        }
        // A field added to `Task` must be written above: this pattern stops
        // compiling until it is listed here too.
        let _ = |t: Task| {
            let Task { refs: _, body: _, id: _, spec: _, pool: _, worker: _, park: _, flags: _, locals: _, exec: _ } =
                t;
        };
        // SAFETY: a field of the cell just allocated; it lives as long as the cell.
        let body = unsafe { NonNull::new_unchecked(&raw mut (*cell.as_ptr()).body) };
        (TaskRef(cell.cast()), body)
    }

    /// A new reference to the task at `p`.
    ///
    /// # Safety
    /// `p` is a live task: some reference to it exists meanwhile.
    #[inline]
    pub(crate) unsafe fn clone_raw(p: *const Task) -> Self {
        // SAFETY: the caller's contract; the count is bumped as `clone` does.
        let r = std::mem::ManuallyDrop::new(unsafe { TaskRef::from_raw(p) });
        TaskRef::clone(&r)
    }

    /// Gives up the reference without dropping it; see [`TaskRef::from_raw`].
    #[inline]
    pub(crate) fn into_raw(this: Self) -> *const Task {
        std::mem::ManuallyDrop::new(this).0.as_ptr()
    }

    /// Takes back a reference given up by [`TaskRef::into_raw`].
    ///
    /// # Safety
    /// `p` came from `into_raw`, and is taken back once.
    #[inline]
    pub(crate) unsafe fn from_raw(p: *const Task) -> Self {
        // SAFETY: `into_raw` gave a non-null pointer.
        TaskRef(unsafe { NonNull::new_unchecked(p.cast_mut()) })
    }

    #[inline]
    pub(crate) fn as_ptr(this: &Self) -> *const Task {
        this.0.as_ptr()
    }

    /// Frees the cell once the last reference is gone.
    #[cold]
    #[inline(never)]
    unsafe fn destroy(p: NonNull<Task>) {
        // SAFETY: no reference is left, so this code owns the task outright.
        let task = unsafe { p.as_ref() };
        super::registry::remove(task);
        if let Some(prof) = task.spec.profile()
            && prof.finished_ns.load(Ordering::Relaxed) == 0
        {
            // It never ran to its end (no stack, or dropped parked).
            super::profile::finished(prof);
        }
        // SAFETY: as above.
        if !unsafe { task.exec() }.finished {
            // Dropped before it finished: parked forever with nobody left to
            // wake it, or never run. It still counted as live.
            // SAFETY: as above.
            unsafe { task.fail_body(ThreadError::SchedulerStopped) };
            task.pool.thread_ended();
            // SAFETY: as above.
            if let Some(host) = unsafe { task.exec() }.held_by() {
                // A thread that parked forever while its host kept it (it
                // was unwinding a panic): that host sleeps on the thread's
                // stack for good, so the stack and the cell must stay, and
                // the host no longer counts as running.
                if let Some(w) = task.pool.worker(task.worker()) {
                    // SAFETY: a held task's host belongs to its worker.
                    w.hosts.leaked(unsafe { &*host });
                }
                return;
            }
        }
        let vtable = task.body;
        // SAFETY: the cell was allocated by `new` as a `Cell<B>` of this
        // vtable's B; it is dropped and freed once, here.
        unsafe {
            (vtable.drop_cell)(p);
            block_pool::dealloc(p.cast(), vtable.layout);
        }
    }
}

impl Clone for TaskRef {
    #[inline]
    fn clone(&self) -> Self {
        // Relaxed as in Arc: a new reference is made from an existing one.
        let old = self.refs.fetch_add(1, Ordering::Relaxed);
        if old > isize::MAX as usize {
            std::process::abort();
        }
        TaskRef(self.0)
    }
}

impl Drop for TaskRef {
    #[inline]
    fn drop(&mut self) {
        if self.refs.fetch_sub(1, Ordering::Release) == 1 {
            // Every other holder's last use happens before the free.
            atomic::fence(Ordering::Acquire);
            // SAFETY: that was the last reference.
            unsafe { TaskRef::destroy(self.0) }
        }
    }
}

impl Deref for TaskRef {
    type Target = Task;

    #[inline]
    fn deref(&self) -> &Task {
        // SAFETY: a reference keeps the cell alive.
        unsafe { self.0.as_ref() }
    }
}

/// Tasks for unit tests of the structures that queue them (run queue,
/// timers, inbox), which never run them.
#[cfg(test)]
pub(crate) mod test_tasks {
    use super::{TaskMain, TaskRef, TaskSpec};
    use crate::error::ThreadError;
    use crate::runtime::pool::{Pool, PoolConfig};
    use std::sync::Arc;
    use std::time::Duration;

    struct Nothing;

    impl TaskMain for Nothing {
        fn run(&self) {}
        fn fail(&self, _: ThreadError) {}
    }

    /// A pool that never starts its workers (they start on the first
    /// spawn, and these tasks are never spawned).
    pub(crate) fn pool() -> Arc<Pool> {
        Arc::new(Pool::new(PoolConfig { workers: 1, name: "test-tasks".into(), steal: None }, Duration::from_millis(1)))
    }

    /// A task of `priority` that never runs, told apart by `tag`, kept in
    /// its time-slice field: only a worker running the task reads that.
    pub(crate) fn tagged(pool: &Arc<Pool>, priority: u8, tag: u64) -> TaskRef {
        let spec = TaskSpec {
            extra: None,
            profiled: false,
            priority,
            stack_size: 0,
            save_fp: false,
            movable: false,
            within_node: false,
            numa_node: super::NO_NUMA_NODE,
            prefetch_stack: false,
            slice_ns: tag,
        };
        let (task, _) = TaskRef::new(spec, Arc::clone(pool), Nothing);
        // Not counted as live in the pool (it was never spawned): dropping
        // an unfinished task would count an end.
        // SAFETY: nobody else holds the task yet.
        unsafe { task.exec() }.finished = true;
        task
    }

    /// The tag given to [`tagged`].
    pub(crate) fn tag(task: &TaskRef) -> u64 {
        task.spec.slice_ns
    }
}
