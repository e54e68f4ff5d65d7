//! A lock-free LIFO stack (Treiber) with safe memory reclamation.
//!
//! # Design
//!
//! `push` links a new node in front of `head` with one compare-and-swap;
//! `pop` unlinks the front node with one. The hard part of a Treiber stack
//! is freeing a popped node: another popper may have loaded the same node
//! as its `head` a moment earlier and be about to read its `next`. Freeing
//! the node under it is a use after free, and reusing its address for a new
//! node lets that popper's stale compare-and-swap succeed (ABA).
//!
//! Reclamation here is *quiescence based*: a popped node is freed only when
//! no pop that may still hold it is in flight.
//!
//! - Every pop counts itself in `pops` (the number of pops in flight)
//!   before it loads `head`, and out when it is done.
//! - A popper that sees itself alone (`pops == 1`) right after unlinking its
//!   node frees it at once: any other popper that loaded the node did so
//!   before the unlink, so it would have been counted.
//! - Otherwise the node goes onto the `pending` list (chained through a
//!   field of its own, which the other poppers never read, so there is no
//!   data race on `next`). A popper about to leave that sees itself alone
//!   takes the whole list, counts itself out, and frees the list only if the
//!   count it left was 1: everything in the list was unlinked before it was
//!   taken, so a popper still holding one of its nodes was counted. If
//!   someone else was in flight, the list goes back to `pending`.
//!
//! Because no node is freed while a pop that might hold it is in flight,
//! its address cannot come back as a new node under that pop, so ABA cannot
//! happen either, with no tags or double-width compare-and-swap. Every
//! operation on `head` and `pops` in `pop` is `SeqCst`: "I counted myself
//! in, then loaded head" against "I unlinked, then read the count" is the
//! store-buffering pattern, which weaker orderings allow to miss each other.
//!
//! A pop runs with preemption disabled ([`preempt::disable`]): it is a
//! few dozen instructions, and a popper suspended mid-pop would keep
//! `pops` above zero, and so every popped node unfreed, for a time slice.
//!
//! **Trade-off.** While pops overlap continuously, nobody is ever alone and
//! `pending` grows; it is freed at the next quiet moment (a pop that finds
//! itself alone) and at the latest when the stack is dropped. Pushes never
//! delay reclamation.
//!
//! **Why not crossbeam-epoch or hazard pointers?** Both would bound the
//! garbage better, but loom cannot model crossbeam-epoch's internals (it
//! uses its own atomics and thread-locals), and hazard pointers need a
//! registry of per-thread slots. This scheme is three atomics, so the loom
//! models below check the whole protocol, reclamation included.
//!
//! ```
//! use preemptive_mlthreading_rust::sync::LockFreeStack;
//! use preemptive_mlthreading_rust::spawn;
//! use std::sync::Arc;
//!
//! let stack = Arc::new(LockFreeStack::new());
//! let hs: Vec<_> = (0..4u64)
//!     .map(|t| {
//!         let s = Arc::clone(&stack);
//!         spawn(move || (0..100).for_each(|i| s.push(t * 100 + i))).unwrap()
//!     })
//!     .collect();
//! hs.into_iter().for_each(|h| h.join().unwrap());
//! let mut sum = 0;
//! while let Some(v) = stack.pop() {
//!     sum += v;
//! }
//! assert_eq!(sum, (0..400).sum());
//! ```

use super::atomic::{AtomicPtr, AtomicUsize, Ordering, loom_const_fn};
use super::reclaim::{Canary, free_box, sb_fence};
use crate::preempt;
use std::fmt;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ptr;

#[cfg(loom)]
use loom::cell::UnsafeCell;
#[cfg(not(loom))]
use std::cell::UnsafeCell;

struct Node<T> {
    /// Initialised until the popper that unlinked the node moves it out.
    value: UnsafeCell<MaybeUninit<T>>,
    /// Written only before the node is published, then read-only.
    next: *mut Node<T>,
    /// The `pending` chain: written only by the popper that unlinked the node.
    pending_next: *mut Node<T>,
    canary: Canary,
}

