//! Periodic jobs run by real `Worker`s in this process: three workers on
//! one `memory://` broker run each tick once with no gap; the missed-tick
//! policies (`RunOnce`: one catch-up run, `Skip`: none) after every worker
//! was down; and on a private redis-server, garbage in the periodic hashes
//! stops neither the ticks nor the worker. (`rpc-chaos/tests/periodic.rs`
//! does the same with worker processes.)

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rpc_runtime::{
    CallOptions, Client, DynamicService, MissedTicks, Periodic, StatsSnapshot, Worker,
};
use rpc_testkit::RedisServer;
use serde_json::json;

/// Tick ids seen by the handlers, with how often each ran.
type Seen = Arc<Mutex<BTreeMap<u64, usize>>>;

type Running = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<StatsSnapshot, rpc_runtime::Error>>,
);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn unique(stem: &str) -> String {
    format!(
        "memory://{stem}-{}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// `Beat.tick` counting the ticks it runs (the tick time from the call id
/// `periodic:<name>:<tick>`), and `Beat.echo` for ordinary calls.
fn beat(seen: Seen) -> DynamicService {
    DynamicService::new("Beat")
        .job("tick", move |req| {
            let seen = seen.clone();
            async move {
                assert_eq!(
                    req.context.metadata().get("periodic").map(String::as_str),
                    Some("beat")
                );
                let tick: u64 = req
                    .context
                    .id()
                    .as_str()
                    .rsplit(':')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                *seen.lock().unwrap().entry(tick).or_default() += 1;
                req.respond(json!(null))
            }
        })
        .job("echo", |req| async move { Ok(req.data.clone()) })
}

async fn start(url: &str, seen: &Seen, periodic: Periodic) -> Running {
    let worker = Worker::builder(url)
        .mount(beat(seen.clone()))
        .periodic(periodic)
        .build()
        .await
        .expect("worker");
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

fn every(ms: u64) -> Periodic {
    Periodic::every("beat", Duration::from_millis(ms), "Beat.tick", json!({}))
}

/// Three workers with a 100 ms interval for 1.5 s: each tick from the first
/// to the last ran exactly once, with none missing in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_on_memory_run_each_tick_once() {
    let url = unique("periodic-three");
    let seen = Seen::default();
    let t0 = now_ms();
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(start(&url, &seen, every(100)).await);
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let t1 = now_ms();
    for w in workers {
        stop(w).await;
    }
    let seen = seen.lock().unwrap().clone();
    assert!(seen.values().all(|&n| n == 1), "a tick ran twice: {seen:?}");
    let ticks: Vec<u64> = seen.keys().copied().collect();
    // Every tick well inside the run (the first worker's start and the
    // stop are not instants the test knows to the millisecond), no gap
    // between the first and the last, and none before the start.
    let expected: Vec<u64> = ((t0 + 100) / 100 + 1..=(t1 - 100) / 100)
        .map(|k| k * 100)
        .collect();
    assert!(
        expected.len() >= 10,
        "the machine is too slow for this test: {expected:?}"
    );
    for tick in &expected {
        assert!(seen.contains_key(tick), "tick {tick} missing: {ticks:?}");
    }
    let (first, last) = (ticks[0], ticks[ticks.len() - 1]);
    assert_eq!(
        ticks.len() as u64,
        (last - first) / 100 + 1,
        "a gap: {ticks:?}"
    );
    assert!(first > t0, "{ticks:?} before {t0}");
}

/// Waits until the clock is `at` of the way into an interval of `ms`
/// (so a test's start is well away from a tick).
async fn into_interval(ms: u64, at: f64) {
    let offset = (ms as f64 * at) as u64;
    let now = now_ms();
    let target = if now % ms < offset {
        now - now % ms + offset
    } else {
        now - now % ms + ms + offset
    };
    tokio::time::sleep(Duration::from_millis(target - now)).await;
}

/// Runs the job with `policy` for two ticks, stops every worker for four
/// intervals, starts one mid-interval and lets it run two more; returns the
/// ticks run, the last before the stop, and the (mid-interval) restart.
async fn down_and_up(policy: MissedTicks) -> (BTreeMap<u64, usize>, u64, u64) {
    const EVERY: u64 = 400;
    let url = unique("periodic-missed");
    // Holds the broker while no worker runs (it lives while used).
    let _broker = Client::connect(&url).await.unwrap();
    let seen = Seen::default();
    let job = || every(EVERY).missed(policy);
    into_interval(EVERY, 0.3).await;
    let first = start(&url, &seen, job()).await;
    tokio::time::sleep(Duration::from_millis(2 * EVERY + 100)).await;
    stop(first).await;
    let last_before = *seen
        .lock()
        .unwrap()
        .keys()
        .last()
        .expect("ran before the stop");
    tokio::time::sleep(Duration::from_millis(4 * EVERY)).await;
    into_interval(EVERY, 0.4).await;
    let restart = now_ms();
    let second = start(&url, &seen, job()).await;
    tokio::time::sleep(Duration::from_millis(2 * EVERY + 100)).await;
    stop(second).await;
    let seen = seen.lock().unwrap().clone();
    assert!(seen.values().all(|&n| n == 1), "a tick ran twice: {seen:?}");
    (seen, last_before, restart)
}

/// `RunOnce`: the ticks missed while no worker ran get exactly one run, at
/// the restart, with the id of the latest missed tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_ticks_run_once_when_a_worker_starts() {
    let (seen, last_before, restart) = down_and_up(MissedTicks::RunOnce).await;
    let gap: Vec<u64> = seen
        .range(last_before + 1..=restart)
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(gap, [restart / 400 * 400], "one run for the gap: {seen:?}");
    assert!(seen.contains_key(&(restart / 400 * 400 + 400)), "{seen:?}");
}

/// `Skip`: no run for the ticks missed while no worker ran; the job goes on
/// with the first tick after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_ticks_are_skipped_with_skip() {
    let (seen, last_before, restart) = down_and_up(MissedTicks::Skip).await;
    let gap: Vec<u64> = seen
        .range(last_before + 1..=restart)
        .map(|(t, _)| *t)
        .collect();
    assert!(gap.is_empty(), "ran for the gap: {gap:?} in {seen:?}");
    assert!(seen.contains_key(&(restart / 400 * 400 + 400)), "{seen:?}");
}

