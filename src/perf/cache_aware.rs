//! Cache-aware helpers from the tuning guide: prefetches, a cache-line
//! padded wrapper, and this machine's caches as the kernel reports them
//! (read at run time: line sizes are 64 bytes on most x86_64 parts, 128 on
//! Apple's and some server arm64 parts, and nothing here assumes either).
//!
//! ```
//! use preemptive_mlthreading_rust::perf::cache_aware::{cache_line_size, caches, prefetch_read, CachePadded};
//!
//! let data = vec![1u64; 1024];
//! let mut sum = 0;
//! for i in 0..data.len() {
//!     if i + 8 < data.len() {
//!         prefetch_read(&data[i + 8]);
//!     }
//!     sum += data[i];
//! }
//! assert_eq!(sum, 1024);
//!
//! // Two counters written by different threads, on lines of their own.
//! let counters = [CachePadded::new(0u64), CachePadded::new(0u64)];
//! assert!(std::mem::size_of_val(&counters[0]) >= 64);
//! if let Some(line) = cache_line_size() {
//!     assert!(line.is_power_of_two());
//! }
//! for c in caches() {
//!     println!("L{} {:?}: {} KiB, {}-byte lines", c.level, c.kind, c.size_bytes >> 10, c.line_size);
//! }
//! ```

pub use crate::arch::{prefetch_read, prefetch_write};
pub use crate::runtime::cpu_cache::{CacheInfo, CacheKind};
/// crossbeam's cache-line padding: a value aligned to (and as large as) the
/// unit of false sharing of the target (128 bytes on x86_64 and aarch64,
/// where adjacent lines are fetched in pairs; 64 on riscv64).
pub use crossbeam_utils::CachePadded;

/// The line size of the first-level data cache of the CPU the caller runs
/// on (of CPU 0 if it cannot tell); None where sysfs does not say.
pub fn cache_line_size() -> Option<usize> {
    caches().iter().find(|c| c.level == 1 && c.kind != CacheKind::Instruction).map(|c| c.line_size)
}

/// The caches of the CPU the caller runs on (of CPU 0 if it cannot tell),
/// by level: empty where sysfs says nothing.
pub fn caches() -> Vec<CacheInfo> {
    caches_of(crate::current_cpu().unwrap_or(0))
}

/// The caches of `cpu`, by level: empty for a CPU sysfs does not list.
pub fn caches_of(cpu: usize) -> Vec<CacheInfo> {
    crate::runtime::cpu_cache::caches(cpu)
}
