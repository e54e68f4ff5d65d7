//! The user guide's "Performance Testing Framework": `bench regress`
//! measures this runtime's headline figures (medians of N child-process
//! runs, interleaved) and compares them with `bench/baseline.json`.

use crate::harness::run_child;
use crate::outcome::Status;
use crate::report::stats;
use crate::scenario::Params;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The figures compared: (id, unit, lower is better).
const METRICS: &[(&str, &str, bool)] = &[
    ("context-switch", "ns/switch", true),
    ("yield2", "ns/yield", true),
    ("yield100", "ns/yield", true),
    ("spawn1", "ns/thread", true),
    ("pingpong1", "ns/trip", true),
    ("mutex-uncontended", "ns/op", true),
    ("mutex-contended", "Mops/s", false),
];

/// Slower than this fraction fails the check.
pub const SLOWER: f64 = 0.05;
/// Faster than this fraction replaces the metric's baseline.
pub const FASTER: f64 = 0.10;

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Metric {
    pub value: f64,
    pub unit: String,
    pub lower_is_better: bool,
}

#[derive(Serialize, Deserialize, Default, Debug)]
pub struct Baseline {
    pub quick: bool,
    pub runs: usize,
    pub metrics: BTreeMap<String, Metric>,
}

/// Medians of `runs` runs of every metric, each run in a child process.
pub fn measure(p: Params, runs: usize) -> BTreeMap<String, Metric> {
    let exe = std::env::current_exe().expect("the bench binary's path");
    let mut values: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for run in 0..runs {
        for &(id, unit, _) in METRICS {
            let mut cmd = Command::new(&exe);
            cmd.args(["run-one", id, "ours"]).args(p.flag());
            let o = run_child(cmd, Duration::from_secs(120));
            match (o.status, o.value) {
                (Status::Ok, Some(v)) => {
                    eprintln!("[run {}/{runs}] {id:<18} {v:.2} {unit}", run + 1);
                    values.entry(id).or_default().push(v);
                }
                _ => eprintln!("[run {}/{runs}] {id:<18} {:?}: {}", run + 1, o.status, o.note.unwrap_or_default()),
            }
        }
    }
    METRICS
        .iter()
        .filter_map(|&(id, unit, lower)| {
            let s = stats(values.get(id)?)?;
            Some((id.to_owned(), Metric { value: s.median, unit: unit.to_owned(), lower_is_better: lower }))
        })
        .collect()
}

pub enum Verdict {
    Pass,
    Regressed,
}

/// Compares `current` with the baseline at `path`, printing a line per
/// metric; saves improved metrics (or a first baseline) to `save_to`.
pub fn check(
    path: &Path,
    save_to: &Path,
    current: BTreeMap<String, Metric>,
    p: Params,
    runs: usize,
) -> std::io::Result<Verdict> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(_) => {
            let b = Baseline { quick: p.quick, runs, metrics: current };
            save(save_to, &b)?;
            println!("no baseline at {}: saved this run as the baseline to {}", path.display(), save_to.display());
            return Ok(Verdict::Pass);
        }
    };
    let mut base: Baseline = serde_json::from_str(&text).map_err(std::io::Error::other)?;
    if base.quick != p.quick {
        return Err(std::io::Error::other(format!(
            "the baseline was measured with quick={}, this run with quick={}: pass the same mode",
            base.quick, p.quick
        )));
    }
    let mut regressed = false;
    let mut improved = false;
    println!("{:<18} {:>12} {:>12} {:>9}  verdict", "metric", "baseline", "current", "change");
    for (id, cur) in &current {
        let Some(old) = base.metrics.get(id).cloned() else {
            println!("{id:<18} {:>12} {:>12.2} {:>9}  new metric, added", "-", cur.value, "");
            base.metrics.insert(id.clone(), cur.clone());
            improved = true;
            continue;
        };
        // Positive = slower, whichever direction the unit runs.
        let slower = if cur.lower_is_better { cur.value / old.value - 1.0 } else { old.value / cur.value - 1.0 };
        let verdict = if slower > SLOWER {
            regressed = true;
            "REGRESSION (> 5 % slower)"
        } else if slower < -FASTER {
            improved = true;
            base.metrics.insert(id.clone(), cur.clone());
            "improved > 10 %: new baseline"
        } else {
            "ok"
        };
        println!(
            "{id:<18} {:>12.2} {:>12.2} {:>+8.1}%  {verdict}   [{}]",
            old.value,
            cur.value,
            slower * 100.0,
            cur.unit
        );
    }
    if improved && !regressed {
        base.runs = runs;
        save(save_to, &base)?;
        println!("saved the improved figures to {}", save_to.display());
    }
    Ok(if regressed { Verdict::Regressed } else { Verdict::Pass })
}

fn save(path: &Path, b: &Baseline) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(b).map_err(std::io::Error::other)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text + "\n")
}
