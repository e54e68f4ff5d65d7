//! `perf::numa`: the topology read from recorded sysfs trees
//! (`tests/fixtures/numa`, described in its README) and from this machine,
//! node-bound memory checked with `get_mempolicy`, and the tuning guide's
//! NUMA examples.

use preemptive_mlthreading_rust::perf::numa::{
    LOCAL_DISTANCE, NodeBuffer, NumaError, NumaTopology, allocate_on_node, get_current_node, get_current_numa_node,
    get_numa_topology,
};
use preemptive_mlthreading_rust::sched::default_scheduler;
use preemptive_mlthreading_rust::{JoinHandle, MigrationPolicy, ThreadBuilder, current_cpu};
use std::error::Error;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/numa").join(name)
}

fn matrix(t: &NumaTopology) -> Vec<Vec<u32>> {
    (0..t.node_count()).map(|a| (0..t.node_count()).map(|b| t.distance(a, b).unwrap()).collect()).collect()
}

/// The CPUs this process may run on: its main thread's affinity mask.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain bits, valid when zeroed.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: writes at most size_of::<cpu_set_t>() bytes into `set`.
    let r = unsafe { libc::sched_getaffinity(libc::getpid(), size_of::<libc::cpu_set_t>(), &mut set) };
    assert_eq!(r, 0, "sched_getaffinity: {}", io::Error::last_os_error());
    // SAFETY: reads the set we own.
    (0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect()
}

/// Pins the calling OS thread to `cpu`.
fn pin_to(cpu: usize) {
    // SAFETY: cpu_set_t is plain bits, valid when zeroed.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: sets one bit of the set we own.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; the set is valid.
    let r = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
    assert_eq!(r, 0, "pinning to CPU {cpu}: {}", io::Error::last_os_error());
}

/// A sysfs tree written for one test under the temporary directory,
/// removed on drop.
struct Tree(PathBuf);

impl Tree {
    /// `nodes`: (id, cpulist, distance row).
    fn new(name: &str, nodes: &[(usize, &str, &str)]) -> Tree {
        let root = std::env::temp_dir().join(format!("pmt-numa-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for &(id, cpus, distance) in nodes {
            let dir = root.join(format!("devices/system/node/node{id}"));
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("cpulist"), format!("{cpus}\n")).unwrap();
            fs::write(dir.join("distance"), format!("{distance}\n")).unwrap();
        }
        Tree(root)
    }

