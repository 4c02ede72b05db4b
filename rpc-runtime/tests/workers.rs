//! Workers that say they are alive (issue 21, point 1) and calls that say
//! why they timed out (point 2), with in-process workers on a private
//! redis-server (and on `memory://` where the broker's side is the same):
//! a fresh idle worker is listed from its first beat; quiet stops taking
//! jobs and finishes the running ones; stop drains and exits; the janitor
//! forgets the consumer of a worker that is gone; a worker waits for a
//! Redis that is not there yet; a timeout says paused, no live worker, or
//! busy. (A worker killed with SIGKILL is `rpc-chaos/tests/heartbeats.rs`.)
//!
//! Each test waits on what it can observe (a beat, a reply) with a generous
//! deadline, never on a sleep.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rpc_runtime::inspect::{Liveness, WorkerControl, WorkerInfo, WorkerState};
use rpc_runtime::{
    CallOptions, Client, DynamicService, Error, Inspector, StatsSnapshot, TimeoutCause, Worker,
};
use rpc_testkit::RedisServer;
use serde_json::json;
use tokio::sync::Notify;

/// How long any waited-for event may take on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);
/// Beats in these tests: every 100 ms, living 1 s.
const EVERY: Duration = Duration::from_millis(100);
const TTL: Duration = Duration::from_secs(1);

type Running = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<StatsSnapshot, Error>>,
);

/// `W.hold` waits until `release` is notified; `W.echo` answers at once.
fn service(release: Arc<Notify>, started: Arc<Notify>) -> DynamicService {
    DynamicService::new("W")
        .job("hold", move |_req| {
            let (release, started) = (release.clone(), started.clone());
            async move {
                started.notify_one();
                release.notified().await;
                Ok(json!("held"))
            }
        })
        .job("echo", |req| async move { Ok(req.data.clone()) })
}

async fn start(
    url: &str,
    id: &str,
    concurrency: usize,
    release: &Arc<Notify>,
    started: &Arc<Notify>,
) -> Running {
    let worker = Worker::builder(url)
        .mount(service(release.clone(), started.clone()))
        .consumer_name(id)
        .concurrency(concurrency)
        .heartbeat(EVERY, TTL)
        .version("workers-test 1.0")
        .visibility_timeout(Duration::from_millis(600))
        .build()
        .await
        .expect("worker");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(worker.run_until(async move {
        let _ = rx.await;
    }));
    (tx, task)
}

/// Polls the workers of `W` until `pred` holds for the one named `id`.
async fn wait_for_worker(
    inspector: &Inspector,
    id: &str,
    what: &str,
    pred: impl Fn(Option<&WorkerInfo>) -> bool,
) -> Option<WorkerInfo> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let workers = inspector.workers(Some("W")).await.unwrap();
        let found = workers.iter().find(|w| w.id == id);
        if pred(found) {
            return found.cloned();
        }
        assert!(Instant::now() < deadline, "{what}: {workers:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn state(w: Option<&WorkerInfo>) -> Option<WorkerState> {
    w.filter(|w| w.liveness == Liveness::Live)
        .and_then(|w| w.beat.as_ref())
        .map(|b| b.state)
}

