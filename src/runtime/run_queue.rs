//! A worker's run queue: strict priority levels, FIFO within a level, and a
//! bounded guarantee for the levels below.
//!
//! Policy, in full:
//! - The highest non-empty level runs first; within a level, first come
//!   first served. A thread that yields goes to the back of its level and
//!   keeps the CPU if every waiting thread is of a lower level.
//! - Starvation bound: the [`AGING_PERIOD`]-th scheduling decision in a row
//!   that passes over a waiting lower level goes to a lower level instead.
//!   Those turns rotate downwards through the waiting lower levels, so each
//!   waiting level gets at least one turn in `AGING_PERIOD × 21` decisions
//!   however busy the levels above it are. A decision taken while the
//!   running thread is at or below every waiting level starts the count
//!   again: a high-priority thread woken over low-priority ones (which had
//!   the CPU) is not starving them, and must not be made to wait a whole
//!   slice for an aging turn.
//!
//! - Wake slot (work-stealing pools only, [`RunQueue::push_wake`]): a
//!   thread woken by a thread of this worker goes to the front of its
//!   level, so that the waker's partner runs next, as Go's `runnext` and
//!   tokio's LIFO slot do. One thread holds the slot at a time: a second
//!   wake-up sends the first one to the back of its level. The worker
//!   bounds how many wake-ups in a row may use it (`worker/steal.rs`).
//!
//! Each level is an intrusive FIFO list threaded through the tasks
//! themselves (`Exec::next`): push and pop are a few pointer moves, never
//! allocate, take no lock and no atomic — only the owning worker touches it.
//! That is also why a yielding thread may be queued here a moment before
//! its registers are saved: nothing can pop it before its switch is over.

use crate::runtime::task::{Task, TaskRef};
use core::ptr;

/// Levels 0..=MAX_PRIORITY.
pub const MAX_PRIORITY: u8 = 20;
const LEVELS: usize = MAX_PRIORITY as usize + 1;

/// Scheduling decisions between two turns for a waiting lower level.
///
/// In time: behind a thread that never yields there is one decision per
/// preemption, so about `AGING_PERIOD` × 1.25 time slices (the monitor looks
/// every quarter slice) for the highest waiting lower level: 3.2 s at the
/// default 10 ms slice (README, "Priorities").
pub const AGING_PERIOD: u32 = 256;

/// One priority level: a FIFO list owning one `TaskRef` per entry (held
/// as a raw pointer from `TaskRef::into_raw`).
struct Level {
    head: *const Task,
    tail: *const Task,
}

pub(crate) struct RunQueue {
    levels: [Level; LEVELS],
    /// Bit `p` set when level `p` is non-empty.
    mask: u32,
    /// Decisions that passed over a waiting lower level since the last turn
    /// given to one.
    passed_over: u32,
    /// The level that got the last aging turn.
    aging_cursor: u8,
    /// Threads queued.
    len: u32,
    /// The thread at the front of its level by [`RunQueue::push_wake`],
    /// until it leaves the queue or another wake-up displaces it.
    wake_slot: *const Task,
}

impl Default for RunQueue {
    fn default() -> Self {
        RunQueue {
            levels: core::array::from_fn(|_| Level { head: ptr::null(), tail: ptr::null() }),
            mask: 0,
            passed_over: 0,
            aging_cursor: MAX_PRIORITY,
            len: 0,
            wake_slot: ptr::null(),
        }
    }
}

impl RunQueue {
    /// The list of `level`, without a bounds check on the yield path.
    #[inline(always)]
    fn level(&mut self, level: usize) -> &mut Level {
        debug_assert!(level < LEVELS);
        // SAFETY: `TaskRef::new` asserts a task's priority is at most
        // MAX_PRIORITY, and it never changes; the other callers pass the
        // index of a bit of `mask`, which only ever has bits of valid levels.
        unsafe { self.levels.get_unchecked_mut(level) }
    }

    #[inline]
    pub(crate) fn push(&mut self, task: TaskRef) {
        let level = task.spec.priority as usize;
        let l = self.level(level);
        let p = TaskRef::into_raw(task);
        // SAFETY: a task is in at most one run queue, and the queue owning it
        // owns its `next` link; `p` and `l.tail` are live tasks we hold.
        unsafe {
            (*p).exec().next = ptr::null();
            if l.tail.is_null() {
                l.head = p;
            } else {
                (*l.tail).exec().next = p;
            }
        }
        l.tail = p;
        self.mask |= 1 << level;
        self.len += 1;
    }

