//! Choosing the next thread, and the cooperative switch between green
//! threads of one worker.
//!
//! A switch saves the callee-saved registers of the thread going out on its
//! own stack, loads those of the thread coming in, and hands it the worker
//! (so the resumed thread knows where it runs without a thread-local
//! lookup). What the thread going out leaves behind (a park to commit, a
//! stack to recycle) is done by the context that runs next, once the
//! registers are saved ([`Post`]). A held thread (its host keeps it, see
//! `hold.rs`) cannot be switched to: the switch goes to the host's
//! scheduling context instead, which hands the worker to that host.

use super::{Local, Post, Worker};
use crate::arch::{Current, FpSwitch, Isa};
use crate::error::ThreadError;
use crate::preempt;
use crate::runtime::clock;
use crate::runtime::monitor;
use crate::runtime::numa;
use crate::runtime::park::Commit;
use crate::runtime::profile::{self, SwitchOut};
use crate::runtime::sampling;
use crate::runtime::task::{Exec, HUGE_STACK, NO_NUMA_NODE, Task, TaskRef};
use crate::runtime::timers::TimerKind;
use std::mem;
use std::ptr;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// One blocking switch (park, sleep, exit) in about `SWITCH_SAMPLE_MASK +
/// 1` switches is timed, from the thread going out to the context coming in
/// taking over its post. Not yields: any code on the yield path, even a
/// test of the switch count, slowed it measurably (bench/README.md,
/// "Sampled switch timing").
const SWITCH_SAMPLE_MASK: u64 = 127;

impl Worker {
    /// The next thread to run, with a stack, or held by its host; threads
    /// whose stack cannot be mapped end here with the error, reported
    /// through their join handle. Not for signal handlers (mapping a stack
    /// may allocate, failing a thread runs its destructors).
    #[inline(always)]
    pub(super) fn next_ready(&self, running: Option<u8>) -> Option<TaskRef> {
        // SAFETY: on this worker's owner, which pops its own run queue.
        let next = unsafe { self.with_local(|l| l.runq.pop(running)) }?;
        self.ready(next, running)
    }

