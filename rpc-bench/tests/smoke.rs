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
    // against the blocking floor, 8 throughput figures, 2 of Redis CPU per
    // call at 64 in flight, 1 fire-and-forget figure.
    assert_eq!(rows.len(), 23, "{report:#}");
    for row in rows {
        for field in ["floor", "rpc", "ratio"] {
            let v = row[field].as_f64().unwrap_or(f64::NAN);
            assert!(v.is_finite() && v > 0.0, "{field} in {row}");
        }
    }
    assert_eq!(report["memory"].as_array().map(Vec::len), Some(4));
    assert!(report["targets"].as_array().is_some_and(|t| t.len() == 5));
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

// Reproduces a `--schedule-lateness` run end to end (its own worker
// processes, the schedule read back, every start recorded): the mode's
// harness works and its JSON is complete; the figures are not checked.
#[test]
fn quick_schedule_lateness_run_reports_every_job() {
    rpc_testkit::require_redis_server();
    let dir = std::env::temp_dir().join(format!("rpc-bench-lateness-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let json = dir.join("out.json");
    let output = Command::new(env!("CARGO_BIN_EXE_rpc-bench"))
        .args(["--schedule-lateness", "--quick", "--json"])
        .arg(&json)
        .output()
        .expect("run rpc-bench");
    assert!(
        output.status.success(),
        "rpc-bench --schedule-lateness --quick failed\n--- stdout ---\n{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("JSON report written"))
            .expect("JSON report parses");
    let figures = &report["schedule_lateness"];
    assert_eq!(figures["ran"], 500, "{report:#}");
    assert_eq!(figures["missing"], 0, "{report:#}");
    assert_eq!(figures["duplicates"], 0, "{report:#}");
    assert_eq!(figures["early"], 0, "{report:#}");
    for field in ["p50_ms", "p99_ms", "max_ms"] {
        assert!(
            figures[field].as_f64().is_some_and(f64::is_finite),
            "{field}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--jobs` in `--quick` mode (500-job backlogs): every row of the jobs
/// report is there with sane figures: rates and Redis CPU positive and
/// finite, every job of a row costing at least one `XADD` (enqueue) or one
/// ack (drain) in Redis, the runtime's bulk row included (one batch of
/// typed calls). The figures themselves are not checked.
#[test]
fn quick_jobs_run_reports_every_row() {
    rpc_testkit::require_redis_server();
    let dir = std::env::temp_dir().join(format!("rpc-bench-jobs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let json = dir.join("out.json");
    let output = Command::new(env!("CARGO_BIN_EXE_rpc-bench"))
        .args(["--jobs", "--quick", "--json"])
        .arg(&json)
        .output()
        .expect("run rpc-bench");
    assert!(
        output.status.success(),
        "rpc-bench --jobs --quick failed\n--- stdout ---\n{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("JSON report written"))
            .expect("JSON report parses");
    let rows = report["rows"].as_array().expect("rows");
    let metrics: Vec<&str> = rows.iter().filter_map(|r| r["metric"].as_str()).collect();
    for prefix in [
        "enqueue one at a time",
        "enqueue with 64 in flight",
        "enqueue in bulk",
        "drain a backlog, 1 worker process, concurrency 1,",
        "drain a backlog, 1 worker process, concurrency 16",
        "drain a backlog, 1 worker process, concurrency 100",
    ] {
        let prefix = prefix.trim_end_matches(',');
        assert!(
            metrics.iter().any(|m| m.starts_with(prefix)),
            "no {prefix:?} in {metrics:?}"
        );
    }
    assert_eq!(rows.len(), 6, "{report:#}");
    for row in rows {
        let metric = row["metric"].as_str().unwrap_or("");
        assert!(row["missing"].is_null(), "nothing missing: {row}");
        for side in [&row["floor"], &row["rpc"]] {
            let rate = side["rate"].as_f64().unwrap_or(f64::NAN);
            let cpu = side["redis"]["cpu_us"].as_f64().unwrap_or(f64::NAN);
            assert!(rate.is_finite() && rate > 0.0, "rate in {row}");
            assert!(cpu.is_finite() && cpu >= 0.0, "Redis CPU in {row}");
            let commands = side["redis"]["commands"].as_object().expect("commands");
            let per_job = |name: &str| commands.get(name).and_then(|v| v.as_f64()).unwrap_or(0.0);
            if metric.starts_with("enqueue") {
                assert!(per_job("xadd") >= 0.99, "an XADD per job: {row}");
            } else {
                assert!(per_job("xack") > 0.0, "jobs acked: {row}");
            }
        }
    }
    let targets = report["targets"].as_array().expect("targets");
    assert!(targets.len() >= 3, "{report:#}");
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(!table.contains("missing: "), "{table}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Checks one `--shards` report: both comparisons (each configuration as
/// fast as it goes, then both paced to one rate), the target of each, and
/// the nodes' idle CPU.
fn check_shards_report(report: &serde_json::Value, shards: u64, masters: usize) {
    check_comparison(&report["saturated"], shards, masters);
    assert!(report["saturated"]["rate"].is_null(), "{report:#}");
    let paced = &report["paced"];
    check_comparison(paced, shards, masters);
    // The pace bounds both configurations' rates: at most the pace, give or
    // take the slice's edges.
    let rate = paced["rate"].as_f64().expect("paced rate");
    assert!(rate > 0.0, "{report:#}");
    for c in paced["configurations"].as_array().expect("configurations") {
        let calls = c["calls_per_s"].as_f64().unwrap_or(f64::NAN);
        assert!(
            calls <= rate * 1.15,
            "paced to {rate:.0}/s, ran {calls:.0}/s: {c}"
        );
    }
    assert_eq!(report["targets"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        report["idle_cpu_us_per_s"].as_array().map(Vec::len),
        Some(masters)
    );
}

/// Checks one comparison of a `--shards` report: both configurations (1
/// shard, then `shards`) with sane figures, an `XADD` per call, every node
/// listed with the shard queues it holds, shares adding up to 100%, and
/// the ratios.
fn check_comparison(comparison: &serde_json::Value, shards: u64, masters: usize) {
    let configurations = comparison["configurations"]
        .as_array()
        .expect("configurations");
    assert_eq!(configurations.len(), 2, "{comparison:#}");
    for (c, count) in configurations.iter().zip([1, shards]) {
        assert_eq!(c["shards"], count, "{c}");
        for field in ["calls_per_s", "redis_cpu_us", "commands"] {
            let v = c[field].as_f64().unwrap_or(f64::NAN);
            assert!(v.is_finite() && v > 0.0, "{field} in {c}");
        }
        let xadd = c["redis"]["commands"]["xadd"].as_f64().unwrap_or(0.0);
        assert!(xadd >= 0.99, "an XADD per call: {c}");
        let nodes = c["masters"].as_array().expect("masters");
        assert_eq!(nodes.len(), masters, "{c}");
        let held: u64 = nodes.iter().filter_map(|n| n["shards_held"].as_u64()).sum();
        assert_eq!(held, count, "every shard queue has one holder: {c}");
        for field in ["command_share", "cpu_share"] {
            let total: f64 = nodes.iter().filter_map(|n| n[field].as_f64()).sum();
            assert!(
                (total - 100.0).abs() < 0.5,
                "{field} adds up to {total}: {c}"
            );
        }
        assert_eq!(c["rounds"].as_array().map(Vec::len), Some(2), "{c}");
    }
    if masters > 1 {
        let holders = configurations[1]["masters"]
            .as_array()
            .expect("masters")
            .iter()
            .filter(|n| n["shards_held"].as_u64().unwrap_or(0) > 0)
            .count();
        assert!(
            holders >= 2,
            "{shards} shards on one master: {comparison:#}"
        );
    }
    for field in ["cpu_ratio", "cpu_ratio_median"] {
        assert!(
            comparison[field].as_f64().is_some_and(f64::is_finite),
            "{field}: {comparison:#}"
        );
    }
    assert_eq!(comparison["round_ratios"].as_array().map(Vec::len), Some(2));
}

/// Runs `rpc-bench --shards ... --quick --json` and returns its report.
fn quick_shards_run(args: &[&str], name: &str) -> serde_json::Value {
    let dir = std::env::temp_dir().join(format!("rpc-bench-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let json = dir.join("out.json");
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_rpc-bench"))
        .args(args)
        .args(["--quick", "--json"])
        .arg(&json)
        .output()
        .expect("run rpc-bench");
    assert!(
        output.status.success(),
        "rpc-bench {args:?} --quick failed\n--- stdout ---\n{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{args:?} --quick took {:?}",
        started.elapsed()
    );
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("| shards | calls/s |"), "{table}");
    let report = serde_json::from_slice(&std::fs::read(&json).expect("JSON report written"))
        .expect("JSON report parses");
    let _ = std::fs::remove_dir_all(&dir);
    report
}

/// `--shards 4 --quick` on one redis-server: 1 shard and 4 shards each
/// measured (the warm-up saw every shard written), every figure there.
#[test]
fn quick_shards_run_reports_both_configurations() {
    rpc_testkit::require_redis_server();
    let report = quick_shards_run(&["--shards", "4"], "shards");
    check_shards_report(&report, 4, 1);
}

/// `--shards 8 --cluster 3 --quick`: the same on a 3-master Cluster, each
/// master's share reported and the shards spread over more than one.
#[test]
fn quick_shards_run_on_a_cluster_reports_every_master() {
    rpc_testkit::require_redis_server();
    let report = quick_shards_run(&["--shards", "8", "--cluster", "3"], "shards-cluster");
    check_shards_report(&report, 8, 3);
    assert_eq!(report["cluster"], true);
}
