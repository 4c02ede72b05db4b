//! What a worker does when Redis refuses a job's completion, with real
//! `chaos-worker` processes and a private redis-server: a refusal that can
//! never succeed ends the job once (a dead letter with the reason) without
//! holding a concurrency slot, and a refusal that lasts only as long as
//! Redis is out of memory never acks a job whose reply was not written.
//!
//! What did not happen is shown after something that would have shown it:
//! the worker's graceful exit (its resends would be done by then), or Redis
//! having refused the worker's completions many times (`INFO errorstats`).

use std::path::Path;
use std::time::{Duration, Instant};

use rpc_chaos::{jobs_key, pending_count, timeout, Event, WorkerProcess};
use rpc_runtime::Client;
use rpc_testkit::RedisServer;
use serde_json::json;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_chaos-worker"))
}

/// How long any waited-for event may take on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// How many commands Redis has refused for want of memory
/// (`errorstat_OOM` of `INFO errorstats`).
fn oom_refusals(redis: &RedisServer) -> u64 {
    redis
        .cli(["INFO", "errorstats"])
        .lines()
        .find_map(|l| l.trim().strip_prefix("errorstat_OOM:count="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

fn dead_letters(redis: &RedisServer) -> Vec<String> {
    redis
        .cli(["XRANGE", "rpc:{Chaos}:dead", "-", "+"])
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Issue 10, point 2: four jobs whose inboxes someone overwrote with
/// strings made a `--concurrency 4` worker resend each reply, dead letter
/// and `PEXPIRE` for 30 s (35 copies of each) while holding every slot, so
/// an ordinary call took 29 s. Now each refused reply (`WRONGTYPE`) ends its
/// job once: one dead letter with the reason, acked, the strings untouched,
/// and the ordinary call is answered at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_refused_for_good_ends_the_job_once_without_holding_a_slot() {
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let mut worker =
        WorkerProcess::start(bin(), &url, &["--concurrency", "4"]).expect("chaos-worker");
    for i in 0..4 {
        let inbox = format!("rpc:inbox:{{clobbered-{i}}}");
        redis.cli(["SET", &inbox, "not a list"]);
        let message = json!({
            "v": 1, "id": format!("refused-{i}"), "job": "Chaos.square",
            "params": {"n": i}, "reply_to": inbox
        })
        .to_string();
        redis.cli(["XADD", &jobs_key(), "*", "m", &message]);
    }
    let client = Client::connect(&url).await.unwrap();
    let t0 = Instant::now();
    let r = client
        .call("Chaos.square", json!({"n": 7}))
        .options(timeout(20_000))
        .response()
        .await
        .expect("an ordinary call is answered");
    assert_eq!(r.data, json!(49));
    let took = t0.elapsed();
    // At once, not after the 29 s of resends (a far bound, for a loaded
    // machine).
    assert!(
        took < Duration::from_secs(10),
        "the ordinary call took {took:?}"
    );

    // The worker exits gracefully (finishing its completions): whatever it
    // would resend is sent by then. Then count.
    worker.child.sigterm().unwrap();
    worker
        .wait_for(PATIENCE, |e| matches!(e, Event::Stats(_)))
        .expect("a graceful exit");
    let dead = dead_letters(&redis);
    for i in 0..4 {
        let id = format!("refused-{i}");
        let copies = dead.iter().filter(|l| l.contains(&id)).count();
        assert_eq!(copies, 1, "dead letters of {id}: {dead:#?}");
        let inbox = format!("rpc:inbox:{{clobbered-{i}}}");
        assert_eq!(redis.cli(["GET", &inbox]).trim(), "not a list");
        assert_eq!(
            redis.cli(["PTTL", &inbox]).trim(),
            "-1",
            "{inbox} got a TTL"
        );
    }
    assert!(
        dead.iter().filter(|l| l.contains("WRONGTYPE")).count() >= 4,
        "the reason is given: {dead:#?}"
    );
    assert_eq!(pending_count(&redis), 0, "every job was acked");
    assert_eq!(redis.cli(["XLEN", &jobs_key()]).trim(), "0");
}

/// Issue 10, point 3: under `maxmemory` with `noeviction`, Redis refuses
/// the reply's `RPUSH` but still runs `XACK` and `XDEL` (they free memory),
/// so the jobs were acked away and 17 callers waited for nothing. Now a job
/// whose reply was refused stays leased and unacked, and once memory frees
/// every caller gets its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_refused_under_maxmemory_is_not_acked_and_arrives_once_memory_frees() {
    let redis = RedisServer::builder()
        .args(["--maxmemory-policy", "noeviction"])
        .start()
        .expect("redis");
    let url = redis.url();
    let mut worker =
        WorkerProcess::start(bin(), &url, &["--concurrency", "16"]).expect("chaos-worker");
    // Freeze the worker, queue the calls, then take Redis past its memory
    // limit before the worker reads them.
    worker.child.sigstop().unwrap();
    let client = Client::connect(&url).await.unwrap();
    let mut calls = Vec::new();
    // `Chaos.sleep` prints `start ID 1` when its handler runs: the test
    // sees each job run, and so its completion tried.
    for n in 0..10 {
        let pending = client
            .call("Chaos.sleep", json!({ "ms": 0 }))
            .send()
            .await
            .expect("queued");
        calls.push((n, pending));
    }
    assert_eq!(redis.cli(["XLEN", &jobs_key()]).trim(), "10");
    redis.cli(["CONFIG", "SET", "maxmemory", "1"]);
    worker.child.sigcont().unwrap();

    // The worker takes and runs the jobs, but no reply can be written: none
    // may be acked.
    let t0 = Instant::now();
    while pending_count(&redis) < 10 {
        assert!(t0.elapsed() < PATIENCE, "the worker never took the jobs");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ran = |w: &mut WorkerProcess| {
        w.drain()
            .iter()
            .filter(|e| matches!(e, Event::Start(..)))
            .count()
    };
    let t0 = Instant::now();
    while ran(&mut worker) < 10 {
        assert!(t0.elapsed() < PATIENCE, "the jobs never all ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // All ran, so each completion was tried; then until Redis has refused
    // the worker's writes 20 more times (its completions retried, its
    // polls): the worker has had every chance to ack a job anyway.
    let refused_before = oom_refusals(&redis);
    let t0 = Instant::now();
    while oom_refusals(&redis) < refused_before + 20 {
        assert!(
            t0.elapsed() < PATIENCE,
            "the worker never tried to complete the jobs ({} refusals)",
            oom_refusals(&redis) - refused_before
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        pending_count(&redis),
        10,
        "a job was acked without its reply"
    );
    assert_eq!(
        redis.cli(["XLEN", &jobs_key()]).trim(),
        "10",
        "a job was deleted"
    );
    assert_eq!(redis.cli(["EXISTS", "rpc:{Chaos}:dead"]).trim(), "0");

    // Memory frees: every caller gets its answer.
    redis.cli(["CONFIG", "SET", "maxmemory", "0"]);
    for (n, pending) in calls {
        let answer = tokio::time::timeout(PATIENCE, pending.wait())
            .await
            .expect("answered once memory freed")
            .expect("the right answer");
        assert_eq!(answer["attempt"], json!(1), "call {n}: {answer}");
    }
    let t0 = Instant::now();
    while pending_count(&redis) != 0 {
        assert!(t0.elapsed() < PATIENCE, "leases left behind");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
