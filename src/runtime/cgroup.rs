//! The CPU quota of cgroup v2: how many CPUs' worth of time the process's
//! cgroup and its ancestors grant, for [`num_cpus`](super::cpu::num_cpus).
//!
//! Reads the `0::<path>` line of `/proc/self/cgroup`, then `cpu.max` in
//! `<root>/<path>` and in each ancestor up to `<root>` itself; the
//! tightest quota wins. Everything that is not a readable v2 limit (cgroup
//! v1 only, no cgroupfs, a missing or unparsable file) counts as no limit,
//! so that a surprise never costs CPUs.

use std::path::{Component, Path, PathBuf};

/// Where the cgroup v2 hierarchy is mounted.
pub(super) const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// CPUs the process's cgroup quota allows, None for no limit: see the
/// module docs.
pub(super) fn quota_cpus() -> Option<usize> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    quota_cpus_under(Path::new(CGROUP_ROOT), &own)
}

/// The quota for a process whose `/proc/self/cgroup` reads `proc_self_cgroup`,
/// with the v2 hierarchy mounted at `root`: the smallest limit among the
/// `cpu.max` files of its cgroup and every ancestor, up to `root`.
pub(super) fn quota_cpus_under(root: &Path, proc_self_cgroup: &str) -> Option<usize> {
    tightest_under(root, proc_self_cgroup, read_cpu_max)
}

/// Bytes the process's cgroup (or an ancestor's) `memory.max` allows,
/// None for no limit (or no readable cgroup v2).
pub(crate) fn memory_limit() -> Option<u64> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    memory_limit_under(Path::new(CGROUP_ROOT), &own)
}

/// [`memory_limit`] with the v2 hierarchy mounted at `root`.
pub(super) fn memory_limit_under(root: &Path, proc_self_cgroup: &str) -> Option<u64> {
    tightest_under(root, proc_self_cgroup, |dir| {
        let text = std::fs::read_to_string(dir.join("memory.max")).ok()?;
        text.trim().parse::<u64>().ok()
    })
}

/// The smallest value `read` finds in the process's cgroup directory and
/// each ancestor up to `root`.
fn tightest_under<T: Ord>(root: &Path, proc_self_cgroup: &str, read: impl Fn(&Path) -> Option<T>) -> Option<T> {
    let path = unified_path(proc_self_cgroup)?;
    let mut dirs = vec![root.to_path_buf()];
    let mut dir = root.to_path_buf();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(name) => {
                dir.push(name);
                dirs.push(dir.clone());
            }
            Component::RootDir | Component::CurDir => {}
            // `..`: the cgroup lies outside our cgroup namespace's root,
            // where nothing below `root` is its ancestor.
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    dirs.iter().filter_map(|d| read(d)).min()
}

/// The path of the `0::<path>` line (the v2 hierarchy), if any.
fn unified_path(proc_self_cgroup: &str) -> Option<&str> {
    proc_self_cgroup.lines().find_map(|l| l.strip_prefix("0::"))
}

fn read_cpu_max(dir: &Path) -> Option<usize> {
    let file: PathBuf = dir.join("cpu.max");
    parse_cpu_max(&std::fs::read_to_string(file).ok()?)
}

