//! Attacks on `trim_acked.lua` (a batch of twelve or more acks alone goes
//! as `XACK` + the trim; what a held lease keeps past the trim is deleted
//! with the worker's next read), with in-process workers on a private
//! redis-server: PROTOCOL.md promises that every entry of a jobs stream is
//! a job not yet acked, but for the acked entries a trim of acks alone
//! leaves "until the worker's next read deletes them".
//!
//! Each test waits on what it can observe with a generous deadline, never
//! on a sleep.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rpc_runtime::{Client, DynamicService, Error, StatsSnapshot, Worker};
use rpc_testkit::RedisServer;
use serde_json::json;
use tokio::sync::Notify;

const PATIENCE: Duration = Duration::from_secs(60);
const JOBS: &str = "rpc:{W}:jobs";

type Running = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<StatsSnapshot, Error>>,
);

/// `W.hold` waits until `release` is notified; `W.tick` counts and ends.
fn service(release: Arc<Notify>, started: Arc<Notify>, ticks: Arc<AtomicUsize>) -> DynamicService {
    DynamicService::new("W")
        .job("hold", move |_req| {
            let (release, started) = (release.clone(), started.clone());
            async move {
                started.notify_one();
                release.notified().await;
                Ok(json!(null))
            }
        })
        .job("tick", move |_req| {
            let ticks = ticks.clone();
            async move {
                ticks.fetch_add(1, Ordering::SeqCst);
                Ok(json!(null))
            }
        })
}

async fn start(url: &str, id: &str, concurrency: usize, service: DynamicService) -> Running {
    let worker = Worker::builder(url)
        .mount(service)
        .consumer_name(id)
        .concurrency(concurrency)
        .build()
        .await
        .expect("worker");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(worker.run_until(async move {
        let _ = rx.await;
    }));
    (tx, task)
}

/// The group's last delivered id.
fn last_delivered(server: &RedisServer) -> String {
    let info = server.cli(["XINFO", "GROUPS", JOBS]);
    let mut lines = info.lines();
    while let Some(l) = lines.next() {
        if l.trim() == "last-delivered-id" {
            return lines.next().unwrap().trim().to_owned();
        }
    }
    panic!("no group: {info}")
}

