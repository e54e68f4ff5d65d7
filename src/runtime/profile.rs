//! Per-thread profiles: what a thread spawned with
//! `ThreadBuilder::enable_profiling(true)` records at its switches, and the
//! registry `ThreadMetrics::for_thread` reads them from.
//!
//! # Cost, and who pays it
//!
//! A thread without a profile pays nothing: no test is added where a
//! thread is switched *in*, and where one switches *out* the test is of a
//! byte (`TaskSpec::profiled`) in the line the switch reads anyway. A
//! profiled thread instead saves its registers' stack pointer aside
//! (`Exec::aside`) and leaves `Exec::sp` 0, so that whoever picks it next
//! takes the cold path of a thread that never ran (`Worker::first_run`),
//! which puts the stack pointer back and records the switch in. A thread
//! resumed by its host after a preemption is recorded by the host
//! (`resume_held`). Each recorded switch reads the clock, and with
//! hardware tracking the counters (a `read` system call).
//!
//! # Lifetime
//!
//! A profile lives while its thread does, and after it finishes until 4096
//! profiled threads have finished after it ([`KEPT_FINISHED`]): the guide
//! reads a thread's metrics after joining it.
//!
//! All fields are written by whichever context owns the thread at that
//! moment (one at a time: its worker's owner, the thread itself, its host,
//! or the waker of a parked thread), with relaxed atomics; readers may see
//! a running thread's figures mid-update.

use super::clock;
use super::latency::Histogram;
use super::pmu;
use super::thread_id::ThreadId;
use crate::preempt;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Finished profiles kept for reading after a join.
pub(crate) const KEPT_FINISHED: usize = 4096;
/// Switches kept per profiled thread with context-switch tracking on.
pub(crate) const KEPT_SWITCHES: usize = 64;

/// Why a thread left the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum SwitchOut {
    Yield = 0,
    Park = 1,
    Sleep = 2,
    Exit = 3,
    /// Taken by the preemption timer, or by a wake-up that outranked it.
    Preempted = 4,
}

impl SwitchOut {
    pub(crate) const ALL: [SwitchOut; 5] =
        [SwitchOut::Yield, SwitchOut::Park, SwitchOut::Sleep, SwitchOut::Exit, SwitchOut::Preempted];
}

/// What the profiler was asked to track (`ThreadProfiler`): process-wide,
/// read at each recorded switch.
static TRACK_SWITCHES: AtomicBool = AtomicBool::new(false);
static TRACK_CACHE: AtomicBool = AtomicBool::new(false);
static TRACK_BRANCHES: AtomicBool = AtomicBool::new(false);

pub(crate) fn track_switches(on: bool) {
    TRACK_SWITCHES.store(on, Ordering::Relaxed)
}
pub(crate) fn track_cache(on: bool) {
    TRACK_CACHE.store(on, Ordering::Relaxed)
}
pub(crate) fn track_branches(on: bool) {
    TRACK_BRANCHES.store(on, Ordering::Relaxed)
}
fn hardware_wanted() -> bool {
    TRACK_CACHE.load(Ordering::Relaxed) || TRACK_BRANCHES.load(Ordering::Relaxed)
}

/// One profiled thread's record.
pub(crate) struct ThreadProfile {
    id: AtomicU64,
    pub(crate) spawned_ns: u64,
    pub(crate) finished_ns: AtomicU64,
    /// Times it was switched in (its first start included).
    pub(crate) switches_in: AtomicU64,
    /// Times it left the CPU, by [`SwitchOut`].
    pub(crate) out: [AtomicU64; 5],
    pub(crate) run_ns: AtomicU64,
    /// When it was last switched in; 0 while off the CPU.
    in_at: AtomicU64,
    /// When it last left the CPU.
    pub(crate) out_at: AtomicU64,
    /// When it last became runnable (spawned, woken, requeued); 0: not
    /// since it last ran.
    runnable_at: AtomicU64,
    /// Runnable to running.
    pub(crate) latency: Histogram,
    /// Switched in on a worker other than the one it last ran on.
    pub(crate) migrations: AtomicU64,
    /// The worker it last ran on, + 1; 0: none yet.
    pub(crate) last_worker: AtomicU64,
    /// Hardware counts ([`pmu::EVENTS`] order) over the stretches that
    /// were counted, the counts at the last switch in, and how many
    /// stretches were counted and missed.
    pub(crate) hw: [AtomicU64; pmu::EVENTS],
    hw_start: [AtomicU64; pmu::EVENTS],
    /// The group the start counts came from; -1: none. A thread switched
    /// in on one OS thread and out on another (a hand-over) is not counted
    /// for that stretch.
    hw_group: AtomicI32,
    pub(crate) hw_counted: AtomicU64,
    pub(crate) hw_missed: AtomicU64,
    /// The last [`KEPT_SWITCHES`] switches out (context-switch tracking):
    /// when (clock ns), then the worker + 1 in the high 32 bits and the
    /// [`SwitchOut`] in the low byte.
    events: [(AtomicU64, AtomicU64); KEPT_SWITCHES],
    events_next: AtomicU64,
}

