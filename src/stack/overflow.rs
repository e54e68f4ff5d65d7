//! Stack-overflow reporting for green threads, as std does for OS threads.
//!
//! A green thread that runs into its guard page faults with SIGSEGV on a
//! stack it can no longer push to, so the handler runs on an alternate
//! signal stack. It asks the runtime (through [`GuardLookup`]) for the
//! stack of the green thread running on this OS thread and reports an
//! overflow (std's message, then abort) when:
//! - the faulting address is in that stack's guard page (the code ran into
//!   it), or
//! - the kernel forced the SIGSEGV (`SI_KERNEL`, or no fault address) while
//!   the thread's stack pointer was in the guard page or the signal reserve
//!   above it: the kernel could not write the frame of a signal (the
//!   preemption signal, usually) below it, and raises SIGSEGV instead.
//!
//! Any other fault is passed on to the handler that was installed before
//! ours (std's own overflow detector for the main thread, or the default
//! action).

use super::Bottom;
use std::io;
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Returns the name of the green thread running on this OS thread
/// (`"<unnamed>"` if it has none) and the bottom of its stack, or `None`
/// when no green thread with a stack runs here. Must be async-signal-safe.
pub(crate) type GuardLookup = fn() -> Option<(&'static [u8], Bottom)>;

/// Whether a SIGSEGV/SIGBUS with `code` (`si_code`) and `fault` (`si_addr`),
/// taken with the stack pointer at `sp`, is an overflow of the stack whose
/// bottom is `b`.
fn is_overflow(code: libc::c_int, fault: usize, sp: usize, b: Bottom) -> bool {
    let forced = code == libc::SI_KERNEL || fault == 0;
    (b.lo..b.guard_end).contains(&fault) || (forced && (b.lo..b.reserve_end).contains(&sp))
}

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
    let (code, fault) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    let lookup = LOOKUP.load(Ordering::Acquire);
    if lookup != 0 {
        // SAFETY: LOOKUP only ever holds a GuardLookup stored by `install`.
        let lookup: GuardLookup = unsafe { std::mem::transmute::<usize, GuardLookup>(lookup) };
        if let Some((name, bottom)) = lookup() {
            // SAFETY: `ctx` is the ucontext the kernel passed to this
            // SA_SIGINFO handler.
            let sp = unsafe { crate::arch::signal_sp(ctx) };
            if is_overflow(code, fault, sp, bottom) {
                report_and_abort(name);
            }
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
        // SAFETY: the kernel passes a valid siginfo.
        let code = unsafe { (*info).si_code };
        if code == libc::SI_KERNEL || code <= 0 {
            // Not (only) a faulting instruction: a signal frame the kernel
            // could not write, or a signal sent by a process. Returning
            // would run on as if nothing happened; raised again, it is
            // pending (blocked while we run) and the default action takes
            // it as we return.
            // SAFETY: raise has no memory-safety preconditions.
            unsafe { libc::raise(sig) };
        }
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
    // A fresh mapping, owned by the returned AltStack.
    let mem: *mut libc::c_void = super::map_anonymous(len)?.as_ptr().cast();
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

#[cfg(test)]
mod tests {
    use super::*;

    const B: Bottom = Bottom { lo: 0x10_000, guard_end: 0x11_000, reserve_end: 0x14_000 };
    const SEGV_MAPERR: libc::c_int = 1;

    #[test]
    fn a_fault_in_the_guard_page_is_an_overflow_wherever_the_stack_pointer_is() {
        assert!(is_overflow(SEGV_MAPERR, 0x10_ff8, 0x11_010, B));
        assert!(is_overflow(SEGV_MAPERR, 0x10_000, 0x99_000, B));
        assert!(!is_overflow(SEGV_MAPERR, 0x11_000, 0x11_010, B), "the reserve itself is mapped");
        assert!(!is_overflow(SEGV_MAPERR, 0x0f_fff, 0x11_010, B));
    }

    #[test]
    fn a_forced_sigsegv_is_an_overflow_when_the_stack_pointer_is_at_the_bottom() {
        for (code, fault) in [(libc::SI_KERNEL, 0), (SEGV_MAPERR, 0), (libc::SI_KERNEL, 0x1234)] {
            assert!(is_overflow(code, fault, 0x13_f00, B), "in the reserve: {code} {fault:#x}");
            assert!(is_overflow(code, fault, 0x10_800, B), "in the guard page: {code} {fault:#x}");
            assert!(!is_overflow(code, fault, 0x14_000, B), "above the reserve: {code} {fault:#x}");
            assert!(!is_overflow(code, fault, 0x0f_000, B), "below the stack: {code} {fault:#x}");
        }
        // A real fault elsewhere, deep in the stack: not an overflow.
        assert!(!is_overflow(SEGV_MAPERR, 0x1234, 0x13_f00, B));
    }
}
