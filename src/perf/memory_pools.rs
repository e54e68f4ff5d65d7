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
//! class are interchangeable. The cache is the OS thread's, reached through
//! an address formed anew at each allocate and free, so that none outlives
//! a cooperative switch (see `cache`); a preempted thread keeps its OS
//! thread.
//!
//! **Capacity** is the most buffers of a class that exist at once, in use
//! or cached: `allocate_*` makes a new one only below it, and is then an
//! [`PoolError::Exhausted`] naming the field to raise. Cached buffers count
//! too. The caches are per OS thread, and a worker has several (a preempted
//! green thread keeps its own): each of the runtime's OS threads gives its
//! cache back before it sleeps, idle, so that buffers are out of reach
//! only in the cache of an OS thread that holds a preempted thread (until
//! that thread runs again), that runs threads which do not allocate
//! (until one does, or it sleeps), or of a plain OS thread of yours (until
//! it exits): at most [`CPU_CACHE`] per OS thread and class. Before, an
//! idle worker's threads kept theirs while they slept, and a pool whose
//! buffers all sat there stayed exhausted for good.
//!
//! **Contents**: a new buffer is zeroed; a reused one holds what its last
//! user left, except its first two words (a cache links free buffers
//! through them).
//!
//! **Size**: a buffer derefs to exactly its class's object size, but takes
//! at least two words of memory.
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
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

/// A buffer of its class's size, as a thin pointer, allocated with the
/// class's layout (at least two words, word aligned: a free buffer holds
/// the link and depth of its cache's list). Thin, so that handing one out is one word:
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
    /// Set when `init_memory_pools` replaces it: checked on the class's
    /// own cache line, where a global generation cost a load of its own.
    retired: AtomicBool,
    /// 0 small, 1 medium: its cache's index.
    which: usize,
    name: &'static str,
    field: &'static str,
    size: usize,
    capacity: usize,
    per_cpu: bool,
    existing: AtomicUsize,
    free: ArrayQueue<Raw>,
    /// Free buffers that the runtime's OS threads gave back from their
    /// caches before sleeping, linked through their first words (see
    /// [`give_back_cached`]); taken whole by [`Class::allocate`].
    orphans: AtomicPtr<u8>,
}

