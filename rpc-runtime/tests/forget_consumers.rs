//! A worker's janitor forgets the consumer names of workers that are gone
//! (`forget_idle_consumers`), against a private redis-server: a consumer
//! idle long enough and holding no lease goes; one holding a lease, one
//! named as live, and one that reads again between the listing and the
//! delete (the check and `XGROUP DELCONSUMER` are one script,
//! `forget_consumer.lua`) stay, with their leases.

use std::time::Duration;

use rpc_runtime::backend::{connect, BrokerConfig};
use rpc_testkit::RedisServer;

const KEY: &str = "rpc:{Svc}:jobs";

fn consumers(server: &RedisServer) -> String {
    server.cli(["XINFO", "CONSUMERS", KEY, "workers"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_idle_consumers_without_leases_are_forgotten() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let backend = connect(&BrokerConfig::new(server.url())).await.unwrap();
    backend.prepare_queues(&["Svc".to_owned()]).await.unwrap();
    backend.push_job("Svc", b"held").await.unwrap();
    // `busy` holds a lease; `gone` and `live` hold none.
    server.cli([
        "XREADGROUP",
        "GROUP",
        "workers",
        "busy",
        "COUNT",
        "1",
        "STREAMS",
        KEY,
        ">",
    ]);
    for consumer in ["gone", "live"] {
        server.cli(["XGROUP", "CREATECONSUMER", KEY, "workers", consumer]);
    }
    tokio::time::sleep(Duration::from_millis(60)).await;
    let forgot = backend
        .forget_idle_consumers("Svc", Duration::from_millis(50), &["live".to_owned()])
        .await
        .unwrap();
    assert_eq!(forgot, 1);
    let left = consumers(&server);
    assert!(
        left.contains("busy") && left.contains("live") && !left.contains("gone"),
        "{left}"
    );
    assert!(server.cli(["XPENDING", KEY, "workers"]).starts_with('1'));
}

#[test]
fn a_consumer_that_read_again_since_the_listing_is_kept() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let script = rpc_runtime::protocol::scripts::FORGET_CONSUMER.source;
    server.cli(["XGROUP", "CREATE", KEY, "workers", "0", "MKSTREAM"]);
    server.cli(["XADD", KEY, "*", "m", "job"]);
    // Listed as idle with no lease a moment ago; it has just read a job.
    server.cli([
        "XREADGROUP",
        "GROUP",
        "workers",
        "back",
        "COUNT",
        "1",
        "STREAMS",
        KEY,
        ">",
    ]);
    let kept = server.cli(["EVAL", script, "1", KEY, "workers", "back", "0"]);
    assert_eq!(kept.trim(), "0", "it holds a lease");
    assert!(consumers(&server).contains("back"));
    assert!(
        server.cli(["XPENDING", KEY, "workers"]).starts_with('1'),
        "the lease stays"
    );
    // Idle, without a lease: forgotten; not idle long enough: kept.
    server.cli(["XGROUP", "CREATECONSUMER", KEY, "workers", "quiet"]);
    let kept = server.cli(["EVAL", script, "1", KEY, "workers", "quiet", "3600000"]);
    assert_eq!(kept.trim(), "0", "not idle for an hour");
    let forgot = server.cli(["EVAL", script, "1", KEY, "workers", "quiet", "0"]);
    assert_eq!(forgot.trim(), "1");
    assert!(!consumers(&server).contains("quiet"));
    // No such consumer, no such stream, garbage: nothing happens.
    assert_eq!(
        server
            .cli(["EVAL", script, "1", KEY, "workers", "nobody", "0"])
            .trim(),
        "0"
    );
    assert_eq!(
        server
            .cli(["EVAL", script, "1", "rpc:{None}:jobs", "workers", "x", "0"])
            .trim(),
        "0"
    );
    assert_eq!(
        server
            .cli(["EVAL", script, "1", KEY, "workers", "back", "soon"])
            .trim(),
        "0"
    );
}
