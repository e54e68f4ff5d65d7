use super::handle::Thread;
use super::join::{JoinHandle, Spawned};
use crate::cpu_set::CpuSet;
use crate::error::ThreadError;
use crate::runtime::migration::MigrationPolicy;
use crate::runtime::numa;
use crate::runtime::pool::Pool;
use crate::runtime::profile::ThreadProfile;
use crate::runtime::run_queue::MAX_PRIORITY;
use crate::runtime::task::{HUGE_STACK, NO_NUMA_NODE, TaskExtra, TaskSpec};
use crate::runtime::worker::Worker;
use crate::sched::sealed::Sealed;
use crate::sched::{RoundRobinScheduler, Scheduler};
use crate::stack::{self, DEFAULT_STACK_SIZE};
use std::sync::Arc;
use std::time::Duration;

/// Priority of a thread that names none: the middle of 0..=20.
pub const DEFAULT_PRIORITY: u8 = 10;

/// Configures and spawns a green thread.
///
/// Every setting is checked at [`spawn`](Self::spawn), which returns an
/// error saying what to change instead of panicking.
///
/// ```
/// use preemptive_mlthreading_rust::ThreadBuilder;
///
/// let h = ThreadBuilder::new()
///     .name("compute")
///     .stack_size(256 * 1024)
///     .priority(15)
///     .spawn(|| (1..=10u64).product::<u64>())
///     .unwrap();
/// assert_eq!(h.join().unwrap(), 3_628_800);
/// ```
///
/// # Thread-locals and OS-thread identity
///
/// A green thread runs on one of its worker's OS threads at a time, and
/// sees that OS thread's `thread_local!`s, errno, libc state and std's
/// per-thread state (its panic count, the stdout lock's owner).
///
/// - **Preemption never changes them under a thread.** A thread preempted
///   at any instruction keeps its OS thread until it resumes (the worker
///   goes on on another one), so a `RefCell` borrow of a thread-local, or
///   a lock libc holds, is never seen by a sibling, and code in libc or std
///   is preempted like any other.
/// - **A cooperative point may.** At a yield, park, sleep, join, a blocking
///   lock or channel operation, or a call that wakes a thread of higher
///   priority on the same worker (an unpark, a send, an unlock), the thread
///   switches in user space: a sibling may run next on the same OS thread,
///   and the thread may resume on another OS thread of its worker (after
///   a preemption on the worker, the worker runs on another OS thread).
///   Do not hold a reference into a thread-local, a `RefCell` borrow of
///   one, or a guard tied to its OS thread (`std::io::stdout().lock()`, a
///   `std::sync::MutexGuard`, which is `!Send` for that reason) across such
///   a point. The compiler may keep a thread-local's *address* across a
///   call within one function (after inlining), so do not touch the same
///   `thread_local!` on both sides of a cooperative point in one function
///   either: put each access in a function of its own marked
///   `#[inline(never)]`. [`GreenLocal`](crate::thread::GreenLocal) is
///   storage that follows the green thread instead, with none of this.
/// - A thread that unwinds a panic keeps its OS thread across cooperative
///   points too, so std's panic count stays its own (unless no OS thread
///   could be started for the worker to go on with: then it switches in
///   place, and a `log::warn!` says so).
///
/// # Preemption
///
/// A thread that runs longer than its time slice while another thread of
/// its priority waits is suspended wherever it is, unless it is inside a
/// [`preempt::disable`](crate::preempt::disable) scope (then when the scope
/// ends): see [`preempt`](crate::preempt). Its OS thread sleeps until the
/// thread resumes, on the same worker. A thread blocked in the kernel (a
/// blocking syscall, a contended `std::sync::Mutex`) keeps its OS thread
/// likewise, while the worker goes on with the others on another one.
#[derive(Clone)]
pub struct ThreadBuilder {
    name: Option<String>,
    stack_size: Option<usize>,
    priority: u8,
    /// The CPUs the thread may run on; None for any.
    cpus: Option<CpuSet>,
    /// The mask `cpus` came from, when `cpu_affinity` set it: its error
    /// names the mask.
    mask: Option<u64>,
    pool: Option<Arc<Pool>>,
    fpu: bool,
    vector: bool,
    fp_env: bool,
    prefetch: bool,
    time_slice: Option<Duration>,
    migration: MigrationPolicy,
    numa_node: Option<usize>,
    profiling: bool,
    huge_pages: bool,
}

