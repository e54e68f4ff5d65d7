//! Memory bound to a NUMA node: [`allocate_on_node`]'s buffers, and the
//! `mbind(2)` calls behind them and behind `ThreadBuilder::numa_node`'s
//! stacks.

use super::live;
use crate::stack::page_size;
use std::ffi::{c_int, c_ulong, c_void};
use std::fmt;
use std::io;
use std::ops::{Deref, DerefMut};
use std::ptr::{self, NonNull};

/// Why [`allocate_on_node`] failed. Its message says what to change.
///
/// ```
/// use preemptive_mlthreading_rust::perf::numa::{allocate_on_node, NumaError};
///
/// let err = allocate_on_node(0, 0).unwrap_err();
/// assert_eq!(err, NumaError::ZeroSize);
/// println!("{err}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NumaError {
    /// There is no node of that index.
    NoSuchNode {
        /// The index asked for.
        node: usize,
        /// How many nodes there are: valid indices are `0..node_count`.
        node_count: usize,
    },
    /// A size of 0 was asked for.
    ZeroSize,
    /// The size, rounded up to whole pages, does not fit in a `usize`.
    TooLarge {
        /// The size asked for.
        size: usize,
    },
    /// `mmap` refused the memory.
    Map {
        /// Bytes asked of `mmap` (the size rounded up to whole pages).
        size: usize,
        /// The OS error number.
        errno: i32,
    },
    /// The kernel cannot bind memory to a node here: `mbind` answered
    /// `ENOSYS` (a kernel without NUMA support) or `EPERM` (a seccomp
    /// filter, as in many containers).
    Unsupported {
        /// The OS error number, `ENOSYS` or `EPERM`.
        errno: i32,
    },
    /// `mbind` refused to bind the memory to the node for another reason.
    Bind {
        /// The node's index.
        node: usize,
        /// The node's kernel id.
        sysfs_id: usize,
        /// The OS error number.
        errno: i32,
    },
}

impl NumaError {
    /// The OS error number behind the error, if the OS refused something.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::perf::numa::NumaError;
    ///
    /// assert_eq!(NumaError::Unsupported { errno: libc::EPERM }.errno(), Some(libc::EPERM));
    /// assert_eq!(NumaError::ZeroSize.errno(), None);
    /// ```
    pub fn errno(&self) -> Option<i32> {
        match *self {
            NumaError::Map { errno, .. } | NumaError::Unsupported { errno } | NumaError::Bind { errno, .. } => {
                Some(errno)
            }
            NumaError::NoSuchNode { .. } | NumaError::ZeroSize | NumaError::TooLarge { .. } => None,
        }
    }
}

impl fmt::Display for NumaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let os = |errno: i32| io::Error::from_raw_os_error(errno);
        match *self {
            NumaError::NoSuchNode { node, node_count } => write!(
                f,
                "NUMA node {node} does not exist: this machine has {node_count} node(s), 0..={}; pass an index \
                 below get_numa_topology().node_count()",
                node_count.saturating_sub(1)
            ),
            NumaError::ZeroSize => {
                write!(f, "allocate_on_node with size 0: a node buffer needs at least 1 byte; ask for the size you use")
            }
            NumaError::TooLarge { size } => write!(
                f,
                "allocate_on_node with size {size}: rounded up to whole pages it exceeds the address space; ask for less"
            ),
            NumaError::Map { size, errno } => write!(
                f,
                "mmap of {size} bytes for a node buffer failed: {}; ask for less, or raise `ulimit -v` or \
                 vm.max_map_count",
                os(errno)
            ),
            NumaError::Unsupported { errno } => write!(
                f,
                "NUMA memory binding is unsupported here: mbind failed: {}. A seccomp filter refuses it (in \
                 containers: Docker's default profile allows mbind only with --cap-add SYS_NICE), or the kernel \
                 or emulator has no NUMA support; allow mbind, or allocate with the global allocator instead",
                os(errno)
            ),
            NumaError::Bind { node, sysfs_id, errno: libc::EINVAL } => write!(
                f,
                "mbind refused NUMA node {node} (sysfs node{sysfs_id}): {}; the node may have no memory of its own \
                 (a CPU-only node) or lie outside this process's cpuset (Mems_allowed_list in /proc/self/status); \
                 pick a node with memory that the cpuset allows",
                os(libc::EINVAL)
            ),
            NumaError::Bind { node, sysfs_id, errno } => write!(
                f,
                "binding a node buffer to NUMA node {node} (sysfs node{sysfs_id}) failed: {}; free memory on that \
                 node or ask for less",
                os(errno)
            ),
        }
    }
}

impl std::error::Error for NumaError {}

