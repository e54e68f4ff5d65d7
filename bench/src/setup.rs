//! Where the bench builds, and the outside tools it installs when they
//! are missing (`go` for the Go peer, `wrk` for `bench http`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The directory cargo built this binary into (`<target>/release` or
/// `<target>/debug`); the Go peer is built beside it.
pub fn build_dir() -> PathBuf {
    std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)).unwrap_or_else(std::env::temp_dir)
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
