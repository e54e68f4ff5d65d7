//! Fixed-size buffer pools from the tuning guide: a small and a medium
//! object class, each with a capacity, and per-CPU caches.
//!
//! A [`PoolBuffer`] derefs to a `[u8]` of its class's object size and goes
//! back to a pool when dropped. With `enable_per_cpu_pools` each worker
//! (each OS thread: the workers are pinned one per CPU) keeps a small cache
//! of free buffers, so that an allocate and a free on the same worker touch
//! no shared memory; beyond it, and without per-CPU pools, buffers go
//! through a lock-free shared free list. A buffer freed on another worker
//! than the one it came from simply joins that worker's cache: buffers of a
//! class are interchangeable. (A green thread's OS thread is its worker's
//! host, and a preempted thread keeps its OS thread, so the per-thread
//! cache is never used by two threads at once.)
//!
//! **Capacity** is the most buffers of a class that exist at once, in use
//! or cached: `allocate_*` makes a new one only below it, and is then an
//! [`PoolError::Exhausted`] naming the field to raise. Buffers cached by a
//! worker that is idle count too, so a pool can report exhaustion while a
//! few buffers sit in another worker's cache (at most
//! [`CPU_CACHE`] per worker and class).
//!
//! **Initialisation**: allocating before [`init_memory_pools`] uses
//! [`MemoryPoolConfig::default`]. A later `init_memory_pools` replaces the
//! pools: buffers of the old ones still in use are freed to the allocator
//! when dropped, and the new capacities count from zero.
//!
//! ```
//! use preemptive_mlthreading_rust::perf::memory_pools::{
//!     allocate_from_medium_pool, allocate_from_small_pool, init_memory_pools, MemoryPoolConfig,
//! };
//!
//! init_memory_pools(MemoryPoolConfig { small_object_size: 48, ..MemoryPoolConfig::default() });
//! let mut small = allocate_from_small_pool().unwrap();
//! assert_eq!(small.len(), 48);
//! small[0] = 7;
//! let medium = allocate_from_medium_pool().unwrap();
//! assert_eq!(medium.len(), 1024);
//! drop(small); // back to this worker's cache
//! assert_eq!(allocate_from_small_pool().unwrap()[0], 7, "reused, not zeroed");
//! ```

use crossbeam_queue::ArrayQueue;
use std::cell::RefCell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Free buffers a worker keeps per class before it returns them to the
/// shared list.
pub const CPU_CACHE: usize = 32;

/// The two classes' sizes and capacities (the guide's fields).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryPoolConfig {
    /// Bytes of a small buffer.
    pub small_object_size: usize,
    /// Most small buffers in existence at once.
    pub small_pool_capacity: usize,
    /// Bytes of a medium buffer.
    pub medium_object_size: usize,
    /// Most medium buffers in existence at once.
    pub medium_pool_capacity: usize,
    /// Per-worker caches of free buffers (see the module docs).
    pub enable_per_cpu_pools: bool,
}

impl Default for MemoryPoolConfig {
    /// The guide's figures: 1000 buffers of 64 bytes, 100 of 1 KiB,
    /// per-CPU caches on.
    fn default() -> Self {
        MemoryPoolConfig {
            small_object_size: 64,
            small_pool_capacity: 1000,
            medium_object_size: 1024,
            medium_pool_capacity: 100,
            enable_per_cpu_pools: true,
        }
    }
}

/// Why a buffer could not be had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolError {
    /// The class has `capacity` buffers in existence already.
    Exhausted {
        /// `"small"` or `"medium"`.
        pool: &'static str,
        /// The [`MemoryPoolConfig`] field that bounds it.
        field: &'static str,
        /// Its value.
        capacity: usize,
    },
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::Exhausted { pool, field, capacity } => {
                write!(f, "the {pool} memory pool is exhausted: {capacity} buffers are in use or cached; raise {field}")
            }
        }
    }
}

impl std::error::Error for PoolError {}

