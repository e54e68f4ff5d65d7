//! `bench`: this runtime side by side with OS threads, may, tokio,
//! corosensei, Go and (for fork-join) rayon. See bench/README.md.
//!
//! - `bench [all] [--quick] [--runs N] [--scenarios a,b] [--peers x,y] [--out DIR] [--no-http]`
//! - `bench run-one SCENARIO PEER [--quick]` (what the harness runs in each child)
//! - `bench context-switch [--threads N] [--iterations N] [--workers N]`
//! - `bench regress [--quick] [--runs N] [--baseline FILE] [--out DIR]`
//! - `bench http [--quick] [--secs N] [--peers x,y] [--hogs 0,2] [--workers 1,2] [--slice-ms N] [--out DIR]`
//!   (HTTP servers under wrk; `--slice-ms` adds ours with that time slice)
//! - `bench serve-http PEER WORKERS HOGS [--slice-ms N]` (one server, for `bench http`)
//! - `bench list`
//!
//! Files go to `--out DIR`, by default `<target dir>/bench-results/`
//! (`setup::results_dir`); the tracked `bench/results/` is a reference
//! snapshot, written only when `--out bench/results` asks for it.

mod common;
mod fairness;
mod harness;
mod http;
mod outcome;
mod peers;
mod plot;
mod regress;
mod report;
mod scenario;
mod setup;

use scenario::{Params, Peer, SCENARIOS};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Options after the subcommand: `--name value` pairs and bare flags.
struct Opts {
    args: Vec<String>,
}

impl Opts {
    fn flag(&self, name: &str) -> bool {
        self.args.iter().any(|a| a == name)
    }

    fn value(&self, name: &str) -> Option<&str> {
        self.args.iter().position(|a| a == name).and_then(|i| self.args.get(i + 1)).map(String::as_str)
    }

    fn number(&self, name: &str, default: usize) -> Result<usize, String> {
        match self.value(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("{name} wants a number, got {v:?}")),
        }
    }

    /// Positional arguments (not flags, not flag values).
    fn positional(&self) -> Vec<&str> {
        let mut out = Vec::new();
        let mut skip = false;
        for a in &self.args {
            if skip {
                skip = false;
            } else if a.starts_with("--") {
                skip = !matches!(a.as_str(), "--quick");
            } else {
                out.push(a.as_str());
            }
        }
        out
    }
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let sub = if args.first().is_some_and(|a| !a.starts_with("--")) { args.remove(0) } else { "all".into() };
    let opts = Opts { args };
    let result = match sub.as_str() {
        "all" => all(&opts),
        "run-one" => run_one(&opts),
        "context-switch" => context_switch(&opts),
        "regress" => regress(&opts),
        "http" => http_all(&opts),
        "serve-http" => serve_http(&opts),
        "list" => {
            SCENARIOS.iter().for_each(|s| println!("{:<18} {} [{}]", s.id, s.title, s.unit));
            Ok(ExitCode::SUCCESS)
        }
        other => Err(format!("unknown subcommand {other:?}; see bench/README.md")),
    };
    result.unwrap_or_else(|e| {
        eprintln!("bench: {e}");
        ExitCode::from(2)
    })
}

fn params(opts: &Opts) -> Params {
    Params { quick: opts.flag("--quick") }
}

/// `--out DIR`, else `<target dir>/bench-results`.
fn out_path(opts: &Opts) -> PathBuf {
    opts.value("--out").map_or_else(setup::results_dir, PathBuf::from)
}

/// [`out_path`], made if missing.
fn out_dir(opts: &Opts) -> Result<PathBuf, String> {
    let out = out_path(opts);
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(out)
}

fn write(file: &Path, text: &str) -> Result<(), String> {
    std::fs::write(file, text).map_err(|e| format!("{}: {e}", file.display()))?;
    println!("wrote {}", file.display());
    Ok(())
}