/// A switch out kept by context-switch tracking.
pub(crate) struct Event {
    pub(crate) at_ns: u64,
    pub(crate) worker: Option<usize>,
    pub(crate) why: SwitchOut,
    pub(crate) ran_us: u64,
}

impl ThreadProfile {
    pub(crate) fn new() -> Arc<ThreadProfile> {
        Arc::new(ThreadProfile {
            id: AtomicU64::new(0),
            spawned_ns: clock::now_ns(),
            finished_ns: AtomicU64::new(0),
            switches_in: AtomicU64::new(0),
            out: Default::default(),
            run_ns: AtomicU64::new(0),
            in_at: AtomicU64::new(0),
            out_at: AtomicU64::new(0),
            runnable_at: AtomicU64::new(0),
            latency: Histogram::default(),
            migrations: AtomicU64::new(0),
            last_worker: AtomicU64::new(0),
            hw: Default::default(),
            hw_start: Default::default(),
            hw_group: AtomicI32::new(-1),
            hw_counted: AtomicU64::new(0),
            hw_missed: AtomicU64::new(0),
            events: std::array::from_fn(|_| Default::default()),
            events_next: AtomicU64::new(0),
        })
    }

    /// Run time so far, a running stretch included.
    pub(crate) fn run_ns_now(&self) -> u64 {
        let done = self.run_ns.load(Ordering::Relaxed);
        match self.in_at.load(Ordering::Relaxed) {
            0 => done,
            t => done + clock::now_ns().saturating_sub(t),
        }
    }

    /// Whether it is on a CPU now.
    pub(crate) fn is_on_cpu(&self) -> bool {
        self.in_at.load(Ordering::Relaxed) != 0
    }

    /// The kept switches, oldest first.
    pub(crate) fn events(&self) -> Vec<Event> {
        let next = self.events_next.load(Ordering::Relaxed);
        let first = next.saturating_sub(KEPT_SWITCHES as u64);
        (first..next)
            .filter_map(|i| {
                let (at, what) = &self.events[(i % KEPT_SWITCHES as u64) as usize];
                let what = what.load(Ordering::Relaxed);
                let why = *SwitchOut::ALL.get((what & 0xff) as usize)?;
                let worker = ((what >> 32) as usize).checked_sub(1);
                Some(Event { at_ns: at.load(Ordering::Relaxed), worker, why, ran_us: (what >> 8) & 0xff_ffff })
            })
            .collect()
    }
}

fn bump(a: &AtomicU64, by: u64) {
    a.store(a.load(Ordering::Relaxed).wrapping_add(by), Ordering::Relaxed)
}

/// `p`'s thread starts running on `worker` now. `may_open`: not in a
/// signal handler (the first switch in on an OS thread opens its hardware
/// counters).
pub(crate) fn switched_in(p: &ThreadProfile, worker: usize, may_open: bool) {
    if p.finished_ns.load(Ordering::Relaxed) != 0 {
        // Its code ended: what the runtime does for it since is not its.
        return;
    }
    let now = clock::now_ns();
    if p.in_at.load(Ordering::Relaxed) != 0 {
        // It never left: it ran on without a worker (detached while
        // blocked in the kernel) and is back on one. Not a switch.
        p.last_worker.store(worker as u64 + 1, Ordering::Relaxed);
        return;
    }
    let runnable = p.runnable_at.swap(0, Ordering::Relaxed);
    if runnable != 0 {
        p.latency.record(now.saturating_sub(runnable));
    }
    bump(&p.switches_in, 1);
    let last = p.last_worker.swap(worker as u64 + 1, Ordering::Relaxed);
    if last != 0 && last != worker as u64 + 1 {
        bump(&p.migrations, 1);
    }
    p.in_at.store(now, Ordering::Relaxed);
    if hardware_wanted() {
        match pmu::read(may_open) {
            Some((group, c)) => {
                for (s, v) in p.hw_start.iter().zip(c) {
                    s.store(v, Ordering::Relaxed);
                }
                p.hw_group.store(group, Ordering::Relaxed);
            }
            None => p.hw_group.store(-1, Ordering::Relaxed),
        }
    }
}

