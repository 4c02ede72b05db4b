//! Per-key concurrency and fair share (docs/PROTOCOL.md, "Per-key
//! concurrency"), against a private redis-server and the memory broker:
//! at most the limit of one key's calls run at once across workers, a key
//! with a few calls is not stuck behind one with thousands, and bad keys
//! or garbage group state never stop a worker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rpc_runtime::{Client, DynamicService, Error, Worker};
use rpc_testkit::RedisServer;
use serde_json::json;

/// What the handler saw: calls running per key now, the most ever, and
/// when each call ended.
#[derive(Default)]
struct Seen {
    running: HashMap<String, usize>,
    most: HashMap<String, usize>,
    ended: HashMap<String, Vec<Instant>>,
}

fn service(seen: Arc<Mutex<Seen>>) -> DynamicService {
    DynamicService::new("Fair").job("work", move |req| {
        let seen = seen.clone();
        async move {
            let key = req.data["key"].as_str().unwrap_or_default().to_owned();
            let ms = req.data["ms"].as_u64().unwrap_or(0);
            {
                let mut s = seen.lock().unwrap();
                let now = {
                    let n = s.running.entry(key.clone()).or_default();
                    *n += 1;
                    *n
                };
                let most = s.most.entry(key.clone()).or_default();
                *most = (*most).max(now);
            }
            tokio::time::sleep(Duration::from_millis(ms)).await;
            let mut s = seen.lock().unwrap();
            *s.running.get_mut(&key).unwrap() -= 1;
            s.ended.entry(key).or_default().push(Instant::now());
            Ok(json!(null))
        }
    })
}

struct Workers {
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<Result<rpc_runtime::StatsSnapshot, Error>>>,
}

impl Workers {
    /// `n` workers of `concurrency` each, the per-key limit of
    /// `Fair.work` `limit`.
    async fn start(
        url: &str,
        n: usize,
        concurrency: usize,
        limit: u32,
        seen: &Arc<Mutex<Seen>>,
    ) -> Workers {
        let mut workers = Workers {
            stops: Vec::new(),
            tasks: Vec::new(),
        };
        for _ in 0..n {
            let worker = Worker::builder(url)
                .mount(service(seen.clone()))
                .concurrency(concurrency)
                .group_limit("Fair.work", limit)
                .build()
                .await
                .expect("worker starts");
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            workers
                .tasks
                .push(tokio::spawn(worker.run_until(async move {
                    let _ = rx.await;
                })));
            workers.stops.push(tx);
        }
        workers
    }

    async fn stop(self) {
        for stop in self.stops {
            let _ = stop.send(());
        }
        for task in self.tasks {
            task.await.expect("worker task").expect("worker result");
        }
    }
}