/// One class: its size, capacity, count and shared free list.
struct Class {
    /// Which `init_memory_pools` made it ([`GENERATION`]).
    generation: u64,
    name: &'static str,
    field: &'static str,
    size: usize,
    capacity: usize,
    per_cpu: bool,
    existing: AtomicUsize,
    free: ArrayQueue<Box<[u8]>>,
}

impl Class {
    fn new(name: &'static str, field: &'static str, size: usize, capacity: usize, per_cpu: bool) -> Class {
        Class {
            generation: GENERATION.load(Ordering::Relaxed),
            name,
            field,
            size,
            capacity,
            per_cpu,
            existing: AtomicUsize::new(0),
            free: ArrayQueue::new(capacity.max(1)),
        }
    }

    /// The slow path: the shared free list, or a new buffer below the
    /// capacity.
    fn allocate(&'static self, which: usize) -> Result<PoolBuffer, PoolError> {
        if let Some(b) = self.free.pop() {
            return Ok(PoolBuffer { bytes: Some(b), class: self, which });
        }
        let mut n = self.existing.load(Ordering::Relaxed);
        loop {
            if n >= self.capacity {
                return Err(PoolError::Exhausted { pool: self.name, field: self.field, capacity: self.capacity });
            }
            match self.existing.compare_exchange_weak(n, n + 1, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => n = now,
            }
        }
        let bytes = vec![0u8; self.size].into_boxed_slice();
        Ok(PoolBuffer { bytes: Some(bytes), class: self, which })
    }

    /// Takes back a buffer: into the caller's cache, else the shared list,
    /// else (neither has room) to the allocator.
    fn give_back(&'static self, which: usize, bytes: Box<[u8]>) {
        let bytes = if self.per_cpu {
            match CACHE.try_with(|c| c.borrow_mut().put(self, which, bytes)) {
                Ok(None) => return,
                Ok(Some(b)) => b,
                // The OS thread is exiting: its cache is gone.
                Err(_) => return self.forget_one(),
            }
        } else {
            bytes
        };
        if self.free.push(bytes).is_err() {
            self.forget_one();
        }
    }

    fn forget_one(&self) {
        self.existing.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The current pools; replaced by `init_memory_pools`.
struct Pools {
    small: &'static Class,
    medium: &'static Class,
}

static POOLS: RwLock<Option<Pools>> = RwLock::new(None);

/// Bumped by every `init_memory_pools`: a class of an older generation is
/// no longer current, checked without the lock.
static GENERATION: AtomicU64 = AtomicU64::new(0);

fn make(config: &MemoryPoolConfig) -> Pools {
    let c = config;
    Pools {
        small: Box::leak(Box::new(Class::new(
            "small",
            "small_pool_capacity",
            c.small_object_size,
            c.small_pool_capacity,
            c.enable_per_cpu_pools,
        ))),
        medium: Box::leak(Box::new(Class::new(
            "medium",
            "medium_pool_capacity",
            c.medium_object_size,
            c.medium_pool_capacity,
            c.enable_per_cpu_pools,
        ))),
    }
}

/// Sets up (or replaces: see the module docs) the pools.
pub fn init_memory_pools(config: MemoryPoolConfig) {
    let _np = crate::preempt::disable();
    let mut g = POOLS.write().unwrap_or_else(std::sync::PoisonError::into_inner);
    GENERATION.fetch_add(1, Ordering::Relaxed);
    *g = Some(make(&config));
}

fn class(medium: bool) -> &'static Class {
    let _np = crate::preempt::disable();
    {
        let g = POOLS.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(p) = g.as_ref() {
            return if medium { p.medium } else { p.small };
        }
    }
    let mut g = POOLS.write().unwrap_or_else(std::sync::PoisonError::into_inner);
    let p = g.get_or_insert_with(|| make(&MemoryPoolConfig::default()));
    if medium { p.medium } else { p.small }
}

/// A buffer of the small class (see the module docs).
pub fn allocate_from_small_pool() -> Result<PoolBuffer, PoolError> {
    allocate(0)
}

/// A buffer of the medium class (see the module docs).
pub fn allocate_from_medium_pool() -> Result<PoolBuffer, PoolError> {
    allocate(1)
}

/// Class `which` (0 small, 1 medium): the fast path takes a buffer from
/// the calling OS thread's cache in one visit to it; otherwise the current
/// class is looked up (and adopted by the cache) and asked.
#[inline]
fn allocate(which: usize) -> Result<PoolBuffer, PoolError> {
    let fast = CACHE.try_with(|c| {
        let mut c = c.borrow_mut();
        let class = c.classes[which].filter(|k| is_current(k))?;
        c.free[which].pop().map(|b| PoolBuffer { bytes: Some(b), class, which })
    });
    match fast {
        Ok(Some(buffer)) => Ok(buffer),
        _ => {
            let class = class(which == 1);
            if class.per_cpu {
                let _ = CACHE.try_with(|cache| cache.borrow_mut().adopt(class, which));
            }
            class.allocate(which)
        }
    }
}

/// Whether `c` is still a class of the current pools.
fn is_current(c: &Class) -> bool {
    c.generation == GENERATION.load(Ordering::Relaxed)
}

/// A buffer from a pool: `[u8]` of its class's size, returned on drop.
pub struct PoolBuffer {
    bytes: Option<Box<[u8]>>,
    /// Classes are never freed (a re-initialisation leaks the old pair's
    /// bookkeeping, a few hundred bytes), so buffers refer to them without
    /// a reference count.
    class: &'static Class,
    which: usize,
}

impl Deref for PoolBuffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.bytes.as_deref().unwrap_or(&[])
    }
}

