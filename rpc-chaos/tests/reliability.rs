//! The runtime's promises (DESIGN.md, "Runtime semantics"), each proven with
//! `chaos-worker` processes and a private redis-server: at-least-once across
//! a crash, dead letters, deadlines, one inbox per client, no leaks, graceful
//! shutdown, bounded concurrency, and Redis going away and coming back.
//!
//! Each test waits on what a process did (a worker's `start` and `stats`
//! lines, a reply, the keys left in Redis) with a generous deadline
//! ([`PATIENCE`]), never for a time and then looks. The time bounds left
//! are lower bounds (nothing happens early) or far ones that tell a kept
//! promise from a broken one: a caller that gave up at its 1 s deadline
//! against one that waited for the 20 s job.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rpc_chaos::{jobs_key, pending_count, timeout, Event, WorkerProcess};
use rpc_runtime::{Client, Error, ErrorKind, JobRef};
use rpc_testkit::RedisServer;
use serde_json::json;

/// How long any waited-for event may take on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_chaos-worker"))
}

fn connections(redis: &RedisServer) -> usize {
    redis.cli(["CLIENT", "LIST"]).lines().count()
}

/// The caller's own timer (`Timeout`) and the worker cancelling the job at
/// the same deadline (`deadline_exceeded` reply) race; either is the promise
/// kept: the caller stopped waiting at its deadline.
fn timed_out(err: &Error) -> bool {
    matches!(err, Error::Timeout { .. }) || err.remote_kind() == Some(ErrorKind::DeadlineExceeded)
}

