//! Garbage where the lifecycle keeps its state (written straight into
//! Redis): schedule entries without a message, with a message that is no
//! job, or due at infinity; a scheduled message without a due time (an
//! orphan, which would never run); cancellation entries that are no call
//! id, keys of the wrong type. The worker dead-letters or ignores them and
//! goes on serving. It waits on what the worker did (its log event for
//! the pause, the dead letters), with generous deadlines.

use std::time::{Duration, Instant};

use rpc_runtime::CallOptions;
use rpc_testkit::RedisServer;
use serde_json::json;

use super::*;

/// The service, a name of its own: the test waits for its worker to see
/// its pause (see [`WorkerEvents`]).
const GARBAGE: &str = "LifeGarbage";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_in_the_schedule_and_cancellations_never_stops_a_worker() {
    rpc_testkit::require_redis_server();
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let raw = redis::Client::open(url.as_str()).unwrap();
    let mut con = raw.get_multiplexed_async_connection().await.unwrap();
    let events = WorkerEvents::get();
    let key = |k: &str| format!("rpc:{{{GARBAGE}}}:{k}");
    let mut pipe = redis::pipe();
    pipe.cmd("ZADD")
        .arg(key("schedule"))
        .arg(1)
        .arg("no-message")
        .cmd("ZADD")
        .arg(key("schedule"))
        .arg(2)
        .arg("garbage")
        .cmd("HSET")
        .arg(key("scheduled"))
        .arg("garbage")
        .arg("\u{0}not json{")
        .cmd("ZADD")
        .arg(key("schedule"))
        .arg("+inf")
        .arg("never")
        .cmd("ZADD")
        .arg(key("cancelled"))
        .arg(1)
        .arg("x".repeat(5_000))
        .cmd("ZADD")
        .arg(key("cancelled"))
        .arg("-inf")
        .arg("")
        .cmd("HSET")
        .arg(key("scheduled"))
        .arg("orphan")
        .arg(r#"{"v":1,"id":"orphan","job":"LifeGarbage.echo","params":{}}"#)
        .cmd("SET")
        .arg(key("paused"))
        .arg("not a time");
    let _: () = pipe.query_async(&mut con).await.unwrap();

    let log = Log::default();
    let paused_before = events.pauses(GARBAGE, true);
    let _worker = start(settings(
        Worker::builder(&url).mount(service_named(GARBAGE, log.clone())),
    ))
    .await;
    let client = client(&url).await;
    // A pause flag holding garbage is still a pause, to the worker too.
    wait_until(
        "the worker saw the garbage flag as a pause",
        PATIENCE,
        || events.pauses(GARBAGE, true) > paused_before,
    )
    .await;
    assert!(client.is_paused(GARBAGE).await.unwrap());
    client.resume(GARBAGE).await.unwrap();

    // The garbage message was moved and dead-lettered with the reason; the
    // entry due at infinity and the orphan, which would never run, too (the
    // first poll sweeps the scheduled messages).
    let deadline = Instant::now() + PATIENCE;
    let dead = loop {
        let dead = client.dead_letters(GARBAGE, 10).await.unwrap();
        if dead.len() >= 3 {
            break dead;
        }
        assert!(Instant::now() < deadline, "only {dead:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(dead.len(), 3, "{dead:?}");
    let reasons: Vec<&str> = dead.iter().map(|d| d.reason.as_str()).collect();
    assert!(
        reasons.iter().any(|r| r.contains("unreadable job message")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("beyond the horizon")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("without a due time")),
        "{reasons:?}"
    );

    // Keys of the wrong type: the poll reports them and goes on.
    let _: () = redis::pipe()
        .cmd("DEL")
        .arg(key("cancelled"))
        .cmd("SET")
        .arg(key("cancelled"))
        .arg("a string")
        .query_async(&mut con)
        .await
        .unwrap();
    let reply = client
        .call(&format!("{GARBAGE}.echo"), json!("still serving"))
        .options(CallOptions::delay(Duration::from_millis(200)).with_timeout(PATIENCE))
        .response()
        .await
        .unwrap();
    assert_eq!(reply.data, json!("still serving"));
}
