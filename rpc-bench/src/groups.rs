//! `--jobs-group`: what a group key costs a background job (docs/PROTOCOL.md,
//! "Per-key concurrency"). The same one-way jobs drained three ways by one
//! in-process worker on the bench's redis-server: plain; keyed over many
//! keys with a limit the worker never reaches (the cost of taking and giving
//! back a slot, two scripts a job); and keyed over a few keys with a low
//! limit (calls parked and handed on as slots free). Each row gives the
//! rate, Redis's CPU and commands per job; the plain row is the path every
//! unkeyed job takes, unchanged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rpc_runtime::{Client, DynamicService, Worker};
use rpc_testkit::RedisServer;
use serde_json::json;

use crate::redis_stats::{RedisCost, RedisStats};

/// Jobs run at once by the worker.
const CONCURRENCY: usize = 64;
/// Jobs sent per batch.
const CHUNK: usize = 1_000;

/// One way of draining the jobs.
struct Shape {
    name: &'static str,
    /// Distinct group keys (0: no key).
    keys: usize,
    /// The per-key limit.
    limit: u32,
}

const SHAPES: [Shape; 3] = [
    Shape {
        name: "plain",
        keys: 0,
        limit: 1,
    },
    Shape {
        name: "keyed, 1,000 keys, limit 64 (never parked)",
        keys: 1_000,
        limit: 64,
    },
    Shape {
        name: "keyed, 8 keys, limit 4 (parked, handed on)",
        keys: 8,
        limit: 4,
    },
];

/// Drains `jobs` one-way jobs each way and prints a row per way.
pub async fn run(server: &RedisServer, quick: bool) -> Result<(), String> {
    let jobs: u64 = if quick { 2_000 } else { 20_000 };
    let url = server.url();
    let redis = redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
    let mut con = redis
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    println!("| jobs drained ({jobs}, {CONCURRENCY} at once, one worker) | jobs/s | Redis CPU µs/job | commands/job |");
    println!("|---|---:|---:|---:|");
    let mut plain: Option<(f64, RedisCost)> = None;
    for (round, shape) in SHAPES.iter().enumerate() {
        let service = format!("BenchGroups{round}");
        let (rate, cost) = drain(&url, &service, shape, jobs, &mut con).await?;
        let versus = match &plain {
            Some((rate0, cost0)) => format!(
                " ({:+.0} % rate, {:+.1} µs CPU)",
                (rate / rate0 - 1.0) * 100.0,
                cost.cpu_us - cost0.cpu_us
            ),
            None => String::new(),
        };
        println!(
            "| {}{versus} | {rate:.0} | {:.1} | {:.2} |",
            shape.name,
            cost.cpu_us,
            cost.total_commands()
        );
        eprintln!("  {}: {}", shape.name, cost.describe());
        if plain.is_none() {
            plain = Some((rate, cost));
        }
    }
    Ok(())
}

async fn drain(
    url: &str,
    service: &str,
    shape: &Shape,
    jobs: u64,
    con: &mut redis::aio::MultiplexedConnection,
) -> Result<(f64, RedisCost), String> {
    let done = Arc::new(AtomicU64::new(0));
    let counted = done.clone();
    let handler = DynamicService::new(service).job("noop", move |_req| {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::Relaxed);
            Ok(serde_json::Value::Null)
        }
    });
    let job = format!("{service}.noop");
    let worker = Worker::builder(url)
        .mount(handler)
        .concurrency(CONCURRENCY)
        .group_limit(&job, shape.limit)
        .build()
        .await
        .map_err(|e| format!("worker: {e}"))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run_until(async move {
        let _ = stopped.await;
    }));
    let client = Client::connect(url).await.map_err(|e| e.to_string())?;
    let before = RedisStats::read(con).await?;
    let t0 = Instant::now();
    let mut sent = 0u64;
    while sent < jobs {
        let n = (jobs - sent).min(CHUNK as u64);
        let mut batch = client.batch();
        for i in sent..sent + n {
            let call = client.send(&job, json!({}));
            batch.push(match shape.keys {
                0 => call,
                keys => call.group(format!("k{}", i as usize % keys)),
            });
        }
        batch.await.map_err(|e| format!("send: {e}"))?;
        sent += n;
    }
    let patience = Instant::now() + Duration::from_secs(600);
    while done.load(Ordering::Relaxed) < jobs {
        if Instant::now() > patience {
            return Err(format!(
                "{}: only {} of {jobs} jobs ran",
                shape.name,
                done.load(Ordering::Relaxed)
            ));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let took = t0.elapsed();
    let after = RedisStats::read(con).await?;
    let _ = stop.send(());
    running
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("worker: {e}"))?;
    Ok((jobs as f64 / took.as_secs_f64(), before.per(&after, jobs)))
}
