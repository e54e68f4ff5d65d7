//! The lock word behind [`RwLock`](super::RwLock).
//!
//! Uncontended, a read lock is one compare-and-swap and a read unlock one
//! fetch-sub; a write lock and unlock one compare-and-swap each.
//!
//! **Policy: phase-fair, with hand-off.** Once a writer waits, new readers
//! queue behind it (no writer starvation). When a writer unlocks, every
//! reader waiting at that moment is granted the lock together, before the
//! next writer (no reader starvation); when the last of those readers
//! unlocks, the first waiting writer is granted it. Grants are hand-offs: a
//! waiter is given the lock by the thread that releases it, so a timed-out
//! waiter either unlinked itself first or returns holding the lock.
//!
//! Consequence worth knowing: taking a read lock twice in one thread can
//! deadlock if a writer starts waiting in between (as with std on most
//! platforms).
//!
//! # The state word
//!
//! | bits     | name               | set while                           |
//! |----------|--------------------|-------------------------------------|
//! | 0        | `WRITER`           | a writer holds the lock             |
//! | 1        | `WRITERS_WAITING`  | the writers' wait list is not empty |
//! | 2        | `READERS_WAITING`  | the readers' wait list is not empty |
//! | 3 and up | `ONE_READER` units | readers hold the lock: their number |
//!
//! `WRITER` and a reader never go together. The waiting bits change only
//! under the list lock, and match the lists whenever it is free: a waiter
//! sets its bit in the same critical section that links it, and every
//! dispatch (under that lock) leaves them as the lists it leaves. The fast
//! paths only read them, so that a waiting writer stops new readers.
//!
//! | from                         | to                      | by                                                     |
//! |------------------------------|-------------------------|--------------------------------------------------------|
//! | no `WRITER`, no waiting bit  | one more reader         | `try_read` (one CAS)                                   |
//! | no `WRITER`, no writer waits | one more reader         | a reader in `acquire_slow`                             |
//! | 0                            | `WRITER`                | `try_write` (one CAS)                                  |
//! | no `WRITER`, no reader       | `WRITER` added          | a writer in `acquire_slow`, if no writer waits         |
//! | any other                    | its waiting bit added   | a reader or writer in `acquire_slow`, then waits       |
//! | n readers                    | n - 1                   | `read_unlock`; the last one dispatches if writers wait |
//! | `WRITER` alone               | 0                       | `write_unlock` (one CAS)                               |
//! | `WRITER`, waiting bits       | `WRITER` cleared        | `write_unlock`, which then dispatches                  |
//! | no `WRITER`, readers wait    | all waiting readers (1) | dispatch, after a write unlock or if no writer waits   |
//! | no `WRITER`, no reader       | `WRITER` (1)            | dispatch, otherwise, to the first waiting writer       |
//! | `WRITER`, or no grant        | bits as the lists       | dispatch (`fix_waiting_bits`)                          |
//!
//! (1) And the waiting bits as the lists are left.
//!
//! A dispatch runs under the list lock: after a write unlock (readers
//! first), after the last read unlock while writers wait, and after a
//! timed-out waiter unlinked itself. Its grants are hand-offs, made by the
//! state change itself before the waiters are woken.

use super::atomic::{AtomicUsize, Ordering, loom_const_fn};
use super::spin::SpinLock;
use super::waiter::{WaitList, Waiter, Wakes};
use std::time::Instant;

const WRITER: usize = 1;
const WRITERS_WAITING: usize = 2;
const READERS_WAITING: usize = 4;
const ONE_READER: usize = 8;

const GRANTED: u8 = 1;

/// The waiting bits for `readers` and `writers` linked waiters.
fn waiting_bits(readers: usize, writers: usize) -> usize {
    (if readers > 0 { READERS_WAITING } else { 0 }) | (if writers > 0 { WRITERS_WAITING } else { 0 })
}

struct Lists {
    readers: WaitList,
    writers: WaitList,
}

pub(crate) struct RawRwLock {
    state: AtomicUsize,
    lists: SpinLock<Lists>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read,
    Write,
}

impl RawRwLock {
    loom_const_fn! {
        pub(crate) fn new() -> Self {
            RawRwLock {
                state: AtomicUsize::new(0),
                lists: SpinLock::new(Lists { readers: WaitList::new(), writers: WaitList::new() }),
            }
        }
    }

