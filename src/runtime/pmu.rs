//! Hardware performance counters of the calling OS thread, for profiled
//! green threads: cache references and misses, branches and branch misses,
//! one `perf_event_open` group per OS thread, read with one `read` at a
//! profiled thread's switches in and out (the difference is that thread's).
//!
//! Counting needs a PMU the kernel exposes and a `perf_event_paranoid`
//! that lets a process count its own threads (2 or lower). Virtual
//! machines often have no virtual PMU: the probe then says so, and the
//! rates built on these counters are NaN rather than a made-up zero.
//!
//! The group is opened the first time a profiled thread switches in on an
//! OS thread outside a signal handler, and lives as long as that OS
//! thread; `read` is async-signal-safe. User-space `rdpmc` through the
//! event's mmap page would spare the syscall (about 0.3–1 µs a read); it is
//! not done: profiled threads are the exception, and no machine here has a
//! PMU to measure it on.

use perf_event_open_sys::bindings as sys;
use std::cell::Cell;
use std::sync::OnceLock;

/// The events of a group, in the order `read` returns them.
pub(crate) const EVENTS: usize = 4;
const CONFIGS: [u32; EVENTS] = [
    sys::PERF_COUNT_HW_CACHE_REFERENCES,
    sys::PERF_COUNT_HW_CACHE_MISSES,
    sys::PERF_COUNT_HW_BRANCH_INSTRUCTIONS,
    sys::PERF_COUNT_HW_BRANCH_MISSES,
];

/// Group leader fd of this OS thread's counters; `UNTRIED` before the
/// first attempt, `FAILED` after one that failed.
const UNTRIED: i32 = -1;
const FAILED: i32 = -2;

thread_local! {
    static GROUP: Cell<i32> = const { Cell::new(UNTRIED) };
}

/// Whether this process can count hardware events of its threads, and if
/// not, why: probed once, by opening (and closing) one counter.
pub(crate) fn support() -> &'static Result<(), String> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE.get_or_init(|| match open(sys::PERF_COUNT_HW_CACHE_MISSES, -1) {
        Ok(fd) => {
            // SAFETY: a descriptor we just opened and own.
            unsafe { libc::close(fd) };
            Ok(())
        }
        Err(errno) => Err(explain(errno)),
    })
}

fn explain(errno: i32) -> String {
    let paranoid = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unreadable".into());
    let why = match errno {
        libc::ENOENT | libc::EOPNOTSUPP | libc::ENODEV => {
            "the kernel exposes no hardware PMU here (a virtual machine without a virtual PMU, or an \
             emulator)"
                .to_owned()
        }
        libc::EACCES | libc::EPERM => {
            format!("perf_event_paranoid is {paranoid}: counting needs 2 or lower, or CAP_PERFMON")
        }
        libc::ENOSYS => "perf_event_open is not available (seccomp, or a kernel without perf events)".to_owned(),
        _ => format!("perf_event_open failed (perf_event_paranoid {paranoid})"),
    };
    format!("hardware counters unsupported: {why}: {}", std::io::Error::from_raw_os_error(errno))
}

/// Opens one user-space-only hardware counter of the calling thread, in
/// the group led by `leader` (-1: a new group), counting from now.
fn open(config: u32, leader: i32) -> Result<i32, i32> {
    let mut attr = sys::perf_event_attr {
        type_: sys::PERF_TYPE_HARDWARE,
        size: std::mem::size_of::<sys::perf_event_attr>() as u32,
        config: u64::from(config),
        read_format: u64::from(sys::PERF_FORMAT_GROUP),
        ..Default::default()
    };
    attr.set_exclude_kernel(1);
    attr.set_exclude_hv(1);
    // SAFETY: `attr` is a valid, fully initialised attribute block that
    // outlives the call; pid 0 / cpu -1 is the calling thread on any CPU.
    let fd = unsafe { perf_event_open_sys::perf_event_open(&mut attr, 0, -1, leader, sys::PERF_FLAG_FD_CLOEXEC as _) };
    if fd < 0 { Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL)) } else { Ok(fd) }
}

/// Opens this OS thread's group; FAILED when any event cannot be counted.
#[cold]
fn open_group() -> i32 {
    if support().is_err() {
        return FAILED;
    }
    let mut fds = [-1; EVENTS];
    for (i, &c) in CONFIGS.iter().enumerate() {
        match open(c, if i == 0 { -1 } else { fds[0] }) {
            Ok(fd) => fds[i] = fd,
            Err(_) => {
                for &fd in fds.iter().filter(|&&fd| fd >= 0) {
                    // SAFETY: our own descriptors, used by nothing else.
                    unsafe { libc::close(fd) };
                }
                return FAILED;
            }
        }
    }
    // The members stay open for the life of the OS thread: reading the
    // leader reads them all.
    fds[0]
}

/// The counters of the calling OS thread since its group was opened, in
/// [`EVENTS`] order, with the group's descriptor (which tells OS threads
/// apart while they live); None where they cannot be counted. Opens the group on
/// first use when `may_open` (not in a signal handler: opening reads
/// files); async-signal-safe otherwise.
pub(crate) fn read(may_open: bool) -> Option<(i32, [u64; EVENTS])> {
    let mut fd = GROUP.with(Cell::get);
    if fd == UNTRIED {
        if !may_open {
            return None;
        }
        fd = open_group();
        GROUP.with(|g| g.set(fd));
    }
    if fd < 0 {
        return None;
    }
    // PERF_FORMAT_GROUP: the number of events, then each value.
    let mut buf = [0u64; 1 + EVENTS];
    // SAFETY: reading into a buffer of exactly the length passed.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), std::mem::size_of_val(&buf)) };
    if n != std::mem::size_of_val(&buf) as isize || buf[0] != EVENTS as u64 {
        return None;
    }
    let mut out = [0; EVENTS];
    out.copy_from_slice(&buf[1..]);
    Some((fd, out))
}
