//! `rpc periodic` through the real binary against a private redis-server:
//! a real worker runs an interval job and registers a nightly cron job;
//! the listing shows both with their last and next runs, as a table and as
//! JSON; garbage written into the hashes lists as unreadable without
//! failing; an unknown service or a dead Redis exits non-zero with the
//! reason.
//!
//! The test waits on what Redis holds (the worker's first tick and its
//! registration, the clock passing the next run), not for a time.

use std::time::{Duration, Instant};

use rpc_runtime::{DynamicService, MissedTicks, Periodic, Worker};
use rpc_testkit::RedisServer;
use serde_json::{json, Value};

mod support;

use support::rpc_async;

type Running = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<rpc_runtime::StatsSnapshot, rpc_runtime::Error>>,
);

/// A worker serving `Files.sweep`, with `beat` every 200 ms and `nightly`
/// at 03:00 UTC (skipping missed runs).
async fn worker(url: &str) -> Running {
    let files =
        DynamicService::new("Files").job("sweep", |req| async move { req.respond(json!(null)) });
    let worker = Worker::builder(url)
        .mount(files)
        .periodic(Periodic::every(
            "beat",
            Duration::from_millis(200),
            "Files.sweep",
            json!({"dry": true}),
        ))
        .periodic(
            Periodic::cron("nightly", "0 0 3 * * *", "Files.sweep", json!({}))
                .missed(MissedTicks::Skip),
        )
        .build()
        .await
        .expect("worker");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(worker.run_until(async move {
        let _ = rx.await;
    }));
    (tx, task)
}

/// Polls `check` every 20 ms until it holds; panics with `what` after a
/// minute (generous: the condition is what the test waits for).
async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Redis's clock, in ms.
fn broker_ms(redis: &RedisServer) -> u64 {
    let time = redis.cli(["TIME"]);
    let mut parts = time.lines().map(|l| l.trim().parse::<u64>().unwrap());
    let (secs, micros) = (parts.next().unwrap(), parts.next().unwrap());
    secs * 1000 + micros / 1000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_lists_each_job_with_its_schedule_and_last_and_next_run() {
    // An operator asks what runs on a schedule and whether it does.
    let redis = RedisServer::start().expect("start redis-server");
    let url = redis.url();
    let running = worker(&url).await;
    wait_until("beat ran and nightly was registered", || {
        !redis
            .cli(["HGET", "rpc:{Files}:periodic:last", "beat"])
            .trim()
            .is_empty()
            && redis
                .cli(["HEXISTS", "rpc:{Files}:periodic", "nightly"])
                .trim()
                == "1"
    })
    .await;

    let (ok, out, err) = rpc_async(&url, &["periodic", "--json"]).await;
    assert!(ok, "{err}");
    let listed: Value = serde_json::from_str(&out).expect("JSON");
    let rows = listed.as_array().expect("an array");
    assert_eq!(rows.len(), 2, "{out}");
    let (beat, nightly) = (&rows[0], &rows[1]);
    assert_eq!(beat["name"], "beat");
    assert_eq!(beat["service"], "Files");
    assert_eq!(beat["job"], "Files.sweep");
    assert_eq!(beat["schedule"], "every 200ms");
    assert_eq!(beat["missed"], "run_once");
    assert_eq!(beat["params"], json!({"dry": true}));
    let last = beat["last_ms"].as_u64().expect("beat ran");
    assert_eq!(last % 200, 0);
    assert!(beat["next_ms"].as_u64().unwrap() > last);
    assert_eq!(nightly["schedule"], "cron 0 0 3 * * *");
    assert_eq!(nightly["missed"], "skip");
    assert_eq!(nightly["last_ms"], Value::Null);
    let next = nightly["next_ms"].as_u64().expect("a next run");
    assert_eq!(next % 86_400_000, 3 * 3_600_000, "03:00 UTC: {next}");

    // Hand-written garbage beside them: listed as unreadable, no failure.
    redis.cli(["HSET", "rpc:{Files}:periodic", "junk", "not json"]);
    let (ok, out, err) = rpc_async(&url, &["periodic", "Files"]).await;
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("NEXT RUN"),
        "{out}"
    );
    let line = |name: &str| {
        *lines
            .iter()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in\n{out}"))
    };
    let beat = line("beat ");
    assert!(
        beat.contains("every 200ms") && beat.contains("Files.sweep"),
        "{out}"
    );
    assert!(beat.contains(" ago") && beat.contains("in "), "{out}");
    let nightly = line("nightly ");
    assert!(
        nightly.contains("cron 0 0 3 * * *") && nightly.contains("never"),
        "{out}"
    );
    assert!(line("junk ").contains('?'), "{out}");
    assert!(
        out.contains("unreadable: the definition is not a JSON object"),
        "{out}"
    );

    // Every worker stopped: the next run goes overdue.
    let _ = running.0.send(());
    running.1.await.unwrap().unwrap();
    // Until Redis's clock is past beat's next run by more than the second
    // after which `rpc periodic` calls a run overdue.
    let definition: Value =
        serde_json::from_str(&redis.cli(["HGET", "rpc:{Files}:periodic", "beat"]))
            .expect("beat's definition");
    let next = definition["next_ms"].as_u64().expect("a next run");
    wait_until("beat's next run is a second past", || {
        broker_ms(&redis) > next + 1_100
    })
    .await;
    let (ok, out, err) = rpc_async(&url, &["periodic"]).await;
    assert!(ok, "{err}");
    assert!(line_of(&out, "beat ").contains("overdue"), "{out}");
}

fn line_of<'a>(out: &'a str, start: &str) -> &'a str {
    out.lines().find(|l| l.starts_with(start)).unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_of_an_unknown_service_or_a_dead_redis_exits_non_zero_with_the_reason() {
    // A typo or a wrong port must not look like "no periodic jobs".
    let redis = RedisServer::start().expect("start redis-server");
    redis.cli(["XADD", "rpc:{Math}:jobs", "*", "m", "{}"]);
    let url = redis.url();
    let (ok, out, err) = rpc_async(&url, &["periodic", "Math"]).await;
    assert!(ok, "a service without periodic jobs is not an error: {err}");
    assert!(out.is_empty(), "{out}");
    let (code, _, err) = support::rpc_status_async(&url, &["periodic", "Nope"]).await;
    assert_eq!(
        code, 2,
        "an unknown service is a command that could not run"
    );
    assert!(
        err.contains("`Nope`") && err.contains("known services: Math"),
        "{err}"
    );
    redis.cli(["SET", "rpc:{Odd}:periodic", "a string"]);
    let (ok, _, err) = rpc_async(&url, &["periodic", "Odd"]).await;
    assert!(!ok);
    assert!(err.contains("rpc:{Odd}:periodic holds a string"), "{err}");

    redis.kill().unwrap();
    // Not `url`: another test's server may have taken the freed port.
    let dead = redis.unreachable_url();
    for command in [
        &["periodic"][..],
        &["periodic", "--json"],
        &["periodic", "--format", "json"],
    ] {
        let (ok, out, err) = rpc_async(&dead, command).await;
        assert!(!ok, "{command:?} succeeded: {out}");
        assert!(err.contains("cannot connect"), "{command:?}: {err}");
    }
}
