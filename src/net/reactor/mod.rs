//! The readiness poller: one epoll instance for the process, with every
//! waited-on descriptor registered once, edge-triggered, for both
//! directions (`slot.rs` holds the state per descriptor).
//!
//! Who waits in it, and the alternatives measured (bench/README.md,
//! "Network poller"):
//! - **An idle worker.** A worker with nothing to run, while descriptors
//!   are registered, claims the poller and sleeps in `epoll_wait` (timed
//!   to its next timer) instead of on its futex; waking it writes the
//!   eventfd instead of the futex. Threads it finds ready run on it at
//!   once, with no OS thread in between. One worker at a time holds the
//!   claim; the others sleep on their futexes as before. Every idle
//!   worker also polls without waiting before it spins.
//! - **A monitor thread (`pmt-netpoll`)** for when no worker is idle (Go's
//!   sysmon polls when nobody has for 10 ms): when nobody has polled for
//!   0.2 ms it polls without waiting, looking every 0.1 ms while it
//!   finds events (or while workers poll themselves, from the time their
//!   last poll goes stale) and backing off to 5 ms after 2 ms without
//!   any (or while a worker waits in the poller), and injects what it
//!   finds into the threads' workers,
//!   whose running thread is then preempted after 0.2 ms
//!   (`IO_WAKE_GRANULARITY_NS`) rather than at the end of its slice. It
//!   sleeps on a futex while nothing is registered.
//! - Rejected: a thread blocked in `epoll_wait` for good (the first
//!   version): every wake-up crossed two OS threads, and with a worker
//!   also waiting in the same epoll the kernel hands events to the
//!   longest waiter, the thread.
//!
//! Nothing here runs in a signal handler but [`wake`], an `eventfd`
//! write.

mod epoll;
mod slot;

use crate::runtime::clock;
use epoll::{Epoll, HUNG_UP, PRIORITY, READABLE, WAKE_KEY, WRITABLE};
use slot::{READ, Slot, Table, WRITE, Waiter};
use std::cell::UnsafeCell;
use std::io;
use std::os::fd::RawFd;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub(in crate::net) use slot::{READ as READ_BIT, WRITE as WRITE_BIT};

static TABLE: Table = Table::new();

/// Events taken per `epoll_wait`.
const BATCH: usize = 256;

struct Reactor {
    epoll: Epoll,
    /// Descriptors registered: idle workers poll only while there are.
    registered: AtomicUsize,
    /// Held by whoever polls: one at a time, which also owns `events`.
    claimed: AtomicBool,
    events: UnsafeCell<[libc::epoll_event; BATCH]>,
    /// The monitor thread, parked while nothing is registered.
    monitor: OnceLock<std::thread::Thread>,
    /// When a poll last ended (`clock::now_ns`): the monitor polls only
    /// when nobody has for [`STALE_NS`].
    last_poll_ns: AtomicU64,
}

/// How long events may wait for a poll before the monitor thread polls.
const STALE_NS: u64 = 200_000;

// SAFETY: `events` is touched only by the holder of `claimed`.
unsafe impl Sync for Reactor {}

fn reactor() -> io::Result<&'static Reactor> {
    static REACTOR: OnceLock<Result<&'static Reactor, String>> = OnceLock::new();
    let r = REACTOR.get_or_init(|| {
        let epoll = Epoll::new().map_err(|e| format!("cannot create the epoll instance: {e}"))?;
        let reactor: &'static Reactor = Box::leak(Box::new(Reactor {
            epoll,
            registered: AtomicUsize::new(0),
            claimed: AtomicBool::new(false),
            events: UnsafeCell::new([libc::epoll_event { events: 0, u64: 0 }; BATCH]),
            monitor: OnceLock::new(),
            last_poll_ns: AtomicU64::new(0),
        }));
        let monitor = std::thread::Builder::new()
            .name("pmt-netpoll".into())
            .spawn(move || reactor.monitor())
            .map_err(|e| format!("cannot start the poller's monitor thread: {e}"))?;
        let _ = reactor.monitor.set(monitor.thread().clone());
        crate::runtime::io_hook::install(&crate::runtime::io_hook::Hooks { active, claim, poll, release, wake });
        Ok(reactor)
    });
    match r {
        Ok(r) => Ok(r),
        Err(e) => Err(io::Error::other(e.clone())),
    }
}

