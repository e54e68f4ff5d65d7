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
//!
//! The list is generic over what it links ([`Linked`]) only so that the
//! loom models can run it on items whose link loom tracks; the runtime
//! instantiates it for [`TaskRef`] alone.

use super::task::{Task, TaskRef};
#[cfg(loom)]
use loom::sync::atomic::{AtomicPtr, Ordering};
use std::ptr;
#[cfg(not(loom))]
use std::sync::atomic::{AtomicPtr, Ordering};

/// An owned pointer whose pointee has a link word that belongs to whoever
/// holds the item, free while it waits in an [`Inbox`].
///
/// # Safety
/// `into_raw` gives a non-null pointer that stays valid until `from_raw`
/// takes it back; `set_next` and `next` touch nothing but that link.
pub(crate) unsafe trait Linked {
    type Node;
    fn into_raw(this: Self) -> *mut Self::Node;
    /// # Safety
    /// `p` came from `into_raw`, and is taken back once.
    unsafe fn from_raw(p: *mut Self::Node) -> Self;
    /// # Safety
    /// `p` came from `into_raw` and the caller holds it (no other thread
    /// can reach it).
    unsafe fn set_next(p: *mut Self::Node, next: *mut Self::Node);
    /// # Safety
    /// As for `set_next`.
    unsafe fn next(p: *mut Self::Node) -> *mut Self::Node;
}

// SAFETY: `TaskRef::into_raw` gives the task's non-null address, valid
// while the reference it stands for lives; the link is `Exec::next`, which
// is free while the task is in no run queue (see the module docs).
unsafe impl Linked for TaskRef {
    type Node = Task;

    #[inline(always)]
    fn into_raw(this: Self) -> *mut Task {
        TaskRef::into_raw(this).cast_mut()
    }

    #[inline(always)]
    unsafe fn from_raw(p: *mut Task) -> Self {
        // SAFETY: the caller's contract is `TaskRef::from_raw`'s.
        unsafe { TaskRef::from_raw(p) }
    }

    #[inline(always)]
    unsafe fn set_next(p: *mut Task, next: *mut Task) {
        // SAFETY: the holder of a task in no run queue owns its `Exec`.
        unsafe { (*p).exec().next = next }
    }

    #[inline(always)]
    unsafe fn next(p: *mut Task) -> *mut Task {
        // SAFETY: as in `set_next`.
        unsafe { (*p).exec().next.cast_mut() }
    }
}

pub(crate) struct Inbox<T: Linked = TaskRef> {
    head: AtomicPtr<T::Node>,
}

impl<T: Linked> Inbox<T> {
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        Inbox { head: AtomicPtr::new(ptr::null_mut()) }
    }

    /// Loom's atomics have no const constructor.
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Inbox { head: AtomicPtr::new(ptr::null_mut()) }
    }

    /// Adds `item`. Lock-free and async-signal-safe. Sequentially
    /// consistent, so that a waker's later check of the worker's sleep
    /// state and the worker's check of [`Inbox::is_empty`] after announcing
    /// its sleep cannot both miss.
    pub(crate) fn push(&self, item: T) {
        let p = T::into_raw(item);
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: the item is in no queue while being passed over; its
            // link is ours to set until the CAS publishes it.
            unsafe { T::set_next(p, head) };
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

    /// Takes every item, oldest first.
    pub(crate) fn take_all(&self) -> Taken<T> {
        let mut p = self.head.swap(ptr::null_mut(), Ordering::AcqRel);
        // Reverse the stack into arrival order: the links are ours now.
        let mut fifo: *mut T::Node = ptr::null_mut();
        while !p.is_null() {
            // SAFETY: every entry came from `push`, and the swap made the
            // list ours; each link was written before its CAS (acquired).
            unsafe {
                let next = T::next(p);
                T::set_next(p, fifo);
                fifo = p;
                p = next;
            }
        }
        Taken { next: fifo }
    }
}

impl<T: Linked> Drop for Inbox<T> {
    fn drop(&mut self) {
        drop(self.take_all());
    }
}

/// The items taken from an [`Inbox`], owned until yielded.
pub(crate) struct Taken<T: Linked> {
    next: *mut T::Node,
}

impl<T: Linked> Iterator for Taken<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        if self.next.is_null() {
            return None;
        }
        // SAFETY: the list is ours (see `take_all`); each entry is an owned
        // item from `Linked::into_raw`, read before it is given out.
        unsafe {
            let p = self.next;
            self.next = T::next(p);
            Some(T::from_raw(p))
        }
    }
}

impl<T: Linked> Drop for Taken<T> {
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

/// An item loom can follow through an [`Inbox`], and the inbox's model.
#[cfg(all(test, loom))]
pub(super) mod loom_tests {
    use super::{Inbox, Linked};
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;
    use loom::thread;
    use std::ptr;

    /// A boxed item tagged `(producer, index)` whose link is a loom cell:
    /// a read of a link not ordered after its write is reported, which a
    /// task's plain `Exec::next` would not be.
    pub(in crate::runtime) struct Item {
        pub(in crate::runtime) tag: (usize, u8),
        next: UnsafeCell<*mut Item>,
    }

    pub(in crate::runtime) fn item(producer: usize, index: u8) -> Box<Item> {
        Box::new(Item { tag: (producer, index), next: UnsafeCell::new(ptr::null_mut()) })
    }

    // SAFETY: `Box::into_raw` is non-null and valid until `Box::from_raw`;
    // the link is the item's own cell.
    unsafe impl Linked for Box<Item> {
        type Node = Item;

        fn into_raw(this: Self) -> *mut Item {
            Box::into_raw(this)
        }

        unsafe fn from_raw(p: *mut Item) -> Self {
            // SAFETY: the trait's contract.
            unsafe { Box::from_raw(p) }
        }

        unsafe fn set_next(p: *mut Item, next: *mut Item) {
            // SAFETY: the caller holds `p` (the trait's contract).
            unsafe { (*p).next.with_mut(|n| *n = next) }
        }

        unsafe fn next(p: *mut Item) -> *mut Item {
            // SAFETY: as in `set_next`.
            unsafe { (*p).next.with(|n| *n) }
        }
    }

    /// Two producers push two items each while the consumer polls (as
    /// `Worker::take_inbox` does: it drains only when the list looks
    /// non-empty) until it has them all: every item comes out once, each
    /// producer's in the order it pushed them, and every link is read
    /// after it was written.
    #[test]
    fn loom_concurrent_pushes_and_drains_take_each_item_once_in_order() {
        loom::model(|| {
            let inbox = Arc::new(Inbox::<Box<Item>>::new());
            let producers: Vec<_> = (0..2)
                .map(|p| {
                    let inbox = Arc::clone(&inbox);
                    thread::spawn(move || (0..2).for_each(|i| inbox.push(item(p, i))))
                })
                .collect();
            let mut next = [0u8; 2];
            while next != [2, 2] {
                if inbox.is_empty() {
                    thread::yield_now();
                    continue;
                }
                for it in inbox.take_all() {
                    let (p, i) = it.tag;
                    assert_eq!(i, next[p], "producer {p}: out of order, lost or taken twice");
                    next[p] += 1;
                }
            }
            producers.into_iter().for_each(|h| h.join().unwrap());
            assert!(inbox.is_empty());
        });
    }
}