impl std::fmt::Debug for ThreadBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadBuilder")
            .field("name", &self.name)
            .field("stack_size", &self.stack_size)
            .field("priority", &self.priority)
            .field("cpu_set", &self.cpus)
            .field("custom_scheduler", &self.pool.is_some())
            .field("fpu", &self.fpu)
            .field("vector", &self.vector)
            .field("preserve_fp_env", &self.fp_env)
            .field("stack_prefetch", &self.prefetch)
            .field("time_slice", &self.time_slice)
            .field("migration_policy", &self.migration)
            .field("numa_node", &self.numa_node)
            .field("profiling", &self.profiling)
            .field("huge_pages", &self.huge_pages)
            .finish()
    }
}

impl Default for ThreadBuilder {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether new builders prefetch the stack by default
/// ([`perf::context_switch_opt`](crate::perf::context_switch_opt)).
static DEFAULT_PREFETCH: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sets the default of [`ThreadBuilder::enable_stack_prefetch`] for
/// builders made from now on.
pub(crate) fn set_default_stack_prefetch(on: bool) {
    DEFAULT_PREFETCH.store(on, std::sync::atomic::Ordering::Relaxed);
}

impl ThreadBuilder {
    /// Defaults: no name, 64 KiB stack, priority 10, any CPU, the current
    /// scheduler, FP and vector registers saved, the FP control state left
    /// at Rust's default, no stack prefetch (unless
    /// [`perf::context_switch_opt`](crate::perf::context_switch_opt) turned
    /// it on for every thread).
    pub fn new() -> Self {
        ThreadBuilder {
            name: None,
            stack_size: None,
            priority: DEFAULT_PRIORITY,
            cpus: None,
            mask: None,
            pool: None,
            fpu: true,
            vector: true,
            fp_env: false,
            prefetch: DEFAULT_PREFETCH.load(std::sync::atomic::Ordering::Relaxed),
            profiling: false,
            huge_pages: false,
            time_slice: None,
            migration: MigrationPolicy::Allowed,
            numa_node: None,
        }
    }

    /// Names the thread (shown by [`Thread::name`] and in stack-overflow
    /// reports).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Stack size in bytes, rounded up to whole pages and at least
    /// [`MIN_STACK_SIZE`](crate::stack::MIN_STACK_SIZE). 0, or more than
    /// the machine can back, makes `spawn` fail. The stack is mapped when
    /// the thread first runs, with a guard page below it and the
    /// [signal reserve](crate::stack::signal_reserve) between the two, so
    /// all of `bytes` is the thread's own even under preemption.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Priority 0 (lowest) to [`MAX_PRIORITY`] (20, highest); above 20
    /// makes `spawn` fail. Levels are strict, round-robin within a level;
    /// see [`sched`](crate::sched) for how lower levels avoid starving.
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = priority;
        self
    }

    /// Runs the thread only on workers pinned to a CPU whose bit is set in
    /// `mask` (bit `n` = CPU `n`): [`cpu_set`](Self::cpu_set) with
    /// [`CpuSet::from_mask`], for CPUs 0 to 63. A mask naming none of the
    /// scheduler's workers' CPUs (0 included) makes `spawn` fail with
    /// [`ThreadError::InvalidAffinity`].
    ///
    /// ```
    /// use preemptive_mlthreading_rust::{ThreadBuilder, ThreadError, current_cpu};
    ///
    /// // Any of CPUs 0 to 63 that a worker runs on:
    /// let cpu = ThreadBuilder::new().cpu_affinity(u64::MAX).spawn(current_cpu).unwrap().join().unwrap();
    /// assert!(cpu.unwrap() < 64);
    /// let err = ThreadBuilder::new().cpu_affinity(0).spawn(|| ()).unwrap_err();
    /// assert!(matches!(err, ThreadError::InvalidAffinity { mask: 0, .. }));
    /// ```
    pub fn cpu_affinity(mut self, mask: u64) -> Self {
        self = self.cpu_set(CpuSet::from_mask(mask));
        self.mask = Some(mask);
        self
    }

