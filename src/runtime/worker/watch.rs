//! What the monitor reads of a worker, and what it decides from it: a
//! thread that overran its slice or a due timer (signal the owner), an
//! owner blocked in the kernel (detach its thread), a detached thread
//! running without its worker (send it back), a worker short of idle hosts.

use super::{AWAKE, Worker};
use crate::runtime::clock;
use crate::runtime::host::HostState;
use crate::runtime::monitor;
use std::sync::atomic::Ordering;

impl Worker {
    /// Whether this worker has run one thread, without a switch, for so
    /// long that it may be stuck in the OS: [`stuck_after`] its slice.
    pub(crate) fn is_stuck(&self, now: u64, pool_slice: u64) -> bool {
        let w = &self.watch;
        if !self.bell.running.load(Ordering::SeqCst)
            || (w.detach.load(Ordering::Relaxed) && w.detach_at.load(Ordering::Relaxed) == self.switches())
        {
            return false;
        }
        let slice = match w.slice_ns.load(Ordering::Relaxed) {
            0 => pool_slice,
            s => s,
        };
        let since = w.seen_at.load(Ordering::Relaxed);
        since != 0
            && w.seen_switches.load(Ordering::Relaxed) == self.switches()
            && now.saturating_sub(since) >= stuck_after(slice)
    }

    /// For a stuck worker, given its owner's CPU clock `cpu_ns` now:
    /// whether it used under a quarter of the wall time since the previous
    /// sample of the same stall. The first sample of a stall answers no, so
    /// a detach waits one more monitor tick. A thread sleeping in a syscall
    /// or on a lock uses no CPU; a hog that the kernel reports as sleeping
    /// for a moment (an emulator's internal lock, a page fault) does, and
    /// keeps its worker.
    pub(crate) fn idle_on_cpu(&self, now: u64, cpu_ns: u64) -> bool {
        let w = &self.watch;
        let at = w.probe_at.swap(now, Ordering::Relaxed);
        let was = w.probe_cpu_ns.swap(cpu_ns, Ordering::Relaxed);
        at != 0 && at >= w.seen_at.load(Ordering::Relaxed) && cpu_ns.saturating_sub(was) * 4 < now.saturating_sub(at)
    }

    /// Asks the owner's signal handler to detach the running thread, which
    /// is blocked in the kernel, and signals it.
    pub(crate) fn request_detach(&self) {
        self.watch.detach_at.store(self.switches(), Ordering::Relaxed);
        self.watch.detach_asked.store(clock::now_ns(), Ordering::Relaxed);
        self.watch.detach.store(true, Ordering::SeqCst);
        // Counts as a scheduling event: the next stall is measured afresh.
        self.watch.seen_at.store(clock::now_ns(), Ordering::Relaxed);
        monitor::signal_worker(self.watch.tid.load(Ordering::Relaxed));
    }

