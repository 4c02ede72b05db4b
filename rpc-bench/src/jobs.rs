//! `--jobs`: background jobs against the hand-written stream floor
//! ([`crate::jobs_floor`]), in one run against one private redis-server.
//!
//! What is measured, floor and runtime alternately, each with Redis's CPU
//! time and commands per job read from `INFO` over the same window
//! ([`crate::redis_stats`]):
//!
//! * enqueue one at a time: one sender, each send awaited (floor: `XADD`;
//!   runtime: a one-way typed send), no worker running;
//! * enqueue with 64 in flight: 64 senders on one client (floor: 64 tasks
//!   on one multiplexed connection), the figure pooled over the backlogs
//!   below, which it builds;
//! * enqueue in bulk: the floor's 1,000 `XADD`s per pipeline; the
//!   runtime's one `OneWayBatch` of typed calls (sent in round trips of up
//!   to 1,000 jobs);
//! * drain: a backlog of `--jobs-backlog` jobs (default 100,000) worked off
//!   by one worker process at concurrency 1, 16 and 100, timed from the
//!   worker's `ready` to the last job acked (runtime: the stream is empty,
//!   each job being acked and deleted; floor: the group has read and acked
//!   every entry), polled every 5 ms.
//!
//! The runtime's calls carry a one-hour timeout here, so no job of a long
//! backlog expires before it is run (an expired job would take the cheaper
//! path of being skipped).

use std::future::Future;

use serde::Serialize;

use super::*;
use crate::jobs_floor::{self, FloorEnqueuer};
use crate::measure::{fixed_count, TypedSender};
use crate::redis_stats::{CostPool, RedisCost, RedisStats};

/// Worker concurrencies of the drain figures.
const DRAIN_CONCURRENCY: [usize; 3] = [1, 16, 100];
/// Senders at once for the "in flight" enqueue figure.
const ENQUEUE_IN_FLIGHT: usize = 64;
/// How often the bench looks whether a backlog is drained.
const DRAIN_POLL: Duration = Duration::from_millis(5);
/// How long a drain may take before the bench gives up.
const DRAIN_LIMIT: Duration = Duration::from_secs(600);

/// How many jobs each figure of a `--jobs` run takes, and the floor's
/// message size.
pub struct JobsPlan {
    pub one_at_a_time: u64,
    pub backlog: u64,
    pub floor_bytes: FloorBytes,
}

/// The size of the floor's messages (`--jobs-floor-bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloorBytes {
    /// As they are, about 13 bytes.
    Unpadded,
    /// The size of the runtime's message for the same job.
    Same,
    /// Padded to this many bytes.
    Exactly(usize),
}

impl FloorBytes {
    /// `--jobs-floor-bytes`: absent, `same`, or a number.
    pub fn parse(arg: Option<&str>) -> Result<FloorBytes, String> {
        match arg {
            None => Ok(FloorBytes::Unpadded),
            Some("same") => Ok(FloorBytes::Same),
            Some(n) => n
                .parse()
                .map(FloorBytes::Exactly)
                .map_err(|_| format!("--jobs-floor-bytes: `{n}` is neither a number nor `same`")),
        }
    }
}

impl JobsPlan {
    pub fn new(quick: bool, backlog: Option<u64>) -> JobsPlan {
        let mut plan = if quick {
            JobsPlan {
                one_at_a_time: 200,
                backlog: 500,
                floor_bytes: FloorBytes::Unpadded,
            }
        } else {
            JobsPlan {
                one_at_a_time: 10_000,
                backlog: 100_000,
                floor_bytes: FloorBytes::Unpadded,
            }
        };
        if let Some(n) = backlog {
            plan.backlog = n.max(1);
        }
        plan
    }
}

/// One side's figure: a rate and what Redis did for it.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    /// Jobs per second.
    pub rate: f64,
    /// Redis CPU time and commands per job.
    pub redis: RedisCost,
    /// CPU time per job of the worker process (drain figures only), µs.
    pub worker_cpu_us: Option<f64>,
}

/// One figure, the runtime's side by side with the floor's.
#[derive(Debug, Clone, Serialize)]
pub struct JobsRow {
    pub metric: String,
    pub jobs: u64,
    pub floor: Side,
    /// `None`: not measured, `missing` says why.
    pub rpc: Option<Side>,
    pub missing: Option<String>,
}

impl JobsRow {
    /// The runtime's rate over the floor's.
    pub fn rate_ratio(&self) -> Option<f64> {
        self.rpc.as_ref().map(|r| r.rate / self.floor.rate)
    }

    /// The runtime's Redis CPU per job over the floor's.
    pub fn cpu_ratio(&self) -> Option<f64> {
        self.rpc
            .as_ref()
            .map(|r| r.redis.cpu_us / self.floor.redis.cpu_us)
    }
}

