//! Where the bench builds and writes, and the outside tools it installs
//! when they are missing (`go` for the Go peer, `wrk` for `bench http`).
//!
//! Results go under the target directory, never into the tracked
//! `bench/results/` (the reference snapshot the READMEs link to), unless
//! `--out` says so.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The directory cargo built this binary into (`<target>/release` or
/// `<target>/debug`); the Go peer is built beside it.
pub fn build_dir() -> PathBuf {
    std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)).unwrap_or_else(std::env::temp_dir)
}

/// The workspace's target directory: `CARGO_TARGET_DIR` when it is set,
/// else the parent of [`build_dir`].
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let build = build_dir();
    build.parent().map_or(build.clone(), Path::to_path_buf)
}

/// Where results are written without `--out`: `<target>/bench-results`.
pub fn results_dir() -> PathBuf {
    target_dir().join("bench-results")
}

/// Whether `cmd` is on PATH.
fn on_path(cmd: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {cmd}")).output().is_ok_and(|o| o.status.success())
}

/// Makes sure `cmd` is on PATH: when it is missing and we may (root, with
/// apt-get), installs the Debian package `pkg`, saying so. `Err` says why
/// the tool is still missing, for a "`cmd`: not installed (why)" note.
pub fn ensure_tool(cmd: &str, pkg: &str) -> Result<(), String> {
    if on_path(cmd) {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root || !on_path("apt-get") {
        let why = if root { "no apt-get" } else { "not root" };
        return Err(format!("{why} to install Debian's {pkg}"));
    }
    eprintln!("bench: {cmd} is missing: installing the Debian package {pkg} (apt-get update, apt-get install) ...");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("apt-get update -qq && apt-get install -y -qq --no-install-recommends {pkg}"))
        .output()
        .map_err(|e| format!("apt-get: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("no message");
        return Err(format!("apt-get install {pkg} failed: {}", last.trim()));
    }
    if !on_path(cmd) {
        return Err(format!("{pkg} installed, but still not on PATH"));
    }
    eprintln!("bench: installed {pkg}");
    Ok(())
}