    /// `next`, popped from the run queue, made ready to run: see
    /// [`Worker::next_ready`].
    #[inline(always)]
    pub(super) fn ready(&self, next: TaskRef, running: Option<u8>) -> Option<TaskRef> {
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
            if exec.stack.is_some() {
                // It ran: its stack pointer was set aside.
                self.take_aside(&next, exec);
                return Some(next);
            }
            let size = next.spec.stack_size;
            let stack = if size & HUGE_STACK != 0 {
                crate::stack::huge::map(size & !HUGE_STACK).map(|(stack, _)| stack)
            } else {
                // SAFETY: as above; the borrow of the stack cache ends here.
                unsafe { self.with_local(|l| l.stacks.take(size)) }
            };
            match stack {
                Ok(stack) => {
                    debug_assert!(stack.usable() > <Current as Isa>::INIT_FRAME_BYTES);
                    if next.spec.numa_node != NO_NUMA_NODE {
                        bind_stack(&stack, usize::from(next.spec.numa_node));
                    }
                    // SAFETY: a fresh stack nobody else uses, with room for the frame.
                    exec.sp = unsafe { Current::init_stack(stack.top(), task_entry, TaskRef::as_ptr(&next) as usize) };
                    exec.stack = Some(stack);
                    exec.preempt_depth = 1;
                    if let Some(p) = next.spec.profile() {
                        profile::switched_in(p, self.index, true);
                    }
                    return Some(next);
                }
                Err(e) => {
                    exec.finished = true;
                    next.set_finished();
                    // SAFETY: the task came off our run queue, so we own it.
                    unsafe { next.fail_body(ThreadError::Stack(e)) };
                    next.pool.thread_ended();
                }
            }
            drop(next);
            // SAFETY: on this worker's owner, which pops its own run queue.
            next = unsafe { self.with_local(|l| l.runq.pop(running)) }?;
        }
    }

    /// Puts back the stack pointer of `next`, which was set aside
    /// (`Exec::aside`), recording its switch in: it is profiled, or its
    /// wake-up was sampled.
    #[cold]
    fn take_aside(&self, next: &Task, exec: &mut crate::runtime::task::Exec) {
        let aside = mem::take(&mut exec.aside);
        exec.sp = aside & !sampling::STAMPED;
        if aside & sampling::STAMPED != 0 {
            // SAFETY: stamped by `sampling::set_aside` below this saved
            // stack pointer, on the thread's stack, which we own.
            let ns = unsafe { sampling::take_stamp(exec.sp) };
            self.watch.latency.record(clock::now_ns().saturating_sub(ns));
        }
        if let Some(p) = next.spec.profile() {
            profile::switched_in(p, self.index, true);
        }
    }

    /// The running thread, profiled, switches out: records why (the post
    /// it left says; none is a yield), leaves `sp` 0 and returns where its
    /// switch saves the stack pointer instead (`Exec::aside`).
    #[cold]
    #[inline(never)]
    fn profiled_out(&self, l: &Local, task: &Task) -> *mut usize {
        let why = match &l.post {
            Post::Park(t, _) if ptr::eq(&**t, task) => Some(SwitchOut::Park),
            Post::Sleep(t, _) if ptr::eq(&**t, task) => Some(SwitchOut::Sleep),
            // Recorded when its code ended (`profile_exit_current`).
            Post::Exit(t) if ptr::eq(&**t, task) => None,
            _ => Some(SwitchOut::Yield),
        };
        if let (Some(p), Some(why)) = (task.spec.profile(), why) {
            profile::switched_out(p, self.index, why);
        }
        // SAFETY: the thread is switching out, on this worker: its state
        // is ours.
        let exec = unsafe { task.exec() };
        exec.sp = 0;
        &raw mut exec.aside
    }

    /// Switches the running green thread out for `next` (or the scheduling
    /// context), leaving `post(itself)` for whoever runs next. Returns when
    /// the thread is resumed, possibly by another host: callers must
    /// re-fetch the worker afterwards.
    ///
    /// # Safety
    /// Called by the running green thread of `self`, inside a runtime
    /// critical section (preemption disabled), with no borrow of local state.
    pub(super) unsafe fn switch_out(&self, next: Option<TaskRef>, post: impl FnOnce(TaskRef) -> Post) {
        let t0 = if self.switches() & SWITCH_SAMPLE_MASK == SWITCH_SAMPLE_MASK { sample_start() } else { 0 };
        // SAFETY: contract of this fn; the borrow ends before the switch.
        let taken = unsafe {
            self.with_local(|l| {
                let (cur, cur_exec, out) = take_current(l)?;
                // The slot is empty: the context that switched to us took it.
                debug_assert!(matches!(l.post, Post::None));
                l.post = post(cur);
                l.post_t0 = t0;
                // SAFETY: the post keeps the task alive.
                let save_to =
                    if out.profiled { self.profiled_out(l, Task::of_exec(cur_exec)) } else { &raw mut (*cur_exec).sp };
                Some((cur_exec, save_to, out.save_fp))
            })
        };
        let Some((cur_exec, save_to, save_fp)) = taken else { return };
        // SAFETY: the task is kept alive by the post, and nobody touches it
        // before the next context has finished the post; caller's contract.
        unsafe { self.switch_from(cur_exec, save_to, save_fp, next) }
    }

    /// A yield: puts the running thread at the back of its level and
    /// switches to `next`. The thread is queued before its registers are
    /// saved, which is sound because only this worker's owner pops its run
    /// queue, and not before the switch is over.
    ///
    /// # Safety
    /// As [`Worker::switch_out`].
    #[inline(always)]
    pub(super) unsafe fn requeue_and_switch(&self, next: TaskRef) {
        // SAFETY: contract of this fn; the borrow ends before the switch.
        let taken = unsafe {
            self.with_local(|l| {
                let (cur, cur_exec, out) = take_current(l)?;
                let save_to = if out.profiled { self.profiled_out(l, &cur) } else { &raw mut (*cur_exec).sp };
                l.runq.push(cur);
                Some((cur_exec, save_to, out.save_fp))
            })
        };
        let Some((cur_exec, save_to, save_fp)) = taken else { return };
        // SAFETY: the run queue keeps the task alive, and nothing pops it
        // before this switch is over (see above); caller's contract.
        unsafe { self.switch_from(cur_exec, save_to, save_fp, Some(next)) }
    }

    /// A yield among threads of one priority, the common case: swaps the
    /// running thread for the head of its level in one run-queue pass
    /// (`RunQueue::rotate`) and switches. False, having changed nothing,
    /// when other levels wait or the head is not ready for a plain switch
    /// (it needs a stack first, or its host keeps it): the caller takes the
    /// general path.
    ///
    /// # Safety
    /// As [`Worker::switch_out`].
    #[inline(always)]
    pub(super) unsafe fn rotate_and_switch(&self) -> bool {
        let rotate = |l: &mut Local| {
            let (cur, cur_exec, out) = take_current(l)?;
            // SAFETY: tasks in our run queue are ours to read.
            match l.runq.rotate(cur, |next| unsafe { next.exec() }.switchable()) {
                Ok(next) => {
                    // SAFETY: the run queue keeps the task alive; the
                    // place of `sp` is only computed.
                    let save_to = unsafe {
                        if out.profiled {
                            self.profiled_out(l, Task::of_exec(cur_exec))
                        } else {
                            &raw mut (*cur_exec).sp
                        }
                    };
                    Some((next, cur_exec, save_to, out.save_fp))
                }
                Err(cur) => {
                    l.current = Some(cur);
                    None
                }
            }
        };
        // SAFETY: contract of this fn; the borrow ends before the switch.
        let rotated = unsafe { self.with_local(rotate) };
        let Some((next, cur_exec, save_to, save_fp)) = rotated else { return false };
        // SAFETY: the run queue keeps the task alive, and nothing pops it
        // before this switch is over (see `requeue_and_switch`); caller's
        // contract.
        unsafe { self.switch_from(cur_exec, save_to, save_fp, Some(next)) };
        true
    }

    /// The switch itself, from the thread whose state is `cur_exec` (already
    /// out of `current`) to `next`, or to the owner's scheduling context
    /// (also when `next` is held: that context hands the worker over).
    ///
    /// # Safety
    /// As [`Worker::switch_out`]; `cur_exec` stays valid until this thread
    /// is resumed, and only this call touches it meanwhile.
    #[inline(always)]
    pub(super) unsafe fn switch_from(
        &self,
        cur_exec: *mut Exec,
        save_to: *mut usize,
        save_fp: bool,
        next: Option<TaskRef>,
    ) {
        let switch_in = |l: &mut Local| match next {
            // SAFETY: `next` came off our run queue: we own its state.
            Some(next) if !unsafe { next.exec() }.is_held() => {
                // SAFETY: as above.
                let exec = unsafe { next.exec() };
                if next.spec.prefetch_stack {
                    crate::arch::prefetch_read(exec.sp as *const u8);
                }
                next.set_worker(self.index);
                let missed = self.publish_running(&next) && self.missed_wake_up(&mut l.runq, next.spec.priority);
                self.publish_waiting(&l.runq);
                let r = (exec.sp, next.spec.save_fp, exec.preempt_depth, missed);
                // SAFETY: `current` was emptied by our caller; a plain write
                // spares the drop check of the `None` there.
                unsafe { ptr::write(&mut l.current, Some(next)) };
                r
            }
            held => {
                l.handover = held;
                // SAFETY: the owner's host lives as long as the worker.
                (unsafe { *(*l.host).idle_sp.get() }, true, 1, false)
            }
        };
        // SAFETY: contract of this fn; the borrow ends before the switch.
        let (load_sp, restore_fp, depth, missed) = unsafe { self.with_local(switch_in) };
        self.count_switch();
        // SAFETY: `cur_exec` is valid (contract of this fn).
        unsafe { (*cur_exec).preempt_depth = preempt::switch_depth(depth) };
        if missed {
            // For the context switched in: look at the queue first thing.
            preempt::set_pending();
        }
        // SAFETY: `cur_exec` is valid (contract); `load_sp` was saved by a
        // context that is switched out (a queued task or the scheduling
        // context), and FP flags follow each context's own setting.
        let resumed_by = unsafe {
            Current::switch(save_to, load_sp, FpSwitch::new(save_fp, restore_fp), self as *const Worker as usize)
        };
        // Resumed, by the worker now running us, which handed itself over:
        // no thread-local lookup.
        // SAFETY: every switch into a green thread passes its worker, which
        // lives as long as its pool, and the pool as long as our task.
        unsafe { &*(resumed_by as *const Worker) }.finish_post();
    }

    /// Runs a green thread from the owner's scheduling context until
    /// something switches back to it.
    pub(super) fn run_from_idle(&self, next: TaskRef) {
        // SAFETY: `next` came off our run queue.
        let exec = unsafe { next.exec() };
        debug_assert!(exec.switchable(), "a held thread is resumed by its host");
        let (load_sp, restore_fp, depth, priority) =
            (exec.sp, next.spec.save_fp, exec.preempt_depth, next.spec.priority);
        next.set_worker(self.index);
        // Leaving idle, the check below covers any priority.
        self.publish_running(&next);
        // SAFETY: on this worker's owner; the borrows end before the switch.
        // The owner's host lives as long as the worker.
        let save_sp = unsafe {
            self.with_local(|l| {
                l.current = Some(next);
                (*l.host).idle_sp.get()
            })
        };
        self.started_running();
        // Whatever was pending was for the scheduling context.
        preempt::switch_depth(depth);
        // SAFETY: as above.
        if unsafe { self.with_local(|l| self.missed_wake_up(&mut l.runq, priority)) } {
            preempt::set_pending();
        }
        // SAFETY: `load_sp` belongs to a switched-out task we own; the
        // scheduling context's slot lives in our host, which outlives the
        // switch.
        unsafe { Current::switch(save_sp, load_sp, FpSwitch::new(true, restore_fp), self as *const Worker as usize) };
        preempt::set_depth(1);
        self.bell.running.store(false, Ordering::SeqCst);
    }

    /// Marks the worker running a thread of the current slice (after idle
    /// or a hand-over), for the monitor and wakers.
    pub(super) fn started_running(&self) {
        self.count_switch();
        self.bell.running.store(true, Ordering::SeqCst);
        let slice_ns = match self.watch.slice_ns.load(Ordering::Relaxed) {
            0 => self.pool().map_or(u64::MAX, |p| {
                if p.is_preemptive() { p.time_slice().as_nanos().min(u64::MAX as u128) as u64 } else { u64::MAX }
            }),
            s => s,
        };
        monitor::worker_started_running(slice_ns);
    }

    #[cold]
    #[inline(never)]
    fn end_switch_sample(&self, t0: u64) {
        let w = &self.watch;
        let dt = clock::now_ns().saturating_sub(t0);
        w.switch_sum_ns.store(w.switch_sum_ns.load(Ordering::Relaxed) + dt, Ordering::Relaxed);
        w.switch_samples.store(w.switch_samples.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Finishes what the previous context left behind.
    #[inline(always)]
    pub(super) fn finish_post(&self) {
        // SAFETY: on this worker's owner; taking the post re-enters nothing.
        let post = unsafe {
            self.with_local(|l| match l.post {
                Post::None => None,
                _ => Some((mem::take(&mut l.post), mem::take(&mut l.post_t0))),
            })
        };
        if let Some((post, t0)) = post {
            self.finish_post_cold(post, t0);
        }
    }

    /// Parks, sleeps and exits. Each arm borrows the local state for one
    /// statement only; a task is dropped after that borrow ends (dropping
    /// may re-enter).
    #[cold]
    #[inline(never)]
    fn finish_post_cold(&self, post: Post, t0: u64) {
        if t0 != 0 {
            self.end_switch_sample(t0);
        }
        match post {
            Post::None => {}
            Post::Park(t, deadline) => self.commit_park(t, deadline),
            Post::Sleep(t, d) => {
                #[cfg(test)]
                super::stall_hook::before_sleep(t.id.as_u64().get());
                t.set_sleeping(true);
                self.add_timer(d, TimerKind::Sleep, t)
            }
            Post::Exit(t) => {
                // SAFETY: the exited thread is switched out for good; we own it.
                let exec = unsafe { t.exec() };
                exec.finished = true;
                t.set_finished();
                if let Some(stack) = exec.stack.take() {
                    if t.spec.numa_node != NO_NUMA_NODE {
                        // The cache hands it to any thread next.
                        let _ = numa::unbind(stack.top().wrapping_sub(stack.usable()), stack.usable());
                    }
                    if stack.is_huge() {
                        // Not for threads that did not ask for huge pages.
                        drop(stack);
                    } else {
                        // SAFETY: on this worker's owner; recycling a stack
                        // re-enters nothing.
                        unsafe { self.with_local(|l| l.stacks.give(stack)) };
                    }
                }
                t.pool.thread_ended();
                drop(t);
            }
        }
    }

    /// Commits the park of `t`, which is off the CPU: a park cut short by
    /// an unpark is a wake-up.
    pub(super) fn commit_park(&self, t: TaskRef, deadline: Option<Instant>) {
        match (t.park.commit(), deadline) {
            (Commit::Runnable, _) => self.requeue_woken(t),
            (Commit::Parked, Some(d)) => self.add_timer(d, TimerKind::ParkTimeout, t),
            (Commit::Parked, None) => drop(t),
        }
    }

    #[inline]
    fn requeue_woken(&self, task: TaskRef) {
        if task.spec.profiled || sampling::tick() {
            // SAFETY: the thread's park was just committed by us: it is
            // on no queue yet.
            unsafe { sampling::woken_now(&task) };
        }
        // SAFETY: on this worker's owner; queueing re-enters nothing.
        unsafe {
            self.with_local(|l| {
                // A thread that outranks the one now running (e.g. its park
                // was cut short by an unpark): switch as soon as the runtime
                // code the running thread resumes in is done.
                if l.current.as_ref().is_some_and(|c| c.spec.priority < task.spec.priority) {
                    preempt::set_pending();
                }
                l.runq.push(task)
            })
        }
    }

    pub(super) fn add_timer(&self, deadline: Instant, kind: TimerKind, task: TaskRef) {
        // SAFETY: on this worker's owner; a timer insert re-enters nothing.
        let next = unsafe {
            self.with_local(|l| {
                l.timers.insert(deadline, kind, task);
                l.timers.next_deadline()
            })
        };
        self.publish_deadline(next);
    }
}

/// Binds a stack taken for a thread of a NUMA node to that node (kernel
/// id), moving what an earlier thread touched of it. Where the kernel
/// refuses (seccomp, an emulator), the stack stays unbound, as on a machine
/// without NUMA; that is said once.
#[cold]
fn bind_stack(stack: &crate::stack::Stack, node: usize) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let base = stack.top().wrapping_sub(stack.usable());
    if let Err(errno) = numa::bind(base, stack.usable(), node, true)
        && !WARNED.swap(true, Ordering::Relaxed)
    {
        log::warn!(
            "numa_node: cannot bind a thread's stack to node {node} ({}); stacks stay where the kernel puts them",
            std::io::Error::from_raw_os_error(errno)
        );
    }
}

