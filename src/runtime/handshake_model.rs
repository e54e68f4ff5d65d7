//! Loom models of the wake-up handshake between a waker on another OS
//! thread and a worker (`worker/wake.rs`, module docs): the worker's own
//! code switches stacks and sleeps on futexes, which loom cannot run, so
//! [`Bell`] mirrors its steps, orderings included, each beside the name of
//! the function it stands for. A change to those functions' atomics must
//! be made here too.
//!
//! Two properties, both "no lost wake-up":
//! - An idle worker never sleeps through an inject: either it sees the
//!   queued thread before it sleeps, or the waker sees `SLEEPING` and is
//!   the one to wake it (`Worker::idle_wait` against `Worker::notify`).
//! - A thread woken from elsewhere that outranks the thread the worker is
//!   switching to is never left waiting behind it: either the waker sees
//!   the new thread running and signals (`Worker::outranks_running`), or
//!   the worker finds the woken thread in its inbox before running on
//!   (`Worker::missed_wake_up`).

use super::inbox::Inbox;
use super::inbox::loom_tests::{Item, item};
use loom::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering, fence};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

/// `worker::AWAKE` and `worker::SLEEPING`.
const AWAKE: u32 = 0;
const SLEEPING: u32 = 1;

/// A woken thread's priority is the item's index here.
type Woken = Box<Item>;

/// `Worker::bell` with the parts of `Worker::watch` the handshake uses,
/// and the kernel's side of the futex.
struct Bell {
    inject: Inbox<Woken>,
    wake: AtomicU32,
    running: AtomicBool,
    priority: AtomicU8,
    futex: Futex,
}

/// The futex on `Bell::wake`: the kernel checks the word and queues the
/// sleeper under one lock, the one a wake takes.
struct Futex {
    lock: Mutex<()>,
    sleepers: Condvar,
}

impl Futex {
    /// `futex::wait` without a timeout.
    fn wait(&self, word: &AtomicU32, expected: u32) {
        let queued = self.lock.lock().unwrap();
        if word.load(Ordering::SeqCst) == expected {
            drop(self.sleepers.wait(queued).unwrap());
        }
    }

    /// `futex::wake_one`.
    fn wake_one(&self) {
        let _queued = self.lock.lock().unwrap();
        self.sleepers.notify_one();
    }
}

impl Bell {
    fn new(running: bool, priority: u8) -> Self {
        Bell {
            inject: Inbox::new(),
            wake: AtomicU32::new(AWAKE),
            running: AtomicBool::new(running),
            priority: AtomicU8::new(priority),
            futex: Futex { lock: Mutex::new(()), sleepers: Condvar::new() },
        }
    }

    /// `Worker::inject` of a preemptive pool's thread of `priority`, from
    /// another OS thread: whether it signals the worker (and marks it
    /// urgent, which the model leaves out).
    fn inject(&self, producer: usize, priority: u8) -> bool {
        self.inject.push(item(producer, priority));
        fence(Ordering::SeqCst);
        // `Worker::outranks_running`.
        let signal = self.running.load(Ordering::SeqCst) && priority > self.priority.load(Ordering::Relaxed);
        self.notify();
        signal
    }

    /// `Worker::notify`.
    fn notify(&self) {
        fence(Ordering::SeqCst);
        if self.wake.load(Ordering::Relaxed) == SLEEPING && self.wake.swap(AWAKE, Ordering::SeqCst) == SLEEPING {
            self.futex.wake_one();
        }
    }

    /// `Worker::take_inbox`: the priorities taken.
    fn take_inbox(&self) -> Vec<u8> {
        if self.inject.is_empty() {
            return Vec::new();
        }
        self.inject.take_all().map(|t| t.tag.1).collect()
    }

