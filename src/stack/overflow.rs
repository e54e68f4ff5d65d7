//! Stack-overflow reporting for green threads, as std does for OS threads.
//!
//! A green thread that runs into its guard page faults with SIGSEGV on a
//! stack it can no longer push to, so the handler runs on an alternate
//! signal stack. It asks the runtime (through [`GuardLookup`]) whether the
//! faulting address is the guard page of the green thread running on this
//! OS thread; if so it prints std's message and aborts. Any other fault is
//! passed on to the handler that was installed before ours (std's own
//! overflow detector for the main thread, or the default action).

use std::io;
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Given a faulting address, returns the name of the green thread whose
/// guard page it is on this OS thread (`"<unnamed>"` if it has none), or
/// `None` if it is no such address. Must be async-signal-safe.
pub(crate) type GuardLookup = fn(fault: usize) -> Option<&'static [u8]>;

static LOOKUP: AtomicUsize = AtomicUsize::new(0);
static INSTALL: Once = Once::new();
static mut PREVIOUS_SEGV: MaybeUninit<libc::sigaction> = MaybeUninit::uninit();
static mut PREVIOUS_BUS: MaybeUninit<libc::sigaction> = MaybeUninit::uninit();

/// Installs the SIGSEGV/SIGBUS handler once per process.
pub(crate) fn install(lookup: GuardLookup) {
    INSTALL.call_once(|| {
        LOOKUP.store(lookup as usize, Ordering::Release);
        // SAFETY: we build a valid sigaction and keep the previous one in
        // statics written only here, before any fault can reach our handler.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGSEGV, &action, (&raw mut PREVIOUS_SEGV).cast());
            libc::sigaction(libc::SIGBUS, &action, (&raw mut PREVIOUS_BUS).cast());
        }
    });
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SIGSEGV/SIGBUS.
    let fault = unsafe { (*info).si_addr() } as usize;
    let lookup = LOOKUP.load(Ordering::Acquire);
    if lookup != 0 {
        // SAFETY: LOOKUP only ever holds a GuardLookup stored by `install`.
        let lookup: GuardLookup = unsafe { std::mem::transmute::<usize, GuardLookup>(lookup) };
        if let Some(name) = lookup(fault) {
            report_and_abort(name);
        }
    }
    // SAFETY: PREVIOUS_* were filled by `install` before the handler existed.
    let previous = unsafe {
        if sig == libc::SIGSEGV {
            (&raw const PREVIOUS_SEGV).cast::<libc::sigaction>().read()
        } else {
            (&raw const PREVIOUS_BUS).cast::<libc::sigaction>().read()
        }
    };
    chain(sig, info, ctx, &previous);
}

fn report_and_abort(name: &[u8]) -> ! {
    let parts: [&[u8]; 3] =
        [b"\nthread '", name, b"' has overflowed its stack\nfatal runtime error: stack overflow, aborting\n"];
    for p in parts {
        // SAFETY: write(2) on stderr is async-signal-safe; the buffers are valid.
        unsafe { libc::write(2, p.as_ptr().cast(), p.len()) };
    }
    // SAFETY: abort is async-signal-safe.
    unsafe { libc::abort() }
}

/// Hands a fault that is not ours to whoever had the signal before.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void, previous: &libc::sigaction) {
    let h = previous.sa_sigaction;
    if h == libc::SIG_DFL || h == libc::SIG_IGN {
        // Restore the old disposition and return: the faulting instruction
        // runs again and this time the default action kills the process.
        // SAFETY: re-installing a sigaction the kernel gave us.
        unsafe { libc::sigaction(sig, previous, ptr::null_mut()) };
    } else if previous.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed for exactly this use.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) = unsafe { std::mem::transmute(h) };
        f(sig, info, ctx);
    } else {
        // SAFETY: as above, for a plain one-argument handler.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(h) };
        f(sig);
    }
}

/// An alternate signal stack for the current OS thread, if it had none.
/// Dropping it disables and unmaps it.
pub(crate) struct AltStack {
    mem: *mut libc::c_void,
    len: usize,
}

/// Makes sure this OS thread has an alternate signal stack. std gives its
/// own threads one; we add one where it did not.
pub(crate) fn ensure_altstack() -> io::Result<Option<AltStack>> {
    // SAFETY: stack_t is plain data, valid when zeroed.
    let mut old: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: querying the current altstack writes only into `old`.
    if unsafe { libc::sigaltstack(ptr::null(), &mut old) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if old.ss_flags & libc::SS_DISABLE == 0 {
        return Ok(None);
    }
    // SAFETY: getauxval has no preconditions; 0 means "unknown".
    let min = unsafe { libc::getauxval(libc::AT_MINSIGSTKSZ) } as usize;
    let len = (min.max(libc::SIGSTKSZ) * 4).next_multiple_of(super::page_size());
    // SAFETY: fresh anonymous mapping, owned by the returned AltStack.
    let mem = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if mem == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let st = libc::stack_t { ss_sp: mem, ss_flags: 0, ss_size: len };
    // SAFETY: `st` describes memory we own for as long as the AltStack lives.
    if unsafe { libc::sigaltstack(&st, ptr::null_mut()) } != 0 {
        let e = io::Error::last_os_error();
        // SAFETY: unmapping the memory we just mapped.
        unsafe { libc::munmap(mem, len) };
        return Err(e);
    }
    Ok(Some(AltStack { mem, len }))
}

impl Drop for AltStack {
    fn drop(&mut self) {
        let st = libc::stack_t { ss_sp: ptr::null_mut(), ss_flags: libc::SS_DISABLE, ss_size: 0 };
        // SAFETY: disable the altstack before unmapping its memory; we are
        // not running on it (drop happens in normal thread context).
        unsafe {
            libc::sigaltstack(&st, ptr::null_mut());
            libc::munmap(self.mem, self.len);
        }
    }
}
