//! Bulk sends (`Client::send_many`, `call_many`, `batch`) against a
//! private redis-server and against memory://: ids unique and in the
//! batch's order, every job run once, answers in order with per-call
//! errors, a bad call refusing the whole batch before anything is sent, one
//! round trip per batch (counted from Redis's `INFO`), the intake for a
//! client that may not `XADD`, and what a batch says when it fails part
//! way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rpc_runtime::backend::ShardOp;
use rpc_runtime::protocol::shards;
use rpc_runtime::{
    CallError, Client, DynamicService, Enqueue, ErrorKind, HandlerError, Sent, Worker,
};
use rpc_testkit::RedisServer;
use serde_json::json;

/// What the worker saw: each `note`'s call id and `n`.
type Seen = Arc<Mutex<Vec<(String, u64)>>>;

fn service(seen: Seen) -> DynamicService {
    DynamicService::new("Bulk")
        .job("note", move |req| {
            let seen = seen.clone();
            async move {
                let n = req.data["n"].as_u64().unwrap_or(u64::MAX);
                seen.lock()
                    .unwrap()
                    .push((req.context.id().as_str().to_owned(), n));
                req.respond(json!(null))
            }
        })
        .job("echo", |req| async move {
            let n = req.data["n"].as_u64().unwrap_or(0);
            if n % 7 == 3 {
                return Err(HandlerError::fatal(format!("{n} is unlucky")));
            }
            req.respond(json!({ "n": n }))
        })
}

struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<rpc_runtime::StatsSnapshot, rpc_runtime::Error>>,
}

