//! NUMA topology and node-local memory, as the tuning guide uses them.
//!
//! [`get_numa_topology`] reads which CPUs belong to which memory node and
//! how far apart the nodes are from sysfs, [`allocate_on_node`] maps memory
//! bound to one node (with `mbind(2)`, no libnuma), and
//! [`get_current_node`] says which node the caller runs on.
//!
//! # Node numbers
//!
//! Every `node: usize` this module takes or returns is a dense *index*,
//! `0..node_count()`, in ascending order of the kernel's node ids. The
//! kernel's ids (the `N` of `/sys/devices/system/node/nodeN`) can have
//! gaps: a machine with nodes `node0`, `node1`, `node3` has indices 0, 1
//! and 2, and [`NumaNode::sysfs_id`] of index 2 is 3. On most machines the
//! two are the same. Indexing densely keeps the guide's loop
//! `for node in 0..topology.node_count()` visiting every node exactly once.
//!
//! Nodes without CPUs (memory-only nodes, such as CXL memory expanders)
//! count as nodes: memory can be allocated on them, but their CPU mask is 0,
//! and a thread cannot be pinned to them.
//!
//! # Containers
//!
//! Where `/sys/devices/system/node` is missing or empty (some containers
//! mask it), the topology is a single node, index 0 with sysfs id 0, that
//! holds every CPU this process may run on; [`NumaTopology::is_fallback`]
//! says so. Where a seccomp filter refuses `mbind` (Docker's default
//! profile does unless the container has `CAP_SYS_NICE`),
//! [`allocate_on_node`] answers [`NumaError::Unsupported`].
//!
//! ```
//! use preemptive_mlthreading_rust::ThreadBuilder;
//! use preemptive_mlthreading_rust::perf::numa::{allocate_on_node, get_current_node, get_numa_topology, NumaError};
//!
//! let topology = get_numa_topology();
//! for node in 0..topology.node_count() {
//!     let cpu_mask = topology.get_cpu_mask_for_node(node);
//!     if cpu_mask == 0 {
//!         continue; // a memory-only node, or all its CPUs are above 63
//!     }
//!     // A node whose CPUs this process may not use has no worker: spawn fails.
//!     let Ok(h) = ThreadBuilder::new().cpu_affinity(cpu_mask).spawn(move || {
//!         let mut buffer = match allocate_on_node(node, 64 * 1024) {
//!             Ok(b) => b,
//!             Err(NumaError::Unsupported { .. }) => return None, // seccomp, or no NUMA kernel
//!             Err(e) => panic!("{e}"),
//!         };
//!         buffer.fill(1);
//!         Some((get_current_node(), buffer.iter().map(|&b| b as usize).sum::<usize>()))
//!     }) else {
//!         continue;
//!     };
//!     if let Some((ran_on, sum)) = h.join().unwrap() {
//!         assert_eq!((ran_on, sum), (node, 64 * 1024));
//!     }
//! }
//! ```

use crate::runtime::cpu::{allowed_cpus, current_cpu};
use crate::stack::page_size;
use std::ffi::{c_int, c_uint, c_ulong, c_void};
use std::fmt;
use std::fs;
use std::io;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::ptr::{self, NonNull};
use std::sync::{Arc, OnceLock};

/// The distance of a node to itself in the kernel's (ACPI SLIT) scale;
/// other distances are relative to it (21 means 2.1 times as far).
///
/// ```
/// use preemptive_mlthreading_rust::perf::numa::{get_numa_topology, LOCAL_DISTANCE};
///
/// assert_eq!(get_numa_topology().distance(0, 0), Some(LOCAL_DISTANCE));
/// ```
pub const LOCAL_DISTANCE: u32 = 10;

/// CPU numbers at or above this are taken for corruption by the cpulist
/// parser (the kernel's own limit, `NR_CPUS`, is at most 8192).
const MAX_CPUS: usize = 1 << 16;

