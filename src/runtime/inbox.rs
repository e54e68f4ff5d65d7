//! Threads passed to a worker from other OS threads.
//!
//! An intrusive Treiber stack threaded through the tasks' own run-queue
//! links (`Exec::next`), which are free while a task waits here: a producer
//! publishes a task with one compare-and-swap, and a consumer takes the
//! whole list with one swap, so a cross-worker wake-up moves one contended
//! cache line each way (a segmented queue moved its head, tail and slot
//! lines). Taking everything at once also means there is no ABA problem
//! and the list would be safe for several consumers. No allocation and no
//! lock: signal handlers push too.

use super::task::{Task, TaskRef};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

pub(crate) struct Inbox {
    head: AtomicPtr<Task>,
}

impl Inbox {
    pub(crate) const fn new() -> Self {
        Inbox { head: AtomicPtr::new(ptr::null_mut()) }
    }

    /// Adds `task`. Lock-free and async-signal-safe. Sequentially
    /// consistent, so that a waker's later check of the worker's sleep
    /// state and the worker's check of [`Inbox::is_empty`] after announcing
    /// its sleep cannot both miss.
    pub(crate) fn push(&self, task: TaskRef) {
        let p = TaskRef::into_raw(task).cast_mut();
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: the task is in no queue while being passed over; its
            // link is ours to set until the CAS publishes it.
            unsafe { (*p).exec().next = head };
            match self.head.compare_exchange_weak(head, p, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.head.load(Ordering::SeqCst).is_null()
    }

    /// Takes every task, oldest first.
    pub(crate) fn take_all(&self) -> Taken {
        let mut p = self.head.swap(ptr::null_mut(), Ordering::AcqRel);
        // Reverse the stack into arrival order: the links are ours now.
        let mut fifo: *mut Task = ptr::null_mut();
        while !p.is_null() {
            // SAFETY: every entry came from `push`, and the swap made the
            // list ours; each link was written before its CAS (acquired).
            unsafe {
                let next = (*p).exec().next.cast_mut();
                (*p).exec().next = fifo;
                fifo = p;
                p = next;
            }
        }
        Taken { next: fifo }
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        drop(self.take_all());
    }
}

/// The tasks taken from an [`Inbox`], owned until yielded.
pub(crate) struct Taken {
    next: *mut Task,
}

impl Iterator for Taken {
    type Item = TaskRef;

    fn next(&mut self) -> Option<TaskRef> {
        if self.next.is_null() {
            return None;
        }
        // SAFETY: the list is ours (see `take_all`); each entry is an owned
        // reference from `TaskRef::into_raw`, read before it is given out.
        unsafe {
            let p = self.next;
            self.next = (*p).exec().next.cast_mut();
            Some(TaskRef::from_raw(p))
        }
    }
}

impl Drop for Taken {
    fn drop(&mut self) {
        self.for_each(drop);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::task::test_tasks::{pool, tag, tagged};
    use std::sync::Arc;

    #[test]
    fn concurrent_pushes_are_taken_exactly_once_in_each_producers_order() {
        let pool = pool();
        let inbox = Arc::new(Inbox::new());
        const PRODUCERS: u64 = 4;
        const EACH: u64 = 20_000;
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let (pool, inbox) = (Arc::clone(&pool), Arc::clone(&inbox));
                std::thread::spawn(move || {
                    for i in 0..EACH {
                        inbox.push(tagged(&pool, 0, p << 32 | i));
                    }
                })
            })
            .collect();
        let mut next = [0u64; PRODUCERS as usize];
        let mut takes = 0;
        while next.iter().sum::<u64>() < PRODUCERS * EACH {
            for t in inbox.take_all() {
                let (p, i) = ((tag(&t) >> 32) as usize, tag(&t) & 0xffff_ffff);
                assert_eq!(i, next[p], "producer {p}: out of order or duplicated");
                next[p] += 1;
            }
            takes += 1;
        }
        producers.into_iter().for_each(|h| h.join().unwrap());
        assert!(inbox.is_empty());
        println!("{} tasks from {PRODUCERS} producers taken in {takes} sweeps", PRODUCERS * EACH);
    }

    #[test]
    fn dropping_an_inbox_or_a_partly_taken_list_frees_every_task() {
        let pool = pool();
        let before = Arc::strong_count(&pool);
        let inbox = Inbox::new();
        for i in 0..10 {
            inbox.push(tagged(&pool, 0, i));
        }
        let mut taken = inbox.take_all();
        assert_eq!(taken.next().map(|t| tag(&t)), Some(0));
        drop(taken);
        for i in 0..10 {
            inbox.push(tagged(&pool, 0, i));
        }
        drop(inbox);
        // Each task held a reference to the pool; all are gone.
        assert_eq!(Arc::strong_count(&pool), before);
    }
}
