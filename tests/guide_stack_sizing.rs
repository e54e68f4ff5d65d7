//! PERFORMANCE_TUNING.md block 7, "Stack Sizing" (line 171), as written. It
//! calls `ThreadBuilder::use_huge_pages(true)`, which arrived in src/ while
//! tests/guide.rs (the map of all 28 blocks) was written: kept in a file of
//! its own so that the rest of the guide's tests never depended on it.
//! tests/huge_stacks.rs checks huge stacks in depth; this checks the block.

type BoxError = Box<dyn std::error::Error + Send + Sync>;

use preemptive_mlthreading_rust::JoinHandle;

// Stand-ins for what the guide never defines.
fn simple_function() -> u64 {
    (1..=10).sum()
}

/// Recursion through `n` frames of over 1 KiB each: more than the 64 KiB
/// default stack holds, well within 2 MiB.
fn depth(n: u64) -> u64 {
    let frame = [n as u8; 1024];
    let here = u64::from(std::hint::black_box(&frame)[0]);
    if n == 0 { here } else { here + depth(n - 1) }
}

fn recursive_function() -> u64 {
    depth(512)
}

/// Touches 1 MiB of its stack, and returns the sum with the `VmFlags` and
/// `KernelPageSize` of the mapping its stack is in (`/proc/self/smaps`).
fn critical_function() -> (u64, String) {
    let buf = [3u8; 1024 * 1024];
    let sum = std::hint::black_box(&buf).iter().map(|&b| u64::from(b)).sum();
    let here = std::hint::black_box(&buf).as_ptr() as usize;
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    let mut mine = false;
    let mut fields = String::new();
    for line in smaps.lines() {
        let range = line.split_whitespace().next().and_then(|r| r.split_once('-'));
        if let Some((Ok(lo), Ok(hi))) =
            range.map(|(lo, hi)| (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16)))
        {
            mine = (lo..hi).contains(&here);
        } else if mine && (line.starts_with("VmFlags:") || line.starts_with("KernelPageSize:")) {
            fields.push_str(line);
            fields.push('\n');
        }
    }
    (sum, fields)
}

type Handles = (JoinHandle<u64>, JoinHandle<u64>, JoinHandle<(u64, String)>);

// ADAPTED: the block's `?` needs a function returning `Result`, and its
// statements are not items; `ThreadBuilder` comes from the crate root (as
// the guide's "Benchmark Setup" imports it).
#[rustfmt::skip]
fn guide_stack_sizing() -> Result<Handles, BoxError> {
    use preemptive_mlthreading_rust::ThreadBuilder;

    // Small stacks for simple tasks (saves memory)
    let simple_task = ThreadBuilder::new()
        .stack_size(64 * 1024)  // 64KB
        .spawn(simple_function)?;

    // Large stacks for recursive/complex tasks
    let complex_task = ThreadBuilder::new()
        .stack_size(2 * 1024 * 1024)  // 2MB
        .spawn(recursive_function)?;

    // Use huge pages for performance-critical threads
    let perf_critical = ThreadBuilder::new()
        .stack_size(2 * 1024 * 1024)  // 2MB (huge page aligned)
        .use_huge_pages(true)         // Enable huge pages
        .spawn(critical_function)?;
    Ok((simple_task, complex_task, perf_critical)) // ADDED: the handles, for the test to join
}

#[test]
fn stack_sizing() {
    let (simple, complex, critical) = guide_stack_sizing().unwrap();
    assert_eq!(simple.join().unwrap(), 55);
    // Only a stack larger than the default holds this recursion.
    assert_eq!(complex.join().unwrap(), (0..=512u64).map(|n| n % 256).sum::<u64>());
    let (sum, smaps) = critical.join().unwrap();
    assert_eq!(sum, 3 * 1024 * 1024);
    println!("perf_critical's stack mapping:\n{smaps}");
    // Huge pages where the system has them: hugetlbfs pages, or a range
    // advised for transparent ones. (Under an emulator, smaps describes the
    // emulator's own mappings.)
    let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    if std::env::var_os("PMT_TEST_RUNNER").is_none() && (thp.contains("[always]") || thp.contains("[madvise]")) {
        let hugetlb = smaps.lines().any(|l| l.starts_with("KernelPageSize:") && !l.ends_with(" 4 kB"));
        let advised = smaps.lines().any(|l| l.starts_with("VmFlags:") && l.split_whitespace().any(|f| f == "hg"));
        assert!(hugetlb || advised, "no huge pages under the stack: {smaps}");
    }
}
