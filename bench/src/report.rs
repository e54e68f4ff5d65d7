//! Summaries of the runs: the table on stdout and `latest.json`.

use crate::harness::{Cell, Results};
use crate::outcome::{Outcome, Status};
use crate::scenario::Peer;
use serde_json::{Value, json};
use std::fmt::Write;

/// Median, min and max over the runs that produced a figure.
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
}

pub fn stats(values: &[f64]) -> Option<Stats> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(Stats { median: v[v.len() / 2], min: v[0], max: v[v.len() - 1], runs: v.len() })
}

impl Cell {
    pub fn values(&self) -> Vec<f64> {
        self.outcomes.iter().filter(|o| o.status == Status::Ok).filter_map(|o| o.value).collect()
    }

    pub fn stats(&self) -> Option<Stats> {
        stats(&self.values())
    }

    /// The run whose figure is the median (its extras and samples are the
    /// ones reported), or the last run when none produced a figure.
    pub fn representative(&self) -> Option<&Outcome> {
        let s = self.stats();
        match s {
            Some(s) => self.outcomes.iter().find(|o| o.status == Status::Ok && o.value == Some(s.median)),
            None => self.outcomes.last(),
        }
    }

    pub fn status(&self) -> Status {
        if self.stats().is_some() { Status::Ok } else { self.outcomes.last().map_or(Status::Failed, |o| o.status) }
    }
}

/// ours/peer, and whether that means we are better.
pub fn ratio(results: &Results, cell: &Cell) -> Option<(f64, bool)> {
    if cell.peer == Peer::Ours {
        return None;
    }
    let ours = results.cell(cell.scenario.id, Peer::Ours)?.stats()?.median;
    let theirs = cell.stats()?.median;
    if theirs == 0.0 {
        return None;
    }
    let r = ours / theirs;
    Some((r, if cell.scenario.lower_is_better { r < 1.0 } else { r > 1.0 }))
}

fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.3e}", v)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn extras(o: &Outcome) -> String {
    o.extra
        .iter()
        .filter(|(k, _)| *k != "workers")
        .map(|(k, v)| format!("{k}={}", fmt_num(*v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The table: a heading per scenario, a row per peer.
pub fn table(results: &Results) -> String {
    let mut out = String::new();
    let mut last = "";
    for cell in &results.cells {
        let sc = cell.scenario;
        if sc.id != last {
            last = sc.id;
            let dir = if sc.lower_is_better { "lower" } else { "higher" };
            let _ = writeln!(out, "\n{} [{}; {dir} is better]  ({})", sc.title, sc.unit, sc.id);
            let _ = writeln!(
                out,
                "  {:<11} {:>10} {:>10} {:>10} {:>3}  {:<22} notes",
                "peer", "median", "min", "max", "n", "ours/peer"
            );
        }
        let rep = cell.representative();
        let note = rep.and_then(|o| o.note.clone()).unwrap_or_default();
        let extra = rep.map(extras).unwrap_or_default();
        let (med, min, max, n) = match cell.stats() {
            Some(s) => (fmt_num(s.median), fmt_num(s.min), fmt_num(s.max), s.runs.to_string()),
            None => {
                let word = match cell.status() {
                    Status::NotApplicable => "n/a",
                    Status::Starved => "starved",
                    _ => "failed",
                };
                (word.to_owned(), String::new(), String::new(), String::new())
            }
        };
        let r = match ratio(results, cell) {
            Some((r, better)) => format!("{r:.2} ({})", if better { "ours better" } else { "ours worse" }),
            None => String::new(),
        };
        let notes = [note, extra].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join("; ");
        let _ = writeln!(out, "  {:<11} {med:>10} {min:>10} {max:>10} {n:>3}  {r:<22} {notes}", cell.peer.name());
    }
    out
}

pub fn to_json(results: &Results, quick: bool, runs: usize) -> Value {
    let mut scenarios: Vec<Value> = Vec::new();
    let mut last = "";
    for cell in &results.cells {
        if cell.scenario.id != last {
            last = cell.scenario.id;
            let sc = cell.scenario;
            scenarios.push(json!({
                "id": sc.id, "title": sc.title, "unit": sc.unit,
                "lower_is_better": sc.lower_is_better, "peers": [],
            }));
        }
        let s = cell.stats();
        let rep = cell.representative();
        let entry = json!({
            "peer": cell.peer.name(),
            "status": cell.status(),
            "median": s.map(|s| s.median), "min": s.map(|s| s.min), "max": s.map(|s| s.max),
            "values": cell.values(),
            "ours_over_peer": ratio(results, cell).map(|r| r.0),
            "note": rep.and_then(|o| o.note.clone()),
            "extra": rep.map(|o| o.extra.clone()),
            "samples": rep.map(|o| o.samples.clone()).unwrap_or_default(),
            "failures": cell.outcomes.iter().filter(|o| o.status == Status::Failed)
                .filter_map(|o| o.note.clone()).collect::<Vec<_>>(),
        });
        if let Some(Value::Array(peers)) = scenarios.last_mut().and_then(|v| v.get_mut("peers")) {
            peers.push(entry);
        }
    }
    json!({
        "machine": machine(),
        "quick": quick,
        "runs": runs,
        "elapsed_s": results.elapsed.as_secs_f64(),
        "go": results.go_missing.clone().unwrap_or_else(|| crate::peers::go::version().unwrap_or_default()),
        "scenarios": scenarios,
    })
}

fn machine() -> Value {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name").map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned()));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    json!({
        "cpu": model,
        "allowed_cpus": crate::common::allowed_cpus().len(),
        "kernel": kernel.trim(),
        "vm.max_map_count": crate::common::max_map_count(),
    })
}
