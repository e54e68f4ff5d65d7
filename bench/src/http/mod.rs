//! `bench http`: the same HTTP/1.1 "hello" server in each peer
//! (`servers.rs`, and Go's in bench/go/http.go), loaded by `wrk` on
//! 127.0.0.1: 1 and 2 workers, 64 and 1000 connections, without and with
//! two CPU-bound spinning threads inside the server process. Prints
//! req/s and latency percentiles per peer, ours/peer ratios, and whether
//! the targets of issue 17 are met.

pub mod servers;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The peers with an HTTP server, in table order.
pub const PEERS: [&str; 5] = ["ours", "go", "tokio", "may", "os"];

#[derive(Clone, Debug, serde::Serialize)]
pub struct Row {
    pub peer: String,
    pub workers: usize,
    pub conns: usize,
    pub hogs: usize,
    /// Our time slice when not the default.
    pub slice_ms: Option<u64>,
    pub rps: Option<f64>,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub errors: String,
}

pub struct Config {
    /// Seconds each measured `wrk` run lasts.
    pub secs: u64,
    /// The hog counts to run (0 and 2 by default).
    pub hogs: Vec<usize>,
    /// The worker counts to run (1 and 2 by default).
    pub workers: Vec<usize>,
    /// Also run ours with this time slice (ms).
    pub slice_ms: Option<u64>,
    pub peers: Vec<String>,
}

/// The file-descriptor limit raised to its hard limit (1000 connections
/// need more than the usual 1024 with the server's own).
fn raise_nofile() {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit on a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(
    peer: &str,
    workers: usize,
    hogs: usize,
    slice_ms: Option<u64>,
    go: &Result<PathBuf, String>,
) -> Result<Server, String> {
    let mut cmd = if peer == "go" {
        let mut c = Command::new(go.as_ref()?);
        c.args(["http-server", &hogs.to_string()]).env("GOMAXPROCS", workers.to_string());
        c
    } else {
        let mut c = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
        c.args(["serve-http", peer, &workers.to_string(), &hogs.to_string()]);
        if let Some(ms) = slice_ms {
            c.args(["--slice-ms", &ms.to_string()]);
        }
        c
    };
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().map_err(|e| format!("{peer}: {e}"))?;
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let mut server = Server { child, port: 0 };
    let line = rx.recv_timeout(Duration::from_secs(20)).map_err(|_| format!("{peer}: the server did not start"))?;
    server.port = line
        .trim()
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .ok_or(format!("{peer}: the server said {line:?}"))?;
    Ok(server)
}

/// A wrk latency like `452.00us`, `8.59ms` or `1.02s`, in µs.
fn micros(s: &str) -> Option<f64> {
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
    let v: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => v,
        "ms" => v * 1e3,
        "s" => v * 1e6,
        "m" => v * 60e6,
        _ => return None,
    })
}

fn wrk(port: u16, conns: usize, secs: u64) -> Result<(f64, f64, f64, String), String> {
    // Bounded: against a server that never accepts, wrk waits for its
    // connects to time out (minutes).
    let out = Command::new("timeout")
        .args(["-k", "2", &(secs + 4).to_string(), "wrk"])
        .args(["-t2", &format!("-c{conns}"), &format!("-d{secs}s"), "--latency", "--timeout", "2s"])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .map_err(|e| format!("wrk: {e}"))?;
    if out.status.code() == Some(124) || out.status.code() == Some(137) {
        // Killed by `timeout`: nothing answered in time.
        return Ok((0.0, f64::NAN, f64::NAN, "wrk stopped: the server answered nothing".into()));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(|r| r.split_whitespace().next().unwrap_or(""))
    };
    let rps: f64 = match field("Requests/sec:").and_then(|v| v.parse().ok()) {
        Some(r) => r,
        // No request answered at all: wrk prints no rate.
        None if text.contains("requests in") => 0.0,
        None => return Err(format!("wrk said: {} {}", text.trim(), String::from_utf8_lossy(&out.stderr).trim())),
    };
    let p50 = field("50%").and_then(micros).unwrap_or(f64::NAN);
    let p99 = field("99%").and_then(micros).unwrap_or(f64::NAN);
    let mut errors = String::new();
    if let Some(l) = text.lines().find(|l| l.contains("Socket errors")) {
        errors.push_str(l.trim());
    }
    if let Some(l) = text.lines().find(|l| l.contains("Non-2xx")) {
        errors.push_str(l.trim());
    }
    Ok((rps, p50, p99, errors))
}

