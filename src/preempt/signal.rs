//! The preemption signal: installing its handler, and the handler itself.
//!
//! Mechanism ("switch inside the handler"): the signal is delivered on the
//! green thread's own stack (no `SA_ONSTACK`), so the kernel's signal frame
//! there holds the thread's complete state — every register, the flags and
//! the whole XSAVE/FPSIMD area, whatever this CPU has. The handler switches
//! to the next thread with the ordinary cooperative switch; when the
//! preempted thread is resumed it returns from the handler and
//! `rt_sigreturn` restores everything, down to the instruction. This is
//! robust against extended state we do not know about (AVX-512, SVE) at the
//! price of a signal reserve below every stack's usable size (see
//! [`crate::stack::signal_reserve`]). `errno` is an OS-thread-local the siblings will
//! overwrite, so the handler saves and restores it.

use crate::thread::ThreadError;
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

/// Installs the handler once per process, refusing to take over a signal
/// somebody else already handles.
/// What the handler calls: the interrupted pc, and the signal context, which
/// the callee hands to [`crate::arch::signal_adopt_thread`] once it has been
/// resumed, before it lets the next preemption in.
pub(crate) type OnSignal = fn(pc: usize, ctx: *mut libc::c_void);

pub(crate) fn install(on_signal: OnSignal) -> Result<i32, ThreadError> {
    let mut installed = INSTALLED.lock().unwrap_or_else(|p| p.into_inner());
    let result = installed.get_or_insert_with(|| try_install(on_signal)).clone();
    result.map_err(ThreadError::Config)
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
    super::safepoint::init();
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

extern "C" fn handler(_sig: libc::c_int, _info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: __errno_location returns this OS thread's errno slot.
    let errno_slot = unsafe { libc::__errno_location() };
    // SAFETY: as above; a valid, aligned int.
    let saved_errno = unsafe { *errno_slot };
    // SAFETY: `ctx` is the ucontext the kernel passed to this SA_SIGINFO handler.
    let pc = unsafe { crate::arch::signal_pc(ctx) };
    if let Some(on_signal) = ON_SIGNAL.get() {
        on_signal(pc, ctx);
    }
    // A preempted thread resumes on the worker it was preempted on, so this
    // is the same OS thread's errno slot, except after a blocked-worker
    // hand-off, when it carries its errno to the new worker.
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved_errno };
}

/// Lets the preemption signal through again on this OS thread: the handler
/// switches away with it blocked, and the next thread must be preemptible.
pub(crate) fn unblock() {
    mask(libc::SIG_UNBLOCK)
}

/// Blocks the preemption signal on this OS thread: the handler's last
/// stretch, once resumed, until `rt_sigreturn` restores the thread's mask.
pub(crate) fn block() {
    mask(libc::SIG_BLOCK)
}

fn mask(how: libc::c_int) {
    // SAFETY: sigset operations on a local set; pthread_sigmask affects
    // only the calling thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal());
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}

/// Sends the preemption signal to worker OS thread `tid`.
pub(crate) fn send(tid: i32) {
    // SAFETY: tgkill with our own pid; a stale tid fails with ESRCH, harmlessly.
    unsafe {
        libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, signal());
    }
}
