//! Where an asynchronous preemption may land.
//!
//! A green thread may be suspended at an arbitrary instruction only in code
//! that keeps no per-OS-thread state across that instruction, because a
//! sibling green thread runs next on the same OS thread:
//! - shared libraries (libc, ld.so, the vdso, anything `dlopen`ed) are out:
//!   glibc's malloc and stdio keep per-thread caches and locks;
//! - the standard library's own functions are out: std's stdout is a
//!   `ReentrantLock` keyed by OS thread around a `RefCell`, so a sibling
//!   would re-enter it; and std holds that borrow while it runs `core` and
//!   `alloc` code (memchr, buffer growth, formatting of primitives), so
//!   those crates and the allocator shims (`__rust_alloc`, …) are out too;
//! - C, C++ or assembly linked into the executable is out, for the same
//!   reason as libc;
//! - the program's own Rust code is in, including user trait impls that std
//!   calls back (`<mycrate::T as core::fmt::Display>::fmt`).
//!
//! So the map is an allow-list, built once from the executable's symbol
//! table: the address ranges of every function whose demangled path does
//! not start in `std`, `core` or `alloc` (generics instantiated in user
//! crates keep that path). An allow-list, because the precompiled standard
//! library's own functions have no entry in the symbol table at all: an
//! address that no symbol covers is treated as unsafe. A stripped
//! executable has no symbols, so nothing counts as safe and preemption
//! waits for the next runtime call (a warning says so).
//!
//! A consequence users can see: a thread preempted inside its own `Display`
//! impl while `println!` holds the stdout lock lets a sibling on the same
//! worker print in the middle of its line (std's lock is per OS thread).

use object::{Object, ObjectSegment, ObjectSymbol, SymbolKind};
use std::sync::OnceLock;

pub(crate) struct CodeMap {
    /// Functions where a thread may be suspended, sorted and merged.
    safe: Vec<(usize, usize)>,
}

static MAP: OnceLock<CodeMap> = OnceLock::new();

/// Builds the map (once). Call before the first signal can arrive.
pub(crate) fn init() -> &'static CodeMap {
    MAP.get_or_init(|| {
        let map = CodeMap::read().unwrap_or_else(|e| {
            log::warn!("preemption: cannot read the executable's symbol table ({e}); threads will be preempted only at runtime calls");
            CodeMap { safe: Vec::new() }
        });
        if map.safe.is_empty() {
            log::warn!("preemption: the executable has no symbol table (stripped?); threads will be preempted only at runtime calls");
        }
        map
    })
}

/// Whether a thread interrupted at `pc` may be suspended there.
/// Async-signal-safe: reads only the map built by [`init`].
#[inline]
pub(crate) fn is_safe(pc: usize) -> bool {
    MAP.get().is_some_and(|map| contains(&map.safe, pc))
}

fn contains(ranges: &[(usize, usize)], pc: usize) -> bool {
    let i = ranges.partition_point(|&(start, _)| start <= pc);
    i > 0 && pc < ranges[i - 1].1
}

impl CodeMap {
    fn read() -> std::io::Result<CodeMap> {
        let exe_path = std::fs::read_link("/proc/self/exe")?;
        let maps = std::fs::read_to_string("/proc/self/maps")?;
        // Where the executable's file offset 0 is mapped: its load address.
        let base = maps
            .lines()
            .filter_map(|line| {
                let mut f = line.split_whitespace();
                let range = f.next()?;
                let offset = f.nth(1)?;
                let path = f.nth(2)?;
                (std::path::Path::new(path) == exe_path && usize::from_str_radix(offset, 16) == Ok(0))
                    .then(|| usize::from_str_radix(range.split_once('-')?.0, 16).ok())?
            })
            .min()
            .unwrap_or(0);
        let data = MappedFile::open(&exe_path)?;
        let file = object::File::parse(data.bytes()).map_err(std::io::Error::other)?;
        // Load bias: where the first segment landed minus where it was linked.
        let linked = file.segments().map(|s| s.address()).min().unwrap_or(0) as usize;
        let page = crate::stack::page_size();
        let bias = base.wrapping_sub(linked & !(page - 1));
        // The preemption word's leaves (aarch64, riscv64) hold a thread address while they run.
        let never = crate::arch::preempt_word::code();
        let mut buf = String::new();
        let mut safe: Vec<(usize, usize)> = file
            .symbols()
            .filter(|s| s.kind() == SymbolKind::Text && s.size() > 0)
            .filter(|s| s.name().is_ok_and(|n| is_user_rust_symbol(n, &mut buf)))
            .map(|s| {
                let lo = (s.address() as usize).wrapping_add(bias);
                (lo, lo + s.size() as usize)
            })
            .filter(|&(lo, hi)| !never.iter().any(|&f| (lo..hi).contains(&f)))
            .collect();
        safe.sort_unstable();
        Ok(CodeMap { safe: merge(safe) })
    }
}

