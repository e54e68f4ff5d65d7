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
//! **Upgradable reads.** One thread at a time may hold the lock as an
//! upgradable reader: alongside plain readers, excluding writers and other
//! upgradable readers. It queues with the writers (one FIFO) and, like a
//! waiting writer, stops new readers while it waits. An upgrade waits only
//! for the plain readers to leave, before any waiting writer (which waits
//! for the upgradable reader anyway); new readers queue behind it meanwhile,
//! so it cannot starve. A thread that upgrades while it also holds a plain
//! read lock deadlocks.
//!
//! # The state word
//!
//! | bits     | name               | set while                                                    |
//! |----------|--------------------|--------------------------------------------------------------|
//! | 0        | `WRITER`           | a writer holds the lock                                      |
//! | 1        | `WRITERS_WAITING`  | the writers' list (writers, upgradable readers) is not empty |
//! | 2        | `READERS_WAITING`  | the readers' wait list is not empty                          |
//! | 3        | `UPGRADABLE`       | an upgradable reader holds the lock                          |
//! | 4        | `UPGRADING`        | its upgrade waits for the plain readers to leave             |
//! | 5 and up | `ONE_READER` units | plain readers hold the lock: their number                    |
//!
//! `WRITER` goes with neither a reader nor `UPGRADABLE`; `UPGRADING` only
//! with `UPGRADABLE`. The upgradable reader is not counted among the
//! readers: "no readers" is what its upgrade waits for. The waiting bits
//! (`*_WAITING`, `UPGRADING`) change only under the list lock, and match
//! the lists whenever it is free: a waiter sets its bit in the same
//! critical section that links it, and every dispatch (under that lock)
//! leaves them as the lists it leaves. The fast paths only read them, so
//! that a waiting writer or upgrade stops new readers.
//!
//! | from                                        | to                            | by                                                                    |
//! |---------------------------------------------|-------------------------------|-----------------------------------------------------------------------|
//! | no `WRITER`, no waiting bit                 | one more reader               | `try_read` (one CAS)                                                  |
//! | no `WRITER`, no writer or upgrade waits     | one more reader               | a reader in `acquire_slow`                                            |
//! | 0                                           | `WRITER`                      | `try_write` (one CAS)                                                 |
//! | no `WRITER`/`UPGRADABLE`/reader             | `WRITER` added                | a writer in `acquire_slow`, if no writer waits                        |
//! | no `WRITER`/`UPGRADABLE`/waiting bit        | `UPGRADABLE` added            | `try_upgradable` (one CAS)                                            |
//! | no `WRITER`/`UPGRADABLE`                    | `UPGRADABLE` added            | an upgradable reader in `acquire_slow`, if no writer waits            |
//! | `UPGRADABLE`, no reader                     | `WRITER` for `UPGRADABLE`     | `try_upgrade` (one CAS), or an upgrade in `acquire_slow`              |
//! | any other                                   | its waiting bit added         | an acquirer in `acquire_slow`, which then waits                       |
//! | n readers                                   | n - 1                         | `read_unlock`; the last dispatches if a writer or upgrade waits       |
//! | `WRITER` alone                              | 0                             | `write_unlock` (one CAS)                                              |
//! | `WRITER`, waiting bits                      | `WRITER` cleared              | `write_unlock`, which then dispatches                                 |
//! | `UPGRADABLE`                                | `UPGRADABLE` cleared          | `upgradable_unlock`; dispatches if a bit waits                        |
//! | `WRITER`                                    | one reader, or `UPGRADABLE`   | `downgrade`, `downgrade_to_upgradable`; dispatch likewise             |
//! | `UPGRADABLE`                                | one more reader               | `downgrade_upgradable`; dispatches likewise                           |
//! | `UPGRADING`, no reader                      | `WRITER` for `UPGRADABLE` (1) | dispatch: a waiting upgrade goes first, alone                         |
//! | no `WRITER`/`UPGRADABLE`                    | `UPGRADABLE` (1)              | dispatch, to an upgradable reader first in the writers' list; goes on |
//! | no `WRITER`, no upgrade waits, readers wait | all waiting readers (1)       | dispatch, after a write unlock or if no writer waits                  |
//! | no `WRITER`/`UPGRADABLE`, no reader         | `WRITER` (1)                  | dispatch, otherwise, to the first waiting writer                      |
//! | `WRITER`, or no grant                       | bits as the lists             | dispatch (`fix_waiting_bits`)                                         |
//!
//! (1) And the waiting bits as the lists are left.
//!
//! A dispatch runs under the list lock: after a write unlock or a
//! downgrade (readers first), after the last read unlock while a writer or
//! an upgrade waits, after an upgradable unlock or downgrade while anyone
//! waits, and after a timed-out waiter unlinked itself. Its grants are
//! hand-offs, made by the state change itself before the waiters are woken.