/// Everything a `--jobs` run measured.
#[derive(Debug, Clone, Serialize)]
pub struct JobsReport {
    pub machine: Machine,
    pub command: String,
    pub backlog: u64,
    /// The size of the floor's messages, and of the runtime's, in bytes.
    pub floor_message_bytes: usize,
    pub rpc_message_bytes: usize,
    pub rows: Vec<JobsRow>,
    pub targets: Vec<Target>,
}

impl JobsReport {
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut out = format!(
            "Machine: {} CPUs ({}), {} RAM, redis-server {}. Command: `{}`. Messages: the floor's {} bytes, the runtime's {}.\n\n",
            m.nproc, m.cpu_model, m.mem_total, m.redis, self.command, self.floor_message_bytes, self.rpc_message_bytes
        );
        out.push_str(
            "| figure (jobs/s, higher is better) | floor (raw Redis) | rpc-runtime | ratio | Redis CPU per job, floor / rpc (µs) | ratio | worker CPU per job, floor / rpc (µs) |\n|---|---:|---:|---:|---:|---:|---:|\n",
        );
        for r in &self.rows {
            let (rpc, ratio, cpu, cpu_ratio) = match &r.rpc {
                Some(s) => (
                    format!("{:.0}", s.rate),
                    format!("{:.2}x", r.rate_ratio().unwrap_or(f64::NAN)),
                    format!("{:.1} / {:.1}", r.floor.redis.cpu_us, s.redis.cpu_us),
                    format!("{:.2}x", r.cpu_ratio().unwrap_or(f64::NAN)),
                ),
                None => (
                    format!(
                        "missing: {}",
                        r.missing.as_deref().unwrap_or("not measured")
                    ),
                    "-".to_owned(),
                    format!("{:.1} / -", r.floor.redis.cpu_us),
                    "-".to_owned(),
                ),
            };
            let worker = match (
                r.floor.worker_cpu_us,
                r.rpc.as_ref().and_then(|s| s.worker_cpu_us),
            ) {
                (Some(f), Some(t)) => format!("{f:.1} / {t:.1}"),
                _ => "-".to_owned(),
            };
            out.push_str(&format!(
                "| {}, {} jobs | {:.0} | {rpc} | {ratio} | {cpu} | {cpu_ratio} | {worker} |\n",
                r.metric, r.jobs, r.floor.rate
            ));
        }
        out.push_str("\nRedis commands per job, and Redis's time in each per job (`INFO commandstats`; a script's time includes the commands it runs, which are also counted under their own names):\n\n| figure | floor | rpc-runtime |\n|---|---|---|\n");
        for r in &self.rows {
            out.push_str(&format!(
                "| {} | {} | {} |\n",
                r.metric,
                r.floor.redis.describe(),
                r.rpc
                    .as_ref()
                    .map_or("-".to_owned(), |s| s.redis.describe())
            ));
        }
        out.push_str(&crate::report::targets_markdown(&self.targets));
        out
    }
}

/// Runs `work` (which handles `jobs` jobs) and returns its rate and what
/// Redis did meanwhile, per job.
async fn measured<T, F>(stats: &mut Stats, jobs: u64, work: F) -> Result<(Side, T), String>
where
    F: Future<Output = Result<T, String>>,
{
    let before = RedisStats::read(&mut stats.0).await?;
    let started = Instant::now();
    let out = work.await?;
    let took = started.elapsed();
    let after = RedisStats::read(&mut stats.0).await?;
    Ok((
        Side {
            rate: jobs as f64 / took.as_secs_f64(),
            redis: before.per(&after, jobs),
            worker_cpu_us: None,
        },
        out,
    ))
}

/// The bench's own connection, for `INFO`, polls and deletes.
struct Stats(redis::aio::MultiplexedConnection);

impl Stats {
    async fn del(&mut self, key: &str) -> Result<(), String> {
        redis::cmd("DEL")
            .arg(key)
            .query_async::<()>(&mut self.0)
            .await
            .map_err(|e| format!("DEL {key}: {e}"))
    }

    /// The size of the `m` field of a stream's first entry.
    async fn first_message_len(&mut self, key: &str) -> Result<usize, String> {
        let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(key)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.0)
            .await
            .map_err(|e| format!("XRANGE {key}: {e}"))?;
        match entries.ids.first().and_then(|e| e.map.get("m")) {
            Some(redis::Value::BulkString(m)) => Ok(m.len()),
            _ => Err(format!("{key}: no message to measure")),
        }
    }

    async fn xlen(&mut self, key: &str) -> Result<u64, String> {
        redis::cmd("XLEN")
            .arg(key)
            .query_async(&mut self.0)
            .await
            .map_err(|e| format!("XLEN {key}: {e}"))
    }
}