impl DerefMut for PoolBuffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.bytes.as_deref_mut().unwrap_or(&mut [])
    }
}

impl fmt::Debug for PoolBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuffer").field("pool", &self.class.name).field("len", &self.len()).finish()
    }
}

impl Drop for PoolBuffer {
    fn drop(&mut self) {
        if let Some(b) = self.bytes.take() {
            if is_current(self.class) {
                self.class.give_back(self.which, b);
            } else {
                // Its pools were replaced: it goes to the allocator.
                self.class.forget_one();
            }
        }
    }
}

/// A worker's caches: the class each is for, and its free buffers.
struct CpuCache {
    classes: [Option<&'static Class>; 2],
    free: [Vec<Box<[u8]>>; 2],
}

impl CpuCache {
    const fn new() -> Self {
        CpuCache { classes: [None, None], free: [Vec::new(), Vec::new()] }
    }

    /// Starts caching for `class`; buffers of a replaced class are freed.
    fn adopt(&mut self, class: &'static Class, which: usize) {
        if !self.classes[which].is_some_and(|c| std::ptr::eq(c, class)) {
            if let Some(old) = self.classes[which].take() {
                for _ in self.free[which].drain(..) {
                    old.forget_one();
                }
            }
            self.classes[which] = Some(class);
        }
    }

    /// Keeps `b` if there is room; gives it back otherwise.
    fn put(&mut self, class: &Class, which: usize, b: Box<[u8]>) -> Option<Box<[u8]>> {
        if self.classes[which].is_some_and(|c| std::ptr::eq(c, class)) && self.free[which].len() < CPU_CACHE {
            self.free[which].push(b);
            return None;
        }
        Some(b)
    }
}

impl Drop for CpuCache {
    fn drop(&mut self) {
        // An OS thread ends: its cached buffers go back to the shared list.
        for which in 0..2 {
            if let Some(c) = self.classes[which].take() {
                for b in self.free[which].drain(..) {
                    if c.free.push(b).is_err() {
                        c.forget_one();
                    }
                }
            }
        }
    }
}

thread_local! {
    static CACHE: RefCell<CpuCache> = const { RefCell::new(CpuCache::new()) };
}
