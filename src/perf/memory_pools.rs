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
//! class are interchangeable. The cache is the OS thread's: the fast
//! paths touch it only inside functions never inlined, so that no
//! thread-local address outlives a cooperative switch (see
//! `take_cached`), and a preempted thread keeps its OS thread.
//!
//! **Capacity** is the most buffers of a class that exist at once, in use
//! or cached: `allocate_*` makes a new one only below it, and is then an
//! [`PoolError::Exhausted`] naming the field to raise. Buffers cached by a
//! worker that is idle count too, so a pool can report exhaustion while a
//! few buffers sit in another worker's cache (at most
//! [`CPU_CACHE`] per worker and class).
//!
//! **Contents**: a new buffer is zeroed; a reused one holds what its last
//! user left, except its first word (a cache links free buffers through
//! it).
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
//! let at = small.as_ptr();
//! drop(small); // back to this worker's cache
//! assert_eq!(allocate_from_small_pool().unwrap().as_ptr(), at, "reused");
//! ```

use crossbeam_queue::ArrayQueue;
use std::alloc::Layout;
use std::cell::Cell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// A buffer of its class's size, as a thin pointer, allocated with the
/// class's layout (at least a word, word aligned: a free buffer holds the
/// link of its cache's list). Thin, so that handing one out is one word:
/// a two-word `Box<[u8]>` written as two stores and read back as one
/// 16-byte load stalls store forwarding on every allocate (bench/README.md,
/// "Memory pools against the allocators").
struct Raw(NonNull<u8>);

// SAFETY: a `Raw` owns its buffer, plain bytes, like the `Box<[u8]>` it
// came from.
unsafe impl Send for Raw {}

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
    /// 0 small, 1 medium: its cache's index.
    which: usize,
    name: &'static str,
    field: &'static str,
    size: usize,
    capacity: usize,
    per_cpu: bool,
    existing: AtomicUsize,
    free: ArrayQueue<Raw>,
}

