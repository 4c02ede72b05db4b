//! `rpc workers` with the real binary against a private redis-server and
//! workers in this process: the listing (table and JSON, one service or
//! all, a service that does not exist), `quiet` and `stop`, and `rpc call`
//! telling why a call to a paused service timed out.

use std::time::{Duration, Instant};

use rpc_runtime::{DynamicService, Worker};
use rpc_testkit::RedisServer;
use serde_json::{json, Value};

mod support;

use support::rpc_async;

const PATIENCE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_are_listed_quieted_and_stopped_from_the_shell() {
    rpc_testkit::require_redis_server();
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let service =
        DynamicService::new("Mail").job("send", |req| async move { Ok(req.data.clone()) });
    let worker = Worker::builder(&url)
        .mount(service)
        .consumer_name("cli-w1")
        .concurrency(5)
        .heartbeat(Duration::from_millis(100), Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    // Never told to stop by the test: `rpc workers stop` must end it.
    let running = tokio::spawn(worker.run_until(std::future::pending()));

    let list = |args: &'static [&'static str]| {
        let url = url.clone();
        async move {
            let (ok, out, err) = rpc_async(&url, args).await;
            assert!(ok, "{args:?}: {err}");
            serde_json::from_str::<Value>(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
        }
    };
    let rows = list(&["workers", "--format", "json"]).await;
    let row = &rows[0];
    assert_eq!(row["id"], "cli-w1");
    assert_eq!(row["state"], "running");
    assert_eq!(row["live"], true);
    assert_eq!(row["pid"], std::process::id());
    assert_eq!(row["concurrency"], 5);
    assert_eq!(row["in_flight"], 0);
    assert_eq!(row["services"], json!(["Mail"]));
    assert!(
        row["uptime_ms"].is_u64() && row["last_beat_age_ms"].is_u64(),
        "{row}"
    );

    // The table, for one service; a service that is not there is refused.
    let (ok, out, err) = rpc_async(&url, &["workers", "Mail"]).await;
    assert!(ok, "{err}");
    let header = out.lines().next().unwrap();
    for column in [
        "ID",
        "STATE",
        "HOST",
        "PID",
        "VERSION",
        "SERVICES",
        "IN FLIGHT",
        "UPTIME",
        "LAST BEAT",
        "MEMORY",
    ] {
        assert!(header.contains(column), "{header}");
    }
    assert!(out.contains("cli-w1") && out.contains("running"), "{out}");
    let (ok, _, err) = rpc_async(&url, &["workers", "Mial"]).await;
    assert!(!ok);
    assert!(err.contains("Mial") && err.contains("Mail"), "{err}");
    let (ok, _, err) = rpc_async(&url, &["workers", "quiet", "nobody"]).await;
    assert!(!ok);
    assert!(err.contains("nobody"), "{err}");

    // `rpc stats` counts it as a live worker, idle as it is.
    let (ok, out, err) = rpc_async(&url, &["stats", "--json"]).await;
    assert!(ok, "{err}");
    let stats: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(stats[0]["live_workers"], 1, "{stats}");

    // Quiet: it says so in its next beats; a call then times out saying why.
    let (ok, out, err) = rpc_async(&url, &["workers", "quiet", "cli-w1"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("cli-w1"), "{out}");
    let deadline = Instant::now() + PATIENCE;
    while list(&["workers", "--format", "json"]).await[0]["state"] != "quiet" {
        assert!(Instant::now() < deadline, "never quiet");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (ok, _, err) = rpc_async(&url, &["call", "Mail.send", "{}", "--timeout", "500ms"]).await;
    assert!(!ok);
    assert!(err.contains("no reply") && err.contains("quiet"), "{err}");

    // Paused: the timeout says so, and how to resume.
    let (ok, _, err) = rpc_async(&url, &["pause", "Mail"]).await;
    assert!(ok, "{err}");
    let (ok, _, err) = rpc_async(&url, &["call", "Mail.send", "{}", "--timeout", "500ms"]).await;
    assert!(!ok);
    assert!(
        err.contains("paused") && err.contains("rpc resume Mail"),
        "{err}"
    );

    // Stop: the worker exits, and is listed as gone.
    let (ok, _, err) = rpc_async(&url, &["workers", "stop", "cli-w1"]).await;
    assert!(ok, "{err}");
    tokio::time::timeout(PATIENCE, running)
        .await
        .expect("the worker never stopped")
        .unwrap()
        .unwrap();
    let rows = list(&["workers", "--format", "json"]).await;
    assert_eq!(rows[0]["state"], "gone", "{rows}");
    assert_eq!(rows[0]["live"], false);
    let (ok, _, err) = rpc_async(&url, &["workers", "stop", "cli-w1"]).await;
    assert!(!ok);
    assert!(err.contains("gone"), "{err}");
}
