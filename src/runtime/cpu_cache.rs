//! The CPU caches as Linux describes them in sysfs
//! (`/sys/devices/system/cpu/cpu<N>/cache/index<M>/`): level, kind, size,
//! line size and which CPUs share each. Read at run time, never assumed.

use std::path::Path;

/// Where the kernel lists CPUs.
pub(crate) const SYSFS_CPU: &str = "/sys/devices/system/cpu";

/// What a cache holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CacheKind {
    /// Data only.
    Data,
    /// Instructions only.
    Instruction,
    /// Both.
    Unified,
}

/// One cache of a CPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheInfo {
    /// 1 for L1, and so on.
    pub level: u32,
    /// What it holds.
    pub kind: CacheKind,
    /// Its size in bytes.
    pub size_bytes: usize,
    /// Its line size in bytes (`coherency_line_size`).
    pub line_size: usize,
    /// The CPUs that share it, sorted.
    pub shared_cpus: Vec<usize>,
}

/// The caches of `cpu` under the sysfs CPU directory `root`, by level then
/// kind; empty where sysfs says nothing (some containers, emulators).
pub(crate) fn caches_under(root: &Path, cpu: usize) -> Vec<CacheInfo> {
    let Ok(dir) = std::fs::read_dir(root.join(format!("cpu{cpu}/cache"))) else { return Vec::new() };
    let mut caches: Vec<CacheInfo> = dir
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("index"))
        .filter_map(|e| {
            let read = |f: &str| std::fs::read_to_string(e.path().join(f)).ok().map(|s| s.trim().to_owned());
            Some(CacheInfo {
                level: read("level")?.parse().ok()?,
                kind: match read("type")?.as_str() {
                    "Data" => CacheKind::Data,
                    "Instruction" => CacheKind::Instruction,
                    "Unified" => CacheKind::Unified,
                    _ => return None,
                },
                size_bytes: parse_size(&read("size")?)?,
                line_size: read("coherency_line_size")?.parse().ok()?,
                shared_cpus: super::numa::parse_cpulist(&read("shared_cpu_list")?).ok()?,
            })
        })
        .collect();
    caches.sort_by_key(|c| (c.level, c.kind as u8));
    caches
}

/// This machine's caches of `cpu`.
pub(crate) fn caches(cpu: usize) -> Vec<CacheInfo> {
    caches_under(Path::new(SYSFS_CPU), cpu)
}

/// A sysfs cache size: `32K`, `1M`, `512` (bytes).
fn parse_size(text: &str) -> Option<usize> {
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, ""),
    };
    let n: usize = digits.parse().ok()?;
    n.checked_mul(match unit {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, files: &[(&str, &str)]) {
        std::fs::create_dir_all(dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
    }

    #[test]
    fn a_recorded_tree_is_read_by_level_and_kind() {
        let root = std::env::temp_dir().join(format!("pmt-caches-{}", std::process::id()));
        let cache = root.join("cpu3/cache");
        fn entry<'a>(l: &'a str, t: &'a str, s: &'a str, cpus: &'a str) -> [(&'static str, &'a str); 5] {
            [("level", l), ("type", t), ("size", s), ("coherency_line_size", "128"), ("shared_cpu_list", cpus)]
        }
        write(&cache.join("index3"), &entry("3", "Unified", "32M", "0-7"));
        write(&cache.join("index0"), &entry("1", "Data", "48K", "3"));
        write(&cache.join("index1"), &entry("1", "Instruction", "32K", "3"));
        write(&cache.join("index2"), &entry("2", "Unified", "2048K", "2-3"));
        write(&cache.join("index9"), &entry("2", "Strange", "1K", "3"));
        let got = caches_under(&root, 3);
        let summary: Vec<_> = got.iter().map(|c| (c.level, c.kind, c.size_bytes, c.line_size)).collect();
        assert_eq!(
            summary,
            [
                (1, CacheKind::Data, 48 << 10, 128),
                (1, CacheKind::Instruction, 32 << 10, 128),
                (2, CacheKind::Unified, 2 << 20, 128),
                (3, CacheKind::Unified, 32 << 20, 128),
            ]
        );
        assert_eq!(got[3].shared_cpus, (0..8).collect::<Vec<_>>());
        assert!(caches_under(&root, 4).is_empty(), "no such CPU");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn sizes_carry_their_unit() {
        assert_eq!(parse_size("32K"), Some(32 << 10));
        assert_eq!(parse_size("1M"), Some(1 << 20));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("1T"), None);
        assert_eq!(parse_size("K"), None);
    }
}
