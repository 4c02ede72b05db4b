//! The untyped path (the old library's API) against a private redis-server
//! and against the memory backend: call_and_wait, fire-and-forget, unknown
//! jobs, retries into the dead-letter stream, garbage on the queue.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rpc_runtime::{CallOptions, Client, DynamicService, ErrorKind, HandlerError, Worker};
use rpc_testkit::RedisServer;
use serde_json::json;

struct Running {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<rpc_runtime::StatsSnapshot, rpc_runtime::Error>>,
}

impl Running {
    async fn stop(mut self) -> rpc_runtime::StatsSnapshot {
        let _ = self.stop.take().map(|s| s.send(()));
        self.task
            .await
            .expect("worker task")
            .expect("worker result")
    }
}

fn service(seen: Arc<AtomicU32>, flaky: Arc<AtomicU32>) -> DynamicService {
    let seen2 = seen.clone();
    DynamicService::new("Legacy")
        .job("add", |req| async move {
            let a = req.data["a"]
                .as_i64()
                .ok_or_else(|| HandlerError::fatal("a must be an integer"))?;
            let b = req.data["b"]
                .as_i64()
                .ok_or_else(|| HandlerError::fatal("b must be an integer"))?;
            req.respond(json!({ "sum": a + b }))
        })
        .job("note", move |req| {
            let seen = seen2.clone();
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
                req.respond(json!(null))
            }
        })
        .job("flaky", move |req| {
            let flaky = flaky.clone();
            async move {
                flaky.fetch_add(1, Ordering::SeqCst);
                Err(HandlerError::retry(format!(
                    "not today (attempt {})",
                    req.context.attempt()
                )))
            }
        })
}

async fn start_worker(url: &str, seen: Arc<AtomicU32>, flaky: Arc<AtomicU32>) -> Running {
    let worker = Worker::builder(url)
        .mount(service(seen, flaky))
        .max_attempts(3)
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

async fn exercise(url: &str) {
    let seen = Arc::new(AtomicU32::new(0));
    let flaky = Arc::new(AtomicU32::new(0));
    let worker = start_worker(url, seen.clone(), flaky.clone()).await;
    let client = Client::builder(url)
        .default_timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap();

    // call_and_wait: data, id and response_key, like the old library.
    let response = client
        .call_and_wait("Legacy.add", json!({"a": 2, "b": 40}))
        .await
        .unwrap();
    assert_eq!(response.data, json!({"sum": 42}));
    assert!(!response.id.as_str().is_empty());
    assert!(response.response_key.contains(response.id.as_str()));

    // Fire and forget, observed by the worker.
    for _ in 0..5 {
        client.send("Legacy.note", json!({})).await.unwrap();
    }
    let t0 = std::time::Instant::now();
    while seen.load(Ordering::SeqCst) < 5 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "fire-and-forget jobs not observed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Unknown job and unknown service: an error reply, promptly, not a hang.
    let err = client
        .call_and_wait("Legacy.nope", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.remote_kind(), Some(ErrorKind::UnknownJob), "{err}");
    let opts = CallOptions::timeout(Duration::from_secs(2));
    let err = client
        .call("Ghost.nope", json!({}))
        .options(opts.clone())
        .response()
        .await
        .unwrap_err();
    assert!(
        matches!(err, rpc_runtime::Error::Timeout { .. }),
        "nobody serves Ghost: {err}"
    );

    // A handler's fatal error reaches the caller as such.
    let err = client
        .call_and_wait("Legacy.add", json!({"a": "x"}))
        .await
        .unwrap_err();
    assert_eq!(err.remote_kind(), Some(ErrorKind::Handler));
    assert!(err.to_string().contains("a must be an integer"), "{err}");

    // Retries: three attempts, then the dead-letter stream and an error reply.
    let err = client
        .call_and_wait("Legacy.flaky", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.remote_kind(), Some(ErrorKind::DeadLettered), "{err}");
    assert!(err.to_string().contains("attempt 3 of 3"), "{err}");
    assert_eq!(flaky.load(Ordering::SeqCst), 3);
    let dead = client.backend().dead_letters("Legacy", 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].reason.contains("not today (attempt 3)"),
        "{}",
        dead[0].reason
    );

    // Send now, fetch the kept result by id later from another client.
    let pending = client
        .call("Legacy.add", json!({"a": 1, "b": 1}))
        .send()
        .await
        .unwrap();
    let id = pending.id().clone();
    assert_eq!(pending.wait().await.unwrap(), json!({"sum": 2}));
    let other = Client::connect(url).await.unwrap();
    let fetched = other.fetch_result(&id).await.unwrap().expect("result kept");
    assert_eq!(fetched.unwrap(), json!({"sum": 2}));

    // A payload over the limit is refused by the client.
    let small = Client::builder(url)
        .max_payload(1024)
        .connect()
        .await
        .unwrap();
    let err = small
        .send("Legacy.note", json!({"blob": "x".repeat(4096)}))
        .await
        .unwrap_err();
    assert!(
        matches!(err, rpc_runtime::Error::PayloadTooLarge { .. }),
        "{err}"
    );

    let stats = worker.stop().await;
    assert_eq!(stats.retried, 2);
    assert_eq!(stats.dead_lettered, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untyped_api_over_redis() {
    let redis = RedisServer::start().expect("start redis-server");
    exercise(&redis.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untyped_api_in_memory() {
    exercise("memory://untyped-test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_queue_is_dead_lettered_and_the_worker_goes_on() {
    let redis = RedisServer::start().expect("start redis-server");
    let url = redis.url();
    let worker = start_worker(&url, Arc::default(), Arc::default()).await;
    let client = Client::connect(&url).await.unwrap();
    for garbage in [
        "not json",
        "{\"v\":1}",
        "[1,2,3]",
        "{\"v\":1,\"id\":\"x\",\"job\":3,\"params\":{}}",
    ] {
        redis.cli(["XADD", "rpc:{Legacy}:jobs", "*", "m", garbage]);
    }
    redis.cli(["XADD", "rpc:{Legacy}:jobs", "*", "other", "field"]);
    let response = client
        .call_and_wait("Legacy.add", json!({"a": 1, "b": 2}))
        .await
        .unwrap();
    assert_eq!(response.data, json!({"sum": 3}));
    let t0 = std::time::Instant::now();
    loop {
        let dead = client.backend().dead_letters("Legacy", 100).await.unwrap();
        if dead.len() == 5 {
            assert!(dead
                .iter()
                .all(|d| d.reason.starts_with("unreadable job message")));
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "only {} dead letters",
            dead.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = worker.stop().await;
    assert_eq!(stats.dead_lettered, 5);
}