/// Runs the matrix; prints each figure as it comes.
pub fn run(cfg: &Config) -> Vec<Row> {
    raise_nofile();
    if let Err(why) = crate::setup::ensure_tool("wrk", "wrk") {
        eprintln!("bench: wrk: not installed ({why}); the HTTP rows are skipped");
        return Vec::new();
    }
    // Only the go rows read it: they say why when it is an Err.
    let go = if cfg.peers.iter().any(|p| p == "go") {
        crate::peers::go::build().inspect_err(|e| eprintln!("bench: {e}"))
    } else {
        Err("go: not asked for".to_owned())
    };
    let secs = cfg.secs;
    let mut rows = Vec::new();
    let start = Instant::now();
    for &hogs in &cfg.hogs {
        for &workers in &cfg.workers {
            for conns in [64, 1000] {
                let mut variants: Vec<(String, Option<u64>)> = cfg.peers.iter().map(|p| (p.clone(), None)).collect();
                if let Some(ms) = cfg.slice_ms.filter(|_| cfg.peers.iter().any(|p| p == "ours")) {
                    variants.push(("ours".into(), Some(ms)));
                }
                for (peer, slice_ms) in variants {
                    let mut row = Row {
                        peer: peer.clone(),
                        workers,
                        conns,
                        hogs,
                        slice_ms,
                        rps: None,
                        p50_us: None,
                        p99_us: None,
                        errors: String::new(),
                    };
                    match start_and_load(&peer, workers, hogs, slice_ms, &go, conns, secs) {
                        Ok((rps, p50, p99, errors)) => {
                            (row.rps, row.p50_us, row.p99_us, row.errors) = (Some(rps), Some(p50), Some(p99), errors)
                        }
                        Err(e) => row.errors = e,
                    }
                    eprintln!(
                        "  http {:<14} workers {workers} conns {conns:>4} hogs {hogs}: {:>9} req/s  p50 {:>9}  p99 {:>9} {}",
                        label(&row),
                        row.rps.map_or("-".into(), |v| format!("{v:.0}")),
                        row.p50_us.map_or("-".into(), fmt_us),
                        row.p99_us.map_or("-".into(), fmt_us),
                        row.errors
                    );
                    rows.push(row);
                }
            }
        }
    }
    eprintln!("  http: {} runs in {:.0} s", rows.len(), start.elapsed().as_secs_f64());
    rows
}

fn start_and_load(
    peer: &str,
    workers: usize,
    hogs: usize,
    slice_ms: Option<u64>,
    go: &Result<PathBuf, String>,
    conns: usize,
    secs: u64,
) -> Result<(f64, f64, f64, String), String> {
    let server = start(peer, workers, hogs, slice_ms, go)?;
    // A second of load first, not counted: connections made, threads and
    // buffers allocated, every peer at its steady state.
    // A server that answers nothing then (stalled behind the hogs) is
    // reported so without a second wait.
    if let Ok(w @ (rps, ..)) = wrk(server.port, conns, 1)
        && rps < 1.0
    {
        return Ok(w);
    }
    let r = wrk(server.port, conns, secs);
    drop(server);
    r
}

pub fn label(r: &Row) -> String {
    match r.slice_ms {
        Some(ms) => format!("{} ({ms} ms)", r.peer),
        None => r.peer.clone(),
    }
}

pub fn fmt_us(us: f64) -> String {
    if us.is_nan() {
        "-".into()
    } else if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

fn find<'a>(rows: &'a [Row], peer: &str, slice: Option<u64>, w: usize, c: usize, h: usize) -> Option<&'a Row> {
    rows.iter().find(|r| r.peer == peer && r.slice_ms == slice && r.workers == w && r.conns == c && r.hogs == h)
}

