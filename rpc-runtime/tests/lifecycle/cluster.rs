//! The lifecycle on a 3-master Redis Cluster: every key of a service's
//! lifecycle is under its hash tag, so each script runs on one slot. A
//! delayed call, a retry with backoff, an idempotent pair, a cancelled
//! running call, a pause, a rate limit and priorities, with the service's keys on one
//! master and the callers' inboxes and results on others.

use std::time::Duration;

use rpc_runtime::{CallOptions, ErrorKind};
use rpc_testkit::RedisCluster;
use serde_json::json;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lifecycle_works_on_a_cluster() {
    rpc_testkit::require_redis_server();
    let cluster = RedisCluster::start(3).expect("cluster");
    let url = cluster.cluster_url();
    let log = Log::default();
    let _worker = start(worker(&url, log.clone())).await;
    let client = client(&url).await;

    let delayed = CallOptions::delay(Duration::from_millis(300));
    let reply = client
        .call(&format!("{SERVICE}.echo"), json!("later"))
        .options(delayed.clone())
        .response()
        .await
        .expect("a delayed call on a cluster");
    assert_eq!(reply.data, json!("later"));

    let reply = client
        .call_and_wait(&format!("{SERVICE}.flaky"), json!({"ok_on": 2}))
        .await
        .expect("a retry with backoff on a cluster");
    assert_eq!(reply.data, json!({"attempt": 2}));

    // A delayed urgent call and a retried one at priority 5: each goes
    // back from the schedule onto its lane (`poll.lua` writes a lane of
    // the queue's slot), and the worker learns the lanes and reads them.
    let reply = client
        .call(&format!("{SERVICE}.echo"), json!("urgent"))
        .options(delayed.clone())
        .priority(1)
        .response()
        .await
        .expect("a delayed urgent call on a cluster");
    assert_eq!(reply.data, json!("urgent"));
    let reply = client
        .call(&format!("{SERVICE}.flaky"), json!({"ok_on": 2}))
        .priority(5)
        .response()
        .await
        .expect("a retry at priority 5 on a cluster");
    assert_eq!(reply.data, json!({"attempt": 2}));

    let once = CallOptions::idempotency_key("cluster-1");
    let a = client
        .call(&format!("{SERVICE}.echo"), json!(1))
        .options(once.clone())
        .response()
        .await
        .unwrap();
    let b = client
        .call(&format!("{SERVICE}.echo"), json!(1))
        .options(once.clone())
        .response()
        .await
        .unwrap();
    assert_eq!(a.id, b.id);

    let running = client
        .call(&format!("{SERVICE}.polite"), json!({"ms": 30_000}))
        .options(CallOptions::timeout(Duration::from_secs(40)))
        .send()
        .await
        .unwrap();
    wait_until("the polite handler started", PATIENCE, || {
        !log.runs("polite").is_empty()
    })
    .await;
    running.cancel().await.unwrap();
    let err = running.wait().await.unwrap_err();
    assert_eq!(err.remote_kind(), Some(ErrorKind::Cancelled), "{err}");

    assert!(client.pause(SERVICE).await.unwrap());
    assert!(client.is_paused(SERVICE).await.unwrap());
    assert!(client.resume(SERVICE).await.unwrap());

    // A rate limit: its keys on its service's slot, its waiting calls on
    // the schedule there.
    let limited =
        service_named("RateCluster", log.clone()).rate_limit(Some("slow"), "10/s".parse().unwrap());
    let _limited = start(settings(Worker::builder(&url).mount(limited))).await;
    let calls = (0..3).map(|_| {
        let client = client.clone();
        async move {
            client
                .call("RateCluster.slow", json!({"ms": 0}))
                .options(CallOptions::timeout(PATIENCE))
                .response()
                .await
                .expect("a rate-limited call on a cluster")
        }
    });
    futures_util::future::join_all(calls).await;
    let mut starts: Vec<_> = log.runs("slow").iter().map(|r| r.2).collect();
    starts.sort();
    assert_eq!(starts.len(), 3);
    super::rate::assert_spaced(
        &url,
        "RateCluster.slow",
        &starts,
        Duration::from_millis(100),
    );
}
