//! A worker's timers: sleeping threads and park deadlines, earliest first.

use super::task::TaskRef;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimerKind {
    /// The thread is off every run queue until the deadline: make it runnable.
    Sleep,
    /// The thread parked with a timeout: unpark it (a no-op if someone
    /// already did).
    ParkTimeout,
}

struct Entry {
    deadline: Instant,
    seq: u64,
    kind: TimerKind,
    task: TaskRef,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.seq) == (other.deadline, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.deadline, self.seq).cmp(&(other.deadline, other.seq))
    }
}

#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
}

impl Timers {
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    pub(crate) fn insert(&mut self, deadline: Instant, kind: TimerKind, task: TaskRef) {
        self.seq += 1;
        self.heap.push(Reverse(Entry { deadline, seq: self.seq, kind, task }));
    }

    /// Makes room for one more timer, so that the next [`Timers::insert`]
    /// does not allocate.
    pub(crate) fn reserve_one(&mut self) {
        self.heap.reserve(1);
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(e)| e.deadline)
    }

    /// The priority of the thread whose timer is due first, if one is due
    /// at `now`. Async-signal-safe.
    pub(crate) fn due(&self, now: Instant) -> Option<u8> {
        let Reverse(e) = self.heap.peek()?;
        (e.deadline <= now).then_some(e.task.spec.priority)
    }

    /// Removes every timer due at `now`, in deadline order.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(TimerKind, TaskRef)> {
        if self.heap.peek()?.0.deadline > now {
            return None;
        }
        self.heap.pop().map(|Reverse(e)| (e.kind, e.task))
    }
}