/// `p`'s thread leaves the CPU of `worker` now, for `why`.
/// Async-signal-safe.
pub(crate) fn switched_out(p: &ThreadProfile, worker: usize, why: SwitchOut) {
    if p.finished_ns.load(Ordering::Relaxed) != 0 {
        return;
    }
    let now = clock::now_ns();
    let since = p.in_at.swap(0, Ordering::Relaxed);
    p.out_at.store(now, Ordering::Relaxed);
    let ran = if since != 0 { now.saturating_sub(since) } else { 0 };
    bump(&p.run_ns, ran);
    bump(&p.out[why as usize], 1);
    if matches!(why, SwitchOut::Yield | SwitchOut::Preempted) {
        // Back in a run queue at once.
        p.runnable_at.store(now, Ordering::Relaxed);
    }
    let group = p.hw_group.swap(-1, Ordering::Relaxed);
    if group >= 0 {
        match pmu::read(false) {
            Some((g, c)) if g == group => {
                for ((t, s), v) in p.hw.iter().zip(&p.hw_start).zip(c) {
                    bump(t, v.wrapping_sub(s.load(Ordering::Relaxed)));
                }
                bump(&p.hw_counted, 1);
            }
            _ => bump(&p.hw_missed, 1),
        }
    } else if hardware_wanted() {
        bump(&p.hw_missed, 1);
    }
    if TRACK_SWITCHES.load(Ordering::Relaxed) {
        let i = p.events_next.load(Ordering::Relaxed);
        let (at, what) = &p.events[(i % KEPT_SWITCHES as u64) as usize];
        at.store(now, Ordering::Relaxed);
        // The stretch's length in µs, capped to 24 bits (16 s).
        let ran_us = (ran / 1000).min(0xff_ffff);
        what.store(((worker as u64 + 1) << 32) | (ran_us << 8) | why as u64, Ordering::Relaxed);
        p.events_next.store(i + 1, Ordering::Relaxed);
    }
}

/// `p`'s thread became runnable at `at_ns` (clock scale): woken, its
/// timer fired, or spawned. Called by whoever owns the thread then.
pub(crate) fn runnable(p: &ThreadProfile, at_ns: u64) {
    p.runnable_at.store(at_ns, Ordering::Relaxed)
}

#[derive(Default)]
struct Registry {
    by_id: HashMap<u64, Arc<ThreadProfile>>,
    finished: VecDeque<u64>,
}

fn registry<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);
    // A green thread holding the lock must not be preempted: a sibling on
    // its worker would wait for an OS thread that sleeps.
    let _np = preempt::disable();
    let mut g = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(Registry::default))
}

/// Enters a new thread's profile under its id, runnable from now.
pub(crate) fn register(id: ThreadId, p: &Arc<ThreadProfile>) {
    p.id.store(id.as_u64().get(), Ordering::Relaxed);
    p.runnable_at.store(clock::now_ns(), Ordering::Relaxed);
    registry(|r| r.by_id.insert(id.as_u64().get(), Arc::clone(p)));
}

/// `p`'s thread finished: kept for [`KEPT_FINISHED`] more finishes.
pub(crate) fn finished(p: &ThreadProfile) {
    p.finished_ns.store(clock::now_ns(), Ordering::Relaxed);
    let id = p.id.load(Ordering::Relaxed);
    let evicted = registry(|r| {
        r.finished.push_back(id);
        if r.finished.len() > KEPT_FINISHED {
            r.finished.pop_front().and_then(|old| r.by_id.remove(&old))
        } else {
            None
        }
    });
    // Dropped outside the lock.
    drop(evicted);
}

/// The profile of thread `id`, if it has one still kept.
pub(crate) fn find(id: ThreadId) -> Option<Arc<ThreadProfile>> {
    registry(|r| r.by_id.get(&id.as_u64().get()).cloned())
}

/// Profiles of threads not finished yet.
pub(crate) fn live() -> Vec<Arc<ThreadProfile>> {
    registry(|r| r.by_id.values().filter(|p| p.finished_ns.load(Ordering::Relaxed) == 0).cloned().collect())
}

impl ThreadProfile {
    pub(crate) fn id(&self) -> u64 {
        self.id.load(Ordering::Relaxed)
    }
}
