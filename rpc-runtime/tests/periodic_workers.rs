//! Periodic jobs run by real `Worker`s in this process: three workers on
//! one `memory://` broker run each tick once with no gap; the missed-tick
//! policies (`RunOnce`: one catch-up run, `Skip`: none) after every worker
//! was down; and on a private redis-server, garbage in the periodic hashes
//! stops neither the ticks nor the worker. (`rpc-chaos/tests/periodic.rs`
//! does the same with worker processes.)
//!
//! The tests wait on the ticks the handlers saw (and the periodic state the
//! broker keeps), each with a generous deadline, never for a time and then
//! look: on a loaded machine a worker wakes late, and that is allowed. The
//! clock is read only to know which ticks were missed while no worker ran.

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

/// Polls `check` every 10 ms until it holds; panics with `what` after
/// `within` (generous: the condition is what the test waits for, the
/// deadline only ends a test that would otherwise hang).
async fn wait_until(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// How long any waited-for condition may take on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// The distinct ticks seen so far that are after `after`.
fn ticks_after(seen: &Seen, after: u64) -> Vec<u64> {
    seen.lock()
        .unwrap()
        .range(after + 1..)
        .map(|(t, _)| *t)
        .collect()
}

/// Three workers on one broker until eight ticks have run: each ran exactly
/// once, on the interval's grid, after the start, and none is missing
/// between the first and the last. A tick is skipped by design only when
/// every worker wakes a whole interval late, so the interval is a second:
/// the no-gap check holds on a loaded machine too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_on_memory_run_each_tick_once() {
    const EVERY: u64 = 1_000;
    let url = unique("periodic-three");
    let seen = Seen::default();
    let t0 = now_ms();
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(start(&url, &seen, every(EVERY)).await);
    }
    wait_until("eight ticks ran", PATIENCE, || {
        ticks_after(&seen, 0).len() >= 8
    })
    .await;
    for w in workers {
        stop(w).await;
    }
    let seen = seen.lock().unwrap().clone();
    assert!(seen.values().all(|&n| n == 1), "a tick ran twice: {seen:?}");
    let ticks: Vec<u64> = seen.keys().copied().collect();
    assert!(
        ticks.iter().all(|t| t % EVERY == 0),
        "off the grid: {ticks:?}"
    );
    let (first, last) = (ticks[0], ticks[ticks.len() - 1]);
    assert!(first > t0, "{ticks:?} before the start at {t0}");
    assert_eq!(
        ticks.len() as u64,
        (last - first) / EVERY + 1,
        "a gap: {ticks:?}"
    );
}

/// Runs the job with `policy` until two ticks ran, stops every worker until
/// at least three more ticks have passed with none running, then starts one
/// and waits for two runs after the stop. Returns the ticks run, the last
/// tick enqueued before the stop (from the periodic state, so that a tick
/// enqueued but not yet run at the stop is not counted as run after it),
/// and the clock just before the restart and just after the first run
/// after it.
async fn down_and_up(policy: MissedTicks, every_ms: u64) -> (BTreeMap<u64, usize>, u64, u64, u64) {
    let url = unique("periodic-missed");
    // Holds the broker while no worker runs (it lives while used).
    let broker = Client::connect(&url).await.unwrap();
    let inspector = rpc_runtime::Inspector::new(broker.backend().clone());
    let seen = Seen::default();
    let job = || every(every_ms).missed(policy);
    let first = start(&url, &seen, job()).await;
    wait_until("two ticks before the stop", PATIENCE, || {
        ticks_after(&seen, 0).len() >= 2
    })
    .await;
    stop(first).await;
    let state = inspector
        .periodic("Beat")
        .await
        .unwrap()
        .expect("Beat's periodic state");
    let last_before = state
        .iter()
        .find(|p| p.name == "beat")
        .and_then(|p| p.last_ms)
        .expect("a last tick recorded");
    let ran_before = *seen.lock().unwrap().keys().last().unwrap();
    assert!(ran_before <= last_before, "{ran_before} > {last_before}");
    // A tick enqueued at the stop but not run runs after the restart; it
    // is at or before `last_before`, so it is not counted below.
    // Down while at least three ticks pass (on the clock: the ticks missed
    // are what this waits for).
    wait_until("three ticks missed", PATIENCE, || {
        now_ms() >= last_before + 3 * every_ms + every_ms / 4
    })
    .await;
    let restart = now_ms();
    let second = start(&url, &seen, job()).await;
    wait_until("a run after the restart", PATIENCE, || {
        !ticks_after(&seen, last_before).is_empty()
    })
    .await;
    let first_run = now_ms();
    wait_until("two runs after the restart", PATIENCE, || {
        ticks_after(&seen, last_before).len() >= 2
    })
    .await;
    stop(second).await;
    let seen = seen.lock().unwrap().clone();
    assert!(seen.values().all(|&n| n == 1), "a tick ran twice: {seen:?}");
    (seen, last_before, restart, first_run)
}

/// `RunOnce`: the ticks missed while no worker ran get exactly one run, at
/// the restart, with the id of the latest missed tick (not a burst from the
/// first one missed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_ticks_run_once_when_a_worker_starts() {
    const EVERY: u64 = 1_000;
    // A run, after the restart, of a tick at or before the restart can only
    // be the catch-up. If the first run after it is of a later tick, the
    // catch-up is missing, unless a tick passed while the worker started
    // (the catch-up's tick is the latest at or before the worker's start,
    // which is later than `restart`): then the run is tried again.
    for attempt in 1..=3 {
        let (seen, last_before, restart, first_run) =
            down_and_up(MissedTicks::RunOnce, EVERY).await;
        let after: Vec<u64> = seen.range(last_before + 1..).map(|(t, _)| *t).collect();
        let latest_missed = restart / EVERY * EVERY;
        // Not an earlier missed tick, whatever the timing: one run, the latest.
        assert!(
            after[0] >= latest_missed,
            "a run for an earlier missed tick: {after:?}, restart at {restart}, {seen:?}"
        );
        if after[0] <= restart {
            assert_eq!(after[0], latest_missed, "{after:?}, {seen:?}");
            assert!(after[1] > restart, "two runs for the gap: {after:?}");
            return;
        }
        assert_ne!(
            first_run / EVERY,
            restart / EVERY,
            "no catch-up run for the gap: {after:?}, restart at {restart}, {seen:?}"
        );
        println!("attempt {attempt}: a tick passed while the worker started; again");
    }
    panic!(
        "no catch-up run seen in three restarts; each time a tick passed while \
         the worker started, so either there is none or the machine is too slow"
    );
}

/// `Skip`: no run for the ticks missed while no worker ran; the job goes on
/// with the ticks after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_ticks_are_skipped_with_skip() {
    let (seen, last_before, restart, _) = down_and_up(MissedTicks::Skip, 400).await;
    let gap: Vec<u64> = seen
        .range(last_before + 1..=restart)
        .map(|(t, _)| *t)
        .collect();
    assert!(gap.is_empty(), "ran for the gap: {gap:?} in {seen:?}");
    assert!(
        seen.range(restart + 1..).count() >= 2,
        "did not go on after the restart: {seen:?}"
    );
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
    wait_until("beat ticked four times", PATIENCE, || {
        ticks_after(&seen, 0).len() >= 4
    })
    .await;
    let client = Client::connect(&redis.url()).await.unwrap();
    let echoed = client
        .call("Beat.echo", json!({"still": "here"}))
        .options(CallOptions::timeout(Duration::from_secs(30)))
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
