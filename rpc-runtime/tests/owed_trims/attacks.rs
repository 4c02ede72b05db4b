//! Attacks on owed trims (`reader/owed_trims.rs`): ids a reader acked in
//! full are trimmed (or deleted) later, possibly after Redis lost its data.
//! Against private redis-servers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rpc_runtime::backend::{connect, Broker, BrokerConfig, Completion, Delivery, Reader};
use rpc_runtime::{Client, DynamicService, Worker};
use rpc_testkit::RedisServer;
use serde_json::json;

const JOBS: &str = "rpc:{W}:jobs";

fn entry_ids(server: &RedisServer, key: &str) -> Vec<String> {
    server
        .cli(["XRANGE", key, "-", "+"])
        .lines()
        .filter(|l| l.contains('-') && l.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(str::to_owned)
        .collect()
}

async fn take_n(reader: &mut dyn Reader, queue: &str, consumer: &str, n: usize) -> Vec<Delivery> {
    let mut out = Vec::new();
    while out.len() < n {
        let more = reader
            .take_jobs(
                &[queue.to_owned()],
                consumer,
                n - out.len(),
                Duration::from_secs(1),
            )
            .await
            .unwrap();
        assert!(!more.is_empty(), "jobs not taken: {out:?}");
        out.extend(more);
    }
    out
}

/// A service `W` whose one-way `tick` counts its runs in `ticks`.
fn ticking(ticks: Arc<AtomicUsize>) -> DynamicService {
    DynamicService::new("W").job("tick", move |_req| {
        let t = ticks.clone();
        async move {
            t.fetch_add(1, Ordering::SeqCst);
            Ok(json!(null))
        }
    })
}

/// A worker of `service` at concurrency 32, and what stops it.
async fn start_worker(
    url: &str,
    service: DynamicService,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<rpc_runtime::StatsSnapshot, rpc_runtime::Error>>,
) {
    let worker = Worker::builder(url)
        .mount(service)
        .consumer_name("w1")
        .concurrency(32)
        .build()
        .await
        .expect("worker");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(worker.run_until(async move {
        let _ = rx.await;
    }));
    (tx, task)
}

/// `n` one-way `W.tick` sends at once, each queued.
async fn send_ticks(client: &Client, n: usize) {
    let sends: Vec<_> = (0..n)
        .map(|n| {
            let c = client.clone();
            tokio::spawn(async move { c.send("W.tick", json!({ "n": n })).await })
        })
        .collect();
    for s in sends {
        s.await.unwrap().unwrap();
    }
}

/// A backend on `server` with the queues `W` (worked) and `X` (idle).
async fn backend_of_w_and_x(server: &RedisServer) -> Arc<dyn Broker> {
    let backend = connect(&BrokerConfig::new(server.url()))
        .await
        .expect("connect");
    backend
        .prepare_queues(&["W".to_owned(), "X".to_owned()])
        .await
        .unwrap();
    backend
}

/// A worker acks `n` one-way jobs in full (XACK counts every id: they are
/// owed a trim, or for n < 12 left for XDEL), then Redis restarts without
/// persistence with its clock behind: new, waiting jobs take the acked
/// ids. The reader's next read that waits (trim first: NOSCRIPT or a bound)
/// must not delete them.
async fn acked_then_restart_with_colliding_ids(
    n: usize,
    hold_a_lease: bool,
) -> (Vec<String>, Vec<String>) {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let (queue, idle) = ("W", ["X".to_owned()]);
    let backend = backend_of_w_and_x(&server).await;
    for i in 0..n {
        backend
            .push_job(queue, format!("old {i}").as_bytes())
            .await
            .unwrap();
    }
    let mut reader = backend.open_reader().await.unwrap();
    let taken = take_n(&mut *reader, queue, "c1", n).await;
    let acks: Vec<(Delivery, Completion)> = taken
        .iter()
        .map(|d| (d.clone(), Completion::default()))
        .collect();
    // Acked in full, before the restart: owed (n >= 12) or left (n < 12).
    let out = reader
        .complete_and_take(&acks, &idle, "c1", 1, Duration::from_millis(10))
        .await;
    assert!(out.not_completed.is_empty(), "{:?}", out.not_completed);
    assert_eq!(entry_ids(&server, JOBS).len(), n, "acked, not yet trimmed");
    server.restart().unwrap();
    // The new stream: an entry older than every stale id, then new jobs
    // that got the stale ids (a clock behind), waiting.
    server.cli(["XGROUP", "CREATE", JOBS, "workers", "0", "MKSTREAM"]);
    server.cli(["XADD", JOBS, "1-0", "m", "new"]);
    for d in &taken {
        server.cli(["XADD", JOBS, &d.token, "m", "new"]);
    }
    let all = entry_ids(&server, JOBS);
    let mut other = backend.open_reader().await.unwrap();
    if hold_a_lease {
        take_n(&mut *other, queue, "c2", 1).await;
    }
    // The reader's next read that may wait: it trims what it owes first.
    let _ = reader
        .take_jobs(&idle, "c1", 1, Duration::from_millis(10))
        .await;
    let _ = reader
        .take_jobs(&idle, "c1", 1, Duration::from_millis(10))
        .await;
    (all, entry_ids(&server, JOBS))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owed_ids_never_delete_waiting_jobs_after_a_restart_with_a_lease_held() {
    let (before, after) = acked_then_restart_with_colliding_ids(14, true).await;
    assert_eq!(
        after.len(),
        before.len(),
        "waiting jobs deleted by an owed trim's leftovers: before {before:?} after {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owed_ids_never_delete_waiting_jobs_after_a_restart() {
    let (before, after) = acked_then_restart_with_colliding_ids(14, false).await;
    assert_eq!(
        after.len(),
        before.len(),
        "waiting jobs deleted by an owed trim's leftovers: before {before:?} after {after:?}"
    );
}

/// The same for a small batch (< 12, `left` for XDEL): the pre-existing
/// path, for comparison.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn left_ids_never_delete_waiting_jobs_after_a_restart() {
    let (before, after) = acked_then_restart_with_colliding_ids(11, false).await;
    assert_eq!(
        after.len(),
        before.len(),
        "waiting jobs deleted by left XDELs: before {before:?} after {after:?}"
    );
}

/// A whole worker: a flood of one-way jobs drained, then idle. An idle
/// worker blocks (about one XREADGROUP a second), it does not spin on
/// non-blocking reads, whether its trims work or are refused (ACL).
async fn idle_reads_after_flood(url_user: Option<(&str, &str)>) -> (usize, usize) {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let url = match url_user {
        Some((u, p)) => {
            server.cli([
                "ACL",
                "SETUSER",
                u,
                "on",
                &format!(">{p}"),
                "~*",
                "&*",
                "+@all",
                "-xtrim",
                "-xinfo",
            ]);
            server.url_as(u, p)
        }
        None => server.url(),
    };
    let ticks = Arc::new(AtomicUsize::new(0));
    let service = ticking(ticks.clone());
    let (tx, task) = start_worker(&url, service).await;
    let client = Client::builder(server.url())
        .default_timeout(Duration::from_secs(30))
        .connect()
        .await
        .unwrap();
    const N: usize = 3000;
    send_ticks(&client, N).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while ticks.load(Ordering::SeqCst) < N {
        assert!(
            Instant::now() < deadline,
            "ran {}",
            ticks.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Idle now: what it acked is trimmed (or deleted) before it waits.
    let xlen = || -> usize { server.cli(["XLEN", JOBS]).trim().parse().unwrap() };
    let deadline = Instant::now() + Duration::from_secs(30);
    while xlen() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let xlen_idle = xlen();
    // A spinning worker reads thousands of times in this window; a
    // blocking one about twice (one `XREADGROUP ... BLOCK 1000` a second).
    server.cli(["CONFIG", "RESETSTAT"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats = server.cli(["INFO", "commandstats"]);
    let calls = stats
        .lines()
        .find(|l| l.starts_with("cmdstat_xreadgroup:"))
        .and_then(|l| l.split("calls=").nth(1))
        .and_then(|r| r.split(',').next())
        .map_or(0, |n| n.parse().unwrap());
    tx.send(()).unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
    (calls, xlen_idle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_blocks_after_a_flood() {
    let (reads, xlen) = idle_reads_after_flood(None).await;
    assert!(reads <= 10, "idle worker read {reads} times in 2 s");
    assert_eq!(xlen, 0, "acked entries left on an idle stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_whose_trims_are_refused_blocks_after_a_flood() {
    let (reads, xlen) = idle_reads_after_flood(Some(("w", "pw"))).await;
    assert!(reads <= 10, "idle worker read {reads} times in 2 s");
    assert_eq!(xlen, 0, "acked entries left on an idle stream");
}

/// (entries on the stream, waiting (lag), leased) of the W stream.
fn stream_counts(server: &RedisServer) -> (usize, usize, usize) {
    let len = server.cli(["XLEN", JOBS]).trim().parse().unwrap();
    let info = server.cli(["XINFO", "GROUPS", JOBS]);
    let mut lines = info.lines().map(str::trim);
    let (mut lag, mut pending) = (0, 0);
    while let Some(l) = lines.next() {
        match l {
            "lag" => lag = lines.next().unwrap().parse().unwrap_or(0),
            "pending" => pending = lines.next().unwrap().parse().unwrap(),
            _ => {}
        }
    }
    (len, lag, pending)
}

/// A worker stopped (graceful) mid-flood of one-way jobs leaves no acked
/// entry on the stream: XLEN is exactly what waits plus what is leased.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stopped_mid_flood_leaves_no_acked_entry() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let ticks = Arc::new(AtomicUsize::new(0));
    let service = ticking(ticks.clone());
    let client = Client::builder(server.url())
        .default_timeout(Duration::from_secs(30))
        .connect()
        .await
        .unwrap();
    const N: usize = 20000;
    send_ticks(&client, N).await;
    let (tx, task) = start_worker(&server.url(), service).await;
    while ticks.load(Ordering::SeqCst) < N / 3 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tx.send(()).unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
    let (len, lag, pending) = stream_counts(&server);
    let ran = ticks.load(Ordering::SeqCst);
    eprintln!("ran {ran}, xlen {len}, lag {lag}, pending {pending}");
    assert!(ran < N, "the flood was drained before the stop");
    assert_eq!(
        len,
        lag + pending,
        "acked entries left after a stop: ran {ran}"
    );
    assert_eq!(lag + pending, N - ran, "jobs lost or run twice");
}

/// After Redis lost its scripts (SCRIPT FLUSH, as a restart does), owed
/// trims sent before a waiting read answer NOSCRIPT: is trim_acked.lua
/// loaded again, or does every later trim fail over to XDEL?
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owed_trims_reload_their_script_after_noscript() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let (queue, idle) = ("W", ["X".to_owned()]);
    let backend = backend_of_w_and_x(&server).await;
    let mut reader = backend.open_reader().await.unwrap();
    server.cli(["SCRIPT", "FLUSH"]);
    server.cli(["CONFIG", "RESETSTAT"]);
    for round in 0..3 {
        for i in 0..20 {
            backend
                .push_job(queue, format!("{round} {i}").as_bytes())
                .await
                .unwrap();
        }
        let taken = take_n(&mut *reader, queue, "c1", 20).await;
        let acks: Vec<(Delivery, Completion)> = taken
            .iter()
            .map(|d| (d.clone(), Completion::default()))
            .collect();
        let out = reader
            .complete_and_take(&acks, &idle, "c1", 1, Duration::from_millis(10))
            .await;
        assert!(out.not_completed.is_empty());
        reader
            .take_jobs(&idle, "c1", 1, Duration::from_millis(10))
            .await
            .unwrap();
        assert_eq!(entry_ids(&server, JOBS).len(), 0);
    }
    let stats = server.cli(["INFO", "commandstats"]);
    let line = |c: &str| {
        stats
            .lines()
            .find(|l| l.starts_with(c))
            .unwrap_or("")
            .to_owned()
    };
    eprintln!(
        "{}\n{}\n{}",
        line("cmdstat_evalsha"),
        line("cmdstat_xdel"),
        line("cmdstat_xtrim")
    );
    assert!(
        !line("cmdstat_xtrim").is_empty(),
        "three rounds of owed trims never trimmed: {} / {}",
        line("cmdstat_evalsha"),
        line("cmdstat_xdel")
    );
}