    /// Runs the thread only on workers pinned to a CPU of `cpus`, any CPU
    /// number up to [`CpuSet::MAX_CPUS`]; the thread keeps to its worker
    /// when woken. Round-robin among those workers, as without it. Where
    /// the scheduler has no worker on a CPU of the set, `spawn` fails with
    /// [`ThreadError::InvalidCpuSet`], whose message says whether the set
    /// is empty, names no CPU this process may run on at all, or only CPUs
    /// the scheduler has no worker on (then give it more workers).
    ///
    /// ```
    /// use preemptive_mlthreading_rust::{CpuSet, ThreadBuilder, ThreadError, current_cpu};
    ///
    /// let here = current_cpu().unwrap();
    /// match ThreadBuilder::new().cpu_set(CpuSet::from_cpus([here]).unwrap()).spawn(current_cpu) {
    ///     Ok(h) => assert_eq!(h.join().unwrap(), Some(here)),
    ///     // With fewer workers than CPUs (a CPU quota), `here` may have none.
    ///     Err(e) => assert!(matches!(e, ThreadError::InvalidCpuSet { .. }), "{e}"),
    /// }
    /// let err = ThreadBuilder::new().cpu_set(CpuSet::new()).spawn(|| ()).unwrap_err();
    /// assert!(err.to_string().contains("empty CpuSet"), "{err}");
    /// ```
    pub fn cpu_set(mut self, cpus: CpuSet) -> Self {
        self.cpus = Some(cpus);
        self.mask = None;
        self
    }

    /// Runs the thread on the workers pinned to CPUs of NUMA node `node` (an
    /// index `0..node_count()` of [`perf::numa`](crate::perf::numa)), and
    /// binds its stack's memory to that node. With a
    /// [`cpu_affinity`](Self::cpu_affinity) too, the thread runs on the CPUs
    /// both allow. `spawn` fails when the node does not exist, when the
    /// affinity names no CPU of the node, or when no worker of the scheduler
    /// is pinned to one of the node's CPUs. Where the kernel refuses
    /// `mbind` (seccomp, an emulator), the stack is left unbound, as
    /// memory is on a machine without NUMA.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::perf::numa::{get_current_node, get_numa_topology};
    /// use preemptive_mlthreading_rust::ThreadBuilder;
    ///
    /// let node = get_numa_topology().node_count() - 1;
    /// let h = ThreadBuilder::new().numa_node(node).spawn(get_current_node).unwrap();
    /// assert_eq!(h.join().unwrap(), node);
    /// assert!(ThreadBuilder::new().numa_node(node + 1).spawn(|| ()).is_err());
    /// ```
    pub fn numa_node(mut self, node: usize) -> Self {
        self.numa_node = Some(node);
        self
    }

    /// Whether the runtime may move the thread to another worker once it
    /// is placed (default [`MigrationPolicy::Allowed`]). A thread with a
    /// [`cpu_affinity`](Self::cpu_affinity) stays on its workers whatever
    /// the policy.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::{MigrationPolicy, ThreadBuilder, current_cpu, yield_now};
    ///
    /// let h = ThreadBuilder::new()
    ///     .migration_policy(MigrationPolicy::Prohibited)
    ///     .spawn(|| {
    ///         let first = current_cpu();
    ///         yield_now();
    ///         (first, current_cpu())
    ///     })
    ///     .unwrap();
    /// let (before, after) = h.join().unwrap();
    /// assert_eq!(before, after, "its worker is pinned to one CPU, and it stays on that worker");
    /// ```
    pub fn migration_policy(mut self, policy: MigrationPolicy) -> Self {
        self.migration = policy;
        self
    }

    /// Spawns on `scheduler` instead of the current (or default) one.
    pub fn scheduler<S: Scheduler>(mut self, scheduler: S) -> Self {
        self.pool = Some(Arc::clone(scheduler.pool()));
        self
    }

    /// Whether the thread uses floating point. With `false` (and
    /// `enable_vector(false)`) a context switch skips the callee-saved FP
    /// registers: d8–d15 and FPCR on aarch64, fs0–fs11 and `frm` on
    /// riscv64, a promise that the thread keeps no FP value live across a
    /// switch. x86_64 has no callee-saved FP register, so there the flag
    /// changes nothing: its switch never saves FP data, and saves the
    /// control state only for [`preserve_fp_env`](Self::preserve_fp_env).
    ///
    /// ```
    /// use preemptive_mlthreading_rust::ThreadBuilder;
    ///
    /// let h = ThreadBuilder::new().enable_fpu(false).enable_vector(false).spawn(|| 6 * 7).unwrap();
    /// assert_eq!(h.join().unwrap(), 42);
    /// ```
    pub fn enable_fpu(mut self, enabled: bool) -> Self {
        self.fpu = enabled;
        self
    }

