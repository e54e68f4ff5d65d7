//! The monitor: one OS thread per process (Go's sysmon) that enforces time
//! slices and sleep deadlines on running workers by signalling them.
//!
//! Workers publish, with relaxed stores, how many switches they made, the
//! running thread's priority and slice, and their earliest timer. The
//! monitor notices a worker whose switch count has not moved for a whole
//! slice, or whose earliest timer is due while it runs a thread, and sends
//! it the preemption signal; the handler decides on the worker itself. The
//! hot path pays nothing for this but those stores: no clock reads.
//!
//! It also looks after the workers' hosts (see `host`): it detaches a
//! thread whose worker's owner is blocked in the kernel, recalls detached
//! threads it sees running without their worker, and has idle hosts
//! started where a worker ran short of them (a signal handler cannot start
//! threads).
//!
//! The monitor's loop allocates nothing and takes no lock of libc's: a
//! host held inside `malloc` keeps its arena's lock until its thread
//! resumes, which may need the monitor to preempt or detach whatever runs
//! meanwhile. So the /proc path it reads is formatted on the stack, its
//! list of pools is reused, and hosts are started by a thread of their own
//! (`pmt-hosts`), which the monitor wakes. Before, `tests/soak.rs` hung
//! most runs with the monitor waiting for an arena lock in `format!` or in
//! a thread start, and preemption stopped for good.
//!
//! It wakes a quarter-slice after the last check while any worker runs a
//! thread, at the earliest deadline, and sleeps indefinitely (on a futex)
//! when every worker is idle: an idle runtime uses no CPU.

use super::clock;
use super::futex;
use super::pool::Pool;
use crate::preempt::signal;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, Weak};
use std::time::Duration;

static POOLS: Mutex<Vec<Weak<Pool>>> = Mutex::new(Vec::new());
static SEQ: AtomicU32 = AtomicU32::new(0);
static IDLE: AtomicBool = AtomicBool::new(false);
/// When the monitor will look next (clock::now_ns scale), u64::MAX = not
/// planned (idle).
static NEXT_CHECK: AtomicU64 = AtomicU64::new(u64::MAX);
static START: Once = Once::new();

/// Pools the monitor watches at once: its lists are allocated for this many
/// up front, and it allocates nothing in its loop (see the module header),
/// so pools beyond it go unwatched (their threads switch only at
/// cooperative points) until others are dropped.
const MAX_WATCHED: usize = 256;

/// How often the monitor checks that its signals arrive (`preempt::status`).
const STATUS_EVERY_NS: u64 = 100_000_000;
static LAST_STATUS: AtomicU64 = AtomicU64::new(0);

/// Shortest and longest pause between two checks of a running worker.
const MIN_TICK_NS: u64 = 20_000;
const MAX_TICK_NS: u64 = 5_000_000;

/// Puts `pool` under the monitor, starting the monitor on first use.
pub(crate) fn register(pool: &Arc<Pool>) {
    POOLS.lock().unwrap_or_else(|p| p.into_inner()).push(Arc::downgrade(pool));
    START.call_once(|| {
        if let Err(e) = std::thread::Builder::new().name("pmt-hosts".into()).spawn(starter) {
            log::error!("cannot start the host starter, workers keep the hosts they have: {e}");
        }
        let started = std::thread::Builder::new().name("pmt-monitor".into()).spawn(run);
        if let Err(e) = started {
            log::error!("cannot start the preemption monitor, threads will switch only cooperatively: {e}");
        }
    });
    kick();
}

/// Every pool whose workers have started and that is still alive, for
/// [`SystemMetrics`](crate::metrics::SystemMetrics). Allocates: never from
/// the monitor's loop.
pub(crate) fn pools() -> Vec<Arc<Pool>> {
    let _np = crate::preempt::disable();
    POOLS.lock().unwrap_or_else(|p| p.into_inner()).iter().filter_map(Weak::upgrade).collect()
}

/// Called when a worker starts running threads whose slice is `slice_ns`
/// (0: unknown): wakes the monitor if it sleeps with nothing to watch, or
/// plans to look later than this slice ends.
#[inline]
pub(crate) fn worker_started_running(slice_ns: u64) {
    if IDLE.load(Ordering::SeqCst) {
        kick();
        return;
    }
    let next = NEXT_CHECK.load(Ordering::Relaxed);
    if next != u64::MAX && next > clock::now_ns().saturating_add(slice_ns.max(MIN_TICK_NS)) {
        kick();
    }
}

