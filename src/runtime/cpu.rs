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

/// Number of CPUs this process may run on (its main thread's affinity
/// mask), the default number of workers. The same from a green thread,
/// although its worker is pinned to one CPU.
///
/// ```
/// use preemptive_mlthreading_rust::{num_cpus, spawn};
///
/// assert!(num_cpus() >= 1);
/// assert_eq!(spawn(num_cpus).unwrap().join().unwrap(), num_cpus());
/// ```
pub fn num_cpus() -> usize {
    allowed_cpus().len().max(1)
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

/// The CPU the calling OS thread is running on right now.
pub fn current_cpu() -> Option<usize> {
    // SAFETY: no preconditions.
    let c = unsafe { libc::sched_getcpu() };
    (c >= 0).then_some(c as usize)
}