async fn start_worker(url: &str, seen: Seen) -> Running {
    let worker = Worker::builder(url)
        .mount(service(seen))
        .concurrency(32)
        .build()
        .await
        .expect("worker connects");
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(worker.run_until(async move {
        let _ = rx.await;
    }));
    Running { stop, task }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn exercise(url: &str) {
    let seen: Seen = Arc::default();
    let worker = start_worker(url, seen.clone()).await;
    let client = Client::builder(url)
        .default_timeout(Duration::from_secs(30))
        .connect()
        .await
        .unwrap();

    // send_many: one id per job, unique, in the batch's order; each job
    // runs once.
    const JOBS: u64 = 2_500; // three chunks on Redis
    let ids = client
        .send_many("Bulk.note", (0..JOBS).map(|n| json!({ "n": n })))
        .await
        .unwrap();
    assert_eq!(ids.len() as u64, JOBS);
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len() as u64, JOBS, "ids are unique");
    wait_until("every job ran", || {
        seen.lock().unwrap().len() as u64 >= JOBS
    })
    .await;
    let ran: HashMap<String, Vec<u64>> =
        seen.lock()
            .unwrap()
            .iter()
            .fold(HashMap::new(), |mut by_id, (id, n)| {
                by_id.entry(id.clone()).or_default().push(*n);
                by_id
            });
    for (n, id) in ids.iter().enumerate() {
        assert_eq!(
            ran.get(id.as_str()).map(Vec::as_slice),
            Some(&[n as u64][..]),
            "job {n} ran once, under the id returned in its place"
        );
    }

    // call_many: every answer in order, each its own Result.
    let answers = client
        .call_many("Bulk.echo", (0..200).map(|n| json!({ "n": n })))
        .await
        .unwrap();
    assert_eq!(answers.len(), 200);
    for (n, answer) in answers.into_iter().enumerate() {
        match answer {
            Ok(data) => assert_eq!(data, json!({ "n": n }), "answer {n}"),
            Err(CallError::Rpc(e)) if n % 7 == 3 => {
                assert_eq!(e.remote_kind(), Some(ErrorKind::Handler), "{e}");
                assert!(e.to_string().contains(&format!("{n} is unlucky")), "{e}");
            }
            other => panic!("answer {n}: {other:?}"),
        }
    }

    // Handles: sent now, answered later, in order.
    let pending = client
        .call_many("Bulk.echo", (0..5).map(|n| json!({ "n": n * 7 })))
        .send()
        .await
        .unwrap();
    for (n, p) in pending.into_iter().enumerate() {
        assert_eq!(p.await.unwrap(), json!({ "n": n * 7 }));
    }

    // A batch of several jobs with options per call and for the batch: a
    // delayed call, an idempotent one sent twice (runs once).
    let before = seen.lock().unwrap().len();
    let mut batch = client.batch();
    batch
        .push(
            client
                .send("Bulk.note", json!({"n": 1_000_001}))
                .idempotency_key("once"),
        )
        .push(
            client
                .send("Bulk.note", json!({"n": 1_000_001}))
                .idempotency_key("once"),
        )
        .push(
            client
                .send("Bulk.note", json!({"n": 1_000_002}))
                .delay(Duration::from_millis(300)),
        )
        .push(client.send("Bulk.note", json!({"n": 1_000_003})));
    let ids = batch.meta("source", "import").await.unwrap();
    assert_eq!(ids.len(), 4);
    wait_until("the batch's three distinct jobs ran", || {
        seen.lock().unwrap().len() >= before + 3
    })
    .await;
    // The duplicate of the keyed call does not run; the rest each once.
    let later: Vec<u64> = seen.lock().unwrap()[before..].iter().map(|s| s.1).collect();
    let mut later_sorted = later.clone();
    later_sorted.sort();
    assert_eq!(later_sorted, [1_000_001, 1_000_002, 1_000_003], "{later:?}");

    // A bad call refuses the whole batch before anything is sent, naming it.
    let mut batch = client.batch();
    for n in 0..10 {
        let call = client.send("Idle.note", json!({ "n": n }));
        batch.push(if n == 6 {
            call.idempotency_key("bad\nkey")
        } else {
            call
        });
    }
    let refused = batch.await.unwrap_err();
    assert_eq!(refused.refused, Some(6), "{refused}");
    assert!(
        refused.to_string().contains("call 6 of a batch of 10"),
        "{refused}"
    );
    // So does a message over the client's limit, among messages written
    // into the same buffer before and after it.
    let small = Client::builder(url)
        .max_payload(1024)
        .connect()
        .await
        .unwrap();
    let sizes = [10, 10, 10, 4_000, 10];
    let oversized = small
        .send_many(
            "Idle.note",
            sizes.map(|len| json!({ "n": 1, "pad": "x".repeat(len) })),
        )
        .await
        .unwrap_err();
    assert_eq!(oversized.refused, Some(3), "{oversized}");
    assert!(oversized.to_string().contains("limit"), "{oversized}");
    let unserializable = client
        .send_many("no-service-here", [json!({})])
        .await
        .unwrap_err();
    assert_eq!(unserializable.refused, Some(0), "{unserializable}");
    let stats = client.backend().service_stats("Idle").await.unwrap();
    assert!(
        stats.as_ref().is_none_or(|s| s.queued == 0),
        "nothing of a refused batch is queued: {stats:?}"
    );

    // Empty batches are fine.
    assert!(client.send_many("Bulk.note", []).await.unwrap().is_empty());

    // A process's first calls of a service wait for its shard count: a
    // fresh client's first send, and another's first batch, are placed
    // over the 4 shards an operator set, not all on shard 0 (an untyped
    // call's count is 1 until the broker's is read).
    client
        .backend()
        .shard_count("Spread", ShardOp::Set(4))
        .await
        .unwrap();
    let shard = |id: &rpc_runtime::JobId| shards::shard_of_id(id.as_str());
    let fresh = Client::connect(url).await.unwrap();
    let id = fresh.send("Spread.note", json!({ "n": 0 })).await.unwrap();
    assert!(shard(&id).is_some(), "a first send on shard 0: {id}");
    let fresh = Client::connect(url).await.unwrap();
    let ids = fresh
        .send_many("Spread.note", (0..20).map(|n| json!({ "n": n })))
        .await
        .unwrap();
    let spread: std::collections::HashSet<u32> = ids
        .iter()
        .map(|id| shard(id).unwrap_or_else(|| panic!("a first batch's call on shard 0: {id}")))
        .collect();
    assert_eq!(spread.len(), 4, "{spread:?}");

    let _ = worker.stop.send(());
    worker.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_sends_on_memory() {
    exercise("memory://bulk").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_sends_on_redis() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server starts");
    exercise(&server.url()).await;
}

/// A figure from Redis's `INFO`: `field` in `section`, or within a
/// `cmdstat_<command>` line, its `calls`.
async fn info(con: &mut redis::aio::MultiplexedConnection, field: &str) -> u64 {
    let text: String = redis::cmd("INFO")
        .arg("everything")
        .query_async(con)
        .await
        .unwrap();
    let line = text.lines().find(|l| l.starts_with(&format!("{field}:")));
    let Some(line) = line else { return 0 };
    let value = &line[field.len() + 1..];
    let value = value
        .strip_prefix("calls=")
        .map_or(value, |v| v.split(',').next().unwrap());
    value.trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_one_round_trip_and_one_command_per_job() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server starts");
    let mut watch = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for (enqueue, command, per_batch) in [
        (Enqueue::Stream, "cmdstat_xadd", 50),
        (Enqueue::Intake, "cmdstat_rpush", 1),
    ] {
        let client = Client::builder(server.url())
            .enqueue(enqueue)
            .connect()
            .await
            .unwrap();
        // Nothing else talks to this server: every read Redis does between
        // the two INFOs is the batch's or the second INFO's.
        let commands = info(&mut watch, command).await;
        let reads = info(&mut watch, "total_reads_processed").await;
        let ids = client
            .send_many("Quiet.note", (0..50).map(|n| json!({ "n": n })))
            .await
            .unwrap();
        assert_eq!(ids.len(), 50);
        // The batch's reads and the INFO's own.
        let reads = info(&mut watch, "total_reads_processed").await - reads - 1;
        let commands = info(&mut watch, command).await - commands;
        eprintln!("{enqueue:?}: 50 jobs, {commands} {command}, {reads} reads by Redis");
        assert_eq!(commands, per_batch, "{command} for a batch of 50");
        // Its ~12 KiB come in one write, under Redis's 16 KiB read buffer.
        assert!(reads <= 2, "a batch of 50 is one round trip: {reads} reads");
        assert!(reads >= 1);
        // The same 50 one at a time: one read each.
        let before = info(&mut watch, "total_reads_processed").await;
        for n in 0..50 {
            client.send("Quiet.note", json!({ "n": n })).await.unwrap();
        }
        let one_by_one = info(&mut watch, "total_reads_processed").await - before;
        assert!(one_by_one >= 50, "{one_by_one} reads for 50 single sends");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_fails_part_way_says_which_calls_were_queued() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server starts");
    let url = server.url();
    let client = Client::connect(&url).await.unwrap();
    // `Broken`'s jobs stream is a string: Redis refuses every XADD to it.
    let mut con = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(rpc_runtime::protocol::Keys::new("rpc").jobs("Broken"))
        .arg("not a stream")
        .query_async(&mut con)
        .await
        .unwrap();
    let mut batch = client.batch();
    for n in 0..6 {
        let service = if n % 2 == 0 { "Fine" } else { "Broken" };
        batch.push(client.send(&format!("{service}.note"), json!({ "n": n })));
    }
    let failed = batch.await.unwrap_err();
    assert_eq!(failed.refused, None);
    assert_eq!(failed.calls.len(), 6, "{failed}");
    for (n, sent) in failed.calls.iter().enumerate() {
        if n % 2 == 0 {
            assert!(sent.is_queued(), "call {n}: {sent:?}");
        } else {
            assert!(
                matches!(sent, Sent::Refused(_, e) if e.to_string().contains("WRONGTYPE")),
                "call {n}: {sent:?}"
            );
        }
    }
    assert_eq!(failed.queued().count(), 3);
    assert!(failed.to_string().contains("3 queued"), "{failed}");
    let fine = client
        .backend()
        .service_stats("Fine")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fine.stream_length, 3);

    // A call whose deadline passed while its batch was encoded (1 ms, in
    // a batch of 10,000 that takes longer than that to encode) is refused
    // alone, with its timeout; it bounds nothing: the other calls of its
    // queue are all queued, in order. (Before, the batch's earliest
    // deadline bounded every round trip: 9,999 calls with 30 s to go were
    // reported not sent, in the name of one of them.)
    let mut batch = client.batch();
    batch.push(
        client
            .send("Tight.note", json!({ "n": 0 }))
            .timeout(Duration::from_millis(1)),
    );
    for n in 1..10_000 {
        batch.push(
            client
                .send("Tight.note", json!({ "n": n }))
                .timeout(Duration::from_secs(30)),
        );
    }
    let failed = batch.await.unwrap_err();
    let tight = &failed.calls[0];
    assert!(
        matches!(tight, Sent::Refused(_, rpc_runtime::Error::Timeout { .. })),
        "{tight:?}"
    );
    assert_eq!(failed.queued().count(), 9_999, "{failed}");
    assert!(failed.to_string().contains(tight.id().as_str()), "{failed}");
    let tight_stats = client
        .backend()
        .service_stats("Tight")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tight_stats.stream_length, 9_999);

    // The broker gone: the first round trip's calls may have been queued,
    // the later chunks' were not sent.
    drop(con);
    drop(server);
    let failed = client
        .send_many("Fine.note", (0..2_500).map(|n| json!({ "n": n })))
        .timeout(Duration::from_secs(3))
        .await
        .unwrap_err();
    assert!(failed.is_transient(), "{failed}");
    let unknown = failed
        .calls
        .iter()
        .filter(|s| matches!(s, Sent::Unknown(_)))
        .count();
    let not_sent = failed
        .calls
        .iter()
        .filter(|s| matches!(s, Sent::NotSent(_)))
        .count();
    assert_eq!((unknown, not_sent), (1_000, 1_500), "{failed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_may_not_xadd_turns_its_batch_to_the_intake() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server starts");
    // Everything but XADD, as the client role (which may RPUSH the intake).
    let set = server.cli([
        "ACL", "SETUSER", "no-xadd", "on", ">pw", "~*", "&*", "+@all", "-xadd",
    ]);
    assert_eq!(set.trim(), "OK");
    let seen: Seen = Arc::default();
    let worker = start_worker(&server.url(), seen.clone()).await;
    let client = Client::connect(&server.url_as("no-xadd", "pw"))
        .await
        .unwrap();
    for round in 0..2u64 {
        let ids = client
            .send_many(
                "Bulk.note",
                (0..30).map(|n| json!({ "n": round * 100 + n })),
            )
            .await
            .unwrap();
        assert_eq!(ids.len(), 30);
        wait_until("the batch ran", || {
            seen.lock().unwrap().len() as u64 >= (round + 1) * 30
        })
        .await;
        let seen = seen.lock().unwrap();
        for (n, id) in ids.iter().enumerate() {
            let ran: Vec<u64> = seen
                .iter()
                .filter(|(ran, _)| ran == id.as_str())
                .map(|s| s.1)
                .collect();
            assert_eq!(ran, [round * 100 + n as u64], "job {n} of round {round}");
        }
    }
    // The first batch's XADDs were refused once (NOPERM); after that,
    // batches go straight to the intake.
    let stats = server.cli(["INFO", "commandstats"]);
    let rejected = stats
        .lines()
        .find(|l| l.starts_with("cmdstat_xadd:"))
        .and_then(|l| l.split("rejected_calls=").nth(1))
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().parse::<u64>().unwrap());
    assert_eq!(rejected, Some(30), "{stats}");
    let _ = worker.stop.send(());
    worker.task.await.unwrap().unwrap();
}

/// A batch of many chunks, several in flight at once, lands on the stream
/// in the batch's order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chunks_of_a_batch_land_in_its_order() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server starts");
    let client = Client::connect(&server.url()).await.unwrap();
    const JOBS: u64 = 7_500; // eight chunks
    let ids = client
        .send_many("Ordered.note", (0..JOBS).map(|n| json!({ "n": n })))
        .await
        .unwrap();
    assert_eq!(ids.len() as u64, JOBS);
    let listed = server.cli(["XRANGE", "rpc:{Ordered}:jobs", "-", "+"]);
    let order: Vec<u64> = listed
        .lines()
        .filter_map(|l| l.strip_prefix('{'))
        .map(|m| {
            let v: serde_json::Value = serde_json::from_str(&format!("{{{m}")).unwrap();
            v["params"]["n"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(order, (0..JOBS).collect::<Vec<_>>());
}