/// A wake-up preemption was requested: look at the workers soon, in case
/// the signal lands in a critical section, or finds no host free, and must
/// be repeated (or a host started). Always a
/// kick: `NEXT_CHECK` is stale while a scan is under way, and a scan that
/// already passed the worker would otherwise sleep up to `MAX_TICK_NS`
/// before the retry (the kick makes its futex wait return at once).
pub(crate) fn urgent() {
    kick();
}

/// Bumped (and futex-woken) by the monitor when a worker wants an idle
/// host.
static STARTER_SEQ: AtomicU32 = AtomicU32::new(0);

/// The host starter's loop: starts the idle hosts that workers want. A
/// thread start allocates, so it is kept off the monitor (see the module
/// header); if it waits here for a lock, the monitor goes on.
fn starter() {
    let mut known: Vec<Weak<Pool>> = Vec::new();
    loop {
        let seq = STARTER_SEQ.load(Ordering::SeqCst);
        crate::preempt::report_status_change();
        // The list is copied without allocating under its lock, which the
        // monitor also takes (see `run`).
        let len = POOLS.lock().unwrap_or_else(|p| p.into_inner()).len();
        known.reserve(len.saturating_sub(known.len()) + 4);
        {
            let list = POOLS.lock().unwrap_or_else(|p| p.into_inner());
            if list.len() <= known.capacity() {
                known.clear();
                known.extend(list.iter().cloned());
            }
        }
        let pools: Vec<Arc<Pool>> = known.iter().filter_map(Weak::upgrade).collect();
        for pool in &pools {
            for w in pool.workers() {
                if w.hosts.take_wanted()
                    && let Err(e) = super::worker::spawn_host(pool, w.index, true)
                {
                    log::warn!("worker {}: cannot start an idle host thread: {e}", w.index);
                }
            }
        }
        drop(pools);
        futex::wait(&STARTER_SEQ, seq, None);
    }
}

fn kick() {
    SEQ.fetch_add(1, Ordering::SeqCst);
    futex::wake_one(&SEQ);
}

fn run() {
    // Wake at the deadline asked for, not up to 50 µs later (the default
    // timer slack): sleepers' lateness depends on it.
    // SAFETY: prctl(PR_SET_TIMERSLACK) only changes this thread's slack.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
    // And run when woken, not after the running thread's kernel slice: on
    // a machine with more busy threads than CPUs, a look that came up to
    // 3 ms late let a CPU-bound thread hold its worker that much longer
    // while woken threads waited (bench/README.md, "Network poller").
    if let Err(e) = super::cpu::request_kernel_slice(super::cpu::SHORTEST_KERNEL_SLICE_NS) {
        log::debug!("the preemption monitor keeps the default kernel slice: {e}");
    }
    // Reused: collecting the pools allocates nothing.
    let mut known: Vec<Weak<Pool>> = Vec::with_capacity(MAX_WATCHED);
    let mut pools: Vec<Arc<Pool>> = Vec::with_capacity(MAX_WATCHED);
    loop {
        let seq = SEQ.load(Ordering::SeqCst);
        // Announce the idle intent before scanning, so a worker that starts
        // running after our scan sees it and kicks us (see worker_started_running).
        IDLE.store(true, Ordering::SeqCst);
        // Never waits for the list's lock: a thread registering a pool may
        // hold it while it waits for an allocator lock that a preempted
        // thread holds. The last copy serves meanwhile.
        if let Ok(mut list) = POOLS.try_lock() {
            list.retain(|w| w.strong_count() > 0);
            known.clear();
            known.extend(list.iter().take(MAX_WATCHED).cloned());
        }
        pools.extend(known.iter().filter_map(Weak::upgrade));
        let now = clock::now_ns();
        let mut next = u64::MAX;
        for pool in &pools {
            if !pool.is_preemptive() {
                continue;
            }
            let pool_slice = pool.time_slice().as_nanos().min(u64::MAX as u128) as u64;
            for w in pool.workers() {
                if w.hosts.is_wanted() {
                    STARTER_SEQ.fetch_add(1, Ordering::SeqCst);
                    futex::wake_one(&STARTER_SEQ);
                }
                if let Some(at) = w.monitor_check(now, pool_slice, MIN_TICK_NS, MAX_TICK_NS) {
                    next = next.min(at);
                }
                // The owner is off the CPU and asleep in the kernel.
                let owner_blocked =
                    || thread_cpu_ns(w.tid()).is_none_or(|cpu| w.idle_on_cpu(now, cpu)) && blocked_in_kernel(w.tid());
                w.release_if_stuck(now, pool_slice, owner_blocked);
                if let Some(at) = w.watch_between_threads(now, owner_blocked) {
                    next = next.min(at);
                }
                if w.is_stuck(now, pool_slice) && owner_blocked() {
                    w.request_detach();
                }
                // A detached thread on the CPU half the time over a slice
                // (1-5 ms) left the kernel: back to its worker.
                w.recall_detached(pool_slice.clamp(1_000_000, MAX_TICK_NS), |tid| {
                    thread_cpu_ns(tid).map(|cpu| (cpu, clock::now_ns()))
                });
            }
        }
        pools.clear();
        if next != u64::MAX && now.saturating_sub(LAST_STATUS.load(Ordering::Relaxed)) >= STATUS_EVERY_NS {
            // Workers run: the signals sent since the last look should have
            // arrived.
            LAST_STATUS.store(now, Ordering::Relaxed);
            if crate::preempt::check_status() {
                // Reporting allocates: the starter does it.
                STARTER_SEQ.fetch_add(1, Ordering::SeqCst);
                futex::wake_one(&STARTER_SEQ);
            }
        }
        if next != u64::MAX {
            IDLE.store(false, Ordering::SeqCst);
            // Look at least every MAX_TICK_NS while anything runs.
            next = next.min(now + MAX_TICK_NS);
        }
        NEXT_CHECK.store(next, Ordering::Relaxed);
        let timeout = (next != u64::MAX).then(|| Duration::from_nanos(next.saturating_sub(clock::now_ns()).max(1_000)));
        futex::wait(&SEQ, seq, timeout);
    }
}