/// A floor enqueuer as a [`Caller`]: each call is one `XADD`, awaited.
impl Caller for FloorEnqueuer {
    async fn call(&mut self, n: u64) -> Result<(), String> {
        self.enqueue(n).await
    }
}

/// Pools several measurements of one figure: total jobs over total time,
/// Redis's work per job weighted by jobs.
#[derive(Default)]
struct Pool {
    jobs: u64,
    secs: f64,
    redis: CostPool,
}

impl Pool {
    fn add(&mut self, jobs: u64, side: &Side) {
        self.jobs += jobs;
        self.secs += jobs as f64 / side.rate;
        self.redis.add(&side.redis, jobs);
    }

    fn side(&self) -> Side {
        Side {
            rate: self.jobs as f64 / self.secs,
            redis: self.redis.cost(),
            worker_cpu_us: None,
        }
    }
}

pub async fn run(
    server: &RedisServer,
    plan: JobsPlan,
    json: Option<&std::path::Path>,
    machine: Machine,
    command: String,
) -> Result<(), String> {
    let url = server.url();
    let mut stats = Stats(
        floor::blocking_connection(&url)
            .await
            .map_err(|e| format!("stats connection: {e}"))?,
    );
    let client = Client::builder(url.clone())
        .default_timeout(Duration::from_secs(3600))
        .connect()
        .await
        .map_err(|e| format!("client: {e}"))?;
    let typed = BenchClient::new(client);
    let typed_key = typed::jobs_key();
    // One job's message, to know its size.
    typed
        .note(0)
        .await
        .map_err(|e| format!("a one-way send: {e}"))?;
    let rpc_message_bytes = stats.first_message_len(&typed_key).await?;
    stats.del(&typed_key).await?;
    let floor_bytes = match plan.floor_bytes {
        FloorBytes::Unpadded => 0,
        FloorBytes::Same => rpc_message_bytes,
        FloorBytes::Exactly(n) => n,
    };
    let floor_enqueuer = FloorEnqueuer::connect(&url, floor_bytes).await?;
    floor_enqueuer.clone().enqueue(0).await?;
    let floor_message_bytes = stats.first_message_len(jobs_floor::STREAM).await?;
    stats.del(jobs_floor::STREAM).await?;
    let mut rows = Vec::new();

    // One at a time, no worker running.
    let n = plan.one_at_a_time;
    say(&format!("jobs: enqueue one at a time, {n} jobs each"));
    let (floor, _) = measured(&mut stats, n, fixed_count(vec![floor_enqueuer.clone()], n)).await?;
    let (rpc, _) = measured(
        &mut stats,
        n,
        fixed_count(vec![TypedSender(typed.clone())], n),
    )
    .await?;
    stats.del(jobs_floor::STREAM).await?;
    stats.del(&typed_key).await?;
    rows.push(JobsRow {
        metric: "enqueue one at a time (each send awaited)".to_owned(),
        jobs: n,
        floor,
        rpc: Some(rpc),
        missing: None,
    });

    // Bulk: the floor's pipelined XADD against one batch of typed one-way
    // calls (the runtime sends it in round trips of up to 1,000 jobs).
    let n = plan.backlog;
    say(&format!("jobs: enqueue in bulk, {n} jobs"));
    let mut bulk = floor_enqueuer.clone();
    let (floor, _) = measured(&mut stats, n, bulk.enqueue_bulk(0, n)).await?;
    stats.del(jobs_floor::STREAM).await?;
    let (rpc, ids) = measured(&mut stats, n, async {
        let batch: rpc_runtime::OneWayBatch = (0..n).map(|i| typed.note(i)).collect();
        batch.await.map_err(|e| format!("bulk send: {e}"))
    })
    .await?;
    if ids.len() as u64 != n {
        return Err(format!("bulk send: {} ids for {n} jobs", ids.len()));
    }
    stats.del(&typed_key).await?;
    let bulk_row = JobsRow {
        metric: format!(
            "enqueue in bulk (floor: {} XADDs per pipeline; rpc-runtime: one batch)",
            jobs_floor::BULK_BATCH
        ),
        jobs: n,
        floor,
        rpc: Some(rpc),
        missing: None,
    };

    // Backlogs built with 64 in flight, each drained at one concurrency.
    let (mut floor_in_flight, mut rpc_in_flight) = (Pool::default(), Pool::default());
    let mut drains = Vec::new();
    for concurrency in DRAIN_CONCURRENCY {
        say(&format!(
            "jobs: a backlog of {n} with {ENQUEUE_IN_FLIGHT} in flight, drained at concurrency {concurrency}"
        ));
        let floor_senders = vec![floor_enqueuer.clone(); ENQUEUE_IN_FLIGHT];
        let (side, _) = measured(&mut stats, n, fixed_count(floor_senders, n)).await?;
        floor_in_flight.add(n, &side);
        let floor = drain(&mut stats, &url, Kind::JobsFloor, concurrency, n).await?;
        stats.del(jobs_floor::STREAM).await?;

        let rpc_senders = (0..ENQUEUE_IN_FLIGHT)
            .map(|_| TypedSender(typed.clone()))
            .collect();
        let (side, _) = measured(&mut stats, n, fixed_count(rpc_senders, n)).await?;
        rpc_in_flight.add(n, &side);
        let rpc = drain(&mut stats, &url, Kind::Typed, concurrency, n).await?;
        stats.del(&typed_key).await?;
        say(&format!(
            "jobs: drain at concurrency {concurrency}: floor {:.0}/s, rpc-runtime {:.0}/s ({:.2}x)",
            floor.rate,
            rpc.rate,
            rpc.rate / floor.rate
        ));
        drains.push(JobsRow {
            metric: format!("drain a backlog, 1 worker process, concurrency {concurrency}"),
            jobs: n,
            floor,
            rpc: Some(rpc),
            missing: None,
        });
    }
    rows.push(JobsRow {
        metric: format!("enqueue with {ENQUEUE_IN_FLIGHT} in flight (pooled over the backlogs)"),
        jobs: n * DRAIN_CONCURRENCY.len() as u64,
        floor: floor_in_flight.side(),
        rpc: Some(rpc_in_flight.side()),
        missing: None,
    });
    rows.push(bulk_row);
    rows.extend(drains);

    let targets = targets(&rows);
    let report = JobsReport {
        machine,
        command,
        backlog: n,
        floor_message_bytes,
        rpc_message_bytes,
        rows,
        targets,
    };
    crate::report::publish(&report.markdown(), &report, json)
}