    /// Sends the preemption signal to every detached or released host of
    /// this worker whose thread was on the CPU at least half the time over
    /// a window of at least `window_ns`: its thread left the kernel and
    /// computes without the worker, outside its priority and slice, so it
    /// should queue itself again. `sample` reads a thread's CPU clock and
    /// the time it did so (together, so that a monitor delayed between
    /// the two cannot make a window look busier than it was).
    ///
    /// A window rather than the CPU used between two looks: while a server
    /// runs on some worker the monitor looks every 0.2-1 ms, and a thread
    /// computing beside its worker never used `window_ns` (5 ms at the
    /// default slice) between two of them, so it was never sent back.
    pub(crate) fn recall_detached(&self, window_ns: u64, sample: impl Fn(i32) -> Option<(u64, u64)>) {
        // Released threads run on until the owner is no longer stuck: in a
        // runtime critical section, or between threads (one of them may
        // hold what the owner waits for, and be computing under it).
        let stuck = self.owner_stuck_in_runtime()
            || (self.watch.released_at_switch.load(Ordering::Relaxed) == self.switches().wrapping_add(1)
                && !self.bell.running.load(Ordering::SeqCst));
        self.hosts.for_each(|h| {
            let recall = match h.state() {
                HostState::Detached => true,
                HostState::Released => !stuck,
                _ => false,
            };
            if !recall {
                h.probe_cpu_ns.store(0, Ordering::Relaxed);
                return;
            }
            let tid = h.tid.load(Ordering::Relaxed);
            let was = h.probe_cpu_ns.load(Ordering::Relaxed);
            let at = h.probe_at.load(Ordering::Relaxed);
            let Some((cpu, now)) = sample(tid) else { return };
            if was != 0 && now.saturating_sub(at) < window_ns {
                return;
            }
            // Not over a reset by the host itself (a new detach or release):
            // its window starts afresh.
            if h.probe_cpu_ns.compare_exchange(was, cpu.max(1), Ordering::Relaxed, Ordering::Relaxed).is_err() {
                return;
            }
            h.probe_at.store(now, Ordering::Relaxed);
            if was != 0 && cpu.saturating_sub(was).saturating_mul(2) >= now.saturating_sub(at) {
                h.ask_recall();
                monitor::signal_worker(tid);
            }
        });
    }

    /// Whether the owner was found blocked in the kernel and could not be
    /// detached since: it sits in a runtime critical section.
    fn owner_stuck_in_runtime(&self) -> bool {
        let w = &self.watch;
        w.detach.load(Ordering::Relaxed) && w.detach_at.load(Ordering::Relaxed) == self.switches()
    }

    /// When the owner has stayed blocked in the kernel inside a runtime
    /// critical section for a slice (at least 2 ms) since the monitor
    /// asked to detach its thread, the worker cannot go on: the held
    /// threads are released to run without it (see [`Host::release`]), in
    /// case one of them holds what the owner waits for. `still_blocked`
    /// looks at the owner again first: a released thread runs beside the
    /// owner's critical section, so a spinning owner that only looked
    /// blocked once (a thread starved of CPU under an emulator, whose
    /// threads sleep on its internal locks) must not trigger it.
    ///
    /// [`Host::release`]: crate::runtime::host::Host::release
    pub(crate) fn release_if_stuck(&self, now: u64, pool_slice: u64, still_blocked: impl FnOnce() -> bool) {
        let asked = self.watch.detach_asked.load(Ordering::Relaxed);
        if self.owner_stuck_in_runtime()
            && now.saturating_sub(asked) >= pool_slice.clamp(2_000_000, 50_000_000)
            && still_blocked()
        {
            self.hosts.for_each(|h| {
                h.release();
            });
        }
    }

