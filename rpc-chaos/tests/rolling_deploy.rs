//! A rolling deploy: workers of the old and the new schema serve one queue
//! at once, as real processes against a private redis-server.
//!
//! Issue 13, point 6: a job added in the new schema used to be answered
//! `unknown_job` by whichever old worker took it. Now a worker that does not
//! know a job hands it back for another worker, a bounded number of times,
//! and only then answers `unknown_job` with the reason.

use std::path::Path;

use rpc_chaos::{timeout, WorkerProcess};
use rpc_runtime::{Client, ErrorKind};
use rpc_testkit::RedisServer;
use serde_json::json;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_chaos-worker"))
}

/// One old worker (without `square`) and one new one: 500 calls of the new
/// job are all answered correctly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_an_old_worker_does_not_know_is_handed_to_a_new_one() {
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let _old = WorkerProcess::start(bin(), &url, &["--omit-job", "square"]).expect("old worker");
    let _new = WorkerProcess::start(bin(), &url, &[]).expect("new worker");
    let client = Client::connect(&url).await.unwrap();
    let calls = (0..500i64).map(|n| {
        let client = client.clone();
        tokio::spawn(async move {
            let r = client
                .call_and_wait_with("Chaos.square", json!({ "n": n }), &timeout(20_000))
                .await;
            (n, r)
        })
    });
    for call in futures_util::future::join_all(calls).await {
        let (n, r) = call.unwrap();
        assert_eq!(r.expect("answered by the new worker").data, json!(n * n));
    }
}

/// Only old workers: the job is handed back a bounded number of times, then
/// answered `unknown_job` with the reason, well before the caller's deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_no_worker_knows_is_answered_unknown_job_after_a_bounded_hand_back() {
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let _old = WorkerProcess::start(bin(), &url, &["--omit-job", "square"]).expect("old worker");
    let client = Client::connect(&url).await.unwrap();
    let t0 = std::time::Instant::now();
    let err = client
        .call_and_wait_with("Chaos.square", json!({ "n": 3 }), &timeout(20_000))
        .await
        .unwrap_err();
    assert_eq!(err.remote_kind(), Some(ErrorKind::UnknownJob), "{err}");
    assert!(err.to_string().contains("handed back"), "{err}");
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t0.elapsed()
    );
}