/// Starts a worker process of `kind` at `concurrency` on the backlog of
/// `jobs` waiting for it, and times it until every job is acked.
async fn drain(
    stats: &mut Stats,
    url: &str,
    kind: Kind,
    concurrency: usize,
    jobs: u64,
) -> Result<Side, String> {
    let mut poll = Stats(
        floor::blocking_connection(url)
            .await
            .map_err(|e| format!("poll connection: {e}"))?,
    );
    let worker = spawn_worker_with(url, kind, concurrency)?;
    let key = match kind {
        Kind::Typed => typed::jobs_key(),
        _ => jobs_floor::STREAM.to_owned(),
    };
    let worker_before = measure::sched_stats(worker.pid()).0;
    let (mut side, ()) = measured(stats, jobs, async {
        let limit = Instant::now() + DRAIN_LIMIT;
        loop {
            let done = match kind {
                Kind::Typed => poll.xlen(&key).await? == 0,
                _ => jobs_floor::drained(&mut poll.0, jobs).await?,
            };
            if done {
                return Ok(());
            }
            if Instant::now() > limit {
                return Err(format!("{key}: not drained after {DRAIN_LIMIT:?}"));
            }
            tokio::time::sleep(DRAIN_POLL).await;
        }
    })
    .await?;
    let worker_ns = measure::sched_stats(worker.pid())
        .0
        .saturating_sub(worker_before);
    side.worker_cpu_us = Some(worker_ns as f64 / 1e3 / jobs.max(1) as f64);
    drop(worker);
    Ok(side)
}

/// The targets of issue 23 point 4 that a `--jobs` run measures.
fn targets(rows: &[JobsRow]) -> Vec<Target> {
    let mut targets = Vec::new();
    let find = |prefix: &str| rows.iter().find(|r| r.metric.starts_with(prefix));
    if let Some(r) = find("drain a backlog, 1 worker process, concurrency 100") {
        let ratio = r.rate_ratio().unwrap_or(f64::NAN);
        targets.push(Target {
            what: "drain at concurrency 100 >= 0.8x the floor".to_owned(),
            measured: format!("{ratio:.2}x"),
            pass: ratio >= 0.8,
        });
    }
    if let Some(r) = find("enqueue in bulk") {
        targets.push(Target {
            what: "bulk enqueue >= 0.8x a pipelined raw XADD".to_owned(),
            measured: match r.rate_ratio() {
                Some(ratio) => format!("{ratio:.2}x"),
                None => format!("not measured: {}", r.missing.as_deref().unwrap_or("")),
            },
            pass: r.rate_ratio().is_some_and(|x| x >= 0.8),
        });
    }
    for r in rows.iter().filter(|r| r.rpc.is_some()) {
        let ratio = r.cpu_ratio().unwrap_or(f64::NAN);
        targets.push(Target {
            what: format!("Redis CPU per job <= 1.2x the floor's: {}", r.metric),
            measured: format!("{ratio:.2}x"),
            pass: ratio <= 1.2,
        });
    }
    targets
}
