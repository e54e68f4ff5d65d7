//! The readiness poller: one epoll instance (through the `polling` crate)
//! and one OS thread (`pmt-netpoll`) that waits on it and unparks the green
//! threads whose descriptors became ready.
//!
//! Each descriptor being waited on has one entry, with at most one
//! waiting reader and one waiting writer (a stream's two halves used by
//! two threads), registered in oneshot mode for the union of their
//! interests and re-armed for whoever still waits after an event. An
//! entry's key carries a generation beside the descriptor, so an event
//! for a descriptor that was closed and reused since (its entry gone and
//! made again) is recognised as stale and wakes nobody, as Go tags its
//! poll descriptors with a sequence number.
//!
//! This first version polls from a thread of its own, as Go's monitor
//! does when nobody else has polled for 10 ms; folding the wait into idle
//! workers (with their next timer as the timeout) is the next step (issue
//! 17).

use crate::thread::Thread;
use polling::{Event, Events, PollMode, Poller};
use std::collections::HashMap;
use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// What a waiter waits for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Interest {
    Read,
    Write,
}

/// One parked waiter: its thread, and whether its readiness came.
pub(crate) struct Waiter {
    pub(crate) thread: Thread,
    pub(crate) ready: AtomicBool,
}

struct Entry {
    generation: u32,
    reader: Option<Arc<Waiter>>,
    writer: Option<Arc<Waiter>>,
}

impl Entry {
    fn interest(&self, key: usize) -> Event {
        match (self.reader.is_some(), self.writer.is_some()) {
            (true, true) => Event::all(key),
            (true, false) => Event::readable(key),
            (false, true) => Event::writable(key),
            (false, false) => Event::none(key),
        }
    }
}

pub(crate) struct Reactor {
    poller: Poller,
    entries: Mutex<HashMap<RawFd, Entry>>,
    generation: AtomicU32,
    /// Descriptors with a waiter: an idle worker polls only when some are.
    waited: AtomicUsize,
}

fn key(fd: RawFd, generation: u32) -> usize {
    ((generation as usize) << 32) | fd as u32 as usize
}

/// The process's reactor, its thread started on first use.
pub(crate) fn reactor() -> io::Result<&'static Reactor> {
    static REACTOR: OnceLock<Result<&'static Reactor, String>> = OnceLock::new();
    let r = REACTOR.get_or_init(|| {
        let poller = Poller::new().map_err(|e| format!("cannot create the epoll instance: {e}"))?;
        let reactor: &'static Reactor = Box::leak(Box::new(Reactor {
            poller,
            entries: Mutex::new(HashMap::new()),
            generation: AtomicU32::new(1),
            waited: AtomicUsize::new(0),
        }));
        std::thread::Builder::new()
            .name("pmt-netpoll".into())
            .spawn(move || reactor.run())
            .map_err(|e| format!("cannot start the poller thread: {e}"))?;
        crate::runtime::io_hook::install(poll_ready);
        Ok(reactor)
    });
    match r {
        Ok(r) => Ok(r),
        Err(e) => Err(io::Error::other(e.clone())),
    }
}

/// For idle workers ([`crate::runtime::io_hook`]): dispatches whatever is
/// ready now, without waiting; true when it woke a thread.
fn poll_ready() -> bool {
    thread_local! {
        static EVENTS: std::cell::RefCell<Events> = std::cell::RefCell::new(Events::new());
    }
    let Ok(reactor) = reactor() else { return false };
    if reactor.waited.load(Ordering::Relaxed) == 0 {
        return false;
    }
    EVENTS.with(|events| {
        let Ok(mut events) = events.try_borrow_mut() else { return false };
        events.clear();
        match reactor.poller.wait(&mut events, Some(std::time::Duration::ZERO)) {
            Ok(n) if n > 0 => events.iter().fold(false, |woke, ev| reactor.dispatch(ev) | woke),
            _ => false,
        }
    })
}