fn all(opts: &Opts) -> Result<ExitCode, String> {
    let p = params(opts);
    let runs = opts.number("--runs", if p.quick { 1 } else { 5 })?.max(1);
    let scenarios = match opts.value("--scenarios") {
        None => SCENARIOS.iter().collect(),
        Some(list) => list
            .split(',')
            .map(|id| scenario::find(id).ok_or(format!("unknown scenario {id:?} (see `bench list`)")))
            .collect::<Result<Vec<_>, _>>()?,
    };
    let peers = match opts.value("--peers") {
        None => Peer::ALL.to_vec(),
        Some(list) => list
            .split(',')
            .map(|n| Peer::parse(n).ok_or(format!("unknown peer {n:?}")))
            .collect::<Result<Vec<_>, _>>()?,
    };
    let out = out_dir(opts)?;
    let cfg = harness::Config { params: p, runs, scenarios, peers };
    let results = harness::run(&cfg);
    let table = format!(
        "{}\nours/peer: ratio of medians. For a time (ns, µs, bytes) below 1 means ours is better; for a \
         rate (Mops/s, threads) above 1 does.\n{} run(s) per figure, peers interleaved; took {:.1} s.\n",
        report::table(&results),
        runs,
        results.elapsed.as_secs_f64()
    );
    println!();
    print!("{table}");
    write(&out.join("latest-table.txt"), &table)?;
    let json = report::to_json(&results, p.quick, runs);
    let text = serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?;
    write(&out.join("latest.json"), &(text + "\n"))?;
    for f in plot::all(&results, &out) {
        println!("wrote {}", f.display());
    }
    // The HTTP servers under wrk close the full run (not when scenarios
    // were picked, nor with --no-http).
    if opts.value("--scenarios").is_none() && !opts.flag("--no-http") {
        println!("\nHTTP servers under wrk (`bench http` alone runs just these):");
        http_all(opts)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn http_all(opts: &Opts) -> Result<ExitCode, String> {
    let peers = match opts.value("--peers") {
        None => http::PEERS.iter().map(|p| p.to_string()).collect(),
        // From `all`, peers without an HTTP server (corosensei, rayon) are
        // left out quietly.
        Some(list) => list.split(',').filter(|p| http::PEERS.contains(p)).map(str::to_owned).collect::<Vec<_>>(),
    };
    if peers.is_empty() {
        return Err(format!("no HTTP server for these peers (have {})", http::PEERS.join(", ")));
    }
    let list = |name: &str, default: &[usize]| -> Result<Vec<usize>, String> {
        match opts.value(name) {
            None => Ok(default.to_vec()),
            Some(v) => v.split(',').map(|n| n.parse().map_err(|_| format!("{name}: {n:?}"))).collect(),
        }
    };
    let (hogs, workers) = (list("--hogs", &[0, 2])?, list("--workers", &[1, 2])?);
    let slice_ms =
        opts.value("--slice-ms").map(|v| v.parse::<u64>().map_err(|_| format!("--slice-ms: {v:?}"))).transpose()?;
    // 10 s: the measured wrk connects anew (the warm-up is another wrk),
    // and in 3 s windows the connections' set-up beside two hogs decided
    // the p99 in some runs (bench/README.md, "HTTP servers under wrk").
    let secs = match opts.value("--secs") {
        Some(v) => v.parse::<u64>().ok().filter(|&s| s > 0).ok_or(format!("--secs: {v:?}"))?,
        None if opts.flag("--quick") => 1,
        None => 10,
    };
    let rows = http::run(&http::Config { secs, hogs, workers, slice_ms, peers });
    if rows.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    println!();
    print!("{}", http::table(&rows));
    let text = serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?;
    write(&out_dir(opts)?.join("http.json"), &(text + "\n"))?;
    Ok(ExitCode::SUCCESS)
}

fn serve_http(opts: &Opts) -> Result<ExitCode, String> {
    let pos = opts.positional();
    let [peer, workers, hogs] = pos[..] else {
        return Err("usage: bench serve-http PEER WORKERS HOGS [--slice-ms N]".into());
    };
    let workers = workers.parse().map_err(|_| format!("WORKERS: {workers:?}"))?;
    let hogs = hogs.parse().map_err(|_| format!("HOGS: {hogs:?}"))?;
    let slice =
        opts.value("--slice-ms").map(|v| v.parse::<u64>().map_err(|_| format!("--slice-ms: {v:?}"))).transpose()?;
    http::servers::serve(peer, workers, hogs, slice)?;
    Ok(ExitCode::SUCCESS)
}

fn run_one(opts: &Opts) -> Result<ExitCode, String> {
    let pos = opts.positional();
    let [scenario, peer] = pos[..] else {
        return Err("usage: bench run-one SCENARIO PEER [--quick]".into());
    };
    let peer = Peer::parse(peer).ok_or(format!("unknown peer {peer:?}"))?;
    let outcome = peers::run(peer, scenario, params(opts));
    println!("{}", outcome.to_line());
    // Exit at once: some scenarios leave threads parked on purpose.
    std::process::exit(0)
}

fn context_switch(opts: &Opts) -> Result<ExitCode, String> {
    let threads = opts.number("--threads", 100)?;
    let iterations = opts.number("--iterations", 20_000)? as u64;
    let workers = opts.number("--workers", 1)?;
    let (switches, elapsed) = peers::ours::context_switches(threads, iterations, workers);
    let per_s = switches as f64 / elapsed.as_secs_f64();
    println!("threads:               {threads} x {iterations} yields on {workers} worker(s)");
    println!("context switches:      {switches} (RoundRobinScheduler::worker_switches)");
    println!("total time:            {elapsed:?}");
    println!("switches per second:   {per_s:.0}");
    println!("average switch time:   {:.1} ns", elapsed.as_nanos() as f64 / switches.max(1) as f64);
    Ok(ExitCode::SUCCESS)
}

fn regress(opts: &Opts) -> Result<ExitCode, String> {
    let p = params(opts);
    let runs = opts.number("--runs", 5)?.max(1);
    // `--baseline FILE` is read and updated in place; the tracked default
    // is only read, its update written to the output directory.
    let (path, save_to) = match opts.value("--baseline") {
        Some(file) => (PathBuf::from(file), PathBuf::from(file)),
        None => (Path::new(env!("CARGO_MANIFEST_DIR")).join("baseline.json"), out_path(opts).join("baseline.json")),
    };
    let current = regress::measure(p, runs);
    match regress::check(&path, &save_to, current, p, runs).map_err(|e| e.to_string())? {
        regress::Verdict::Pass => Ok(ExitCode::SUCCESS),
        regress::Verdict::Regressed => {
            println!("regression: some figure is more than 5 % slower than {}", path.display());
            Ok(ExitCode::FAILURE)
        }
    }
}
