//! The real `rpc` binary against a private redis-server and a worker. It
//! waits on the worker (its stats, its handlers) with generous deadlines,
//! never for a time.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rpc_runtime::{DynamicService, HandlerError, Worker};
use rpc_testkit::RedisServer;
use serde_json::json;

mod support;

use support::{rpc, rpc_status};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_fetch_and_dead_letters_from_the_shell() {
    let redis = RedisServer::start().expect("start redis-server");
    let url = redis.url();
    let healed = Arc::new(AtomicBool::new(false));
    let recovered = Arc::new(AtomicU32::new(0));
    let (h, r) = (healed.clone(), recovered.clone());
    let service = DynamicService::new("Math")
        .job("add", |req| async move {
            let (a, b) = (req.data["a"].as_i64(), req.data["b"].as_i64());
            match (a, b) {
                (Some(a), Some(b)) => req.respond(json!(a + b)),
                _ => Err(HandlerError::fatal("a and b must be integers")),
            }
        })
        .job("flaky", move |req| {
            let (healed, recovered) = (h.clone(), r.clone());
            async move {
                if !healed.load(Ordering::SeqCst) {
                    return Err(HandlerError::retry("always"));
                }
                recovered.fetch_add(1, Ordering::SeqCst);
                req.respond(json!("fixed"))
            }
        });
    let worker = Worker::builder(&url)
        .max_attempts(2)
        .mount(service)
        .build()
        .await
        .unwrap();
    let stats = worker.stats_handle();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run_until(async {
        let _ = stopped.await;
    }));

    let u = url.clone();
    let (ok, out, err) =
        tokio::task::spawn_blocking(move || rpc(&u, &["call", "Math.add", r#"{"a": 2, "b": 3}"#]))
            .await
            .unwrap();
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "5");

    let u = url.clone();
    let (ok, out, _) = tokio::task::spawn_blocking(move || {
        rpc(&u, &["call", "Math.add", r#"{"a":1,"b":1}"#, "--full"])
    })
    .await
    .unwrap();
    assert!(ok);
    let full: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(full["data"], json!(2));
    assert!(full["response_key"]
        .as_str()
        .unwrap()
        .contains(full["id"].as_str().unwrap()));

    let u = url.clone();
    let (ok, _, err) =
        tokio::task::spawn_blocking(move || rpc(&u, &["call", "Math.add", r#"{"a": "x"}"#]))
            .await
            .unwrap();
    assert!(!ok);
    assert!(err.contains("a and b must be integers"), "{err}");

    let u = url.clone();
    let (ok, _, err) =
        tokio::task::spawn_blocking(move || rpc(&u, &["call", "Math.add", "not json"]))
            .await
            .unwrap();
    assert!(!ok);
    assert!(err.contains("read the parameters"), "{err}");

    let u = url.clone();
    let (ok, _, err) = tokio::task::spawn_blocking(move || {
        rpc(&u, &["call", "Math.flaky", "{}", "--timeout", "10"])
    })
    .await
    .unwrap();
    assert!(!ok);
    assert!(err.contains("dead_lettered"), "{err}");
    let u = url.clone();
    let (ok, out, _) =
        tokio::task::spawn_blocking(move || rpc(&u, &["dead-letters", "Math", "--format", "json"]))
            .await
            .unwrap();
    assert!(ok);
    let first: serde_json::Value =
        serde_json::from_str(out.lines().next().expect("one dead letter")).unwrap();
    assert_eq!(first["message"]["job"], json!("Math.flaky"));
    assert!(first["reason"].as_str().unwrap().contains("always"));

    // The bug is fixed: replay the dead letter; it runs again and succeeds.
    healed.store(true, Ordering::SeqCst);
    let u = url.clone();
    let (ok, out, err) = tokio::task::spawn_blocking(move || rpc(&u, &["replay", "Math", "--all"]))
        .await
        .unwrap();
    assert!(ok, "{err}");
    assert!(out.starts_with("replayed "), "{out}");
    let t0 = std::time::Instant::now();
    while recovered.load(Ordering::SeqCst) == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "replayed job never ran"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let u = url.clone();
    let (ok, out, _) =
        tokio::task::spawn_blocking(move || rpc(&u, &["dead-letters", "Math", "--format", "json"]))
            .await
            .unwrap();
    assert!(ok);
    assert!(
        out.trim().is_empty(),
        "dead letter removed after replay: {out}"
    );

    // Fire and forget, then fetch: a one-way call keeps no result.
    let succeeded_before = stats().succeeded;
    let u = url.clone();
    let (ok, id, _) = tokio::task::spawn_blocking(move || {
        // --keep 0: fire and forget, keeping nothing (the default keeps the
        // result 5 min for `rpc fetch`; see tests/call_results.rs).
        rpc(
            &u,
            &[
                "call",
                "Math.add",
                r#"{"a":1,"b":2}"#,
                "--no-wait",
                "--keep",
                "0",
            ],
        )
    })
    .await
    .unwrap();
    assert!(ok);
    // Fetched once the worker has run it (its stats say so): a result kept
    // would be there by then.
    let t0 = std::time::Instant::now();
    while stats().succeeded == succeeded_before {
        assert!(t0.elapsed() < Duration::from_secs(60), "the call never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let u = url.clone();
    let id = id.trim().to_owned();
    let (ok, _, err) = tokio::task::spawn_blocking(move || rpc(&u, &["fetch", &id]))
        .await
        .unwrap();
    assert!(!ok);
    assert!(err.contains("no result is kept"), "{err}");

    // A wrong URL is a clear error, not a hang or a panic.
    let (ok, _, err) =
        tokio::task::spawn_blocking(|| rpc("postgres://nope", &["call", "Math.add"]))
            .await
            .unwrap();
    assert!(!ok);
    assert!(err.contains("invalid broker URL"), "{err}");

    let _ = stop.send(());
    running.await.unwrap().unwrap();
}

/// A dead letter's id as redis-cli prints it after `XADD`.
fn add_dead_letter(redis: &RedisServer, service: &str, payload: &str) -> String {
    let key = format!("rpc:{{{service}}}:dead");
    let token = redis.cli(["XADD", &key, "*", "reason", "test", "m", payload]);
    token.trim().to_owned()
}

/// Reproduces `rpc replay SERVICE --all` stopping at the first unreadable
/// dead letter: every readable one is replayed, the unreadable one is
/// named on stderr, left in place, and the exit status says not all went.
#[test]
fn replay_all_replays_every_readable_dead_letter_and_names_the_rest() {
    rpc_testkit::require_redis_server();
    let redis = RedisServer::start().expect("start redis-server");
    let url = redis.url();
    let job = |id: &str| format!(r#"{{"v":1,"id":"{id}","job":"Replay.echo","params":{{}}}}"#);
    let first = add_dead_letter(&redis, "Replay", &job("first"));
    let garbage = add_dead_letter(&redis, "Replay", "not a job message");
    let last = add_dead_letter(&redis, "Replay", &job("last"));

    let (code, out, err) = rpc_status(&url, &["replay", "Replay", "--all"]);
    assert_eq!(
        code, 1,
        "an unreadable dead letter must fail the run: {out}{err}"
    );
    for token in [&first, &last] {
        assert!(out.contains(&format!("replayed {token} ")), "{out}");
    }
    assert!(
        err.contains(&format!("could not replay {garbage}: ")),
        "{err}"
    );
    assert!(
        err.contains(&format!("replayed 2, could not replay 1: {garbage}")),
        "{err}"
    );
    let queued = redis.cli(["XRANGE", "rpc:{Replay}:jobs", "-", "+"]);
    for id in ["\"id\":\"first\"", "\"id\":\"last\""] {
        assert!(queued.contains(id), "{queued}");
    }
    assert_eq!(redis.cli(["XLEN", "rpc:{Replay}:jobs"]).trim(), "2");
    let left = redis.cli(["XRANGE", "rpc:{Replay}:dead", "-", "+"]);
    assert!(
        left.contains(&garbage) && !left.contains(&first) && !left.contains(&last),
        "{left}"
    );

    // Only readable dead letters: all replayed, success.
    let other = add_dead_letter(&redis, "Other", &job("other"));
    let (ok, out, err) = rpc(&url, &["replay", "Other", "--all"]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("replayed {other} ")), "{out}");
    assert_eq!(redis.cli(["XLEN", "rpc:{Other}:dead"]).trim(), "0");
}