    #[inline]
    pub(crate) fn try_read(&self) -> bool {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s & (WRITER | WRITERS_WAITING | READERS_WAITING) != 0 {
                return false;
            }
            let n = s.checked_add(ONE_READER).expect("too many readers of one RwLock");
            match self.state.compare_exchange_weak(s, n, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
    }

    #[inline]
    pub(crate) fn read(&self, deadline: Option<Instant>) -> bool {
        self.try_read() || self.acquire_slow(Kind::Read, deadline)
    }

    #[inline]
    pub(crate) fn try_write(&self) -> bool {
        self.state.compare_exchange(0, WRITER, Ordering::Acquire, Ordering::Relaxed).is_ok()
    }

    #[inline]
    pub(crate) fn write(&self, deadline: Option<Instant>) -> bool {
        self.try_write() || self.acquire_slow(Kind::Write, deadline)
    }

    /// # Safety
    /// The caller holds a read lock.
    #[inline]
    pub(crate) unsafe fn read_unlock(&self) {
        let prev = self.state.fetch_sub(ONE_READER, Ordering::Release);
        if prev / ONE_READER == 1 && prev & WRITERS_WAITING != 0 {
            self.release_slow(false);
        }
    }

    /// # Safety
    /// The caller holds the write lock.
    #[inline]
    pub(crate) unsafe fn write_unlock(&self) {
        if self.state.compare_exchange(WRITER, 0, Ordering::Release, Ordering::Relaxed).is_err() {
            self.state.fetch_and(!WRITER, Ordering::Release);
            self.release_slow(true);
        }
    }

    pub(crate) fn is_locked(&self) -> bool {
        let s = self.state.load(Ordering::Relaxed);
        s & WRITER != 0 || s >= ONE_READER
    }

    #[cold]
    fn release_slow(&self, by_writer: bool) {
        let mut wakes = Wakes::default();
        let mut lists = self.lists.lock();
        self.dispatch(&mut lists, by_writer, &mut wakes);
        drop(lists);
        wakes.unpark_all();
    }

    #[cold]
    fn acquire_slow(&self, kind: Kind, deadline: Option<Instant>) -> bool {
        let waiter = Waiter::new();
        {
            let mut lists = self.lists.lock();
            let mut s = self.state.load(Ordering::Relaxed);
            loop {
                let free = match kind {
                    Kind::Read => s & (WRITER | WRITERS_WAITING) == 0,
                    Kind::Write => s & WRITER == 0 && s < ONE_READER && lists.writers.is_empty(),
                };
                let (next, waiting) = match kind {
                    Kind::Read if free => (s + ONE_READER, false),
                    Kind::Write if free => (s | WRITER, false),
                    Kind::Read => (s | READERS_WAITING, true),
                    Kind::Write => (s | WRITERS_WAITING, true),
                };
                match self.state.compare_exchange_weak(s, next, Ordering::Acquire, Ordering::Relaxed) {
                    Ok(_) if !waiting => return true,
                    Ok(_) => break,
                    Err(now) => s = now,
                }
            }
            let list = if kind == Kind::Read { &mut lists.readers } else { &mut lists.writers };
            // SAFETY: `waiter` stays on this frame until a grant unlinks it
            // or we do, below.
            unsafe { list.push(&waiter, false) };
        }
        let parked_at = Instant::now();
        if waiter.park_until(deadline).is_some() {
            crate::runtime::contention::waited(parked_at);
            return true;
        }
        let mut wakes = Wakes::default();
        let mut lists = self.lists.lock();
        let list = if kind == Kind::Read { &mut lists.readers } else { &mut lists.writers };
        if !list.remove_if_waiting(&waiter) {
            // Granted as we gave up: it is ours.
            crate::runtime::contention::waited(parked_at);
            return true;
        }
        // Our leaving may unblock others (readers queued behind a writer
        // that gave up).
        self.dispatch(&mut lists, false, &mut wakes);
        drop(lists);
        wakes.unpark_all();
        false
    }

    /// Grants the lock to whoever may have it now; with `prefer_readers`
    /// (a writer just left), all waiting readers go before the next writer.
    /// Runs under the list lock.
    fn dispatch(&self, lists: &mut Lists, prefer_readers: bool, wakes: &mut Wakes) {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s & WRITER != 0 {
                // Held for writing (by a thread that barged in before us):
                // its unlock dispatches.
                return self.fix_waiting_bits(lists);
            }
            let readers = lists.readers.len();
            let writers = lists.writers.len();
            let base = s & !(READERS_WAITING | WRITERS_WAITING);
            let (next, grant) = if readers > 0 && (prefer_readers || writers == 0) {
                ((base + readers * ONE_READER) | waiting_bits(0, writers), Kind::Read)
            } else if writers > 0 && s < ONE_READER {
                (base | WRITER | waiting_bits(readers, writers - 1), Kind::Write)
            } else {
                return self.fix_waiting_bits(lists);
            };
            match self.state.compare_exchange_weak(s, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => {
                    match grant {
                        Kind::Read => {
                            while let Some(w) = lists.readers.wake_front(GRANTED) {
                                wakes.push(w);
                            }
                        }
                        Kind::Write => wakes.push(lists.writers.wake_front(GRANTED).expect("a writer waits")),
                    }
                    return;
                }
                Err(now) => s = now,
            }
        }
    }

    /// Makes the waiting bits match the lists (after a waiter left).
    fn fix_waiting_bits(&self, lists: &Lists) {
        let want = waiting_bits(lists.readers.len(), lists.writers.len());
        let mut s = self.state.load(Ordering::Relaxed);
        while s & (READERS_WAITING | WRITERS_WAITING) != want {
            let next = (s & !(READERS_WAITING | WRITERS_WAITING)) | want;
            match self.state.compare_exchange_weak(s, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(now) => s = now,
            }
        }
    }
}
