use crate::runtime::profile::ThreadProfile;
use crate::runtime::thread_id::ThreadId;
use crate::runtime::{clock, monitor, registry};
use std::fmt;
use std::io::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Keeps the list of live green threads that [`ThreadDump`] reads, from
/// now on: threads spawned before this call are not listed. Idempotent.
///
/// The list costs each spawn and each thread's end a short lock (threads
/// are otherwise reachable only from wherever they wait), so it is off
/// until asked for; Go's goroutine dump is always available for the same
/// price. Call it first thing in `main`, or use [`dump_threads_on_signal`].
pub fn enable_thread_dumps() {
    registry::enable();
}

/// What a green thread is doing, as far as a dump can tell without
/// stopping it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadState {
    /// On a CPU, or in a run queue waiting for one (a profiled thread
    /// tells the two apart: see [`ThreadInfo::waiting`]).
    Runnable,
    /// Blocked: a lock, channel, join, condition variable or `park`.
    Parked,
    /// In a sleep.
    Sleeping,
    /// Preempted (or unwinding a panic) and kept on its OS thread until it
    /// runs again.
    Held,
    /// Its code ended; the thread is kept by a handle not yet joined.
    Finished,
}

/// One thread of a [`ThreadDump`].
#[derive(Clone, Debug)]
pub struct ThreadInfo {
    /// Its id.
    pub id: ThreadId,
    /// Its name, if it has one.
    pub name: Option<String>,
    /// Its priority.
    pub priority: u8,
    /// What it is doing.
    pub state: ThreadState,
    /// The worker (index within its scheduler) it runs or last ran on, or
    /// will run on first.
    pub worker: usize,
    /// Whether it records a profile (`ThreadBuilder::enable_profiling`):
    /// only then are `run_time` and `waiting` known.
    pub profiled: bool,
    /// Time on a CPU so far.
    pub run_time: Option<Duration>,
    /// How long since it last left the CPU, when it is off it now.
    pub waiting: Option<Duration>,
}

/// Every live green thread spawned since [`enable_thread_dumps`]: id,
/// name, priority, state, worker, and for profiled threads run time and
/// how long they have waited. A snapshot: threads move on while it is
/// taken.
///
/// ```
/// use preemptive_mlthreading_rust::metrics::{enable_thread_dumps, ThreadDump, ThreadState};
/// use preemptive_mlthreading_rust::{park, ThreadBuilder};
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
///
/// enable_thread_dumps();
/// let done = Arc::new(AtomicBool::new(false));
/// let d = done.clone();
/// let h = ThreadBuilder::new()
///     .name("waiter")
///     .spawn(move || while !d.load(Ordering::Acquire) { park() })
///     .unwrap();
/// # while ThreadDump::capture().threads.iter().all(|t| t.state != ThreadState::Parked) { std::thread::yield_now() }
/// let dump = ThreadDump::capture();
/// let waiter = dump.threads.iter().find(|t| t.name.as_deref() == Some("waiter")).unwrap();
/// assert_eq!(waiter.state, ThreadState::Parked);
/// println!("{dump}");
/// done.store(true, Ordering::Release);
/// h.thread().unpark();
/// h.join().unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct ThreadDump {
    /// The threads, by id.
    pub threads: Vec<ThreadInfo>,
    /// Green threads alive in all schedulers, listed or not (those spawned
    /// before dumps were enabled are counted here only).
    pub live_threads: usize,
    /// Whether dumps were enabled (otherwise `threads` is empty).
    pub enabled: bool,
}

impl ThreadDump {
    /// The threads now.
    pub fn capture() -> ThreadDump {
        let now = clock::now_ns();
        let mut threads = Vec::new();
        registry::for_each(|t| {
            let profile: Option<&ThreadProfile> = t.spec.profile();
            let state = if t.has_finished() {
                ThreadState::Finished
            } else if t.is_held() {
                ThreadState::Held
            } else if t.park.is_parked() {
                ThreadState::Parked
            } else if t.is_sleeping() {
                ThreadState::Sleeping
            } else {
                ThreadState::Runnable
            };
            threads.push(ThreadInfo {
                id: t.id,
                name: t.spec.name().map(str::to_owned),
                priority: t.spec.priority,
                state,
                worker: t.worker(),
                profiled: profile.is_some(),
                run_time: profile.map(|p| Duration::from_nanos(p.run_ns_now())),
                waiting: profile.filter(|p| !p.is_on_cpu()).map(|p| {
                    let since = p.out_at.load(Ordering::Relaxed);
                    let since = if since == 0 { p.spawned_ns } else { since };
                    Duration::from_nanos(now.saturating_sub(since))
                }),
            });
        });
        threads.sort_by_key(|t| t.id);
        let live_threads = monitor::pools().iter().map(|p| p.live_threads()).sum();
        ThreadDump { threads, live_threads, enabled: registry::is_enabled() }
    }
}