    /// `Worker::idle_wait` without a deadline. Its spin before sleeping
    /// only checks `is_empty` more often, which can end the wait sooner,
    /// never later: it is left out.
    fn idle_wait(&self) {
        self.wake.store(SLEEPING, Ordering::SeqCst);
        // Not in the real code, which needs none: its SeqCst store above
        // and SeqCst load in `is_empty` below, against the inject's SeqCst
        // CAS and fence, forbid both sides missing each other in C11. Loom
        // treats SeqCst accesses as mere acquire/release (its README,
        // "Unsupported features") but does model SeqCst fences, so it gets
        // the same guarantee from one (as `sync::reclaim::sb_fence` does).
        fence(Ordering::SeqCst);
        if self.inject.is_empty() {
            self.futex.wait(&self.wake, SLEEPING);
        }
        self.wake.store(AWAKE, Ordering::SeqCst);
    }

    /// `Worker::run_turn` with nothing to run: polls, then sleeps until
    /// polling finds `expect` threads in all.
    fn idle_until(&self, expect: usize) -> Vec<u8> {
        let mut got = Vec::new();
        loop {
            // `Worker::poll`, then `next_ready` running what it took.
            got.extend(self.take_inbox());
            if got.len() == expect {
                return got;
            }
            self.idle_wait();
        }
    }

    /// `Worker::publish_running` then `Worker::missed_wake_up` for a thread
    /// of `priority` about to run, in `switch_from` (`from_idle` false: a
    /// thread was running) or `run_from_idle` (with `started_running`):
    /// whether the worker found a woken thread that outranks it.
    fn switch_to(&self, priority: u8, from_idle: bool) -> bool {
        let lower = priority < self.priority.load(Ordering::Relaxed);
        self.priority.store(priority, Ordering::Relaxed);
        if from_idle {
            self.running.store(true, Ordering::SeqCst);
        } else if !lower {
            return false;
        }
        fence(Ordering::SeqCst);
        self.take_inbox().into_iter().any(|p| p > priority)
    }
}

#[test]
fn loom_an_idle_worker_never_sleeps_through_an_inject() {
    loom::model(|| {
        let bell = Arc::new(Bell::new(false, 0));
        let waker = {
            let bell = Arc::clone(&bell);
            thread::spawn(move || bell.inject(0, 1))
        };
        assert_eq!(bell.idle_until(1), [1]);
        waker.join().unwrap();
    });
}

/// The second waker may find the word already `AWAKE` (the first one's
/// swap) and skip the futex: the worker must still come back for its
/// thread.
#[test]
fn loom_an_idle_worker_never_sleeps_through_either_of_two_injects() {
    loom::model(|| {
        let bell = Arc::new(Bell::new(false, 0));
        let wakers: Vec<_> = (0..2)
            .map(|w| {
                let bell = Arc::clone(&bell);
                thread::spawn(move || bell.inject(w, 1))
            })
            .collect();
        assert_eq!(bell.idle_until(2), [1, 1]);
        wakers.into_iter().for_each(|w| {
            w.join().unwrap();
        });
    });
}

/// A worker switches to a thread of priority 1 while a priority-3 thread
/// is woken from elsewhere; before the switch it ran `before` (None: it was
/// idle). The woken thread is judged against the new thread either way.
fn outranking_inject_is_seen(before: Option<u8>) {
    loom::model(move || {
        let bell = Arc::new(Bell::new(before.is_some(), before.unwrap_or(5)));
        let waker = {
            let bell = Arc::clone(&bell);
            thread::spawn(move || bell.inject(0, 3))
        };
        let worker_saw = bell.switch_to(1, before.is_none());
        let signalled = waker.join().unwrap();
        assert!(worker_saw || signalled, "a priority-3 thread waits behind a priority-1 one, and nobody knows");
    });
}

#[test]
fn loom_a_switch_to_a_lower_priority_never_misses_an_outranking_inject() {
    outranking_inject_is_seen(Some(5));
}

#[test]
fn loom_leaving_idle_never_misses_an_outranking_inject() {
    outranking_inject_is_seen(None);
}
