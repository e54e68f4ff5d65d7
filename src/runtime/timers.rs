//! A worker's timers: sleeping threads and park deadlines, earliest first.

use super::run_queue::MAX_PRIORITY;
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

    /// The highest priority among the threads whose timers are due at
    /// `now`, if any is. The highest, not the earliest's: a due sleeper
    /// that outranks the running thread must preempt it even behind an
    /// earlier low-priority timer (a stale park timeout, say). A scan of
    /// every timer, but only once the earliest is due, and only until one
    /// of the top priority turns up. Async-signal-safe.
    pub(crate) fn due(&self, now: Instant) -> Option<u8> {
        let Reverse(first) = self.heap.peek()?;
        if first.deadline > now {
            return None;
        }
        let mut top = first.task.spec.priority;
        for Reverse(e) in self.heap.iter() {
            if top == MAX_PRIORITY {
                break;
            }
            if e.deadline <= now {
                top = top.max(e.task.spec.priority);
            }
        }
        Some(top)
    }

    /// Removes the earliest timer due at `now`, if one is; called in a loop,
    /// it takes every due timer in deadline order.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(TimerKind, TaskRef, Instant)> {
        if self.heap.peek()?.0.deadline > now {
            return None;
        }
        self.heap.pop().map(|Reverse(e)| (e.kind, e.task, e.deadline))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::task::test_tasks::{pool, tag, tagged};
    use std::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Every timer due at `now`, as `(kind, tag)`, in the order they come.
    fn pop_all_due(timers: &mut Timers, now: Instant) -> Vec<(TimerKind, u64)> {
        std::iter::from_fn(|| timers.pop_due(now)).map(|(k, t, _)| (k, tag(&t))).collect()
    }

    #[test]
    fn timers_come_in_deadline_order_and_ties_in_insertion_order() {
        let (pool, t0) = (pool(), Instant::now());
        let mut timers = Timers::default();
        for (tag, after) in [(0, 3), (1, 1), (2, 2), (3, 2), (4, 1)] {
            timers.insert(t0 + ms(after), TimerKind::Sleep, tagged(&pool, 0, tag));
        }
        let order: Vec<u64> = pop_all_due(&mut timers, t0 + ms(3)).into_iter().map(|(_, t)| t).collect();
        assert_eq!(order, [1, 4, 2, 3, 0]);
        assert!(timers.is_empty());
    }

    #[test]
    fn pop_due_takes_only_what_is_due_and_keeps_each_kind() {
        let (pool, t0) = (pool(), Instant::now());
        let mut timers = Timers::default();
        assert!(timers.is_empty());
        timers.insert(t0 + ms(2), TimerKind::ParkTimeout, tagged(&pool, 0, 2));
        timers.insert(t0 + ms(1), TimerKind::Sleep, tagged(&pool, 0, 1));
        timers.insert(t0 + ms(3), TimerKind::Sleep, tagged(&pool, 0, 3));
        assert!(timers.pop_due(t0).is_none());
        // A deadline equal to `now` is due.
        assert_eq!(pop_all_due(&mut timers, t0 + ms(2)), [(TimerKind::Sleep, 1), (TimerKind::ParkTimeout, 2)]);
        assert!(!timers.is_empty());
        assert_eq!(timers.next_deadline(), Some(t0 + ms(3)));
        assert_eq!(pop_all_due(&mut timers, t0 + ms(3)), [(TimerKind::Sleep, 3)]);
        assert!(timers.is_empty());
        assert!(timers.pop_due(t0 + ms(10)).is_none());
    }

    #[test]
    fn next_deadline_is_the_earliest_one() {
        let (pool, t0) = (pool(), Instant::now());
        let mut timers = Timers::default();
        assert_eq!(timers.next_deadline(), None);
        timers.insert(t0 + ms(5), TimerKind::Sleep, tagged(&pool, 0, 5));
        assert_eq!(timers.next_deadline(), Some(t0 + ms(5)));
        timers.insert(t0 + ms(2), TimerKind::Sleep, tagged(&pool, 0, 2));
        timers.insert(t0 + ms(9), TimerKind::Sleep, tagged(&pool, 0, 9));
        assert_eq!(timers.next_deadline(), Some(t0 + ms(2)));
        timers.pop_due(t0 + ms(2));
        assert_eq!(timers.next_deadline(), Some(t0 + ms(5)));
    }

    #[test]
    fn due_gives_the_highest_priority_among_the_due_timers() {
        let (pool, t0) = (pool(), Instant::now());
        let mut timers = Timers::default();
        assert_eq!(timers.due(t0), None);
        timers.insert(t0 + ms(2), TimerKind::Sleep, tagged(&pool, 9, 0));
        timers.insert(t0 + ms(1), TimerKind::Sleep, tagged(&pool, 3, 0));
        assert_eq!(timers.due(t0), None);
        assert_eq!(timers.due(t0 + ms(1)), Some(3), "only the earlier, lower one is due");
        assert_eq!(timers.due(t0 + ms(2)), Some(9), "the later one outranks it");
        timers.insert(t0 + ms(3), TimerKind::ParkTimeout, tagged(&pool, 5, 0));
        assert_eq!(timers.due(t0 + ms(2)), Some(9), "not yet due: not counted");
        timers.pop_due(t0 + ms(2));
        assert_eq!(timers.due(t0 + ms(3)), Some(9));
    }

    #[test]
    fn dropping_timers_drops_their_tasks() {
        let (pool, t0) = (pool(), Instant::now());
        let before = std::sync::Arc::strong_count(&pool);
        let mut timers = Timers::default();
        timers.insert(t0, TimerKind::Sleep, tagged(&pool, 0, 0));
        timers.insert(t0, TimerKind::ParkTimeout, tagged(&pool, 0, 1));
        drop(timers);
        assert_eq!(std::sync::Arc::strong_count(&pool), before);
    }
}