/// One NUMA node: its index, its kernel id, its CPUs and its distances.
///
/// ```
/// use preemptive_mlthreading_rust::perf::numa::get_numa_topology;
///
/// for node in get_numa_topology().nodes() {
///     println!("node {} (sysfs node{}): CPUs {:?}", node.index(), node.sysfs_id(), node.cpus());
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumaNode {
    index: usize,
    sysfs_id: usize,
    cpus: Vec<usize>,
    /// To every node, by index.
    distances: Vec<u32>,
}

impl NumaNode {
    /// The dense index, `0..node_count()`, that every `node` argument of
    /// this module means.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::perf::numa::get_numa_topology;
    ///
    /// let topology = get_numa_topology();
    /// assert!(topology.nodes().enumerate().all(|(i, n)| n.index() == i));
    /// ```
    pub fn index(&self) -> usize {
        self.index
    }

    /// The kernel's id of the node: the `N` of
    /// `/sys/devices/system/node/nodeN`, what `getcpu(2)`, `mbind(2)` and
    /// `numactl` speak of. Ascending with the index, not always equal to it.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::perf::numa::get_numa_topology;
    ///
    /// let ids: Vec<usize> = get_numa_topology().nodes().map(|n| n.sysfs_id()).collect();
    /// assert!(ids.windows(2).all(|w| w[0] < w[1]));
    /// ```
    pub fn sysfs_id(&self) -> usize {
        self.sysfs_id
    }

    /// The node's CPUs in ascending order, all of them, also those at or
    /// above 64; empty for a memory-only node.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::perf::numa::get_numa_topology;
    ///
    /// let cpus: usize = get_numa_topology().nodes().map(|n| n.cpus().len()).sum();
    /// assert!(cpus >= 1);
    /// ```
    pub fn cpus(&self) -> &[usize] {
        &self.cpus
    }

    /// The node's CPUs below 64 as a mask for
    /// [`ThreadBuilder::cpu_affinity`](crate::ThreadBuilder::cpu_affinity)
    /// (bit `n` = CPU `n`). CPUs at or above 64 do not fit in it; see
    /// [`cpus`](Self::cpus).
    ///
    /// ```
    /// use preemptive_mlthreading_rust::perf::numa::get_numa_topology;
    ///
    /// let node = get_numa_topology().nodes().next().unwrap().clone();
    /// let low = node.cpus().iter().filter(|&&c| c < 64).count();
    /// assert_eq!(node.cpu_mask().count_ones() as usize, low);
    /// ```
    pub fn cpu_mask(&self) -> u64 {
        self.cpus.iter().filter(|&&c| c < 64).fold(0, |mask, &c| mask | 1 << c)
    }
}

/// Which CPUs and how much distance: the machine's NUMA nodes, indexed
/// densely (see the [module docs](self#node-numbers)). Cloning is cheap.
///
/// ```
/// use preemptive_mlthreading_rust::perf::numa::get_numa_topology;
///
/// let topology = get_numa_topology();
/// let cpu = preemptive_mlthreading_rust::current_cpu().unwrap();
/// let node = topology.node_of_cpu(cpu).unwrap();
/// assert!(topology.cpus_of_node(node).contains(&cpu));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumaTopology {
    nodes: Arc<[NumaNode]>,
    fallback: bool,
}

