//! Keeps the bench harness from rotting: runs the real `rpc-bench` binary in
//! `--quick` mode (a few hundred calls per figure, its own redis-server and
//! worker processes) and checks that it finishes and writes a complete JSON
//! report. The figures themselves are not checked: this is not a timed test.

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn quick_run_produces_a_full_report() {
    rpc_testkit::require_redis_server();
    let dir = std::env::temp_dir().join(format!("rpc-bench-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let json = dir.join("out.json");
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_rpc-bench"))
        .args(["--quick", "--json"])
        .arg(&json)
        .output()
        .expect("run rpc-bench");
    assert!(
        output.status.success(),
        "rpc-bench --quick failed\n--- stdout ---\n{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "quick mode took {:?}",
        started.elapsed()
    );
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("| figure | floor (raw Redis)"), "{table}");

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("JSON report written"))
            .expect("JSON report parses");
    let rows = report["rows"].as_array().expect("rows");
    // 4 latency figures, 3 CPU-per-call and 3 runs-per-call figures, 2
    // against the blocking floor, 8 throughput figures, 1 fire-and-forget
    // figure.
    assert_eq!(rows.len(), 21, "{report:#}");
    for row in rows {
        for field in ["floor", "rpc", "ratio"] {
            let v = row[field].as_f64().unwrap_or(f64::NAN);
            assert!(v.is_finite() && v > 0.0, "{field} in {row}");
        }
    }
    assert_eq!(report["memory"].as_array().map(Vec::len), Some(4));
    assert!(report["targets"].as_array().is_some_and(|t| t.len() == 4));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--telemetry-compare` in `--quick` mode: both states measured in
/// alternating rounds, each round's figures and the medians printed. The
/// figures are not checked, only that every round and summary row is there.
#[test]
fn quick_telemetry_compare_prints_every_round_and_the_medians() {
    rpc_testkit::require_redis_server();
    let output = Command::new(env!("CARGO_BIN_EXE_rpc-bench"))
        .args(["--quick", "--telemetry-compare", "--seq-rounds", "2"])
        .output()
        .expect("run rpc-bench");
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "rpc-bench --quick --telemetry-compare failed\n--- stdout ---\n{table}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for state in ["off", "on"] {
        for round in 1..=2 {
            let row = format!("| {state} | {round} | ");
            assert!(table.contains(&row), "no {row:?} in\n{table}");
        }
    }
    for figure in [
        "| sequential p50, ratio to the floor |",
        "| throughput at 64 in flight, ratio to the floor |",
        "| rpc-runtime worker CPU per sequential call",
    ] {
        assert!(table.contains(figure), "no {figure:?} in\n{table}");
    }
}