/// `cpu.max` holds `<quota> <period>` in microseconds, or `max <period>`
/// for no limit: ceil(quota / period) CPUs, at least 1. None for no limit
/// and for anything else (a zero period, a missing or extra field).
pub(super) fn parse_cpu_max(text: &str) -> Option<usize> {
    let mut fields = text.split_whitespace();
    let (quota, period) = (fields.next()?, fields.next()?);
    if fields.next().is_some() || quota == "max" {
        return None;
    }
    let (quota, period) = (quota.parse::<u64>().ok()?, period.parse::<u64>().ok()?);
    if period == 0 {
        return None;
    }
    Some(usize::try_from(quota.div_ceil(period)).unwrap_or(usize::MAX).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cgroup").join(name)
    }

    #[test]
    fn cpu_max_rounds_the_quota_up() {
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("150000 100000\n"), Some(2));
        assert_eq!(parse_cpu_max("50000 100000"), Some(1));
        assert_eq!(parse_cpu_max("200000 100000"), Some(2));
        assert_eq!(parse_cpu_max("200001 100000"), Some(3));
        assert_eq!(parse_cpu_max("1000 1000000"), Some(1), "a sliver of a CPU is still one");
        assert_eq!(parse_cpu_max("0 100000"), Some(1));
        assert!(parse_cpu_max("18446744073709551615 100000").is_some_and(|n| n > 1 << 40), "no overflow");
    }

    #[test]
    fn garbage_in_cpu_max_is_no_limit() {
        for text in ["", "\n", "max", "150000", "lots 100000", "150000 0", "-1 100000", "1.5 1", "1 2 3", "max max"] {
            assert_eq!(parse_cpu_max(text), None, "{text:?}");
        }
    }

    #[test]
    fn the_v2_line_names_the_cgroup() {
        let hybrid = "9:name=systemd:/\n1:cpu:/\n0::/user.slice/app\n";
        assert_eq!(unified_path(hybrid), Some("/user.slice/app"));
        assert_eq!(unified_path("0::/\n"), Some("/"));
        assert_eq!(unified_path("4:memory:/a\n1:cpu,cpuacct:/a\n"), None, "cgroup v1 only");
        assert_eq!(unified_path(""), None);
    }

    #[test]
    fn the_tightest_limit_among_the_ancestors_wins() {
        let root = fixture("nested");
        // kubepods 4, pod-a unlimited, ctr 2 (150000/100000 rounded up).
        assert_eq!(quota_cpus_under(&root, "0::/kubepods/pod-a/ctr\n"), Some(2));
        // kubepods 4, pod-b 1 (50000/100000), ctr unlimited.
        assert_eq!(quota_cpus_under(&root, "0::/kubepods/pod-b/ctr\n"), Some(1));
        assert_eq!(quota_cpus_under(&root, "0::/kubepods\n"), Some(4));
        // A cgroup without files of its own (or that is gone) inherits.
        assert_eq!(quota_cpus_under(&root, "0::/kubepods/pod-a/not-there\n"), Some(4));
        // The root of the fixture has no cpu.max, as the host's root has none.
        assert_eq!(quota_cpus_under(&root, "0::/\n"), None);
        assert_eq!(quota_cpus_under(&root, "0::/elsewhere\n"), None);
    }

    #[test]
    fn memory_max_is_the_tightest_byte_count_and_max_is_none() {
        let root = fixture("nested");
        // kubepods 8 GiB, pod-a max, ctr 1 GiB.
        assert_eq!(memory_limit_under(&root, "0::/kubepods/pod-a/ctr\n"), Some(1 << 30));
        assert_eq!(memory_limit_under(&root, "0::/kubepods/pod-b/ctr\n"), Some(8 << 30));
        assert_eq!(memory_limit_under(&root, "0::/\n"), None);
        assert_eq!(memory_limit_under(&root, "1:memory:/kubepods\n"), None, "v1 only");
    }

    #[test]
    fn a_namespaced_container_sees_its_limit_at_the_root() {
        assert_eq!(quota_cpus_under(&fixture("container"), "0::/\n"), Some(3));
    }

    #[test]
    fn garbage_in_one_file_leaves_the_others() {
        let root = fixture("garbage");
        // garbage/cpu.max is unreadable as a limit; its child's 300000/100000 counts.
        assert_eq!(quota_cpus_under(&root, "0::/bad/child\n"), Some(3));
        assert_eq!(quota_cpus_under(&root, "0::/bad\n"), None);
    }

    #[test]
    fn without_cgroup_v2_there_is_no_limit() {
        let root = fixture("nested");
        assert_eq!(quota_cpus_under(&root, "4:memory:/kubepods\n1:cpu:/kubepods\n"), None, "v1 only");
        assert_eq!(quota_cpus_under(&fixture("no-such-mount"), "0::/kubepods\n"), None);
        // Outside our cgroup namespace: nothing below the root is an ancestor.
        assert_eq!(quota_cpus_under(&root, "0::/../kubepods\n"), None);
    }
}
