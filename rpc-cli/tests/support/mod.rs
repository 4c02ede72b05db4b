//! Running the real `rpc` binary from the integration tests.

// Each test file uses its own part of this module.
#![allow(dead_code)]

use std::process::Command;

/// Runs `rpc --url URL ARGS...`; (success, stdout, stderr).
pub fn rpc(url: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rpc"))
        .args(["--url", url])
        .args(args)
        .output()
        .expect("run rpc");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `rpc --url URL ARGS...`; (exit status, stdout, stderr), for the
/// tests of the exit-status rule (0 done, 1 "no", 2 could not run).
pub fn rpc_status(url: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rpc"))
        .args(["--url", url])
        .args(args)
        .output()
        .expect("run rpc");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// [`rpc`] on a blocking thread, so that a worker on the test's runtime
/// keeps running meanwhile.
pub async fn rpc_async(url: &str, args: &[&str]) -> (bool, String, String) {
    let url = url.to_owned();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        rpc(&url, &args)
    })
    .await
    .expect("rpc task")
}

/// [`rpc_status`] on a blocking thread, so that a worker on the test's
/// runtime keeps running meanwhile.
pub async fn rpc_status_async(url: &str, args: &[&str]) -> (i32, String, String) {
    let url = url.to_owned();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        rpc_status(&url, &args)
    })
    .await
    .expect("rpc task")
}

/// A worker of `Mail`, whose job `send` is limited to 1/m and the service
/// to 100/s, running until the sender is dropped or sent to.
pub struct LimitedMail {
    pub stop: tokio::sync::oneshot::Sender<()>,
    pub running: tokio::task::JoinHandle<Result<rpc_runtime::StatsSnapshot, rpc_runtime::Error>>,
}

/// Starts [`LimitedMail`] on `url` and sends `Mail.send` twice: one call
/// starts, the other is given the next turn, a minute on. Returns once a
/// call waits for its turn, as the inspector sees it.
pub async fn limited_mail(url: &str) -> LimitedMail {
    use rpc_runtime::{CallOptions, Client, DynamicService, Inspector, Worker};
    let service = DynamicService::new("Mail")
        .job("send", |req| async move { Ok(req.data) })
        .rate_limit(Some("send"), "1/m".parse().unwrap())
        .rate_limit(None, "100/s".parse().unwrap());
    let worker = Worker::builder(url)
        .mount(service)
        .build()
        .await
        .expect("worker");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run_until(async {
        let _ = stopped.await;
    }));
    let client = Client::connect(url).await.expect("client");
    for i in 0..2 {
        client
            .send("Mail.send", serde_json::json!(i))
            .options(CallOptions::timeout(std::time::Duration::from_secs(600)))
            .await
            .expect("send");
    }
    let inspector = Inspector::connect(url, "rpc").await.expect("inspector");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let limits = inspector.rate_limits("Mail").await.expect("limits");
        if limits.iter().any(|l| l.state.waiting == 1) {
            return LimitedMail { stop, running };
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no call waits for its turn: {limits:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Writes service `Prio` by hand, as workers and clients would leave it
/// (docs/PROTOCOL.md, "Priorities", "Per-key concurrency"): one call
/// queued at the default priority, two at priority 1, a string where lane
/// 5's stream belongs; group key `t1` of job `send` with two calls
/// holding slots (to lapse never) and one parked, and a running set of
/// key `junk` that is a string.
pub fn prio_with_lanes_and_group_keys(redis: &rpc_testkit::RedisServer) {
    for stream in ["rpc:{Prio}:jobs", "rpc:{Prio}:jobs:1"] {
        redis.cli(["XGROUP", "CREATE", stream, "workers", "0", "MKSTREAM"]);
    }
    redis.cli(["XADD", "rpc:{Prio}:jobs", "*", "m", "{}"]);
    for _ in 0..2 {
        redis.cli(["XADD", "rpc:{Prio}:jobs:1", "*", "m", "{}"]);
    }
    redis.cli(["SET", "rpc:{Prio}:jobs:5", "not a stream"]);
    let running = "rpc:{Prio}:group:send:t1:running";
    redis.cli(["ZADD", running, "+inf", "c1", "+inf", "c2"]);
    redis.cli(["RPUSH", "rpc:{Prio}:group:send:t1:waiting", "{}"]);
    redis.cli(["SET", "rpc:{Prio}:group:send:junk:running", "x"]);
}
