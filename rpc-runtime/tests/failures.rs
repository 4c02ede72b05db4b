//! The record of recent failures (issue 21, point 5), with an in-process
//! worker on a private redis-server: an attempt that fails and is retried,
//! and a handler error that is answered, each leave one entry with the
//! attempt, the error, the worker and how long it ran; the stream stays
//! near its cap however much is written; pages follow one another; and
//! `memory://` keeps the same record.
//!
//! Each test waits on what it can observe with a generous deadline.

use std::time::{Duration, Instant};

use rpc_protocol::limits::FAILURES_CAP;
use rpc_runtime::backend::{connect, BrokerConfig, Failure};
use rpc_runtime::inspect::RecordedFailure;
use rpc_runtime::{Backoff, Client, DynamicService, HandlerError, Inspector, Worker};
use rpc_testkit::RedisServer;
use serde_json::json;

/// How long any waited-for event may take on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// `F.flaky` fails its first attempt (retried) and then answers; `F.broken`
/// fails for good, not retried; `F.fine` answers.
fn service() -> DynamicService {
    DynamicService::new("F")
        .job("flaky", |req| async move {
            if req.context.attempt() == 1 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                return Err(HandlerError::retry("first attempts fail"));
            }
            Ok(json!("second time lucky"))
        })
        .job("broken", |_req| async move {
            Err::<serde_json::Value, _>(HandlerError::fatal("this job always fails"))
        })
        .job("fine", |req| async move { Ok(req.data.clone()) })
}