use super::atomic::{AtomicUsize, Ordering, loom_const_fn};
use super::spin::SpinLock;
use super::waiter::{WaitList, Waiter, Wakes};
use std::time::Instant;

const WRITER: usize = 1;
const WRITERS_WAITING: usize = 2;
const READERS_WAITING: usize = 4;
const UPGRADABLE: usize = 8;
const UPGRADING: usize = 16;
const ONE_READER: usize = 32;
/// The bits that mirror the wait lists.
const WAITING: usize = WRITERS_WAITING | READERS_WAITING | UPGRADING;

const GRANTED: u8 = 1;

/// The number of plain readers holding the lock in word `s`.
fn readers(s: usize) -> usize {
    s / ONE_READER
}

/// The waiting bits for `readers` and `writers` linked waiters, and a
/// waiting upgrade.
fn waiting_bits(readers: usize, writers: usize, upgrading: bool) -> usize {
    (if readers > 0 { READERS_WAITING } else { 0 })
        | (if writers > 0 { WRITERS_WAITING } else { 0 })
        | (if upgrading { UPGRADING } else { 0 })
}

struct Lists {
    readers: WaitList,
    /// Writers and upgradable readers (their entry's `flag` set), in one
    /// FIFO.
    writers: WaitList,
    /// The upgrade waiting for the readers to leave, if any (at most one:
    /// only the upgradable reader upgrades).
    upgrading: WaitList,
}

impl Lists {
    fn of(&mut self, kind: Kind) -> &mut WaitList {
        match kind {
            Kind::Read => &mut self.readers,
            Kind::Write | Kind::Upgradable => &mut self.writers,
            Kind::Upgrade => &mut self.upgrading,
        }
    }

    fn waiting_bits(&self) -> usize {
        waiting_bits(self.readers.len(), self.writers.len(), !self.upgrading.is_empty())
    }
}

/// The lock word behind [`RwLock`](super::RwLock), for use through
/// [`lock_api`]: `lock_api::RwLock<RawRwLock, T>` is a reader-writer lock
/// with this lock's behaviour (parks green threads, phase-fair hand-off,
/// upgradable reads) and `lock_api`'s guards, for code written against
/// `lock_api` or `parking_lot`'s API.
///
/// It implements [`lock_api::RawRwLock`], [`lock_api::RawRwLockTimed`],
/// [`lock_api::RawRwLockDowngrade`], [`lock_api::RawRwLockUpgrade`],
/// [`lock_api::RawRwLockUpgradeDowngrade`] and
/// [`lock_api::RawRwLockUpgradeTimed`]. Unlocking from another thread than
/// the locking one is fine (the lock has no owner), so `lock_api`'s guards
/// over it are `Send`.
///
/// ```
/// use lock_api::RwLockUpgradableReadGuard;
/// use preemptive_mlthreading_rust::sync::RawRwLock;
///
/// type RwLock<T> = lock_api::RwLock<RawRwLock, T>;
///
/// let l = RwLock::new(vec![1]);
/// let up = l.upgradable_read();
/// assert_eq!(l.read().len(), 1); // plain readers still get in
/// assert!(l.try_upgradable_read().is_none()); // one upgradable reader
/// let mut w = RwLockUpgradableReadGuard::upgrade(up);
/// w.push(2);
/// drop(w);
/// assert_eq!(*l.read(), [1, 2]);
/// ```
pub struct RawRwLock {
    state: AtomicUsize,
    lists: SpinLock<Lists>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read,
    Write,
    Upgradable,
    /// The upgradable reader, for the write lock.
    Upgrade,
}

impl RawRwLock {
    loom_const_fn! {
        pub(crate) fn new() -> Self {
            RawRwLock {
                state: AtomicUsize::new(0),
                lists: SpinLock::new(Lists {
                    readers: WaitList::new(),
                    writers: WaitList::new(),
                    upgrading: WaitList::new(),
                }),
            }
        }
    }