/// The executable, mapped read-only rather than read: only the pages of the
/// headers and the symbol table are ever touched, not the code or the debug
/// information (most of a debug build's size). Reading it cost 13 ms of the
/// first spawn in a 6 MB release binary, 0.12 s in a debug one.
struct MappedFile {
    ptr: *mut libc::c_void,
    len: usize,
}

impl MappedFile {
    fn open(path: &std::path::Path) -> std::io::Result<MappedFile> {
        let file = std::fs::File::open(path)?;
        let len = usize::try_from(file.metadata()?.len()).map_err(std::io::Error::other)?;
        if len == 0 {
            return Err(std::io::Error::other("the executable is empty"));
        }
        use std::os::fd::AsRawFd;
        // SAFETY: a private read-only mapping of a file we opened; the fd
        // may be closed once mapped. The kernel refuses writes to a running
        // executable (ETXTBSY), so the bytes cannot change under us.
        let ptr =
            unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_PRIVATE, file.as_raw_fd(), 0) };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(MappedFile { ptr, len })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `len` readable bytes mapped at `ptr` until drop.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        // SAFETY: our own mapping; nothing borrows `bytes()` past the parse.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

/// A function of the program's own Rust code. C, C++ and assembly linked
/// into the executable are left out: a statically linked C library keeps
/// per-thread state (errno-like error queues, locks owned by the OS thread)
/// just as libc does.
/// The crate at the root of a v0-mangled path (`_RNvNtCs1a2b_3std2io5print`
/// is in `std`), when the path is a plain one: nested `N` paths down to a
/// crate root `C`. Impl paths and anything unusual give None.
fn v0_crate(mangled: &str) -> Option<&str> {
    let mut rest = mangled.strip_prefix("_R")?.as_bytes();
    while let [b'N', _, tail @ ..] = rest {
        rest = tail;
    }
    let [b'C', tail @ ..] = rest else { return None };
    rest = tail;
    if let [b's', tail @ ..] = rest {
        let end = tail.iter().position(|&b| b == b'_')?;
        rest = &tail[end + 1..];
    }
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let len: usize = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    let name = rest.get(digits..digits + len)?;
    std::str::from_utf8(name).ok()
}

/// `buf` is scratch space for the demangled name, reused across symbols.
fn is_user_rust_symbol(mangled: &str, buf: &mut String) -> bool {
    // Legacy-mangled paths in `std` or `alloc` are std's whatever follows:
    // no need to demangle them (the map is built on the first spawn, and
    // demangling is most of its cost).
    const STD_PREFIXES: [&str; 2] = ["_ZN3std", "_ZN5alloc"];
    const SHIMS: [&str; 4] = ["__rust_", "__rdl_", "__rg_", "rust_begin_unwind"];
    if STD_PREFIXES.iter().chain(&SHIMS).any(|p| mangled.starts_with(p)) {
        return false;
    }
    if v0_crate(mangled).is_some_and(|c| c == "std" || c == "alloc") {
        return false;
    }
    let Ok(d) = rustc_demangle::try_demangle(mangled) else { return false };
    buf.clear();
    use std::fmt::Write;
    if write!(buf, "{d:#}").is_err() {
        return false;
    }
    !is_std_path(buf)
}

