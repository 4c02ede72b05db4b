//! What the dashboard's tests share: a private redis-server filled with
//! queue contents the tests know (dead letters, a job leased to a consumer,
//! jobs waiting, jobs on the schedule), and the dashboard served on a free
//! port.

#![allow(dead_code)] // each test file uses its own part

pub mod browser;

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
        "deadline_ms": rpc_protocol::time::unix_ms(due), "result_ttl_ms": 300_000,
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
        // No response timeout: writing an 8 MB fixture on a loaded machine
        // can take longer than the driver's default half second.
        let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
        let con = redis::Client::open(url.as_str())
            .expect("redis URL")
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .expect("connect to the test's Redis");
        Fixture { redis, url, con }
    }

    /// The connection fixtures are written with.
    pub fn connection(&self) -> MultiplexedConnection {
        self.con.clone()
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

/// A worker running in the background until [`Running::stop`].
pub struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<rpc_runtime::StatsSnapshot, rpc_runtime::Error>>,
}

impl Running {
    /// Runs `worker` in a task of its own.
    pub fn spawn(worker: rpc_runtime::Worker) -> Running {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(worker.run_until(async {
            let _ = stopped.await;
        }));
        Running { stop, task }
    }

    /// Stops the worker and waits until it has; panics if it failed.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task
            .await
            .expect("the worker task")
            .expect("the worker");
    }
}

/// An HTTP answer from the dashboard.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request over its own TCP connection to `base`
/// (`http://127.0.0.1:PORT`), with `Host` set to that address unless
/// `headers` names another. What a browser or curl sends, byte for byte.
pub async fn http(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.strip_prefix("http://").expect("an http:// base");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect to the dashboard");
    let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: {address}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if method == "POST" {
        request.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read the answer");
    parse_answer(&raw)
}

fn parse_answer(raw: &[u8]) -> Answer {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        let mut decoded = Vec::new();
        let mut rest = body.as_slice();
        loop {
            let line_end = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("a chunk size");
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..line_end]).trim(), 16)
                .expect("a hex chunk size");
            rest = &rest[line_end + 2..];
            if size == 0 {
                break;
            }
            decoded.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body = decoded;
    }
    Answer {
        status,
        headers,
        body,
    }
}

/// Bytes Redis has sent to its clients so far (`INFO stats`).
pub async fn redis_bytes_sent(url: &str) -> u64 {
    let mut con = redis::Client::open(url)
        .expect("URL")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut con)
        .await
        .expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix("total_net_output_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("total_net_output_bytes")
}

/// The CSRF token in a page's forms.
pub fn csrf_in(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).expect("a form with a CSRF token") + marker.len();
    page[start..].chars().take_while(|c| *c != '"').collect()
}