impl Class {
    fn new(which: usize, field: &'static str, size: usize, capacity: usize, per_cpu: bool) -> Class {
        Class {
            generation: GENERATION.load(Ordering::Relaxed),
            which,
            name: if which == 0 { "small" } else { "medium" },
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
    fn allocate(&'static self) -> Result<PoolBuffer, PoolError> {
        if let Some(raw) = self.free.pop() {
            return Ok(PoolBuffer { raw: Some(raw), class: self });
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
        Ok(PoolBuffer { raw: Some(self.new_raw()), class: self })
    }

    /// How a buffer of this class is allocated: at least a word, word
    /// aligned, so that a free one can hold the link of a cache's list.
    fn layout(&self) -> Layout {
        Layout::from_size_align(self.size.max(size_of::<usize>()), align_of::<usize>()).expect("a buffer's layout")
    }

    /// A new zeroed buffer of this class's size.
    fn new_raw(&self) -> Raw {
        let layout = self.layout();
        // SAFETY: the layout is at least a word, never zero-sized.
        let p = unsafe { std::alloc::alloc_zeroed(layout) };
        Raw(NonNull::new(p).unwrap_or_else(|| std::alloc::handle_alloc_error(layout)))
    }

    /// Frees `raw` to the allocator, and counts it gone.
    fn destroy(&self, raw: Raw) {
        // SAFETY: `raw` came from `new_raw` of this class (buffers never
        // change class), so it was allocated with this layout, and owning
        // the `Raw` means nobody else holds it.
        unsafe { std::alloc::dealloc(raw.0.as_ptr(), self.layout()) };
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
            0,
            "small_pool_capacity",
            c.small_object_size,
            c.small_pool_capacity,
            c.enable_per_cpu_pools,
        ))),
        medium: Box::leak(Box::new(Class::new(
            1,
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
    if let Some(old) = g.replace(make(&config)) {
        // Buffers waiting in the old pools' shared lists are freed now;
        // those in use or cached are freed as they come back.
        for class in [old.small, old.medium] {
            while let Some(raw) = class.free.pop() {
                class.destroy(raw);
            }
        }
    }
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
#[inline]
pub fn allocate_from_small_pool() -> Result<PoolBuffer, PoolError> {
    allocate(0)
}

/// A buffer of the medium class (see the module docs).
#[inline]
pub fn allocate_from_medium_pool() -> Result<PoolBuffer, PoolError> {
    allocate(1)
}

/// Class `which` (0 small, 1 medium): the fast path takes a buffer from
/// the calling OS thread's cache (a pop off an intrusive list, no shared
/// memory but the generation word); otherwise the current class is looked
/// up (and adopted by the cache) and asked.
#[inline(always)]
fn allocate(which: usize) -> Result<PoolBuffer, PoolError> {
    // Two words out of the cache, in registers: a `PoolBuffer` built in
    // there would go through memory.
    match take_cached(which & 1) {
        Some((raw, class)) => Ok(PoolBuffer { raw: Some(Raw(raw)), class }),
        None => allocate_slow(which & 1),
    }
}

/// The fast path's access to the OS thread's cache, in a function of its
/// own that is never inlined: inlined into a caller that also frees a
/// buffer after a cooperative switch (`yield_now`), the compiler computed
/// the thread-local's address once, before the switch, and the free went
/// to the cache of the OS thread the green thread had left, while another
/// thread used it (`cargo test --release --test memory_pools` crashed on a
/// free-list link overwritten by a buffer's user). An asynchronous
/// preemption keeps the thread on its OS thread (README, "Preemption"),
/// so nothing else is needed.
#[inline(never)]
fn take_cached(which: usize) -> Option<(NonNull<u8>, &'static Class)> {
    FAST.with(|f| {
        let f = &f[which];
        let head = f.head.get();
        if head.is_null() {
            return None;
        }
        // SAFETY: a cache's class is set with its first buffer and classes
        // are never freed.
        let class = unsafe { &*f.class.get() };
        if !is_current(class) {
            return None;
        }
        // SAFETY: a free buffer of this cache, word aligned and at least a
        // word long: its first word holds the next one's address.
        f.head.set(unsafe { head.cast::<*mut u8>().read() });
        f.len.set(f.len.get() - 1);
        // SAFETY: `head` is not null (checked above).
        Some((unsafe { NonNull::new_unchecked(head) }, class))
    })
}

#[cold]
#[inline(never)]
fn allocate_slow(which: usize) -> Result<PoolBuffer, PoolError> {
    let class = class(which == 1);
    if class.per_cpu {
        adopt(class, which);
    }
    class.allocate()
}

/// Whether `c` is still a class of the current pools.
#[inline(always)]
fn is_current(c: &Class) -> bool {
    c.generation == GENERATION.load(Ordering::Relaxed)
}

/// A buffer from a pool: `[u8]` of its class's size, returned on drop.
pub struct PoolBuffer {
    /// None only while being dropped.
    raw: Option<Raw>,
    /// Classes are never freed (a re-initialisation leaks the old pair's
    /// bookkeeping, a few hundred bytes), so buffers refer to them without
    /// a reference count.
    class: &'static Class,
}

impl Deref for PoolBuffer {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        match &self.raw {
            // SAFETY: `raw` is a live buffer of `class.size` bytes that this
            // handle owns; the borrow of `self` bounds the slice's.
            Some(raw) => unsafe { std::slice::from_raw_parts(raw.0.as_ptr(), self.class.size) },
            None => &[],
        }
    }
}

impl DerefMut for PoolBuffer {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        match &self.raw {
            // SAFETY: as in `deref`, and `&mut self` makes it exclusive.
            Some(raw) => unsafe { std::slice::from_raw_parts_mut(raw.0.as_ptr(), self.class.size) },
            None => &mut [],
        }
    }
}

// SAFETY: a `PoolBuffer` owns its bytes (as a `Box<[u8]>` would) and the
// class it refers to is shared, thread-safe state.
unsafe impl Send for PoolBuffer {}
// SAFETY: `&PoolBuffer` gives only `&[u8]`.
unsafe impl Sync for PoolBuffer {}

impl fmt::Debug for PoolBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuffer").field("pool", &self.class.name).field("len", &self.len()).finish()
    }
}

impl Drop for PoolBuffer {
    #[inline]
    fn drop(&mut self) {
        let Some(raw) = self.raw.take() else { return };
        let (class, which) = (self.class, self.class.which & 1);
        if !(class.per_cpu && put_cached(which, class, &raw)) {
            drop_slow(class, raw);
        }
    }
}

/// The free's fast path: into the OS thread's cache, if it has room. Never
/// inlined, for the reason `take_cached` gives.
#[inline(never)]
fn put_cached(which: usize, class: &'static Class, raw: &Raw) -> bool {
    FAST.with(|f| {
        let f = &f[which];
        let n = f.len.get();
        if !std::ptr::eq(f.class.get(), class) || n >= CPU_CACHE {
            return false;
        }
        // SAFETY: our own buffer, word aligned and at least a word long;
        // from now on the cache owns it.
        unsafe { raw.0.as_ptr().cast::<*mut u8>().write(f.head.get()) };
        f.head.set(raw.0.as_ptr());
        f.len.set(n + 1);
        true
    })
}

/// A buffer the caller's cache cannot keep: to the shared free list, or
/// to the allocator when that is full or its pools were replaced.
#[cold]
#[inline(never)]
fn drop_slow(class: &'static Class, raw: Raw) {
    if !is_current(class) {
        return class.destroy(raw);
    }
    if let Err(raw) = class.free.push(raw) {
        class.destroy(raw);
    }
}

/// The calling OS thread's cache of one class: an intrusive list of free
/// buffers (each holds the next one's address in its first word), its
/// length and its class (null before the first buffer). No destructor, so
/// that reaching it is one thread-pointer-relative address; [`Flush`]
/// empties it when the OS thread ends.
struct Fast {
    head: Cell<*mut u8>,
    len: Cell<usize>,
    class: Cell<*const Class>,
}

impl Fast {
    const fn new() -> Self {
        Fast { head: Cell::new(std::ptr::null_mut()), len: Cell::new(0), class: Cell::new(std::ptr::null()) }
    }

