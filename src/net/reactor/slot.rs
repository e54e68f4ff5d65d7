//! The state of one registered descriptor, and the table that holds it.
//!
//! Slots are never freed, only reused, so an event the kernel queued
//! before a descriptor left the poller can always be looked up: its key
//! carries the slot's generation, which moves on each release, and a
//! stale event is ignored (Go tags its poll descriptors the same way).
//!
//! Per direction, a slot has a readiness bit and a list of parked
//! waiters. The protocol is Go's `netpollblock`, with a list where Go
//! serialises callers with a lock first:
//!
//! | event finds | it does                                   |
//! |-------------|-------------------------------------------|
//! | no waiter   | sets the bit                              |
//! | waiters     | sets the bit, marks and unparks them all  |
//!
//! A caller whose operation said `WouldBlock` consumes the bit if it is
//! set (an event came since: retry) and otherwise parks until marked.
//! A woken waiter consumes the bit too before it retries, so the next
//! `WouldBlock` parks instead of retrying once more for nothing. No
//! wake-up is lost: an event after the `WouldBlock` either finds the bit
//! clear and sets it, or finds the waiter and marks it.

use crate::sync::spin::SpinLock;
use crate::thread::Thread;
use std::io;
use std::ptr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU32, Ordering};

pub(in crate::net) const READ: u8 = 1;
pub(in crate::net) const WRITE: u8 = 2;

/// A parked caller, on its own stack: it leaves the list before it
/// returns.
pub(super) struct Waiter {
    pub(super) thread: Thread,
    pub(super) woken: AtomicBool,
}

#[derive(Clone, Copy, PartialEq)]
struct WaiterPtr(*const Waiter);
// SAFETY: the pointee is only read under the slot's lock while its owner
// is parked (it unlinks itself under the same lock before it returns).
unsafe impl Send for WaiterPtr {}

#[derive(Default)]
struct Waiters {
    readers: Vec<WaiterPtr>,
    writers: Vec<WaiterPtr>,
}

pub(super) struct Slot {
    generation: AtomicU32,
    ready: AtomicU8,
    waiters: SpinLock<Waiters>,
}

impl Slot {
    fn new() -> Slot {
        Slot { generation: AtomicU32::new(0), ready: AtomicU8::new(0), waiters: SpinLock::new(Waiters::default()) }
    }

    pub(super) fn generation(&self) -> u32 {
        self.generation.load(Ordering::Acquire)
    }

    /// An event for `generation` with readiness `bits`: sets them and
    /// wakes who waits for them; true when it woke someone.
    pub(super) fn fire(&self, generation: u32, bits: u8) -> bool {
        let mut woken: [Option<Thread>; 2] = [None, None];
        let mut more = Vec::new();
        {
            let mut w = self.waiters.lock();
            if self.generation.load(Ordering::Relaxed) != generation {
                return false;
            }
            self.ready.fetch_or(bits, Ordering::AcqRel);
            let mut n = 0;
            let Waiters { readers, writers } = &mut *w;
            let lists = [(READ, readers), (WRITE, writers)];
            for (bit, list) in lists {
                if bits & bit == 0 {
                    continue;
                }
                for p in list.drain(..) {
                    // SAFETY: a listed waiter is parked (or about to be)
                    // and unlinks itself only under this lock.
                    let waiter = unsafe { &*p.0 };
                    waiter.woken.store(true, Ordering::Release);
                    let t = waiter.thread.clone();
                    if n < woken.len() {
                        woken[n] = Some(t);
                        n += 1;
                    } else {
                        more.push(t);
                    }
                }
            }
        }
        let any = woken[0].is_some();
        for t in woken.into_iter().flatten().chain(more) {
            t.unpark_io();
        }
        any
    }

    /// Consumes readiness `bit` if an event set it.
    pub(super) fn take_ready(&self, bit: u8) -> bool {
        self.ready.load(Ordering::Acquire) & bit != 0 && self.ready.fetch_and(!bit, Ordering::AcqRel) & bit != 0
    }

    /// Lists `me` for `bit` unless readiness came meanwhile (then false).
    pub(super) fn enlist(&self, bit: u8, me: &Waiter) -> bool {
        let mut w = self.waiters.lock();
        if self.take_ready(bit) {
            return false;
        }
        let list = if bit == READ { &mut w.readers } else { &mut w.writers };
        list.push(WaiterPtr(me));
        true
    }

    /// Unlists `me` (woken or not).
    pub(super) fn delist(&self, bit: u8, me: &Waiter) {
        let mut w = self.waiters.lock();
        let list = if bit == READ { &mut w.readers } else { &mut w.writers };
        list.retain(|p| !ptr::eq(p.0, me));
    }

    /// The descriptor left: later events are stale, and anyone still
    /// listed (only a descriptor closed under a waiter) is woken.
    fn release(&self) {
        let everyone = {
            let mut w = self.waiters.lock();
            self.generation.fetch_add(1, Ordering::AcqRel);
            self.ready.store(0, Ordering::Release);
            let Waiters { readers, writers } = &mut *w;
            readers
                .drain(..)
                .chain(writers.drain(..))
                .map(|p| {
                    // SAFETY: as in `fire`.
                    let waiter = unsafe { &*p.0 };
                    waiter.woken.store(true, Ordering::Release);
                    waiter.thread.clone()
                })
                .collect::<Vec<_>>()
        };
        everyone.iter().for_each(Thread::unpark);
    }
}

const CHUNK: usize = 1024;
const CHUNKS: usize = 4096;

/// Slots by index: chunks allocated as needed and never freed, so that a
/// lookup needs no lock.
pub(super) struct Table {
    chunks: [AtomicPtr<Slot>; CHUNKS],
    /// Released indices, and the count ever handed out.
    free: Mutex<(Vec<u32>, u32)>,
}

impl Table {
    pub(super) const fn new() -> Table {
        Table { chunks: [const { AtomicPtr::new(ptr::null_mut()) }; CHUNKS], free: Mutex::new((Vec::new(), 0)) }
    }

    pub(super) fn get(&self, index: u32) -> Option<&Slot> {
        let (c, i) = (index as usize / CHUNK, index as usize % CHUNK);
        let chunk = self.chunks.get(c)?.load(Ordering::Acquire);
        // SAFETY: a published chunk holds CHUNK slots and is never freed.
        (!chunk.is_null()).then(|| unsafe { &*chunk.add(i) })
    }

    /// A free slot's index.
    pub(super) fn alloc(&self) -> io::Result<u32> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = free.0.pop() {
            return Ok(i);
        }
        let index = free.1;
        let c = index as usize / CHUNK;
        if c >= CHUNKS {
            return Err(io::Error::other(format!(
                "more than {} descriptors registered with the network poller at once",
                CHUNK * CHUNKS
            )));
        }
        if (index as usize).is_multiple_of(CHUNK) {
            let chunk: Box<[Slot]> = (0..CHUNK).map(|_| Slot::new()).collect();
            self.chunks[c].store(Box::leak(chunk).as_mut_ptr(), Ordering::Release);
        }
        free.1 += 1;
        Ok(index)
    }

    /// Releases slot `index` for reuse.
    pub(super) fn free(&self, index: u32) {
        if let Some(slot) = self.get(index) {
            slot.release();
        }
        self.free.lock().unwrap_or_else(|e| e.into_inner()).0.push(index);
    }
}
