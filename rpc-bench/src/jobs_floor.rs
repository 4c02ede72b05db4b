//! The jobs floor: background jobs over a Redis stream written by hand with
//! the `redis` crate (`XADD` / `XREADGROUP` / `XACK`), the least work Redis
//! allows for a queue that a consumer group drains.
//!
//! * Enqueue: `XADD floor-jobs-stream * m <json>` awaited, one at a time or
//!   by many tasks on one multiplexed connection (the crate pipelines what
//!   they send); in bulk, 1,000 `XADD`s per pipeline (one write, one round
//!   trip).
//! * Drain at concurrency C (a worker process of its own): one connection,
//!   `XREADGROUP GROUP floor <consumer> COUNT C BLOCK 1000 STREAMS
//!   floor-jobs-stream >`, decode each entry's JSON and add, then one `XACK`
//!   of the whole batch sent in the same pipeline as the next read. So at
//!   most C jobs are taken and not yet acked, and each batch costs one round
//!   trip: the best a hand-written consumer does for a handler that needs
//!   no waiting.
//!
//! With `--jobs-floor-bytes N` each message is padded to N bytes (`same`:
//! the size of the runtime's message for the same job), so that the two
//! sides move the same bytes and the ratio shows what the runtime's
//! machinery costs; unpadded, a floor message is about 13 bytes against
//! the runtime's ~190 (its envelope: id, job name, deadline, attempt).
//!
//! What the floor does not do, and the runtime does: no deadline, no lease
//! renewal or redelivery of a crashed worker's jobs, no retries, no dead
//! letters, no cancellation, no delays, no `XDEL` (acked entries stay in the
//! stream until something trims it). A yardstick, not an alternative.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::StreamReadReply;
use serde::{Deserialize, Serialize};

use crate::floor::blocking_connection;

/// The floor's jobs stream (the floor's own key, not the protocol's).
pub const STREAM: &str = "floor-jobs-stream";
/// The floor's consumer group.
pub const GROUP: &str = "floor";
/// `XADD`s per pipeline in the floor's bulk enqueue.
pub const BULK_BATCH: usize = 1_000;

#[derive(Serialize, Deserialize)]
struct FloorJob {
    a: i64,
    b: i64,
    /// Filler that brings the message to a chosen size (`--jobs-floor-bytes`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pad: String,
}

/// The message of job `n`, padded to at least `bytes` (0: unpadded, about
/// 13 bytes).
fn body(n: u64, bytes: usize) -> Vec<u8> {
    let mut job = FloorJob {
        a: n as i64,
        b: 1,
        pad: String::new(),
    };
    let plain = serde_json::to_vec(&job).expect("a job always serializes");
    // `,"pad":""` is 9 bytes.
    if bytes <= plain.len() + 9 {
        return plain;
    }
    job.pad = "x".repeat(bytes - plain.len() - 9);
    serde_json::to_vec(&job).expect("a job always serializes")
}

fn xadd(pipe: &mut redis::Pipeline, n: u64, bytes: usize) {
    pipe.cmd("XADD")
        .arg(STREAM)
        .arg("*")
        .arg("m")
        .arg(body(n, bytes))
        .ignore();
}

/// One hand-written enqueuer: a clone of a shared multiplexed connection,
/// and the size its messages are padded to (0: unpadded).
#[derive(Clone)]
pub struct FloorEnqueuer(pub MultiplexedConnection, pub usize);

impl FloorEnqueuer {
    pub async fn connect(url: &str, bytes: usize) -> Result<Self, String> {
        Ok(FloorEnqueuer(
            blocking_connection(url)
                .await
                .map_err(|e| format!("floor connection: {e}"))?,
            bytes,
        ))
    }

    /// `XADD` of job `n`, awaited.
    pub async fn enqueue(&mut self, n: u64) -> Result<(), String> {
        redis::cmd("XADD")
            .arg(STREAM)
            .arg("*")
            .arg("m")
            .arg(body(n, self.1))
            .query_async::<()>(&mut self.0)
            .await
            .map_err(|e| format!("floor XADD: {e}"))
    }

    /// Jobs `from..from + count`, [`BULK_BATCH`] `XADD`s per pipeline.
    pub async fn enqueue_bulk(&mut self, from: u64, count: u64) -> Result<(), String> {
        let mut n = from;
        while n < from + count {
            let end = (n + BULK_BATCH as u64).min(from + count);
            let mut pipe = redis::pipe();
            for i in n..end {
                xadd(&mut pipe, i, self.1);
            }
            pipe.query_async::<()>(&mut self.0)
                .await
                .map_err(|e| format!("floor XADD pipeline: {e}"))?;
            n = end;
        }
        Ok(())
    }
}

/// `XGROUP CREATE floor-jobs-stream floor 0 MKSTREAM` (an existing group
/// is fine).
pub async fn create_group(con: &mut MultiplexedConnection) -> Result<(), String> {
    let created: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(STREAM)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(con)
        .await;
    match created {
        Err(e) if e.code() != Some("BUSYGROUP") => Err(format!("XGROUP CREATE: {e}")),
        _ => Ok(()),
    }
}

/// Whether the floor's group has read `jobs` entries and acked them all.
pub async fn drained(con: &mut MultiplexedConnection, jobs: u64) -> Result<bool, String> {
    let info: redis::streams::StreamInfoGroupsReply = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(STREAM)
        .query_async(con)
        .await
        .map_err(|e| format!("XINFO GROUPS: {e}"))?;
    Ok(info.groups.iter().any(|g| {
        g.name == GROUP && g.pending == 0 && g.entries_read.is_some_and(|r| r as u64 >= jobs)
    }))
}

/// Runs a floor drain worker process: takes up to `concurrency` jobs per
/// read, runs them, acks them with the next read. Prints `ready` once
/// connected; never returns on success.
pub async fn run_worker(url: &str, concurrency: usize) -> Result<(), String> {
    let mut con = blocking_connection(url)
        .await
        .map_err(|e| format!("floor jobs worker: {e}"))?;
    create_group(&mut con).await?;
    let consumer = format!("floor-{}", std::process::id());
    let count = concurrency.max(1);
    let mut done: Vec<String> = Vec::with_capacity(count);
    println!("ready");
    loop {
        let mut pipe = redis::pipe();
        if !done.is_empty() {
            pipe.cmd("XACK").arg(STREAM).arg(GROUP).arg(&done).ignore();
        }
        pipe.cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&consumer)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(Duration::from_secs(1).as_millis() as u64)
            .arg("STREAMS")
            .arg(STREAM)
            .arg(">");
        let (read,): (Option<StreamReadReply>,) = pipe
            .query_async(&mut con)
            .await
            .map_err(|e| format!("floor jobs worker: {e}"))?;
        done.clear();
        for entry in read.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
            if let Some(redis::Value::BulkString(m)) = entry.map.get("m") {
                match serde_json::from_slice::<FloorJob>(m) {
                    Ok(job) => {
                        std::hint::black_box(job.a.wrapping_add(job.b));
                    }
                    Err(_) => eprintln!("floor jobs worker: unreadable job"),
                }
            }
            done.push(entry.id);
        }
    }
}
