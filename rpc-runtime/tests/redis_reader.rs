//! The Redis backend's combined round trips, driven directly through the
//! `Queue` and `Reader` traits against a private redis-server: what was
//! applied and what was not must be told apart exactly, because the worker
//! and the client retry only what did not take effect. And a worker's read
//! of all its queues at once, which one broken queue must not stop.

use std::sync::Arc;
use std::time::Duration;

use rpc_runtime::backend::{
    connect, Broker, BrokerConfig, CompleteError, Completion, CompletionStep, Delivery, Reader,
};
use rpc_runtime::{Client, DynamicService, Worker};
use rpc_testkit::RedisServer;
use serde_json::json;

const QUEUE: &str = "Svc";

/// A private redis-server with `payloads` queued on `Svc`, and a reader
/// that has taken them all as consumer `c1`.
async fn jobs_taken(
    payloads: &[&[u8]],
) -> (RedisServer, Arc<dyn Broker>, Box<dyn Reader>, Vec<Delivery>) {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let backend = connect(&BrokerConfig::new(server.url()))
        .await
        .expect("connect");
    let queues = vec![QUEUE.to_owned()];
    backend.prepare_queues(&queues).await.unwrap();
    for payload in payloads {
        backend.push_job(QUEUE, payload).await.unwrap();
    }
    let mut reader = backend.open_reader().await.unwrap();
    let taken = reader
        .take_jobs(&queues, "c1", 10, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(taken.len(), payloads.len());
    (server, backend, reader, taken)
}

/// Two jobs are taken; their completions ride on the next read. The second
/// replies to a key that is not a list, so Redis refuses its `RPUSH`: only
/// that one is reported as not completed, as refused at the reply, and it
/// is still leased (no ack after a refused reply) while the key keeps its
/// content and gets no TTL. The read still returns the job queued meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_ride_on_the_next_read_and_failures_are_told_apart() {
    let (server, backend, mut reader, taken) = jobs_taken(&[b"one", b"two"]).await;
    let queues = vec![QUEUE.to_owned()];
    assert_eq!(taken.len(), 2);
    server.cli(["SET", "rpc:inbox:{bad}", "not a list"]);
    let reply = |to: &str| Completion {
        reply: Some(b"{\"v\":1,\"id\":\"x\",\"ok\":1}".to_vec()),
        reply_to: Some(to.to_owned()),
        ..Completion::default()
    };
    let done: Vec<(Delivery, Completion)> = vec![
        (taken[0].clone(), reply("rpc:inbox:{good}")),
        (taken[1].clone(), reply("rpc:inbox:{bad}")),
    ];
    backend.push_job(QUEUE, b"three").await.unwrap();

    let out = reader
        .complete_and_take(&done, &queues, "c1", 10, Duration::from_millis(200))
        .await;
    assert_eq!(out.not_completed.len(), 1, "only the refused RPUSH failed");
    let (index, error) = &out.not_completed[0];
    assert_eq!(*index, 1);
    assert!(
        matches!(error, CompleteError::Refused { step: Some(CompletionStep::Reply), reason } if reason.starts_with("WRONGTYPE")),
        "{error:?}"
    );
    assert_eq!(server.cli(["GET", "rpc:inbox:{bad}"]).trim(), "not a list");
    assert_eq!(server.cli(["PTTL", "rpc:inbox:{bad}"]).trim(), "-1");
    let pending = server.cli(["XPENDING", "rpc:{Svc}:jobs", "workers", "-", "+", "10"]);
    assert!(
        pending.contains(&taken[1].token),
        "refused, so not acked: {pending}"
    );
    let next = out.taken.expect("the read succeeds");
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].payload, b"three");

    // The first completion took effect: its reply is there and it is acked.
    assert_eq!(server.cli(["LLEN", "rpc:inbox:{good}"]).trim(), "1");
    let pending = server.cli(["XPENDING", "rpc:{Svc}:jobs", "workers", "-", "+", "10"]);
    assert!(
        !pending.contains(&taken[0].token),
        "job one still pending: {pending}"
    );

    // Sending the failed one again the ordinary way, once the inbox is
    // usable, delivers its reply.
    server.cli(["DEL", "rpc:inbox:{bad}"]);
    backend.complete(&done[1].0, &done[1].1).await.unwrap();
    assert_eq!(server.cli(["LLEN", "rpc:inbox:{bad}"]).trim(), "1");
    let pending = server.cli(["XPENDING", "rpc:{Svc}:jobs", "workers", "-", "+", "10"]);
    assert!(!pending.contains(&taken[1].token), "{pending}");
}