impl fmt::Display for ThreadDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.enabled {
            return writeln!(
                f,
                "green threads: {} live; call metrics::enable_thread_dumps() to list them",
                self.live_threads
            );
        }
        writeln!(f, "green threads: {} listed, {} live", self.threads.len(), self.live_threads)?;
        for t in &self.threads {
            write!(f, "thread {} ", t.id.as_u64())?;
            match &t.name {
                Some(n) => write!(f, "\"{n}\"")?,
                None => write!(f, "<unnamed>")?,
            }
            write!(f, " [{:?}] priority {} worker {}", t.state, t.priority, t.worker)?;
            if let Some(r) = t.run_time {
                write!(f, ", ran {r:?}")?;
            }
            if let Some(w) = t.waiting {
                write!(f, ", off the CPU for {w:?}")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// Prints a [`ThreadDump`] to stderr each time the process receives
/// `signal` (Go prints its goroutines on `SIGQUIT`; here the process goes
/// on), and enables dumps. The handler only writes a byte to a pipe; a
/// helper OS thread named `pmt-dump` takes the dump. A second call with
/// the same signal does nothing; an invalid signal, or one the runtime
/// uses for preemption, is an error.
///
/// ```no_run
/// preemptive_mlthreading_rust::metrics::dump_threads_on_signal(libc::SIGQUIT).unwrap();
/// // `kill -QUIT <pid>` now prints every green thread.
/// ```
pub fn dump_threads_on_signal(signal: i32) -> std::io::Result<()> {
    static INSTALLED: Mutex<Vec<i32>> = Mutex::new(Vec::new());
    static PIPE: OnceLock<std::io::Result<i32>> = OnceLock::new();
    if signal == crate::preempt::signal::signal() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("signal {signal} is the runtime's preemption signal"),
        ));
    }
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if installed.contains(&signal) {
        return Ok(());
    }
    let write_end = match PIPE.get_or_init(start_dumper) {
        Ok(fd) => *fd,
        Err(e) => return Err(std::io::Error::new(e.kind(), e.to_string())),
    };
    WRITE_END.store(write_end, Ordering::Relaxed);
    // SAFETY: a zeroed sigaction is valid; the handler is async-signal-safe
    // (one write(2) to a pipe, errno kept).
    let rc = unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_dump_signal as extern "C" fn(i32) as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(signal, &sa, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    enable_thread_dumps();
    installed.push(signal);
    Ok(())
}

static WRITE_END: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);
static PRINTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Dumps printed so far on a signal ([`dump_threads_on_signal`]): each
/// signal is acted on asynchronously, by a helper thread.
pub fn signal_dumps_printed() -> u64 {
    PRINTED.load(Ordering::Acquire)
}

extern "C" fn on_dump_signal(_: i32) {
    // SAFETY: errno is per thread; saved and restored around write(2),
    // which is async-signal-safe; a full pipe just drops this request.
    unsafe {
        let errno = *libc::__errno_location();
        let fd = WRITE_END.load(Ordering::Relaxed);
        if fd >= 0 {
            libc::write(fd, [1u8].as_ptr().cast(), 1);
        }
        *libc::__errno_location() = errno;
    }
}

/// The pipe and the thread that prints a dump per byte read from it.
fn start_dumper() -> std::io::Result<i32> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let read_end = fds[0];
    // The reader blocks: clear O_NONBLOCK on its end (the writer keeps it,
    // so a burst of signals never blocks the handler).
    // SAFETY: our own descriptor.
    unsafe { libc::fcntl(read_end, libc::F_SETFL, 0) };
    std::thread::Builder::new().name("pmt-dump".into()).spawn(move || {
        let mut byte = [0u8; 1];
        loop {
            // SAFETY: reading one byte into a one-byte buffer.
            let n = unsafe { libc::read(read_end, byte.as_mut_ptr().cast(), 1) };
            if n == 1 {
                let dump = ThreadDump::capture();
                let _ = write!(std::io::stderr().lock(), "{dump}");
                PRINTED.fetch_add(1, Ordering::Release);
            } else if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            } else {
                return;
            }
        }
    })?;
    Ok(fds[1])
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_preemption_signal_is_refused() {
        let err = super::dump_threads_on_signal(crate::preempt::signal::signal()).unwrap_err();
        assert!(err.to_string().contains("preemption"), "{err}");
    }
}
