//! Whether asynchronous preemption works in this process, and why not when
//! it does not: the monitor counts the signals it sends and the handler
//! counts those it receives, and a handler replaced behind the runtime's
//! back, or a signal blocked where it should land, is reported once (on
//! stderr when no logger is installed) and through [`status`].

use super::signal;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

/// What [`status`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PreemptStatus {
    /// No scheduler with preemption on has started in this process yet.
    NotStarted,
    /// The handler is installed and answers the signals sent to workers.
    Active {
        /// The preemption signal's number.
        signal: i32,
    },
    /// The preemption signal could not be set up; spawns on preemptive
    /// schedulers fail with this reason.
    Unavailable {
        /// Why, with what to change.
        reason: String,
    },
    /// Someone replaced the preemption signal's handler after the runtime
    /// installed it: threads switch only at cooperative points until the
    /// runtime's handler is back.
    HandlerReplaced {
        /// The preemption signal's number.
        signal: i32,
    },
    /// Signals are sent to workers but none arrives: the signal is blocked
    /// on the workers' OS threads (a green thread called `pthread_sigmask`,
    /// say). Threads switch only at cooperative points meanwhile.
    Unanswered {
        /// The preemption signal's number.
        signal: i32,
        /// Signals sent since the last one that arrived.
        sent: u64,
    },
}

/// Whether asynchronous preemption is working, as the monitor last found:
/// `Active` once a preemptive scheduler has started and its signals are
/// answered, and otherwise the reason.
///
/// ```
/// use preemptive_mlthreading_rust::preempt::{self, PreemptStatus};
/// use preemptive_mlthreading_rust::RoundRobinScheduler;
///
/// RoundRobinScheduler::new().with_workers(1).spawn(|| ()).unwrap().join().unwrap();
/// assert!(matches!(preempt::status(), PreemptStatus::Active { .. }), "{:?}", preempt::status());
/// ```
pub fn status() -> PreemptStatus {
    // A change the monitor found and the host starter has not reported yet
    // is reported now, before the caller acts on the answer.
    report_change();
    let signal = match signal::installed() {
        None => return PreemptStatus::NotStarted,
        Some(Err(reason)) => return PreemptStatus::Unavailable { reason },
        Some(Ok(s)) => s,
    };
    match HEALTH.load(Ordering::Relaxed) {
        REPLACED => PreemptStatus::HandlerReplaced { signal },
        UNANSWERED => PreemptStatus::Unanswered { signal, sent: unanswered() },
        _ => PreemptStatus::Active { signal },
    }
}

const OK: u8 = 0;
const REPLACED: u8 = 1;
const UNANSWERED: u8 = 2;

static SENT: AtomicU64 = AtomicU64::new(0);
static HANDLED: AtomicU64 = AtomicU64::new(0);
static HEALTH: AtomicU8 = AtomicU8::new(OK);
/// The health last reported (on a thread other than the monitor's).
static REPORTED: AtomicU8 = AtomicU8::new(OK);

/// Signals sent and handled when the monitor last saw one handled; only
/// the monitor writes them. Atomics, not a lock: the monitor must never
/// wait for a thread that a preemption may have suspended.
static LAST_SENT: AtomicU64 = AtomicU64::new(0);
static LAST_HANDLED: AtomicU64 = AtomicU64::new(0);

/// Counts a signal sent to a worker.
#[inline]
pub(crate) fn sent() {
    SENT.fetch_add(1, Ordering::Relaxed);
}

/// Counts a signal that reached the handler. Async-signal-safe.
#[inline]
pub(crate) fn handled() {
    HANDLED.fetch_add(1, Ordering::Relaxed);
}

fn unanswered() -> u64 {
    SENT.load(Ordering::Relaxed).saturating_sub(LAST_SENT.load(Ordering::Relaxed))
}

/// Signals that may go unanswered between two looks before it is called a
/// fault: standard signals sent to a thread that has one pending merge, so
/// a few may be lost without anything wrong.
const UNANSWERED_AFTER: u64 = 16;

/// The monitor's periodic look: is the handler still ours, and do the
/// signals it sent arrive? True when the answer changed, for
/// [`report_change`] (which the monitor leaves to another thread: reporting
/// formats and logs, which allocates, and the monitor must never wait on
/// an allocator lock that a preempted thread may hold).
pub(crate) fn check() -> bool {
    let health = if !signal::handler_is_ours() {
        REPLACED
    } else {
        let (sent, handled) = (SENT.load(Ordering::Relaxed), HANDLED.load(Ordering::Relaxed));
        if handled != LAST_HANDLED.load(Ordering::Relaxed) {
            LAST_SENT.store(sent, Ordering::Relaxed);
            LAST_HANDLED.store(handled, Ordering::Relaxed);
            OK
        } else if sent.saturating_sub(LAST_SENT.load(Ordering::Relaxed)) >= UNANSWERED_AFTER {
            UNANSWERED
        } else {
            HEALTH.load(Ordering::Relaxed)
        }
    };
    HEALTH.swap(health, Ordering::Relaxed) != health
}

/// Reports, once, a health the monitor found that was not reported yet.
pub(crate) fn report_change() {
    // Whoever reports holds the lock until the message is out, so that a
    // caller of `status` that finds the change reported already waits for
    // the message (a program that exits on the answer still shows it).
    static REPORTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _g = REPORTING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let health = HEALTH.load(Ordering::Relaxed);
    if REPORTED.swap(health, Ordering::Relaxed) != health {
        report(health);
    }
}

fn report(health: u8) {
    let signal = signal::signal();
    let msg = match health {
        REPLACED => format!(
            "preemption: the handler of signal {signal} was replaced by someone else; threads will switch only at \
             cooperative points. Leave it to the runtime, or choose another signal with preempt::set_signal or \
             PMT_PREEMPT_SIGNAL"
        ),
        UNANSWERED => format!(
            "preemption: signal {signal} is sent to workers but never arrives (is it blocked with pthread_sigmask on \
             a worker thread?); threads will switch only at cooperative points"
        ),
        _ => format!("preemption: signal {signal} is answered again"),
    };
    if health == OK {
        log::info!("{msg}");
        return;
    }
    log::error!("{msg}");
    // Seen even by a program without a logger.
    if log::max_level() < log::Level::Error {
        eprintln!("{msg}");
    }
}