/// A lock-free LIFO stack: `push` and `pop` are a compare-and-swap each
/// (plus an allocation or a free) and never block; many threads may push
/// and pop at once. Usable in a `static`. See the [module docs](self) for
/// how popped nodes are reclaimed safely.
///
/// ```
/// use preemptive_mlthreading_rust::sync::LockFreeStack;
///
/// static WORK: LockFreeStack<u32> = LockFreeStack::new();
/// WORK.push(1);
/// WORK.push(2);
/// assert_eq!(WORK.pop(), Some(2));
/// assert_eq!(WORK.pop(), Some(1));
/// assert_eq!(WORK.pop(), None);
/// ```
pub struct LockFreeStack<T> {
    head: AtomicPtr<Node<T>>,
    /// Pops in flight.
    pops: AtomicUsize,
    /// Unlinked nodes waiting for a moment with no pop in flight.
    pending: AtomicPtr<Node<T>>,
    /// Owns `T`s (for drop check and auto traits).
    _owns: PhantomData<T>,
    /// Under loom: nodes allocated and not yet freed, checked on drop.
    #[cfg(loom)]
    live_nodes: std::sync::atomic::AtomicUsize,
}

// SAFETY: the stack owns its `T`s and hands each to exactly one popper; no
// `&T` is ever shared, so `T: Send` is enough for both.
unsafe impl<T: Send> Send for LockFreeStack<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for LockFreeStack<T> {}

impl<T> LockFreeStack<T> {
    loom_const_fn! {
        /// An empty stack; usable in a `static`.
        ///
        /// ```
        /// use preemptive_mlthreading_rust::sync::LockFreeStack;
        ///
        /// static S: LockFreeStack<String> = LockFreeStack::new();
        /// assert!(S.is_empty());
        /// ```
        pub fn new() -> Self {
            LockFreeStack {
                head: AtomicPtr::new(ptr::null_mut()),
                pops: AtomicUsize::new(0),
                pending: AtomicPtr::new(ptr::null_mut()),
                _owns: PhantomData,
                #[cfg(loom)]
                live_nodes: std::sync::atomic::AtomicUsize::new(0),
            }
        }
    }

    /// Pushes `value` on top. Lock-free: retries only when another push or
    /// pop changed the top meanwhile.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::LockFreeStack;
    ///
    /// let s = LockFreeStack::new();
    /// s.push("a");
    /// assert_eq!(s.pop(), Some("a"));
    /// ```
    pub fn push(&self, value: T) {
        #[cfg(loom)]
        self.live_nodes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let node = Box::into_raw(Box::new(Node {
            value: UnsafeCell::new(MaybeUninit::new(value)),
            next: ptr::null_mut(),
            pending_next: ptr::null_mut(),
            canary: Canary::new(),
        }));
        // SAFETY: the node is ours; the closure (unsafe context) only computes
        // the address of the `next` field of the live node it is given.
        unsafe { link_front(&self.head, node, node, |n| &raw mut (*n).next) };
    }

    /// Pops the top value, or `None` if the stack is empty. Lock-free.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::LockFreeStack;
    ///
    /// let s = LockFreeStack::new();
    /// assert_eq!(s.pop(), None::<u8>);
    /// s.push(7u8);
    /// assert_eq!(s.pop(), Some(7));
    /// ```
    pub fn pop(&self) -> Option<T> {
        let _no_preempt = preempt::disable();
        self.pops.fetch_add(1, Ordering::SeqCst);
        sb_fence();
        let mut head = self.head.load(Ordering::SeqCst);
        while !head.is_null() {
            // SAFETY: `head` was loaded while this pop is counted in `pops`,
            // so it is not freed before this pop leaves (module docs); `next`
            // is read-only once published.
            let next = unsafe {
                (*head).canary.check();
                (*head).next
            };
            match self.head.compare_exchange_weak(head, next, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => break,
                Err(now) => head = now,
            }
        }
        if head.is_null() {
            self.leave(ptr::null_mut());
            return None;
        }
        // SAFETY: we unlinked `head`, so its value is ours alone; the
        // Release push / SeqCst load made its initialisation visible.
        let value = unsafe { take_value(&(*head).value) };
        self.leave(head);
        Some(value)
    }

