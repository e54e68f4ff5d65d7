//! The page below each stack that turns an overflow into a fault.
//!
//! Two ways to make one. A guard region (`madvise(MADV_GUARD_INSTALL)`,
//! Linux 6.13) marks the page in the page tables only: the mapping stays
//! one VMA, and adjacent stacks merge, so a million stacks cost a handful of
//! VMAs. `mprotect(PROT_NONE)` splits the mapping: two VMAs per stack, and
//! `vm.max_map_count` stops the process near 32k stacks. The first is used
//! when a one-time probe shows that it really faults (qemu-user, for one,
//! answers success to advice it ignores). `PMT_STACK_GUARD=mprotect` in the
//! environment forces the second, for tools that look for guard pages in
//! `/proc/<pid>/maps`.

use std::io;
use std::ptr;
use std::sync::OnceLock;

/// `MADV_GUARD_INSTALL` from `<linux/mman.h>` (not in the libc crate yet).
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// Whether stacks get lightweight guard regions, which let the thread
/// count grow past `vm.max_map_count / 2`: the kernel has them (Linux 6.13
/// and later) and `PMT_STACK_GUARD=mprotect` is not set.
///
/// ```
/// // Linux 6.13 and later: true; older kernels use an mprotect'ed page.
/// let _ = preemptive_mlthreading_rust::stack::guard_regions_supported();
/// ```
pub fn guard_regions_supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| std::env::var_os("PMT_STACK_GUARD").is_none_or(|v| v != "mprotect") && probe())
}

/// Makes `[base, base + len)` a guard.
///
/// # Safety
/// The range is page-aligned memory of a mapping the caller owns, and
/// nothing lives there.
pub(super) unsafe fn install(base: *mut libc::c_void, len: usize) -> io::Result<()> {
    if guard_regions_supported() {
        // SAFETY: caller's contract; the advice only changes page tables.
        if unsafe { libc::madvise(base, len, MADV_GUARD_INSTALL) } == 0 {
            return Ok(());
        }
        return Err(io::Error::last_os_error());
    }
    // SAFETY: caller's contract.
    if unsafe { libc::mprotect(base, len, libc::PROT_NONE) } != 0 {
        // Splitting the mapping in two VMAs is what hits vm.max_map_count.
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Installs a guard region on a scratch page and checks that the kernel
/// refuses to read it: `write(2)` from it into a pipe must fail with
/// `EFAULT` (a syscall reports the fault instead of raising SIGSEGV).
fn probe() -> bool {
    let page = super::page_size();
    // SAFETY: a fresh anonymous mapping, unmapped below; the pipe's fds are
    // closed below; `write` only reads from the page (or fails).
    unsafe {
        let p = libc::mmap(
            ptr::null_mut(),
            page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return false;
        }
        let mut fds = [0; 2];
        let mut works = false;
        if libc::madvise(p, page, MADV_GUARD_INSTALL) == 0 && libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) == 0 {
            let n = libc::write(fds[1], p, 1);
            works = n == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT);
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        libc::munmap(p, page);
        works
    }
}

#[cfg(test)]
mod tests {
    use super::super::Stack;
    use super::*;

    /// The VMAs of this process that hold part of one of `stacks`.
    fn vmas_holding(stacks: &[Stack]) -> usize {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        maps.lines()
            .filter(|line| {
                let range = line.split_whitespace().next().unwrap();
                let (lo, hi) = range.split_once('-').unwrap();
                let (lo, hi) = (usize::from_str_radix(lo, 16).unwrap(), usize::from_str_radix(hi, 16).unwrap());
                stacks.iter().any(|s| (s.base.as_ptr() as usize) < hi && lo < s.top() as usize)
            })
            .count()
    }

    #[test]
    fn guard_regions_keep_neighbouring_stacks_in_few_vmas() {
        let stacks: Vec<_> = (0..200).map(|_| Stack::map(16 * 1024).unwrap()).collect();
        let vmas = vmas_holding(&stacks);
        println!("guard regions: {}; 200 stacks lie in {vmas} VMAs", guard_regions_supported());
        if guard_regions_supported() {
            // Mapped one after another, most neighbours merge.
            assert!(vmas < 100, "200 stacks in {vmas} VMAs");
        } else {
            assert_eq!(vmas, 400, "an mprotect'ed guard splits each stack in two");
        }
    }

    #[test]
    fn the_guard_faults_whichever_way_it_was_made() {
        let stack = Stack::map(16 * 1024).unwrap();
        let b = stack.bottom();
        let (lo, hi) = (b.lo, b.guard_end);
        let mut fds = [0; 2];
        // SAFETY: a pipe of our own; `write` reads from the guard page,
        // which must fail with EFAULT rather than read anything.
        unsafe {
            assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
            assert_eq!(libc::write(fds[1], lo as *const libc::c_void, hi - lo), -1);
            assert_eq!(io::Error::last_os_error().raw_os_error(), Some(libc::EFAULT));
            assert_eq!(libc::write(fds[1], hi as *const libc::c_void, 1), 1, "the stack above it is readable");
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }
}