/// Polls `F`'s recent failures until one of call `id` is there.
async fn failure_of(inspector: &Inspector, id: &str) -> Vec<RecordedFailure> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let all = inspector.recent_failures("F", None, 100).await.unwrap();
        let of: Vec<_> = all.into_iter().filter(|f| f.failure.id == id).collect();
        if !of.is_empty() {
            return of;
        }
        assert!(Instant::now() < deadline, "no failure of {id} was recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_attempts_are_recorded_with_attempt_error_worker_and_duration() {
    let redis = RedisServer::start().expect("redis");
    let worker = Worker::builder(redis.url())
        .mount(service())
        .consumer_name("failing-worker-1")
        .max_attempts(3)
        .backoff(Backoff::Exponential {
            base_ms: 50,
            max_ms: 500,
        })
        .build()
        .await
        .expect("worker");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(worker.run_until(async move {
        let _ = rx.await;
    }));
    let client = Client::connect(&redis.url()).await.unwrap();
    let inspector = Inspector::connect(&redis.url(), "rpc").await.unwrap();

    let pending = client.call("F.flaky", json!({})).send().await.unwrap();
    let flaky = pending.id().to_string();
    assert_eq!(pending.wait().await.unwrap(), json!("second time lucky"));
    let recorded = failure_of(&inspector, &flaky).await;
    assert_eq!(recorded.len(), 1, "one failed attempt: {recorded:?}");
    let f = &recorded[0].failure;
    assert_eq!(f.job, "F.flaky");
    assert_eq!(f.attempt, 1);
    assert!(f.retried, "{f:?}");
    assert_eq!(f.kind, "handler");
    assert_eq!(f.message, "first attempts fail");
    assert_eq!(f.worker, "failing-worker-1");
    assert!(f.duration_ms >= 20, "it ran 20 ms at least: {f:?}");
    assert!(recorded[0].at_ms > 0);

    let pending = client.call("F.broken", json!({})).send().await.unwrap();
    let broken = pending.id().to_string();
    let answered = pending.wait().await;
    assert!(answered.is_err(), "F.broken answered {answered:?}");
    let recorded = failure_of(&inspector, &broken).await;
    assert_eq!(recorded.len(), 1, "one failed attempt: {recorded:?}");
    let f = &recorded[0].failure;
    assert_eq!(
        (f.job.as_str(), f.attempt, f.retried),
        ("F.broken", 1, false)
    );
    assert_eq!(f.message, "this job always fails");
    assert_eq!(f.worker, "failing-worker-1");

    // A success is not a failure; the newest comes first, and the stream
    // expires within a day of its last write.
    client
        .call("F.fine", json!(1))
        .send()
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    let all = inspector.recent_failures("F", None, 100).await.unwrap();
    let ids: Vec<_> = all.iter().map(|f| f.failure.id.as_str()).collect();
    assert_eq!(ids, [broken.as_str(), flaky.as_str()]);
    let ttl: i64 = redis
        .cli(["PTTL", "rpc:{F}:failures"])
        .trim()
        .parse()
        .unwrap();
    assert!(
        (1..=24 * 60 * 60 * 1000).contains(&ttl),
        "the record's TTL: {ttl} ms"
    );

    let _ = tx.send(());
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_record_stays_near_its_cap_and_pages_newest_first() {
    let redis = RedisServer::start().expect("redis");
    let broker = connect(&BrokerConfig::new(redis.url())).await.unwrap();
    let written = FAILURES_CAP * 2 + 10;
    for i in 0..written {
        let failure = Failure {
            id: format!("call-{i}"),
            job: "F.broken".to_owned(),
            attempt: 1,
            kind: "handler".to_owned(),
            message: "x".repeat(5_000),
            worker: "w".to_owned(),
            duration_ms: 1,
            retried: false,
        };
        broker.record_failure("F", &failure).await.unwrap();
    }
    let len: usize = redis
        .cli(["XLEN", "rpc:{F}:failures"])
        .trim()
        .parse()
        .unwrap();
    // `MAXLEN ~` trims whole macro nodes (100 entries by default).
    assert!(
        (FAILURES_CAP..FAILURES_CAP + 200).contains(&len),
        "{len} entries after {written} writes"
    );

    let inspector = Inspector::connect(&redis.url(), "rpc").await.unwrap();
    let first = inspector.recent_failures("F", None, 50).await.unwrap();
    assert_eq!(first.len(), 50);
    assert_eq!(first[0].failure.id, format!("call-{}", written - 1));
    assert!(first[0].failure.message.len() <= rpc_protocol::limits::FAILURE_MESSAGE_BYTES);
    let cursor = first.last().unwrap().entry.clone();
    let second = inspector
        .recent_failures("F", Some(&cursor), 50)
        .await
        .unwrap();
    assert_eq!(second[0].failure.id, format!("call-{}", written - 51));
    assert!(inspector
        .recent_failures("F", Some("not-an-id"), 50)
        .await
        .is_err());
    // Garbage under the key reads as nothing, not as an error.
    redis.cli(["DEL", "rpc:{F}:failures"]);
    redis.cli(["SET", "rpc:{F}:failures", "garbage"]);
    assert!(inspector
        .recent_failures("F", None, 50)
        .await
        .unwrap()
        .is_empty());
}

/// `memory://` keeps the same record: capped, newest first, paged by the
/// same cursors, a cursor that is no entry id refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_broker_keeps_the_same_record() {
    let url = "memory://failures-record";
    let broker = connect(&BrokerConfig::new(url)).await.unwrap();
    let written = FAILURES_CAP + 10;
    for i in 0..written {
        let failure = Failure {
            id: format!("call-{i}"),
            job: "F.broken".to_owned(),
            attempt: 1,
            kind: "handler".to_owned(),
            message: "no".to_owned(),
            worker: "w".to_owned(),
            duration_ms: 1,
            retried: i % 2 == 0,
        };
        broker.record_failure("F", &failure).await.unwrap();
    }
    let inspector = Inspector::connect(url, "rpc").await.unwrap();
    let all = inspector
        .recent_failures("F", None, usize::MAX)
        .await
        .unwrap();
    assert_eq!(all.len(), FAILURES_CAP);
    assert_eq!(all[0].failure.id, format!("call-{}", written - 1));
    let first = inspector.recent_failures("F", None, 10).await.unwrap();
    let cursor = first.last().unwrap().entry.clone();
    let second = inspector
        .recent_failures("F", Some(&cursor), 10)
        .await
        .unwrap();
    assert_eq!(second[0].failure.id, format!("call-{}", written - 11));
    assert!(inspector
        .recent_failures("F", Some("nope"), 10)
        .await
        .is_err());
    drop(broker);
}