/// Memory bound to one NUMA node: zero-filled, page-aligned, unmapped on
/// drop. Derefs to `[u8]` of exactly the size asked for (the mapping
/// behind it is rounded up to whole pages).
///
/// The binding is `MPOL_BIND`: pages are taken from that node only, when
/// first touched. If the node runs out of memory, touching a new page
/// invokes the OOM killer rather than falling back to another node.
///
/// ```
/// use preemptive_mlthreading_rust::perf::numa::{allocate_on_node, NumaError};
///
/// match allocate_on_node(0, 10_000) {
///     Ok(mut buffer) => {
///         assert_eq!(buffer.len(), 10_000);
///         assert!(buffer.iter().all(|&b| b == 0));
///         buffer[9_999] = 42;
///         assert_eq!(buffer.node(), 0);
///     }
///     Err(NumaError::Unsupported { .. }) => {} // mbind refused here: a container, or no NUMA kernel
///     Err(e) => panic!("{e}"),
/// }
/// ```
pub struct NodeBuffer {
    ptr: NonNull<u8>,
    len: usize,
    mapped: usize,
    node: usize,
}

// SAFETY: a NodeBuffer owns its mapping alone, like a Box<[u8]>: moving it
// to another thread moves that ownership, and nothing in it is tied to a
// thread (the node binding belongs to the memory, not to the thread).
unsafe impl Send for NodeBuffer {}
// SAFETY: shared access gives only `&[u8]`, which is Sync; writing needs
// `&mut NodeBuffer`.
unsafe impl Sync for NodeBuffer {}

impl NodeBuffer {
    /// Bytes usable: the size asked of [`allocate_on_node`].
    ///
    /// ```
    /// # use preemptive_mlthreading_rust::perf::numa::allocate_on_node;
    /// # let Ok(buffer) = allocate_on_node(0, 100) else { return };
    /// assert_eq!(buffer.len(), 100);
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a node buffer has at least one byte.
    ///
    /// ```
    /// # use preemptive_mlthreading_rust::perf::numa::allocate_on_node;
    /// # let Ok(buffer) = allocate_on_node(0, 1) else { return };
    /// assert!(!buffer.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The index of the node the memory is bound to.
    ///
    /// ```
    /// # use preemptive_mlthreading_rust::perf::numa::allocate_on_node;
    /// # let Ok(buffer) = allocate_on_node(0, 1) else { return };
    /// assert_eq!(buffer.node(), 0);
    /// ```
    pub fn node(&self) -> usize {
        self.node
    }
}

