//! CPU sets: which CPUs the process may use, and pinning a worker to one.

use std::io;

/// CPUs this process may run on, in ascending order: the affinity mask of
/// its main thread (`sched_getaffinity(getpid())`), not the caller's, which
/// for a worker is the one CPU it is pinned to.
pub(crate) fn allowed_cpus() -> Vec<usize> {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    // SAFETY: cpu_set_t is plain bits, valid when zeroed.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: sched_getaffinity writes at most size_of::<cpu_set_t>() bytes into `set`.
    let ok = unsafe { libc::sched_getaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } == 0;
    if !ok {
        return (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect();
    }
    // SAFETY: CPU_ISSET reads the set we own.
    (0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect()
}

/// How many CPUs this process may use at once: the default number of
/// workers of a scheduler.
///
/// It counts the CPUs of the process's affinity mask (its main thread's,
/// `sched_getaffinity(getpid())`, so the same from a green thread, whose
/// worker is pinned to one CPU), capped by the cgroup v2 CPU quota as
/// [`std::thread::available_parallelism`] caps it (which rounds the quota
/// down where this rounds up), so that a container limited to 2 CPUs'
/// worth of time on a 64-CPU host gets 2 workers rather than 64 that the
/// kernel throttles:
///
/// - the quota is read from `cpu.max` of the process's cgroup (the `0::`
///   line of `/proc/self/cgroup`, under `/sys/fs/cgroup`) and of each of
///   its ancestors; the tightest one wins;
/// - `<quota> <period>` allows quota / period CPUs, rounded up (1.5 CPUs
///   count as 2: the half CPU is time a second worker can use), and at
///   least 1; `max <period>` is no limit;
/// - no cgroup v2 (v1 only, no cgroupfs mounted), a missing or unreadable
///   `cpu.max`, or one that is not two numbers or `max` and a number,
///   counts as no limit.
///
/// The result is at least 1 and never more than the affinity mask allows.
/// Which CPUs the workers are pinned to is still the affinity mask's
/// business: they take its CPUs in turn from the lowest. Read afresh at
/// each call (a few small files), as the quota and the mask may change.
///
/// ```
/// use preemptive_mlthreading_rust::{num_cpus, spawn};
///
/// assert!(num_cpus() >= 1);
/// assert_eq!(spawn(num_cpus).unwrap().join().unwrap(), num_cpus());
/// ```
pub fn num_cpus() -> usize {
    count(allowed_cpus().len(), super::cgroup::quota_cpus())
}

/// The number of CPUs `allowed` by the affinity mask, capped by a `quota`
/// (None: no limit), at least 1.
fn count(allowed: usize, quota: Option<usize>) -> usize {
    quota.map_or(allowed, |q| allowed.min(q)).max(1)
}

/// Pins the calling OS thread to `cpu`.
pub(crate) fn pin_current(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain bits, valid when zeroed.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET writes one bit into the set we own (it ignores cpu >= CPU_SETSIZE).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; the set is valid.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The shortest time slice Linux lets a thread ask for (100 µs).
pub(crate) const SHORTEST_KERNEL_SLICE_NS: u64 = 100_000;

/// Asks the kernel to give the calling OS thread time slices of `ns`
/// (Linux 6.12 and later, clamped to 0.1–100 ms), keeping its policy and
/// nice value. EEVDF lets a waking thread with a shorter slice preempt
/// the one running at once (`PREEMPT_SHORT`) instead of waiting for that
/// one's slice, up to 3 ms, to end: for a thread that sleeps and wakes
/// to run a few microseconds, as the preemption monitor does. Older
/// kernels ignore the request; an error (a seccomp filter, say) leaves the
/// default and is returned.
pub(crate) fn request_kernel_slice(ns: u64) -> io::Result<()> {
    /// `struct sched_attr` (`<linux/sched/types.h>`), which the libc
    /// crate does not define.
    #[repr(C)]
    #[derive(Default)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
        util_min: u32,
        util_max: u32,
    }
    const SCHED_BATCH: u32 = 3;
    let size = std::mem::size_of::<SchedAttr>() as u32;
    let mut attr = SchedAttr::default();
    // SAFETY: sched_getattr writes at most `size` bytes into `attr`.
    if unsafe { libc::syscall(libc::SYS_sched_getattr, 0, &raw mut attr, size, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if attr.policy != libc::SCHED_OTHER as u32 && attr.policy != SCHED_BATCH {
        // Real-time or idle policies have no fair slice to ask for.
        return Ok(());
    }
    attr.size = size;
    attr.flags = 0;
    attr.runtime = ns;
    // SAFETY: sched_setattr reads `size` bytes of `attr`; pid 0 is the
    // calling thread.
    if unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &raw const attr, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The CPU the calling OS thread is running on right now (`sched_getcpu`),
/// None where the kernel cannot tell. From a green thread, the CPU its
/// worker is pinned to.
///
/// ```
/// use preemptive_mlthreading_rust::{CpuSet, ThreadBuilder, current_cpu};
///
/// let cpu = current_cpu().unwrap();
/// // A thread restricted to that CPU (when a worker runs there) reports it.
/// if let Ok(h) = ThreadBuilder::new().cpu_set(CpuSet::from_cpus([cpu]).unwrap()).spawn(current_cpu) {
///     assert_eq!(h.join().unwrap(), Some(cpu));
/// }
/// ```
pub fn current_cpu() -> Option<usize> {
    // SAFETY: no preconditions.
    let c = unsafe { libc::sched_getcpu() };
    (c >= 0).then_some(c as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quota_caps_the_affinity_count() {
        assert_eq!(count(8, None), 8);
        assert_eq!(count(8, Some(2)), 2);
        assert_eq!(count(2, Some(16)), 2, "never more than the mask allows");
        assert_eq!(count(0, None), 1);
        assert_eq!(count(4, Some(0)), 1);
    }

    #[test]
    fn a_kernel_slice_request_keeps_the_nice_value_and_sets_the_slice() {
        std::thread::spawn(|| {
            // SAFETY: plain getter (-1 is a valid answer here too).
            let nice = (unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) } + 1).min(19);
            // SAFETY: raises this thread's own nice value (always allowed).
            assert_eq!(unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) }, 0);
            match request_kernel_slice(SHORTEST_KERNEL_SLICE_NS) {
                // qemu-user does not emulate sched_getattr.
                Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => return println!("not checked: {e}"),
                r => r.unwrap(),
            }
            // SAFETY: plain getter (-1 is a valid answer; 5 is expected).
            assert_eq!(unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }, nice, "the nice value stays");
            // Kernels before 6.12 do not honour the slice (some show it).
            let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
            let mut version = release.trim().split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
            let (major, minor) = (version.next().unwrap_or(0), version.next().unwrap_or(0));
            let sched = std::fs::read_to_string("/proc/thread-self/sched").unwrap_or_default();
            match sched.lines().find(|l| l.starts_with("se.slice")) {
                Some(l) if (major, minor) >= (6, 12) => {
                    assert_eq!(l.split(':').nth(1).map(str::trim), Some("100000"), "{l}")
                }
                _ => println!("Linux {}: the slice is not checked", release.trim()),
            }
        })
        .join()
        .unwrap();
    }

    #[test]
    fn num_cpus_counts_allowed_cpus_at_most() {
        let n = num_cpus();
        assert!(n >= 1 && n <= allowed_cpus().len().max(1), "{n} of {:?}", allowed_cpus());
    }
}