/// A sampled switch's start (clock::now_ns scale, never 0).
#[cold]
#[inline(never)]
fn sample_start() -> u64 {
    clock::now_ns()
}

/// What the switch of the thread going out needs to know of it.
#[derive(Clone, Copy)]
pub(super) struct Out {
    /// It keeps FP state.
    save_fp: bool,
    /// It records a profile: its stack pointer goes aside.
    profiled: bool,
}

/// Takes the running thread out of `current`, with what its switch needs:
/// its execution state, and [`Out`].
#[inline(always)]
fn take_current(l: &mut Local) -> Option<(TaskRef, *mut Exec, Out)> {
    let cur = l.current.take()?;
    check_fp_env(&cur);
    let (exec, out) = (cur.exec_ptr(), Out { save_fp: cur.spec.save_fp, profiled: cur.spec.profiled });
    Some((cur, exec, out))
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
        task.spec.name().unwrap_or("<unnamed>")
    );
    crate::arch::reset_fp_env();
}

/// First code of every green thread, reached from the arch trampoline.
extern "C" fn task_entry(task: usize) -> ! {
    // The worker that switched us in is the calling OS thread's.
    if let Some(w) = Worker::current() {
        w.finish_post();
    }
    preempt::set_depth(0);
    preempt::take_pending_now();
    // SAFETY: `task` is `TaskRef::as_ptr` of the task now in its worker's
    // `current` slot, which keeps it alive until the thread exits below.
    let task = unsafe { &*(task as *const Task) };
    // SAFETY: this is the running thread, on its own stack.
    unsafe { task.run_body() };
    // Green-locals are dropped by their own thread, like thread_local!s.
    task.locals.clear();
    super::ops::exit_current()
}