    /// The owner between threads (in its scheduling context: finishing a
    /// park, firing timers, polling) while hosts of this worker hold
    /// preempted threads. It may block there on a lock one of them holds:
    /// growing the timer heap, it waited for the malloc arena of a thread
    /// preempted inside `malloc` (tests/net_short_reads.rs, one run in a
    /// few dozen with three test processes at once), and with no thread
    /// running, [`Worker::is_stuck`] never looked. After
    /// [`BETWEEN_THREADS_STALL_NS`] without a switch (the scheduling
    /// context has no slice of its own), with the owner found blocked in
    /// the kernel by `still_blocked`, the held threads are released as in
    /// [`Worker::release_if_stuck`]; they stay released until the owner
    /// runs a thread again (see [`Worker::recall_detached`]).
    ///
    /// Only while an owner has the worker: during a hand-over `running` is
    /// false too, and the thread id the monitor reads still names the old
    /// owner, which is asleep holding its preempted thread; releasing then
    /// would let a held thread run beside the worker for no reason (a
    /// preempt-disable scope's neighbour ran inside it, in CI). Returns
    /// when to look again; None when there is nothing to watch.
    pub(crate) fn watch_between_threads(&self, now: u64, still_blocked: impl FnOnce() -> bool) -> Option<u64> {
        let w = &self.watch;
        if self.bell.running.load(Ordering::SeqCst) || self.bell.wake.load(Ordering::Relaxed) != AWAKE {
            return None;
        }
        let tid = self.tid();
        let (mut releasable, mut owner) = (false, false);
        self.hosts.for_each(|h| {
            let state = h.state();
            // Held after a preemption, or a released host that was
            // recalled and waits with its entry still queued: whatever
            // `release` would act on.
            releasable |= h.is_releasable();
            owner |= state == HostState::Owner && h.tid.load(Ordering::Relaxed) == tid;
        });
        if !releasable {
            return None;
        }
        let wait = BETWEEN_THREADS_STALL_NS;
        let switches = self.switches();
        if !owner || switches != w.seen_switches.load(Ordering::Relaxed) || w.seen_at.load(Ordering::Relaxed) == 0 {
            w.seen_switches.store(switches, Ordering::Relaxed);
            w.seen_at.store(now, Ordering::Relaxed);
        }
        if !owner {
            // The stall starts once a host owns the worker.
            return Some(now.saturating_add(wait / 4));
        }
        let since = w.seen_at.load(Ordering::Relaxed);
        if now.saturating_sub(since) >= wait && still_blocked() {
            w.released_at_switch.store(switches.wrapping_add(1), Ordering::Relaxed);
            self.hosts.for_each(|h| {
                h.release();
            });
        }
        // Twice per stall at least: `idle_on_cpu` answers on its second look.
        Some(since.saturating_add(wait).max(now.saturating_add(wait / 4)))
    }

    /// The monitor's look at this worker at time `now`: signals it if its
    /// thread overran its slice or a timer is due, and returns when the
    /// monitor should look again (None: idle, nothing to watch).
    pub(crate) fn monitor_check(&self, now: u64, pool_slice: u64, min_tick: u64, max_tick: u64) -> Option<u64> {
        let w = &self.watch;
        if !self.bell.running.load(Ordering::SeqCst) {
            return None;
        }
        // Work stealing: threads wait here while a peer sleeps, which a
        // wake-up racing with that peer's falling asleep can leave so.
        self.offer_work();
        let slice = match w.slice_ns.load(Ordering::Relaxed) {
            0 => pool_slice,
            s => s,
        };
        let tick = (slice / 4).clamp(min_tick, max_tick);
        let switches = self.switches();
        if switches != w.seen_switches.load(Ordering::Relaxed) {
            w.seen_switches.store(switches, Ordering::Relaxed);
            w.seen_at.store(now, Ordering::Relaxed);
        }
        let progress = switches.wrapping_add(w.renewals.load(Ordering::Relaxed));
        if progress != w.seen_progress.load(Ordering::Relaxed) {
            w.seen_progress.store(progress, Ordering::Relaxed);
            w.progress_at.store(now, Ordering::Relaxed);
            w.retry_ns.store(0, Ordering::Relaxed);
        }
        let since = w.progress_at.load(Ordering::Relaxed);
        let deadline = w.next_deadline.load(Ordering::Relaxed);
        let urgent = w.urgent.load(Ordering::SeqCst);
        // Threads woken by readiness wait: the running one gets a short
        // slice (Linux's wake-up granularity, for the same reason).
        let io_recent = now.saturating_sub(w.io_at.load(Ordering::Relaxed)) < IO_RECENT_NS;
        let io = io_recent && (self.steal_line.waiting.load(Ordering::Relaxed) > 0 || !self.bell.inject.is_empty());
        let io_slice = if io { IO_WAKE_GRANULARITY_NS.min(slice) } else { slice };
        let overran = now.saturating_sub(since) >= io_slice;
        if overran && io {
            w.long_run_at.store(now, Ordering::Relaxed);
        }
        let preempt = urgent || overran || deadline <= now;
        // A steal request waits for an answer: a signal that only has the
        // worker look at it.
        let steal = self.steal_line.request.load(Ordering::Relaxed) != 0;
        if preempt || steal {
            w.steal_only.store(!preempt, Ordering::SeqCst);
            w.signalled_at.store(switches, Ordering::SeqCst);
            monitor::signal_worker(w.tid.load(Ordering::Relaxed));
            // Not acted on yet (the thread sits in a critical section, or
            // no host was free): repeat, backing off so that a syscall the
            // signal interrupts still makes progress.
            let retry = match w.retry_ns.load(Ordering::Relaxed) {
                // After a readiness preemption, look again soon: the next
                // thread gets a short slice too while woken ones wait.
                0 if urgent || io => min_tick,
                0 => tick,
                r => r.saturating_mul(2).min(max_tick),
            };
            w.retry_ns.store(retry, Ordering::Relaxed);
            return Some(now.saturating_add(retry));
        }
        // And in time to see it stuck in the OS (`is_stuck`).
        let stuck_check = w.seen_at.load(Ordering::Relaxed).saturating_add(stuck_after(slice));
        // While a server wakes threads here, the worker is looked at even
        // when none waits at this look: a thread woken just after it must
        // not wait for the next look a whole slice away (a CPU-bound
        // thread that had the worker to itself kept it that long). A
        // server whose threads all switch within microseconds needs no
        // look every short slice: look coarsely until a thread overruns
        // one (found at most IO_COARSE_LOOK_NS late), then finely for a
        // while.
        let fine = IO_WAKE_GRANULARITY_NS.min(slice);
        let look = if !io_recent {
            slice
        } else if now.saturating_sub(w.long_run_at.load(Ordering::Relaxed)) > LONG_RUN_MEMORY_NS {
            IO_COARSE_LOOK_NS.min(slice).max(fine)
        } else {
            fine
        };
        // A thread that has run past `look` already is looked at again
        // `look` from now.
        let due = since.saturating_add(look);
        let due = if due > now { due } else { now.saturating_add(look) };
        Some(due.min(deadline).min(stuck_check.max(now + min_tick)))
    }
}