    /// Threads queued.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }

    /// Puts a woken `task` in the wake slot: at the front of its level. The
    /// thread that held the slot, if still at the front of its level, goes
    /// to the back of it: it has had its chance to run next.
    pub(crate) fn push_wake(&mut self, task: TaskRef) {
        let old = self.wake_slot;
        if !old.is_null() {
            // SAFETY: the slot is cleared whenever its task leaves the
            // queue, so `old` is a live task this queue owns.
            let level = unsafe { (*old).spec.priority } as usize;
            if self.level(level).head == old
                && let Some(t) = self.take(level as u32)
            {
                self.push(t);
            }
        }
        let p = TaskRef::as_ptr(&task);
        self.push_front(task);
        self.wake_slot = p;
    }

    /// The highest waiting priority.
    pub(crate) fn top_priority(&self) -> Option<u8> {
        (self.mask != 0).then(|| (31 - self.mask.leading_zeros()) as u8)
    }

    /// Puts `task` at the front of its level (a thread whose timer fired).
    #[inline]
    pub(crate) fn push_front(&mut self, task: TaskRef) {
        let level = task.spec.priority as usize;
        let l = self.level(level);
        let p = TaskRef::into_raw(task);
        // SAFETY: as in `push`; `p` becomes the head and links to the old one.
        unsafe { (*p).exec().next = l.head };
        if l.tail.is_null() {
            l.tail = p;
        }
        l.head = p;
        self.mask |= 1 << level;
        self.len += 1;
    }

    /// The next thread to run. `running` is the priority of a thread that
    /// keeps the CPU unless something should replace it (a yield), `None`
    /// when the CPU is free (park, sleep, exit, idle).
    #[inline]
    pub(crate) fn pop(&mut self, running: Option<u8>) -> Option<TaskRef> {
        if self.mask == 0 {
            return None;
        }
        let top_waiting = 31 - self.mask.leading_zeros();
        let top = top_waiting.max(running.map_or(0, u32::from));
        let lowest_waiting = self.mask.trailing_zeros();
        if running.is_some_and(|r| u32::from(r) <= lowest_waiting) {
            // The CPU was at or below every waiting level: nobody starves.
            self.passed_over = 0;
        } else if lowest_waiting < top {
            self.passed_over += 1;
            if self.passed_over >= AGING_PERIOD {
                return self.aging_turn(top);
            }
        } else {
            // One level waits and the decision goes to it: no level is
            // passed over, so the run of pass-overs ends.
            self.passed_over = 0;
        }
        if running.is_some_and(|r| u32::from(r) > top_waiting) {
            return None;
        }
        self.take(top_waiting)
    }

    /// A yield's fast path: when `cur`'s level is the only one waiting and
    /// `ready` accepts its head, hands the head back and queues `cur` behind
    /// the rest of the level, in one pass. That is what `pop(Some(level))`
    /// and then `push(cur)` would do (nobody below waits, so the aging count
    /// restarts, and nothing above does, so the head is next), without
    /// emptying and refilling the level's bit. Otherwise gives `cur` back
    /// for the general path.
    #[inline(always)]
    pub(crate) fn rotate(&mut self, cur: TaskRef, ready: impl FnOnce(&Task) -> bool) -> Result<TaskRef, TaskRef> {
        let level = cur.spec.priority as usize;
        if self.mask != 1 << level {
            return Err(cur);
        }
        let l = self.level(level);
        let head = l.head;
        // SAFETY: the level's bit is set, so `head` is a live task this
        // queue owns (see `take`), as is the tail.
        unsafe {
            if !ready(&*head) {
                return Err(cur);
            }
            let after = (*head).exec().next;
            let p = TaskRef::into_raw(cur);
            (*p).exec().next = ptr::null();
            if after.is_null() {
                l.head = p;
            } else {
                l.head = after;
                (*l.tail).exec().next = p;
            }
            l.tail = p;
            self.passed_over = 0;
            if head == self.wake_slot {
                self.wake_slot = ptr::null();
            }
            Ok(TaskRef::from_raw(head))
        }
    }