/// The entries the group delivered that are still on the stream, and how
/// many leases it holds: every delivered entry still there must be leased.
fn delivered_and_leased(server: &RedisServer) -> (usize, usize) {
    let last = last_delivered(server);
    let delivered = server
        .cli(["XRANGE", JOBS, "-", &last])
        .lines()
        .filter(|l| l.contains('-') && l.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .count();
    let leased: usize = server
        .cli(["XPENDING", JOBS, "workers"])
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    (delivered, leased)
}

/// One worker holds the oldest lease (a slow one-way job); another drains a
/// flood of fast one-way jobs in batches that `trim_acked.lua` trims up to
/// that lease, leaving the batch's own ids to the next read. The draining
/// worker is stopped mid-flood, gracefully: what its last batch left must
/// not stay on the stream (acked, yet counted as queued, found by id).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_worker_deletes_what_its_last_trim_left() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let url = server.url();
    let (release, started) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let ticks = Arc::new(AtomicUsize::new(0));
    let client = Client::connect(&url).await.unwrap();
    let holder = start(
        &url,
        "holder",
        1,
        service(release.clone(), started.clone(), ticks.clone()),
    )
    .await;
    client.send_many("W.hold", [json!({})]).await.unwrap();
    tokio::time::timeout(PATIENCE, started.notified())
        .await
        .expect("the slow job never started");
    let drainer = start(
        &url,
        "drainer",
        32,
        service(release.clone(), started.clone(), ticks.clone()),
    )
    .await;
    client
        .send_many("W.tick", (0..3000).map(|i| json!({ "i": i })))
        .await
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while ticks.load(Ordering::SeqCst) < 300 {
        assert!(Instant::now() < deadline, "the flood is not drained");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Stopped mid-flood.
    drainer.0.send(()).unwrap();
    tokio::time::timeout(PATIENCE, drainer.1)
        .await
        .expect("the drainer never stopped")
        .unwrap()
        .unwrap();
    let done = ticks.load(Ordering::SeqCst);
    assert!(done < 3000, "stopped after the flood: {done}");
    let (delivered, leased) = delivered_and_leased(&server);
    assert_eq!(leased, 1, "only the slow job is leased");
    assert_eq!(
        delivered,
        leased,
        "acked entries stay on the stream after {done} ticks (XLEN {})",
        server.cli(["XLEN", JOBS]).trim()
    );
    release.notify_one();
    holder.0.send(()).unwrap();
    let _ = tokio::time::timeout(PATIENCE, holder.1).await;
}

/// The ids of a stream's entries, oldest first.
fn entry_ids(server: &RedisServer, key: &str) -> Vec<String> {
    server
        .cli(["XRANGE", key, "-", "+"])
        .lines()
        .filter(|l| l.contains('-') && l.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(str::to_owned)
        .collect()
}

/// The workers' sweep (`trim_acked.lua` with `+`, acking nothing) removes
/// only acked entries: with a lease held, those older than it; with none,
/// those the group delivered; never a waiting or leased one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_removes_acked_entries_only() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let key = "rpc:{S}:jobs";
    server.cli(["XGROUP", "CREATE", key, "workers", "0", "MKSTREAM"]);
    for i in 0..30 {
        server.cli(["XADD", key, "*", "m", &i.to_string()]);
    }
    let all = entry_ids(&server, key);
    // 0..20 delivered; 5 and 12 leased, the rest of them acked.
    server.cli([
        "XREADGROUP",
        "GROUP",
        "workers",
        "c",
        "COUNT",
        "20",
        "STREAMS",
        key,
        ">",
    ]);
    let acked: Vec<&str> = (0..20)
        .filter(|i| *i != 5 && *i != 12)
        .map(|i| all[i].as_str())
        .collect();
    let mut ack = vec!["XACK", key, "workers"];
    ack.extend(&acked);
    server.cli(ack);
    let sweep = |server: &RedisServer| {
        server.cli([
            "EVAL",
            rpc_runtime::protocol::scripts::TRIM_ACKED.source,
            "1",
            key,
            "workers",
            "+",
        ])
    };
    sweep(&server);
    assert_eq!(
        entry_ids(&server, key),
        all[5..].to_vec(),
        "up to the lease"
    );
    // The first lease ends: up to the next one.
    server.cli(["XACK", key, "workers", &all[5]]);
    sweep(&server);
    assert_eq!(entry_ids(&server, key), all[12..].to_vec());
    // No lease: everything delivered goes, the waiting ten stay.
    server.cli(["XACK", key, "workers", &all[12]]);
    sweep(&server);
    assert_eq!(entry_ids(&server, key), all[20..].to_vec());
    // Nothing delivered since: nothing more goes.
    sweep(&server);
    assert_eq!(entry_ids(&server, key), all[20..].to_vec());
}

/// `W.mark {i, ms}` records `i` after sleeping `ms`.
fn marking(seen: Arc<std::sync::Mutex<std::collections::HashSet<u64>>>) -> DynamicService {
    DynamicService::new("W").job("mark", move |req| {
        let seen = seen.clone();
        async move {
            let ms = req.data["ms"].as_u64().unwrap_or(0);
            if ms > 0 {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            seen.lock().unwrap().insert(req.data["i"].as_u64().unwrap());
            Ok(json!(null))
        }
    })
}

/// Workers whose housekeeping turns every 500 ms.
async fn start_fleet(
    url: &str,
    n: usize,
    seen: &Arc<std::sync::Mutex<std::collections::HashSet<u64>>>,
) -> Vec<Running> {
    let mut fleet = Vec::new();
    for k in 0..n {
        let worker = Worker::builder(url)
            .mount(marking(seen.clone()))
            .consumer_name(format!("w{k}"))
            .concurrency(16)
            .heartbeat(Duration::from_millis(100), Duration::from_millis(500))
            .visibility_timeout(Duration::from_millis(1500))
            .build()
            .await
            .expect("worker");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(worker.run_until(async move {
            let _ = rx.await;
        }));
        fleet.push((tx, task));
    }
    fleet
}

/// Params of the calls `from..to`: every seventh sleeps 20 ms (its lease
/// is older than the batches of the fast ones around it).
fn flood(from: u64, to: u64) -> impl Iterator<Item = serde_json::Value> {
    (from..to).map(|i| json!({"i": i, "ms": if i % 7 == 0 { 20 } else { 0 }}))
}

async fn wait_until(what: &str, mut pred: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !pred() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The stream is empty and nothing is leased, within a few housekeeping
/// turns.
async fn wait_for_an_empty_stream(server: &RedisServer) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let len = server.cli(["XLEN", JOBS]).trim().to_owned();
        let (delivered, leased) = delivered_and_leased(server);
        if len == "0" && leased == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "XLEN {len}, {delivered} delivered entries left, {leased} leased"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Three workers drain fast and slow one-way calls while Redis loses its
/// scripts three times (`SCRIPT FLUSH`: the trim answers `NOSCRIPT`, the
/// batch's ids go with the next read): every call runs, and nothing stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_workers_and_script_flushes_lose_no_job_and_leave_nothing() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let url = server.url();
    let seen = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let fleet = start_fleet(&url, 3, &seen).await;
    let client = Client::connect(&url).await.unwrap();
    const N: u64 = 1500;
    client.send_many("W.mark", flood(0, N)).await.unwrap();
    for at in [300, 600, 900] {
        wait_until("the flood is not drained", || {
            seen.lock().unwrap().len() >= at
        })
        .await;
        server.cli(["SCRIPT", "FLUSH"]);
    }
    wait_until("not every call ran", || {
        seen.lock().unwrap().len() == N as usize
    })
    .await;
    wait_for_an_empty_stream(&server).await;
    for (tx, task) in fleet {
        tx.send(()).unwrap();
        let _ = tokio::time::timeout(PATIENCE, task).await;
    }
}

/// Redis restarts without persistence mid-flood (the group is gone:
/// `NOGROUP`, created again at 0; completions of the old stream's ids come
/// late): every call sent after the restart runs, and nothing stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_mid_flood_loses_no_later_job_and_leaves_nothing() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let url = server.url();
    let seen = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let fleet = start_fleet(&url, 2, &seen).await;
    let client = Client::connect(&url).await.unwrap();
    client.send_many("W.mark", flood(0, 1000)).await.unwrap();
    wait_until("the flood is not drained", || {
        seen.lock().unwrap().len() >= 300
    })
    .await;
    server.restart().unwrap();
    // Sent again until Redis takes them (the client's connection comes back).
    let deadline = Instant::now() + PATIENCE;
    while client
        .send_many("W.mark", flood(10_000, 11_000))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "Redis never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_until("not every call sent after the restart ran", || {
        let seen = seen.lock().unwrap();
        (10_000..11_000).all(|i| seen.contains(&i))
    })
    .await;
    wait_for_an_empty_stream(&server).await;
    for (tx, task) in fleet {
        tx.send(()).unwrap();
        let _ = tokio::time::timeout(PATIENCE, task).await;
    }
}

