//! `trim_acked.lua` (a batch of twelve or more acks alone: `XACK` + a trim
//! up to the oldest lease; the batch's ids past it are deleted with the
//! worker's next read) with real `chaos-worker` processes: one holds the
//! oldest lease (a slow one-way job), another drains a flood of one-way
//! jobs and is SIGKILLed mid-flood, a third finishes the flood. Every job
//! runs; then nothing is leased and nothing waits, so the stream must be
//! empty (PROTOCOL.md: every entry of a jobs stream is a job not yet
//! acked). Waits are on events with generous deadlines.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use rpc_chaos::{jobs_key, pending_count, Event, WorkerProcess};
use rpc_runtime::Client;
use rpc_testkit::RedisServer;
use serde_json::json;

const PATIENCE: Duration = Duration::from_secs(60);
const FLOOD: usize = 3000;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_chaos-worker"))
}

/// The distinct `note` texts `fleet` printed so far.
fn notes(fleet: &mut [&mut WorkerProcess]) -> HashSet<String> {
    let mut all = HashSet::new();
    for w in fleet.iter_mut() {
        w.drain();
        for e in &w.seen {
            if let Event::Note(text) = e {
                all.insert(text.clone());
            }
        }
    }
    all
}

fn xlen(redis: &RedisServer) -> u64 {
    redis
        .cli(["XLEN", &jobs_key()])
        .trim()
        .parse()
        .unwrap_or(u64::MAX)
}

/// The killed worker's deferred `XDEL`s die with it: the acked entries its
/// last batch left past the held lease would stay on the stream once the
/// flood is done and the lease ended, as no later trim comes; the workers'
/// housekeeping sweeps them (`trim_acked.lua` with `+`, every beat TTL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_last_trim_leaves_nothing_on_the_stream_for_good() {
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let client = Client::connect(&url).await.unwrap();
    let mut holder =
        WorkerProcess::start(bin(), &url, &["--concurrency", "1"]).expect("the holder");
    client
        .send_many("Chaos.sleep", [json!({"ms": 1500})])
        .await
        .unwrap();
    holder
        .wait_for(PATIENCE, |e| matches!(e, Event::Start(..)))
        .expect("the slow job never started");
    // Beats living a second: a worker's housekeeping turns every second.
    let drain_args = [
        "--concurrency",
        "32",
        "--visibility-ms",
        "1000",
        "--beat-every-ms",
        "200",
        "--beat-ttl-ms",
        "1000",
    ];
    let mut killed = WorkerProcess::start(bin(), &url, &drain_args).expect("the first drainer");
    client
        .send_many(
            "Chaos.note",
            (0..FLOOD).map(|i| json!({"text": i.to_string()})),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while notes(&mut [&mut killed]).len() < 300 {
        assert!(Instant::now() < deadline, "the flood is not drained");
        std::thread::sleep(Duration::from_millis(5));
    }
    killed.child.sigkill().unwrap();
    let _ = killed.child.wait();
    let mut second = WorkerProcess::start(bin(), &url, &drain_args).expect("the second drainer");
    // Every note runs (the killed worker's leased ones once their leases
    // lapse), the slow job ends, nothing is leased. The holder serves the
    // service too: once its slow job ends it may take notes of a flood not
    // yet drained (a loaded machine), and those count as well.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let ran = notes(&mut [&mut holder, &mut killed, &mut second]).len();
        if ran == FLOOD && pending_count(&redis) == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{ran} of {FLOOD} ran, {} leased",
            pending_count(&redis)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Whatever a live worker still owes goes with its next read, within a
    // second of idle reading; anything else within a few housekeeping
    // turns.
    let deadline = Instant::now() + Duration::from_secs(10);
    while xlen(&redis) > 0 {
        assert!(
            Instant::now() < deadline,
            "nothing leased, nothing waiting, yet {} acked entries stay on the stream",
            xlen(&redis)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(holder);
}

/// A worker frozen (SIGSTOP) mid-flood with slow and fast one-way calls
/// leased past its visibility timeout: another worker takes them over
/// (its leases are older than the batches around them); thawed, the first
/// completes its batch late (`XACK` of leases now the other's, a trim).
/// Every call runs, and once nothing is leased nothing stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_worker_thawed_after_a_takeover_loses_no_call_and_leaves_nothing() {
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let client = Client::connect(&url).await.unwrap();
    let args = [
        "--concurrency",
        "16",
        "--visibility-ms",
        "600",
        "--beat-every-ms",
        "200",
        "--beat-ttl-ms",
        "1000",
    ];
    let mut frozen = WorkerProcess::start(bin(), &url, &args).expect("the first worker");
    let mut other = WorkerProcess::start(bin(), &url, &args).expect("the second worker");
    // Notes, and between them slow sleeps (one-way too).
    let n = 1200;
    client
        .send_many("Chaos.note", (0..n).map(|i| json!({"text": i.to_string()})))
        .await
        .unwrap();
    client
        .send_many("Chaos.sleep", (0..16).map(|_| json!({"ms": 300})))
        .await
        .unwrap();
    client
        .send_many(
            "Chaos.note",
            (n..2 * n).map(|i| json!({"text": i.to_string()})),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while notes(&mut [&mut frozen]).len() < 200 {
        assert!(Instant::now() < deadline, "the first worker ran nothing");
        std::thread::sleep(Duration::from_millis(2));
    }
    frozen.child.sigstop().unwrap();
    // The other takes over what the frozen one held.
    other
        .wait_for(PATIENCE, |e| matches!(e, Event::Redelivered(..)))
        .expect("nothing taken over");
    frozen.child.sigcont().unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let ran = notes(&mut [&mut frozen, &mut other]).len();
        if ran == 2 * n && pending_count(&redis) == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{ran} of {} ran, {} leased",
            2 * n,
            pending_count(&redis)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while xlen(&redis) > 0 {
        assert!(
            Instant::now() < deadline,
            "nothing leased, nothing waiting, yet {} entries stay on the stream",
            xlen(&redis)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