impl NumaTopology {
    /// Reads the topology under `root`, normally `/sys`: the nodes are
    /// the directories `<root>/devices/system/node/node<id>`, each with a
    /// `cpulist` (e.g. `0-7,16-23`, empty for a memory-only node) and a
    /// `distance` row (`10 21`: to every node, in ascending id order).
    ///
    /// Without that directory, or with no node in it, the answer is the
    /// [fallback](Self::is_fallback) single node holding the CPUs this
    /// process may run on. A file that cannot be read fails with its
    /// error; malformed contents, a CPU in two nodes, or a distance row
    /// whose length is not the node count fail with
    /// [`io::ErrorKind::InvalidData`]; either way the message names the
    /// file.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::perf::numa::NumaTopology;
    /// use std::fs;
    ///
    /// let root = std::env::temp_dir().join(format!("numa-doc-{}", std::process::id()));
    /// for (id, cpus, distance) in [(0, "0-3,8-11", "10 20"), (2, "4-7", "20 10")] {
    ///     let dir = root.join(format!("devices/system/node/node{id}"));
    ///     fs::create_dir_all(&dir)?;
    ///     fs::write(dir.join("cpulist"), format!("{cpus}\n"))?;
    ///     fs::write(dir.join("distance"), format!("{distance}\n"))?;
    /// }
    /// let topology = NumaTopology::from_sysfs(&root)?;
    /// fs::remove_dir_all(&root)?;
    ///
    /// assert_eq!(topology.node_count(), 2);
    /// assert_eq!(topology.sysfs_id(1), Some(2)); // node2 is index 1
    /// assert_eq!(topology.cpus_of_node(0), &[0, 1, 2, 3, 8, 9, 10, 11]);
    /// assert_eq!(topology.node_of_cpu(5), Some(1));
    /// assert_eq!(topology.distance(0, 1), Some(20));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_sysfs(root: &Path) -> io::Result<NumaTopology> {
        let dir = root.join("devices/system/node");
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Self::single_node(allowed_cpus())),
            Err(e) => return Err(at(&dir, e)),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let name = entry.map_err(|e| at(&dir, e))?.file_name();
            if let Some(id) = name.to_str().and_then(|n| n.strip_prefix("node")).and_then(parse_number) {
                ids.push(id);
            }
        }
        if ids.is_empty() {
            return Ok(Self::single_node(allowed_cpus()));
        }
        ids.sort_unstable();
        let mut nodes = Vec::with_capacity(ids.len());
        for (index, &sysfs_id) in ids.iter().enumerate() {
            let node_dir = dir.join(format!("node{sysfs_id}"));
            let cpulist = node_dir.join("cpulist");
            let cpus = parse_cpulist(&read(&cpulist)?).map_err(|why| invalid(&cpulist, why))?;
            if let Some(cpu) = cpus.iter().find(|&&c| nodes.iter().any(|n: &NumaNode| n.cpus.binary_search(&c).is_ok()))
            {
                return Err(invalid(&cpulist, format!("CPU {cpu} is also listed by an earlier node")));
            }
            let distance = node_dir.join("distance");
            let distances = parse_distances(&read(&distance)?, ids.len()).map_err(|why| invalid(&distance, why))?;
            nodes.push(NumaNode { index, sysfs_id, cpus, distances });
        }
        Ok(NumaTopology { nodes: nodes.into(), fallback: false })
    }

    /// One node, index 0 and sysfs id 0, holding `cpus`.
    fn single_node(cpus: Vec<usize>) -> NumaTopology {
        let node = NumaNode { index: 0, sysfs_id: 0, cpus, distances: vec![LOCAL_DISTANCE] };
        NumaTopology { nodes: Arc::new([node]), fallback: true }
    }

    /// Whether this is the single node made up for want of a node
    /// directory in sysfs (see the [module docs](self#containers)) rather
    /// than the machine's real topology.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::perf::numa::get_numa_topology;
    ///
    /// let topology = get_numa_topology();
    /// if topology.is_fallback() {
    ///     assert_eq!(topology.node_count(), 1);
    /// }
    /// ```
    pub fn is_fallback(&self) -> bool {
        self.fallback
    }

    /// How many nodes there are, memory-only ones included; at least 1.
    /// Valid node indices are `0..node_count()`.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::perf::numa::get_numa_topology;
    ///
    /// assert!(get_numa_topology().node_count() >= 1);
    /// ```
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The nodes in index order.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::perf::numa::get_numa_topology;
    ///
    /// let topology = get_numa_topology();
    /// assert_eq!(topology.nodes().len(), topology.node_count());
    /// ```
    pub fn nodes(&self) -> std::slice::Iter<'_, NumaNode> {
        self.nodes.iter()
    }

    /// The node of index `node`, `None` past the last.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::perf::numa::get_numa_topology;
    ///
    /// let topology = get_numa_topology();
    /// assert_eq!(topology.node(0).unwrap().index(), 0);
    /// assert!(topology.node(topology.node_count()).is_none());
    /// ```
    pub fn node(&self, node: usize) -> Option<&NumaNode> {
        self.nodes.get(node)
    }

    /// The CPUs of `node` below 64 as a mask for
    /// [`ThreadBuilder::cpu_affinity`](crate::ThreadBuilder::cpu_affinity)
    /// (bit `n` = CPU `n`); 0 for a memory-only node or a node that does
    /// not exist. A `u64` cannot name CPUs 64 and up: on larger machines
    /// the mask holds only the node's CPUs below 64, and
    /// [`cpus_of_node`](Self::cpus_of_node) has them all.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::perf::numa::get_numa_topology;
    /// use preemptive_mlthreading_rust::ThreadBuilder;
    ///
    /// let topology = get_numa_topology();
    /// let here = topology.node_of_cpu(preemptive_mlthreading_rust::current_cpu().unwrap()).unwrap();
    /// let mask = topology.get_cpu_mask_for_node(here);
    /// let h = ThreadBuilder::new().cpu_affinity(mask).spawn(|| 7).unwrap();
    /// assert_eq!(h.join().unwrap(), 7);
    /// assert_eq!(topology.get_cpu_mask_for_node(topology.node_count()), 0);
    /// ```
    pub fn get_cpu_mask_for_node(&self, node: usize) -> u64 {
        self.node(node).map_or(0, NumaNode::cpu_mask)
    }

    /// All CPUs of `node` in ascending order; empty for a memory-only node
    /// or a node that does not exist.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::perf::numa::get_numa_topology;
    ///
    /// let topology = get_numa_topology();
    /// let cpu = preemptive_mlthreading_rust::current_cpu().unwrap();
    /// assert!((0..topology.node_count()).any(|node| topology.cpus_of_node(node).contains(&cpu)));
    /// ```
    pub fn cpus_of_node(&self, node: usize) -> &[usize] {
        self.node(node).map_or(&[], NumaNode::cpus)
    }

    /// The index of the node `cpu` belongs to; `None` for a CPU no node
    /// lists (one that does not exist, or is offline).
    ///
    /// ```
    /// use preemptive_mlthreading_rust::perf::numa::get_numa_topology;
    ///
    /// let topology = get_numa_topology();
    /// for node in 0..topology.node_count() {
    ///     for &cpu in topology.cpus_of_node(node) {
    ///         assert_eq!(topology.node_of_cpu(cpu), Some(node));
    ///     }
    /// }
    /// assert_eq!(topology.node_of_cpu(usize::MAX), None);
    /// ```
    pub fn node_of_cpu(&self, cpu: usize) -> Option<usize> {
        self.nodes.iter().position(|n| n.cpus.binary_search(&cpu).is_ok())
    }

    /// The kernel's distance from node `a` to node `b` (indices), from the
    /// sysfs distance matrix: [`LOCAL_DISTANCE`] (10) from a node to
    /// itself, and for example 21 across the sockets of a two-socket
    /// server. `None` if either node does not exist. The fallback node is
    /// 10 from itself.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::perf::numa::get_numa_topology;
    ///
    /// let topology = get_numa_topology();
    /// assert_eq!(topology.distance(0, 0), Some(10));
    /// assert_eq!(topology.distance(0, topology.node_count()), None);
    /// ```
    pub fn distance(&self, a: usize, b: usize) -> Option<u32> {
        self.node(a)?.distances.get(b).copied()
    }

    /// The kernel's id of node `node` (see [`NumaNode::sysfs_id`]).
    ///
    /// ```
    /// use preemptive_mlthreading_rust::perf::numa::get_numa_topology;
    ///
    /// let topology = get_numa_topology();
    /// let id = topology.sysfs_id(0).unwrap();
    /// assert_eq!(topology.node_of_sysfs_id(id), Some(0));
    /// ```
    pub fn sysfs_id(&self, node: usize) -> Option<usize> {
        self.node(node).map(NumaNode::sysfs_id)
    }

    /// The index of the node the kernel calls `id`; `None` if no node has
    /// that id.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::perf::numa::get_numa_topology;
    ///
    /// assert_eq!(get_numa_topology().node_of_sysfs_id(usize::MAX), None);
    /// ```
    pub fn node_of_sysfs_id(&self, id: usize) -> Option<usize> {
        self.nodes.binary_search_by_key(&id, NumaNode::sysfs_id).ok()
    }
}