/// How long a worker may go without a switch before the monitor asks
/// whether its host is blocked in the kernel (asleep there, its CPU clock
/// still): half a slice (5 ms by default), at least 2 ms. It was two
/// slices (20 ms by default): a 10 ms blocking call stalled every other
/// thread of its worker for its whole length (bench/README.md, "A
/// blocking call's stall"). A fifth of a slice (2 ms) stalled less, but
/// under qemu hosts that only looked blocked were detached often enough
/// to reorder tests/scheduling.rs's yielding threads in 2 runs of 12
/// (0 of 16 at half a slice). Go hands a P off a syscall after 20 µs to
/// 10 ms.
pub(crate) fn stuck_after(slice: u64) -> u64 {
    (slice / 2).max(2_000_000)
}

/// How long [`Worker::watch_between_threads`] waits for an owner blocked
/// between threads before it releases the held threads. What it rescues is
/// a wait that never ends (a lock a held thread holds), so it can wait
/// long; a release that was not needed runs a held thread beside its
/// worker, out of turn. At half a slice (5 ms), under qemu, whose threads
/// sleep on the emulator's own locks, owners that were only slow were
/// released often enough to reorder tests/scheduling.rs's yielding threads
/// and to run a thread of tests/stacks.rs beside its worker (CI, aarch64).
const BETWEEN_THREADS_STALL_NS: u64 = 25_000_000;

/// How long a thread runs, at least, before threads woken by descriptor
/// readiness on its worker preempt it (`Wake::Io`): short enough that a
/// server's tail latency survives CPU-bound threads beside it, long
/// enough that a preemption (about 10 µs) costs those threads no more
/// than a twentieth of their time while it lasts. 0.5 ms left a server
/// beside two spinning threads at two thirds of the rate and twice the
/// p99 of 0.2 ms; 0.1 ms did better still, at twice the cost to the
/// spinning threads (bench/README.md, "Network poller").
pub(crate) const IO_WAKE_GRANULARITY_NS: u64 = 200_000;