    #[cold]
    #[inline(never)]
    fn aging_turn(&mut self, top: u32) -> Option<TaskRef> {
        self.passed_over = 0;
        let level = self.aging_level(top);
        self.take(level)
    }

    /// The waiting level below `top` that gets the next aging turn: the
    /// highest one below the previous turn's level, wrapping around.
    fn aging_level(&mut self, top: u32) -> u32 {
        let below_top = self.mask & ((1u32 << top) - 1);
        let below_cursor = below_top & ((1u32 << self.aging_cursor) - 1);
        let pick = if below_cursor != 0 { below_cursor } else { below_top };
        let level = 31 - pick.leading_zeros();
        self.aging_cursor = level as u8;
        level
    }

    #[inline(always)]
    fn take(&mut self, level: u32) -> Option<TaskRef> {
        let l = self.level(level as usize);
        let p = l.head;
        if p.is_null() {
            return None;
        }
        // SAFETY: `p` came from `TaskRef::into_raw` in `push` and is still owned
        // by this queue; its link belongs to us until we hand the reference out.
        unsafe {
            l.head = (*p).exec().next;
            if l.head.is_null() {
                l.tail = ptr::null();
                self.mask &= !(1 << level);
            }
            self.len -= 1;
            if p == self.wake_slot {
                self.wake_slot = ptr::null();
            }
            Some(TaskRef::from_raw(p))
        }
    }

    /// Takes the first thread, highest level first, of level `min` or
    /// above that `pick` accepts; the others keep their places. A walk of
    /// the levels: for the rare case when the head will not do.
    pub(crate) fn take_first(&mut self, min: u8, mut pick: impl FnMut(&Task) -> bool) -> Option<TaskRef> {
        let mut levels = self.mask & !((1u32 << min) - 1);
        while levels != 0 {
            let level = 31 - levels.leading_zeros();
            levels &= !(1 << level);
            let l = self.level(level as usize);
            let mut prev: *const Task = ptr::null();
            let mut p = l.head;
            // SAFETY: every link of a level is a live task this queue owns
            // (see `take`); unlinking one touches only its neighbours'
            // links, which are ours too.
            unsafe {
                while !p.is_null() {
                    let next = (*p).exec().next;
                    if pick(&*p) {
                        if prev.is_null() {
                            l.head = next;
                        } else {
                            (*prev).exec().next = next;
                        }
                        if l.tail == p {
                            l.tail = prev;
                        }
                        if l.head.is_null() {
                            self.mask &= !(1 << level);
                        }
                        self.len -= 1;
                        if p == self.wake_slot {
                            self.wake_slot = ptr::null();
                        }
                        return Some(TaskRef::from_raw(p));
                    }
                    prev = p;
                    p = next;
                }
            }
        }
        None
    }

    /// Empties the queue (shutdown).
    pub(crate) fn drain(&mut self) -> Vec<TaskRef> {
        let mut all = Vec::new();
        while self.mask != 0 {
            let level = self.mask.trailing_zeros();
            all.extend(self.take(level));
        }
        all
    }
}

impl Drop for RunQueue {
    fn drop(&mut self) {
        drop(self.drain());
    }
}

// SAFETY: the raw pointers are owned `TaskRef`s, and `Task` is Send.
unsafe impl Send for RunQueue {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::pool::Pool;
    use crate::runtime::task::test_tasks::{pool, tag, tagged};
    use std::sync::Arc;

    /// A queue filled with `(priority, tag)` entries, in that order.
    fn queue(pool: &Arc<Pool>, entries: &[(u8, u64)]) -> RunQueue {
        let mut q = RunQueue::default();
        for &(priority, t) in entries {
            q.push(tagged(pool, priority, t));
        }
        q
    }

    fn tags(tasks: impl IntoIterator<Item = TaskRef>) -> Vec<u64> {
        tasks.into_iter().map(|t| tag(&t)).collect()
    }

    /// Every entry, by the pops a free CPU would make (few enough that no
    /// aging turn comes in).
    fn pop_all(q: &mut RunQueue) -> Vec<u64> {
        tags(std::iter::from_fn(|| q.pop(None)))
    }