    /// Whether the thread uses SIMD/vector registers. See
    /// [`enable_fpu`](Self::enable_fpu): the FP part of a switch is skipped
    /// only when both are off.
    pub fn enable_vector(mut self, enabled: bool) -> Self {
        self.vector = enabled;
        self
    }

    /// Whether the thread changes the FP control state (rounding mode,
    /// flush-to-zero, exception masks: MXCSR and the x87 control word on
    /// x86_64, FPCR on aarch64, `frm` on riscv64) and must find its own
    /// again after every switch, while the threads it shares a worker with
    /// keep running under the default. Off by default: Rust code always runs
    /// under the default state (changing it under Rust code is undefined
    /// behaviour, which is why `_mm_setcsr` is deprecated), so only code that
    /// changes it in C or inline assembly and yields, locks or sleeps before
    /// changing it back needs this. It costs reading the state at every
    /// switch out (`stmxcsr` and `fnstcw` on x86_64, a visible share of a
    /// yield: bench/README.md, "FP control state in a switch"). A preemption
    /// needs no flag: it keeps the interrupted thread's whole FP state,
    /// control state included. Debug builds on x86_64 check the promise a
    /// thread without the flag makes: a changed state at its switch is
    /// logged (`log::error!`, with the thread's name) and reset.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::ThreadBuilder;
    ///
    /// let h = ThreadBuilder::new().preserve_fp_env(true).spawn(|| 0.1 + 0.2).unwrap();
    /// assert_eq!(h.join().unwrap(), 0.1 + 0.2);
    /// ```
    pub fn preserve_fp_env(mut self, preserve: bool) -> Self {
        self.fp_env = preserve;
        self
    }

    /// Prefetch the thread's saved context into the cache just before it is
    /// switched in: `prefetcht0` on x86_64, `prfm pldl1keep` on aarch64,
    /// nothing on riscv64 (its `riscv64gc` baseline has no prefetch
    /// instruction; Zicbop's would be). Measured in the bench (`yield100`'s
    /// `prefetch_ns`, `bench/README.md`): no effect on this machine, since
    /// the prefetch is issued only just before the switch loads the same
    /// line; it is kept for cores with longer memory latency, where the
    /// overlap with the run-queue bookkeeping may pay.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::ThreadBuilder;
    ///
    /// let h = ThreadBuilder::new().enable_stack_prefetch(true).spawn(|| 1 + 1).unwrap();
    /// assert_eq!(h.join().unwrap(), 2);
    /// ```
    pub fn enable_stack_prefetch(mut self, enabled: bool) -> Self {
        self.prefetch = enabled;
        self
    }

    /// Puts the thread's stack on huge pages: hugetlbfs pages when the
    /// system has some reserved (`vm.nr_hugepages`), else transparent huge
    /// pages (the stack advised `MADV_HUGEPAGE` on a huge-page-aligned
    /// mapping), else normal pages, said once with `log::info!`: never a
    /// spawn error for want of huge pages. The stack size is rounded up to
    /// whole huge pages (2 MiB on x86_64), its memory committed a huge
    /// page at a time as the thread touches it, and the stack is not
    /// recycled: each spawn maps one and each exit unmaps it. The guard
    /// page and the overflow report work as for any stack.
    ///
    /// Worth it for a thread that walks a deep stack (fewer TLB misses);
    /// most threads touch a few KiB of stack and are better off without.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::ThreadBuilder;
    ///
    /// let h = ThreadBuilder::new()
    ///     .stack_size(2 * 1024 * 1024)
    ///     .use_huge_pages(true)
    ///     .spawn(|| {
    ///         let deep = [7u8; 512 * 1024]; // half a MiB on the stack
    ///         deep.iter().map(|&b| b as u64).sum::<u64>()
    ///     })
    ///     .unwrap();
    /// assert_eq!(h.join().unwrap(), 7 * 512 * 1024);
    /// ```
    pub fn use_huge_pages(mut self, enabled: bool) -> Self {
        self.huge_pages = enabled;
        self
    }

