//! perf::cache_aware: this machine's caches read from sysfs, prefetches on
//! references and pointers, and the guide's "Prefetching Strategies" and
//! "Issue: Cache Misses" blocks.

use preemptive_mlthreading_rust::perf::cache_aware::{
    CacheKind, CachePadded, cache_line_size, caches, caches_of, prefetch_read, prefetch_write,
};

#[test]
fn caches_are_read_from_sysfs_and_consistent() {
    let all = caches_of(0);
    println!("{all:?}");
    if all.is_empty() {
        // A container or emulator without cache directories.
        assert!(!std::path::Path::new("/sys/devices/system/cpu/cpu0/cache/index0").exists());
        return;
    }
    let line = cache_line_size().expect("an L1 data cache");
    assert!(line.is_power_of_two() && (16..=512).contains(&line), "{line}");
    for c in &all {
        assert!(c.size_bytes > 0 && c.line_size.is_power_of_two(), "{c:?}");
        assert!(c.shared_cpus.contains(&0), "{c:?}");
    }
    // Levels ascend and an L1 exists.
    assert!(all.windows(2).all(|w| w[0].level <= w[1].level));
    assert!(all.iter().any(|c| c.level == 1 && c.kind != CacheKind::Instruction));
    assert!(caches_of(1 << 20).is_empty(), "no such CPU");
    assert!(!caches().is_empty());
}

#[test]
fn prefetches_take_references_pointers_and_slices_and_never_fault() {
    let v = vec![3u32; 100];
    prefetch_read(&v[50]);
    prefetch_read(&v[..]);
    prefetch_write(v.as_ptr());
    prefetch_read(std::ptr::null::<u64>());
    prefetch_read(0xdead_0000usize as *const u8);
    assert_eq!(v[50], 3);
    let padded = CachePadded::new(7u8);
    assert_eq!(*padded, 7);
    assert!(std::mem::align_of::<CachePadded<u8>>() >= cache_line_size().unwrap_or(64).min(64));
}

#[derive(Clone, Copy, Default)]
struct DataItem {
    value: u64,
}

fn process_item(item: &DataItem) -> u64 {
    item.value * 2
}

// The guide's "Prefetching Strategies" block, its first function as
// written (the second, `optimized_schedule_next`, calls functions the
// guide never defines: scheduling is the runtime's own, which prefetches
// with `ThreadBuilder::enable_stack_prefetch`).
fn process_array(data: &[DataItem]) {
    for i in 0..data.len() {
        // Prefetch next items while processing current
        if i + 4 < data.len() {
            prefetch_read(&data[i + 4]);
        }

        process_item(&data[i]);
    }
}

// The guide's "Issue: Cache Misses" block, as written.
#[allow(dead_code)]
#[repr(C)]
struct OptimizedData {
    // Hot data together
    frequently_accessed: [u32; 4],

    // Cold data separate
    rarely_accessed: Vec<u8>,
}

fn process_with_prefetch(items: &[DataItem]) {
    for i in 0..items.len() {
        // Prefetch future items
        if i + 8 < items.len() {
            prefetch_read(&items[i + 8]);
        }

        process_item(&items[i]);
    }
}

#[allow(dead_code)]
#[repr(align(64))] // Cache line alignment
struct CacheAligned {
    data: [u8; 64],
}

#[test]
fn the_guides_prefetching_blocks_run() {
    let items = vec![DataItem { value: 1 }; 1000];
    process_array(&items);
    process_with_prefetch(&items);
    assert_eq!(std::mem::align_of::<CacheAligned>(), 64);
    assert_eq!(std::mem::size_of::<CacheAligned>(), 64);
}
