//! Go: a separate program (`bench/go/main.go`) built with the `go` on
//! PATH (installed from Debian's `golang-go` when missing and we may), run
//! by the harness like the other children. Nothing here needs Go to
//! compile.

use crate::setup;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds the Go program beside the bench's binary; `Err` says why Go
/// cannot run.
pub fn build() -> Result<PathBuf, String> {
    setup::ensure_tool("go", "golang-go").map_err(|why| format!("go: not installed ({why})"))?;
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("go");
    let out = setup::build_dir().join("bench-go");
    let status = Command::new("go")
        .current_dir(&src)
        .args(["build", "-o"])
        .arg(&out)
        .arg(".")
        .env("GOFLAGS", "-mod=mod")
        .env("GO111MODULE", "on")
        .output()
        .map_err(|e| format!("go build: {e}"))?;
    if !status.status.success() {
        return Err(format!("go build failed: {}", String::from_utf8_lossy(&status.stderr).trim()));
    }
    Ok(out)
}

/// `go version`'s version field, for the report.
pub fn version() -> Option<String> {
    let out = Command::new("go").arg("version").output().ok()?;
    String::from_utf8(out.stdout).ok()?.split_whitespace().nth(2).map(str::to_owned)
}