/// Waits (up to `within`) until `done` holds, checking every few ms.
async fn until(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(t0.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn ended(seen: &Arc<Mutex<Seen>>, key: &str) -> usize {
    seen.lock().unwrap().ended.get(key).map_or(0, Vec::len)
}

/// Several keys' calls over several workers with room for more: no key
/// ever has more than its limit running, and every call runs.
async fn limit_holds(url: &str) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let workers = Workers::start(url, 4, 8, 3, &seen).await;
    let client = Client::connect(url).await.unwrap();
    for key in ["a", "b", "c"] {
        let params = (0..30).map(|_| json!({"key": key, "ms": 10}));
        client
            .send_many("Fair.work", params)
            .group(key)
            .await
            .unwrap();
    }
    until(Duration::from_secs(20), "every call to end", || {
        ["a", "b", "c"].iter().all(|k| ended(&seen, k) == 30)
    })
    .await;
    let most = seen.lock().unwrap().most.clone();
    for key in ["a", "b", "c"] {
        // 32 slots of workers, 30 calls a key: only the limit holds them back.
        assert_eq!(most[key], 3, "key {key}: {most:?}");
    }
    workers.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_per_key_limit_holds_across_workers_over_redis() {
    let redis = RedisServer::start().expect("start redis-server");
    limit_holds(&redis.url()).await;
    // Nothing is left behind: no slot held, nothing waiting.
    let keys = redis.cli(["KEYS", "rpc:{Fair}:group*"]);
    assert!(keys.trim().is_empty(), "{keys}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_per_key_limit_holds_across_workers_on_a_cluster() {
    // Every key of a group shares its queue's slot, so both scripts run
    // on one master; moved calls ring the queue's doorbell.
    let cluster = rpc_testkit::RedisCluster::start(3).expect("cluster");
    limit_holds(&cluster.cluster_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_per_key_limit_holds_across_workers_in_memory() {
    limit_holds("memory://groups-limit").await;
}

/// How many calls tenant A queues: 2,000, or `FAIR_SHARE_A` (the issue's
/// figure is 10,000).
fn a_backlog() -> usize {
    env_number("FAIR_SHARE_A").unwrap_or(2000)
}

/// A number from the environment, for the figures the tests print:
/// `FAIR_SHARE_A`, `FAIR_SHARE_CONCURRENCY` (each worker's, default 1).
/// `FAIR_SHARE_PARKED=1` sends B's calls only once A's backlog is parked,
/// the steady state; by default they go right behind A's, before any
/// worker has seen A's backlog.
fn env_number(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|n| n.parse().ok())
}

/// The scenario: tenant A has 2,000 calls queued and tenant B
/// sends 10 right behind them; four workers; B's last call ends within a
/// few job-times of being sent, not after A's backlog. The workers park
/// A's backlog (a hundred calls per parking step, `park_ahead` in
/// group_admit.lua) before B's calls reach them.
async fn fair_share(url: &str, parked: impl Fn() -> usize) {
    const JOB_MS: u64 = 50;
    let backlog = a_backlog();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let concurrency = env_number("FAIR_SHARE_CONCURRENCY").unwrap_or(1);
    let at_once = std::env::var("FAIR_SHARE_PARKED").is_err();
    let workers = Workers::start(url, 4, concurrency, 2, &seen).await;
    let client = Client::connect(url).await.unwrap();
    let t0 = Instant::now();
    let a = (0..backlog).map(|_| json!({"key": "A", "ms": JOB_MS}));
    client.send_many("Fair.work", a).group("A").await.unwrap();
    // A's backlog is queued once the workers have parked it (all but the
    // calls holding A's slots).
    if !at_once {
        until(Duration::from_secs(120), "A's backlog to be parked", || {
            parked() >= backlog - 10
        })
        .await;
    }
    let parking = t0.elapsed();
    let sent = Instant::now();
    let b = (0..10).map(|_| json!({"key": "B", "ms": JOB_MS}));
    client.send_many("Fair.work", b).group("B").await.unwrap();
    until(Duration::from_secs(30), "B's calls to end", || {
        ended(&seen, "B") == 10
    })
    .await;
    let last = *seen.lock().unwrap().ended["B"].iter().max().unwrap();
    let took = last.duration_since(sent);
    let job = Duration::from_millis(JOB_MS);
    eprintln!(
        "fair share: {backlog} of A {} in {parking:?}; B's 10 ended {took:?} after they were sent ({:.1} job-times); A ended {} meanwhile",
        if at_once { "sent, B's right after," } else { "parked" },
        took.as_secs_f64() / job.as_secs_f64(),
        ended(&seen, "A")
    );
    // B's 10 at 2 at a time are 5 job-times; A's 2 running and 2 reserved
    // calls ahead of them at most 2 more, and parking A's backlog a few
    // steps. Without fair share it would be A's whole backlog: 1,000
    // job-times; parking one call per step, 60 with 10,000 of A.
    assert!(took < job * 15, "B waited {took:?}");
    let most = seen.lock().unwrap().most.clone();
    assert!(most["A"] <= 2 && most["B"] <= 2, "{most:?}");
    workers.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenant_with_few_calls_is_not_stuck_behind_one_with_thousands_over_redis() {
    let redis = RedisServer::start().expect("start redis-server");
    let waiting = "rpc:{Fair}:group:work:A:waiting".to_owned();
    let llen = |redis: &RedisServer| {
        redis
            .cli(["LLEN", &waiting])
            .trim()
            .parse::<usize>()
            .unwrap_or(0)
    };
    fair_share(&redis.url(), || llen(&redis)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenant_with_few_calls_is_not_stuck_behind_one_with_thousands_in_memory() {
    let url = "memory://groups-fair";
    // Parked is what is neither queued nor leased, read from the queue's
    // figures.
    let backend = Client::connect(url).await.unwrap().backend().clone();
    let figures = Arc::new(Mutex::new(0usize));
    let polled = figures.clone();
    let poll = tokio::spawn(async move {
        loop {
            if let Ok(Some(f)) = backend.service_stats("Fair").await {
                let left = (f.queued + f.leased) as usize;
                let backlog = a_backlog();
                *polled.lock().unwrap() = if f.entries_added.unwrap_or(0) >= backlog as u64 {
                    backlog.saturating_sub(left)
                } else {
                    0
                };
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    fair_share(url, || *figures.lock().unwrap()).await;
    poll.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_group_key_is_refused_at_the_client() {
    let client = Client::connect("memory://groups-bad-key").await.unwrap();
    for bad in [
        String::new(),
        "a\nb".to_owned(),
        "x}:intake".to_owned(),
        "k".repeat(129),
    ] {
        let err = client
            .send("Fair.work", json!({}))
            .group(bad.clone())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("group key"), "{bad:?}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_bad_group_keys_are_dead_lettered_and_garbage_group_state_does_not_stop_a_worker() {
    let redis = RedisServer::start().expect("start redis-server");
    let url = redis.url();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let workers = Workers::start(&url, 1, 4, 1, &seen).await;
    let client = Client::connect(&url).await.unwrap();
    // Raw messages with bad keys: dead-lettered with the reason.
    let long = "k".repeat(129);
    for group in [json!(""), json!(long), json!("a\u{1}b"), json!(7)] {
        let message = json!({"v":1,"id":format!("bad-{}", group.to_string().len()),"job":"Fair.work","params":{},"group":group}).to_string();
        redis.cli(["XADD", "rpc:{Fair}:jobs", "*", "m", &message]);
    }
    // Garbage where the group state lives: a string for the running set,
    // a set for the waiting list, and a waiting element that is no message.
    redis.cli(["SET", "rpc:{Fair}:group:work:g1:running", "garbage"]);
    redis.cli(["SADD", "rpc:{Fair}:group:work:g2:waiting", "garbage"]);
    redis.cli([
        "RPUSH",
        "rpc:{Fair}:group:work:g3:waiting",
        "not a job message",
    ]);
    redis.cli([
        "SADD",
        "rpc:{Fair}:groups",
        "work:g3",
        "no-colon",
        "work:{bad}",
    ]);
    for key in ["g1", "g2", "g3"] {
        client
            .call("Fair.work", json!({"key": key, "ms": 1}))
            .group(key)
            .timeout(Duration::from_secs(10))
            .response()
            .await
            .unwrap_or_else(|e| panic!("key {key}: {e}"));
    }
    until(Duration::from_secs(10), "the dead letters", || {
        redis.cli(["XLEN", "rpc:{Fair}:dead"]).trim() == "5"
    })
    .await;
    // The garbage members of the groups set are dropped by the sweep.
    until(Duration::from_secs(10), "the garbage members to go", || {
        redis
            .cli(["SMEMBERS", "rpc:{Fair}:groups"])
            .trim()
            .is_empty()
    })
    .await;
    let dead = client.backend().dead_letters("Fair", 10).await.unwrap();
    let bad_keys = dead.iter().filter(|d| d.reason.contains("`group`")).count();
    assert_eq!(
        bad_keys,
        3,
        "{:?}",
        dead.iter().map(|d| &d.reason).collect::<Vec<_>>()
    );
    assert!(
        dead.iter().any(|d| d.payload == b"not a job message"),
        "the garbage waiting element is dead-lettered once moved"
    );
    workers.stop().await;
}

/// A call cancelled while it waited for a slot gives back the slot it
/// reserved as it moved onto the stream at once, not after the visibility
/// timeout (30 s here): the key's next call runs as soon as the first ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_cancelled_while_parked_does_not_hold_its_keys_slot() {
    let redis = RedisServer::start().expect("start redis-server");
    let url = redis.url();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let workers = Workers::start(&url, 1, 4, 1, &seen).await;
    let client = Client::connect(&url).await.unwrap();
    let t0 = Instant::now();
    let mut ids = Vec::new();
    for ms in [1000, 0, 0] {
        let id = client
            .send("Fair.work", json!({"key": "k", "ms": ms}))
            .group("k")
            .await
            .unwrap();
        ids.push(id);
        if ms > 0 {
            // The long one holds the slot before the others come.
            until(Duration::from_secs(10), "the first call to run", || {
                seen.lock().unwrap().most.contains_key("k")
            })
            .await;
        }
    }
    let waiting = "rpc:{Fair}:group:work:k:waiting";
    until(Duration::from_secs(10), "two calls parked", || {
        redis.cli(["LLEN", waiting]).trim() == "2"
    })
    .await;
    client.cancel_in("Fair", &ids[1]).await.unwrap();
    until(
        Duration::from_secs(10),
        "the first and third call to end",
        || ended(&seen, "k") == 2,
    )
    .await;
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert_eq!(seen.lock().unwrap().most["k"], 1);
    workers.stop().await;
}
