use std::fmt;
use std::io;

/// Why a stack could not be mapped, naming the limit that was hit and what
/// to change.
#[derive(Debug)]
#[non_exhaustive]
pub enum StackError {
    /// The process has, or with one more stack would have, so many memory
    /// maps that fewer than the headroom the runtime leaves to the rest of
    /// the program would be free under `vm.max_map_count` (see
    /// [`MIN_MAP_HEADROOM`](super::MIN_MAP_HEADROOM)). Each stack takes two
    /// maps on kernels without guard regions (before Linux 6.13; see
    /// [`guard_regions_supported`](super::guard_regions_supported)).
    MapCountLimit {
        /// The kernel's `vm.max_map_count`.
        limit: usize,
        /// Maps the process held when the stack was refused (an estimate:
        /// the runtime counts its own and samples the rest rarely).
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
    /// Classifies a failed `mmap`/`mprotect` of a stack. Whether `ENOMEM`
    /// means the map count comes from the map budget's estimate, which
    /// re-reads `/proc/self/maps` at most about once a second.
    pub(crate) fn from_map_failure(requested: usize, err: io::Error) -> Self {
        if err.raw_os_error() != Some(libc::ENOMEM) {
            return StackError::Os(err);
        }
        match super::budget::at_limit() {
            Some((limit, in_use)) => StackError::MapCountLimit { limit, in_use },
            None => StackError::OutOfMemory { requested, address_space_limit: address_space_limit() },
        }
    }
}

impl fmt::Display for StackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StackError::MapCountLimit { limit, in_use } => write!(
                f,
                "cannot map a thread stack: the process holds about {in_use} memory maps and the \
                 kernel's vm.max_map_count is {limit}{}, and the runtime leaves the last {} to the \
                 rest of the program; raise it with `sysctl -w vm.max_map_count=1048576` or keep \
                 fewer threads alive at once",
                if super::guard_regions_supported() {
                    ""
                } else {
                    " (stacks have mprotect'ed guard pages here, so each takes 2)"
                },
                super::budget::map_headroom(*limit)
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
            // The OS's reason is the source, not repeated here.
            StackError::Os(_) => f.write_str("cannot map a thread stack"),
        }
    }
}

impl std::error::Error for StackError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StackError::Os(e) => Some(e),
            _ => None,
        }
    }
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