/// The topology read once from `/sys`.
fn live() -> &'static NumaTopology {
    static LIVE: OnceLock<NumaTopology> = OnceLock::new();
    LIVE.get_or_init(|| {
        NumaTopology::from_sysfs(Path::new("/sys")).unwrap_or_else(|e| {
            log::warn!("NUMA topology unreadable, taking one node with every CPU: {e}");
            NumaTopology::single_node(allowed_cpus())
        })
    })
}

/// This machine's NUMA topology, read from `/sys` on the first call and
/// kept: CPU or memory hot-plug later is not seen. Never fails: where sysfs
/// has no node directory, or it cannot be read (which is logged), the
/// answer is a [single node](NumaTopology::is_fallback) holding every CPU
/// this process may run on.
///
/// ```
/// use preemptive_mlthreading_rust::perf::numa::get_numa_topology;
///
/// let topology = get_numa_topology();
/// for node in 0..topology.node_count() {
///     println!("node {node}: CPUs {:?}, mask {:#x}", topology.cpus_of_node(node), topology.get_cpu_mask_for_node(node));
/// }
/// ```
pub fn get_numa_topology() -> NumaTopology {
    live().clone()
}

/// The node (index) of the CPU the caller is running on now, from the
/// `getcpu(2)` syscall; failing that, the node of `sched_getcpu`'s CPU in
/// the topology; failing both, 0. A thread that is not pinned can move to
/// another node right after; pin it (with
/// [`ThreadBuilder::cpu_affinity`](crate::ThreadBuilder::cpu_affinity)
/// and [`NumaTopology::get_cpu_mask_for_node`]) for the answer to stay
/// true.
///
/// ```
/// use preemptive_mlthreading_rust::perf::numa::{get_current_node, get_numa_topology};
/// use preemptive_mlthreading_rust::ThreadBuilder;
///
/// let here = get_current_node();
/// let there = ThreadBuilder::new()
///     .cpu_affinity(get_numa_topology().get_cpu_mask_for_node(here))
///     .spawn(get_current_node)
///     .unwrap()
///     .join()
///     .unwrap();
/// assert_eq!(there, here);
/// ```
pub fn get_current_node() -> usize {
    let topology = live();
    let mut cpu: c_uint = 0;
    let mut node: c_uint = 0;
    // SAFETY: getcpu writes one unsigned int through each of the two
    // pointers, which point to our locals; the third argument (a cache the
    // kernel ignores since 2.6.24) may be null.
    let r = unsafe {
        libc::syscall(libc::SYS_getcpu, &mut cpu as *mut c_uint, &mut node as *mut c_uint, ptr::null_mut::<c_void>())
    };
    if r == 0
        && let Some(index) = topology.node_of_sysfs_id(node as usize).or_else(|| topology.node_of_cpu(cpu as usize))
    {
        return index;
    }
    current_cpu().and_then(|c| topology.node_of_cpu(c)).unwrap_or(0)
}