/// Takes `n` jobs of `queue` as `consumer`.
async fn take_n(
    reader: &mut dyn rpc_runtime::backend::Reader,
    queue: &str,
    consumer: &str,
    n: usize,
) -> Vec<rpc_runtime::backend::Delivery> {
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

/// A worker took 260 one-way jobs, Redis restarted without persistence,
/// its clock behind: the new stream's entries have ids older than the
/// stale ones (written here as explicit ids). The worker's late batch of
/// 260 acks (`XACK` + `trim_acked.lua` given the newest stale id, in the
/// same pipeline as the batch comes to more than the 256 ids a reader may
/// owe a trim, then `XDEL` of what it left with the next read) removes none
/// of the new jobs, leased or waiting, whether a lease is held or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_batch_after_a_restart_with_the_clock_behind_removes_no_new_job() {
    use rpc_runtime::backend::{connect, BrokerConfig, Completion, Delivery};
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let queue = "W";
    let backend = connect(&BrokerConfig::new(server.url()))
        .await
        .expect("connect");
    let idle = ["X".to_owned()];
    backend
        .prepare_queues(&[queue.to_owned(), idle[0].clone()])
        .await
        .unwrap();
    for i in 0..260 {
        backend
            .push_job(queue, format!("old {i}").as_bytes())
            .await
            .unwrap();
    }
    let mut reader = backend.open_reader().await.unwrap();
    let stale = take_n(&mut *reader, queue, "c1", 260).await;
    server.restart().unwrap();
    // The new stream: thirty entries older than every stale id.
    server.cli(["XGROUP", "CREATE", JOBS, "workers", "0", "MKSTREAM"]);
    for i in 1..=30 {
        server.cli(["XADD", JOBS, &format!("{i}-0"), "m", &format!("new {i}")]);
    }
    let all = entry_ids(&server, JOBS);
    let mut other = backend.open_reader().await.unwrap();
    let held = take_n(&mut *other, queue, "c2", 10).await;
    let acks: Vec<(Delivery, Completion)> = stale
        .iter()
        .map(|d| (d.clone(), Completion::default()))
        .collect();
    let mut late = backend.open_reader().await.unwrap();
    for round in 0..2 {
        server.cli(["CONFIG", "RESETSTAT"]);
        let out = late
            .complete_and_take(&acks, &idle, "c1", 1, Duration::from_millis(10))
            .await;
        assert!(out.not_completed.is_empty(), "{:?}", out.not_completed);
        let stats = server.cli(["INFO", "commandstats"]);
        assert!(stats.contains("cmdstat_evalsha:calls=1,"), "{stats}");
        // Its next read: what the trim left is deleted.
        late.take_jobs(&idle, "c1", 1, Duration::from_millis(10))
            .await
            .unwrap();
        let expected = if round == 0 {
            all.clone()
        } else {
            all[10..].to_vec()
        };
        assert_eq!(entry_ids(&server, JOBS), expected, "round {round}");
        if round == 0 {
            // Now without a lease: the other's ten acked and deleted.
            let mut del = vec!["XACK", JOBS, "workers"];
            del.extend(held.iter().map(|d| d.token.as_str()));
            server.cli(del);
            let mut del = vec!["XDEL", JOBS];
            del.extend(held.iter().map(|d| d.token.as_str()));
            server.cli(del);
            assert_eq!(entry_ids(&server, JOBS), all[10..].to_vec());
            assert_eq!(delivered_and_leased(&server), (0, 0));
        }
    }
}