    #[test]
    fn higher_levels_first_and_fifo_within_a_level() {
        let pool = pool();
        let mut q = queue(&pool, &[(1, 101), (3, 301), (1, 102), (3, 302), (0, 1), (1, 103)]);
        assert_eq!(pop_all(&mut q), [301, 302, 101, 102, 103, 1]);
        assert!(q.pop(None).is_none());
    }

    #[test]
    fn push_front_goes_ahead_of_its_own_level_only() {
        let pool = pool();
        let mut q = queue(&pool, &[(2, 201), (2, 202), (4, 401)]);
        q.push_front(tagged(&pool, 2, 200));
        // On an empty level it is the tail too: a later push lines up behind.
        q.push_front(tagged(&pool, 1, 100));
        q.push(tagged(&pool, 1, 101));
        assert_eq!(pop_all(&mut q), [401, 200, 201, 202, 100, 101]);
    }

    #[test]
    fn a_running_thread_keeps_the_cpu_only_over_lower_levels() {
        let pool = pool();
        let mut q = queue(&pool, &[(3, 301), (3, 302), (3, 303)]);
        assert!(q.pop(Some(4)).is_none(), "level 4 runs on over level 3");
        assert_eq!(q.top_priority(), Some(3), "and nothing left the queue");
        // A yield at the same level hands over to the head of the level.
        assert_eq!(q.pop(Some(3)).map(|t| tag(&t)), Some(301));
        assert_eq!(q.pop(Some(0)).map(|t| tag(&t)), Some(302));
        assert_eq!(q.pop(None).map(|t| tag(&t)), Some(303));
        assert!(q.pop(Some(0)).is_none());
    }

    /// The decision at which the entry tagged `wanted` comes out, while a
    /// new level-`high` entry arrives before every decision.
    fn decisions_until(q: &mut RunQueue, pool: &Arc<Pool>, high: u8, wanted: u64) -> u32 {
        for decision in 1..=2 * AGING_PERIOD {
            q.push(tagged(pool, high, 1000));
            let t = q.pop(None).expect("something waits");
            if tag(&t) == wanted {
                return decision;
            }
            assert_eq!(tag(&t), 1000, "decision {decision} went to neither level");
        }
        panic!("{wanted} starved for {} decisions", 2 * AGING_PERIOD)
    }

    #[test]
    fn a_waiting_level_gets_the_aging_period_th_decision_that_passes_it_over() {
        let pool = pool();
        let mut q = queue(&pool, &[(0, 1)]);
        assert_eq!(decisions_until(&mut q, &pool, 5, 1), AGING_PERIOD);
    }

    #[test]
    fn a_thread_that_never_yields_is_passed_over_on_the_aging_period_th_decision() {
        let pool = pool();
        let mut q = queue(&pool, &[(0, 1)]);
        for decision in 1..AGING_PERIOD {
            assert!(q.pop(Some(5)).is_none(), "decision {decision}: level 5 keeps the CPU");
        }
        assert_eq!(q.pop(Some(5)).map(|t| tag(&t)), Some(1));
    }

    #[test]
    fn aging_turns_go_down_through_the_waiting_levels_and_wrap() {
        let pool = pool();
        let mut q = queue(&pool, &[(2, 201), (6, 601), (2, 202), (6, 602)]);
        let mut turns = Vec::new();
        for decision in 1..=4 * AGING_PERIOD {
            q.push(tagged(&pool, 10, 1000));
            match tag(&q.pop(None).unwrap()) {
                1000 => {}
                t => turns.push((decision, t)),
            }
        }
        let p = AGING_PERIOD;
        assert_eq!(turns, [(p, 601), (2 * p, 201), (3 * p, 602), (4 * p, 202)]);
    }

    /// A queue whose level-0 entry (tag 1) was passed over by level-5 ones
    /// in `AGING_PERIOD - 1` decisions in a row.
    fn one_short_of_an_aging_turn(pool: &Arc<Pool>) -> RunQueue {
        let mut q = queue(pool, &[(0, 1)]);
        for _ in 1..AGING_PERIOD {
            q.push(tagged(pool, 5, 1000));
            assert_eq!(tag(&q.pop(None).unwrap()), 1000);
        }
        q
    }

