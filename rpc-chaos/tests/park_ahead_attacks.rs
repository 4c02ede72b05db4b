//! Parking ahead (docs/PROTOCOL.md, "Per-key concurrency") with real
//! `chaos-worker` processes, one SIGKILLed in the middle of two keys'
//! floods: every call runs (a second time only for the killed worker's
//! own, redelivered), and no key ever has two calls running at once.
//! Waits are on events (the workers' `ran` lines, keys in Redis) with
//! generous deadlines.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use rpc_chaos::{Event, WorkerProcess};
use rpc_runtime::Client;
use rpc_testkit::RedisServer;
use serde_json::json;

const PATIENCE: Duration = Duration::from_secs(60);

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_chaos-worker"))
}

/// Every `ran` event so far of `fleet`: (id, attempt, start µs).
fn ran(fleet: &mut [WorkerProcess]) -> Vec<(String, u32, u64)> {
    let mut all = Vec::new();
    for w in fleet.iter_mut() {
        w.drain();
        for e in &w.seen {
            if let Event::Ran { id, attempt, at_us } = e {
                all.push((id.clone(), *attempt, *at_us));
            }
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_limit_holds_and_every_call_runs_when_a_worker_is_killed_mid_flood() {
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let args = [
        "--visibility-ms",
        "1000",
        "--concurrency",
        "4",
        "--group-limit",
        "Chaos.record=1",
    ];
    let mut fleet = WorkerProcess::start_fleet(bin(), &url, &args, 3).expect("fleet");
    let client = Client::connect(&url).await.unwrap();
    // Two floods of 40 calls of 20 ms, one per key, sent one behind the
    // other: the workers park them ahead, a hundred at a time.
    let mut key_of = HashMap::new();
    for key in ["a", "b"] {
        let params = (0..40).map(|i| json!({"ms": 20, "i": i}));
        let ids = client
            .send_many("Chaos.record", params)
            .group(key)
            .await
            .unwrap();
        for id in ids {
            key_of.insert(id.to_string(), key);
        }
    }
    let t0 = Instant::now();
    while ran(&mut fleet).len() < 10 {
        assert!(
            t0.elapsed() < PATIENCE,
            "timed out waiting for 10 calls to run"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let killed_ran: HashSet<String> = {
        let victim = &mut fleet[0];
        victim.child.sigkill().unwrap();
        victim.drain();
        victim
            .seen
            .iter()
            .filter_map(|e| match e {
                Event::Ran { id, .. } => Some(id.clone()),
                _ => None,
            })
            .collect()
    };
    fleet.push(WorkerProcess::start(bin(), &url, &args).expect("replacement"));
    let t0 = Instant::now();
    loop {
        let ids: HashSet<String> = ran(&mut fleet).into_iter().map(|(id, _, _)| id).collect();
        if ids.len() == key_of.len() {
            break;
        }
        assert!(
            t0.elapsed() < PATIENCE,
            "{} of {} calls ran",
            ids.len(),
            key_of.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let all = ran(&mut fleet);
    // Only the killed worker's calls run twice.
    let mut runs: HashMap<&str, usize> = HashMap::new();
    for (id, _, _) in &all {
        *runs.entry(id.as_str()).or_default() += 1;
    }
    for (id, n) in &runs {
        assert!(
            *n == 1 || killed_ran.contains(*id),
            "call {id} ran {n} times, and not on the killed worker"
        );
    }
    // One at a time per key: a call starts no sooner than 20 ms (the
    // previous call's length; 2 ms of slack for the clocks' reading) after
    // the key's previous one started.
    for key in ["a", "b"] {
        let mut starts: Vec<(u64, &str)> = all
            .iter()
            .filter(|(id, _, _)| key_of[id.as_str()] == key)
            .map(|(id, _, at)| (*at, id.as_str()))
            .collect();
        starts.sort();
        for pair in starts.windows(2) {
            assert!(
                pair[1].0 >= pair[0].0 + 18_000,
                "key {key}: {} started {} µs after {}",
                pair[1].1,
                pair[1].0 - pair[0].0,
                pair[0].1
            );
        }
    }
    let t0 = Instant::now();
    while redis.cli(["KEYS", "rpc:{Chaos}:group*"]).trim() != "" {
        assert!(t0.elapsed() < PATIENCE, "group state left behind");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
