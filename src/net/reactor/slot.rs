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
//!
//! The readiness bits share one word with an event count and two more
//! bits, so that a stream read can skip the read that would only say
//! `WouldBlock` (tokio does the same):
//!
//! | bits    | meaning                                                        |
//! |---------|----------------------------------------------------------------|
//! | 0, 1    | `READ`, `WRITE`: an event came and nobody consumed it           |
//! | 2       | `CLOSED`: an event said hang-up, error or urgent data; kept      |
//! | 3       | `DRAINED`: a read emptied the receive queue, no event came since |
//! | 4       | `URGENT`: an event said urgent data; kept                        |
//! | 5–31    | events fired, counted (wrapping)                               |
//!
//! A TCP read that returns less than it asked for has emptied the receive
//! queue, except at urgent data, a FIN or an error, which all come with
//! an event that sets `CLOSED` for good. [`Slot::mark_drained`] takes the
//! word read *before* that read: it sets `DRAINED` (and consumes `READ`)
//! only if no event has fired since and `CLOSED` is clear. Data that
//! arrives after the read's start fires its event after it, which moves
//! the count and refuses the mark, or which comes after the mark and
//! clears it: a reader that saw `DRAINED` and parked is woken by it.
//!
//! Two cases leave data queued after a short read with no event to
//! come, and a read that trusts `DRAINED` waits for the peer's next
//! segment or for its read timeout; a read that times out tries once
//! more before it says so (`waits.rs`), so it returns the data then:
//!
//! - `SO_RCVLOWAT` raised through the raw descriptor: the kernel holds
//!   its event until the low-water mark is queued, which is what a
//!   blocking std read waits for too.
//! - An urgent pointer that a crafted peer sends ahead of data it sent
//!   out of order: Linux keeps it "not yet valid", stops reads at it and
//!   reports no `EPOLLPRI`. No Linux sender does this; it delays only
//!   that peer's own bytes, as withholding them would.
//!
//! Checking either on every short read costs the syscall the shortcut
//! saves.

use crate::sync::spin::SpinLock;
use crate::thread::Thread;
use std::io;
use std::ptr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, Ordering};

pub(in crate::net) const READ: u8 = 1;
pub(in crate::net) const WRITE: u8 = 2;
/// What an event may say besides readiness ([`Slot::fire`]): hang-up or
/// error.
pub(super) const HANG_UP: u8 = 4;
/// What an event may say besides readiness: urgent data came.
pub(super) const URGENT_DATA: u8 = 8;
/// Hang-up, error or urgent data seen: `DRAINED` is never set again.
const CLOSED: u32 = 4;
/// The receive queue is known empty (module docs).
const DRAINED: u32 = 8;
/// Urgent data seen: reads may stop at the urgent mark (`waits.rs`).
const URGENT: u32 = 16;
/// One fired event in the count.
const EVENT: u32 = 32;

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
    /// Readiness, `CLOSED`, `DRAINED` and the event count (module docs).
    ready: AtomicU32,
    waiters: SpinLock<Waiters>,
}

impl Slot {
    fn new() -> Slot {
        Slot { generation: AtomicU32::new(0), ready: AtomicU32::new(0), waiters: SpinLock::new(Waiters::default()) }
    }

    pub(super) fn generation(&self) -> u32 {
        self.generation.load(Ordering::Acquire)
    }

    /// An event for `generation` that `said` readiness (`READ`, `WRITE`),
    /// [`HANG_UP`] or [`URGENT_DATA`]: sets the bits and wakes who waits
    /// for them; true when it woke someone.
    pub(super) fn fire(&self, generation: u32, said: u8) -> bool {
        let bits = said & (READ | WRITE);
        let mut woken: [Option<Thread>; 2] = [None, None];
        let mut more = Vec::new();
        {
            let mut w = self.waiters.lock();
            if self.generation.load(Ordering::Relaxed) != generation {
                return false;
            }
            let set = u32::from(bits)
                | if said & (HANG_UP | URGENT_DATA) != 0 { CLOSED } else { 0 }
                | if said & URGENT_DATA != 0 { URGENT } else { 0 };
            // Any event clears DRAINED: only a read knows the queue empty.
            let _ = self.ready.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |w| {
                Some(((w | set) & !DRAINED).wrapping_add(EVENT))
            });
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
        let bit = u32::from(bit);
        self.ready.load(Ordering::Acquire) & bit != 0 && self.ready.fetch_and(!bit, Ordering::AcqRel) & bit != 0
    }

