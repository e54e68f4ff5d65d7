//! Panic messages that name the green thread.
//!
//! std's panic message names the OS thread (`thread 'pmt-worker-0.1'
//! panicked at ...`), which for a green thread is the host OS thread it ran
//! on. At the first spawn the runtime wraps the panic hook in place: the
//! hook in place runs as before (std's, or one the program set), and for a
//! named green thread a note line follows, naming it. A hook the program
//! sets later replaces the wrapper, as `std::panic::set_hook` does.
//!
//! Rejected: printing std's message ourselves with the green thread's name
//! in place of the OS thread's. That needs replacing the hook in place, and
//! a hook the program set before its first spawn (a crash reporter, or a
//! test's silencer) cannot be told from std's own, so it would be bypassed.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Wraps the panic hook, once per process (one relaxed load after that).
#[inline]
pub(crate) fn install() {
    if !INSTALLED.load(Ordering::Relaxed) {
        install_slow();
    }
}

#[cold]
fn install_slow() {
    static ONCE: Mutex<()> = Mutex::new(());
    // set_hook panics on a panicking thread: try again at a later spawn.
    if std::thread::panicking() {
        return;
    }
    let _once = ONCE.lock().unwrap_or_else(|p| p.into_inner());
    if INSTALLED.swap(true, Ordering::Relaxed) {
        return;
    }
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        prev(info);
        let me = super::current();
        if let (true, Some(name)) = (me.is_green(), me.name()) {
            eprintln!("note: the panicking thread is the green thread '{name}' ({:?})", me.id());
        }
    }));
}