/// As above, but the clock behind by just so much that the new stream's
/// ids reach the stale ones: a new, waiting job has the id of a job of the
/// worker's late batch. `XACK` counts none of the batch (none names a
/// lease), so its `XDEL`s must not go: they would remove waiting jobs
/// (complete_batch.lua's rule: a range `XACK` did not count in full is not
/// deleted; a later trim or the sweep removes what of it was acked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_batch_never_deletes_a_waiting_job_that_took_one_of_its_ids() {
    late_batch_after_colliding_restart(14, false).await;
}

/// The same with eleven acks: a batch that small goes as a plain `XACK`,
/// and its `XDEL` waits for the next read and `XACK`'s count, by the same
/// rule (before, `XACK` + `XDEL` in one pipeline deleted whatever the ids
/// named).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_small_batch_never_deletes_a_waiting_job_that_took_one_of_its_ids() {
    late_batch_after_colliding_restart(11, false).await;
}

/// The same with completions that reply: a lone one (`reply_and_ack.lua`),
/// and batches of 3 and 14 (`complete_batch.lua`, deleting and trimming),
/// whose script the restart lost, so that they are completed again one by
/// one (`complete.lua`). Each deletes an entry only when `XACK` counted it
/// (found by an adversarial review: a lone reply's script deleted whatever
/// its id named).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_replies_never_delete_a_waiting_job_that_took_their_id() {
    for n in [1, 3, 14] {
        late_batch_after_colliding_restart(n, true).await;
    }
}

/// A backend on `server` with the queues `W` and `X` and `n` jobs on `W`.
async fn w_with_jobs(
    server: &RedisServer,
    n: usize,
) -> std::sync::Arc<dyn rpc_runtime::backend::Broker> {
    use rpc_runtime::backend::{connect, BrokerConfig};
    let backend = connect(&BrokerConfig::new(server.url()))
        .await
        .expect("connect");
    backend
        .prepare_queues(&["W".to_owned(), "X".to_owned()])
        .await
        .unwrap();
    for i in 0..n {
        backend
            .push_job("W", format!("job {i}").as_bytes())
            .await
            .unwrap();
    }
    backend
}

async fn late_batch_after_colliding_restart(n: usize, reply: bool) {
    use rpc_runtime::backend::{Completion, Delivery};
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let queue = "W";
    let idle = ["X".to_owned()];
    let backend = w_with_jobs(&server, n).await;
    let mut reader = backend.open_reader().await.unwrap();
    let stale = take_n(&mut *reader, queue, "c1", n).await;
    server.restart().unwrap();
    // The new stream: one entry older than every stale id, delivered and
    // leased, then entries that took the stale ids, waiting.
    server.cli(["XGROUP", "CREATE", JOBS, "workers", "0", "MKSTREAM"]);
    server.cli(["XADD", JOBS, "1-0", "m", "new"]);
    for d in &stale {
        server.cli(["XADD", JOBS, &d.token, "m", "new"]);
    }
    let all = entry_ids(&server, JOBS);
    let mut other = backend.open_reader().await.unwrap();
    take_n(&mut *other, queue, "c2", 1).await;
    let completion = || match reply {
        true => Completion {
            reply: Some(b"{}".to_vec()),
            reply_to: Some("rpc:inbox:{late}".to_owned()),
            ..Completion::default()
        },
        false => Completion::default(),
    };
    let acks: Vec<(Delivery, Completion)> =
        stale.iter().map(|d| (d.clone(), completion())).collect();
    let mut late = backend.open_reader().await.unwrap();
    let out = late
        .complete_and_take(&acks, &idle, "c1", 1, Duration::from_millis(10))
        .await;
    // A script lost with the restart fails the completions (`NOSCRIPT`,
    // transient): the worker completes each again on its own
    // (`complete.lua`), as here.
    for (i, e) in &out.not_completed {
        assert!(e.to_string().contains("NOSCRIPT"), "{e}");
        let (delivery, completion) = &acks[*i];
        backend.complete(delivery, completion).await.unwrap();
    }
    late.take_jobs(&idle, "c1", 1, Duration::from_millis(10))
        .await
        .unwrap();
    assert_eq!(
        entry_ids(&server, JOBS),
        all,
        "waiting jobs were deleted by a late batch's XDEL ({n} completions, replies: {reply})"
    );
}

