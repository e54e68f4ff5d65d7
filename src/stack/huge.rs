//! Stacks on huge pages, for `ThreadBuilder::use_huge_pages(true)`: fewer
//! TLB misses for a thread that walks a deep stack, at the price of whole
//! huge pages of memory once touched.
//!
//! A huge stack is a mapping of its own, `[guard | signal reserve |
//! usable]` as any stack, with the usable part rounded up to whole huge
//! pages and aligned to one (the guard and the reserve sit just below that
//! boundary, in the slack the alignment needs; the rest of the slack is
//! given back). What backs the usable part, in order of preference:
//!
//! 1. **hugetlbfs pages**, when the system has some reserved and free
//!    (`vm.nr_hugepages`, `HugePages_Free`): mapped over it with
//!    `MAP_HUGETLB`, committed at once;
//! 2. **transparent huge pages**, where THP is `always` or `madvise`: the
//!    part is advised `MADV_HUGEPAGE`, so that its first touch of each
//!    aligned 2 MiB faults in a huge page;
//! 3. **normal pages** otherwise, said once with `log::info!` naming
//!    `vm.nr_hugepages`: never a spawn error for want of huge pages.
//!
//! Huge stacks are not recycled through the stack caches (a thread that
//! did not ask for huge pages must not get one), so each spawn maps one
//! and each exit unmaps it; and their usable size is at least one huge page
//! whatever the thread asked for.

use super::{Stack, StackError, guard, map_for_stacks, non_null, page_size, stack_overhead};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// What backed a huge stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backing {
    HugeTlb,
    Transparent,
    Normal,
}

/// The huge page size: THP's PMD size, else the hugetlbfs default, else
/// 2 MiB.
pub(crate) fn huge_page_size() -> usize {
    static SIZE: OnceLock<usize> = OnceLock::new();
    *SIZE.get_or_init(|| {
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .or_else(|| meminfo_kib("Hugepagesize:").map(|k| k * 1024))
            .filter(|&n| n.is_power_of_two() && n >= page_size())
            .unwrap_or(2 << 20)
    })
}

fn meminfo_kib(field: &str) -> Option<usize> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// Whether transparent huge pages may back a region advised for them.
fn thp_possible() -> bool {
    static THP: OnceLock<bool> = OnceLock::new();
    *THP.get_or_init(|| {
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .is_ok_and(|s| s.contains("[always]") || s.contains("[madvise]"))
    })
}

/// The usable size of a huge stack asked for `usable` bytes.
pub(crate) fn rounded(usable: usize) -> usize {
    usable.max(1).next_multiple_of(huge_page_size())
}

/// Maps a stack of at least `usable` bytes on huge pages where it can (see
/// the module docs); the backing it got comes with it.
pub(crate) fn map(usable: usize) -> Result<(Stack, Backing), StackError> {
    let huge = huge_page_size();
    let usable = rounded(usable);
    let overhead = stack_overhead().0;
    // Slack of one huge page: the usable part starts at the first huge
    // page boundary with room for the guard and the reserve below it.
    let raw_len = overhead + usable + huge;
    let raw = map_for_stacks(raw_len, usable)? as usize;
    let start = (raw + overhead).next_multiple_of(huge);
    let base = start - overhead;
    let end = start + usable;
    // SAFETY: both pieces lie in our own fresh mapping, outside the stack.
    unsafe {
        if base > raw {
            libc::munmap(raw as *mut libc::c_void, base - raw);
        }
        if raw + raw_len > end {
            libc::munmap(end as *mut libc::c_void, raw + raw_len - end);
        }
    }
    // From here on, dropping the stack unmaps `[base, end)` and gives the
    // budget back.
    let stack = Stack::own(non_null(base as *mut u8), end - base);
    // SAFETY: the first page of our own mapping; nothing uses it yet.
    unsafe { guard::install(base as *mut libc::c_void, page_size()) }
        .map_err(|e| StackError::from_map_failure(usable, e))?;
    let backing = back(start, usable);
    Ok((stack, backing))
}

/// Puts huge pages under `[start, start + len)`, huge-page aligned and
/// ours, as well as the system allows.
fn back(start: usize, len: usize) -> Backing {
    let pages = len / huge_page_size();
    if meminfo_kib("HugePages_Free:").is_some_and(|free| free >= pages) {
        // SAFETY: replaces a range of our own mapping that nothing uses
        // yet; MAP_FIXED keeps the address.
        let p = unsafe {
            libc::mmap(
                start as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED | libc::MAP_HUGETLB,
                -1,
                0,
            )
        };
        if p as usize == start {
            return Backing::HugeTlb;
        }
        // Taken by someone else meanwhile: a failed MAP_FIXED leaves the
        // old pages in place.
    }
    // SAFETY: advice on a range of our own mapping.
    if thp_possible() && unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_HUGEPAGE) } == 0 {
        return Backing::Transparent;
    }
    static SAID: AtomicBool = AtomicBool::new(false);
    if !SAID.swap(true, Ordering::Relaxed) {
        log::info!(
            "use_huge_pages: no huge pages for thread stacks (vm.nr_hugepages reserves none free, and \
             transparent huge pages are off); they use normal pages. Raise vm.nr_hugepages, or set \
             /sys/kernel/mm/transparent_hugepage/enabled to madvise"
        );
    }
    Backing::Normal
}