    /// Records the thread's [`ThreadMetrics`](crate::ThreadMetrics): its
    /// switches in and out and why, run time, how long it waited to run
    /// each time it was runnable, its migrations between workers, and,
    /// with a [`ThreadProfiler`](crate::ThreadProfiler) tracking them, its
    /// hardware cache and branch counts and its last 64 switches. Readable
    /// with [`ThreadMetrics::for_thread`](crate::ThreadMetrics::for_thread)
    /// while it runs and after it finished (the last 4096 profiled threads
    /// to finish are kept).
    ///
    /// Each of its switches reads the clock (tens of ns; see
    /// `bench/README.md`, "Profiling cost"); threads without it pay nothing.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::{yield_now, ThreadBuilder, ThreadMetrics};
    ///
    /// let h = ThreadBuilder::new()
    ///     .enable_profiling(true)
    ///     .spawn(|| (0..10).for_each(|_| { yield_now(); }))
    ///     .unwrap();
    /// let id = h.thread().id();
    /// h.join().unwrap();
    /// let m = ThreadMetrics::for_thread(id).unwrap();
    /// assert!(m.switches_in >= 1 && m.run_time > std::time::Duration::ZERO);
    /// ```
    pub fn enable_profiling(mut self, enabled: bool) -> Self {
        self.profiling = enabled;
        self
    }

    /// This thread's time slice, instead of its scheduler's: how long it
    /// may run while another thread of its priority waits on its worker
    /// before it is preempted. Zero makes `spawn` fail; beyond `u64::MAX`
    /// nanoseconds (`Duration::MAX`) it is clamped, as
    /// [`RoundRobinScheduler::with_time_slice`](crate::RoundRobinScheduler::with_time_slice) does.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::{Duration, ThreadBuilder};
    ///
    /// let h = ThreadBuilder::new().time_slice(Duration::from_micros(500)).spawn(|| 1).unwrap();
    /// assert_eq!(h.join().unwrap(), 1);
    /// ```
    pub fn time_slice(mut self, slice: Duration) -> Self {
        self.time_slice = Some(slice);
        self
    }

    /// Starts the thread.
    pub fn spawn<F, T>(self, f: F) -> Result<JoinHandle<T>, ThreadError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if self.priority > MAX_PRIORITY {
            return Err(ThreadError::InvalidPriority { requested: self.priority, max: MAX_PRIORITY });
        }
        let stack_size = validate_stack_size(self.stack_size.unwrap_or(DEFAULT_STACK_SIZE))?;
        let slice_ns = match self.time_slice {
            None => 0,
            Some(d) if d.is_zero() => {
                return Err(ThreadError::Config("time_slice(0): a thread's time slice must be positive".into()));
            }
            Some(d) => d.as_nanos().min(u64::MAX as u128) as u64,
        };
        let pool = match self.pool {
            Some(pool) => pool,
            None => match Worker::current_pool() {
                Some(pool) => pool,
                None => Arc::clone(crate::sched::default_scheduler()?.pool()),
            },
        };
        let (cpus, numa_node) = match self.numa_node {
            None => (self.cpus, None),
            Some(node) => {
                let (cpus, id) = numa_placement(node, self.cpus.as_ref())?;
                (Some(cpus), Some(id))
            }
        };
        let spec = TaskSpec {
            extra: (self.name.is_some() || self.profiling)
                .then(|| Box::new(TaskExtra { name: self.name, profile: self.profiling.then(ThreadProfile::new) })),
            profiled: self.profiling,
            priority: self.priority,
            stack_size: if self.huge_pages { stack_size | HUGE_STACK } else { stack_size },
            save_fp: crate::arch::keeps_fp(self.fpu || self.vector, self.fp_env),
            movable: cpus.is_none() && self.migration != MigrationPolicy::Prohibited,
            within_node: self.migration == MigrationPolicy::WithinNode,
            numa_node: numa_node.unwrap_or(NO_NUMA_NODE),
            prefetch_stack: self.prefetch,
            slice_ns,
        };
        super::panic_note::install();
        let (task, body) =
            pool.spawn(spec, cpus.as_ref(), Spawned::new(f, self.profiling)).map_err(|e| match (e, self.mask) {
                // `cpu_affinity` reports as it always has, naming the mask.
                (ThreadError::InvalidCpuSet { worker_cpus, .. }, Some(mask)) => {
                    ThreadError::InvalidAffinity { mask, worker_cpus: worker_cpus.low_mask() }
                }
                (e, _) => e,
            })?;
        Ok(JoinHandle::new(Thread::green(task), body))
    }
}