async fn a_fresh_idle_worker_is_listed_from_its_first_beat_on(url: &str) {
    let (release, started) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let running = start(url, "fresh-1", 3, &release, &started).await;
    let inspector = Inspector::connect(url, "rpc").await.unwrap();
    // No job was ever sent: it is listed all the same, with what it is.
    let w = wait_for_worker(&inspector, "fresh-1", "never listed", |w| {
        state(w) == Some(WorkerState::Running)
    })
    .await
    .unwrap();
    let beat = w.beat.as_ref().unwrap();
    assert_eq!(beat.pid, std::process::id());
    assert_eq!(beat.services, vec!["W".to_owned()]);
    assert_eq!((beat.concurrency, beat.in_flight), (3, 0));
    assert_eq!(beat.version, "workers-test 1.0");
    assert_eq!((beat.every_ms, beat.ttl_ms), (100, 1000));
    assert!(!beat.host.is_empty());
    if cfg!(target_os = "linux") {
        assert!(beat.rss_bytes.is_some_and(|b| b > 0), "{beat:?}");
    }
    assert!(beat.started_ms <= beat.beat_ms);
    let counts = inspector
        .live_worker_counts(&["W".to_owned()])
        .await
        .unwrap();
    assert_eq!(counts["W"], 1);
    // A clean stop removes the beat at once: listed as gone, not live.
    let _ = running.0.send(());
    running.1.await.unwrap().unwrap();
    let w = inspector.workers(Some("W")).await.unwrap();
    let w = w
        .iter()
        .find(|w| w.id == "fresh-1")
        .expect("still remembered");
    assert_eq!(w.liveness, Liveness::Gone);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_idle_worker_is_listed_from_its_first_beat() {
    let redis = RedisServer::start().expect("redis");
    a_fresh_idle_worker_is_listed_from_its_first_beat_on(&redis.url()).await;
    a_fresh_idle_worker_is_listed_from_its_first_beat_on("memory://workers-fresh").await;
}

/// Quiet: the running job finishes and is answered, the worker stays up
/// and takes nothing new; a call then times out saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_stops_taking_jobs_while_finishing_in_flight_ones() {
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let (release, started) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let running = start(&url, "quiet-1", 4, &release, &started).await;
    let client = Client::connect(&url).await.unwrap();
    let inspector = Inspector::connect(&url, "rpc").await.unwrap();
    let held = client
        .call("W.hold", json!({}))
        .options(CallOptions::timeout(PATIENCE))
        .send()
        .await
        .unwrap();
    started.notified().await;
    wait_for_worker(&inspector, "quiet-1", "in flight never shown", |w| {
        w.and_then(|w| w.beat.as_ref())
            .is_some_and(|b| b.in_flight == 1)
    })
    .await;
    client
        .control_worker("quiet-1", WorkerControl::Quiet)
        .await
        .unwrap();
    wait_for_worker(&inspector, "quiet-1", "never quiet", |w| {
        state(w) == Some(WorkerState::Quiet)
    })
    .await;
    // Nothing new is taken: a call waits out its timeout, which says why.
    let err = client
        .call("W.echo", json!({"n": 1}))
        .options(CallOptions::timeout(Duration::from_millis(700)))
        .await
        .unwrap_err();
    let diagnosis = err.timeout_diagnosis().unwrap_or_else(|| panic!("{err}"));
    assert_eq!(diagnosis.cause(), TimeoutCause::NoTakingWorker, "{err}");
    assert!(err.to_string().contains("quiet"), "{err}");
    let stats = inspector.service_stats("W").await.unwrap().unwrap();
    assert_eq!(
        (stats.queued, stats.leased),
        (1, 1),
        "{stats:?} {}",
        redis.cli(["XRANGE", "rpc:{W}:jobs", "-", "+"])
    );
    // The running one finishes and is answered.
    release.notify_one();
    assert_eq!(held.wait().await.unwrap(), json!("held"));
    // Still up, still quiet.
    let w = wait_for_worker(&inspector, "quiet-1", "gone after quiet", |w| {
        state(w) == Some(WorkerState::Quiet)
            && w.and_then(|w| w.beat.as_ref())
                .is_some_and(|b| b.in_flight == 0)
    })
    .await;
    assert!(w.is_some());
    assert!(!running.1.is_finished());
    let _ = running.0.send(());
    running.1.await.unwrap().unwrap();
}

/// Stop: the worker takes nothing new, finishes its job, answers it, and
/// its `run_until` returns though its own shutdown future never fired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_drains_and_exits() {
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let (release, started) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let (_never, task) = start(&url, "stop-1", 4, &release, &started).await;
    let client = Client::connect(&url).await.unwrap();
    let inspector = Inspector::connect(&url, "rpc").await.unwrap();
    let held = client
        .call("W.hold", json!({}))
        .options(CallOptions::timeout(PATIENCE))
        .send()
        .await
        .unwrap();
    started.notified().await;
    client
        .control_worker("stop-1", WorkerControl::Stop)
        .await
        .unwrap();
    wait_for_worker(&inspector, "stop-1", "never stopping", |w| {
        state(w) == Some(WorkerState::Stopping)
    })
    .await;
    assert!(!task.is_finished(), "it exited with a job running");
    release.notify_one();
    assert_eq!(held.wait().await.unwrap(), json!("held"));
    let stats = tokio::time::timeout(PATIENCE, task)
        .await
        .expect("the worker never exited")
        .unwrap()
        .unwrap();
    assert_eq!(stats.succeeded, 1);
    wait_for_worker(&inspector, "stop-1", "still live after exit", |w| {
        w.is_some_and(|w| w.liveness == Liveness::Gone)
    })
    .await;
}