    #[test]
    fn a_decision_with_the_cpu_at_the_lowest_waiting_level_restarts_the_count() {
        let pool = pool();
        let mut q = one_short_of_an_aging_turn(&pool);
        // A level-0 thread that had the CPU now yields to a level-5 one
        // woken over it: nobody was starving.
        q.push(tagged(&pool, 5, 1000));
        assert_eq!(q.pop(Some(0)).map(|t| tag(&t)), Some(1000));
        assert_eq!(decisions_until(&mut q, &pool, 5, 1), AGING_PERIOD);
    }

    #[test]
    fn a_decision_at_the_only_waiting_level_ends_the_run_of_pass_overs() {
        let pool = pool();
        let mut q = one_short_of_an_aging_turn(&pool);
        // The CPU is free and only level 0 waits: it gets the turn, so the
        // next pass-over is the first of a new run, not the 256th.
        let t = q.pop(None).unwrap();
        assert_eq!(tag(&t), 1);
        q.push(t);
        assert_eq!(decisions_until(&mut q, &pool, 5, 1), AGING_PERIOD);
    }

    #[test]
    fn rotate_swaps_the_running_thread_for_the_head_of_its_level() {
        let pool = pool();
        let mut q = queue(&pool, &[(2, 201), (2, 202)]);
        let mut seen = None;
        let head = q.rotate(tagged(&pool, 2, 200), |t| {
            seen = Some(t.spec.slice_ns);
            true
        });
        assert_eq!(head.map(|t| tag(&t)).ok(), Some(201));
        assert_eq!(seen, Some(201), "`ready` is asked about the head");
        assert_eq!(tags(q.drain()), [202, 200]);

        let mut q = queue(&pool, &[(2, 201)]);
        assert_eq!(q.rotate(tagged(&pool, 2, 200), |_| true).map(|t| tag(&t)).ok(), Some(201));
        assert_eq!(tags(q.drain()), [200]);
    }

    #[test]
    fn rotate_restarts_the_aging_count() {
        let pool = pool();
        let mut q = one_short_of_an_aging_turn(&pool);
        // The low entry leaves some other way; a yield then rotates level 5.
        assert_eq!(q.take_first(0, |t| t.spec.priority == 0).map(|t| tag(&t)), Some(1));
        q.push(tagged(&pool, 5, 1000));
        assert!(q.rotate(tagged(&pool, 5, 1000), |_| true).is_ok());
        drop(q.drain());
        q.push(tagged(&pool, 0, 1));
        assert_eq!(decisions_until(&mut q, &pool, 5, 1), AGING_PERIOD);
    }

    #[test]
    fn a_refused_rotate_gives_the_task_back_and_changes_nothing() {
        let pool = pool();
        let back = |r: Result<TaskRef, TaskRef>| r.err().map(|t| tag(&t));

        let mut q = RunQueue::default();
        assert_eq!(back(q.rotate(tagged(&pool, 2, 200), |_| true)), Some(200), "nothing waits");
        assert_eq!(q.top_priority(), None);

        let mut q = queue(&pool, &[(2, 201), (1, 101), (2, 202)]);
        assert_eq!(back(q.rotate(tagged(&pool, 2, 200), |_| true)), Some(200), "another level waits");
        assert_eq!(pop_all(&mut q), [201, 202, 101]);

        let mut q = queue(&pool, &[(2, 201), (2, 202)]);
        assert_eq!(back(q.rotate(tagged(&pool, 2, 200), |_| false)), Some(200), "the head is not ready");
        assert_eq!(pop_all(&mut q), [201, 202]);
    }

    #[test]
    fn take_first_walks_levels_from_the_top_down_to_min() {
        let pool = pool();
        let mut q = queue(&pool, &[(1, 101), (4, 401), (1, 102), (4, 402), (1, 103)]);
        let mut asked = Vec::new();
        let even = q.take_first(0, |t| {
            asked.push(t.spec.slice_ns);
            t.spec.slice_ns % 2 == 0
        });
        assert_eq!(even.map(|t| tag(&t)), Some(402));
        assert_eq!(asked, [401, 402], "level 4 in FIFO order, and no further");
        assert!(q.take_first(2, |t| t.spec.priority == 1).is_none(), "level 1 is below min");
        // The tail of level 1: a later push must line up behind 102.
        assert_eq!(q.take_first(1, |t| t.spec.slice_ns == 103).map(|t| tag(&t)), Some(103));
        q.push(tagged(&pool, 1, 104));
        // The head of level 1, then level 4's only entry, which empties it.
        assert_eq!(q.take_first(0, |t| t.spec.slice_ns == 101).map(|t| tag(&t)), Some(101));
        assert_eq!(q.take_first(0, |t| t.spec.slice_ns == 401).map(|t| tag(&t)), Some(401));
        assert_eq!(q.top_priority(), Some(1));
        assert!(q.take_first(0, |_| false).is_none());
        assert_eq!(pop_all(&mut q), [102, 104]);
    }

