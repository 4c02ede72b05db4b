//! A worker of concurrency 1 takes over a dead worker's job. Its only slot
//! is held by its taker while that waits for new jobs, so the janitor used
//! to find no free slot and never took over anything (found by an
//! adversarial review): a fleet of single-slot workers left a SIGKILLed
//! worker's job to its caller's timeout. Now the job taken over waits for
//! the slot the taker gives back within a second.

use std::path::Path;
use std::time::{Duration, Instant};

use rpc_chaos::{timeout, Event, WorkerProcess};
use rpc_runtime::Client;
use rpc_testkit::RedisServer;
use serde_json::json;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_chaos-worker"))
}

fn starts(w: &WorkerProcess) -> usize {
    w.seen
        .iter()
        .filter(|e| matches!(e, Event::Start(..)))
        .count()
}

// Reproduces: a single-slot worker never reclaims a SIGKILLed worker's job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_slot_worker_takes_over_a_killed_workers_job() {
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let args = ["--visibility-ms", "1000", "--concurrency", "1"];
    let mut fleet = WorkerProcess::start_fleet(bin(), &url, &args, 2).expect("workers ready");
    let client = Client::connect(&url).await.unwrap();
    let caller = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .call("Chaos.sleep", json!({"ms": 60_000}))
                .options(timeout(60_000))
                .response()
                .await
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let runner = loop {
        for w in fleet.iter_mut() {
            w.drain();
        }
        if let Some(i) = fleet.iter().position(|w| starts(w) > 0) {
            break i;
        }
        assert!(Instant::now() < deadline, "the job never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut other = fleet.remove(1 - runner);
    let killed = fleet.remove(0);
    killed.child.sigkill().expect("SIGKILL the runner");
    let at = Instant::now();
    let took_over = other.wait_for(
        Duration::from_secs(30),
        |e| matches!(e, Event::Start(_, attempt) if *attempt >= 2),
    );
    eprintln!(
        "single-slot takeover: {:?} after {:?} (visibility timeout 1 s)",
        took_over.as_ref().map(|_| "started again"),
        at.elapsed()
    );
    assert!(
        took_over.is_ok(),
        "the killed worker's job was never taken over"
    );
    other.child.sigkill().expect("stop the other");
    caller.abort();
}