impl Class {
    fn new(which: usize, field: &'static str, size: usize, capacity: usize, per_cpu: bool) -> Class {
        Class {
            retired: AtomicBool::new(false),
            which,
            name: if which == 0 { "small" } else { "medium" },
            field,
            size,
            capacity,
            per_cpu,
            existing: AtomicUsize::new(0),
            free: ArrayQueue::new(capacity.max(1)),
            orphans: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// The slow path: the shared free list, the buffers sleeping OS
    /// threads gave back, or a new buffer below the capacity.
    fn allocate(&'static self) -> Result<PoolBuffer, PoolError> {
        if let Some(raw) = self.free.pop() {
            return Ok(PoolBuffer { raw: Some(raw), class: self });
        }
        if let Some(raw) = self.adopt_orphans() {
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

    /// Takes the whole chain of given-back buffers: the first for the
    /// caller, the rest to the shared free list.
    fn adopt_orphans(&self) -> Option<Raw> {
        let first = NonNull::new(self.orphans.swap(std::ptr::null_mut(), Ordering::Acquire))?;
        // SAFETY: a chain of free buffers of this class, ours since the
        // swap; each holds the next one's address in its first word.
        let mut p = unsafe { first.as_ptr().cast::<*mut u8>().read() };
        while let Some(raw) = NonNull::new(p) {
            // SAFETY: as above.
            p = unsafe { raw.as_ptr().cast::<*mut u8>().read() };
            if let Err(raw) = self.free.push(Raw(raw)) {
                self.destroy(raw);
            }
        }
        Some(Raw(first))
    }

    /// How a buffer of this class is allocated: at least two words, word
    /// aligned, so that a free one can hold a cache list's link and depth.
    fn layout(&self) -> Layout {
        Layout::from_size_align(self.size.max(2 * size_of::<usize>()), align_of::<usize>()).expect("a buffer's layout")
    }

    /// A new zeroed buffer of this class's size.
    fn new_raw(&self) -> Raw {
        let layout = self.layout();
        // SAFETY: the layout is at least two words, never zero-sized.
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
    if let Some(old) = g.replace(make(&config)) {
        // Buffers waiting in the old pools' shared lists are freed now;
        // those in use or cached are freed as they come back.
        for class in [old.small, old.medium] {
            class.retired.store(true, Ordering::Relaxed);
            while let Some(raw) = class.free.pop().or_else(|| class.adopt_orphans()) {
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
/// memory but the class's retired flag); otherwise the current class is looked
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

/// The fast path: a pop off the calling OS thread's cache, reached
/// through [`caches`], whose address is formed anew at each call (see
/// there for why).
#[inline(always)]
fn take_cached(which: usize) -> Option<(NonNull<u8>, &'static Class)> {
    let f = cache(which);
    // SAFETY: `cache` gives this OS thread's cache, which only this
    // module touches, only on this OS thread, and never across a switch.
    let head = unsafe { (*f).head };
    if head.is_null() {
        return None;
    }
    // SAFETY: a cache's class is set with its first buffer and classes
    // are never freed.
    let class = unsafe { &*(*f).class };
    if !is_current(class) {
        return None;
    }
    // SAFETY: `f` as above; `head` is a free buffer of this cache, word
    // aligned and at least two words long: its first word holds the next
    // one's address.
    unsafe { (*f).head = head.cast::<*mut u8>().read() };
    // SAFETY: `head` is not null (checked above).
    Some((unsafe { NonNull::new_unchecked(head) }, class))
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
    !c.retired.load(Ordering::Relaxed)
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
        // A class without per-CPU pools is never adopted by a cache, so
        // `put_cached` refuses its buffers.
        if !put_cached(which, class, &raw) {
            drop_slow(class, raw);
        }
    }
}

/// The free's fast path: into the calling OS thread's cache, if it has
/// room.
#[inline(always)]
fn put_cached(which: usize, class: &'static Class, raw: &Raw) -> bool {
    let f = cache(which);
    // SAFETY: as in `take_cached`.
    let (head, own) = unsafe { ((*f).head, std::ptr::eq((*f).class, class)) };
    if !own {
        return false;
    }
    // The list's length is kept in its head: a word less to update per
    // allocate, where a count in the cache was a load and a store more on
    // each side.
    let depth = if head.is_null() {
        0
    } else {
        // SAFETY: a free buffer of this cache: its second word is its depth.
        unsafe { head.cast::<usize>().add(1).read() }
    };
    if depth >= CPU_CACHE {
        return false;
    }
    // SAFETY: `f` as in `take_cached`; `raw` is our own buffer, word
    // aligned and at least two words long; from now on the cache owns it.
    unsafe {
        let p = raw.0.as_ptr().cast::<usize>();
        p.write(head as usize);
        p.add(1).write(depth + 1);
        (*f).head = raw.0.as_ptr();
    }
    true
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
/// buffers (each holds the next one's address in its first word and the
/// list's length from it on in its second) and its class (null before the
/// first buffer). All zero is an empty cache, which is how an OS thread's
/// block starts.
#[repr(C)]
struct Fast {
    head: *mut u8,
    class: *const Class,
}

const _: () = assert!(2 * size_of::<Fast>() <= crate::arch::os_thread_area::AREA_BYTES);

/// The calling OS thread's cache of class `which` (0 or 1), in the block
/// `arch::os_thread_area` gives each OS thread.
///
/// Why not a `thread_local!`: inlined into a caller that also frees a
/// buffer after a cooperative switch (`yield_now`), the compiler computed
/// the thread-local's address once, before the switch, and the free went to
/// the cache of the OS thread the green thread had left, while another
/// thread used it (`cargo test --release --test memory_pools` crashed on a
/// free-list link overwritten by a buffer's user). Hiding the access in a
/// function never inlined fixed that at the cost of a call each way; the
/// area's address is formed by an `asm!` block the compiler must run where
/// it stands, so it is both inlined and never stale. The pointer must not
/// be kept across a switch; an asynchronous preemption keeps the thread
/// on its OS thread (docs/preemption.md, "Preemption"), so only the code's own calls
/// could switch, and no function here makes one.
#[inline(always)]
fn cache(which: usize) -> *mut Fast {
    // SAFETY: the area is AREA_BYTES long and 16-aligned (asserted above
    // to hold two `Fast`), and `which & 1` keeps the index in it.
    unsafe { crate::arch::os_thread_area::area().cast::<Fast>().add(which & 1) }
}

impl Fast {
    /// Takes every buffer off the list.
    fn drain(&mut self, mut each: impl FnMut(Raw)) {
        let mut p = std::mem::replace(&mut self.head, std::ptr::null_mut());
        while let Some(raw) = NonNull::new(p) {
            // SAFETY: a free buffer of this list: its first word is the link.
            p = unsafe { raw.as_ptr().cast::<*mut u8>().read() };
            each(Raw(raw));
        }
    }
}

/// Empties the calling OS thread's caches when it ends: their buffers go
/// back to the shared lists. Registered by the first [`adopt`]; the block
/// itself outlives the thread's TLS destructors.
struct Flush;

impl Drop for Flush {
    fn drop(&mut self) {
        for which in 0..2 {
            // SAFETY: this OS thread's cache (see `cache`); an exiting
            // thread runs nothing else.
            let f = unsafe { &mut *cache(which) };
            let class = std::mem::replace(&mut f.class, std::ptr::null());
            if !class.is_null() {
                // SAFETY: classes are never freed.
                let class = unsafe { &*class };
                f.drain(|raw| drop_slow(class, raw));
            }
        }
    }
}

/// Gives the calling OS thread's cached buffers to their class's chain of
/// given-back buffers, keeping the caches adopted. The runtime calls it on
/// its own OS threads before they sleep (`runtime::sleep_hook`), between
/// green threads, where none is in the middle of a cache operation (one
/// preempted there holds its host, which neither idles nor runs the
/// worker's idle wait).
///
/// It must never wait for another thread: the caller is the runtime's
/// scheduling context, which a preempted thread cannot overtake. So not
/// the shared `ArrayQueue`, whose push waits for a pop that claimed the
/// slot and was preempted before releasing it, and not the allocator,
/// whose locks a preempted thread may hold: one CAS loop onto a chain
/// (a failed CAS means another thread's succeeded). A retired class's
/// buffers stay cached until [`adopt`] or the thread's exit frees them;
/// a re-initialisation between the check and the CAS leaves the list on
/// the retired class, unfreed (at most [`CPU_CACHE`] buffers).
fn give_back_cached() {
    for which in 0..2 {
        // SAFETY: this OS thread's cache (see `cache`); the runtime calls
        // this between green threads, none of them inside this module.
        let f = unsafe { &mut *cache(which) };
        if f.head.is_null() {
            continue;
        }
        // SAFETY: a cache holding buffers has its class set; classes are
        // never freed.
        let class = unsafe { &*f.class };
        if !is_current(class) {
            continue;
        }
        let head = std::mem::replace(&mut f.head, std::ptr::null_mut());
        let mut tail = head;
        loop {
            // SAFETY: a free buffer of this list: its first word is the link.
            let next = unsafe { tail.cast::<*mut u8>().read() };
            if next.is_null() {
                break;
            }
            tail = next;
        }
        let mut old = class.orphans.load(Ordering::Relaxed);
        loop {
            // SAFETY: `tail` ends the list taken off the cache, ours until
            // the CAS publishes it.
            unsafe { tail.cast::<*mut u8>().write(old) };
            match class.orphans.compare_exchange_weak(old, head, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => old = now,
            }
        }
    }
}

/// Starts caching class `which` on this OS thread for `class`; buffers of
/// a replaced class are freed.
fn adopt(class: &'static Class, which: usize) {
    if FLUSH.try_with(|_| ()).is_err() {
        // The thread is exiting: caching now would strand the buffers.
        return;
    }
    crate::runtime::sleep_hook::install(give_back_cached);
    // SAFETY: this OS thread's cache (see `cache`); nothing below switches.
    let f = unsafe { &mut *cache(which) };
    let old = f.class;
    if !std::ptr::eq(old, class) {
        if !old.is_null() {
            // SAFETY: classes are never freed.
            let old = unsafe { &*old };
            f.drain(|raw| old.destroy(raw));
        }
        f.class = class;
    }
}

thread_local! {
    static FLUSH: Flush = const { Flush };
}