/// A service over three shards: a slow call holds the oldest lease of one
/// shard while two workers drain a flood of one-way calls over all three,
/// and one of them stops mid-flood. Every call runs; once nothing is
/// leased, no shard's stream holds anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_streams_keep_nothing_acked() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let url = server.url();
    let seen = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let mut fleet = Vec::new();
    for k in 0..2 {
        let worker = Worker::builder(&url)
            .mount(marking(seen.clone()).shards(3))
            .consumer_name(format!("s{k}"))
            .concurrency(16)
            .heartbeat(Duration::from_millis(100), Duration::from_millis(500))
            .build()
            .await
            .expect("worker");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(worker.run_until(async move {
            let _ = rx.await;
        }));
        fleet.push((tx, task));
    }
    let client = Client::connect(&url).await.unwrap();
    client
        .send_many("W.mark", [json!({"i": 0, "ms": 1500})])
        .await
        .unwrap();
    const N: u64 = 1500;
    client
        .send_many("W.mark", (1..N).map(|i| json!({ "i": i })))
        .await
        .unwrap();
    wait_until("the flood is not drained", || {
        seen.lock().unwrap().len() >= 400
    })
    .await;
    let (tx, task) = fleet.pop().unwrap();
    tx.send(()).unwrap();
    tokio::time::timeout(PATIENCE, task)
        .await
        .expect("never stopped")
        .unwrap()
        .unwrap();
    wait_until("not every call ran", || {
        seen.lock().unwrap().len() == N as usize
    })
    .await;
    let keys = rpc_runtime::protocol::Keys::new("rpc");
    let streams: Vec<String> = (0..3)
        .map(|k| keys.jobs(&rpc_runtime::protocol::shards::queue("W", k)))
        .collect();
    for s in &streams {
        // Each shard's stream is there, with its group.
        assert!(
            server.cli(["XINFO", "GROUPS", s]).contains("workers"),
            "{s}"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lens: Vec<String> = streams
            .iter()
            .map(|s| server.cli(["XLEN", s]).trim().to_owned())
            .collect();
        if lens.iter().all(|l| l == "0") {
            break;
        }
        assert!(Instant::now() < deadline, "shards' XLEN: {lens:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (tx, task) in fleet {
        tx.send(()).unwrap();
        let _ = tokio::time::timeout(PATIENCE, task).await;
    }
}

/// A batch of 256 acks alone whose tokens are numbers without a sequence
/// (no read hands those out; a caller of the backend could): `XACK` takes
/// "99999999999255" for 99999999999255-0, so as the trim's bound it would
/// remove every entry, leased and waiting. Only an id written as Redis
/// writes it bounds a trim, in the reader and in `trim_acked.lua` (found by
/// a review: 30 of 30 entries went).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_without_a_sequence_never_bound_a_trim() {
    use rpc_runtime::backend::{Completion, Delivery};
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let queue = "W";
    let idle = ["X".to_owned()];
    let backend = w_with_jobs(&server, 30).await;
    let mut other = backend.open_reader().await.unwrap();
    take_n(&mut *other, queue, "c2", 10).await;
    let before = entry_ids(&server, JOBS);
    assert_eq!(before.len(), 30);
    let acks: Vec<(Delivery, Completion)> = (0..256)
        .map(|i| {
            let delivery = Delivery {
                queue: queue.to_owned(),
                token: format!("99999999999{i:03}"),
                payload: Vec::new(),
                deliveries: 1,
                enqueued_ms: None,
                cancelled: false,
            };
            (delivery, Completion::default())
        })
        .collect();
    let mut late = backend.open_reader().await.unwrap();
    let wait = Duration::from_millis(10);
    late.complete_and_take(&acks, &idle, "c1", 1, wait).await;
    late.take_jobs(&idle, "c1", 1, wait).await.unwrap();
    assert_eq!(entry_ids(&server, JOBS), before, "entries were trimmed");
}