/// The janitor of a live worker forgets the consumer of one that is gone
/// and holds nothing, and keeps its own and other live ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_of_a_gone_worker_is_forgotten() {
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let (release, started) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let client = Client::connect(&url).await.unwrap();
    // `old` serves one call (so its consumer exists), then stops.
    let old = start(&url, "old-1", 1, &release, &started).await;
    let echo = client
        .call("W.echo", json!({"n": 1}))
        .options(CallOptions::timeout(PATIENCE));
    assert_eq!(echo.await.unwrap(), json!({"n": 1}));
    let _ = old.0.send(());
    old.1.await.unwrap().unwrap();
    let consumers = || {
        redis
            .cli(["XINFO", "CONSUMERS", "rpc:{W}:jobs", "workers"])
            .lines()
            .filter(|l| l.ends_with("-1"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert!(
        consumers().iter().any(|c| c == "old-1"),
        "{:?}",
        consumers()
    );
    let live = start(&url, "live-1", 1, &release, &started).await;
    let deadline = Instant::now() + PATIENCE;
    while consumers().iter().any(|c| c == "old-1") {
        assert!(
            Instant::now() < deadline,
            "never forgotten: {:?}",
            consumers()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The live one is still in its group and serving.
    let echo = client
        .call("W.echo", json!({"n": 2}))
        .options(CallOptions::timeout(PATIENCE));
    assert_eq!(echo.await.unwrap(), json!({"n": 2}));
    assert!(
        consumers().iter().any(|c| c == "live-1"),
        "{:?}",
        consumers()
    );
    let _ = live.0.send(());
    live.1.await.unwrap().unwrap();
}

/// A worker started while Redis is down waits for it, then serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_waits_for_redis_at_start_unless_told_to_fail_fast() {
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    redis.kill().expect("kill redis");
    let failed = Worker::builder(&url)
        .mount(DynamicService::new("W"))
        .fail_fast(true)
        .build()
        .await;
    assert!(
        matches!(failed, Err(Error::Broker(_))),
        "{:?}",
        failed.err()
    );
    let waiting = tokio::spawn(async move {
        Worker::builder(&url)
            .mount(DynamicService::new("W").job("echo", |r| async move { Ok(r.data.clone()) }))
            .build()
            .await
    });
    redis.restart().expect("restart redis");
    let worker = tokio::time::timeout(PATIENCE, waiting)
        .await
        .expect("the worker never connected")
        .unwrap()
        .expect("the worker");
    let url = redis.url();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(worker.run_until(async move {
        let _ = rx.await;
    }));
    let client = Client::connect(&url).await.unwrap();
    let echo = client
        .call("W.echo", json!({"n": 3}))
        .options(CallOptions::timeout(PATIENCE));
    assert_eq!(echo.await.unwrap(), json!({"n": 3}));
    let _ = tx.send(());
    task.await.unwrap().unwrap();
}

/// A timeout says why: the service is paused; no live worker serves it
/// (and when one was last seen); or it is busy (queue length, oldest).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_says_paused_no_live_worker_or_busy() {
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let (release, started) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let client = Client::connect(&url).await.unwrap();
    let short = || CallOptions::timeout(Duration::from_millis(600));
    let running = start(&url, "diag-1", 1, &release, &started).await;
    let inspector = Inspector::connect(&url, "rpc").await.unwrap();
    wait_for_worker(&inspector, "diag-1", "never listed", |w| w.is_some()).await;

    // Busy: its one slot is held, so calls queue up behind it.
    let held = client
        .call("W.hold", json!({}))
        .options(CallOptions::timeout(PATIENCE))
        .send()
        .await
        .unwrap();
    started.notified().await;
    // At the least urgent priority: its lane's oldest call is told too.
    let err = client
        .call("W.echo", json!({}))
        .options(short())
        .priority(5)
        .await
        .unwrap_err();
    let d = err.timeout_diagnosis().unwrap_or_else(|| panic!("{err}"));
    assert_eq!(d.cause(), TimeoutCause::Busy, "{err}");
    assert_eq!(d.live_workers, Some(1));
    assert!(d.queued.is_some_and(|n| n >= 1), "{d:?}");
    assert!(d.oldest_queued_age.is_some(), "{d:?}");
    assert!(err.to_string().contains("queued"), "{err}");
    release.notify_one();
    held.wait().await.unwrap();

    // Paused (the worker learns it at its next lifecycle poll: until then
    // calls are still answered).
    client.pause("W").await.unwrap();
    let deadline = Instant::now() + PATIENCE;
    let err = loop {
        match client.call("W.echo", json!({})).options(short()).await {
            Err(e) => break e,
            Ok(_) => assert!(Instant::now() < deadline, "the pause was never seen"),
        }
    };
    let d = err.timeout_diagnosis().unwrap_or_else(|| panic!("{err}"));
    assert_eq!(d.cause(), TimeoutCause::Paused, "{err}");
    assert!(err.to_string().contains("paused"), "{err}");
    client.resume("W").await.unwrap();

    // No live worker: it stopped; when it was last seen is told.
    let _ = running.0.send(());
    running.1.await.unwrap().unwrap();
    let err = client
        .call("W.echo", json!({}))
        .options(short())
        .await
        .unwrap_err();
    let d = err.timeout_diagnosis().unwrap_or_else(|| panic!("{err}"));
    assert_eq!(d.cause(), TimeoutCause::NoLiveWorker, "{err}");
    assert!(d.last_seen_ago.is_some(), "{d:?}");
    assert!(err.to_string().contains("last seen"), "{err}");
    // The same through a handle's wait.
    let pending = client
        .call("W.echo", json!({}))
        .options(short())
        .send()
        .await
        .unwrap();
    let err = pending.wait().await.unwrap_err();
    let d = err.timeout_diagnosis().unwrap_or_else(|| panic!("{err}"));
    assert_eq!(d.cause(), TimeoutCause::NoLiveWorker, "{err}");
}

/// A worker of another implementation beats as docs/PROTOCOL.md says
/// (`SET` the beat with a TTL, `ZADD` the registry) and is listed live;
/// a beat that does not read is listed as unreadable, never trusted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_beat_written_by_hand_is_listed_and_a_hostile_one_is_not_trusted() {
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let inspector = Inspector::connect(&url, "rpc").await.unwrap();
    let now = inspector.broker_time_ms().await.unwrap();
    let beat = json!({
        "v": 1, "id": "py-7", "host": "box", "pid": 7, "version": "rq-compat 0.1",
        "services": ["W"], "concurrency": 2, "in_flight": 1,
        "started_ms": now - 1000, "beat_ms": now, "every_ms": 5000, "ttl_ms": 30000,
        "state": "running", "from_the_future": true
    });
    redis.cli(["SET", "rpc:worker:{py-7}", &beat.to_string(), "PX", "30000"]);
    redis.cli(["ZADD", "rpc:{W}:workers", &now.to_string(), "py-7"]);
    let hostile = json!({"v": 1, "id": "bad-1", "host": "\u{1b}[2J", "pid": 1});
    redis.cli([
        "SET",
        "rpc:worker:{bad-1}",
        &hostile.to_string(),
        "PX",
        "30000",
    ]);
    redis.cli(["ZADD", "rpc:{W}:workers", &now.to_string(), "bad-1"]);
    redis.cli([
        "ZADD",
        "rpc:{W}:workers",
        &now.to_string(),
        "not a worker id",
    ]);
    let workers = inspector.workers(Some("W")).await.unwrap();
    assert_eq!(workers.len(), 2, "{workers:#?}");
    let py = workers.iter().find(|w| w.id == "py-7").unwrap();
    assert_eq!(py.liveness, Liveness::Live);
    assert_eq!(py.beat.as_ref().unwrap().in_flight, 1);
    let bad = workers.iter().find(|w| w.id == "bad-1").unwrap();
    assert_eq!(bad.liveness, Liveness::Unreadable);
    assert!(bad.beat.is_none() && bad.error.is_some(), "{bad:?}");
    let counts = inspector
        .live_worker_counts(&["W".to_owned()])
        .await
        .unwrap();
    assert_eq!(counts["W"], 1);
}
