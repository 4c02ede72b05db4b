//! The blocking readers' own connections (`backend/resp.rs`) reach the Redis
//! the URL names in every shape a plain connection can take: a password, a
//! database number, a Unix socket. Each test runs jobs end to end, so both
//! readers (the worker's `XREADGROUP`, the client's inbox) go through them.

use std::time::Duration;

use rpc_runtime::{CallOptions, Client, DynamicService, StatsSnapshot, Worker};
use rpc_testkit::RedisServer;
use serde_json::json;

type Running = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<StatsSnapshot, rpc_runtime::Error>>,
);

/// A worker serving `service` (`twice`, `ping`) until told to stop.
async fn serve(url: &str, service: &str) -> Running {
    let worker = Worker::builder(url)
        .mount(
            DynamicService::new(service)
                .job("twice", |req| async move {
                    Ok(json!(req.data["n"].as_i64().unwrap_or(0) * 2))
                })
                .job("ping", |_| async { Ok(json!("pong")) }),
        )
        .build()
        .await
        .expect("worker");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run_until(async move {
        let _ = stopped.await;
    }));
    (stop, running)
}

/// A private Redis whose default user's password is `pw`.
fn redis_with_password() -> RedisServer {
    RedisServer::builder()
        .requirepass("pw")
        .start()
        .expect("redis")
}

async fn round_trips(url: &str, service: &str) -> StatsSnapshot {
    let (stop, running) = serve(url, service).await;
    let client = Client::connect(url).await.expect("client");
    let opts = CallOptions::timeout(Duration::from_secs(10));
    // One at a time (each call leads: its job and the read share the
    // reader's connection), then many at once (the router reads for them).
    for n in 0..20 {
        let r = client
            .call(&format!("{service}.twice"), json!({ "n": n }))
            .options(opts.clone())
            .response()
            .await
            .expect("answer");
        assert_eq!(r.data, json!(n * 2));
    }
    let calls = (0..200).map(|n| {
        let client = client.clone();
        let opts = opts.clone();
        async move {
            let r = client
                .call(&format!("{service}.twice"), json!({ "n": n }))
                .options(opts.clone())
                .response()
                .await
                .expect("answer");
            assert_eq!(r.data, json!(n * 2));
        }
    });
    futures_util::future::join_all(calls).await;
    let _ = stop.send(());
    running.await.expect("worker task").expect("worker")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_and_a_database_number_reach_the_readers() {
    let redis = redis_with_password();
    let url = format!("redis://:pw@127.0.0.1:{}/3", redis.port());
    let stats = round_trips(&url, "InDb3").await;
    assert_eq!(stats.succeeded, 220);
    // The queue is in database 3 and only there.
    let exists = |db: &str| {
        redis
            .cli(["-n", db, "EXISTS", "rpc:{InDb3}:jobs"])
            .trim()
            .to_owned()
    };
    assert_eq!(exists("3"), "1");
    assert_eq!(exists("0"), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_fast_with_a_clear_error() {
    let redis = redis_with_password();
    let url = format!("redis://:wrong@127.0.0.1:{}/", redis.port());
    let started = std::time::Instant::now();
    let err = Client::connect(&url).await.expect_err("a wrong password");
    assert!(started.elapsed() < Duration::from_secs(10));
    let message = err.to_string();
    assert!(
        message.to_lowercase().contains("authentication failed"),
        "{message}"
    );
    assert!(!message.contains("wrong"), "the password leaked: {message}");
}

/// The password changes under a connected client and its connections are
/// cut: the reader's reconnect is refused, and a call says so (or times
/// out) by its deadline instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_reconnect_of_the_reader_ends_the_call_by_its_deadline() {
    let redis = redis_with_password();
    let url = format!("redis://:pw@127.0.0.1:{}/", redis.port());
    let (stop, running) = serve(&url, "Auth").await;
    let client = Client::connect(&url).await.expect("client");
    let opts = CallOptions::timeout(Duration::from_secs(2));
    let r = client
        .call("Auth.ping", json!({}))
        .options(opts.clone())
        .response()
        .await
        .expect("answer");
    assert_eq!(r.data, json!("pong"));
    redis.cli(["CONFIG", "SET", "requirepass", "changed"]);
    // Cuts every connection but the one asking (redis-cli's own).
    let _ = redis.try_cli([
        "--pass", "changed", "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes",
    ]);
    let started = std::time::Instant::now();
    let err = client
        .call("Auth.ping", json!({}))
        .options(opts.clone())
        .response()
        .await
        .expect_err("no connection can be made");
    // By its 2 s deadline, not hanging (a far bound, for a loaded machine).
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}: {err}",
        started.elapsed()
    );
    // The worker cannot reach Redis either: a graceful stop would wait out
    // its completion retries (about 25 s), which is not what this is about.
    drop(stop);
    running.abort();
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_over_a_unix_socket() {
    let socket = std::env::temp_dir().join(format!("rpc-test-{}.sock", std::process::id()));
    let redis = RedisServer::builder()
        .args([
            "--unixsocket",
            socket.to_str().unwrap(),
            "--unixsocketperm",
            "700",
        ])
        .start()
        .expect("redis");
    let url = format!("redis+unix://{}", socket.display());
    let stats = round_trips(&url, "OverUnix").await;
    assert_eq!(stats.succeeded, 220);
    drop(redis);
    std::fs::remove_file(&socket).ok();
}
