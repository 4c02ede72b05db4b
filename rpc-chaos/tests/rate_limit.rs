//! A rate limit is global across the fleet: four `chaos-worker` processes
//! limited to 50 starts a second of `Chaos.record`, a backlog of jobs sent
//! at once. The promise (docs/PROTOCOL.md, "Rate limits"): no start comes
//! before its turn (the k-th start is at least k intervals after the
//! first), every job runs exactly once, waiting for a turn is no attempt,
//! and a 1 s window of starts holds 50 within 10% when the fleet keeps up
//! with its turns. A call that comes back late for its turn starts as soon
//! as it is back, so on a machine too loaded to move calls on time a window
//! may hold up to `50 × (1 + lateness / 1 s)`: the test measures the
//! lateness (how far the k-th start is after the k-th turn) and holds the
//! windows to that bound, never looser than 10% on a machine that keeps up.
//!
//! Each start is read by the handler from this machine's clock, the clock
//! the private redis-server's `TIME` (which the limiter counts on) reads
//! too. `RATE_LIMIT_JOBS` sets the backlog (250 here, five seconds; the
//! issue's figure, 1,000, is `RATE_LIMIT_JOBS=1000`).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rpc_chaos::{pending_count, Event, WorkerProcess};
use rpc_runtime::Client;
use rpc_testkit::RedisServer;
use serde_json::json;

/// The limit, and the spacing of starts it makes.
const RATE: &str = "Chaos.record=50/s";
const PER_SECOND: usize = 50;
const INTERVAL_US: u64 = 20_000;
/// How late the first start may be seen after its turn (µs): the handler
/// reads the clock a little after the limiter let it start.
const FIRST_START_SLACK_US: u64 = 50_000;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_chaos-worker"))
}

fn jobs() -> usize {
    std::env::var("RATE_LIMIT_JOBS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(250)
}

/// Every start printed so far, by call id: (attempt, µs).
fn starts_of(processes: &mut [WorkerProcess]) -> HashMap<String, Vec<(u32, u64)>> {
    let mut starts: HashMap<String, Vec<(u32, u64)>> = HashMap::new();
    for process in processes {
        for event in process.drain() {
            if let Event::Ran { id, attempt, at_us } = event {
                starts
                    .entry(id.clone())
                    .or_default()
                    .push((*attempt, *at_us));
            }
        }
    }
    starts
}

/// The most and fewest starts in any 1 s window that opens at a start; the
/// fewest only over windows that close before the last start (a window
/// past the end of the backlog is short of starts for want of jobs).
fn window_counts(sorted_us: &[u64]) -> (usize, usize) {
    let last = *sorted_us.last().expect("some starts");
    let (mut most, mut fewest) = (0, usize::MAX);
    for (i, &open) in sorted_us.iter().enumerate() {
        let n = sorted_us[i..].partition_point(|&t| t < open + 1_000_000);
        most = most.max(n);
        if open + 1_000_000 <= last {
            fewest = fewest.min(n);
        }
    }
    (most, fewest)
}

// Reproduces: a fleet-wide limit (not per worker), with a backlog spread
// one interval apart instead of retried in a herd.
#[test]
fn four_workers_share_one_limit_of_50_a_second() {
    let jobs = jobs();
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let args = ["--rate-limits", RATE, "--concurrency", "16"];
    let mut workers = WorkerProcess::start_fleet(bin(), &url, &args, 4).expect("workers ready");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let ids: Vec<String> = rt.block_on(async {
        let client = Client::connect(&url).await.expect("client");
        futures_util::stream::iter(0..jobs)
            .map(|_| {
                let client = client.clone();
                async move {
                    let id = client
                        .send("Chaos.record", json!({"ms": 0}))
                        .await
                        .expect("send a job");
                    id.as_str().to_owned()
                }
            })
            .buffer_unordered(64)
            .collect()
            .await
    });
    let sent = Instant::now();

    // The backlog takes jobs / 50 seconds; a minute more is generous.
    let give_up = sent + Duration::from_secs((jobs / PER_SECOND) as u64 + 60);
    let starts = loop {
        let starts = starts_of(&mut workers);
        if ids.iter().all(|id| starts.contains_key(id)) && pending_count(&redis) == 0 {
            break starts;
        }
        assert!(
            Instant::now() < give_up,
            "{} of {jobs} jobs started within {:?}",
            starts.len(),
            sent.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    };

    let mut times: Vec<u64> = Vec::with_capacity(jobs);
    for id in &ids {
        let list = &starts[id];
        assert_eq!(list.len(), 1, "{id} started {} times: {list:?}", list.len());
        assert_eq!(
            list[0].0, 1,
            "{id}: waiting for its turn counted as an attempt"
        );
        times.push(list[0].1);
    }
    times.sort_unstable();
    let (most, fewest) = window_counts(&times);
    let span_s = (times[jobs - 1] - times[0]) as f64 / 1e6;
    let rate = (jobs - 1) as f64 / span_s;
    let early: Vec<(usize, u64)> = times
        .iter()
        .enumerate()
        .filter(|&(k, &t)| t + FIRST_START_SLACK_US < times[0] + k as u64 * INTERVAL_US)
        .map(|(k, &t)| (k, t - times[0]))
        .take(5)
        .collect();
    // How late the latest start was after its turn (the k-th turn is k
    // intervals after the first start, every call having asked at once).
    let lateness_us = times
        .iter()
        .enumerate()
        .map(|(k, &t)| t.saturating_sub(times[0] + k as u64 * INTERVAL_US))
        .max()
        .unwrap_or(0);
    eprintln!(
        "rate limit: {jobs} jobs over {span_s:.2} s, {rate:.1} starts/s; 1 s windows: most {most}, fewest {fewest} (limit {PER_SECOND}); latest start {:.1} ms after its turn",
        lateness_us as f64 / 1e3
    );
    assert!(
        early.is_empty(),
        "starts before their turn (k, µs after the first): {early:?}"
    );
    // 10%, or what the calls' lateness allows when the machine could not
    // move them on time (see the module's docs).
    let late_allowance = (PER_SECOND as u64 * lateness_us).div_ceil(1_000_000) as usize + 1;
    let margin = (PER_SECOND / 10).max(late_allowance);
    assert!(
        most <= PER_SECOND + margin,
        "a 1 s window held {most} starts, over {} (the latest start was {lateness_us} µs after its turn)",
        PER_SECOND + margin
    );
    if jobs >= 2 * PER_SECOND {
        assert!(
            fewest + margin >= PER_SECOND,
            "a 1 s window inside the run held {fewest} starts, under {} (the latest start was {lateness_us} µs after its turn)",
            PER_SECOND - margin
        );
    }
}