/// The table, and the targets' status.
pub fn table(rows: &[Row]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let mut labels: Vec<String> = Vec::new();
    for r in rows {
        if !labels.contains(&label(r)) {
            labels.push(label(r));
        }
    }
    let _ = writeln!(
        out,
        "HTTP hello under wrk (req/s, p99); ours/peer: req/s ratio (above 1 better), p99 ratio (below 1 better)"
    );
    let _ = write!(out, "{:<26}", "config");
    for l in &labels {
        let _ = write!(out, "{:>27}", l);
    }
    let _ = writeln!(out);
    for hogs in [0, 2] {
        for workers in [1, 2] {
            for conns in [64, 1000] {
                if !rows.iter().any(|r| r.workers == workers && r.conns == conns && r.hogs == hogs) {
                    continue;
                }
                let ours = find(rows, "ours", None, workers, conns, hogs);
                let _ = write!(
                    out,
                    "{:<26}",
                    format!("{workers}w {conns}c {}", if hogs > 0 { "2 hogs" } else { "no hogs" })
                );
                for l in &labels {
                    let r = rows
                        .iter()
                        .find(|r| &label(r) == l && r.workers == workers && r.conns == conns && r.hogs == hogs);
                    let cell = match r {
                        Some(Row { rps: Some(rps), .. }) if *rps < 1.0 => "stalled (0 req/s)".into(),
                        Some(Row { rps: Some(rps), p99_us: Some(p99), peer, slice_ms, .. }) => {
                            let ratio = match ours {
                                Some(Row { rps: Some(o), p99_us: Some(op), .. })
                                    if !(peer == "ours" && slice_ms.is_none()) =>
                                {
                                    format!(" ({:.2}/{:.2})", o / rps, op / p99)
                                }
                                _ => String::new(),
                            };
                            format!("{:.0}k {}{ratio}", rps / 1000.0, fmt_us(*p99))
                        }
                        Some(_) => "failed".into(),
                        None => "-".into(),
                    };
                    let _ = write!(out, "{cell:>27}");
                }
                let _ = writeln!(out);
            }
        }
    }
    let _ = writeln!(out, "\nTargets (issue 17):");
    for conns in [64, 1000] {
        let ours = find(rows, "ours", None, 1, conns, 0).and_then(|r| r.rps);
        let tokio = find(rows, "tokio", None, 1, conns, 0).and_then(|r| r.rps);
        let go = find(rows, "go", None, 1, conns, 0).and_then(|r| r.rps);
        if let (Some(o), Some(t)) = (ours, tokio) {
            let _ = writeln!(out, "  1w {conns}c no hogs: req/s >= tokio+hyper's: {:.2}x -> {}", o / t, met(o >= t));
        }
        if let (Some(o), Some(g)) = (ours, go) {
            let _ = writeln!(out, "  1w {conns}c no hogs: req/s >= 1.5x Go's: {:.2}x -> {}", o / g, met(o >= 1.5 * g));
        }
    }
    let slices: Vec<Option<u64>> =
        std::iter::once(None).chain(rows.iter().filter_map(|r| r.slice_ms).take(1).map(Some)).collect();
    for slice in slices {
        for workers in [1, 2] {
            for conns in [64, 1000] {
                let free = find(rows, "ours", None, workers, conns, 0).and_then(|r| r.p99_us);
                let hog = find(rows, "ours", slice, workers, conns, 2).and_then(|r| r.p99_us);
                let go = find(rows, "go", None, workers, conns, 2).and_then(|r| r.p99_us);
                let name = match slice {
                    Some(ms) => format!("ours ({ms} ms slice)"),
                    None => "ours".into(),
                };
                if let (Some(f), Some(h)) = (free, hog) {
                    let _ = writeln!(
                        out,
                        "  {workers}w {conns}c 2 hogs, {name}: p99 {} <= 3x hog-free {}: {:.1}x -> {}",
                        fmt_us(h),
                        fmt_us(f),
                        h / f,
                        met(h <= 3.0 * f)
                    );
                }
                if let (Some(h), Some(g)) = (hog, go) {
                    let _ = writeln!(
                        out,
                        "  {workers}w {conns}c 2 hogs, {name}: p99 10x better than Go's {}: {:.1}x -> {}",
                        fmt_us(g),
                        g / h,
                        met(g >= 10.0 * h)
                    );
                }
            }
        }
    }
    out
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}
