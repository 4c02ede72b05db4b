//! Deadlines with skewed clocks: clients and workers are real processes
//! whose wall clocks are shifted by ±30 s with libfaketime (Debian's
//! `faketime`), against a private redis-server whose clock is right.
//!
//! Issue 10, point 4: the deadline used to be an absolute time on the
//! caller's clock. A client 5 s behind made every 2 s call fail
//! `deadline_exceeded` at once; a client 5 s ahead made a worker run a 3 s
//! job after its caller had given up. Now the caller sends the time left
//! (`timeout_ms`) and the worker measures it from Redis's timestamp of the
//! queue entry on Redis's clock, so neither machine's clock matters.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rpc_chaos::{Event, WorkerProcess};
use rpc_testkit::{RedisServer, Tool};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_chaos-worker"))
}

/// The environment that shifts a process's wall clock by `offset` (`-30s`,
/// `+30s`): libfaketime (`lib`), preloaded into the process itself (not
/// through the `faketime` wrapper, which would stand between the test and
/// the process it must kill), in its multi-threaded build for tokio's
/// threads. Only the wall clock: tokio's timers run on the monotonic clock,
/// which stays true, as it does on a machine whose clock is set wrong.
fn shifted(lib: &Path, offset: &str) -> [(&'static str, String); 3] {
    [
        ("LD_PRELOAD", lib.display().to_string()),
        ("FAKETIME", offset.to_owned()),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_owned()),
    ]
}

/// One call from a `chaos-worker --call` process whose clock is shifted by
/// `offset`: `("answer JSON" | "failed KIND", elapsed ms)`.
fn call_from(
    lib: &Path,
    offset: &str,
    url: &str,
    job: &str,
    params: &str,
    timeout_ms: u64,
) -> (String, u64) {
    let out = Command::new(bin())
        .args(["--url", url, "--call", job, "--params", params])
        .args(["--timeout-ms", &timeout_ms.to_string()])
        .envs(shifted(lib, offset))
        .output()
        .expect("chaos-worker --call");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("answer ") || l.starts_with("failed "))
        .unwrap_or_else(|| {
            panic!(
                "no answer line: {text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let (outcome, elapsed) = line.rsplit_once(' ').expect("elapsed");
    (outcome.to_owned(), elapsed.parse().expect("elapsed ms"))
}

fn worker_under(lib: &Path, offset: &str, url: &str) -> WorkerProcess {
    let env = shifted(lib, offset);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    WorkerProcess::start_with_env(bin(), url, &["--concurrency", "8"], &env)
        .expect("chaos-worker with a shifted clock")
}

fn final_stats(mut worker: WorkerProcess) -> serde_json::Value {
    worker.child.sigterm().unwrap();
    match worker.wait_for(Duration::from_secs(20), |e| matches!(e, Event::Stats(_))) {
        Ok(Event::Stats(v)) => v,
        other => panic!("no stats line: {other:?}"),
    }
}

/// For every pair of clocks (client and worker each behind, right or ahead
/// by 30 s): a quick call within its 2 s timeout is answered, and a 3 s job
/// with a 2 s timeout is cancelled by the worker at the deadline (counted
/// as expired) instead of running on after the caller gave up.
#[test]
fn deadlines_hold_with_client_and_worker_clocks_skewed_by_30_seconds() {
    // Skipped without libfaketime, unless the run requires every tool
    // (scripts/test, CI): then it fails.
    let Some(lib) = Tool::LibFaketime.or_skip("the clock-skew test") else {
        return;
    };
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    for worker_offset in ["-30s", "+0s", "+30s"] {
        let worker = worker_under(&lib, worker_offset, &url);
        for client_offset in ["-30s", "+30s"] {
            let case = format!("client {client_offset}, worker {worker_offset}");
            let (outcome, elapsed) = call_from(
                &lib,
                client_offset,
                &url,
                "Chaos.square",
                r#"{"n": 12}"#,
                2_000,
            );
            assert_eq!(outcome, "answer 144", "{case}: took {elapsed} ms");
            let (outcome, elapsed) = call_from(
                &lib,
                client_offset,
                &url,
                "Chaos.sleep",
                r#"{"ms": 3000}"#,
                2_000,
            );
            assert!(
                outcome == "failed timeout" || outcome == "failed deadline_exceeded",
                "{case}: {outcome}"
            );
            assert!(
                (1_900..2_900).contains(&elapsed),
                "{case}: the caller gave up after {elapsed} ms"
            );
        }
        let stats = final_stats(worker);
        let case = format!("worker {worker_offset}");
        assert_eq!(stats["succeeded"], 2, "{case}: {stats}");
        // Both 3 s jobs were cancelled at their deadline, not run to the end.
        assert_eq!(stats["expired"], 2, "{case}: {stats}");
    }
}