    /// Takes every buffer off the list.
    fn drain(&self, mut each: impl FnMut(Raw)) {
        let mut p = self.head.replace(std::ptr::null_mut());
        self.len.set(0);
        while let Some(raw) = NonNull::new(p) {
            // SAFETY: a free buffer of this list: its first word is the link.
            p = unsafe { raw.as_ptr().cast::<*mut u8>().read() };
            each(Raw(raw));
        }
    }
}

/// Empties the calling OS thread's caches when it ends: their buffers go
/// back to the shared lists. Registered by the first [`adopt`].
struct Flush;

impl Drop for Flush {
    fn drop(&mut self) {
        let _ = FAST.try_with(|f| {
            for cache in f {
                let class = cache.class.replace(std::ptr::null());
                if !class.is_null() {
                    // SAFETY: classes are never freed.
                    let class = unsafe { &*class };
                    cache.drain(|raw| drop_slow(class, raw));
                }
            }
        });
    }
}

/// Starts caching class `which` on this OS thread for `class`; buffers of
/// a replaced class are freed.
fn adopt(class: &'static Class, which: usize) {
    let _ = FLUSH.try_with(|_| ());
    let _ = FAST.try_with(|f| {
        let f = &f[which];
        let old = f.class.get();
        if !std::ptr::eq(old, class) {
            if !old.is_null() {
                // SAFETY: classes are never freed.
                let old = unsafe { &*old };
                f.drain(|raw| old.destroy(raw));
            }
            f.class.set(class);
        }
    });
}

thread_local! {
    static FAST: [Fast; 2] = const { [Fast::new(), Fast::new()] };
    static FLUSH: Flush = const { Flush };
}
