//! Deployment shapes of the Redis backend against private servers: key
//! prefixes sharing one Redis, a 3-master Cluster, TLS with a private CA, an
//! ACL user limited to the project's keys and commands; plus the wire
//! protocol followed by hand (a raw Redis client, no rpc-runtime Client), the
//! worker-side size limit, and the cleanup of long-dead consumers.

use std::time::Duration;

use rpc_runtime::{CallOptions, Client, DynamicService, ErrorKind, StatsSnapshot, Worker};
use rpc_testkit::{RedisCluster, RedisServer};
use serde_json::json;

type Running = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<StatsSnapshot, rpc_runtime::Error>>,
);

fn echo(name: &str, tag: &'static str) -> DynamicService {
    DynamicService::new(name).job("echo", move |req| async move {
        Ok(json!({ "tag": tag, "data": req.data }))
    })
}

fn spawn(worker: Worker) -> Running {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(worker.run_until(async move {
        let _ = rx.await;
    }));
    (tx, task)
}

async fn stop(running: Running) -> StatsSnapshot {
    let _ = running.0.send(());
    running.1.await.expect("worker task").expect("worker")
}

fn opts() -> CallOptions {
    CallOptions::timeout(Duration::from_secs(10))
}

/// Calls, a kept result fetched by id from another client, and an unknown job.
async fn exercise(url: &str, service: &str, tag: &str) {
    let client = Client::connect(url).await.expect("client");
    for i in 0..20 {
        let r = client
            .call(&format!("{service}.echo"), json!({ "i": i }))
            .options(opts())
            .response()
            .await
            .expect("answer");
        assert_eq!(r.data, json!({"tag": tag, "data": {"i": i}}));
    }
    let pending = client
        .call(&format!("{service}.echo"), json!({"kept": true}))
        .send()
        .await
        .unwrap();
    let id = pending.id().clone();
    pending.wait().await.unwrap();
    let other = Client::connect(url).await.unwrap();
    let kept = other.fetch_result(&id).await.unwrap().expect("kept");
    assert_eq!(kept.unwrap()["data"], json!({"kept": true}));
    let err = client
        .call(&format!("{service}.nope"), json!({}))
        .options(opts())
        .response()
        .await
        .unwrap_err();
    assert_eq!(err.remote_kind(), Some(ErrorKind::UnknownJob));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_keep_applications_apart() {
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let a = Worker::builder(&url).prefix("appA").mount(echo("Svc", "A"));
    let b = Worker::builder(&url).prefix("appB").mount(echo("Svc", "B"));
    let (a, b) = (
        spawn(a.build().await.unwrap()),
        spawn(b.build().await.unwrap()),
    );
    for (prefix, tag) in [("appA", "A"), ("appB", "B")] {
        let client = Client::builder(&url)
            .prefix(prefix)
            .connect()
            .await
            .unwrap();
        for _ in 0..10 {
            let r = client
                .call("Svc.echo", json!({}))
                .options(opts())
                .response()
                .await
                .unwrap();
            assert_eq!(r.data["tag"], tag, "{prefix} answered by the other app");
        }
    }
    let (sa, sb) = (stop(a).await, stop(b).await);
    assert_eq!((sa.succeeded, sb.succeeded), (10, 10));
    let keys = redis.keys("*");
    assert!(
        keys.iter()
            .all(|k| k.starts_with("appA:") || k.starts_with("appB:")),
        "{keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_on_a_redis_cluster() {
    let cluster = RedisCluster::start(3).expect("cluster");
    let hosts: Vec<String> = cluster
        .nodes()
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port()))
        .collect();
    let url = format!("redis+cluster://{}/", hosts.join(","));
    // Two services: their queues hash to different slots.
    let worker = Worker::builder(&url)
        .mount(echo("Alpha", "alpha"))
        .mount(echo("Beta", "beta"))
        .build()
        .await
        .expect("worker on the cluster");
    let running = spawn(worker);
    exercise(&url, "Alpha", "alpha").await;
    exercise(&url, "Beta", "beta").await;
    let stats = stop(running).await;
    assert_eq!(stats.succeeded, 42);
    // The keys really are spread over the nodes.
    let holders = cluster
        .nodes()
        .iter()
        .filter(|n| !n.keys("rpc:*").is_empty())
        .count();
    assert!(holders >= 2, "keys on {holders} node(s)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_over_tls_with_a_private_ca() {
    let redis = RedisServer::builder().tls(true).start().expect("tls redis");
    let ca = redis
        .ca_cert_path()
        .expect("ca")
        .to_string_lossy()
        .into_owned();
    let url = format!("{}?ca={ca}", redis.url());
    assert!(url.starts_with("rediss://"));
    let running = spawn(
        Worker::builder(&url)
            .mount(echo("Sec", "tls"))
            .build()
            .await
            .expect("worker over TLS"),
    );
    exercise(&url, "Sec", "tls").await;
    stop(running).await;
    // Without the CA the server's certificate is not trusted.
    assert!(Client::connect(&redis.url()).await.is_err());
}

/// The minimal ACL of the runtime (docs/PROTOCOL.md, "ACL"). The doc's line
/// adds `+client|setinfo` for Redis 7.2+, which 7.0 (this test's server
/// may be one) does not know.
const ACL_RULES: &str = "on >s3cret resetkeys ~rpc:* resetchannels -@all +ping +xadd +xreadgroup +xack +xdel +xtrim +xclaim +xpending +xgroup|create +xgroup|delconsumer +xinfo|consumers +xrange +blmpop +blpop +rpush +pexpire +set +get +evalsha +script|load +time +zrangebyscore +zrange +zrem +zadd +zscore +zremrangebyscore +hget +hdel +hset +hscan +exists +blmove +lrange +ltrim +del +getrange +zremrangebyrank +incrby +expire +hmget +type +srandmember +sadd +srem +zcard +llen +lpop";

/// How many times Redis was asked `command` (lower case): run, refused by
/// the ACL, or failed, from `INFO commandstats`.
fn times_asked(redis: &RedisServer, command: &str) -> u64 {
    let prefix = format!("cmdstat_{command}:");
    redis
        .cli(["INFO", "commandstats"])
        .lines()
        .find_map(|line| line.trim().strip_prefix(&prefix).map(str::to_owned))
        .map(|counts| {
            counts
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .filter(|(k, _)| matches!(*k, "calls" | "rejected_calls" | "failed_calls"))
                .filter_map(|(_, v)| v.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_as_an_acl_user_limited_to_its_keys_and_commands() {
    let dir = tempfile_dir();
    let acl = dir.join("users.acl");
    std::fs::write(
        &acl,
        format!("user default on >admin ~* &* +@all\nuser rpc {ACL_RULES}\n"),
    )
    .unwrap();
    let redis = RedisServer::builder()
        .acl_file(&acl)
        .auth("default", "admin")
        .start()
        .expect("acl redis");
    let url = redis.url_as("rpc", "s3cret");
    let running = spawn(
        Worker::builder(&url)
            .mount(echo("Acl", "acl"))
            .visibility_timeout(Duration::from_millis(300))
            .build()
            .await
            .expect("worker as the rpc user"),
    );
    exercise(&url, "Acl", "acl").await;
    // Dead letters (XADD to the dead stream, XRANGE) are within the rules too.
    let client = Client::connect(&url).await.unwrap();
    redis.cli(["XADD", "rpc:{Acl}:jobs", "*", "m", "garbage"]);
    let t0 = std::time::Instant::now();
    while client
        .backend()
        .dead_letters("Acl", 10)
        .await
        .unwrap()
        .is_empty()
    {
        assert!(t0.elapsed() < Duration::from_secs(60));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Wait until the janitor has run its reclaim (XPENDING) a few more
    // times, as Redis counts them (refused ones too).
    let asked = times_asked(&redis, "xpending");
    let t0 = std::time::Instant::now();
    while times_asked(&redis, "xpending") < asked + 3 {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the janitor never ran"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop(running).await;
    let log = redis.cli(["ACL", "LOG"]);
    assert!(
        log.trim().is_empty(),
        "the runtime was denied something:\n{log}"
    );
    // And the user really is limited.
    let denied = redis.cli(["ACL", "DRYRUN", "rpc", "GET", "other:key"]);
    assert!(denied.contains("no permissions"), "{denied}");
    std::fs::remove_dir_all(&dir).ok();
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rpc-acl-{}", uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{nanos}", std::process::id())
}

/// Follows docs/PROTOCOL.md as another language would: no rpc-runtime
/// Client, just XADD of a hand-written job message and BLPOP on an inbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_protocol_doc_is_enough_to_write_a_client() {
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let running = spawn(
        Worker::builder(&url)
            .mount(DynamicService::new("Raw").job("add", |req| async move {
                let a = req.data["a"].as_i64().unwrap_or(0);
                let b = req.data["b"].as_i64().unwrap_or(0);
                Ok(json!(a + b))
            }))
            .max_message_bytes(4096)
            .build()
            .await
            .unwrap(),
    );
    let raw = redis::Client::open(url.as_str()).unwrap();
    // The BLPOP below blocks up to 10 s: without the redis crate's default
    // response timeout (about 500 ms), as PROTOCOL.md says of a blocking
    // reader. The `unknown_job` answer takes 1.6 s or more (32 hand-backs
    // through the schedule).
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    let mut con = raw
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap();
    let inbox = "rpc:inbox:{raw-client-1}";
    let deadline_ms = rpc_protocol::time::unix_ms(std::time::SystemTime::now()) + 10_000;
    let push = |id: &str, job: &str, params: serde_json::Value, result_ttl_ms: u64| {
        json!({
            "v": 1, "id": id, "job": job, "params": params, "reply_to": inbox,
            "deadline_ms": deadline_ms, "attempt": 1, "max_attempts": 3,
            "result_ttl_ms": result_ttl_ms, "meta": {"lang": "raw"}
        })
        .to_string()
    };
    let pop = |con: &mut redis::aio::MultiplexedConnection| {
        let mut con = con.clone();
        async move {
            let (key, body): (String, String) = redis::cmd("BLPOP")
                .arg(inbox)
                .arg(10)
                .query_async(&mut con)
                .await
                .expect("a reply within 10 s");
            assert_eq!(key, inbox);
            serde_json::from_str::<serde_json::Value>(&body).unwrap()
        }
    };
    for (id, job, params, ttl) in [
        ("raw-1", "Raw.add", json!({"a": 2, "b": 3}), 60_000u64),
        ("raw-2", "Raw.nope", json!({}), 0),
    ] {
        let _: String = redis::cmd("XADD")
            .arg("rpc:{Raw}:jobs")
            .arg("*")
            .arg("m")
            .arg(push(id, job, params, ttl))
            .query_async(&mut con)
            .await
            .unwrap();
    }
    let first = pop(&mut con).await;
    assert_eq!(first, json!({"v": 1, "id": "raw-1", "ok": 5}));
    let second = pop(&mut con).await;
    assert_eq!(second["id"], "raw-2");
    assert_eq!(second["error"]["kind"], "unknown_job");
    // The kept result, under the documented key, with a TTL.
    let kept: String = redis::cmd("GET")
        .arg("rpc:result:{raw-1}")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&kept).unwrap()["ok"],
        5
    );
    let ttl: i64 = redis::cmd("PTTL")
        .arg(inbox)
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(ttl == -2 || ttl > 0, "inbox without TTL: {ttl}");

    // Over the worker's size limit: dead-lettered unread, the worker goes on.
    let big = push("raw-3", "Raw.add", json!({"pad": "x".repeat(5000)}), 0);
    let _: String = redis::cmd("XADD")
        .arg("rpc:{Raw}:jobs")
        .arg("*")
        .arg("m")
        .arg(big)
        .query_async(&mut con)
        .await
        .unwrap();
    let _: String = redis::cmd("XADD")
        .arg("rpc:{Raw}:jobs")
        .arg("*")
        .arg("m")
        .arg(push("raw-4", "Raw.add", json!({"a": 1, "b": 1}), 0))
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(pop(&mut con).await, json!({"v": 1, "id": "raw-4", "ok": 2}));
    let client = Client::connect(&url).await.unwrap();
    let dead = client.backend().dead_letters("Raw", 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].reason.starts_with("oversized job message"),
        "{}",
        dead[0].reason
    );
    let stats = stop(running).await;
    assert_eq!(stats.dead_lettered, 1);
}

/// Whether every consumer of `key`'s group has been idle over `ms`.
fn consumers_idle_over(redis: &RedisServer, key: &str, ms: u64) -> bool {
    let listed = redis.cli(["XINFO", "CONSUMERS", key, "workers"]);
    let lines: Vec<&str> = listed.lines().map(str::trim).collect();
    let idles: Vec<u64> = lines
        .windows(2)
        .filter(|w| w[0] == "idle")
        .filter_map(|w| w[1].parse().ok())
        .collect();
    !idles.is_empty() && idles.iter().all(|&idle| idle > ms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_dead_consumers_are_forgotten_on_start() {
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let key = "rpc:{Old}:jobs";
    redis.cli(["XGROUP", "CREATE", key, "workers", "0", "MKSTREAM"]);
    redis.cli(["XGROUP", "CREATECONSUMER", key, "workers", "ghost"]);
    redis.cli(["XADD", key, "*", "m", "garbage"]);
    // `holder` leases the entry and dies: its consumer must stay (it has a
    // pending job another worker will reclaim).
    redis.cli([
        "XREADGROUP",
        "GROUP",
        "workers",
        "holder",
        "COUNT",
        "1",
        "STREAMS",
        key,
        ">",
    ]);
    // Both idle past the 500 ms after which the worker forgets consumers
    // (as Redis reports their idle time).
    let t0 = std::time::Instant::now();
    while !consumers_idle_over(&redis, key, 600) {
        assert!(t0.elapsed() < Duration::from_secs(60), "never idle");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let worker = Worker::builder(&url)
        .mount(echo("Old", "old"))
        .forget_consumers_after(Duration::from_millis(500))
        .visibility_timeout(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    let consumers = redis.cli(["XINFO", "CONSUMERS", key, "workers"]);
    assert!(!consumers.contains("ghost"), "{consumers}");
    assert!(consumers.contains("holder"), "{consumers}");
    drop(worker);
}