/// Whether OS thread `tid` of this process sleeps in the kernel (state S or
/// D in /proc), as opposed to running code in a long preempt-disable scope:
/// only the former is detached; the latter is left to the repeated
/// preemption signals. Reads /proc with buffers on the stack: no
/// allocation (see the module header).
fn blocked_in_kernel(tid: i32) -> bool {
    use std::io::Write as _;
    let mut path = [0u8; 64];
    let mut cur = std::io::Cursor::new(&mut path[..]);
    if write!(cur, "/proc/self/task/{tid}/stat\0").is_err() {
        return false;
    }
    // The state is the third field, after the pid and the name (at most
    // 15 bytes, in parentheses): well inside the first 256 bytes.
    let mut buf = [0u8; 256];
    // SAFETY: `path` is NUL-terminated (written above); `read` writes at
    // most `buf.len()` bytes into `buf`; the descriptor is ours to close.
    let n = unsafe {
        let fd = libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return false;
        }
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        n
    };
    if n <= 0 {
        return false;
    }
    let stat = &buf[..n as usize];
    // The state follows the parenthesised name, which may contain spaces.
    let Some(close) = stat.iter().rposition(|&b| b == b')') else { return false };
    matches!(stat.get(close + 2), Some(b'S' | b'D'))
}

/// CPU time used so far by OS thread `tid` of this process, from its
/// per-thread CPU clock (glibc's `pthread_getcpuclockid` encoding: the
/// kernel's `MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED)`).
fn thread_cpu_ns(tid: i32) -> Option<u64> {
    if tid <= 0 {
        return None;
    }
    let clock = (!tid << 3) | 6;
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes only `ts`; an invalid clock (a thread
    // that exited) fails with EINVAL.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return None;
    }
    Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// Sends the preemption signal to a worker thread.
pub(crate) fn signal_worker(tid: i32) {
    if tid > 0 {
        signal::send(tid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn tid() -> i32 {
        // SAFETY: gettid has no preconditions.
        unsafe { libc::gettid() }
    }

    #[test]
    fn a_sleeping_thread_uses_no_cpu_and_a_spinning_one_does() {
        let (tx, rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let sleeper = std::thread::spawn(move || {
            tx.send(tid()).unwrap();
            let _ = stop_rx.recv();
        });
        let sleeper_tid = rx.recv().unwrap();
        let before = thread_cpu_ns(sleeper_tid).expect("a live thread of this process has a CPU clock");
        std::thread::sleep(Duration::from_millis(30));
        let after = thread_cpu_ns(sleeper_tid).unwrap();
        // Waiting in recv, it is scheduled at most for a wake-up or two.
        assert!(after - before < 5_000_000, "a blocked thread used {} ns of CPU", after - before);
        assert!(blocked_in_kernel(sleeper_tid), "a thread in recv sleeps in the kernel");
        stop_tx.send(()).unwrap();
        sleeper.join().unwrap();

        let me = tid();
        let start = thread_cpu_ns(me).unwrap();
        let mut x = 0u64;
        while thread_cpu_ns(me).unwrap() - start < 2_000_000 {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(!blocked_in_kernel(me), "a spinning thread is running");
        assert_eq!(thread_cpu_ns(0), None);
        assert_eq!(thread_cpu_ns(-5), None);
    }
}
