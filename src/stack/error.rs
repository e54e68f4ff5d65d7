use std::fmt;
use std::io;

/// Why a stack could not be mapped, naming the limit that was hit and what
/// to change.
#[derive(Debug)]
#[non_exhaustive]
pub enum StackError {
    /// The process has as many memory maps as `vm.max_map_count` allows.
    /// Each stack takes two on kernels without guard regions (before Linux
    /// 6.13; see [`guard_regions_supported`](super::guard_regions_supported)).
    MapCountLimit {
        /// The kernel's `vm.max_map_count`.
        limit: usize,
        /// Maps the process held when the mapping failed.
        in_use: usize,
    },
    /// The kernel refused the memory itself (ENOMEM below the map-count
    /// limit, or `RLIMIT_AS`).
    OutOfMemory {
        /// Bytes requested for the stack.
        requested: usize,
        /// The address-space limit (`ulimit -v`), if one is set.
        address_space_limit: Option<u64>,
    },
    /// Any other mmap/mprotect failure.
    Os(io::Error),
}

impl StackError {
    pub(crate) fn from_map_failure(requested: usize, err: io::Error) -> Self {
        if err.raw_os_error() != Some(libc::ENOMEM) {
            return StackError::Os(err);
        }
        let limit = read_max_map_count();
        let in_use = count_maps();
        match (limit, in_use) {
            // A few maps of slack: ld.so and the allocator map on their own.
            (Some(limit), Some(in_use)) if in_use + 8 >= limit => StackError::MapCountLimit { limit, in_use },
            _ => StackError::OutOfMemory { requested, address_space_limit: address_space_limit() },
        }
    }
}

impl fmt::Display for StackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StackError::MapCountLimit { limit, in_use } => write!(
                f,
                "cannot map a thread stack: the process holds {in_use} memory maps and the \
                 kernel's vm.max_map_count is {limit}{}; raise it with \
                 `sysctl -w vm.max_map_count=1048576` or keep fewer threads alive at once",
                if super::guard_regions_supported() {
                    ""
                } else {
                    " (this kernel has no guard regions, so each stack takes 2)"
                }
            ),
            StackError::OutOfMemory { requested, address_space_limit: Some(lim) } => write!(
                f,
                "cannot map a {requested}-byte thread stack: out of memory under the address-space \
                 limit of {lim} bytes (`ulimit -v`); raise the limit, or use a smaller stack_size \
                 or fewer threads"
            ),
            StackError::OutOfMemory { requested, address_space_limit: None } => write!(
                f,
                "cannot map a {requested}-byte thread stack: the kernel is out of memory; use a \
                 smaller stack_size or fewer threads"
            ),
            StackError::Os(e) => write!(f, "cannot map a thread stack: {e}"),
        }
    }
}

impl std::error::Error for StackError {}

fn read_max_map_count() -> Option<usize> {
    std::fs::read_to_string("/proc/sys/vm/max_map_count").ok()?.trim().parse().ok()
}

fn count_maps() -> Option<usize> {
    Some(std::fs::read("/proc/self/maps").ok()?.iter().filter(|&&b| b == b'\n').count())
}

/// `RLIMIT_AS`, or `None` when unlimited.
pub(crate) fn address_space_limit() -> Option<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes only into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut lim) } != 0 || lim.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    Some(lim.rlim_cur)
}