    /// Moves the word to `f(word)` with one compare-and-swap (again if the
    /// word changed meanwhile); false, with nothing changed, once `f`
    /// refuses.
    #[inline(always)]
    fn try_update(&self, f: impl Fn(usize) -> Option<usize>) -> bool {
        let mut s = self.state.load(Ordering::Relaxed);
        while let Some(n) = f(s) {
            match self.state.compare_exchange_weak(s, n, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
        false
    }

    #[inline]
    pub(crate) fn try_read(&self) -> bool {
        self.try_update(|s| {
            (s & (WRITER | WAITING) == 0).then(|| s.checked_add(ONE_READER).expect("too many readers of one RwLock"))
        })
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

    #[inline]
    pub(crate) fn try_upgradable(&self) -> bool {
        self.try_update(|s| (s & (WRITER | UPGRADABLE | WAITING) == 0).then_some(s | UPGRADABLE))
    }

    #[inline]
    pub(crate) fn upgradable(&self, deadline: Option<Instant>) -> bool {
        self.try_upgradable() || self.acquire_slow(Kind::Upgradable, deadline)
    }

    /// Trades the upgradable read lock for the write lock if no plain
    /// reader holds the lock; false (still upgradable) otherwise.
    ///
    /// # Safety
    /// The caller holds the upgradable read lock.
    #[inline]
    pub(crate) unsafe fn try_upgrade(&self) -> bool {
        self.try_update(|s| (readers(s) == 0).then_some((s & !UPGRADABLE) | WRITER))
    }

    /// Upgrades once the plain readers have left, or gives up at
    /// `deadline` (false: still upgradable).
    ///
    /// # Safety
    /// The caller holds the upgradable read lock.
    #[inline]
    pub(crate) unsafe fn upgrade(&self, deadline: Option<Instant>) -> bool {
        // SAFETY: the caller holds the upgradable read lock.
        let done = unsafe { self.try_upgrade() };
        done || self.acquire_slow(Kind::Upgrade, deadline)
    }

    /// # Safety
    /// The caller holds a read lock.
    #[inline]
    pub(crate) unsafe fn read_unlock(&self) {
        let prev = self.state.fetch_sub(ONE_READER, Ordering::Release);
        // One bit test here; the count is checked out of line (two tests
        // inline cost five more instructions on every read unlock).
        if prev & (WRITERS_WAITING | UPGRADING) != 0 {
            self.read_unlock_slow(prev);
        }
    }

    /// A reader left (the word was `prev`) while a writer or an upgrade
    /// waits: the last one dispatches, since they wait for no readers.
    #[cold]
    fn read_unlock_slow(&self, prev: usize) {
        if readers(prev) == 1 {
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

    /// # Safety
    /// The caller holds the upgradable read lock.
    #[inline]
    pub(crate) unsafe fn upgradable_unlock(&self) {
        let prev = self.state.fetch_sub(UPGRADABLE, Ordering::Release);
        if prev & WAITING != 0 {
            self.release_slow(false);
        }
    }

    /// Trades the write lock for a read lock, letting in the readers that
    /// wait (and an upgradable reader first in line).
    ///
    /// # Safety
    /// The caller holds the write lock.
    pub(crate) unsafe fn downgrade(&self) {
        self.trade(WRITER, ONE_READER, true)
    }

    /// Trades the write lock for the upgradable read lock.
    ///
    /// # Safety
    /// The caller holds the write lock.
    pub(crate) unsafe fn downgrade_to_upgradable(&self) {
        self.trade(WRITER, UPGRADABLE, true)
    }

    /// Trades the upgradable read lock for a plain read lock.
    ///
    /// # Safety
    /// The caller holds the upgradable read lock.
    pub(crate) unsafe fn downgrade_upgradable(&self) {
        self.trade(UPGRADABLE, ONE_READER, false)
    }

    /// Replaces the held `from` (a bit) by `to` in one step (`to > from`,
    /// and `from` is set, so the sum carries into nothing else), then
    /// dispatches if anyone waits: they may fit beside `to`.
    fn trade(&self, from: usize, to: usize, prefer_readers: bool) {
        let prev = self.state.fetch_add(to - from, Ordering::Release);
        if prev & WAITING != 0 {
            self.release_slow(prefer_readers);
        }
    }

    pub(crate) fn is_locked(&self) -> bool {
        let s = self.state.load(Ordering::Relaxed);
        s & (WRITER | UPGRADABLE) != 0 || readers(s) != 0
    }

    pub(crate) fn is_locked_exclusive(&self) -> bool {
        self.state.load(Ordering::Relaxed) & WRITER != 0
    }

    #[cold]
    fn release_slow(&self, by_writer: bool) {
        let mut wakes = Wakes::default();
        let mut lists = self.lists.lock();
        self.dispatch(&mut lists, by_writer, &mut wakes);
        drop(lists);
        wakes.unpark_all();
    }

    /// What an acquirer of `kind` makes of word `s`, under the list lock:
    /// the new word, and whether it must wait.
    fn arrive(kind: Kind, s: usize, lists: &Lists) -> (usize, bool) {
        let exclusive = s & (WRITER | UPGRADABLE) != 0;
        match kind {
            Kind::Read if s & (WRITER | WRITERS_WAITING | UPGRADING) == 0 => (s + ONE_READER, false),
            Kind::Write if !exclusive && readers(s) == 0 && lists.writers.is_empty() => (s | WRITER, false),
            Kind::Upgradable if !exclusive && lists.writers.is_empty() => (s | UPGRADABLE, false),
            Kind::Upgrade if readers(s) == 0 => ((s & !UPGRADABLE) | WRITER, false),
            Kind::Read => (s | READERS_WAITING, true),
            Kind::Write | Kind::Upgradable => (s | WRITERS_WAITING, true),
            Kind::Upgrade => (s | UPGRADING, true),
        }
    }

    #[cold]
    fn acquire_slow(&self, kind: Kind, deadline: Option<Instant>) -> bool {
        let waiter = Waiter::new();
        {
            let mut lists = self.lists.lock();
            let mut s = self.state.load(Ordering::Relaxed);
            loop {
                let (next, waiting) = Self::arrive(kind, s, &lists);
                match self.state.compare_exchange_weak(s, next, Ordering::Acquire, Ordering::Relaxed) {
                    Ok(_) if !waiting => return true,
                    Ok(_) => break,
                    Err(now) => s = now,
                }
            }
            // Read under the list lock, by a dispatch: this waiter wants
            // the upgradable lock, not the write lock.
            waiter.flag.set(kind == Kind::Upgradable);
            // SAFETY: `waiter` stays on this frame until a grant unlinks it
            // or we do, below.
            unsafe { lists.of(kind).push(&waiter, false) };
        }
        let parked_at = Instant::now();
        if waiter.park_until(deadline).is_some() {
            crate::runtime::contention::waited(parked_at);
            return true;
        }
        let mut wakes = Wakes::default();
        let mut lists = self.lists.lock();
        if !lists.of(kind).remove_if_waiting(&waiter) {
            // Granted as we gave up: it is ours.
            crate::runtime::contention::waited(parked_at);
            return true;
        }
        // Our leaving may unblock others (readers queued behind a writer
        // or an upgrade that gave up).
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
            let Some((next, grant)) = Self::next_grant(s, lists, prefer_readers) else {
                return self.fix_waiting_bits(lists);
            };
            match self.state.compare_exchange_weak(s, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => {
                    if grant == Kind::Read {
                        while let Some(w) = lists.readers.wake_front(GRANTED) {
                            wakes.push(w);
                        }
                    } else {
                        wakes.push(lists.of(grant).wake_front(GRANTED).expect("granted a waiter"));
                    }
                    if grant != Kind::Upgradable {
                        return;
                    }
                    // Readers may come in beside it.
                    s = next;
                }
                Err(now) => s = now,
            }
        }
    }

    /// The word after the next grant dispatch can make from `s`, and to
    /// whom; `None` if nobody waiting may have the lock now.
    fn next_grant(s: usize, lists: &Lists, prefer_readers: bool) -> Option<(usize, Kind)> {
        if s & WRITER != 0 {
            // Held for writing (by a thread that barged in before us, or
            // an upgrade): its unlock dispatches.
            return None;
        }
        let waiting_readers = lists.readers.len();
        let writers = lists.writers.len();
        let base = s & !WAITING;
        if !lists.upgrading.is_empty() {
            // Readers stay queued behind the upgrade, which goes first.
            let n = (base & !UPGRADABLE) | WRITER | waiting_bits(waiting_readers, writers, false);
            return (readers(s) == 0).then_some((n, Kind::Upgrade));
        }
        let upgradable_first = lists.writers.front().is_some_and(|w| w.flag.get());
        if upgradable_first && s & UPGRADABLE == 0 {
            let n = base | UPGRADABLE | waiting_bits(waiting_readers, writers - 1, false);
            return Some((n, Kind::Upgradable));
        }
        if waiting_readers > 0 && (prefer_readers || writers == 0) {
            let n = (base + waiting_readers * ONE_READER) | waiting_bits(0, writers, false);
            return Some((n, Kind::Read));
        }
        if writers > 0 && !upgradable_first && s & UPGRADABLE == 0 && readers(s) == 0 {
            let n = base | WRITER | waiting_bits(waiting_readers, writers - 1, false);
            return Some((n, Kind::Write));
        }
        None
    }

    /// Makes the waiting bits match the lists (after a waiter left).
    fn fix_waiting_bits(&self, lists: &Lists) {
        let want = lists.waiting_bits();
        let mut s = self.state.load(Ordering::Relaxed);
        while s & WAITING != want {
            let next = (s & !WAITING) | want;
            match self.state.compare_exchange_weak(s, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(now) => s = now,
            }
        }
    }
}