/// A group that vanished (Redis restarted without persistence, or the
/// stream was deleted) is recreated by the combined read, and the
/// completion's reply still goes out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_combined_read_recreates_a_vanished_group() {
    let (server, backend, mut reader, taken) = jobs_taken(&[b"one"]).await;
    let queues = vec![QUEUE.to_owned()];
    server.cli(["DEL", "rpc:{Svc}:jobs"]);
    let done = vec![(
        taken[0].clone(),
        Completion {
            reply: Some(b"{}".to_vec()),
            reply_to: Some("rpc:inbox:{c}".to_owned()),
            ..Completion::default()
        },
    )];
    let out = reader
        .complete_and_take(&done, &queues, "c1", 10, Duration::from_millis(100))
        .await;
    assert!(
        out.not_completed.is_empty(),
        "NOGROUP on XACK is no failure"
    );
    assert_eq!(out.taken.expect("recreated").len(), 0);
    assert_eq!(server.cli(["LLEN", "rpc:inbox:{c}"]).trim(), "1");
    let groups = server.cli(["XINFO", "GROUPS", "rpc:{Svc}:jobs"]);
    assert!(groups.contains("workers"), "{groups}");
    backend.push_job(QUEUE, b"two").await.unwrap();
    let again = reader
        .take_jobs(&queues, "c1", 10, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
}

/// One queue's stream replaced by a string (`SET rpc:{Clobbered}:jobs`)
/// made the worker's one multi-stream `XREADGROUP` fail with `WRONGTYPE`
/// on every read, so the worker served none of its queues: a call of the
/// other service timed out. Now that queue is set aside: the other
/// service's calls are answered (one by one, which goes through both the
/// plain read and the read that carries completions, and in a burst), and
/// once the key is deleted the clobbered service is served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_whose_stream_is_clobbered_leaves_the_others_served() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let url = server.url();
    let echo = |name: &str| {
        DynamicService::new(name).job("echo", |req| async move { Ok(json!({ "echo": req.data })) })
    };
    let worker = Worker::builder(&url)
        .concurrency(8)
        .mount(echo("Clobbered"))
        .mount(echo("Other"))
        .build()
        .await
        .expect("worker");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run_until(async move {
        let _ = stopped.await;
    }));
    // Generous: a loaded machine is slow, but a worker that serves
    // nothing never answers.
    let client = Client::builder(&url)
        .default_timeout(Duration::from_secs(30))
        .connect()
        .await
        .expect("client");
    for name in ["Clobbered", "Other"] {
        client
            .call(&format!("{name}.echo"), json!("warm"))
            .response()
            .await
            .expect("both services are served at first");
    }

    server.cli(["SET", "rpc:{Clobbered}:jobs", "not a stream"]);
    for k in 0..20 {
        let reply = client
            .call("Other.echo", json!(k))
            .response()
            .await
            .expect("the other service is answered beside a clobbered queue");
        assert_eq!(reply.data, json!({ "echo": k }));
    }
    let mut burst = tokio::task::JoinSet::new();
    for k in 0..200 {
        let client = client.clone();
        burst.spawn(async move { client.call("Other.echo", json!(k)).response().await });
    }
    while let Some(answer) = burst.join_next().await {
        answer
            .expect("task")
            .expect("a burst call beside a clobbered queue");
    }

    // Repaired (deleted: the client's next job makes the stream, the
    // worker its group): served again once the queue is read again.
    server.cli(["DEL", "rpc:{Clobbered}:jobs"]);
    let reply = client
        .call("Clobbered.echo", json!("again"))
        .response()
        .await
        .expect("the repaired queue is served again");
    assert_eq!(reply.data, json!({ "echo": "again" }));
    let _ = stop.send(());
    let stats = running.await.expect("worker task").expect("worker");
    assert_eq!(stats.succeeded, 2 + 20 + 200 + 1);
}