    /// Whether the stack was empty at the moment of the call.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::LockFreeStack;
    ///
    /// let s = LockFreeStack::new();
    /// assert!(s.is_empty());
    /// s.push(1);
    /// assert!(!s.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.head.load(Ordering::Acquire).is_null()
    }

    /// Counts this pop out of `pops`, reclaiming `unlinked` (a node this pop
    /// unlinked, or null) and the pending list when it can.
    fn leave(&self, unlinked: *mut Node<T>) {
        // Counted in, loaded head / unlinked, read the count: see `sb_fence`.
        sb_fence();
        if self.pops.load(Ordering::SeqCst) == 1 {
            // Alone after the unlink: nobody else can hold `unlinked`.
            let list = if self.pending.load(Ordering::Relaxed).is_null() {
                ptr::null_mut()
            } else {
                self.pending.swap(ptr::null_mut(), Ordering::SeqCst)
            };
            if self.pops.fetch_sub(1, Ordering::SeqCst) == 1 {
                // SAFETY: every node of `list` was unlinked before we took
                // it, and no other pop was in flight as we left.
                unsafe { self.free_list(list) };
            } else if !list.is_null() {
                // SAFETY: `list` is a chain we own.
                unsafe { self.defer(list) };
            }
            if !unlinked.is_null() {
                // SAFETY: see above: we were alone after unlinking it.
                unsafe { self.free_node(unlinked) };
            }
        } else {
            if !unlinked.is_null() {
                // SAFETY: a single node we unlinked; its `pending_next` is ours.
                unsafe { self.defer(unlinked) };
            }
            self.pops.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Chains the `pending_next` chain starting at `first` onto `pending`.
    ///
    /// # Safety
    /// The chain is unlinked from the stack and owned by the caller.
    unsafe fn defer(&self, first: *mut Node<T>) {
        let mut last = first;
        // SAFETY: the chain is ours, so reading its links is race-free.
        unsafe {
            while !(*last).pending_next.is_null() {
                last = (*last).pending_next;
            }
        }
        // SAFETY: the chain is ours; the closure only computes the address
        // of the `pending_next` field of the live node it is given.
        unsafe { link_front(&self.pending, first, last, |n| &raw mut (*n).pending_next) };
    }

    /// Frees a chain of unlinked nodes whose values were moved out.
    ///
    /// # Safety
    /// No thread can access any node of the chain any more.
    unsafe fn free_list(&self, mut node: *mut Node<T>) {
        while !node.is_null() {
            // SAFETY: per the contract; read the link before freeing.
            let next = unsafe { (*node).pending_next };
            // SAFETY: as above.
            unsafe { self.free_node(node) };
            node = next;
        }
    }

    /// Frees one node whose value was moved out.
    ///
    /// # Safety
    /// No thread can access the node any more.
    unsafe fn free_node(&self, node: *mut Node<T>) {
        #[cfg(loom)]
        self.live_nodes.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: per the contract; the node came from `Box::into_raw`, and
        // `MaybeUninit` drops nothing.
        unsafe { free_box(node, |n| &n.canary) };
    }
}

/// Links the chain `first..=last` in front of the list starting at `top`,
/// setting `last`'s link (the field `link` points to) to the old front.
/// Release: whoever loads `first` from `top` sees the chain initialised.
///
/// # Safety
/// The chain is the caller's alone until published, and `link` returns a
/// pointer to a field of the node it is given.
unsafe fn link_front<T>(
    top: &AtomicPtr<Node<T>>,
    first: *mut Node<T>,
    last: *mut Node<T>,
    link: impl Fn(*mut Node<T>) -> *mut *mut Node<T>,
) {
    let mut front = top.load(Ordering::Relaxed);
    loop {
        // SAFETY: `last` is ours until the compare-and-swap publishes it.
        unsafe { *link(last) = front };
        match top.compare_exchange_weak(front, first, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => return,
            Err(now) => front = now,
        }
    }
}

/// Moves the value out of a node's cell.
///
/// # Safety
/// The value is initialised, the caller has exclusive access to it and
/// treats it as uninitialised afterwards.
#[cfg(not(loom))]
unsafe fn take_value<T>(cell: &UnsafeCell<MaybeUninit<T>>) -> T {
    // SAFETY: per the contract.
    unsafe { (*cell.get()).assume_init_read() }
}

/// As above; loom checks the access against the initialisation.
///
/// # Safety
/// As above.
#[cfg(loom)]
unsafe fn take_value<T>(cell: &UnsafeCell<MaybeUninit<T>>) -> T {
    // SAFETY: per the contract.
    cell.with(|v| unsafe { (*v).assume_init_read() })
}

impl<T> Default for LockFreeStack<T> {
    /// An empty stack.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::LockFreeStack;
    ///
    /// let s: LockFreeStack<u8> = Default::default();
    /// assert!(s.is_empty());
    /// ```
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for LockFreeStack<T> {
    /// Shows whether the stack is empty (its values are not reachable
    /// without popping them).
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::LockFreeStack;
    ///
    /// let s: LockFreeStack<u8> = LockFreeStack::new();
    /// assert_eq!(format!("{s:?}"), "LockFreeStack { is_empty: true, .. }");
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockFreeStack").field("is_empty", &self.is_empty()).finish_non_exhaustive()
    }
}

impl<T> Drop for LockFreeStack<T> {
    /// Drops the values still on the stack and frees every node, pending
    /// ones included.
    fn drop(&mut self) {
        let mut node = self.head.load(Ordering::Relaxed);
        while !node.is_null() {
            // SAFETY: `&mut self`: no pop or push is in flight, so every
            // linked node is ours, with its value initialised.
            unsafe {
                let next = (*node).next;
                drop(take_value(&(*node).value));
                self.free_node(node);
                node = next;
            }
        }
        let pending = self.pending.load(Ordering::Relaxed);
        // SAFETY: no pop is in flight; pending nodes hold no value.
        unsafe { self.free_list(pending) };
        #[cfg(loom)]
        assert_eq!(self.live_nodes.load(std::sync::atomic::Ordering::Relaxed), 0, "leaked nodes");
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::LockFreeStack;
    use loom::sync::Arc;
    use loom::thread;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts its drops in a per-execution counter.
    struct Item(u32, Arc<loom::sync::atomic::AtomicUsize>);
    impl Drop for Item {
        fn drop(&mut self) {
            self.1.fetch_add(1, loom::sync::atomic::Ordering::Relaxed);
        }
    }

    fn drops() -> Arc<loom::sync::atomic::AtomicUsize> {
        Arc::new(loom::sync::atomic::AtomicUsize::new(0))
    }

    /// Two threads each push one and pop one: no value lost or duplicated,
    /// every node freed exactly once (the canary and the live count).
    #[test]
    fn loom_stack_two_push_pop() {
        loom::model(|| {
            let stack = Arc::new(LockFreeStack::new());
            let dropped = drops();
            let ts: Vec<_> = (0..2u32)
                .map(|i| {
                    let (s, d) = (Arc::clone(&stack), Arc::clone(&dropped));
                    thread::spawn(move || {
                        s.push(Item(1 << i, d));
                        s.pop().map_or(0, |it| it.0)
                    })
                })
                .collect();
            let mut seen: u32 = ts.into_iter().map(|t| t.join().unwrap()).sum();
            while let Some(it) = stack.pop() {
                seen += it.0;
            }
            assert_eq!(seen, 0b11);
            drop(stack);
            assert_eq!(dropped.load(loom::sync::atomic::Ordering::Relaxed), 2);
        });
    }

    /// Three concurrent poppers of a pre-filled stack: overlapping pops take
    /// the pending-list path, a value left unpopped is dropped by `Drop`.
    #[test]
    fn loom_stack_three_poppers() {
        static POPPED: AtomicUsize = AtomicUsize::new(0);
        loom::model(|| {
            let stack = Arc::new(LockFreeStack::new());
            let dropped = drops();
            for i in 0..3u32 {
                stack.push(Item(1 << i, Arc::clone(&dropped)));
            }
            let ts: Vec<_> = (0..2)
                .map(|_| {
                    let s = Arc::clone(&stack);
                    thread::spawn(move || s.pop().map_or(0, |it| it.0))
                })
                .collect();
            let mine = stack.pop().map_or(0, |it| it.0);
            let theirs: u32 = ts.into_iter().map(|t| t.join().unwrap()).sum();
            assert_eq!(mine + theirs, 0b111);
            assert!(stack.is_empty());
            drop(stack);
            assert_eq!(dropped.load(loom::sync::atomic::Ordering::Relaxed), 3);
            POPPED.fetch_add(1, Ordering::Relaxed);
        });
        println!("three poppers: {} executions", POPPED.load(Ordering::Relaxed));
    }

    /// A popper racing a pusher that pushes twice, with a value left over.
    #[test]
    fn loom_stack_pop_races_pushes() {
        loom::model(|| {
            let stack = Arc::new(LockFreeStack::new());
            let dropped = drops();
            stack.push(Item(1, Arc::clone(&dropped)));
            let s = Arc::clone(&stack);
            let d = Arc::clone(&dropped);
            let pusher = thread::spawn(move || {
                s.push(Item(2, Arc::clone(&d)));
                s.push(Item(4, d));
            });
            let s = Arc::clone(&stack);
            let popper = thread::spawn(move || s.pop().map_or(0, |it| it.0) + s.pop().map_or(0, |it| it.0));
            pusher.join().unwrap();
            let mut seen = popper.join().unwrap();
            while let Some(it) = stack.pop() {
                seen += it.0;
            }
            assert_eq!(seen, 7);
            drop(stack);
            assert_eq!(dropped.load(loom::sync::atomic::Ordering::Relaxed), 3);
        });
    }
}