/// The CPUs a thread of NUMA node `node` (a dense index) is placed on,
/// narrowed by the CPUs the caller named, and the node's kernel id for its
/// stack.
fn numa_placement(node: usize, cpus: Option<&CpuSet>) -> Result<(CpuSet, u16), ThreadError> {
    let topology = numa::get_numa_topology();
    let Some(id) = topology.sysfs_id(node) else {
        return Err(ThreadError::Config(format!(
            "numa_node({node}): this machine has NUMA nodes 0..{}",
            topology.node_count()
        )));
    };
    let node_cpus = CpuSet::from_cpus(topology.cpus_of_node(node).iter().copied())
        .map_err(|e| ThreadError::Config(format!("numa_node({node}): {e}")))?;
    if node_cpus.is_empty() {
        return Err(ThreadError::Config(format!("numa_node({node}): the node has no CPU to run a thread on")));
    }
    let placed = match cpus {
        None => node_cpus,
        Some(named) => {
            let both = node_cpus.iter().filter(|&c| named.contains(c));
            let both = CpuSet::from_cpus(both).map_err(|e| ThreadError::Config(format!("numa_node({node}): {e}")))?;
            if both.is_empty() {
                return Err(ThreadError::Config(format!(
                    "numa_node({node}) with CPUs {named}: they name none of the node's CPUs ({node_cpus})"
                )));
            }
            both
        }
    };
    let Some(id) = u16::try_from(id).ok().filter(|&id| id != NO_NUMA_NODE) else {
        return Err(ThreadError::Config(format!(
            "numa_node({node}): kernel node id {id} is beyond what stacks can be bound to"
        )));
    };
    Ok((placed, id))
}

/// Spawns `f` as a green thread with default settings.
///
/// ```
/// let h = preemptive_mlthreading_rust::spawn(|| 1 + 1).unwrap();
/// assert_eq!(h.join().unwrap(), 2);
/// ```
pub fn spawn<F, T>(f: F) -> Result<JoinHandle<T>, ThreadError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    ThreadBuilder::new().spawn(f)
}

fn validate_stack_size(requested: usize) -> Result<usize, ThreadError> {
    let max = max_stack_size();
    if requested == 0 || requested > max {
        return Err(ThreadError::InvalidStackSize { requested, max });
    }
    Ok(stack::round_size(requested))
}

/// The smaller of physical memory and the address-space limit, read once:
/// spawning must not cost two syscalls.
fn max_stack_size() -> usize {
    static MAX: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MAX.get_or_init(read_max_stack_size)
}

fn read_max_stack_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let pages = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) };
    let physical = (pages.max(1) as usize).saturating_mul(stack::page_size());
    match stack::address_space_limit() {
        Some(lim) => physical.min(lim as usize),
        None => physical,
    }
}

// Here rather than in `sched`, which sits below the thread API.
impl crate::WorkStealingScheduler {
    /// Spawns `f` on this scheduler with default settings.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::WorkStealingScheduler;
    ///
    /// let sched = WorkStealingScheduler::new().with_workers(1);
    /// assert_eq!(sched.spawn(|| 6 * 7).unwrap().join().unwrap(), 42);
    /// ```
    pub fn spawn<F, T>(&self, f: F) -> Result<JoinHandle<T>, ThreadError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        ThreadBuilder::new().scheduler(self.clone()).spawn(f)
    }
}

impl crate::sched::AnyScheduler {
    /// Spawns `f` on this scheduler with default settings.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sched::default_scheduler;
    ///
    /// let sched = default_scheduler().unwrap();
    /// assert_eq!(sched.spawn(|| 6 * 7).unwrap().join().unwrap(), 42);
    /// ```
    pub fn spawn<F, T>(&self, f: F) -> Result<JoinHandle<T>, ThreadError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        ThreadBuilder::new().scheduler(self.clone()).spawn(f)
    }
}

impl RoundRobinScheduler {
    /// Spawns `f` on this scheduler with default settings.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::RoundRobinScheduler;
    ///
    /// let sched = RoundRobinScheduler::new().with_workers(1);
    /// assert_eq!(sched.spawn(|| 6 * 7).unwrap().join().unwrap(), 42);
    /// ```
    pub fn spawn<F, T>(&self, f: F) -> Result<JoinHandle<T>, ThreadError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        ThreadBuilder::new().scheduler(self.clone()).spawn(f)
    }
}