    /// The state word, read before a stream read for [`Slot::mark_drained`].
    pub(super) fn mark(&self) -> u32 {
        self.ready.load(Ordering::Acquire)
    }

    /// A read that started after [`Slot::mark`] returned `mark` emptied the
    /// receive queue: records it unless an event fired since or `CLOSED`
    /// is set (module docs).
    pub(super) fn mark_drained(&self, mark: u32) {
        let count = |w: u32| w & !(EVENT - 1);
        let _ = self.ready.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |w| {
            (count(w) == count(mark) && w & CLOSED == 0).then_some((w & !u32::from(READ)) | DRAINED)
        });
    }

    /// The receive queue is known empty: a read would say `WouldBlock`.
    pub(super) fn drained(&self) -> bool {
        self.ready.load(Ordering::Acquire) & DRAINED != 0
    }

    /// An event said urgent data (ever, for this descriptor).
    pub(super) fn urgent(&self) -> bool {
        self.ready.load(Ordering::Acquire) & URGENT != 0
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_read_marks_the_queue_empty_only_without_a_newer_event() {
        let slot = Slot::new();
        slot.fire(0, READ);
        let mark = slot.mark();
        slot.mark_drained(mark);
        assert!(slot.drained(), "no event since the mark: the queue is empty");
        assert!(!slot.take_ready(READ), "the consumed event's readiness goes with the mark");
        // An event clears the mark and leaves its readiness.
        slot.fire(0, READ);
        assert!(!slot.drained());
        // An event between the mark and the short read: data may be queued.
        let mark = slot.mark();
        slot.fire(0, READ);
        slot.mark_drained(mark);
        assert!(!slot.drained(), "an event after the read began refuses the mark");
        assert!(slot.take_ready(READ), "and its readiness stays for the next read");
    }

    #[test]
    fn hang_up_error_or_urgent_data_refuse_the_mark_for_good() {
        for said in [HANG_UP, URGENT_DATA] {
            let slot = Slot::new();
            slot.fire(0, READ | said);
            let mark = slot.mark();
            slot.mark_drained(mark);
            assert!(!slot.drained(), "after a FIN or urgent data a short read proves nothing");
            slot.fire(0, WRITE);
            let mark = slot.mark();
            slot.mark_drained(mark);
            assert!(!slot.drained(), "the closed bit is kept across later events");
        }
    }

    #[test]
    fn only_urgent_data_marks_the_slot_urgent_and_the_mark_stays() {
        let slot = Slot::new();
        slot.fire(0, READ | HANG_UP);
        assert!(!slot.urgent(), "a hang-up or an error is not urgent data");
        slot.fire(0, READ | URGENT_DATA);
        assert!(slot.urgent());
        slot.fire(0, WRITE);
        assert!(slot.take_ready(READ) && slot.take_ready(WRITE));
        assert!(slot.urgent(), "kept across later events and consumed readiness");
        slot.release();
        assert!(!slot.urgent(), "the next descriptor in the slot starts without it");
    }

    #[test]
    fn other_changes_to_the_word_do_not_refuse_the_mark() {
        let slot = Slot::new();
        slot.fire(0, READ | WRITE);
        let mark = slot.mark();
        assert!(slot.take_ready(WRITE), "a writer consumes its readiness meanwhile");
        slot.mark_drained(mark);
        assert!(slot.drained());
    }

    #[test]
    fn a_released_slot_forgets_its_state_and_ignores_stale_events() {
        let slot = Slot::new();
        slot.fire(0, READ | URGENT_DATA);
        slot.release();
        assert_eq!(slot.generation(), 1);
        assert!(!slot.fire(0, READ), "an event for the old generation wakes nobody");
        assert!(!slot.take_ready(READ), "and sets nothing");
        let mark = slot.mark();
        slot.mark_drained(mark);
        assert!(slot.drained(), "the old descriptor's closed bit is gone");
    }

    #[test]
    fn the_event_count_wraps_without_touching_the_bits() {
        let slot = Slot::new();
        slot.ready.store(!(EVENT - 1), Ordering::Relaxed);
        let mark = slot.mark();
        slot.fire(0, WRITE);
        assert_eq!(slot.mark() & (EVENT - 1), u32::from(WRITE), "the count wrapped to zero and kept the bits");
        slot.mark_drained(mark);
        assert!(!slot.drained(), "a wrapped count still differs from the mark");
    }
}