    #[test]
    fn top_priority_is_the_highest_waiting_level() {
        let pool = pool();
        let mut q = RunQueue::default();
        assert_eq!(q.top_priority(), None);
        q.push(tagged(&pool, 0, 1));
        assert_eq!(q.top_priority(), Some(0));
        q.push(tagged(&pool, MAX_PRIORITY, 2));
        q.push(tagged(&pool, 7, 3));
        assert_eq!(q.top_priority(), Some(MAX_PRIORITY));
        assert_eq!(q.pop(None).map(|t| tag(&t)), Some(2));
        assert_eq!(q.top_priority(), Some(7));
    }

    #[test]
    fn len_counts_every_way_in_and_out() {
        let pool = pool();
        let mut q = queue(&pool, &[(1, 101), (2, 201)]);
        q.push_front(tagged(&pool, 1, 100));
        q.push_wake(tagged(&pool, 2, 200));
        assert_eq!(q.len(), 4);
        assert!(q.pop(None).is_some());
        assert!(q.take_first(0, |t| t.spec.slice_ns == 101).is_some());
        assert!(q.take_first(0, |t| t.spec.slice_ns == 100).is_some());
        assert!(q.rotate(tagged(&pool, 2, 202), |_| true).is_ok(), "in one, out one");
        assert_eq!(q.len(), 1);
        drop(q.drain());
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn the_wake_slot_holds_one_thread_at_the_front_of_its_level() {
        let pool = pool();
        let mut q = queue(&pool, &[(2, 201), (2, 202), (4, 401)]);
        q.push_wake(tagged(&pool, 2, 210));
        // A second wake-up takes the slot; the first goes to the back.
        q.push_wake(tagged(&pool, 2, 211));
        assert_eq!(pop_all(&mut q), [401, 211, 201, 202, 210]);
        // Across levels: the old slot holder keeps its place at the front
        // of its own level only while it is still there.
        let mut q = queue(&pool, &[(1, 101)]);
        q.push_wake(tagged(&pool, 1, 110));
        q.push_wake(tagged(&pool, 3, 310));
        assert_eq!(pop_all(&mut q), [310, 101, 110]);
    }

    #[test]
    fn a_slot_holder_that_left_is_not_moved_by_the_next_wake_up() {
        let pool = pool();
        let mut q = queue(&pool, &[(2, 201)]);
        q.push_wake(tagged(&pool, 2, 210));
        let t = q.pop(None).unwrap();
        assert_eq!(tag(&t), 210);
        // It comes back at the front by a timer, then another wake-up.
        q.push_front(t);
        q.push_wake(tagged(&pool, 2, 211));
        assert_eq!(pop_all(&mut q), [211, 210, 201]);
    }

    #[test]
    fn drain_empties_the_queue_lowest_level_first() {
        let pool = pool();
        let mut q = queue(&pool, &[(3, 301), (0, 1), (3, 302), (0, 2), (MAX_PRIORITY, 9)]);
        assert_eq!(tags(q.drain()), [1, 2, 301, 302, 9]);
        assert_eq!(q.top_priority(), None);
        assert!(q.pop(None).is_none());
        assert!(q.drain().is_empty());
    }

    #[test]
    fn dropping_a_queue_drops_every_task_in_it() {
        let pool = pool();
        let before = Arc::strong_count(&pool);
        let q = queue(&pool, &[(3, 301), (0, 1), (3, 302)]);
        assert_eq!(Arc::strong_count(&pool), before + 3);
        drop(q);
        assert_eq!(Arc::strong_count(&pool), before);
    }
}
