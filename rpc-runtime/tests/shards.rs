//! Sharded services on one Redis (and `memory://`): calls spread over
//! every shard and are all answered; an idempotency key keeps to one
//! shard; a marked id is cancelled in its shard; pause covers every shard;
//! retries come back to their shard; lowering the shard count loses
//! nothing (workers drain the shards no longer written to), and neither
//! does losing it (workers find the shards that hold work).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rpc_runtime::backend::ShardOp;
use rpc_runtime::protocol::shards;
use rpc_runtime::protocol::Keys;
use rpc_runtime::{CallOptions, Client, DynamicService, ErrorKind, HandlerError, Worker};
use rpc_testkit::RedisServer;
use serde_json::json;

const SERVICE: &str = "Sharded";

struct Running {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<rpc_runtime::StatsSnapshot, rpc_runtime::Error>>,
}

impl Running {
    async fn stop(mut self) -> rpc_runtime::StatsSnapshot {
        let _ = self.stop.take().map(|s| s.send(()));
        self.task.await.expect("worker task").expect("worker")
    }
}

/// `echo` answers its input; `flaky` fails its first attempt.
fn service(shards: u32, runs: Arc<AtomicU32>) -> DynamicService {
    DynamicService::new(SERVICE)
        .shards(shards)
        .job("echo", move |req| {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                req.respond(req.data.clone())
            }
        })
        .job("flaky", |req| async move {
            if req.context.attempt() == 1 {
                return Err(HandlerError::retry("first attempt fails"));
            }
            req.respond(json!(req.context.attempt()))
        })
        .backoff("flaky", "fixed(50ms)".parse().expect("a backoff"))
}

async fn start_worker(url: &str, shards: u32, runs: Arc<AtomicU32>) -> Running {
    let worker = Worker::builder(url)
        .mount(service(shards, runs))
        .concurrency(16)
        .build()
        .await
        .expect("worker connects");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(worker.run_until(async move {
        let _ = rx.await;
    }));
    Running {
        stop: Some(tx),
        task,
    }
}

async fn client(url: &str) -> Client {
    Client::builder(url)
        .default_timeout(Duration::from_secs(20))
        .connect()
        .await
        .expect("client connects")
}

/// The shard a call id is marked with.
fn shard_of(id: &rpc_runtime::JobId) -> u32 {
    shards::shard_of_id(id.as_str()).unwrap_or_else(|| panic!("id {id} names no shard"))
}

