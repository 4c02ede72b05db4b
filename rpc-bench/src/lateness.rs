//! Schedule lateness (`--schedule-lateness`): how long after its due time a
//! delayed job starts, with jobs falling due at a steady 1,000 per second.
//!
//! A mode of its own rather than a section of the default run: it has no
//! floor to be compared with (a hand-written list protocol has no schedule),
//! and it takes ~10 s that the default run, kept near a minute, need not pay.
//!
//! The client reads Redis's `TIME` once and sends every job with
//! `CallOptions::delay` so that job `i` is due `i` ms into a 5 s window
//! (on Redis's clock), before the window opens; it then reads the schedule
//! back, for the due time Redis itself recorded for each job (its `TIME` at
//! the send plus the delay). Two worker processes (`worker --kind
//! scheduled`) race to move due jobs onto the queue, as their lifecycle
//! poll does; each job's handler reads the clock first thing and pushes
//! `<call id> <µs since the epoch>` onto a list. The worker and the private
//! redis-server read the same machine clock, so `start - due` is the
//! lateness with no clock offset in it: the poll's timer, the move, the
//! stream read and the dispatch.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rpc_runtime::{CallOptions, Client, DynamicService, HandlerError, Worker};
use serde::Serialize;

use crate::report::Machine;

/// The service the lateness jobs are sent to.
const SERVICE: &str = "Lateness";
/// Its schedule (call id -> due ms on Redis's clock).
fn schedule_key() -> String {
    rpc_runtime::protocol::Keys::new("rpc").schedule(SERVICE)
}
/// The list each run pushes `<call id> <start µs>` onto.
const STARTS: &str = "bench:lateness:starts";
/// Sends in flight while scheduling.
const SENDERS: usize = 64;

/// How much one lateness run does.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Plan {
    pub jobs: usize,
    pub window_ms: u64,
    pub workers: usize,
    /// The window opens this long after `TIME` is read: time to send every
    /// job and read the schedule back before the first is due.
    pub lead_ms: u64,
}

impl Plan {
    /// 5,000 jobs over 5 s (`--quick`: 500 over 0.5 s), both at 1,000 due
    /// per second, on two worker processes.
    pub fn new(quick: bool) -> Plan {
        let (jobs, window_ms) = if quick { (500, 500) } else { (5_000, 5_000) };
        Plan {
            jobs,
            window_ms,
            workers: 2,
            lead_ms: 2_000,
        }
    }
}

/// What one run measured; lateness in ms.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub plan: Plan,
    pub due_per_second: f64,
    /// How long sending the jobs took (ms).
    pub scheduled_in_ms: f64,
    /// Jobs moved onto the queue before the schedule was read back: judged
    /// by their intended due time (never later than Redis's).
    pub due_time_unread: usize,
    pub ran: usize,
    pub missing: usize,
    /// Runs beyond the first of a job (none expected: nobody is killed).
    pub duplicates: usize,
    /// Jobs that started more than 1 ms before their due time (none expected).
    pub early: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

/// The JSON written by `--schedule-lateness --json`.
#[derive(Debug, Clone, Serialize)]
pub struct LatenessReport {
    pub machine: Machine,
    pub mode: String,
    pub command: String,
    pub schedule_lateness: Figures,
}

impl LatenessReport {
    /// The report as markdown.
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let f = &self.schedule_lateness;
        let mut out = format!(
            "Machine: {} CPUs ({}), {} RAM, redis-server {}. Mode: {}. Command: `{}`\n\n",
            m.nproc, m.cpu_model, m.mem_total, m.redis, self.mode, self.command
        );
        out.push_str(&format!(
            "Schedule lateness (start - due), {} delayed jobs due at {:.0}/s over {:.1} s, {} worker processes:\n\n",
            f.plan.jobs,
            f.due_per_second,
            f.plan.window_ms as f64 / 1000.0,
            f.plan.workers
        ));
        out.push_str("| p50 | p99 | p99.9 | max | mean | ran | missing | twice | early |\n");
        out.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        out.push_str(&format!(
            "| {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {} | {} | {} | {} |\n",
            f.p50_ms,
            f.p99_ms,
            f.p999_ms,
            f.max_ms,
            f.mean_ms,
            f.ran,
            f.missing,
            f.duplicates,
            f.early
        ));
        out
    }
}

fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The worker process of `--kind scheduled`: serves `Lateness.stamp`,
/// which records when it started.
pub async fn run_worker(url: &str, concurrency: usize) -> Result<(), String> {
    let redis = redis::Client::open(url).map_err(|e| e.to_string())?;
    let con = redis
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("lateness worker: {e}"))?;
    let service = DynamicService::new(SERVICE).job("stamp", move |req| {
        let mut con = con.clone();
        async move {
            // First thing: the start as early as the handler can see it.
            let at_us = unix_us(SystemTime::now());
            redis::cmd("RPUSH")
                .arg(STARTS)
                .arg(format!("{} {at_us}", req.context.id()))
                .query_async::<()>(&mut con)
                .await
                .map_err(|e| HandlerError::fatal(format!("recording the start: {e}")))?;
            Ok(serde_json::Value::Null)
        }
    });
    let worker = Worker::builder(url)
        .mount(service)
        .concurrency(concurrency)
        .build()
        .await
        .map_err(|e| format!("lateness worker: {e}"))?;
    println!("ready");
    worker
        .run()
        .await
        .map(drop)
        .map_err(|e| format!("lateness worker: {e}"))
}

/// The `--schedule-lateness` mode: measures with worker processes started
/// by `spawn`, prints the table, writes the JSON to `json` if asked.
pub async fn run<W>(
    url: &str,
    quick: bool,
    json: Option<&Path>,
    machine: Machine,
    command: String,
    spawn: impl Fn() -> Result<W, String>,
) -> Result<(), String> {
    let plan = Plan::new(quick);
    eprintln!(
        "rpc-bench: schedule lateness: {} jobs due over {} ms, {} worker processes",
        plan.jobs, plan.window_ms, plan.workers
    );
    let report = LatenessReport {
        machine,
        mode: if quick {
            "schedule-lateness quick"
        } else {
            "schedule-lateness"
        }
        .to_owned(),
        command,
        schedule_lateness: measure(url, plan, spawn).await?,
    };
    crate::report::publish(&report.markdown(), &report, json)
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Sends the plan's jobs, due one after another across the window; returns
/// each call id's intended due time (ms, Redis's clock), when the window
/// opens (local) and how long sending took.
async fn schedule(
    client: &Client,
    con: &mut redis::aio::MultiplexedConnection,
    plan: Plan,
) -> Result<(HashMap<String, u64>, Instant, Duration), String> {
    let (secs, micros): (u64, u64) = redis::cmd("TIME")
        .query_async(con)
        .await
        .map_err(|e| e.to_string())?;
    // Taken after the answer, so the local time elapsed since never exceeds
    // Redis's: no job is made due before its intended time.
    let read_at = Instant::now();
    let now_ms = secs * 1000 + micros / 1000;
    let mut senders = tokio::task::JoinSet::new();
    for first in 0..SENDERS {
        let client = client.clone();
        senders.spawn(async move {
            let mut sent = Vec::new();
            for i in (first..plan.jobs).step_by(SENDERS) {
                let offset = plan.lead_ms + i as u64 * plan.window_ms / plan.jobs as u64;
                let elapsed = read_at.elapsed().as_millis() as u64;
                let delay = Duration::from_millis(offset.saturating_sub(elapsed));
                let id = client
                    .send(&format!("{SERVICE}.stamp"), serde_json::Value::Null)
                    .options(CallOptions::delay(delay))
                    .await
                    .map_err(|e| format!("scheduling a job: {e}"))?;
                sent.push((id.as_str().to_owned(), now_ms + offset));
            }
            Ok::<_, String>(sent)
        });
    }
    let mut dues = HashMap::with_capacity(plan.jobs);
    while let Some(sent) = senders.join_next().await {
        dues.extend(sent.map_err(|e| format!("a sender failed: {e}"))??);
    }
    let took = read_at.elapsed();
    Ok((dues, read_at + Duration::from_millis(plan.lead_ms), took))
}

/// Runs the plan against the Redis at `url` with worker processes started
/// by `spawn` (kept until the end).
async fn measure<W>(
    url: &str,
    plan: Plan,
    spawn: impl Fn() -> Result<W, String>,
) -> Result<Figures, String> {
    let workers = (0..plan.workers)
        .map(|_| spawn())
        .collect::<Result<Vec<W>, String>>()?;
    let client = Client::connect(url)
        .await
        .map_err(|e| format!("client: {e}"))?;
    let redis = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut con = redis
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let (intended, window_opens, took) = schedule(&client, &mut con, plan).await?;
    let recorded: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(schedule_key())
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut con)
        .await
        .map_err(|e| e.to_string())?;
    let recorded: HashMap<String, u64> = recorded
        .into_iter()
        .map(|(id, at)| (id, at as u64))
        .collect();
    // Judged by Redis's due time where it was read, else by the intended one.
    let unread = intended
        .keys()
        .filter(|id| !recorded.contains_key(*id))
        .count();
    let due = |id: &str| recorded.get(id).or_else(|| intended.get(id)).copied();

    // Until every job recorded its start, or well past the window.
    let give_up = window_opens + Duration::from_millis(plan.window_ms) + Duration::from_secs(30);
    tokio::time::sleep_until((window_opens + Duration::from_millis(plan.window_ms)).into()).await;
    loop {
        let len: usize = redis::cmd("LLEN")
            .arg(STARTS)
            .query_async(&mut con)
            .await
            .map_err(|e| e.to_string())?;
        if len >= plan.jobs || Instant::now() > give_up {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(workers);
    let starts: Vec<String> = redis::cmd("LRANGE")
        .arg(STARTS)
        .arg(0)
        .arg(-1)
        .query_async(&mut con)
        .await
        .map_err(|e| e.to_string())?;
    let mut first: HashMap<&str, u64> = HashMap::with_capacity(starts.len());
    let mut duplicates = 0;
    for line in &starts {
        let Some((id, at)) = line.split_once(' ') else {
            return Err(format!("unreadable start record {line:?}"));
        };
        let at: u64 = at
            .parse()
            .map_err(|_| format!("unreadable start record {line:?}"))?;
        match first.get_mut(id) {
            Some(earlier) => {
                duplicates += 1;
                *earlier = (*earlier).min(at);
            }
            None => {
                first.insert(id, at);
            }
        }
    }
    let mut late_ms: Vec<f64> = first
        .iter()
        .filter_map(|(id, at)| {
            let due_us = due(id)? * 1000;
            Some((*at as i64 - due_us as i64) as f64 / 1000.0)
        })
        .collect();
    late_ms.sort_by(f64::total_cmp);
    let ran = late_ms.len();
    Ok(Figures {
        plan,
        due_per_second: plan.jobs as f64 * 1000.0 / plan.window_ms as f64,
        scheduled_in_ms: took.as_secs_f64() * 1000.0,
        due_time_unread: unread,
        ran,
        missing: plan.jobs.saturating_sub(ran),
        duplicates,
        early: late_ms.iter().filter(|&&l| l < -1.0).count(),
        p50_ms: percentile(&late_ms, 50.0),
        p99_ms: percentile(&late_ms, 99.0),
        p999_ms: percentile(&late_ms, 99.9),
        max_ms: late_ms.last().copied().unwrap_or(f64::NAN),
        mean_ms: late_ms.iter().sum::<f64>() / ran.max(1) as f64,
    })
}
