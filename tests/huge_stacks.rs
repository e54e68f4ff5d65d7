//! Stacks on huge pages (`ThreadBuilder::use_huge_pages`): the stack is
//! huge-page aligned and advised for transparent huge pages where THP is
//! on (checked in `/proc/self/smaps`), works deep down under preemption,
//! is unmapped at exit (never recycled), and an overflow is still
//! reported by name. A system without huge pages still spawns.

mod common;

use common::{is_child, run_child};
use preemptive_mlthreading_rust::{Duration, SystemMetrics, ThreadBuilder};
use std::hint::black_box;
use std::os::unix::process::ExitStatusExt;

/// A mapping's range and its smaps fields.
type Entry = (usize, usize, Vec<(String, String)>);

/// The smaps entry of the mapping holding `addr`.
fn smaps_entry(addr: usize) -> Entry {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut found: Option<Entry> = None;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((lo, hi)) = first.split_once('-')
            && let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
        {
            if found.is_some() {
                break;
            }
            if (lo..hi).contains(&addr) {
                found = Some((lo, hi, Vec::new()));
            }
            continue;
        }
        if let Some((_, _, fields)) = found.as_mut()
            && let Some((k, v)) = line.split_once(':')
        {
            fields.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    found.unwrap_or_else(|| panic!("{addr:#x} is in no mapping"))
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn thp_mode() -> String {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default()
}

/// Touches `bytes` of stack below the caller, a page at a time.
#[inline(never)]
fn touch(bytes: usize) -> u64 {
    let mut buf = [0u8; 64 * 1024];
    for i in (0..buf.len()).step_by(4096) {
        buf[i] = 1;
    }
    let here = black_box(&buf).iter().map(|&b| b as u64).sum::<u64>();
    if bytes > buf.len() { here + touch(bytes - buf.len()) } else { here }
}

#[test]
fn a_huge_page_stack_is_aligned_and_advised_for_thp() {
    let before = SystemMetrics::current().stack_bytes;
    let h = ThreadBuilder::new()
        .stack_size(2 << 20)
        .use_huge_pages(true)
        .spawn(|| {
            let pages = touch(1 << 20);
            let local = 0u8;
            let (lo, hi, fields) = smaps_entry(black_box(&local) as *const u8 as usize);
            (pages, lo, hi, fields)
        })
        .unwrap();
    let (pages, lo, hi, fields) = h.join().unwrap();
    assert_eq!(pages, (1 << 20) / 4096, "every touched page read back");
    let huge = 2usize << 20;
    println!(
        "stack mapping {lo:#x}-{hi:#x}: AnonHugePages {:?}, THPeligible {:?} (THP: {})",
        field(&fields, "AnonHugePages"),
        field(&fields, "THPeligible"),
        thp_mode().trim()
    );
    // Under an emulator smaps describes the emulator's own mappings.
    if std::env::var_os("PMT_TEST_RUNNER").is_none() {
        // The usable part is whole huge pages, aligned, and its own VMA
        // once advised (or a hugetlbfs mapping).
        assert_eq!(hi % huge, 0, "the stack's top is huge-page aligned");
        if thp_mode().contains("[always]") || thp_mode().contains("[madvise]") {
            assert_eq!(lo % huge, 0, "the advised range starts on a huge page");
            assert_eq!(field(&fields, "THPeligible"), Some("1"), "{fields:?}");
            let vm_flags = field(&fields, "VmFlags").unwrap_or("");
            assert!(vm_flags.split_whitespace().any(|f| f == "hg" || f == "ht"), "advised: {vm_flags}");
            // Where the kernel compacts memory for advised ranges at fault
            // time, the 1 MiB touched came in a huge page.
            let defrag = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/defrag").unwrap_or_default();
            if ["[always]", "[madvise]", "[defer+madvise]"].iter().any(|m| defrag.contains(m)) {
                let kb: usize = field(&fields, "AnonHugePages")
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                assert!(kb >= huge / 1024, "AnonHugePages {kb} kB with THP defrag {}", defrag.trim());
            }
        }
    }
    // Unmapped at exit: stack memory is back where it was (other tests of
    // this binary may hold stacks of their own meanwhile, never ours).
    common::wait_until(
        std::time::Duration::from_secs(30),
        || SystemMetrics::current().stack_bytes <= before + (64 << 10) * 64,
        || format!("{} stack bytes, {before} before", SystemMetrics::current().stack_bytes),
    );
}

#[test]
fn huge_page_threads_run_deep_under_preemption_and_are_not_recycled() {
    let sched = common::preemptive(1, Duration::from_micros(200));
    let hs: Vec<_> = (0..8)
        .map(|i| {
            ThreadBuilder::new()
                .use_huge_pages(true) // 64 KiB asked: rounded up to a huge page
                .scheduler(sched.clone())
                .spawn(move || touch(1 << 20) + i)
                .unwrap()
        })
        .collect();
    let plain = ThreadBuilder::new().scheduler(sched.clone()).spawn(|| touch(32 << 10)).unwrap();
    for (i, h) in hs.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), (1 << 20) / 4096 + i as u64);
    }
    assert_eq!(plain.join().unwrap(), 16);
    // A plain thread spawned after them gets a plain, recycled stack: its
    // mapping is no huge page's.
    let h = ThreadBuilder::new()
        .scheduler(sched.clone())
        .spawn(|| {
            let local = 0u8;
            smaps_entry(black_box(&local) as *const u8 as usize)
        })
        .unwrap();
    let (_, _, fields) = h.join().unwrap();
    let vm_flags = field(&fields, "VmFlags").unwrap_or("").to_owned();
    assert!(!vm_flags.split_whitespace().any(|f| f == "hg" || f == "ht"), "a plain stack: {vm_flags}");
}

#[test]
fn child_huge_stack_overflow() {
    if !is_child("child_huge_stack_overflow") {
        return;
    }
    #[inline(never)]
    fn recurse(n: u64) -> u64 {
        let buf = black_box([n as u8; 4096]);
        if n == u64::MAX { 0 } else { recurse(n + 1) + buf[7] as u64 }
    }
    let h = ThreadBuilder::new().name("huge-deep").use_huge_pages(true).spawn(|| recurse(0)).unwrap();
    let _ = h.join();
    println!("CHILD: the recursion returned");
    std::process::exit(3);
}

#[test]
fn an_overflow_of_a_huge_page_stack_is_reported_by_name() {
    let out = run_child("child_huge_stack_overflow", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("thread 'huge-deep' has overflowed its stack"), "{:?}: {stderr}", out.status);
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{:?}: {stderr}", out.status);
}
