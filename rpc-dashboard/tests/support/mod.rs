//! What the dashboard's tests share: a private redis-server filled with
//! queue contents the tests know (dead letters, a job leased to a consumer,
//! jobs waiting, jobs on the schedule), and the dashboard served on a free
//! port.

#![allow(dead_code)] // each test file uses its own part

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use redis::aio::MultiplexedConnection;
use rpc_testkit::RedisServer;
use serde_json::{json, Value};

/// The calculator's schema file, for `--schema`.
pub fn calculator_schema() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../schema/calculator.rpc"
    ))
}

/// A job message as clients write it (docs/PROTOCOL.md), its result kept
/// for five minutes so the call's page can show the answer, due in ten.
pub fn job_message(id: &str, job: &str, params: Value) -> Vec<u8> {
    let due = SystemTime::now() + Duration::from_secs(600);
    let message = json!({
        "v": 1, "id": id, "job": job, "params": params,
        "reply_to": "rpc:inbox:{test-client}", "attempt": 1, "max_attempts": 3,
        "deadline_ms": rpc_runtime::wire::unix_ms(due), "result_ttl_ms": 300_000,
    });
    serde_json::to_vec(&message).expect("a JSON value serializes")
}

/// A job message as it is dead-lettered after its last attempt.
pub fn dead_message(id: &str, job: &str, params: Value) -> Vec<u8> {
    let message = json!({
        "v": 1, "id": id, "job": job, "params": params,
        "attempt": 3, "max_attempts": 3, "result_ttl_ms": 300_000,
    });
    serde_json::to_vec(&message).expect("a JSON value serializes")
}

/// A private Redis and a connection to write fixtures with.
pub struct Fixture {
    pub redis: RedisServer,
    pub url: String,
    con: MultiplexedConnection,
}

impl Fixture {
    pub async fn start() -> Fixture {
        let redis = RedisServer::start().expect("start redis-server");
        let url = redis.url();
        let con = redis::Client::open(url.as_str())
            .expect("redis URL")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test's Redis");
        Fixture { redis, url, con }
    }

    /// Writes a dead letter as a worker does; returns its token.
    pub async fn dead_letter(&self, service: &str, reason: &str, message: &[u8]) -> String {
        redis::cmd("XADD")
            .arg(format!("rpc:{{{service}}}:dead"))
            .arg("*")
            .arg("reason")
            .arg(reason)
            .arg("m")
            .arg(message)
            .query_async(&mut self.con.clone())
            .await
            .expect("XADD a dead letter")
    }

    /// Queues raw bytes as a job entry, as a (broken) client would.
    pub async fn push_raw(&self, service: &str, bytes: &[u8]) -> String {
        redis::cmd("XADD")
            .arg(format!("rpc:{{{service}}}:jobs"))
            .arg("*")
            .arg("m")
            .arg(bytes)
            .query_async(&mut self.con.clone())
            .await
            .expect("XADD a job")
    }

    /// Queues `total` jobs on a service no worker serves, then leases
    /// `leased` of them to `consumer`, as a worker that took them and is
    /// still running them would hold them.
    pub async fn lease_jobs(&self, service: &str, consumer: &str, total: usize, leased: usize) {
        let mut con = self.con.clone();
        let key = format!("rpc:{{{service}}}:jobs");
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&key)
            .arg("workers")
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut con)
            .await
            .expect("XGROUP CREATE");
        for i in 0..total {
            let message = job_message(
                &format!("{service}-job-{i}"),
                &format!("{service}.build"),
                json!({"n": i}),
            );
            self.push_raw(service, &message).await;
        }
        let _: redis::Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("workers")
            .arg(consumer)
            .arg("COUNT")
            .arg(leased)
            .arg("STREAMS")
            .arg(&key)
            .arg(">")
            .query_async(&mut con)
            .await
            .expect("XREADGROUP");
    }

    /// Puts `message` on a service's schedule under `token`, due at
    /// `due_ms` (Redis's clock), as the runtime's schedule script does: a
    /// retry, or garbage, written by hand.
    pub async fn schedule_raw(&self, service: &str, token: &str, due_ms: u64, message: &[u8]) {
        let _: () = redis::pipe()
            .cmd("ZADD")
            .arg(format!("rpc:{{{service}}}:schedule"))
            .arg(due_ms)
            .arg(token)
            .cmd("HSET")
            .arg(format!("rpc:{{{service}}}:scheduled"))
            .arg(token)
            .arg(message)
            .query_async(&mut self.con.clone())
            .await
            .expect("ZADD and HSET a scheduled job");
    }

    /// The tokens (call ids) on a service's schedule, soonest first.
    pub async fn scheduled_ids(&self, service: &str) -> Vec<String> {
        redis::cmd("ZRANGE")
            .arg(format!("rpc:{{{service}}}:schedule"))
            .arg(0)
            .arg(-1)
            .query_async(&mut self.con.clone())
            .await
            .expect("ZRANGE")
    }

    /// Whether call `id` is in a service's cancelled set.
    pub async fn is_marked_cancelled(&self, service: &str, id: &str) -> bool {
        let score: Option<f64> = redis::cmd("ZSCORE")
            .arg(format!("rpc:{{{service}}}:cancelled"))
            .arg(id)
            .query_async(&mut self.con.clone())
            .await
            .expect("ZSCORE");
        score.is_some()
    }

    /// Redis's clock, in milliseconds.
    pub async fn server_ms(&self) -> u64 {
        let (secs, micros): (u64, u64) = redis::cmd("TIME")
            .query_async(&mut self.con.clone())
            .await
            .expect("TIME");
        secs * 1000 + micros / 1000
    }

    /// The number of entries in a stream.
    pub async fn len(&self, key: &str) -> u64 {
        redis::cmd("XLEN")
            .arg(key)
            .query_async(&mut self.con.clone())
            .await
            .expect("XLEN")
    }
}

/// The dashboard serving on a free loopback port until dropped.
pub struct Served {
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Options for a dashboard on a free port, sampling twice a second.
pub fn options(url: &str) -> rpc_dashboard::Options {
    rpc_dashboard::Options {
        listen: "127.0.0.1:0".parse().expect("address"),
        schemas: vec![calculator_schema()],
        sample_every: Duration::from_millis(500),
        ..rpc_dashboard::Options::new(url)
    }
}

pub async fn serve(options: rpc_dashboard::Options) -> Served {
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .expect("bind a free port");
    let base = format!("http://{}", listener.local_addr().expect("local address"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(e) = rpc_dashboard::serve(listener, options, shutdown).await {
            panic!("the dashboard stopped: {e}");
        }
    });
    Served {
        base,
        stop: Some(stop),
    }
}