impl Deref for NodeBuffer {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` starts a readable mapping of `mapped >= len` bytes
        // that lives as long as `self`; anonymous memory is initialized
        // (to zero); `&self` rules out a `&mut` alias.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for NodeBuffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, and the mapping is writable; `&mut self`
        // makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl fmt::Debug for NodeBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeBuffer").field("ptr", &self.ptr).field("len", &self.len).field("node", &self.node).finish()
    }
}

impl Drop for NodeBuffer {
    fn drop(&mut self) {
        // SAFETY: we own the whole mapping, `mapped` bytes at `ptr`, and no
        // reference into it outlives `self`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.mapped) };
    }
}

/// Maps `size` bytes (rounded up to whole pages) of zeroed memory bound to
/// NUMA node `node` (an index, see the [module docs](super#node-numbers)):
/// the pages come from that node's memory when first touched.
///
/// Fails with [`NumaError::NoSuchNode`] if `node` is not below
/// [`node_count`](super::NumaTopology::node_count) (checked first),
/// [`NumaError::ZeroSize`] for size 0, and [`NumaError::Unsupported`] where
/// the kernel or a seccomp filter refuses `mbind`.
///
/// ```
/// use preemptive_mlthreading_rust::perf::numa::{allocate_on_node, get_current_node, NumaError};
///
/// match allocate_on_node(get_current_node(), 1 << 20) {
///     Ok(mut buffer) => {
///         buffer.fill(7);
///         assert_eq!(buffer.as_ptr() as usize % 4096, 0);
///     }
///     Err(NumaError::Unsupported { .. }) => {} // mbind refused: use ordinary memory
///     Err(e) => panic!("{e}"),
/// }
/// assert!(allocate_on_node(usize::MAX, 4096).unwrap_err().to_string().contains("does not exist"));
/// ```
pub fn allocate_on_node(node: usize, size: usize) -> Result<NodeBuffer, NumaError> {
    let topology = live();
    let Some(sysfs_id) = topology.sysfs_id(node) else {
        return Err(NumaError::NoSuchNode { node, node_count: topology.node_count() });
    };
    if size == 0 {
        return Err(NumaError::ZeroSize);
    }
    let page = page_size();
    let mapped = size.checked_next_multiple_of(page).ok_or(NumaError::TooLarge { size })?;
    let ptr = map_anonymous(mapped).map_err(|errno| NumaError::Map { size: mapped, errno })?;
    // From here on, dropping the buffer unmaps it.
    let buffer = NodeBuffer { ptr, len: size, mapped, node };
    bind(ptr.as_ptr(), mapped, sysfs_id, false).map_err(|errno| match errno {
        libc::ENOSYS | libc::EPERM => NumaError::Unsupported { errno },
        _ => NumaError::Bind { node, sysfs_id, errno },
    })?;
    Ok(buffer)
}

/// [`stack::map_anonymous`](crate::stack::map_anonymous), with the errno
/// on failure.
fn map_anonymous(len: usize) -> Result<NonNull<u8>, c_int> {
    crate::stack::map_anonymous(len).map_err(|e| e.raw_os_error().unwrap_or(libc::ENOMEM))
}

/// Most kernel node ids [`bind`] can name (the kernel's usual
/// `MAX_NUMNODES`); the mask lives on the stack, so that a worker can bind
/// a stack without allocating.
const MAX_NODE_IDS: usize = 1024;

/// `mbind` flag: move the pages already there to the new policy's node
/// (`MPOL_MF_MOVE` in the kernel's uapi).
const MPOL_MF_MOVE: c_ulong = 1 << 1;

/// Binds the `len` bytes at `addr` (page-aligned, mapped) to the node the
/// kernel calls `sysfs_id` with `MPOL_BIND`, moving pages already touched
/// when `move_pages`; the errno on failure. Allocates nothing.
pub(crate) fn bind(addr: *mut u8, len: usize, sysfs_id: usize, move_pages: bool) -> Result<(), i32> {
    const BITS: usize = c_ulong::BITS as usize;
    if sysfs_id >= MAX_NODE_IDS {
        return Err(libc::EINVAL);
    }
    let mut mask = [0 as c_ulong; MAX_NODE_IDS / BITS];
    mask[sysfs_id / BITS] |= 1 << (sysfs_id % BITS);
    // The kernel reads `maxnode - 1` bits of the mask (it decrements the
    // count first), so one more than the bits we name.
    let maxnode = ((sysfs_id / BITS + 1) * BITS + 1) as c_ulong;
    let flags = if move_pages { MPOL_MF_MOVE } else { 0 };
    // SAFETY: mbind reads at most `maxnode - 1` bits from `mask`, which
    // holds that many, and changes only the memory policy of our own
    // mapping at `addr`; it writes no user memory.
    let r = unsafe { mbind(addr, len, libc::MPOL_BIND as c_ulong, mask.as_ptr(), maxnode, flags) };
    if r == 0 { Ok(()) } else { Err(last_errno()) }
}

/// Gives the `len` bytes at `addr` back the default policy (the node of
/// whichever thread touches a page first), undoing [`bind`].
pub(crate) fn unbind(addr: *mut u8, len: usize) -> Result<(), i32> {
    // SAFETY: MPOL_DEFAULT takes no mask; only our own mapping's policy
    // changes.
    let r = unsafe { mbind(addr, len, libc::MPOL_DEFAULT as c_ulong, ptr::null(), 0, 0) };
    if r == 0 { Ok(()) } else { Err(last_errno()) }
}

/// The raw `mbind(2)` system call.
///
/// # Safety
/// `mask` holds at least `maxnode - 1` bits (or is null with `maxnode` 0).
unsafe fn mbind(
    addr: *mut u8,
    len: usize,
    mode: c_ulong,
    mask: *const c_ulong,
    maxnode: c_ulong,
    flags: c_ulong,
) -> i64 {
    // Every argument goes through the variadic syscall() as a full
    // register's width, `mode` and `flags` included, so that no upper bits
    // are left undefined.
    // SAFETY: the caller's contract on `mask`; the kernel checks the rest.
    unsafe { libc::syscall(libc::SYS_mbind, addr as *mut c_void, len as c_ulong, mode, mask, maxnode, flags) as i64 }
}

fn last_errno() -> c_int {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nodemask_names_the_sysfs_id() {
        // An id past the first word of the mask: the kernel must get a
        // mask long enough to hold it. With no such node the kernel says
        // EINVAL (or ENOSYS/EPERM where mbind is refused), never EFAULT.
        let page = page_size();
        let p = map_anonymous(page).unwrap();
        let r = bind(p.as_ptr(), page, 200, false);
        // SAFETY: our mapping, unused.
        unsafe { libc::munmap(p.as_ptr().cast(), page) };
        assert!(matches!(r, Err(libc::EINVAL | libc::ENOSYS | libc::EPERM)), "{r:?}");
    }
}
