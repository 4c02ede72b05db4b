//! Single sends made at the same time go to a single Redis as pipelines
//! (`rpc-runtime/src/backend/redis/coalesce.rs`), and each is still its
//! own send: every job lands once, in the queue it was sent to, and a send
//! Redis refuses fails alone, with Redis's reason, while the sends beside
//! it in the same pipeline succeed. Against a private redis-server.

use std::time::Duration;

use rpc_runtime::Client;
use rpc_testkit::RedisServer;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_made_together_each_land_or_fail_alone() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server starts");
    // The Bad service's stream is a string: Redis refuses every XADD to it.
    server.cli(["SET", "rpc:{Bad}:jobs", "not a stream"]);
    let client = Client::builder(server.url())
        .default_timeout(Duration::from_secs(30))
        .connect()
        .await
        .unwrap();
    const EACH: u64 = 300;
    let sends: Vec<_> = (0..2 * EACH)
        .map(|n| {
            let client = client.clone();
            tokio::spawn(async move {
                let job = if n % 2 == 0 { "Good.note" } else { "Bad.note" };
                (n, client.send(job, json!({ "n": n })).await)
            })
        })
        .collect();
    let mut refused = 0;
    for send in sends {
        let (n, sent) = send.await.unwrap();
        match sent {
            Ok(_) if n % 2 == 0 => {}
            Err(e) if n % 2 == 1 => {
                assert!(e.to_string().contains("WRONGTYPE"), "send {n}: {e}");
                refused += 1;
            }
            other => panic!("send {n}: {other:?}"),
        }
    }
    assert_eq!(refused, EACH);
    let listed = server.cli(["XRANGE", "rpc:{Good}:jobs", "-", "+"]);
    let mut landed: Vec<u64> = listed
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|m| {
            let v: serde_json::Value = serde_json::from_str(m).unwrap();
            v["params"]["n"].as_u64().unwrap()
        })
        .collect();
    landed.sort_unstable();
    assert_eq!(
        landed,
        (0..2 * EACH).step_by(2).collect::<Vec<_>>(),
        "each once"
    );
}