fn stats_of(worker: &mut WorkerProcess) -> serde_json::Value {
    match worker.wait_for(PATIENCE, |e| matches!(e, Event::Stats(_))) {
        Ok(Event::Stats(v)) => v,
        other => panic!("no stats line: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_job_is_taken_over_then_dead_lettered() {
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let args = ["--visibility-ms", "1000", "--max-attempts", "2"];
    let mut a = WorkerProcess::start(bin(), &url, &args).expect("worker a");
    let client = Client::connect(&url).await.unwrap();
    let caller = {
        let client = client.clone();
        tokio::spawn(async move {
            let t0 = Instant::now();
            let r = client
                .call("Chaos.sleep", json!({"ms": 60_000}))
                .options(timeout(30_000))
                .response()
                .await;
            (r, t0.elapsed())
        })
    };
    let Event::Start(id, 1) = a
        .wait_for(PATIENCE, |e| matches!(e, Event::Start(..)))
        .unwrap()
    else {
        panic!("first attempt expected")
    };
    a.child.sigkill().unwrap();
    let killed_a = Instant::now();

    // Another process takes the job over once the lease is idle for 1 s.
    let mut b = WorkerProcess::start(bin(), &url, &args).expect("worker b");
    let started = b
        .wait_for(PATIENCE, |e| matches!(e, Event::Start(..)))
        .unwrap();
    let took_over_after = killed_a.elapsed();
    assert_eq!(
        started,
        Event::Start(id.clone(), 2),
        "Context::attempt is 2"
    );
    assert!(
        took_over_after >= Duration::from_millis(900),
        "taken over before the visibility timeout: {took_over_after:?}"
    );
    b.child.sigkill().unwrap();

    // Third delivery is past the limit of 2: dead letter, and the caller hears.
    let _c = WorkerProcess::start(bin(), &url, &args).expect("worker c");
    let (result, waited) = caller.await.unwrap();
    // Told it was dead-lettered, not left to its own 30 s timeout.
    let err = result.expect_err("dead-lettered");
    assert_eq!(err.remote_kind(), Some(ErrorKind::DeadLettered), "{err}");
    let dead = client.backend().dead_letters("Chaos", 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0]
            .reason
            .contains("delivered 3 times, over the limit of 2"),
        "{}",
        dead[0].reason
    );
    assert!(String::from_utf8_lossy(&dead[0].payload).contains(&id));
    eprintln!(
        "at-least-once: taken over {took_over_after:?} after SIGKILL; dead-lettered after {waited:?}: {}",
        dead[0].reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_bound_the_caller_and_travel_to_the_handler() {
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let _w = WorkerProcess::start(bin(), &url, &["--concurrency", "8"]).expect("worker");
    let client = Client::connect(&url).await.unwrap();

    // Per call: the job sleeps 20 s, the caller gives up at 1 s: not
    // before, and not when the job ends (the bound is far from both, for
    // a loaded machine).
    let t0 = Instant::now();
    let err = client
        .call("Chaos.sleep", json!({"ms": 20_000}))
        .options(timeout(1000))
        .response()
        .await
        .unwrap_err();
    let waited = t0.elapsed();
    assert!(timed_out(&err), "{err}");
    assert!(
        waited >= Duration::from_millis(1000) && waited < Duration::from_secs(10),
        "{waited:?}"
    );

    // Per job default (the schema's #[timeout_ms]): JobRef.timeout_ms.
    let job = JobRef {
        service: "Chaos",
        job: "sleep",
        timeout_ms: Some(700),
        max_attempts: None,
        shards: 1,
        priority: None,
    };
    let t0 = Instant::now();
    let err = rpc_runtime::__private::call::<serde_json::Value, serde_json::Value, _>(
        &client,
        job,
        json!({"ms": 20_000}),
    )
    .await
    .unwrap_err();
    let waited_default = t0.elapsed();
    let rpc_runtime::CallError::Rpc(err) = err else {
        panic!("no app error here")
    };
    assert!(timed_out(&err), "{err}");
    assert!(
        waited_default >= Duration::from_millis(690) && waited_default < Duration::from_secs(10),
        "{waited_default:?}"
    );

    // The handler sees the deadline.
    let before = rpc_protocol::time::unix_ms(std::time::SystemTime::now());
    let ctx = client
        .call("Chaos.context", json!({}))
        .options(timeout(5000))
        .response()
        .await
        .unwrap()
        .data;
    let after = rpc_protocol::time::unix_ms(std::time::SystemTime::now());
    // Sent between `before` and `after`, with 5 s to run (100 ms of slack
    // for the clocks of two processes read at different instants).
    let deadline = ctx["deadline_ms"].as_u64().expect("deadline seen");
    assert!(
        deadline >= before + 4900 && deadline <= after + 5100,
        "{deadline} vs sent between {before} and {after}"
    );
    assert_eq!(ctx["attempt"], 1);
    eprintln!(
        "deadlines: per-call timeout 1 s returned after {waited:?}; per-job 700 ms after {waited_default:?}; handler saw deadline now+{} ms",
        deadline - before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_does_not_start_an_expired_job() {
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let client = Client::connect(&url).await.unwrap();
    // Nobody serves the queue yet: the call times out, its message stays.
    let t0 = Instant::now();
    let err = client
        .call("Chaos.note", json!({"text": "late"}))
        .options(timeout(300))
        .response()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    // So the job's deadline has passed before any worker runs.
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(redis.cli(["XLEN", &jobs_key()]).trim(), "1");

    let mut w = WorkerProcess::start(bin(), &url, &[]).expect("worker");
    let fresh = client
        .call("Chaos.note", json!({"text": "fresh"}))
        .options(timeout(30_000))
        .response()
        .await
        .unwrap();
    assert_eq!(fresh.data, serde_json::Value::Null);
    w.child.sigterm().unwrap();
    let stats = stats_of(&mut w);
    let notes: Vec<String> = w
        .drain()
        .iter()
        .filter_map(|e| match e {
            Event::Note(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        notes,
        vec!["fresh".to_string()],
        "the expired job never ran"
    );
    assert_eq!(stats["expired"], 1, "{stats}");
    assert_eq!(redis.cli(["XLEN", &jobs_key()]).trim(), "0");
    eprintln!("expired job skipped: worker stats {stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_inbox_one_reader_and_results_fetched_from_another_process() {
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let _w = WorkerProcess::start(bin(), &url, &["--concurrency", "64"]).expect("worker");
    // The worker's connections, once it has opened them all (on a loaded
    // machine the last ones come after its `ready`): the same count seen
    // five times in a row, 50 ms apart.
    let mut baseline = connections(&redis);
    let mut same = 0;
    let settled_by = Instant::now() + PATIENCE;
    while same < 5 && Instant::now() < settled_by {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = connections(&redis);
        same = if now == baseline { same + 1 } else { 0 };
        baseline = now;
    }
    let client = Client::connect(&url).await.unwrap();
    let calls: Vec<_> = (0..500i64)
        .map(|n| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .call("Chaos.square", json!({"n": n}))
                    .options(timeout(30_000))
                    .response()
                    .await
                    .map(|r| (n, r.data))
            })
        })
        .collect();
    let mut most = 0;
    let t0 = Instant::now();
    while calls.iter().any(|c| !c.is_finished()) && t0.elapsed() < PATIENCE {
        most = most.max(connections(&redis).saturating_sub(baseline));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for call in calls {
        let (n, data) = call.await.unwrap().unwrap();
        assert_eq!(data, json!(n * n));
    }
    most = most.max(connections(&redis).saturating_sub(baseline));
    assert!(most <= 3, "500 concurrent calls used {most} connections");
    assert_eq!(client.in_flight(), 0);

    // Send now, await later; and fetch the kept result from another process.
    let pending = client
        .call("Chaos.square", json!({"n": 12}))
        .send()
        .await
        .unwrap();
    let id = pending.id().clone();
    // Awaited only once the result is there.
    let t0 = Instant::now();
    while client.fetch_result(&id).await.unwrap().is_none() {
        assert!(t0.elapsed() < PATIENCE, "the kept result never came");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(pending.wait().await.unwrap(), json!(144));
    let out = std::process::Command::new(bin())
        .args(["--url", &url, "--fetch", id.as_str()])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert_eq!(printed.trim(), "result 144");
    eprintln!(
        "one inbox: 500 concurrent calls used at most {most} connection(s) beyond the baseline of {baseline}; another process fetched `{}`",
        printed.trim()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_transient_stays_in_redis() {
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let mut w = WorkerProcess::start(
        bin(),
        &url,
        &["--concurrency", "64", "--inbox-ttl-ms", "1500"],
    )
    .expect("worker");
    let client = Client::builder(&url)
        .result_ttl(Duration::from_millis(1500))
        .connect()
        .await
        .unwrap();
    // Memory is measured once the worker has served a call: its scripts
    // loaded and its connections set up (on a loaded machine a worker
    // reports ready before all of that, and "before" came out 300 KB low).
    let warm = client
        .call("Chaos.square", json!({"n": 1}))
        .options(timeout(30_000))
        .response()
        .await;
    assert_eq!(warm.unwrap().data, json!(1));
    let memory_before = redis.used_memory();
    let slots = Arc::new(tokio::sync::Semaphore::new(100));
    let mut calls = Vec::new();
    for n in 0..2000i64 {
        let permit = slots.clone().acquire_owned().await.unwrap();
        let client = client.clone();
        calls.push(tokio::spawn(async move {
            let r = client
                .call("Chaos.square", json!({"n": n}))
                .options(timeout(30_000))
                .response()
                .await;
            drop(permit);
            assert_eq!(r.unwrap().data, json!(n * n));
        }));
    }
    for n in 0..200 {
        client
            .send("Chaos.note", json!({"text": format!("one-way {n}")}))
            .await
            .unwrap();
    }
    let mut kept = Vec::new();
    for n in 0..20i64 {
        kept.push(
            client
                .call("Chaos.square", json!({"n": n}))
                .send()
                .await
                .unwrap(),
        );
    }
    // A client dropped with calls in flight: its replies land in an inbox
    // nobody reads any more.
    {
        let doomed = Client::builder(&url)
            .result_ttl(Duration::from_millis(1500))
            .connect()
            .await
            .unwrap();
        let mut handles = Vec::new();
        for _ in 0..50 {
            handles.push(
                doomed
                    .call("Chaos.sleep", json!({"ms": 300}))
                    .send()
                    .await
                    .unwrap(),
            );
        }
        drop(handles);
    }
    for call in calls {
        call.await.unwrap();
    }
    for p in kept {
        p.wait().await.unwrap();
    }
    let t0 = Instant::now();
    while pending_count(&redis) != 0 || redis.cli(["XLEN", &jobs_key()]).trim() != "0" {
        assert!(t0.elapsed() < PATIENCE, "jobs not drained");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(client);
    w.child.sigterm().unwrap();
    let stats = stats_of(&mut w);

    // Right after: the queue (empty, with its group) and keys that expire.
    let keys = redis.keys("*");
    for key in &keys {
        let ttl: i64 = redis.cli(["PTTL", key]).trim().parse().unwrap();
        if *key == jobs_key() {
            assert_eq!(ttl, -1);
            continue;
        }
        // The service's registry of workers expires a day after the
        // last beat (docs/PROTOCOL.md, "Workers"); its daily counts 35
        // days after their last write ("Daily counts"); its record of
        // failed attempts a day after its last ("Recent failures").
        assert!(
            key.starts_with("rpc:result:")
                || key.starts_with("rpc:inbox:")
                || key == "rpc:{Chaos}:workers"
                || is_daily_count(key)
                || is_failure_record(key),
            "unexpected key {key}"
        );
        // -2: it expired between KEYS and PTTL.
        assert!(ttl >= 0 || ttl == -2, "{key} has no TTL ({ttl})");
    }
    assert_eq!(redis.cli(["XLEN", &jobs_key()]).trim(), "0");
    let groups = redis.cli(["XINFO", "GROUPS", &jobs_key()]);
    assert!(groups.contains("workers"), "{groups}");
    let keys_right_after = keys.len();

    // After the TTLs (1.5 s): only the queue is left (and the registry of
    // its workers, bounded, which says for a day when one was last seen,
    // the day's two counters, and the record of failed attempts, capped),
    // and memory is back.
    let t0 = Instant::now();
    let keys = loop {
        let mut keys = redis.keys("*");
        keys.retain(|k| k != "rpc:{Chaos}:workers" && !is_daily_count(k) && !is_failure_record(k));
        if keys == vec![jobs_key()] {
            break keys;
        }
        assert!(t0.elapsed() < PATIENCE, "keys never expired: {keys:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let memory_after = redis.used_memory();
    assert!(
        memory_after <= memory_before + 512 * 1024,
        "used_memory {memory_before} -> {memory_after}"
    );
    eprintln!(
        "no leaks: 2,000 calls + 200 one-way + 20 kept + 50 orphaned; {keys_right_after} keys right after (queue + expiring), {} after the TTLs; used_memory {memory_before} -> {memory_after} bytes; worker {stats}",
        keys.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_running_jobs_then_exits_zero() {
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let mut w = WorkerProcess::start(bin(), &url, &["--concurrency", "4"]).expect("worker");
    let client = Client::connect(&url).await.unwrap();
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .call("Chaos.sleep", json!({"ms": 1500}))
                    .options(timeout(20_000))
                    .response()
                    .await
            })
        })
        .collect();
    let t0 = Instant::now();
    while w
        .drain()
        .iter()
        .filter(|e| matches!(e, Event::Start(..)))
        .count()
        < 4
    {
        assert!(t0.elapsed() < PATIENCE, "jobs did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t0 = Instant::now();
    w.child.sigterm().unwrap();
    let status = tokio::task::spawn_blocking(move || {
        let s = w.child.wait_timeout(PATIENCE).unwrap();
        (s, w)
    })
    .await
    .unwrap();
    let (status, mut w) = status;
    let exited_after = t0.elapsed();
    let status = status.expect("worker exited");
    assert!(status.success(), "{status:?}");
    for call in calls {
        call.await.unwrap().expect("reply arrived");
    }
    let stats = stats_of(&mut w);
    assert_eq!(stats["succeeded"], 4, "{stats}");
    assert_eq!(pending_count(&redis), 0);
    eprintln!("graceful shutdown: exit 0 {exited_after:?} after SIGTERM, 4 running jobs finished and replied; {stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_bounded() {
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let _w = WorkerProcess::start(bin(), &url, &["--concurrency", "3"]).expect("worker");
    let client = Client::connect(&url).await.unwrap();
    // Jobs of a second, so that three of them overlap however slowly the
    // worker takes the next.
    let calls: Vec<_> = (0..12)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .call("Chaos.sleep", json!({"ms": 1000}))
                    .options(timeout(60_000))
                    .response()
                    .await
            })
        })
        .collect();
    let mut most = 0;
    for call in calls {
        let data = call.await.unwrap().unwrap().data;
        most = most.max(data["max_running"].as_u64().unwrap());
    }
    assert_eq!(most, 3, "at most 3 at once, and 3 were used");
    eprintln!("bounded concurrency: 12 jobs on a worker of 3, at most {most} ran at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_away_and_coming_back_empty() {
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let mut w = WorkerProcess::start(bin(), &url, &["--visibility-ms", "1000"]).expect("worker");
    let client = Client::connect(&url).await.unwrap();
    let r = client
        .call("Chaos.square", json!({"n": 7}))
        .options(timeout(30_000))
        .response()
        .await
        .unwrap();
    assert_eq!(r.data, json!(49));

    // A call in flight when Redis dies: answered by its deadline at the latest.
    let in_flight = {
        let client = client.clone();
        tokio::spawn(async move {
            let t0 = Instant::now();
            let r = client
                .call("Chaos.sleep", json!({"ms": 1000}))
                .options(timeout(2500))
                .response()
                .await;
            (r, t0.elapsed())
        })
    };
    // Killed once the worker runs it.
    w.wait_for(PATIENCE, |e| matches!(e, Event::Start(..)))
        .expect("the in-flight job started");
    redis.kill().unwrap();

    // While it is down: a clear broker error or a timeout, not long past
    // the deadline (a call hanging on the dead connection fails the bound,
    // generous for a loaded machine).
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let t0 = Instant::now();
        let err = client
            .call("Chaos.square", json!({"n": 1}))
            .options(timeout(1000))
            .response()
            .await
            .unwrap_err();
        let waited = t0.elapsed();
        assert!(
            matches!(err, Error::Broker(_) | Error::Timeout { .. }),
            "{err}"
        );
        assert!(waited < Duration::from_secs(5), "{waited:?}: {err}");
        outcomes.push(format!("{waited:?}: {err}"));
    }
    let (in_flight_result, waited) = in_flight.await.unwrap();
    assert!(waited < Duration::from_secs(8), "{waited:?}");
    if let Err(e) = &in_flight_result {
        assert!(matches!(e, Error::Broker(_) | Error::Timeout { .. }), "{e}");
    }

    // Back, empty (no persistence): the worker recreates its group and serves.
    redis.restart().unwrap();
    let t0 = Instant::now();
    let r = client
        .call("Chaos.square", json!({"n": 9}))
        .options(timeout(60_000))
        .response()
        .await;
    let recovered = t0.elapsed();
    assert_eq!(r.unwrap().data, json!(81));
    assert!(w.child.is_running().unwrap(), "the worker survived");
    let groups = redis.cli(["XINFO", "GROUPS", &jobs_key()]);
    assert!(groups.contains("workers"), "{groups}");
    for n in 0..20i64 {
        let r = client
            .call("Chaos.square", json!({"n": n}))
            .options(timeout(30_000))
            .response()
            .await
            .unwrap();
        assert_eq!(r.data, json!(n * n));
    }
    w.child.sigterm().unwrap();
    let stats = stats_of(&mut w);
    eprintln!(
        "redis restart: calls while down -> {outcomes:?}; in-flight call -> {:?} after {waited:?}; first call after restart answered in {recovered:?}; worker {stats}",
        in_flight_result.map(|_| ())
    );
}

/// Whether `key` is one of the service's daily counters (processed,
/// failed), which the dashboard charts for 30 days: bounded, expiring.
fn is_daily_count(key: &str) -> bool {
    key.starts_with("rpc:{Chaos}:stat:processed:") || key.starts_with("rpc:{Chaos}:stat:failed:")
}

/// Whether `key` is the service's record of recent failed attempts, which
/// the dashboard lists: capped at about 1,000 entries, expiring a day after
/// its last write.
fn is_failure_record(key: &str) -> bool {
    key == "rpc:{Chaos}:failures"
}