/// The integer `command` answers (the first line of its answer) summed
/// over the first `count` shards of the service, asked with `redis-cli`.
fn over_shards(redis: &RedisServer, count: u32, command: impl Fn(&str) -> Vec<String>) -> u64 {
    (0..count)
        .map(|k| {
            let args = command(&shards::queue(SERVICE, k));
            redis
                .cli(args.iter().map(String::as_str))
                .lines()
                .next()
                .and_then(|l| l.trim().parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
}

/// Waits until the client places calls on `count` shards (it reads the
/// broker's count in the background after its first call).
async fn until_placing(client: &Client, count: u32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..(4 * count) {
            let id = client
                .send(&format!("{SERVICE}.echo"), json!("probe"))
                .await
                .expect("send");
            seen.insert(shards::shard_of_id(id.as_str()).unwrap_or(0));
        }
        if seen.len() as u32 == count && seen.iter().all(|&k| k < count) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the client never placed on {count} shards: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every behaviour that must hold on both brokers.
async fn exercise(url: &str) {
    let runs = Arc::new(AtomicU32::new(0));
    let client = client(url).await;
    client
        .backend()
        .shard_count(SERVICE, ShardOp::Set(4))
        .await
        .expect("set the count");
    until_placing(&client, 4).await;

    // Pause covers every shard: a worker that starts paused runs nothing
    // (its first lifecycle round comes before its first read) until the
    // service is resumed.
    client.pause(SERVICE).await.expect("pause");
    let worker = start_worker(url, 4, runs.clone()).await;
    let paused: Vec<_> = (0..8)
        .map(|i| {
            let client = client.clone();
            async move {
                client
                    .call(&format!("{SERVICE}.echo"), json!(i))
                    .response()
                    .await
            }
        })
        .collect();
    let answers = tokio::spawn(futures_util::future::join_all(paused));
    // A negative check needs a window; a slow machine only makes it weaker.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 0, "a paused shard ran a job");
    client.resume(SERVICE).await.expect("resume");
    for answer in answers.await.expect("joined") {
        answer.expect("answered after the resume");
    }

    // Many calls, every one answered, spread over all four shards.
    let calls = (0..200).map(|i| {
        let client = client.clone();
        async move {
            let response = client
                .call(&format!("{SERVICE}.echo"), json!(i))
                .response()
                .await
                .expect("answered");
            assert_eq!(response.data, json!(i));
            shard_of(&response.id)
        }
    });
    let mut per_shard: HashMap<u32, u32> = HashMap::new();
    for shard in futures_util::future::join_all(calls).await {
        *per_shard.entry(shard).or_default() += 1;
    }
    assert_eq!(per_shard.len(), 4, "{per_shard:?}");
    for (shard, n) in &per_shard {
        assert!((30..=70).contains(n), "shard {shard}: {n} of 200");
    }

    // An idempotency key keeps to one shard: the duplicate meets the claim.
    let keyed = CallOptions::idempotency_key("order-42");
    let first = client
        .call(&format!("{SERVICE}.echo"), json!("once"))
        .options(keyed.clone())
        .response()
        .await
        .expect("keyed call");
    let again = client
        .call(&format!("{SERVICE}.echo"), json!("once"))
        .options(keyed)
        .response()
        .await
        .expect("keyed duplicate");
    assert_eq!(again.data, json!("once"));
    assert_eq!(first.id, again.id, "the duplicate is answered as the first");
    assert_eq!(shard_of(&first.id), shards::shard_of_key("order-42", 4));

    // So does a group key: one key's slots are one shard's state.
    for i in 0..8 {
        let response = client
            .call(&format!("{SERVICE}.echo"), json!(i))
            .group("tenant-7")
            .response()
            .await
            .expect("a call with a group key");
        assert_eq!(shard_of(&response.id), shards::shard_of_key("tenant-7", 4));
    }

    // And in a batch: a fresh client's first batch reads the count before
    // it places a keyed call (as a keyed call sent alone does), so the call
    // lands on its key's shard and meets the same claim: it is answered as
    // the first. Before, it went to shard 0 and ran a second time.
    let fresh = Client::connect(url).await.expect("a fresh client");
    let mut batch = fresh.batch();
    batch.push(
        fresh
            .call(&format!("{SERVICE}.echo"), json!("once"))
            .options(CallOptions::idempotency_key("order-42")),
    );
    let handles = batch.send().await.expect("a keyed batch");
    assert_eq!(
        shard_of(handles[0].id()),
        shards::shard_of_key("order-42", 4)
    );
    let handle = handles.into_iter().next().expect("one handle");
    assert_eq!(handle.await.expect("answered"), json!("once"));
    // So with a group key the batch gives all its calls.
    let fresh = Client::connect(url).await.expect("a fresh client");
    let mut batch = fresh.batch().group("tenant-7");
    batch.push(fresh.call(&format!("{SERVICE}.echo"), json!("grouped")));
    let handles = batch.send().await.expect("a grouped batch");
    assert_eq!(
        shard_of(handles[0].id()),
        shards::shard_of_key("tenant-7", 4)
    );

    // Retries go through the shard's own schedule and are answered.
    let response = client
        .call_and_wait(&format!("{SERVICE}.flaky"), json!(null))
        .await
        .expect("retried");
    assert_eq!(response.data, json!(2));

    // A delayed call is cancelled in the shard its id names.
    let pending = client
        .call(&format!("{SERVICE}.echo"), json!("later"))
        .options(CallOptions::delay(Duration::from_secs(3_600)))
        .send()
        .await
        .expect("delayed");
    client
        .cancel_in(SERVICE, pending.id())
        .await
        .expect("cancel");
    let err = pending.await.expect_err("cancelled");
    assert_eq!(err.remote_kind(), Some(ErrorKind::Cancelled), "{err}");

    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_service_on_redis() {
    rpc_testkit::require_redis_server();
    let redis = RedisServer::start().expect("redis");
    exercise(&redis.url()).await;
    // Every shard is a stream of its own, under its own hash tag.
    let keys = Keys::new("rpc");
    let mut total = 0;
    for k in 0..4 {
        let stream = keys.jobs(&shards::queue(SERVICE, k));
        assert!(stream.contains(&format!("{{{}}}", shards::queue(SERVICE, k))));
        let added: u64 = redis
            .cli(["XINFO", "STREAM", stream.as_str()])
            .lines()
            .collect::<Vec<_>>()
            .windows(2)
            .find(|w| w[0] == "entries-added")
            .and_then(|w| w[1].parse().ok())
            .unwrap_or_else(|| panic!("no stream {stream}"));
        assert!(added > 20, "{stream}: {added}");
        total += added;
    }
    assert!(total >= 200, "{total}");
}

/// The same on a 3-master Redis Cluster: the shards' keys hash to slots
/// on different masters, and every lifecycle feature works across them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_service_on_a_cluster() {
    rpc_testkit::require_redis_server();
    let cluster = rpc_testkit::RedisCluster::start(3).expect("cluster");
    exercise(&cluster.cluster_url()).await;
    let keys = Keys::new("rpc");
    let masters: std::collections::HashSet<u16> = (0..4)
        .filter_map(|k| cluster.master_of(&keys.jobs(&shards::queue(SERVICE, k))))
        .map(|m| m.port())
        .collect();
    assert!(masters.len() > 1, "four shards on one master: {masters:?}");
    // Losing the count there too: the shards are found on every master.
    let shards_key = keys.shards(SERVICE);
    let master = cluster.master_of(&shards_key).expect("the count's master");
    a_lost_count_is_found_on(&cluster.cluster_url(), || {
        master.cli(["DEL", shards_key.as_str()]);
    })
    .await;
}

/// Calls queued on four shards while no worker runs, the count then
/// deleted (by `delete`): a worker whose schema says one shard runs them
/// all, on every master of a Cluster (`a_lost_shard_count_strands_no_call`
/// is the full case on one Redis).
async fn a_lost_count_is_found_on(url: &str, delete: impl FnOnce()) {
    let client = client(url).await;
    until_placing(&client, 4).await;
    let mut calls = Vec::new();
    for i in 0..20 {
        calls.push(
            client
                .call(&format!("{SERVICE}.echo"), json!(i))
                .send()
                .await
                .expect("queued"),
        );
    }
    let placed: std::collections::HashSet<u32> = calls.iter().map(|c| shard_of(c.id())).collect();
    assert_eq!(placed.len(), 4, "{placed:?}");
    delete();
    let worker = start_worker(url, 1, Arc::new(AtomicU32::new(0))).await;
    let answers =
        futures_util::future::join_all(calls.into_iter().map(std::future::IntoFuture::into_future))
            .await;
    for (i, answer) in answers.into_iter().enumerate() {
        let answer = answer.unwrap_or_else(|e| panic!("call {i} after the count was lost: {e}"));
        assert_eq!(answer, json!(i));
    }
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_service_in_memory() {
    exercise("memory://shards-both").await;
}

/// Lowering the count: calls queued on shards 2 and 3 while nobody
/// served them are still run, by a worker whose own schema says one
/// shard (the broker remembers four were used), and new calls land on the
/// first two only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lowering_the_shard_count_loses_nothing() {
    rpc_testkit::require_redis_server();
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let client = client(&url).await;
    let backend = client.backend().clone();
    backend
        .shard_count(SERVICE, ShardOp::Set(4))
        .await
        .expect("set 4");
    until_placing(&client, 4).await;
    let mut ids = Vec::new();
    for i in 0..100 {
        ids.push(
            client
                .send(&format!("{SERVICE}.echo"), json!(i))
                .await
                .expect("queued"),
        );
    }
    assert!(ids.iter().any(|id| shard_of(id) == 3));
    let count = backend
        .shard_count(SERVICE, ShardOp::Set(2))
        .await
        .expect("set 2");
    assert_eq!((count.count, count.seen), (Some(2), Some(4)));

    // No worker ran yet: the probes and the 100 are all waiting.
    let runs = Arc::new(AtomicU32::new(0));
    let worker = start_worker(&url, 1, runs.clone()).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let keys = Keys::new("rpc");
    loop {
        let waiting = over_shards(&redis, 4, |q| vec!["XLEN".into(), keys.jobs(q)]);
        let pending = over_shards(&redis, 4, |q| {
            vec!["XPENDING".into(), keys.jobs(q), "workers".into()]
        });
        if runs.load(Ordering::SeqCst) >= 100 && pending == 0 && waiting == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not drained: {} run, {waiting} in streams, {pending} pending",
            runs.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A fresh client places on the two shards the count now says.
    let fresh = self::client(&url).await;
    until_placing(&fresh, 2).await;
    worker.stop().await;
}

/// Losing the shard count (`P:{S}:shards` evicted, deleted, lost in a
/// failover) loses no call: reproduces the review's case, 40 delayed calls
/// spread over four shards and put on their schedules by a worker that
/// then stops; the hash is deleted; a worker whose schema says one shard
/// starts. Before, it served shard 0 alone and the calls on shards 1-3
/// waited on their schedules for ever; now it finds those shards by their
/// keys, serves them, and records `seen` again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_shard_count_strands_no_call() {
    rpc_testkit::require_redis_server();
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let keys = Keys::new("rpc");
    // Long enough for the calls to outlive both workers' starts.
    let client = Client::builder(&url)
        .default_timeout(Duration::from_secs(120))
        .connect()
        .await
        .expect("client connects");
    client
        .backend()
        .shard_count(SERVICE, ShardOp::Set(4))
        .await
        .expect("set 4");
    until_placing(&client, 4).await;
    let first = start_worker(&url, 1, Arc::new(AtomicU32::new(0))).await;
    let mut calls = Vec::new();
    for i in 0..40 {
        calls.push(
            client
                .call(&format!("{SERVICE}.echo"), json!(i))
                .options(CallOptions::delay(Duration::from_secs(6)))
                .send()
                .await
                .expect("a delayed call"),
        );
    }
    let placed: std::collections::HashSet<u32> = calls.iter().map(|c| shard_of(c.id())).collect();
    assert_eq!(placed.len(), 4, "{placed:?}");
    // The first worker puts every call on its shard's schedule, then stops
    // before any is due.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let scheduled = over_shards(&redis, 4, |q| vec!["ZCARD".into(), keys.schedule(q)]);
        if scheduled == 40 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{scheduled} of 40 on the schedules"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.stop().await;
    redis.cli(["DEL", keys.shards(SERVICE).as_str()]);

    let runs = Arc::new(AtomicU32::new(0));
    let second = start_worker(&url, 1, runs.clone()).await;
    let answers = tokio::time::timeout(
        Duration::from_secs(90),
        futures_util::future::join_all(calls.into_iter().map(std::future::IntoFuture::into_future)),
    )
    .await
    .unwrap_or_else(|_| {
        panic!(
            "only {} of 40 delayed calls ran within 90 s",
            runs.load(Ordering::SeqCst)
        )
    });
    for (i, answer) in answers.into_iter().enumerate() {
        let answer = answer.unwrap_or_else(|e| panic!("call {i}: {e}"));
        assert_eq!(answer, json!(i));
    }
    assert_eq!(runs.load(Ordering::SeqCst), 40);
    // The count is recorded again: clients place on four shards.
    let seen = redis.cli(["HGET", keys.shards(SERVICE).as_str(), "seen"]);
    assert_eq!(seen.trim(), "4", "seen after the second worker started");
    second.stop().await;
}

/// Raising the count reaches a worker that runs: it starts reading the new
/// shards (within its watch period), and calls placed there are answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raising_the_shard_count_reaches_a_running_worker() {
    rpc_testkit::require_redis_server();
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let runs = Arc::new(AtomicU32::new(0));
    let worker = start_worker(&url, 1, runs.clone()).await;
    let client = client(&url).await;
    let answer = client
        .call_and_wait(&format!("{SERVICE}.echo"), json!("one shard"))
        .await
        .expect("answered");
    assert_eq!(
        shards::shard_of_id(answer.id.as_str()),
        None,
        "unsharded ids are unmarked"
    );
    client
        .backend()
        .shard_count(SERVICE, ShardOp::Set(3))
        .await
        .expect("set 3");
    until_placing(&client, 3).await;
    // Calls on every shard, the new ones included, are answered.
    let calls = (0..30).map(|i| {
        let client = client.clone();
        async move {
            client
                .call(&format!("{SERVICE}.echo"), json!(i))
                .response()
                .await
                .expect("answered")
        }
    });
    let shards_used: std::collections::HashSet<u32> = futures_util::future::join_all(calls)
        .await
        .iter()
        .map(|r| shard_of(&r.id))
        .collect();
    assert_eq!(shards_used.len(), 3, "{shards_used:?}");
    worker.stop().await;
}

/// Garbage where the shard count lives never stops a client or a worker:
/// a key of another type, fields out of range or not numbers count as
/// unset; a service name that spells a shard is refused at the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_shard_counts_are_ignored() {
    rpc_testkit::require_redis_server();
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let key = Keys::new("rpc").shards(SERVICE);
    for garbage in [
        vec!["SET", key.as_str(), "not a hash"],
        vec!["HSET", key.as_str(), "count", "99999", "seen", "-3"],
        vec!["HSET", key.as_str(), "count", "abc", "seen", "1e3"],
        vec!["HSET", key.as_str(), "count", "2.5", "seen", ""],
    ] {
        redis.cli(["DEL", key.as_str()]);
        redis.cli(garbage.iter().copied());
        let runs = Arc::new(AtomicU32::new(0));
        let worker = start_worker(&url, 1, runs).await;
        let client = client(&url).await;
        for i in 0..5 {
            let answer = client
                .call_and_wait(&format!("{SERVICE}.echo"), json!(i))
                .await
                .unwrap_or_else(|e| panic!("{garbage:?}: {e}"));
            assert_eq!(shards::shard_of_id(answer.id.as_str()), None, "{garbage:?}");
        }
        worker.stop().await;
    }
    let client = client(&url).await;
    let err = client
        .call_and_wait("Sharded~1.echo", json!(null))
        .await
        .expect_err("a shard is not a service");
    assert!(err.to_string().contains("shard"), "{err}");
}
