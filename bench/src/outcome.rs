//! What one child process measured: the single JSON line it prints, which
//! the Go program prints too (see `go/main.go`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The marker the harness looks for on a child's stdout.
pub const MARKER: &str = "BENCH-RESULT ";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// `value` holds the figure.
    Ok,
    /// The peer has no equivalent; `note` says why.
    NotApplicable,
    /// The peer never let the measured thread run in time (scenario e).
    Starved,
    /// The child crashed, timed out or reported an error; `note` says what.
    Failed,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Outcome {
    pub status: Status,
    #[serde(default)]
    pub value: Option<f64>,
    #[serde(default)]
    pub note: Option<String>,
    /// Secondary figures (p99, max, fairness, thread counts...).
    #[serde(default)]
    pub extra: BTreeMap<String, f64>,
    /// Raw samples for plots (e.g. every lateness, in µs).
    #[serde(default)]
    pub samples: Vec<f64>,
}

impl Outcome {
    pub fn ok(value: f64) -> Self {
        Outcome { status: Status::Ok, value: Some(value), note: None, extra: BTreeMap::new(), samples: Vec::new() }
    }

    pub fn na(reason: impl Into<String>) -> Self {
        Self::with_status(Status::NotApplicable, reason)
    }

    pub fn failed(reason: impl Into<String>) -> Self {
        Self::with_status(Status::Failed, reason)
    }

    pub fn starved(reason: impl Into<String>) -> Self {
        Self::with_status(Status::Starved, reason)
    }

    fn with_status(status: Status, note: impl Into<String>) -> Self {
        Outcome { status, value: None, note: Some(note.into()), extra: BTreeMap::new(), samples: Vec::new() }
    }

    pub fn extra(mut self, key: &str, v: f64) -> Self {
        self.extra.insert(key.to_owned(), v);
        self
    }

    /// Adds a note (after any earlier one); empty notes are dropped.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        let note = note.into();
        self.note = match (self.note.take(), note.is_empty()) {
            (old, true) => old,
            (Some(old), false) => Some(format!("{note}; {old}")),
            (None, false) => Some(note),
        };
        self
    }

    pub fn samples(mut self, s: Vec<f64>) -> Self {
        self.samples = s;
        self
    }

    /// The line a child prints for the harness.
    pub fn to_line(&self) -> String {
        format!("{MARKER}{}", serde_json::to_string(self).expect("an outcome serialises"))
    }

    /// Finds and parses the marker line in a child's stdout.
    pub fn from_stdout(stdout: &str) -> Option<Outcome> {
        stdout.lines().rev().find_map(|l| l.strip_prefix(MARKER)).and_then(|j| serde_json::from_str(j).ok())
    }
}