impl Reactor {
    fn run(&self) {
        let mut events = Events::new();
        loop {
            events.clear();
            if let Err(e) = self.poller.wait(&mut events, None) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("network poller: epoll_wait failed ({e}); green threads waiting on descriptors time out");
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            }
            for ev in events.iter() {
                self.dispatch(ev);
            }
        }
    }

    /// An event: wakes the waiters it satisfies, re-arms for the others;
    /// true when it woke one.
    fn dispatch(&self, ev: Event) -> bool {
        let fd = ev.key as u32 as RawFd;
        let generation = (ev.key >> 32) as u32;
        let mut woken = Vec::new();
        {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            let Some(entry) = entries.get_mut(&fd) else { return false };
            if entry.generation != generation {
                // For a descriptor closed and reused since: not ours.
                return false;
            }
            // Hang-ups and errors come as both: the call that follows
            // reports them.
            if ev.readable {
                woken.extend(entry.reader.take());
            }
            if ev.writable {
                woken.extend(entry.writer.take());
            }
            if entry.reader.is_some() || entry.writer.is_some() {
                let interest = entry.interest(ev.key);
                // SAFETY: a waiter is registered, and its owner keeps the
                // descriptor open until it has left this table (closed
                // behind its back, the call fails and is ignored).
                let fd = unsafe { BorrowedFd::borrow_raw(fd) };
                let _ = self.poller.modify_with_mode(fd, interest, PollMode::Oneshot);
            }
        }
        let any = !woken.is_empty();
        for w in woken {
            w.ready.store(true, Ordering::Release);
            w.thread.unpark();
        }
        any
    }

    /// Registers `waiter` for `interest` on `fd`, which stays open until
    /// [`Reactor::forget`].
    pub(crate) fn arm(&self, fd: RawFd, interest: Interest, waiter: &Arc<Waiter>) -> io::Result<()> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = !entries.contains_key(&fd);
        if fresh {
            self.waited.fetch_add(1, Ordering::Relaxed);
        }
        let entry = entries.entry(fd).or_insert_with(|| Entry {
            generation: self.generation.fetch_add(1, Ordering::Relaxed),
            reader: None,
            writer: None,
        });
        let slot = match interest {
            Interest::Read => &mut entry.reader,
            Interest::Write => &mut entry.writer,
        };
        if slot.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!("descriptor {fd}: another thread already waits for it to become {interest:?}-ready"),
            ));
        }
        *slot = Some(Arc::clone(waiter));
        let ev = entry.interest(key(fd, entry.generation));
        // SAFETY: the caller keeps `fd` open until it calls `forget`.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let result = if fresh {
            // SAFETY: as above; `forget` deletes it before the caller may
            // close it.
            unsafe { self.poller.add_with_mode(fd, ev, PollMode::Oneshot) }
        } else {
            self.poller.modify_with_mode(borrowed, ev, PollMode::Oneshot)
        };
        if let Err(e) = result {
            let entry = entries.get_mut(&fd).expect("just inserted");
            match interest {
                Interest::Read => entry.reader = None,
                Interest::Write => entry.writer = None,
            }
            if entry.reader.is_none() && entry.writer.is_none() {
                entries.remove(&fd);
                self.waited.fetch_sub(1, Ordering::Relaxed);
            }
            return Err(e);
        }
        Ok(())
    }

    /// The wait of `waiter` on `fd` is over (ready or not): it stops
    /// waiting, and the descriptor leaves the poller once nobody waits.
    pub(crate) fn forget(&self, fd: RawFd, interest: Interest, waiter: &Arc<Waiter>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = entries.get_mut(&fd) else { return };
        let slot = match interest {
            Interest::Read => &mut entry.reader,
            Interest::Write => &mut entry.writer,
        };
        if slot.as_ref().is_some_and(|w| Arc::ptr_eq(w, waiter)) {
            *slot = None;
        }
        if entry.reader.is_none() && entry.writer.is_none() {
            entries.remove(&fd);
            self.waited.fetch_sub(1, Ordering::Relaxed);
            // SAFETY: still open: our caller has not closed it yet.
            let _ = self.poller.delete(unsafe { BorrowedFd::borrow_raw(fd) });
        }
    }
}
