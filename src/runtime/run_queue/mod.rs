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
/// default 10 ms slice (docs/scheduling.md, "Priorities").
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
mod tests;
