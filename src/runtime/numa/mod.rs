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
use std::ffi::{c_uint, c_void};
use std::fs;
use std::io;
use std::path::Path;
use std::ptr;
use std::sync::{Arc, OnceLock};

mod memory;

pub use memory::{NodeBuffer, NumaError, allocate_on_node};
pub(crate) use memory::{bind, unbind};

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
pub(crate) fn parse_cpulist(text: &str) -> Result<Vec<usize>, String> {
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
}