/// How often the monitor looks at a worker whose woken threads wait while
/// no thread there has overrun [`IO_WAKE_GRANULARITY_NS`] lately: looking
/// every granularity cost a server without CPU-bound threads 2,000 more
/// monitor wake-ups a second (bench/README.md, "Network poller").
pub(crate) const IO_COARSE_LOOK_NS: u64 = 1_000_000;

/// How long after the monitor found a thread overrunning the short slice
/// it keeps looking at every granularity.
pub(crate) const LONG_RUN_MEMORY_NS: u64 = 20_000_000;

/// How long after a thread woken by readiness was queued on a worker its
/// running threads keep the short slice, while others wait. Counting
/// switches until the woken threads had run was tried first: threads
/// woken meanwhile (in the wake slot, ahead of the queue) used the count
/// up, and a CPU-bound thread then ran its whole slice with 65 threads
/// waiting (bench/README.md, "Network poller").
pub(crate) const IO_RECENT_NS: u64 = 5_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stall_detaches_only_after_two_cpu_samples_show_no_progress() {
        let w = Worker::new(0, None, None);
        w.watch.seen_at.store(1_000, Ordering::Relaxed);
        assert!(!w.idle_on_cpu(5_000_000, 100), "the first sample of a stall decides nothing");
        assert!(w.idle_on_cpu(10_000_000, 200_000), "0.2 ms of CPU in 5 ms: blocked");
        assert!(!w.idle_on_cpu(15_000_000, 3_000_000), "2.8 ms of CPU in 5 ms: running");
        // A new stall (the switch count moved): samples from the old one do not count.
        w.watch.seen_at.store(20_000_000, Ordering::Relaxed);
        assert!(!w.idle_on_cpu(25_000_000, 3_000_000));
        assert!(w.idle_on_cpu(30_000_000, 3_000_000));
    }

    #[test]
    fn a_detached_thread_computing_is_recalled_however_often_the_monitor_looks() {
        let w = Worker::new(0, None, None);
        let h = w.hosts.reserve().expect("a host slot");
        h.set_state(HostState::Detached);
        let window = 5_000_000;
        let start = 1_000_000_000;
        // Looks every 0.2 ms (a server on some worker); `cpu(t)` the thread's
        // CPU clock at look t.
        let looks_until_recall = |cpu: &dyn Fn(u64) -> u64| {
            h.probe_cpu_ns.store(0, Ordering::Relaxed);
            h.clear_recall();
            (0..200u64).find(|&i| {
                let now = start + i * 200_000;
                w.recall_detached(window, |_| Some((cpu(now), now)));
                h.take_recall()
            })
        };
        // On the CPU all the time: back after one window.
        assert_eq!(looks_until_recall(&|now| now - start + 1_000), Some(25));
        // Blocked in the kernel, waking now and then: left alone.
        assert_eq!(looks_until_recall(&|now| 1_000 + (now - start) / 50), None);
        // Released while the owner waits between threads (perhaps for a
        // lock this thread holds, computing under it): kept until the owner
        // switches again, then recalled like a detached one.
        h.set_state(HostState::Released);
        w.watch.released_at_switch.store(w.switches().wrapping_add(1), Ordering::Relaxed);
        assert_eq!(looks_until_recall(&|now| now - start + 1_000), None);
        w.count_switch();
        assert_eq!(looks_until_recall(&|now| now - start + 1_000), Some(25));
        // A host that is neither detached nor released is not watched.
        h.set_state(HostState::Held);
        assert_eq!(looks_until_recall(&|now| now - start + 1_000), None);
    }

    #[test]
    fn an_owner_blocked_between_threads_has_the_held_threads_released() {
        let w = Worker::new(0, None, None);
        let now = 1_000_000_000;
        let never = || -> bool { panic!("asked whether the owner is blocked before the stall is long enough") };
        assert_eq!(w.watch_between_threads(now, never), None, "no held thread: nothing to watch");
        let owner = w.hosts.reserve().expect("a host slot");
        owner.tid.store(4242, Ordering::Relaxed);
        owner.set_state(HostState::Owner);
        w.watch.tid.store(4242, Ordering::Relaxed);
        let h = w.hosts.reserve().expect("a host slot");
        h.set_state(HostState::Held);
        h.expect_turn();
        assert_eq!(w.watch_between_threads(now, never), None, "a parked thread's host: nothing to release");
        h.expect_turn_releasable(std::ptr::dangling());
        // The last thread asked for a 10 s slice: the stall is the pool's.
        w.watch.slice_ns.store(10_000_000_000, Ordering::Relaxed);
        let stall = BETWEEN_THREADS_STALL_NS;
        assert_eq!(w.watch_between_threads(now, never), Some(now + stall), "a look when it could be stuck");
        // Long enough, but the owner runs (or only looked blocked once).
        assert_eq!(w.watch_between_threads(now + stall, || false), Some(now + stall + stall / 4));
        // Blocked: the held thread is released (so it cannot be again).
        w.watch_between_threads(now + stall + stall / 4, || true).expect("still watched");
        assert!(!h.release(), "the monitor released it already");
        // A switch starts a new stall.
        h.expect_turn_releasable(std::ptr::dangling());
        w.count_switch();
        let later = now + 10 * stall;
        assert_eq!(w.watch_between_threads(later, never), Some(later + stall));
        // A hand-over: the thread id still names the old owner, which sleeps
        // holding its thread. Watched, never released, and the stall starts
        // again once the new owner has the worker.
        w.watch.tid.store(4343, Ordering::Relaxed);
        let handing = later + 2 * stall;
        assert_eq!(w.watch_between_threads(handing, never), Some(handing + stall / 4));
        w.watch.tid.store(4242, Ordering::Relaxed);
        assert_eq!(w.watch_between_threads(handing + 1, never), Some(handing + stall));
        // Running a thread (the other checks watch it), or asleep idle: not here.
        w.bell.running.store(true, Ordering::SeqCst);
        assert_eq!(w.watch_between_threads(handing + stall, never), None);
        w.bell.running.store(false, Ordering::SeqCst);
        w.bell.wake.store(super::super::SLEEPING, Ordering::Relaxed);
        assert_eq!(w.watch_between_threads(handing + stall, never), None);
        assert!(h.release(), "not released while the owner ran, slept or handed over");
        // A released host that was recalled and waits with its entry still
        // queued (state Released, waiting releasable) is released again.
        h.set_state(HostState::Released);
        h.expect_turn_releasable(std::ptr::dangling());
        w.bell.wake.store(AWAKE, Ordering::Relaxed);
        w.watch_between_threads(handing + 10 * stall, || true).expect("watched");
        assert!(!h.release(), "the monitor released it again");
    }

    #[test]
    fn woken_threads_get_coarse_looks_until_a_thread_overruns_the_short_slice() {
        let w = Worker::new(0, None, None);
        w.bell.running.store(true, Ordering::SeqCst);
        let (min, max, slice) = (20_000, 5_000_000, 10_000_000);
        let now = 1_000_000_000;
        // Threads woken by readiness wait; the monitor sees a switch now
        // (and the worker is not stuck in the kernel: it switched now).
        w.watch.io_at.store(now, Ordering::Relaxed);
        w.watch.seen_at.store(now, Ordering::Relaxed);
        w.steal_line.waiting.store(3, Ordering::Relaxed);
        w.watch.renewals.fetch_add(1, Ordering::Relaxed);
        let next = w.monitor_check(now, slice, min, max).expect("watched");
        assert_eq!(next, now + IO_COARSE_LOOK_NS, "nothing overran lately: a coarse look");
        // No switch by then: the running thread overran the short slice
        // (the signal goes nowhere: no host has a thread id).
        let later = now + IO_COARSE_LOOK_NS;
        w.monitor_check(later, slice, min, max).expect("watched");
        assert_eq!(w.watch.long_run_at.load(Ordering::Relaxed), later);
        // It switched: the looks are fine now, for a while.
        w.watch.renewals.fetch_add(1, Ordering::Relaxed);
        let after = later + 50_000;
        w.watch.seen_at.store(after, Ordering::Relaxed);
        let next = w.monitor_check(after, slice, min, max).expect("watched");
        assert_eq!(next, after + IO_WAKE_GRANULARITY_NS, "an overrun lately: a look every short slice");
        // Long after, coarse again.
        w.watch.renewals.fetch_add(1, Ordering::Relaxed);
        let much_later = later + LONG_RUN_MEMORY_NS + 1;
        w.watch.io_at.store(much_later, Ordering::Relaxed);
        w.watch.seen_at.store(much_later, Ordering::Relaxed);
        let next = w.monitor_check(much_later, slice, min, max).expect("watched");
        assert_eq!(next, much_later + IO_COARSE_LOOK_NS);
    }

    #[test]
    fn a_worker_that_served_readiness_lately_is_looked_at_while_nothing_waits() {
        let w = Worker::new(0, None, None);
        w.bell.running.store(true, Ordering::SeqCst);
        let (min, max, slice) = (20_000, 5_000_000, 10_000_000);
        let now = 1_000_000_000;
        // A thread runs; nothing waits, and no server wakes threads here:
        // the next look is when it could be stuck in the kernel (before
        // its slice ends).
        w.watch.seen_at.store(now, Ordering::Relaxed);
        w.watch.renewals.fetch_add(1, Ordering::Relaxed);
        assert_eq!(w.monitor_check(now, slice, min, max), Some(now + stuck_after(slice)));
        // A readiness wake came 1 ms ago and its thread ran: nothing waits
        // now, but the next wake must not wait a slice for the look.
        w.watch.io_at.store(now - 1_000_000, Ordering::Relaxed);
        assert_eq!(w.monitor_check(now, slice, min, max), Some(now + IO_COARSE_LOOK_NS));
        // With an overrun of the short slice lately, every short slice,
        // from now on for a thread that has run past it already.
        w.watch.long_run_at.store(now - 1_000_000, Ordering::Relaxed);
        let later = now + 3_000_000;
        assert_eq!(w.monitor_check(later, slice, min, max), Some(later + IO_WAKE_GRANULARITY_NS));
        // Readiness long past (and a switch just now): back to the slice.
        let much_later = now + IO_RECENT_NS;
        w.watch.seen_at.store(much_later, Ordering::Relaxed);
        let next = w.monitor_check(much_later, slice, min, max).expect("watched");
        assert!(next > much_later + IO_COARSE_LOOK_NS, "no looks for a server gone quiet: {next}");
    }

    #[test]
    fn the_longest_slice_never_overflows_the_next_look() {
        let w = Worker::new(0, None, None);
        w.bell.running.store(true, Ordering::SeqCst);
        w.watch.progress_at.store(1_000, Ordering::Relaxed);
        let (min, max) = (20_000, 5_000_000);
        let now = 1_000_000;
        let next = w.monitor_check(now, u64::MAX, min, max).expect("a running worker is watched");
        assert!(next > now, "the next look is in the future ({next} <= {now})");
        // Past the first look: the switch count did not move, and a slice of
        // u64::MAX ns has not passed.
        let later = w.monitor_check(now + max, u64::MAX, min, max).expect("still watched");
        assert!(later >= now + max, "looks again no earlier than now: {later}");
    }
}
