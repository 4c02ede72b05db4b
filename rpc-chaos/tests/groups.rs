//! Per-key concurrency across a crash (docs/PROTOCOL.md, "Per-key
//! concurrency"): the slot of a `chaos-worker` SIGKILLed mid-job is not
//! handed on while its lease lives, and comes back after the visibility
//! timeout, so the key's parked call runs on another worker. Waits are on
//! events (a worker's `start` line, keys in Redis) with generous deadlines.

use std::path::Path;
use std::time::{Duration, Instant};

use rpc_chaos::{Event, WorkerProcess};
use rpc_runtime::{CallOptions, Client};
use rpc_testkit::RedisServer;
use serde_json::json;

const PATIENCE: Duration = Duration::from_secs(60);

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_chaos-worker"))
}

/// Waits (up to [`PATIENCE`]) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(t0.elapsed() < PATIENCE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_group_slot_comes_back_after_the_visibility_timeout() {
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let args = ["--visibility-ms", "1000", "--group-limit", "Chaos.sleep=1"];
    let mut a = WorkerProcess::start(bin(), &url, &args).expect("worker a");
    let client = Client::connect(&url).await.unwrap();
    // The first call of key `t` holds its only slot for a minute; one
    // attempt, so its redelivery after the crash is dead-lettered rather
    // than run for another minute.
    let first = client
        .send("Chaos.sleep", json!({"ms": 60_000}))
        .options(CallOptions::timeout(Duration::from_secs(30)).with_max_attempts(1))
        .group("t")
        .await
        .unwrap();
    let Event::Start(started, _) = a
        .wait_for(PATIENCE, |e| matches!(e, Event::Start(..)))
        .unwrap()
    else {
        unreachable!()
    };
    assert_eq!(started, first.to_string());
    let second = client
        .send("Chaos.sleep", json!({"ms": 0}))
        .group("t")
        .await
        .unwrap();
    let waiting = "rpc:{Chaos}:group:sleep:t:waiting";
    let running = "rpc:{Chaos}:group:sleep:t:running";
    until("the second call to be parked", || {
        redis.cli(["LLEN", waiting]).trim() == "1"
    })
    .await;
    // The slot's lease is renewed while its job runs: it lives past one
    // visibility timeout, and the second call stays parked.
    let score = |redis: &RedisServer| -> u64 {
        let first = first.to_string();
        redis
            .cli(["ZSCORE", running, &first])
            .trim()
            .parse()
            .unwrap_or(0)
    };
    let taken = score(&redis);
    assert!(taken > 0, "the first call holds a slot");
    until("the slot's lease to be renewed", || {
        score(&redis) > taken + 500
    })
    .await;
    assert_eq!(redis.cli(["LLEN", waiting]).trim(), "1");
    assert!(
        !a.drain()
            .iter()
            .any(|e| matches!(e, Event::Start(id, _) if *id == second.to_string())),
        "the second call ran while the first held the key's only slot"
    );

    a.child.sigkill().unwrap();
    let killed = Instant::now();
    let mut b = WorkerProcess::start(bin(), &url, &args).expect("worker b");
    let second_id = second.to_string();
    b.wait_for(
        PATIENCE,
        |e| matches!(e, Event::Start(id, _) if *id == second_id),
    )
    .expect("the parked call runs on another worker");
    let after = killed.elapsed();
    eprintln!("the parked call started {after:?} after its key's slot holder was killed");
    // Not before the dead holder's slot lapsed: renewed every third of the
    // visibility timeout, it lives at least two thirds of it past the kill.
    assert!(after >= Duration::from_millis(600), "{after:?}");
    // Nothing is left: the slot handed on was given back.
    until("the key's state to be gone", || {
        redis.cli(["EXISTS", running, waiting]).trim() == "0"
    })
    .await;
}