fn get() -> &'static Reactor {
    reactor().expect("hooks are installed only once the reactor exists")
}

fn active() -> bool {
    get().registered.load(Ordering::Relaxed) > 0
}

fn claim() -> bool {
    let r = get();
    !r.claimed.load(Ordering::Relaxed) && !r.claimed.swap(true, Ordering::Acquire)
}

fn release() {
    get().claimed.store(false, Ordering::Release);
}

fn wake() {
    get().epoll.wake();
}

/// Waits up to `timeout` for events and wakes their threads; true when it
/// woke one. Only the holder of the claim calls it.
fn poll(timeout: Option<Duration>) -> bool {
    let r = get();
    // SAFETY: the caller holds the claim, which owns the buffer.
    let events = unsafe { &mut *r.events.get() };
    let n = match r.epoll.wait(events, timeout) {
        Ok(n) => n,
        Err(e) => {
            log::error!("network poller: epoll_wait failed: {e}");
            return false;
        }
    };
    r.last_poll_ns.store(clock::now_ns(), Ordering::Relaxed);
    if crate::runtime::io_hook::poll_wanted() {
        crate::runtime::io_hook::POLL_WANTED.store(false, Ordering::Relaxed);
    }
    let mut woke = false;
    for ev in &events[..n] {
        let (key, flags) = (ev.u64, ev.events);
        if key == WAKE_KEY {
            r.epoll.clear_wake();
            continue;
        }
        let said = if flags & READABLE != 0 { READ } else { 0 }
            | if flags & WRITABLE != 0 { WRITE } else { 0 }
            | if flags & HUNG_UP != 0 { slot::HANG_UP } else { 0 }
            | if flags & PRIORITY != 0 { slot::URGENT_DATA } else { 0 };
        if let Some(slot) = TABLE.get(key as u32) {
            woke |= slot.fire((key >> 32) as u32, said);
        }
    }
    woke
}

impl Reactor {
    /// The monitor thread's loop (module docs).
    fn monitor(&self) {
        const MIN: Duration = Duration::from_micros(100);
        const MAX: Duration = Duration::from_millis(5);
        // Empty polls at the shortest pause before backing off: a busy
        // server's threads may all sit in run queues for a while (nothing
        // to poll for), and a long pause then delays every next request.
        const PATIENCE: u32 = 20;
        // The longest pause while workers poll themselves.
        const RECENT_MAX: Duration = Duration::from_millis(1);
        let (mut delay, mut empty) = (MIN, 0);
        loop {
            if self.registered.load(Ordering::Acquire) == 0 {
                std::thread::park();
                (delay, empty) = (MIN, 0);
                continue;
            }
            std::thread::sleep(delay);
            // A worker polled lately: nothing for us to do (a poll from
            // here would move the threads it finds to their workers through
            // their inboxes, the slow way), but look again as soon as its
            // poll is stale: a worker that polls now may run a CPU-bound
            // thread next, for a whole slice.
            let since = clock::now_ns().saturating_sub(self.last_poll_ns.load(Ordering::Relaxed));
            if since < STALE_NS {
                // Workers keep up: look less often (each look is a sleep
                // and a wake-up, which a loaded machine's CPU pays for),
                // up to every RECENT_MAX.
                delay = (delay * 2).clamp(Duration::from_nanos(STALE_NS - since), RECENT_MAX);
                empty = 0;
                continue;
            }
            // First ask the workers: the next one to park polls, and runs
            // what it finds itself. Only if none does (they run CPU-bound
            // threads), poll from here.
            if !crate::runtime::io_hook::poll_wanted() {
                crate::runtime::io_hook::POLL_WANTED.store(true, Ordering::Relaxed);
                delay = MIN;
                continue;
            }
            // A worker waits in the poller (it holds the claim): events go
            // to it. Otherwise poll.
            let found = crate::runtime::io_hook::poll_now();
            if found {
                (delay, empty) = (MIN, 0);
            } else {
                empty += 1;
                if empty > PATIENCE {
                    delay = (delay * 2).min(MAX);
                }
            }
        }
    }
}