    fn node_file(&self, id: usize, file: &str) -> PathBuf {
        self.0.join(format!("devices/system/node/node{id}/{file}"))
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_two_socket_intel_box_has_interleaved_cpus() {
    let t = NumaTopology::from_sysfs(&fixture("two_socket")).unwrap();
    assert!(!t.is_fallback());
    assert_eq!(t.node_count(), 2);
    assert_eq!(t.nodes().map(|n| n.sysfs_id()).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(t.cpus_of_node(0), (0..8).chain(16..24).collect::<Vec<_>>());
    assert_eq!(t.cpus_of_node(1), (8..16).chain(24..32).collect::<Vec<_>>());
    assert_eq!(t.get_cpu_mask_for_node(0), 0x00ff_00ff);
    assert_eq!(t.get_cpu_mask_for_node(1), 0xff00_ff00);
    assert_eq!(t.get_cpu_mask_for_node(2), 0);
    assert!(t.cpus_of_node(2).is_empty());
    for (cpu, node) in [(0, Some(0)), (7, Some(0)), (16, Some(0)), (23, Some(0)), (8, Some(1)), (24, Some(1))] {
        assert_eq!(t.node_of_cpu(cpu), node, "CPU {cpu}");
    }
    assert_eq!(t.node_of_cpu(31), Some(1));
    assert_eq!(t.node_of_cpu(32), None);
    assert_eq!(matrix(&t), [[10, 21], [21, 10]]);
    assert_eq!(t.distance(0, 2), None);
    assert_eq!(t.distance(2, 0), None);
}

#[test]
fn sparse_ids_and_a_memory_only_node_are_indexed_densely() {
    let t = NumaTopology::from_sysfs(&fixture("four_node")).unwrap();
    assert!(!t.is_fallback());
    assert_eq!(t.node_count(), 4);
    assert_eq!(t.nodes().map(|n| (n.index(), n.sysfs_id())).collect::<Vec<_>>(), [(0, 0), (1, 1), (2, 3), (3, 4)]);
    assert_eq!((t.sysfs_id(2), t.sysfs_id(3), t.sysfs_id(4)), (Some(3), Some(4), None));
    assert_eq!((t.node_of_sysfs_id(3), t.node_of_sysfs_id(4)), (Some(2), Some(3)));
    assert_eq!(t.node_of_sysfs_id(2), None, "node2 is offline");

    assert_eq!(t.cpus_of_node(0), (0..16).chain(64..80).collect::<Vec<_>>());
    assert_eq!(t.cpus_of_node(2), (32..48).chain(96..112).collect::<Vec<_>>());
    assert!(t.cpus_of_node(3).is_empty(), "the CXL node has memory only");
    // CPUs from 64 do not fit in a u64 mask.
    assert_eq!(t.get_cpu_mask_for_node(0), 0xffff);
    assert_eq!(t.get_cpu_mask_for_node(1), 0xffff_0000);
    assert_eq!(t.get_cpu_mask_for_node(2), 0xffff_0000_0000);
    assert_eq!(t.get_cpu_mask_for_node(3), 0);

    assert_eq!(t.node_of_cpu(70), Some(0));
    assert_eq!(t.node_of_cpu(80), Some(1));
    assert_eq!(t.node_of_cpu(100), Some(2));
    assert_eq!(t.node_of_cpu(50), None, "CPUs of the offline node");
    assert_eq!(t.node_of_cpu(112), None);
    assert_eq!(matrix(&t), [[10, 12, 32, 50], [12, 10, 32, 50], [32, 32, 10, 60], [50, 50, 60, 10]]);
}

#[test]
fn without_a_node_directory_one_node_holds_every_allowed_cpu() {
    let t = NumaTopology::from_sysfs(&fixture("no_node_dir")).unwrap();
    assert!(t.is_fallback());
    assert_eq!(t.node_count(), 1);
    assert_eq!(t.sysfs_id(0), Some(0));
    assert_eq!(t.cpus_of_node(0), allowed_cpus());
    assert_eq!(t.distance(0, 0), Some(LOCAL_DISTANCE));
    assert_eq!(t.distance(0, 1), None);

    // An empty node directory is no different.
    let empty = Tree::new("empty", &[]);
    fs::create_dir_all(empty.0.join("devices/system/node")).unwrap();
    assert_eq!(NumaTopology::from_sysfs(&empty.0).unwrap(), t);
}

#[test]
fn a_malformed_cpulist_is_invalid_data_naming_the_file() {
    let err = NumaTopology::from_sysfs(&fixture("malformed_cpulist")).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    let msg = err.to_string();
    let path = fixture("malformed_cpulist").join("devices/system/node/node0/cpulist");
    assert!(msg.starts_with(&path.display().to_string()), "{msg}");
    assert!(msg.contains("\"8-\""), "{msg}");
}

#[test]
fn inconsistent_trees_are_refused_naming_the_file() {
    let twice = Tree::new("twice", &[(0, "0-3", "10 20"), (1, "3-5", "20 10")]);
    let err = NumaTopology::from_sysfs(&twice.0).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(err.to_string().starts_with(&twice.node_file(1, "cpulist").display().to_string()), "{err}");
    assert!(err.to_string().contains("CPU 3"), "{err}");

    let short = Tree::new("short", &[(0, "0", "10 20"), (1, "1", "20")]);
    let err = NumaTopology::from_sysfs(&short.0).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(err.to_string().starts_with(&short.node_file(1, "distance").display().to_string()), "{err}");
    assert!(err.to_string().contains("1 entries for 2 nodes"), "{err}");

    let missing = Tree::new("missing", &[(0, "0", "10")]);
    fs::remove_file(missing.node_file(0, "distance")).unwrap();
    let err = NumaTopology::from_sysfs(&missing.0).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert!(err.to_string().starts_with(&missing.node_file(0, "distance").display().to_string()), "{err}");
}

#[test]
fn the_live_topology_holds_every_allowed_cpu_once() {
    let t = get_numa_topology();
    assert_eq!(t, get_numa_topology(), "cached, the same every time");
    assert!(t.node_count() >= 1);
    println!("live topology: {} node(s), fallback {}", t.node_count(), t.is_fallback());
    for node in t.nodes() {
        println!("  node {} (sysfs node{}): CPUs {:?}", node.index(), node.sysfs_id(), node.cpus());
    }
    assert!(t.nodes().map(|n| n.sysfs_id()).collect::<Vec<_>>().windows(2).all(|w| w[0] < w[1]));
    for cpu in allowed_cpus() {
        let holders: Vec<usize> = (0..t.node_count()).filter(|&n| t.cpus_of_node(n).contains(&cpu)).collect();
        assert_eq!(holders.len(), 1, "CPU {cpu} is in nodes {holders:?}");
        assert_eq!(t.node_of_cpu(cpu), Some(holders[0]));
        if cpu < 64 {
            assert_ne!(t.get_cpu_mask_for_node(holders[0]) & 1 << cpu, 0, "CPU {cpu}");
        }
    }
    for a in 0..t.node_count() {
        assert_eq!(t.distance(a, a), Some(LOCAL_DISTANCE));
        for b in 0..t.node_count() {
            assert!(t.distance(a, b).unwrap() >= LOCAL_DISTANCE);
        }
        assert_eq!(t.distance(a, t.node_count()), None);
    }
}

#[test]
fn the_current_node_is_the_node_of_the_current_cpu() {
    let t = get_numa_topology();
    // On an OS thread of its own, pinned to each allowed CPU in turn, so
    // that the two answers cannot straddle a migration.
    std::thread::spawn(move || {
        for cpu in allowed_cpus() {
            pin_to(cpu);
            assert_eq!(current_cpu(), Some(cpu));
            assert_eq!(get_current_node(), t.node_of_cpu(cpu).unwrap(), "pinned to CPU {cpu}");
            assert_eq!(get_current_numa_node(), get_current_node());
        }
    })
    .join()
    .unwrap();
}

/// `get_mempolicy(2)` flags (`<linux/mempolicy.h>`; not in the libc crate).
const MPOL_F_NODE: libc::c_ulong = 1 << 0;
const MPOL_F_ADDR: libc::c_ulong = 1 << 1;

/// `get_mempolicy(2)` with `flags`: with `MPOL_F_ADDR` the policy mode and
/// nodemask of the page at `addr`; with `MPOL_F_ADDR | MPOL_F_NODE` (in
/// the mode) the node the page lies on, faulting it in.
fn mempolicy(addr: *const u8, flags: libc::c_ulong) -> (libc::c_int, [libc::c_ulong; 16]) {
    let got = try_mempolicy(addr, flags);
    assert!(got.is_ok(), "get_mempolicy: {:?}", got.err());
    got.unwrap()
}

/// [`mempolicy`], or the error where the kernel (or qemu-user, which has
/// no `get_mempolicy`) refuses.
fn try_mempolicy(addr: *const u8, flags: libc::c_ulong) -> io::Result<(libc::c_int, [libc::c_ulong; 16])> {
    let mut mode: libc::c_int = -1;
    let mut mask = [0 as libc::c_ulong; 16];
    // The kernel wants maxnode >= its node count and writes maxnode - 1
    // bits rounded up to words: 1024 bits, our 16 words.
    let maxnode = (mask.len() * libc::c_ulong::BITS as usize + 1) as libc::c_ulong;
    // SAFETY: writes one int to `mode` and at most `mask.len()` words to
    // `mask`, both ours; `addr` is only looked up (and with MPOL_F_NODE
    // its page faulted in), never written through.
    let r = unsafe {
        libc::syscall(libc::SYS_get_mempolicy, &mut mode as *mut libc::c_int, mask.as_mut_ptr(), maxnode, addr, flags)
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((mode, mask))
}

#[test]
fn a_node_buffer_is_bound_to_its_node() {
    const SIZE: usize = 1 << 20;
    let t = get_numa_topology();
    let mut buffer = match allocate_on_node(0, SIZE) {
        Ok(b) => b,
        Err(e @ NumaError::Unsupported { .. }) => {
            assert!(matches!(e.errno(), Some(libc::ENOSYS | libc::EPERM)), "{e:?}");
            assert!(e.to_string().contains("unsupported"), "{e}");
            println!("took the unsupported path: {e}");
            return;
        }
        Err(e) => panic!("allocate_on_node(0, 1 MiB): {e}"),
    };
    assert_eq!(buffer.len(), SIZE);
    assert_eq!(buffer.node(), 0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    assert_eq!(buffer.as_ptr() as usize % page, 0, "page-aligned");

    assert!(buffer.iter().all(|&b| b == 0), "zero-filled");
    for (i, p) in buffer.chunks_mut(page).enumerate() {
        p.fill(i as u8);
        p[page - 1] = !(i as u8);
    }
    for (i, p) in buffer.chunks(page).enumerate() {
        assert!(p[..page - 1].iter().all(|&b| b == i as u8), "page {i}");
        assert_eq!(p[page - 1], !(i as u8), "page {i}");
    }

    let id = t.sysfs_id(0).unwrap();
    let (mode, mask) = mempolicy(buffer.as_ptr(), MPOL_F_ADDR);
    assert_eq!(mode, libc::MPOL_BIND, "the policy of the buffer");
    let bits = libc::c_ulong::BITS as usize;
    let set: Vec<usize> = (0..mask.len() * bits).filter(|&n| mask[n / bits] & (1 << (n % bits)) != 0).collect();
    assert_eq!(set, [id], "the nodemask names node 0's sysfs id, and nothing else");
    for i in 0..SIZE / page {
        let (node, _) = mempolicy(buffer[i * page..].as_ptr(), MPOL_F_ADDR | MPOL_F_NODE);
        assert_eq!(node as usize, id, "page {i} lies on node 0");
    }
    println!("bound and verified: {SIZE} bytes on node 0 (sysfs node{id})");
}

/// Makes `mbind` fail with `errno` on the calling OS thread (and threads it
/// starts from now on) with a seccomp filter, as container runtimes do.
/// Fails where no filter can be installed (qemu-user refuses them).
fn refuse_mbind_on_this_thread(errno: i32) -> io::Result<()> {
    use libc::{BPF_ABS, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W, sock_filter};
    let op = |code: u32, jt: u8, jf: u8, k: u32| sock_filter { code: code as u16, jt, jf, k };
    let mut filter = [
        op(BPF_LD | BPF_W | BPF_ABS, 0, 0, 0), // seccomp_data.nr
        op(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, libc::SYS_mbind as u32),
        op(BPF_RET | BPF_K, 0, 0, libc::SECCOMP_RET_ERRNO | errno as u32),
        op(BPF_RET | BPF_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ];
    let prog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_mut_ptr() };
    // SAFETY: no_new_privs (required for an unprivileged filter) affects
    // only this thread and its future children.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0 as libc::c_ulong, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mode = libc::SECCOMP_MODE_FILTER as libc::c_ulong;
    // SAFETY: the kernel copies the program, which `prog` describes
    // exactly; the filter binds this thread only (no TSYNC flag).
    if unsafe { libc::prctl(libc::PR_SET_SECCOMP, mode, &prog as *const libc::sock_fprog) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[test]
fn mbind_refused_by_seccomp_is_the_unsupported_error() {
    for errno in [libc::EPERM, libc::ENOSYS] {
        // A thread of its own carries the filter and dies with it.
        let outcome = std::thread::spawn(move || {
            refuse_mbind_on_this_thread(errno).map(|()| allocate_on_node(0, 4096).map(|b| b.len()))
        })
        .join()
        .unwrap();
        let err = match outcome {
            Ok(allocated) => allocated.unwrap_err(),
            Err(e) => {
                println!("no seccomp filter could be installed here ({e}); not tested");
                return;
            }
        };
        assert_eq!(err, NumaError::Unsupported { errno });
        assert_eq!(err.errno(), Some(errno));
        let msg = err.to_string();
        assert!(msg.contains("unsupported") && msg.contains("SYS_NICE"), "{msg}");
    }
}

#[test]
fn bad_requests_say_what_to_change() {
    let count = get_numa_topology().node_count();
    let err = allocate_on_node(count, 4096).unwrap_err();
    assert_eq!(err, NumaError::NoSuchNode { node: count, node_count: count });
    let msg = err.to_string();
    assert!(msg.contains(&format!("node {count} does not exist")), "{msg}");
    assert!(msg.contains(&format!("{count} node(s), 0..={}", count - 1)), "{msg}");
    assert_eq!(err.errno(), None);

    let err = allocate_on_node(0, 0).unwrap_err();
    assert_eq!(err, NumaError::ZeroSize);
    assert!(err.to_string().contains("size 0"), "{err}");
    // The node is checked before the size.
    assert!(matches!(allocate_on_node(count, 0), Err(NumaError::NoSuchNode { .. })));

    let err = allocate_on_node(0, usize::MAX).unwrap_err();
    assert_eq!(err, NumaError::TooLarge { size: usize::MAX });
    assert!(err.to_string().contains(&usize::MAX.to_string()), "{err}");

    // Too much for the address space: mmap refuses, naming its errno.
    match allocate_on_node(0, usize::MAX / 2) {
        Err(e @ NumaError::Map { .. }) => {
            assert_eq!(e.errno(), Some(libc::ENOMEM), "{e}");
            assert!(e.to_string().contains("mmap of"), "{e}");
        }
        other => panic!("a mapping of half the address space: {other:?}"),
    }
}

#[test]
fn buffers_and_errors_cross_threads() {
    fn send_sync<T: Send + Sync + 'static>() {}
    fn error<T: Error + Send + Sync + 'static>() {}
    send_sync::<NodeBuffer>();
    send_sync::<NumaTopology>();
    error::<NumaError>();
    let boxed: Box<dyn Error + Send + Sync> = NumaError::ZeroSize.into();
    assert!(boxed.to_string().contains("size 0"));
}

// The tuning guide, "NUMA Optimization" / "Topology-Aware Allocation", with
// the names it leaves undefined filled in.

const BUFFER_SIZE: usize = 256 * 1024;

/// Fills the buffer and sums it back: what the guide's "process data
/// locally" stands for.
fn process_data_locally(mut buffer: NodeBuffer) -> u64 {
    for (i, b) in buffer.iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    buffer.iter().map(|&b| u64::from(b)).sum()
}

fn expected_sum(len: usize) -> u64 {
    (0..len).map(|i| (i % 251) as u64).sum()
}

/// Bit `n` set for the CPU of every worker of the default scheduler:
/// worker `i` is pinned to the `i`-th allowed CPU, round robin.
fn worker_mask() -> u64 {
    let workers = default_scheduler().unwrap().workers();
    allowed_cpus().into_iter().take(workers).filter(|&c| c < 64).fold(0, |m, c| m | 1 << c)
}

#[test]
fn guide_topology_aware_allocation() -> Result<(), Box<dyn Error + Send + Sync>> {
    let workers = worker_mask();
    let mut spawned = Vec::new();

    // Get NUMA topology
    let topology = get_numa_topology();

    // Create threads pinned to specific NUMA nodes
    for node in 0..topology.node_count() {
        let cpu_mask = topology.get_cpu_mask_for_node(node);
        if cpu_mask & workers == 0 {
            continue; // memory only, or no worker on its CPUs: spawn would fail
        }

        let handle = ThreadBuilder::new()
            .cpu_affinity(cpu_mask)
            .numa_node(node) // Prefer allocation on this node
            .spawn(move || {
                // Allocate thread-local memory on the same NUMA node
                let buffer = match allocate_on_node(node, BUFFER_SIZE) {
                    Err(NumaError::Unsupported { .. }) => return Ok((get_current_node(), None)),
                    other => other?,
                };
                assert_eq!(buffer.node(), node);

                // Process data with good NUMA locality
                Ok::<_, NumaError>((get_current_node(), Some(process_data_locally(buffer))))
            })?;
        spawned.push((node, handle));
    }

    assert!(!spawned.is_empty(), "no node has a CPU with a worker");
    for (node, handle) in spawned {
        let (ran_on, sum) = handle.join()??;
        assert_eq!(ran_on, node, "a thread pinned to node {node}'s CPUs runs there");
        if let Some(sum) = sum {
            assert_eq!(sum, expected_sum(BUFFER_SIZE));
        }
    }
    Ok(())
}

// "Issue: NUMA Effects", the same way.

type GuideError = Box<dyn Error + Send + Sync>;

fn process_locally(local_buffer: NodeBuffer) {
    assert_eq!(process_data_locally(local_buffer), expected_sum(BUFFER_SIZE));
}

// 2. Local memory allocation
fn numa_worker() -> Result<(), GuideError> {
    let current_node = get_current_numa_node();
    let local_buffer = allocate_on_node(current_node, BUFFER_SIZE)?;

    // Use local buffer for better performance
    process_locally(local_buffer);
    Ok(())
}

/// Joins `numa_worker` threads: where the kernel refuses `mbind`
/// (qemu-user, seccomp) their buffer is the explicit unsupported error.
fn join_numa_workers(handles: Vec<JoinHandle<Result<(), GuideError>>>) -> Result<(), GuideError> {
    for h in handles {
        if let Err(e) = h.join()? {
            match e.downcast_ref::<NumaError>() {
                Some(NumaError::Unsupported { .. }) => println!("unsupported path: {e}"),
                _ => return Err(e),
            }
        }
    }
    Ok(())
}

#[test]
fn guide_numa_effects() -> Result<(), GuideError> {
    let workers = worker_mask();
    let mut handles = Vec::new();

    // 1. NUMA-aware thread placement
    let topology = get_numa_topology();
    for node in 0..topology.node_count() {
        let cpu_mask = topology.get_cpu_mask_for_node(node);
        if cpu_mask & workers == 0 {
            continue;
        }

        handles.push(ThreadBuilder::new().cpu_affinity(cpu_mask).numa_node(node).spawn(numa_worker)?);
    }

    assert!(!handles.is_empty());
    join_numa_workers(handles)
}

// "Migration Avoidance", as written (with the topology and the imports it
// takes from the blocks before it).

#[test]
#[allow(clippy::needless_borrows_for_generic_args)] // the guide's `.name(&format!(..))`, as written
fn guide_migration_avoidance() -> Result<(), GuideError> {
    let topology = get_numa_topology();
    if topology.get_cpu_mask_for_node(0) & worker_mask() == 0 {
        println!("skipped: no worker on node 0's CPUs");
        return Ok(());
    }
    // Pin threads to specific NUMA nodes to avoid migration
    let node_0_threads: Vec<JoinHandle<_>> = (0..4)
        .map(|i| {
            ThreadBuilder::new()
                .name(&format!("node0_worker_{}", i))
                .cpu_affinity(topology.get_cpu_mask_for_node(0))
                .migration_policy(MigrationPolicy::Prohibited)
                .spawn(numa_worker)
        })
        .collect::<Result<Vec<_>, _>>()?;
    join_numa_workers(node_0_threads)
}

#[test]
fn a_numa_node_thread_runs_on_the_nodes_cpus_with_its_stack_bound_there() {
    let t = get_numa_topology();
    let workers = worker_mask();
    let Some(node) = (0..t.node_count()).find(|&n| t.get_cpu_mask_for_node(n) & workers != 0) else {
        println!("skipped: no node has a worker");
        return;
    };
    let id = t.sysfs_id(node).unwrap();
    let h = ThreadBuilder::new()
        .numa_node(node)
        .spawn(move || {
            let on_stack = [0u8; 64];
            let here = std::hint::black_box(&on_stack).as_ptr();
            // SAFETY: sched_getcpu has no preconditions.
            let cpu = unsafe { libc::sched_getcpu() } as usize;
            // Where mbind is refused (qemu-user), the stack has the
            // default policy (mode 0).
            (cpu, try_mempolicy(here, MPOL_F_ADDR))
        })
        .unwrap();
    let (cpu, policy) = h.join().unwrap();
    assert!(t.cpus_of_node(node).contains(&cpu), "ran on CPU {cpu}, not on node {node}");
    let (mode, mask) = match policy {
        Ok(policy) => policy,
        Err(e) => {
            println!("the stack's policy cannot be read here ({e}): placement checked only");
            return;
        }
    };
    if mode == libc::MPOL_DEFAULT {
        println!("the stack stayed unbound: mbind is refused here");
        return;
    }
    assert_eq!(mode, libc::MPOL_BIND, "the stack's policy");
    let bits = libc::c_ulong::BITS as usize;
    assert_ne!(mask[id / bits] & (1 << (id % bits)), 0, "bound to node {node} (sysfs node{id})");
    println!("numa_node({node}): ran on CPU {cpu}, stack bound to node{id}");
}

#[test]
fn numa_node_refuses_what_cannot_be_honoured() {
    let t = get_numa_topology();
    let missing = t.node_count();
    let e = ThreadBuilder::new().numa_node(missing).spawn(|| ()).unwrap_err();
    assert!(e.to_string().contains(&format!("numa_node({missing})")), "{e}");
    assert!(e.to_string().contains("nodes 0.."), "{e}");
    // An affinity outside the node: a CPU number no node holds.
    let node_mask = t.get_cpu_mask_for_node(0);
    if node_mask != 0 && node_mask != u64::MAX {
        let outside = !node_mask & (1 << 63 | 1 << 62);
        if outside != 0 {
            let e = ThreadBuilder::new().numa_node(0).cpu_affinity(outside).spawn(|| ()).unwrap_err();
            assert!(e.to_string().contains("name none of the node's CPUs"), "{e}");
        }
    }
}
