//! The worker's ack-only completions (one-way jobs) ride on its next read as
//! one `XACK` + `XDEL` per queue instead of a script call per job (the fix
//! of the fire-and-forget regression, rpc-bench/RESULTS.md). Driven through
//! the backend's `Reader` against a private redis-server, as
//! rpc-runtime/tests/redis_reader.rs does: every completion of a mixed
//! batch takes effect, in the right place, and a refused batch is reported
//! for each of its jobs, still leased.

use std::sync::Arc;
use std::time::Duration;

use rpc_runtime::backend::{
    connect, Broker, BrokerConfig, CompleteError, Completion, CompletionStep, Delivery, Reader,
};
use rpc_testkit::RedisServer;

const QUEUE: &str = "Svc";
const OTHER: &str = "Other";

async fn taken(
    server: &RedisServer,
    jobs: &[(&str, &[u8])],
) -> (Arc<dyn Broker>, Box<dyn Reader>, Vec<Delivery>) {
    let backend = connect(&BrokerConfig::new(server.url()))
        .await
        .expect("connect");
    let queues = vec![QUEUE.to_owned(), OTHER.to_owned()];
    backend.prepare_queues(&queues).await.unwrap();
    for (queue, payload) in jobs {
        backend.push_job(queue, payload).await.unwrap();
    }
    let mut reader = backend.open_reader().await.unwrap();
    let mut out = Vec::new();
    while out.len() < jobs.len() {
        let more = reader
            .take_jobs(&queues, "c1", 10, Duration::from_secs(1))
            .await
            .unwrap();
        assert!(!more.is_empty(), "jobs not taken: {out:?}");
        out.extend(more);
    }
    (backend, reader, out)
}

fn pending(server: &RedisServer, queue: &str) -> String {
    server.cli(["XPENDING", &format!("rpc:{{{queue}}}:jobs"), "workers"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_only_completions_of_two_queues_and_a_reply_all_take_effect() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let jobs: [(&str, &[u8]); 4] = [
        (QUEUE, b"one"),
        (QUEUE, b"two"),
        (OTHER, b"three"),
        (QUEUE, b"four"),
    ];
    let (backend, mut reader, taken) = taken(&server, &jobs).await;
    let done: Vec<(Delivery, Completion)> = taken
        .iter()
        .map(|d| {
            let completion = if d.payload == b"two" {
                Completion {
                    reply: Some(b"{\"v\":1,\"id\":\"x\",\"ok\":1}".to_vec()),
                    reply_to: Some("rpc:inbox:{c}".to_owned()),
                    ..Completion::default()
                }
            } else {
                // What a one-way job that ran completes with.
                Completion::default()
            };
            (d.clone(), completion)
        })
        .collect();
    backend.push_job(QUEUE, b"five").await.unwrap();
    let queues = vec![QUEUE.to_owned(), OTHER.to_owned()];
    let out = reader
        .complete_and_take(&done, &queues, "c1", 10, Duration::from_millis(500))
        .await;
    assert!(out.not_completed.is_empty(), "{:?}", out.not_completed);
    let next = out.taken.expect("the read succeeds");
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].payload, b"five");
    // Acked and deleted: only the job taken since is left, in each queue.
    assert_eq!(server.cli(["XLEN", "rpc:{Svc}:jobs"]).trim(), "1");
    assert_eq!(server.cli(["XLEN", "rpc:{Other}:jobs"]).trim(), "0");
    assert!(
        pending(&server, QUEUE).starts_with('1'),
        "{}",
        pending(&server, QUEUE)
    );
    assert!(
        pending(&server, OTHER).starts_with('0'),
        "{}",
        pending(&server, OTHER)
    );
    assert_eq!(server.cli(["LLEN", "rpc:inbox:{c}"]).trim(), "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_ack_batch_is_reported_for_each_job_and_a_vanished_group_is_no_refusal() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let jobs: [(&str, &[u8]); 3] = [(QUEUE, b"one"), (QUEUE, b"two"), (OTHER, b"three")];
    let (_backend, mut reader, taken) = taken(&server, &jobs).await;
    let done: Vec<(Delivery, Completion)> = taken
        .iter()
        .map(|d| (d.clone(), Completion::default()))
        .collect();
    // The Svc stream replaced by a string: its acks are refused (WRONGTYPE);
    // the Other stream deleted: NOGROUP on its ack, which is no refusal.
    server.cli(["DEL", "rpc:{Svc}:jobs"]);
    server.cli(["SET", "rpc:{Svc}:jobs", "not a stream"]);
    server.cli(["DEL", "rpc:{Other}:jobs"]);
    let queues = vec![OTHER.to_owned()];
    let out = reader
        .complete_and_take(&done, &queues, "c1", 10, Duration::from_millis(100))
        .await;
    let mut refused: Vec<usize> = Vec::new();
    for (i, e) in &out.not_completed {
        assert_eq!(taken[*i].queue, QUEUE, "{e:?}");
        assert!(
            matches!(e, CompleteError::Refused { step: Some(CompletionStep::Ack), reason } if reason.starts_with("WRONGTYPE")),
            "{e:?}"
        );
        refused.push(*i);
    }
    let svc: Vec<usize> = (0..taken.len())
        .filter(|&i| taken[i].queue == QUEUE)
        .collect();
    assert_eq!(refused, svc, "each of Svc's jobs, in order");
    assert!(out.taken.is_ok(), "{:?}", out.taken);
}