/// A descriptor's registration with the poller, from its first wait that
/// parks until the owner drops it (before closing the descriptor).
pub(super) struct Registration {
    fd: RawFd,
    index: u32,
}

impl Registration {
    /// Registers `fd`, which the caller keeps open until the drop.
    pub(super) fn new(fd: RawFd) -> io::Result<Registration> {
        let r = reactor()?;
        let index = TABLE.alloc()?;
        let generation = TABLE.get(index).map_or(0, Slot::generation);
        if let Err(e) = r.epoll.add(fd, (u64::from(generation) << 32) | u64::from(index)) {
            TABLE.free(index);
            return Err(e);
        }
        if r.registered.fetch_add(1, Ordering::AcqRel) == 0
            && let Some(m) = r.monitor.get()
        {
            m.unpark();
        }
        Ok(Registration { fd, index })
    }

    fn slot(&self) -> &'static Slot {
        TABLE.get(self.index).expect("a registered slot exists")
    }

    /// Parks the calling green thread until an event for direction `bit`
    /// (see `slot.rs`), or until `deadline` (`TimedOut`). `check`, when
    /// given, runs every second of waiting and ends the wait with its
    /// error.
    pub(super) fn wait(
        &self,
        bit: u8,
        deadline: Option<Instant>,
        check: Option<&dyn Fn() -> io::Result<()>>,
    ) -> io::Result<()> {
        let slot = self.slot();
        if slot.take_ready(bit) {
            return Ok(());
        }
        let me = Waiter { thread: crate::thread::current(), woken: AtomicBool::new(false) };
        if !slot.enlist(bit, &me) {
            return Ok(());
        }
        const CHECK_EVERY: Duration = Duration::from_secs(1);
        let mut next_check = check.map(|_| Instant::now() + CHECK_EVERY);
        let outcome = if deadline.is_none() && check.is_none() {
            // Untimed, the common case: no clock to read.
            while !me.woken.load(Ordering::Acquire) {
                crate::thread::park();
            }
            Ok(())
        } else {
            loop {
                if me.woken.load(Ordering::Acquire) {
                    break Ok(());
                }
                let now = Instant::now();
                if deadline.is_some_and(|d| now >= d) {
                    break Err(io::Error::new(io::ErrorKind::TimedOut, "the descriptor did not become ready in time"));
                }
                if let (Some(c), Some(at)) = (check, next_check)
                    && now >= at
                {
                    if let Err(e) = c() {
                        break Err(e);
                    }
                    next_check = Some(now + CHECK_EVERY);
                }
                let until =
                    [deadline, next_check].into_iter().flatten().min().expect("a timed wait has a deadline or a check");
                crate::thread::park_timeout(until.saturating_duration_since(now));
            }
        };
        slot.delist(bit, &me);
        if me.woken.load(Ordering::Acquire) {
            slot.take_ready(bit);
            return Ok(());
        }
        outcome
    }

    /// The slot's state before a stream read, for [`Self::mark_drained`].
    pub(super) fn mark(&self) -> u32 {
        self.slot().mark()
    }

    /// A TCP read begun after `mark` returned less than it asked for: the
    /// receive queue is empty until the next event (`slot.rs`).
    pub(super) fn mark_drained(&self, mark: u32) {
        self.slot().mark_drained(mark);
    }

    /// An event said urgent data, ever (`slot.rs`).
    pub(super) fn urgent(&self) -> bool {
        self.slot().urgent()
    }

    /// A read now would say `WouldBlock`: wait first.
    pub(super) fn drained(&self) -> bool {
        self.slot().drained()
    }

    /// Leaves the poller without deleting the descriptor from it: for a
    /// descriptor found closed (its number may name another file now).
    pub(super) fn abandon(self) {
        let me = std::mem::ManuallyDrop::new(self);
        me.finish();
    }

    fn finish(&self) {
        TABLE.free(self.index);
        if let Ok(r) = reactor() {
            r.registered.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(r) = reactor() {
            let _ = r.epoll.delete(self.fd);
        }
        self.finish();
    }
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration").field("fd", &self.fd).field("slot", &self.index).finish()
    }
}