/// A periodic job whose job no mounted service serves is refused at build,
/// with the reason.
#[tokio::test]
async fn a_periodic_job_of_a_service_not_mounted_is_refused_at_build() {
    let err = Worker::builder(unique("periodic-refused"))
        .mount(beat(Seen::default()))
        .periodic(Periodic::cron(
            "report",
            "0 0 6 * * MON",
            "Reports.weekly",
            json!({}),
        ))
        .build()
        .await
        .err()
        .expect("refused");
    let why = err.to_string();
    assert!(
        why.contains("`report`") && why.contains("mounted: Beat"),
        "{why}"
    );
}

/// Hand-written garbage on a real Redis: a last tick that is not a number,
/// definitions that are not JSON, and another periodic job's definitions
/// key of the wrong type. The worker logs, goes on ticking `beat`, and
/// keeps answering calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_in_the_periodic_hashes_stops_neither_ticks_nor_the_worker() {
    rpc_testkit::require_redis_server();
    let redis = RedisServer::start().expect("redis");
    redis.cli(["HSET", "rpc:{Beat}:periodic:last", "beat", "not a number"]);
    redis.cli(["HSET", "rpc:{Beat}:periodic", "other", "{{{"]);
    redis.cli(["SET", "rpc:{Junk}:periodic", "a string, not a hash"]);
    let seen = Seen::default();
    let junk = DynamicService::new("Junk").job("x", |req| async move { req.respond(json!(1)) });
    let worker = Worker::builder(redis.url())
        .mount(beat(seen.clone()))
        .mount(junk)
        .periodic(every(100))
        .periodic(Periodic::every(
            "junk",
            Duration::from_millis(100),
            "Junk.x",
            json!({}),
        ))
        .build()
        .await
        .expect("worker");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(worker.run_until(async move {
        let _ = rx.await;
    }));
    tokio::time::sleep(Duration::from_millis(700)).await;
    let client = Client::connect(&redis.url()).await.unwrap();
    let echoed = client
        .call("Beat.echo", json!({"still": "here"}))
        .options(CallOptions::timeout(Duration::from_secs(5)))
        .response()
        .await
        .expect("the worker still answers");
    assert_eq!(echoed.data, json!({"still": "here"}));
    stop((tx, task)).await;
    let seen = seen.lock().unwrap().clone();
    assert!(seen.len() >= 4, "beat ticked {seen:?}");
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
    let last = redis.cli(["HGET", "rpc:{Beat}:periodic:last", "beat"]);
    assert!(
        last.trim().parse::<u64>().is_ok(),
        "the garbage was not replaced: {last}"
    );
    assert_eq!(redis.cli(["TYPE", "rpc:{Junk}:periodic"]).trim(), "string");
    assert_eq!(redis.cli(["XLEN", "rpc:{Junk}:jobs"]).trim(), "0");
}
