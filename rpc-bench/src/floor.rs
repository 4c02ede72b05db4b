//! The floor: the same call done by hand with the `redis` crate, the least
//! work Redis allows for a request/reply over lists.
//!
//! * Client: one request is `LPUSH floor:jobs <json>` and `BLPOP` on the
//!   caller's own reply list, sent as one pipeline (one write, one round
//!   trip). For N calls in flight the bench runs N caller tasks, each with
//!   its **own reply list and its own connection** (a blocking `BLPOP` needs
//!   a connection of its own). That is the simplest correct hand-written
//!   design; it pays one connection per concurrent caller, where the runtime
//!   multiplexes all callers onto one inbox and one reader.
//! * Worker: each worker process runs `concurrency` tasks, each with its own
//!   connection: `BRPOP floor:jobs floor:notes 0`, decode the JSON, add,
//!   `LPUSH <reply_to> <json>`.
//!
//! The floor keeps none of the runtime's promises (no lease, no redelivery
//! after a crash, no deadline, no expiry of reply lists); it is the
//! yardstick, not an alternative.

use std::borrow::Cow;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use serde::{Deserialize, Serialize};

/// The list requests go to.
pub const JOBS: &str = "floor:jobs";
/// The list fire-and-forget messages go to.
pub const NOTES: &str = "floor:notes";

#[derive(Serialize, Deserialize)]
struct FloorRequest<'a> {
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    reply_to: Option<Cow<'a, str>>,
    a: i64,
    b: i64,
}

#[derive(Serialize, Deserialize)]
struct FloorReply {
    ok: i64,
}

/// A connection whose reads may block forever (no response timeout).
pub async fn blocking_connection(url: &str) -> redis::RedisResult<MultiplexedConnection> {
    let client = redis::Client::open(url)?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(None);
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// One hand-written caller: its own connection and reply list.
pub struct FloorCaller {
    con: MultiplexedConnection,
    reply_to: String,
}

impl FloorCaller {
    pub async fn connect(url: &str, index: usize) -> redis::RedisResult<Self> {
        Ok(FloorCaller {
            con: blocking_connection(url).await?,
            reply_to: format!("floor:reply:{index}"),
        })
    }

    /// Calls `a + b` and waits for the answer.
    pub async fn add(&mut self, a: i64, b: i64) -> Result<i64, String> {
        let body = serde_json::to_vec(&FloorRequest {
            reply_to: Some(Cow::Borrowed(&self.reply_to)),
            a,
            b,
        })
        .map_err(|e| e.to_string())?;
        let (popped,): (Option<(String, Vec<u8>)>,) = redis::pipe()
            .cmd("LPUSH")
            .arg(JOBS)
            .arg(body)
            .ignore()
            .cmd("BLPOP")
            .arg(&self.reply_to)
            .arg(0)
            .query_async(&mut self.con)
            .await
            .map_err(|e| e.to_string())?;
        let (_, reply) = popped.ok_or("BLPOP returned nil")?;
        let reply: FloorReply = serde_json::from_slice(&reply).map_err(|e| e.to_string())?;
        Ok(reply.ok)
    }

    /// Fire and forget: `LPUSH floor:notes`.
    pub async fn note(&mut self, n: i64) -> Result<(), String> {
        let body = serde_json::to_vec(&FloorRequest {
            reply_to: None,
            a: n,
            b: 0,
        })
        .map_err(|e| e.to_string())?;
        redis::cmd("LPUSH")
            .arg(NOTES)
            .arg(body)
            .query_async::<()>(&mut self.con)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Runs a floor worker process: `tasks` loops, each on its own connection.
/// Prints `ready` once every connection is open; never returns on success.
pub async fn run_worker(url: &str, tasks: usize) -> redis::RedisResult<()> {
    let mut cons = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        cons.push(blocking_connection(url).await?);
    }
    let mut handles = Vec::with_capacity(tasks);
    for con in cons {
        handles.push(tokio::spawn(worker_loop(con)));
    }
    println!("ready");
    for h in handles {
        match h.await {
            Ok(r) => r?,
            Err(e) => eprintln!("floor worker task failed: {e}"),
        }
    }
    Ok(())
}

async fn worker_loop(mut con: MultiplexedConnection) -> redis::RedisResult<()> {
    loop {
        let popped: Option<(String, Vec<u8>)> = redis::cmd("BRPOP")
            .arg(JOBS)
            .arg(NOTES)
            .arg(0)
            .query_async(&mut con)
            .await?;
        let Some((_, body)) = popped else { continue };
        let Ok(req) = serde_json::from_slice::<FloorRequest>(&body) else {
            eprintln!("floor worker: unreadable request");
            continue;
        };
        let Some(reply_to) = req.reply_to else {
            continue;
        };
        let reply = serde_json::to_vec(&FloorReply {
            ok: req.a.wrapping_add(req.b),
        })
        .expect("a reply always serializes");
        redis::cmd("LPUSH")
            .arg(reply_to.as_ref())
            .arg(reply)
            .query_async::<()>(&mut con)
            .await?;
    }
}
