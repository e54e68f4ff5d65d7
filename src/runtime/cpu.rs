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
    fn num_cpus_counts_allowed_cpus_at_most() {
        let n = num_cpus();
        assert!(n >= 1 && n <= allowed_cpus().len().max(1), "{n} of {:?}", allowed_cpus());
    }
}