/// Whether a demangled function path is standard-library code that must
/// not be interrupted. `std` and `alloc` are out entirely; of `core`, the
/// parts std runs while it holds per-OS-thread state (formatting, memchr,
/// string handling) are out, and the pure rest (atomics, arithmetic,
/// iterators, `Option`…) is in: debug builds spend much of their time there.
/// For impls, `<Type as Trait>::f` is std's when the type is std's, or when
/// it is a primitive or core type and the trait is std's
/// (`<u64 as core::fmt::Display>::fmt`); a user type's impl of a std trait
/// is user code.
fn is_std_path(name: &str) -> bool {
    fn std_code(p: &str) -> bool {
        const OUT: [&str; 6] = ["std::", "alloc::", "core::fmt", "core::slice::memchr", "core::str", "core::panicking"];
        OUT.iter().any(|c| p.starts_with(c))
    }
    let Some(inner) = name.strip_prefix('<') else { return std_code(name) };
    let (self_ty, trait_path) = match inner.split_once(" as ") {
        Some((ty, tr)) => (ty, Some(tr)),
        None => (inner, None),
    };
    let mut ty = self_ty;
    for prefix in ["&", "mut ", "*const ", "*mut ", "[", "(", "dyn "] {
        while let Some(rest) = ty.strip_prefix(prefix) {
            ty = rest;
        }
    }
    const PRIMITIVES: [&str; 17] = [
        "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize", "f32", "f64", "bool",
        "char", "str",
    ];
    let primitive = ty.is_empty()
        || PRIMITIVES
            .iter()
            .any(|p| ty.starts_with(p) && !ty[p.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_'));
    if std_code(ty) {
        return true;
    }
    if primitive {
        // Inherent methods on primitives live in core or alloc (`to_vec`,
        // `repeat`…): the name does not say which, so count them out.
        return trait_path.is_none_or(std_code);
    }
    ty.starts_with("core::") && trait_path.is_some_and(std_code)
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
    fn std_paths_are_recognised() {
        for std in [
            "std::io::stdio::_print",
            "<std::io::stdio::StdoutLock as std::io::Write>::write_all",
            "<u64 as core::fmt::Display>::fmt",
            "<&str as core::fmt::Debug>::fmt",
            "<alloc::vec::Vec<u8>>::reserve",
            "<str>::to_string",
            "core::fmt::write",
            "core::slice::memchr::memrchr",
        ] {
            assert!(is_std_path(std), "{std}");
        }
        for user in [
            "mycrate::main",
            "<mycrate::Foo as core::fmt::Display>::fmt",
            "<u64 as mycrate::Trait>::go",
            "<&mycrate::T as std::io::Write>::flush",
            "u64ish::f",
        ] {
            assert!(!is_std_path(user), "{user}");
        }
    }

    #[test]
    fn only_the_programs_own_rust_code_counts() {
        assert!(is_user_rust_symbol("_ZN7mycrate4main17h0123456789abcdefE", &mut String::new()));
        assert_eq!(v0_crate("_RNvNtNtCs1a2b3c_3std2io5stdio6_print"), Some("std"));
        assert_eq!(v0_crate("_RNvCsabc_7mycrate4main"), Some("mycrate"));
        assert_eq!(v0_crate("_RNvMNtCs1_5alloc3vecINtB2_3VecpE4push"), None);
        assert!(!is_user_rust_symbol("_RNvNtNtCs1a2b3c_3std2io5stdio6_print", &mut String::new()));
        assert!(is_user_rust_symbol("_RNvCsabc_7mycrate4main", &mut String::new()));
        assert!(!is_user_rust_symbol("_ZN3std2io5stdio6_print17h0123456789abcdefE", &mut String::new()));
        for c_symbol in ["sqlite3_step", "main", "memcpy", "_start"] {
            assert!(!is_user_rust_symbol(c_symbol, &mut String::new()), "{c_symbol}");
        }
    }

    #[test]
    fn user_code_is_safe_std_and_libc_are_not() {
        init();
        #[inline(never)]
        fn user_fn() -> u32 {
            std::hint::black_box(7)
        }
        assert!(is_safe(user_fn as *const () as usize), "a function of this crate");
        assert!(!is_safe(std::thread::yield_now as *const () as usize), "std::thread::yield_now");
        assert!(!is_safe(<u64 as std::fmt::Display>::fmt as *const () as usize), "core integer formatting");
        assert!(!is_safe(libc::malloc as *const () as usize), "libc's malloc");
        assert!(!is_safe(std::io::stdout as *const () as usize), "std::io::stdout, which has no symbol");
        assert!(!is_safe(0), "null");
        for leaf in crate::arch::preempt_word::code() {
            assert!(!is_safe(leaf), "a preemption-word leaf");
            assert!(!is_safe(leaf + 4), "inside a preemption-word leaf");
        }
    }
}
