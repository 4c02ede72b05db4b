//! The floor: the same call done by hand with the `redis` crate, the least
//! work Redis allows for a request/reply over lists.
//!
//! * Client: one request is `LPUSH floor-jobs <json>` and `BLPOP` on the
//!   caller's own reply list, sent as one pipeline (one write, one round
//!   trip). For N calls in flight the bench runs N caller tasks, each with
//!   its **own reply list and its own connection** (a blocking `BLPOP` needs
//!   a connection of its own). That is the simplest correct hand-written
//!   design; it pays one connection per concurrent caller, where the runtime
//!   multiplexes all callers onto one inbox and one reader.
//! * Worker: each worker process runs `concurrency` tasks, each with its own
//!   connection: `BRPOP floor-jobs floor:notes 0`, decode the JSON, add,
//!   `LPUSH <reply_to> <json>`.
//!
//! The floor keeps none of the runtime's promises (no lease, no redelivery
//! after a crash, no deadline, no expiry of reply lists); it is the
//! yardstick, not an alternative.
//!
//! A second, blocking floor ([`BlockingCaller`], [`run_blocking_worker`])
//! makes the same calls on the `redis` crate's synchronous `Connection`, a
//! thread blocked in `recv` per caller and per worker loop: no async
//! runtime, no driver task. It is the lowest sequential latency the `redis`
//! crate gives, and is measured for reference (sequential only: a thread
//! per call in flight is not a design for concurrency).

use std::borrow::Cow;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use serde::{Deserialize, Serialize};

/// The list requests go to (the floor's own keys, not the protocol's).
pub const JOBS: &str = "floor-jobs";
/// The list fire-and-forget messages go to.
pub const NOTES: &str = "floor:notes";
/// The list the blocking floor's requests go to.
pub const BLOCKING_JOBS: &str = "floor-blocking-jobs";

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
        let popped = call_pipeline(JOBS, &self.reply_to, a, b)?
            .query_async(&mut self.con)
            .await
            .map_err(|e| e.to_string())?;
        sum_in(popped)
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

/// The blocking floor's caller: its own synchronous connection and reply
/// list.
pub struct BlockingCaller {
    con: redis::Connection,
    reply_to: String,
}

impl BlockingCaller {
    pub fn connect(url: &str, index: usize) -> redis::RedisResult<Self> {
        Ok(BlockingCaller {
            con: redis::Client::open(url)?.get_connection()?,
            reply_to: format!("floor:blocking:reply:{index}"),
        })
    }

    /// Calls `a + b` and waits for the answer, blocking this thread.
    pub fn add(&mut self, a: i64, b: i64) -> Result<i64, String> {
        let popped = call_pipeline(BLOCKING_JOBS, &self.reply_to, a, b)?
            .query(&mut self.con)
            .map_err(|e| e.to_string())?;
        sum_in(popped)
    }
}

/// What `BLPOP` answers with: nil, or the list and the element.
type Popped = (Option<(String, Vec<u8>)>,);

/// One call: `LPUSH <jobs> <request>` + `BLPOP <reply_to> 0`, one pipeline.
fn call_pipeline(jobs: &str, reply_to: &str, a: i64, b: i64) -> Result<redis::Pipeline, String> {
    let body = serde_json::to_vec(&FloorRequest {
        reply_to: Some(Cow::Borrowed(reply_to)),
        a,
        b,
    })
    .map_err(|e| e.to_string())?;
    let mut pipe = redis::pipe();
    pipe.cmd("LPUSH")
        .arg(jobs)
        .arg(body)
        .ignore()
        .cmd("BLPOP")
        .arg(reply_to)
        .arg(0);
    Ok(pipe)
}

/// The sum in a popped reply.
fn sum_in((popped,): Popped) -> Result<i64, String> {
    let (_, reply) = popped.ok_or("BLPOP returned nil")?;
    let reply: FloorReply = serde_json::from_slice(&reply).map_err(|e| e.to_string())?;
    Ok(reply.ok)
}

/// Runs a blocking floor worker process: `threads` threads, each with its
/// own synchronous connection, `BRPOP` / add / `LPUSH`. Prints `ready` once
/// every connection is open; never returns on success.
pub fn run_blocking_worker(url: &str, threads: usize) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let cons = (0..threads)
        .map(|_| client.get_connection())
        .collect::<redis::RedisResult<Vec<_>>>()?;
    let handles: Vec<_> = cons
        .into_iter()
        .map(|con| std::thread::spawn(move || blocking_worker_loop(con)))
        .collect();
    println!("ready");
    for h in handles {
        match h.join() {
            Ok(r) => r?,
            Err(_) => eprintln!("blocking floor worker thread panicked"),
        }
    }
    Ok(())
}

fn blocking_worker_loop(mut con: redis::Connection) -> redis::RedisResult<()> {
    loop {
        let popped = pop_request(&[BLOCKING_JOBS]).query(&mut con)?;
        if let Some(reply) = reply_cmd(popped) {
            reply.query::<()>(&mut con)?;
        }
    }
}

async fn worker_loop(mut con: MultiplexedConnection) -> redis::RedisResult<()> {
    loop {
        let popped = pop_request(&[JOBS, NOTES]).query_async(&mut con).await?;
        if let Some(reply) = reply_cmd(popped) {
            reply.query_async::<()>(&mut con).await?;
        }
    }
}

/// `BRPOP <keys> 0`: the next request, waiting as long as it takes.
fn pop_request(keys: &[&str]) -> redis::Cmd {
    let mut cmd = redis::cmd("BRPOP");
    cmd.arg(keys).arg(0);
    cmd
}

/// A floor worker's work on one popped request: the `LPUSH` that answers
/// it, if it wants an answer.
fn reply_cmd(popped: Option<(String, Vec<u8>)>) -> Option<redis::Cmd> {
    let (_, body) = popped?;
    let Ok(req) = serde_json::from_slice::<FloorRequest>(&body) else {
        eprintln!("floor worker: unreadable request");
        return None;
    };
    let reply_to = req.reply_to?;
    let reply = serde_json::to_vec(&FloorReply {
        ok: req.a.wrapping_add(req.b),
    })
    .expect("a reply always serializes");
    let mut cmd = redis::cmd("LPUSH");
    cmd.arg(reply_to.as_ref()).arg(reply);
    Some(cmd)
}
