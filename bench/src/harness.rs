//! Runs every (scenario, peer) pair in a child process of its own, several
//! times, interleaving peers so that a burst of noise on the shared
//! machine lands on all of them rather than on one.

use crate::outcome::{Outcome, Status};
use crate::peers;
use crate::scenario::{Params, Peer, Scenario};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct Config {
    pub params: Params,
    pub runs: usize,
    pub scenarios: Vec<&'static Scenario>,
    pub peers: Vec<Peer>,
}

/// Every outcome of one (scenario, peer) pair, one per run.
pub struct Cell {
    pub scenario: &'static Scenario,
    pub peer: Peer,
    pub outcomes: Vec<Outcome>,
}

pub struct Results {
    pub cells: Vec<Cell>,
    /// Why Go did not run, when it did not.
    pub go_missing: Option<String>,
    pub elapsed: Duration,
}

impl Results {
    pub fn cell(&self, scenario: &str, peer: Peer) -> Option<&Cell> {
        self.cells.iter().find(|c| c.scenario.id == scenario && c.peer == peer)
    }
}

/// How the harness starts one child for one peer.
enum Launcher {
    SelfExe(PathBuf),
    Go(PathBuf),
    Missing(String),
}

impl Launcher {
    fn command(&self, scenario: &str, peer: Peer, p: Params) -> Result<Command, String> {
        let mut cmd = match self {
            Launcher::SelfExe(exe) => {
                let mut c = Command::new(exe);
                c.args(["run-one", scenario, peer.name()]);
                c
            }
            Launcher::Go(exe) => {
                let mut c = Command::new(exe);
                c.arg(scenario);
                c
            }
            Launcher::Missing(why) => return Err(why.clone()),
        };
        cmd.args(p.flag());
        Ok(cmd)
    }
}

fn timeout(scenario: &Scenario, p: Params) -> Duration {
    match (scenario.once, p.quick) {
        (true, _) => Duration::from_secs(300),
        (false, true) => Duration::from_secs(30),
        (false, false) => Duration::from_secs(120),
    }
}

pub fn run(cfg: &Config) -> Results {
    let start = Instant::now();
    let exe = std::env::current_exe().expect("the bench binary's path");
    let mut go_missing = None;
    let launchers: Vec<Launcher> = cfg
        .peers
        .iter()
        .map(|&peer| match peer {
            Peer::Go => match peers::go::build() {
                Ok(path) => Launcher::Go(path),
                Err(why) => {
                    eprintln!("{why}");
                    go_missing = Some(why.clone());
                    Launcher::Missing(why)
                }
            },
            _ => Launcher::SelfExe(exe.clone()),
        })
        .collect();
    let mut cells: Vec<Cell> = cfg
        .scenarios
        .iter()
        .flat_map(|&s| cfg.peers.iter().map(move |&peer| Cell { scenario: s, peer, outcomes: Vec::new() }))
        .collect();
    for run in 0..cfg.runs {
        for cell in cells.iter_mut() {
            let static_answer = cell.outcomes.first().is_some_and(|o| o.status == Status::NotApplicable);
            if (cell.scenario.once && run > 0) || static_answer {
                continue;
            }
            let launcher = &launchers[cfg.peers.iter().position(|&p| p == cell.peer).unwrap()];
            let ours = matches!(cell.peer, Peer::Ours | Peer::OursWs);
            let outcome = match launcher.command(cell.scenario.id, cell.peer, cfg.params) {
                _ if !ours && crate::scenario::OURS_ONLY.contains(&cell.scenario.id) => {
                    Outcome::na("measures this runtime's own feature")
                }
                Ok(cmd) => run_child(cmd, timeout(cell.scenario, cfg.params)),
                Err(why) => Outcome::na(why),
            };
            eprintln!(
                "[run {}/{}] {:<18} {:<10} {}",
                run + 1,
                cfg.runs,
                cell.scenario.id,
                cell.peer.name(),
                brief(&outcome, cell.scenario.unit)
            );
            cell.outcomes.push(outcome);
        }
    }
    Results { cells, go_missing, elapsed: start.elapsed() }
}

fn brief(o: &Outcome, unit: &str) -> String {
    match (o.status, o.value) {
        (Status::Ok, Some(v)) => format!("{v:.1} {unit}"),
        _ => format!("{:?}: {}", o.status, o.note.as_deref().unwrap_or("")),
    }
}

/// Runs one child, killing it at `limit`, and reads its outcome line.
pub fn run_child(mut cmd: Command, limit: Duration) -> Outcome {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Outcome::failed(format!("cannot start the child: {e}")),
    };
    // Drain both pipes on threads, so a chatty child cannot block on a full pipe.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let err = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Outcome::failed(format!("waiting for the child: {e}")),
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let Some(status) = status else {
        return Outcome::failed(format!("timed out after {limit:?}"));
    };
    match Outcome::from_stdout(&stdout) {
        Some(o) => o,
        None => {
            let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
            Outcome::failed(format!(
                "child exited with {status} and no result; stderr: {}",
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ))
        }
    }
}
