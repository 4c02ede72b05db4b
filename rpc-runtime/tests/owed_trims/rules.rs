//! A worker's larger ack-only batches (one-way jobs) are acked at once and
//! trimmed from their stream a few hundred ids at a time
//! (`rpc-runtime/src/backend/redis/reader/owed_trims.rs`): the trim goes
//! with the read in which the reader comes to owe 256 ids, with its next
//! read that waits for jobs, or when it settles before it is dropped. While
//! it owes, a read that carries completions does not block, so a worker
//! going idle never holds its trims through a wait. Driven through the
//! backend's `Reader` against a private redis-server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rpc_runtime::backend::{connect, Broker, BrokerConfig, Completion, Delivery, Reader};
use rpc_testkit::RedisServer;

const QUEUE: &str = "Svc";
const IDLE: &str = "Idle";

/// `n` jobs queued on [`QUEUE`] and all taken by one reader.
async fn taken(
    server: &RedisServer,
    n: usize,
) -> (Arc<dyn Broker>, Box<dyn Reader>, Vec<Delivery>) {
    let backend = connect(&BrokerConfig::new(server.url()))
        .await
        .expect("connect");
    backend
        .prepare_queues(&[QUEUE.to_owned(), IDLE.to_owned()])
        .await
        .unwrap();
    for i in 0..n {
        backend
            .push_job(QUEUE, format!("job {i}").as_bytes())
            .await
            .unwrap();
    }
    let mut reader = backend.open_reader().await.unwrap();
    let mut out = Vec::new();
    while out.len() < n {
        let more = reader
            .take_jobs(
                &[QUEUE.to_owned()],
                "c1",
                n - out.len(),
                Duration::from_secs(1),
            )
            .await
            .unwrap();
        assert!(!more.is_empty(), "jobs not taken: {}", out.len());
        out.extend(more);
    }
    (backend, reader, out)
}

fn acks(taken: &[Delivery]) -> Vec<(Delivery, Completion)> {
    taken
        .iter()
        .map(|d| (d.clone(), Completion::default()))
        .collect()
}

fn stream_len(server: &RedisServer) -> usize {
    server
        .cli(["XLEN", &format!("rpc:{{{QUEUE}}}:jobs")])
        .trim()
        .parse()
        .unwrap()
}

fn calls_of(server: &RedisServer, command: &str) -> usize {
    let stats = server.cli(["INFO", "commandstats"]);
    let prefix = format!("cmdstat_{command}:calls=");
    let Some(at) = stats.find(&prefix) else {
        return 0;
    };
    let rest = &stats[at + prefix.len()..];
    rest[..rest.find(',').unwrap()].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_owes_trims_does_not_wait_and_trims_before_it_does() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let (_backend, mut reader, taken) = taken(&server, 40).await;
    server.cli(["CONFIG", "RESETSTAT"]);
    // Forty acks alone, then a read of an empty queue that may wait 30 s:
    // it answers at once, as the reader owes their trim.
    let started = Instant::now();
    let out = reader
        .complete_and_take(
            &acks(&taken),
            &[IDLE.to_owned()],
            "c1",
            1,
            Duration::from_secs(30),
        )
        .await;
    assert!(out.not_completed.is_empty(), "{:?}", out.not_completed);
    assert!(out.taken.unwrap().is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "a read carrying owed trims waited: {:?}",
        started.elapsed()
    );
    assert_eq!(stream_len(&server), 40, "acked, not yet trimmed");
    assert!(server
        .cli(["XPENDING", "rpc:{Svc}:jobs", "workers"])
        .starts_with('0'));
    assert_eq!(calls_of(&server, "xtrim"), 0);
    // The next read waits for jobs: it trims first.
    let none = reader
        .take_jobs(&[IDLE.to_owned()], "c1", 1, Duration::from_millis(10))
        .await
        .unwrap();
    assert!(none.is_empty());
    assert_eq!(stream_len(&server), 0);
    assert_eq!(calls_of(&server, "xtrim"), 1, "one trim for the forty");
    // Owing nothing, a read carrying completions waits again (a short wait
    // here: it must not answer before it).
    let started = Instant::now();
    let out = reader
        .complete_and_take(&[], &[IDLE.to_owned()], "c1", 1, Duration::from_millis(300))
        .await;
    assert!(out.taken.unwrap().is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owing_a_few_hundred_ids_trims_with_the_read_itself() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let (_backend, mut reader, taken) = taken(&server, 300).await;
    server.cli(["CONFIG", "RESETSTAT"]);
    // 200 acks alone: owed.
    let out = reader
        .complete_and_take(
            &acks(&taken[..200]),
            &[IDLE.to_owned()],
            "c1",
            1,
            Duration::from_millis(10),
        )
        .await;
    assert!(out.not_completed.is_empty(), "{:?}", out.not_completed);
    assert_eq!(stream_len(&server), 300);
    // 100 more: 300 owed, past 256, so the same pipeline trims all of them.
    let out = reader
        .complete_and_take(
            &acks(&taken[200..]),
            &[IDLE.to_owned()],
            "c1",
            1,
            Duration::from_millis(10),
        )
        .await;
    assert!(out.not_completed.is_empty(), "{:?}", out.not_completed);
    assert_eq!(stream_len(&server), 0);
    assert_eq!(calls_of(&server, "xtrim"), 1);
    assert_eq!(calls_of(&server, "evalsha"), 1, "one trim for the 300");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_settling_trims_what_it_owes() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let (backend, mut reader, taken) = taken(&server, 30).await;
    // One more waits in the queue: trimming never touches it.
    backend.push_job(QUEUE, b"waiting").await.unwrap();
    let out = reader
        .complete_and_take(
            &acks(&taken),
            &[IDLE.to_owned()],
            "c1",
            1,
            Duration::from_millis(10),
        )
        .await;
    assert!(out.not_completed.is_empty(), "{:?}", out.not_completed);
    assert_eq!(stream_len(&server), 31);
    reader.settle().await;
    assert_eq!(stream_len(&server), 1);
    let left = server.cli(["XRANGE", "rpc:{Svc}:jobs", "-", "+"]);
    assert!(left.contains("waiting"), "{left}");
}