/// The same as [`get_current_node`], under the other name the tuning
/// guide uses.
///
/// ```
/// use preemptive_mlthreading_rust::perf::numa::{get_current_numa_node, get_numa_topology};
///
/// assert!(get_current_numa_node() < get_numa_topology().node_count());
/// ```
pub fn get_current_numa_node() -> usize {
    get_current_node()
}

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
/// NUMA node `node` (an index, see the [module docs](self#node-numbers)):
/// the pages come from that node's memory when first touched.
///
/// Fails with [`NumaError::NoSuchNode`] if `node` is not below
/// [`node_count`](NumaTopology::node_count) (checked first),
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

/// `e` with `path` in front of its message.
fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn invalid(path: &Path, why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{}: {why}", path.display()))
}

fn read(path: &Path) -> io::Result<String> {
    fs::read_to_string(path).map_err(|e| at(path, e))
}

/// A decimal number of digits only (no sign, no space).
fn parse_number(s: &str) -> Option<usize> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The CPUs of a kernel cpulist (`0-3,8-11`, `0,2`, `` for none), sorted
/// and without repeats; what is wrong with it otherwise.
fn parse_cpulist(text: &str) -> Result<Vec<usize>, String> {
    let text = text.trim();
    let mut cpus = Vec::new();
    if text.is_empty() {
        return Ok(cpus);
    }
    for item in text.split(',') {
        let (lo, hi) = item.split_once('-').unwrap_or((item, item));
        let (Some(lo), Some(hi)) = (parse_number(lo), parse_number(hi)) else {
            return Err(format!("malformed cpulist {text:?}: {item:?} is neither a CPU number nor a range `a-b`"));
        };
        if lo > hi {
            return Err(format!("malformed cpulist {text:?}: range {item:?} runs backwards"));
        }
        if hi >= MAX_CPUS {
            return Err(format!("malformed cpulist {text:?}: CPU {hi} is beyond any kernel's limit ({MAX_CPUS})"));
        }
        cpus.extend(lo..=hi);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

/// A node's row of the distance matrix, which must have one entry per
/// node; what is wrong with it otherwise.
fn parse_distances(text: &str, nodes: usize) -> Result<Vec<u32>, String> {
    let row = text
        .split_whitespace()
        .map(|d| {
            d.parse::<u32>().map_err(|_| format!("malformed distance row {:?}: {d:?} is not a number", text.trim()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if row.len() != nodes {
        return Err(format!("distance row {:?} has {} entries for {nodes} nodes", text.trim(), row.len()));
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpulists_parse_ranges_singles_and_nothing() {
        assert_eq!(parse_cpulist("0-3,8-11\n").unwrap(), [0, 1, 2, 3, 8, 9, 10, 11]);
        assert_eq!(parse_cpulist("0,2").unwrap(), [0, 2]);
        assert_eq!(parse_cpulist("5").unwrap(), [5]);
        assert_eq!(parse_cpulist("").unwrap(), Vec::<usize>::new());
        assert_eq!(parse_cpulist("\n").unwrap(), Vec::<usize>::new());
        assert_eq!(parse_cpulist("4-5,0-1,5").unwrap(), [0, 1, 4, 5]);
    }

    #[test]
    fn malformed_cpulists_say_what_is_wrong() {
        for (text, why) in [
            ("0-3,x", "\"x\" is neither"),
            ("0-", "\"0-\" is neither"),
            ("-3", "\"-3\" is neither"),
            ("0,,2", "\"\" is neither"),
            ("0-3:2/4", "is neither"),
            (" 1 , 2", "is neither"),
            ("7-3", "runs backwards"),
            ("0-4294967295", "beyond any kernel's limit"),
            ("99999999999999999999999", "is neither"),
        ] {
            let err = parse_cpulist(text).unwrap_err();
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }

    #[test]
    fn distance_rows_need_one_number_per_node() {
        assert_eq!(parse_distances("10 21\n", 2).unwrap(), [10, 21]);
        assert!(parse_distances("10 21", 3).unwrap_err().contains("2 entries for 3 nodes"));
        assert!(parse_distances("10 x", 2).unwrap_err().contains("\"x\" is not a number"));
        assert!(parse_distances("", 1).unwrap_err().contains("0 entries"));
    }

    #[test]
    fn masks_leave_out_cpus_from_64() {
        let node = NumaNode { index: 0, sysfs_id: 0, cpus: vec![0, 63, 64, 100], distances: vec![10] };
        assert_eq!(node.cpu_mask(), 1 | 1 << 63);
    }

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
