//! The process's resident memory and the most it may use.

use crate::runtime::cgroup;

/// Bytes resident now (`/proc/self/statm`, second field), 0 where it
/// cannot be read.
pub(super) fn resident_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|f| f.parse::<u64>().ok()))
        .unwrap_or(0);
    pages.saturating_mul(crate::stack::page_size() as u64)
}

/// The memory available to the process: its cgroup's limit when there is
/// one below the machine's memory, else `MemTotal`; 0 where neither can be
/// read.
pub(super) fn limit_bytes() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| mem_total(&s)).unwrap_or(0);
    match cgroup::memory_limit() {
        Some(limit) if total == 0 || limit < total => limit,
        _ => total,
    }
}

/// `MemTotal` of a `/proc/meminfo` text, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut fields = line.split_whitespace().skip(1);
    let n = fields.next()?.parse::<u64>().ok()?;
    match fields.next() {
        Some("kB") => n.checked_mul(1024),
        None => Some(n),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_total_is_read_in_bytes() {
        assert_eq!(mem_total("MemFree: 1 kB\nMemTotal:       24576000 kB\n"), Some(24_576_000 * 1024));
        assert_eq!(mem_total("MemTotal: 12\n"), Some(12));
        assert_eq!(mem_total("MemTotal: x kB\n"), None);
        assert_eq!(mem_total("MemTotal: 1 MB\n"), None);
        assert_eq!(mem_total(""), None);
    }

    #[test]
    fn this_process_is_resident_within_its_limit() {
        let (rss, limit) = (resident_bytes(), limit_bytes());
        assert!(rss > 0 && limit > 0 && rss < limit, "rss {rss}, limit {limit}");
    }
}
