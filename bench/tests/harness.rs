//! End-to-end through the child-process harness, for our runtime only.
//! Asserts the shape of the result, never a timing.

use std::process::Command;

#[test]
fn quick_yield_run_for_ours_produces_a_well_formed_result() {
    let out_dir = std::env::temp_dir().join(format!("bench-harness-test-{}", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["all", "--quick", "--runs", "1", "--scenarios", "yield2", "--peers", "ours", "--out"])
        .arg(&out_dir)
        .output()
        .expect("the bench binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "bench failed: {}\n{stdout}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("(yield2)"), "the table names the scenario:\n{stdout}");

    let text = std::fs::read_to_string(out_dir.join("latest.json")).expect("latest.json written");
    let json: serde_json::Value = serde_json::from_str(&text).expect("latest.json is JSON");
    assert_eq!(json["quick"], true);
    let scenarios = json["scenarios"].as_array().expect("a scenario list");
    assert_eq!(scenarios.len(), 1);
    assert_eq!(scenarios[0]["id"], "yield2");
    assert_eq!(scenarios[0]["unit"], "ns/yield");
    let peers = scenarios[0]["peers"].as_array().expect("a peer list");
    assert_eq!(peers.len(), 1);
    let ours = &peers[0];
    assert_eq!(ours["peer"], "ours");
    assert_eq!(ours["status"], "ok", "{ours}");
    let median = ours["median"].as_f64().expect("a median");
    assert!(median.is_finite() && median > 0.0, "median {median}");
    assert_eq!(ours["values"].as_array().map(Vec::len), Some(1));
    let _ = std::fs::remove_dir_all(&out_dir);
}

/// Without `--out`, files go to `$CARGO_TARGET_DIR/bench-results`, never
/// into the tracked bench/results/.
#[test]
fn without_out_results_go_under_the_target_dir() {
    let target = std::env::temp_dir().join(format!("bench-target-test-{}", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["--quick", "--runs", "1", "--scenarios", "yield2", "--peers", "ours"])
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("the bench binary runs");
    assert!(output.status.success(), "bench failed: {}", String::from_utf8_lossy(&output.stderr));
    for file in ["latest.json", "latest-table.txt"] {
        let path = target.join("bench-results").join(file);
        assert!(path.is_file(), "{} missing", path.display());
    }
    let table = std::fs::read_to_string(target.join("bench-results/latest-table.txt")).unwrap();
    assert!(table.contains("(yield2)"), "the table file names the scenario:\n{table}");
    let _ = std::fs::remove_dir_all(&target);
}

#[test]
fn run_one_reports_not_applicable_instead_of_failing() {
    let output = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["run-one", "floor", "ours", "--quick"])
        .output()
        .expect("the bench binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().find_map(|l| l.strip_prefix("BENCH-RESULT ")).expect("a result line");
    let json: serde_json::Value = serde_json::from_str(line).expect("JSON");
    assert_eq!(json["status"], "not-applicable");
    assert!(json["note"].as_str().is_some_and(|n| !n.is_empty()));
}

#[test]
fn quick_fairness_run_for_ours_reports_every_hog_kind() {
    let output = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["run-one", "fairness", "ours", "--quick"])
        .output()
        .expect("the bench binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().find_map(|l| l.strip_prefix("BENCH-RESULT ")).expect("a result line");
    let json: serde_json::Value = serde_json::from_str(line).expect("JSON");
    assert_eq!(json["status"], "ok", "{json}");
    let mut shares = Vec::new();
    for kind in ["spin", "write", "getppid", "malloc", "std"] {
        let share = json["extra"][format!("share_{kind}_pct")].as_f64().expect("a share per kind");
        let stall = json["extra"][format!("stall_{kind}_ms")].as_f64().expect("a stall per kind");
        assert!(share.is_finite() && share >= 0.0, "{kind}: share {share}");
        assert!(stall.is_finite() && stall >= 0.0, "{kind}: stall {stall}");
        shares.push(share);
    }
    let lowest = shares.into_iter().fold(f64::INFINITY, f64::min);
    assert_eq!(json["value"].as_f64(), Some(lowest), "the figure is the lowest share");
    assert!(json["note"].as_str().is_some_and(|n| n.contains("goal")), "{json}");
}

/// The cross-worker scenarios report their figure and their extras, on
/// both of our schedulers.
/// Shapes only: on a 1-CPU machine they are n/a, which is checked instead.
#[test]
fn quick_cross_worker_scenarios_for_ours_report_their_extras() {
    let cases = [
        ("thread-ring", &["one_worker_ns"][..]),
        ("fork-join", &["w1_ms", "w2_ms"][..]),
        ("imbalance", &["w1_ms", "w2_ms"][..]),
        ("chameneos", &[][..]),
    ];
    for ((scenario, extras), peer) in cases.into_iter().flat_map(|c| [(c, "ours"), (c, "ours-ws")]) {
        let output = Command::new(env!("CARGO_BIN_EXE_bench"))
            .args(["run-one", scenario, peer, "--quick"])
            .output()
            .expect("the bench binary runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout.lines().find_map(|l| l.strip_prefix("BENCH-RESULT ")).expect("a result line");
        let json: serde_json::Value = serde_json::from_str(line).expect("JSON");
        if json["status"] == "not-applicable" {
            assert_eq!(json["note"], "one CPU only", "{json}");
            continue;
        }
        assert_eq!(json["status"], "ok", "{scenario}: {json}");
        let value = json["value"].as_f64().expect("a figure");
        assert!(value.is_finite() && value > 0.0, "{scenario}: {value}");
        for key in extras {
            let v = json["extra"][key].as_f64().unwrap_or_else(|| panic!("{scenario}: no {key} in {json}"));
            assert!(v.is_finite() && v > 0.0, "{scenario}: {key} = {v}");
        }
    }
}

/// `bench serve-http` starts each Rust peer's server, which answers a
/// keep-alive GET with the same body (what `bench http` loads with wrk).
#[test]
fn every_rust_http_server_answers_hello() {
    use std::io::{BufRead, BufReader, Read, Write};
    /// Killed however the test ends.
    struct Server(std::process::Child);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    for peer in ["ours", "tokio", "may", "os"] {
        let mut child = Server(
            Command::new(env!("CARGO_BIN_EXE_bench"))
                .args(["serve-http", peer, "1", "0"])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let mut line = String::new();
        BufReader::new(child.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port: u16 = line.trim().strip_prefix("PORT ").and_then(|p| p.parse().ok()).expect(&line);
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
        // Two requests on one connection: keep-alive.
        let mut got = Vec::new();
        for _ in 0..2 {
            c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut buf = [0u8; 512];
            let start = got.len();
            while !String::from_utf8_lossy(&got[start..]).contains("Hello, world!") {
                let n = c.read(&mut buf).unwrap();
                assert!(n > 0, "{peer}: closed early");
                got.extend_from_slice(&buf[..n]);
            }
        }
        // may_minihttp says "200 Ok".
        let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
        assert_eq!(text.matches("http/1.1 200 ok").count(), 2, "{peer}: {text}");
    }
}
