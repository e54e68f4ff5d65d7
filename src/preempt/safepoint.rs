//! Where an asynchronous preemption may land.
//!
//! A green thread may be suspended at an arbitrary instruction only in code
//! that keeps no per-OS-thread state across that instruction, because a
//! sibling green thread runs next on the same OS thread:
//! - shared libraries (libc, ld.so, the vdso, anything `dlopen`ed) are out:
//!   glibc's malloc and stdio keep per-thread caches and locks;
//! - Rust std's own functions are out: std's stdout is a `ReentrantLock`
//!   keyed by OS thread, so a sibling would re-enter it;
//! - everything else in the executable is in.
//!
//! So the map is built once: the executable's code mappings from
//! `/proc/self/maps`, minus the address ranges of every symbol whose
//! demangled name is a `std::` item (including std generics instantiated in
//! user crates, which keep their `std::` path). Without a symbol table the
//! std ranges cannot be known, and no point of the executable counts as
//! safe: preemption then waits for the next runtime call.

use object::{Object, ObjectSegment, ObjectSymbol, SymbolKind};
use std::sync::OnceLock;

pub(crate) struct CodeMap {
    /// Executable code of the main program, sorted.
    exe: Vec<(usize, usize)>,
    /// std's functions inside it, sorted and merged.
    std: Vec<(usize, usize)>,
}

static MAP: OnceLock<CodeMap> = OnceLock::new();

/// Builds the map (once). Call before the first signal can arrive.
pub(crate) fn init() -> &'static CodeMap {
    MAP.get_or_init(|| {
        let map = CodeMap::read().unwrap_or_else(|e| {
            log::warn!("preemption: cannot read the executable's symbol table ({e}); threads will be preempted only at runtime calls");
            CodeMap { exe: Vec::new(), std: Vec::new() }
        });
        if map.std.is_empty() && !map.exe.is_empty() {
            log::warn!("preemption: the executable has no std symbols (stripped?); threads will be preempted only at runtime calls");
        }
        map
    })
}

/// Whether a thread interrupted at `pc` may be suspended there.
/// Async-signal-safe: reads only the map built by [`init`].
#[inline]
pub(crate) fn is_safe(pc: usize) -> bool {
    let Some(map) = MAP.get() else { return false };
    !map.std.is_empty() && contains(&map.exe, pc) && !contains(&map.std, pc)
}

fn contains(ranges: &[(usize, usize)], pc: usize) -> bool {
    let i = ranges.partition_point(|&(start, _)| start <= pc);
    i > 0 && pc < ranges[i - 1].1
}

impl CodeMap {
    fn read() -> std::io::Result<CodeMap> {
        let exe_path = std::fs::read_link("/proc/self/exe")?;
        let maps = std::fs::read_to_string("/proc/self/maps")?;
        let mut exe = Vec::new();
        let mut base = None;
        for line in maps.lines() {
            let mut f = line.split_whitespace();
            let (Some(range), Some(perms), Some(offset)) = (f.next(), f.next(), f.next()) else { continue };
            let path = f.nth(2).unwrap_or("");
            if std::path::Path::new(path) != exe_path {
                continue;
            }
            let (lo, hi) = range.split_once('-').unwrap_or(("0", "0"));
            let lo = usize::from_str_radix(lo, 16).unwrap_or(0);
            let hi = usize::from_str_radix(hi, 16).unwrap_or(0);
            if usize::from_str_radix(offset, 16) == Ok(0) {
                base = Some(base.map_or(lo, |b: usize| b.min(lo)));
            }
            if perms.contains('x') {
                exe.push((lo, hi));
            }
        }
        exe.sort_unstable();
        let data = std::fs::read(&exe_path)?;
        let file = object::File::parse(&*data).map_err(std::io::Error::other)?;
        // Load bias: where the first segment landed minus where it was linked.
        let linked = file.segments().map(|s| s.address()).min().unwrap_or(0) as usize;
        let page = crate::stack::page_size();
        let bias = base.unwrap_or(0).wrapping_sub(linked & !(page - 1));
        let mut std_ranges: Vec<(usize, usize)> = file
            .symbols()
            .filter(|s| s.kind() == SymbolKind::Text && s.size() > 0)
            .filter(|s| s.name().is_ok_and(is_std_symbol))
            .map(|s| {
                let lo = (s.address() as usize).wrapping_add(bias);
                (lo, lo + s.size() as usize)
            })
            .collect();
        std_ranges.sort_unstable();
        Ok(CodeMap { exe, std: merge(std_ranges) })
    }
}

fn is_std_symbol(mangled: &str) -> bool {
    let Ok(d) = rustc_demangle::try_demangle(mangled) else { return false };
    let name = format!("{d:#}");
    name.starts_with("std::") || name.starts_with("<std::")
}

fn merge(sorted: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::with_capacity(sorted.len());
    for (lo, hi) in sorted {
        match out.last_mut() {
            Some(last) if lo <= last.1 => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_code_is_safe_std_and_libc_are_not() {
        init();
        #[inline(never)]
        fn user_fn() -> u32 {
            std::hint::black_box(7)
        }
        assert!(is_safe(user_fn as *const () as usize), "a function of this crate");
        assert!(!is_safe(std::thread::yield_now as *const () as usize), "std::thread::yield_now");
        assert!(!is_safe(libc::malloc as *const () as usize), "libc's malloc");
        assert!(!is_safe(0), "null");
    }
}
