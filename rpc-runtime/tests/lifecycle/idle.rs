//! The lifecycle poll's cadence (docs/PROTOCOL.md, "The lifecycle poll's
//! cadence"): a worker whose service is idle polls it about once a second,
//! not ten times; one running short jobs polls it at the busy rate. Counted
//! in Redis (`INFO commandstats`), the only place another implementation
//! would see it.

use rpc_testkit::RedisServer;
use serde_json::json;

use super::*;

/// `poll.lua` and `intake.lua` calls so far (both are `EVALSHA`).
fn scripts_run(redis: &RedisServer) -> u64 {
    redis
        .cli(["INFO", "commandstats"])
        .lines()
        .find_map(|line| {
            line.trim()
                .strip_prefix("cmdstat_evalsha:")
                .map(str::to_owned)
        })
        .and_then(|counts| {
            counts
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls=").and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_service_is_polled_about_once_a_second() {
    let redis = RedisServer::start().expect("redis-server");
    let url = redis.url();
    let log = Log::default();
    let _worker = start(worker(&url, log.clone())).await;
    // One job answered: the worker serves, and the service turns idle a
    // second after it.
    let client = client(&url).await;
    let three = client
        .call(&format!("{SERVICE}.echo"), json!({"n": 3}))
        .await
        .expect("served");
    assert_eq!(three, json!({"n": 3}));
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let before = scripts_run(&redis);
    let window = Duration::from_secs(4);
    tokio::time::sleep(window).await;
    let scripts = scripts_run(&redis) - before;
    // Idle: ~4 polls and ~4 intake moves (one BLMOVE wait each) in 4 s.
    // Polling at the busy rate would be ~40 polls. A loaded machine only
    // makes fewer.
    assert!(
        scripts <= 20,
        "{scripts} scripts in {window:?} from one worker of one idle service"
    );
    assert!(scripts >= 2, "the idle service is still polled ({scripts})");
}
