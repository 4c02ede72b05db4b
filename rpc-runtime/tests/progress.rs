//! Job progress end to end, on a private redis-server and on `memory://`:
//! a handler reports, the caller watches its `Pending`, another client
//! watches by call id, and what is in the key is checked, not believed.

use std::sync::Arc;
use std::time::Duration;

use rpc_runtime::{
    CallOptions, Client, DynamicService, HandlerError, Progress, ProgressUpdate, Worker,
};
use rpc_testkit::{RedisCluster, RedisServer};
use serde_json::json;
use tokio::sync::{watch, Notify};

/// How long any awaited event may take on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);

type Running = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<rpc_runtime::StatsSnapshot, rpc_runtime::Error>>,
);

/// `Work.steps` reports step `i` of 10 and waits until the test has seen
/// it before the next (so every step is written); `Work.spin` reports
/// 100,000 times over about a second; `Work.hold` reports 7 of 10 and
/// waits for [`Shared::release`].
#[derive(Default)]
struct Shared {
    seen: Option<watch::Receiver<u64>>,
    release: Notify,
}

async fn worker(url: &str, shared: Arc<Shared>) -> Running {
    let (steps, hold) = (shared.clone(), shared.clone());
    let service = DynamicService::new("Work")
        .job("steps", move |req| {
            let mut seen = steps.seen.clone().expect("a step watcher");
            async move {
                for i in 1..=10u64 {
                    req.context
                        .progress((i, 10), format!("step {i}"))
                        .map_err(|e| HandlerError::fatal(e.to_string()))?;
                    tokio::time::timeout(PATIENCE, seen.wait_for(|s| *s >= i))
                        .await
                        .map_err(|_| HandlerError::fatal(format!("step {i} was never seen")))?
                        .map_err(|_| HandlerError::fatal("the watcher went away"))?;
                }
                Ok(json!(req.data["n"].as_i64().unwrap_or(0) * 2))
            }
        })
        .job("spin", |req| async move {
            let mut reports = 0u64;
            for round in 0..100u64 {
                for i in 0..1000u64 {
                    req.context
                        .progress((round * 1000 + i, 100_000), "spinning")
                        .map_err(|e| HandlerError::fatal(e.to_string()))?;
                    reports += 1;
                }
                // The job's own work: about a second in all.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok(json!(reports))
        })
        .job("hold", move |req| {
            let hold = hold.clone();
            async move {
                req.context
                    .progress((7, 10), "almost")
                    .map_err(|e| HandlerError::fatal(e.to_string()))?;
                hold.release.notified().await;
                Ok(json!("released"))
            }
        });
    let worker = Worker::builder(url)
        .mount(service)
        .build()
        .await
        .expect("worker connects");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(worker.run_until(async move {
        let _ = rx.await;
    }));
    (tx, task)
}

async fn stop(running: Running) {
    let _ = running.0.send(());
    running.1.await.unwrap().unwrap();
}

fn steps_of(update: &ProgressUpdate) -> (u64, u64) {
    match update.progress {
        Progress::Steps { done, total } => (done, total),
        Progress::Fraction(f) => panic!("steps were reported, not the fraction {f}"),
    }
}

/// The caller's watch sees every step, in order, with increasing `seq`,
/// and ends with the call, whose answer is right.
async fn steps_are_watched_to_the_end(url: &str) {
    let (seen_tx, seen_rx) = watch::channel(0u64);
    let shared = Arc::new(Shared {
        seen: Some(seen_rx),
        ..Shared::default()
    });
    let running = worker(url, shared).await;
    let client = Client::connect(url).await.unwrap();
    let pending = client
        .call("Work.steps", json!({"n": 21}))
        .options(CallOptions::timeout(PATIENCE))
        .send()
        .await
        .unwrap();
    let mut watch = pending.progress();
    let watching = async {
        let mut updates = Vec::new();
        while let Some(update) = watch.next().await {
            let update = update.expect("a good progress value");
            let (done, total) = steps_of(&update);
            assert_eq!(total, 10);
            assert_eq!(update.message, format!("step {done}"));
            assert!((update.fraction - done as f64 / 10.0).abs() < 1e-9);
            seen_tx.send_replace(done);
            updates.push(update);
        }
        updates
    };
    let (answer, updates) =
        tokio::time::timeout(PATIENCE, async { tokio::join!(pending, watching) })
            .await
            .expect("the call and its watch end");
    assert_eq!(answer.unwrap(), json!(42));
    let seqs: Vec<u64> = updates.iter().map(|u| u.seq).collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>(), "{updates:?}");
    assert!(updates.iter().all(|u| u.attempt == 1 && u.at_ms > 0));
    stop(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_watch_sees_every_step_in_order_and_ends_with_the_call_on_redis() {
    let redis = RedisServer::start().expect("redis-server");
    steps_are_watched_to_the_end(&redis.url()).await;
}

/// On a Cluster the progress key lives in the call's slot, wherever that
/// is: the writes and reads are routed by the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_watch_sees_every_step_in_order_and_ends_with_the_call_on_a_cluster() {
    rpc_testkit::require_redis_server();
    let cluster = RedisCluster::start(3).expect("cluster");
    steps_are_watched_to_the_end(&cluster.cluster_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_watch_sees_every_step_in_order_and_ends_with_the_call_in_memory() {
    steps_are_watched_to_the_end("memory://progress-steps").await;
}

/// A handler reporting 100,000 times in about a second makes a handful of
/// writes: at most one per 200 ms (plus the worker's heartbeats' `SET`s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tight_loop_of_reports_writes_progress_a_bounded_number_of_times() {
    let redis = RedisServer::start().expect("redis-server");
    let url = redis.url();
    let running = worker(&url, Arc::default()).await;
    let client = Client::connect(&url).await.unwrap();
    let sets = || -> u64 {
        redis
            .info("cmdstat_set")
            .and_then(|stat| {
                stat.split(',')
                    .find_map(|f| f.strip_prefix("calls=").map(str::to_owned))
            })
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let before = sets();
    let reports = client
        .call("Work.spin", json!({}))
        .options(CallOptions::timeout(PATIENCE))
        .await
        .unwrap();
    assert_eq!(reports, json!(100_000));
    let written = sets() - before;
    // Shown with --nocapture: the figure the README quotes.
    eprintln!("100,000 progress reports made {written} SETs (heartbeats included)");
    assert!(
        (1..50).contains(&written),
        "100,000 reports made {written} SETs"
    );
    stop(running).await;
}

/// A second client (a caller that reconnected, a tool) watching by call id
/// sees the newest value, and its watch ends once the kept result is there.
async fn a_watch_by_id_sees_the_newest(url: &str) {
    let shared = Arc::new(Shared::default());
    let running = worker(url, shared.clone()).await;
    let caller = Client::connect(url).await.unwrap();
    let pending = caller
        .call("Work.hold", json!({}))
        .options(CallOptions {
            result_ttl: Some(Duration::from_secs(60)),
            ..CallOptions::timeout(PATIENCE)
        })
        .send()
        .await
        .unwrap();
    let id = pending.id().clone();
    let other = Client::connect(url).await.unwrap();
    let mut watch = other.watch_progress(&id, PATIENCE);
    let first = tokio::time::timeout(PATIENCE, watch.next())
        .await
        .expect("a value before the patience ends")
        .expect("a value")
        .expect("a good value");
    assert_eq!(steps_of(&first), (7, 10));
    assert_eq!(first.message, "almost");
    let read = other.read_progress(&id).await.unwrap().expect("the value");
    assert_eq!(read, first);
    shared.release.notify_one();
    assert_eq!(pending.await.unwrap(), json!("released"));
    // Nothing new was reported: the watch ends, seeing the kept result.
    let rest = tokio::time::timeout(PATIENCE, watch.next())
        .await
        .expect("the watch ends with the call");
    assert!(rest.is_none(), "{rest:?}");
    stop(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_client_watching_by_id_sees_the_newest_value_on_redis() {
    let redis = RedisServer::start().expect("redis-server");
    a_watch_by_id_sees_the_newest(&redis.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_client_watching_by_id_sees_the_newest_value_in_memory() {
    a_watch_by_id_sees_the_newest("memory://progress-by-id").await;
}

/// Garbage planted in a call's progress key (not JSON, too large, wrong
/// types, not a string) is reported once each as an error and skipped: no
/// panic, a good value after it still comes through, and the watch ends
/// by its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_in_the_progress_key_is_an_error_item_and_the_watch_ends_by_its_deadline() {
    let redis = RedisServer::start().expect("redis-server");
    let url = redis.url();
    let shared = Arc::new(Shared::default());
    let running = worker(&url, shared.clone()).await;
    let client = Client::connect(&url).await.unwrap();
    let pending = client
        .call("Work.hold", json!({}))
        .options(CallOptions::timeout(PATIENCE))
        .send()
        .await
        .unwrap();
    let id = pending.id().clone();
    let key = format!("rpc:progress:{{{id}}}");
    // The handler's own value first, so the worker's write cannot land
    // after the garbage.
    let mut own = client.watch_progress(&id, PATIENCE);
    let first = tokio::time::timeout(PATIENCE, own.next()).await.unwrap();
    assert_eq!(steps_of(&first.unwrap().unwrap()), (7, 10));

    let mut watch = client.watch_progress(&id, PATIENCE);
    let huge = "x".repeat(100_000);
    let good = r#"{"seq":99,"at_ms":1,"fraction":0.5,"message":"planted but valid"}"#;
    for garbage in [
        "not json",
        r#"[1,2,3]"#,
        r#"{"seq":"one","at_ms":1,"fraction":0.5}"#,
        r#"{"seq":1,"at_ms":1,"fraction":7}"#,
        huge.as_str(),
    ] {
        redis.cli(["SET", &key, garbage]);
        let item = tokio::time::timeout(PATIENCE, watch.next())
            .await
            .expect("an item")
            .expect("the watch goes on");
        let error = item.expect_err(&garbage[..garbage.len().min(40)]);
        assert!(error.to_string().contains("progress"), "{error}");
    }
    redis.cli(["SET", &key, good]);
    let item = tokio::time::timeout(PATIENCE, watch.next()).await.unwrap();
    assert_eq!(item.unwrap().unwrap().message, "planted but valid");
    redis.cli(["DEL", &key]);
    redis.cli(["RPUSH", &key, "a list"]);
    let item = tokio::time::timeout(PATIENCE, watch.next()).await.unwrap();
    assert!(item.unwrap().is_err());

    // A watch with a short deadline ends by it, whatever is in the key.
    redis.cli(["SET", &key, "still garbage"]);
    let started = std::time::Instant::now();
    let mut short = client.watch_progress(&id, Duration::from_millis(500));
    let mut items = 0;
    while let Some(item) = tokio::time::timeout(PATIENCE, short.next()).await.unwrap() {
        assert!(item.is_err());
        items += 1;
    }
    assert!(items <= 1, "the same garbage is reported once");
    assert!(started.elapsed() < Duration::from_secs(10));

    shared.release.notify_one();
    assert_eq!(pending.await.unwrap(), json!("released"));
    stop(running).await;
}

/// The watch as a `futures::Stream` gives the same values and ends with
/// the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_is_also_a_stream_that_ends_with_the_call() {
    use futures_util::StreamExt;
    let url = "memory://progress-stream";
    let shared = Arc::new(Shared::default());
    let running = worker(url, shared.clone()).await;
    let client = Client::connect(url).await.unwrap();
    let pending = client
        .call("Work.hold", json!({}))
        .options(CallOptions::timeout(PATIENCE))
        .send()
        .await
        .unwrap();
    let mut stream = pending.progress().into_stream();
    let first = tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("a value within the patience")
        .expect("a value")
        .expect("a good value");
    assert_eq!(steps_of(&first), (7, 10));
    shared.release.notify_one();
    let (answer, rest) = tokio::time::timeout(PATIENCE, async {
        tokio::join!(pending, stream.collect::<Vec<_>>())
    })
    .await
    .expect("the call and its stream end");
    assert_eq!(answer.unwrap(), json!("released"));
    assert!(rest.is_empty(), "{rest:?}");
    stop(running).await;
}
