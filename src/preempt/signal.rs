//! The preemption signal: installing its handler, and the handler itself.
//!
//! Mechanism: the signal is delivered on the green thread's own stack (no
//! `SA_ONSTACK`), so the kernel's signal frame there holds the thread's
//! complete state — every register, the flags and the whole XSAVE/FPSIMD
//! area, whatever this CPU has. The handler hands the worker to another OS
//! thread and this one sleeps inside the handler; when the preempted thread
//! is resumed it returns from the handler and `rt_sigreturn` restores
//! everything, down to the instruction. This is robust against extended
//! state we do not know about (AVX-512, SVE) at the price of a signal reserve
//! below every stack's usable size (see [`crate::stack::signal_reserve`]). The handler's own system calls may change
//! `errno`, so it saves and restores it.

use crate::error::ThreadError;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};

/// SIGURG, as Go uses: nothing else uses it in practice, and its default
/// action is to ignore it, so a stray one is harmless.
pub const DEFAULT_SIGNAL: i32 = libc::SIGURG;

static SIGNAL: AtomicI32 = AtomicI32::new(0);
static INSTALLED: Mutex<Option<Result<i32, String>>> = Mutex::new(None);

/// Chooses the signal used for preemption (default [`DEFAULT_SIGNAL`]);
/// also settable with `PMT_PREEMPT_SIGNAL=<number>`. Must be called before
/// the first scheduler starts.
///
/// The runtime owns the signal from then on, and the monitor sends it at
/// every time slice, so only signals that nothing else needs are accepted:
/// - `SIGURG` (the default; ignored by default, and used by Go for the
///   same purpose), `SIGWINCH` (ignored by default; a program that handles
///   terminal resizes needs it itself);
/// - `SIGUSR1`, `SIGUSR2` and `SIGIO`, which are left to applications;
/// - the real-time signals `SIGRTMIN()..=SIGRTMAX()`.
///
/// Everything else is refused with [`ThreadError::Config`] listing these:
/// `SIGINT` or `SIGTERM` would swallow Ctrl-C and `kill`, the fault
/// signals belong to the overflow report and to crashes, and `SIGPROF`
/// and `SIGVTALRM` belong to profilers and `setitimer`.
///
/// ```
/// use preemptive_mlthreading_rust::preempt;
/// // SIGRTMIN+3 instead of SIGURG; fails once a scheduler has started.
/// let _ = preempt::set_signal(libc::SIGRTMIN() + 3);
/// assert!(preempt::set_signal(libc::SIGINT).is_err());
/// ```
pub fn set_signal(signal: i32) -> Result<(), ThreadError> {
    let installed = INSTALLED.lock().unwrap_or_else(|p| p.into_inner());
    if installed.is_some() {
        return Err(ThreadError::Config(
            "preempt::set_signal: preemption is already set up; call it before the first spawn".into(),
        ));
    }
    check(signal).map_err(|why| ThreadError::Config(format!("preempt::set_signal({signal}): {why}")))?;
    SIGNAL.store(signal, Ordering::Relaxed);
    Ok(())
}

/// Whether `signal` may carry preemption (see [`set_signal`]); the error
/// says why not and what is accepted.
fn check(signal: i32) -> Result<(), String> {
    let named = [
        (libc::SIGURG, "SIGURG"),
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGUSR2, "SIGUSR2"),
        (libc::SIGWINCH, "SIGWINCH"),
        (libc::SIGIO, "SIGIO"),
    ];
    let realtime = libc::SIGRTMIN()..=libc::SIGRTMAX();
    if named.iter().any(|&(s, _)| s == signal) || realtime.contains(&signal) {
        return Ok(());
    }
    let why = match signal {
        libc::SIGINT | libc::SIGTERM | libc::SIGHUP | libc::SIGQUIT => {
            "the program's own stop signals would be swallowed"
        }
        libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE | libc::SIGABRT | libc::SIGTRAP => {
            "fault and crash signals must keep their meaning"
        }
        libc::SIGKILL | libc::SIGSTOP => "it cannot be handled",
        libc::SIGPROF | libc::SIGVTALRM | libc::SIGALRM => "timers and profilers use it",
        _ => "not a signal that can carry preemption",
    };
    let list: Vec<String> = named.iter().map(|&(s, n)| format!("{n} ({s})")).collect();
    Err(format!(
        "{why}; preemption takes {} or a real-time signal from SIGRTMIN ({}) to SIGRTMAX ({})",
        list.join(", "),
        realtime.start(),
        realtime.end()
    ))
}

/// The signal in use (after [`install`]).
pub(crate) fn signal() -> i32 {
    SIGNAL.load(Ordering::Relaxed)
}

/// What [`install`] gave, once it ran: the signal, or why not.
pub(crate) fn installed() -> Option<Result<i32, String>> {
    INSTALLED.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Whether the preemption signal's handler is still this module's.
pub(crate) fn handler_is_ours() -> bool {
    let sig = signal();
    if sig <= 0 {
        return true;
    }
    // SAFETY: sigaction with a null new action only reads the current one
    // into `old`.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig, std::ptr::null(), &mut old) != 0 || old.sa_sigaction == handler as *const () as usize
    }
}

/// What the handler calls, with `errno` saved around it.
pub(crate) type OnSignal = fn();

/// Installs the handler once per process, refusing to take over a signal
/// somebody else already handles (the error says which and what to do).
pub(crate) fn install(on_signal: OnSignal) -> Result<i32, String> {
    let mut installed = INSTALLED.lock().unwrap_or_else(|p| p.into_inner());
    installed.get_or_insert_with(|| try_install(on_signal)).clone()
}

static ON_SIGNAL: std::sync::OnceLock<OnSignal> = std::sync::OnceLock::new();

fn try_install(on_signal: OnSignal) -> Result<i32, String> {
    let mut sig = SIGNAL.load(Ordering::Relaxed);
    if sig == 0 {
        sig = match std::env::var("PMT_PREEMPT_SIGNAL") {
            Ok(v) => {
                let sig = v.trim().parse().map_err(|_| format!("PMT_PREEMPT_SIGNAL={v:?} is not a signal number"))?;
                check(sig).map_err(|why| format!("PMT_PREEMPT_SIGNAL={v:?}: {why}"))?;
                sig
            }
            Err(_) => DEFAULT_SIGNAL,
        };
        SIGNAL.store(sig, Ordering::Relaxed);
    }
    let _ = ON_SIGNAL.set(on_signal);
    // SAFETY: sigaction only reads/writes the structs we pass.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 {
            return Err(format!("cannot query signal {sig}: {}", std::io::Error::last_os_error()));
        }
        if old.sa_sigaction != libc::SIG_DFL
            && old.sa_sigaction != libc::SIG_IGN
            && old.sa_sigaction != handler as *const () as usize
        {
            return Err(format!(
                "signal {sig} already has a handler installed by someone else, and preemption needs it; \
                 choose a free signal with preempt::set_signal(..) or PMT_PREEMPT_SIGNAL=<number>"
            ));
        }
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as *const () as usize;
        // No SA_ONSTACK: the frame must land on the green thread's stack.
        action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        // Nothing else is masked: the handler relies only on the kernel
        // blocking this signal itself while it runs (qemu-riscv64 7.2,
        // which ignores sa_mask, does that too).
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(sig, &action, std::ptr::null_mut()) != 0 {
            return Err(format!("cannot install a handler for signal {sig}: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(sig)
}

extern "C" fn handler(_sig: libc::c_int, _info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    super::status::handled();
    // SAFETY: __errno_location returns this OS thread's errno slot.
    let errno_slot = unsafe { libc::__errno_location() };
    // SAFETY: as above; a valid, aligned int.
    let saved_errno = unsafe { *errno_slot };
    if let Some(on_signal) = ON_SIGNAL.get() {
        on_signal();
    }
    // A preempted thread resumes on its own OS thread: the same errno slot.
    // SAFETY: as above.
    unsafe { *errno_slot = saved_errno };
}

/// Unblocks, on the calling host thread, the signals the runtime relies
/// on: the preemption signal, and SIGSEGV/SIGBUS for the overflow report.
/// A thread inherits its creator's mask, and a program that blocked them
/// before its first spawn would otherwise silently lose preemption, and see
/// a stack overflow as a bare crash.
pub(crate) fn unblock_runtime_signals() {
    // SAFETY: sigset operations on a local set; pthread_sigmask affects
    // only the calling thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [signal(), libc::SIGSEGV, libc::SIGBUS] {
            if sig > 0 {
                libc::sigaddset(&mut set, sig);
            }
        }
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

/// Sends the preemption signal to worker OS thread `tid`.
pub(crate) fn send(tid: i32) {
    super::status::sent();
    // SAFETY: tgkill with our own pid; a stale tid fails with ESRCH, harmlessly.
    unsafe {
        libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, signal());
    }
}
