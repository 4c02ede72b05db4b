//! Observability of a real worker process (issue 12): its Prometheus
//! metrics scraped over HTTP and parsed, its health checks, a metrics
//! address it cannot bind, and the trace context crossing the process
//! boundary.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use rpc_chaos::{timeout, Event, WorkerProcess};
use rpc_runtime::telemetry::TraceContext;
use rpc_runtime::{CallOptions, Client, Error, ErrorKind};
use rpc_testkit::RedisServer;
use serde_json::json;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_chaos-worker"))
}

/// Starts a chaos-worker with a metrics listener on a free port (and
/// `args`, `env`) and returns it with the listener's address.
fn worker_with_metrics(url: &str, args: &[&str], env: &[(&str, &str)]) -> (WorkerProcess, String) {
    let args = [&["--metrics-addr", "127.0.0.1:0"], args].concat();
    let mut worker = WorkerProcess::start_with_env(bin(), url, &args, env).expect("worker");
    let addr = worker
        .drain()
        .iter()
        .find_map(|e| match e {
            Event::Other(line) => line.strip_prefix("metrics ").map(str::to_owned),
            _ => None,
        })
        .expect("the worker prints its metrics address before `ready`");
    (worker, addr)
}

/// `GET path` over plain HTTP/1.1: the status code and the body.
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the metrics listener");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    (status, body.to_owned())
}

/// The value of the sample `name` whose labels include `labels`.
fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .find_map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => Some(v),
            _ => None,
        })
}

fn scrape(addr: &str) -> prometheus_parse::Scrape {
    let (status, body) = get(addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("parses")
}

/// Calls with known outcomes, then one scrape: every figure the test caused
/// is there, under Prometheus names and with the right labels, and the
/// queue gauges read from Redis agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workers_metrics_count_what_its_jobs_did() {
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let (_worker, addr) = worker_with_metrics(&url, &[], &[]);
    let client = Client::connect(&url).await.unwrap();
    for n in 1..=3 {
        let r = client
            .call("Chaos.square", json!({ "n": n }))
            .options(timeout(10_000))
            .response()
            .await;
        assert_eq!(r.unwrap().data, json!(n * n));
    }
    let overflow = client
        .call("Chaos.square", json!({ "n": i64::MAX }))
        .options(timeout(10_000))
        .response()
        .await
        .unwrap_err();
    assert_eq!(
        overflow.remote_kind(),
        Some(ErrorKind::Handler),
        "{overflow}"
    );
    let unknown = client
        .call("Chaos.nope", json!({}))
        .options(timeout(10_000))
        .response()
        .await
        .unwrap_err();
    assert_eq!(
        unknown.remote_kind(),
        Some(ErrorKind::UnknownJob),
        "{unknown}"
    );
    // The caller gives up at 300 ms; the worker cancels the job then (and
    // its answer saying so may beat the caller's own timeout).
    let slow = client
        .call("Chaos.sleep", json!({ "ms": 3_000 }))
        .options(timeout(300))
        .response()
        .await;
    let expired = match &slow {
        Err(Error::Timeout { .. }) => true,
        Err(e) => e.remote_kind() == Some(ErrorKind::DeadlineExceeded),
        Ok(_) => false,
    };
    assert!(expired, "{slow:?}");
    // A message that is not JSON: dead-lettered unread.
    redis.cli(["XADD", "rpc:{Chaos}:jobs", "*", "m", "not json"]);

    let jobs = |job: &str, outcome: &str| {
        let scrape = scrape(&addr);
        sample(
            &scrape,
            "rpc_worker_jobs_total",
            &[
                ("rpc_service", "Chaos"),
                ("rpc_method", job),
                ("outcome", outcome),
            ],
        )
    };
    // The cancelled sleep and the dead letter end after the calls returned.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while (jobs("sleep", "timeout").is_none() || jobs("(unknown)", "dead").is_none())
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s = scrape(&addr);
    let jobs = |job: &str, outcome: &str| {
        sample(
            &s,
            "rpc_worker_jobs_total",
            &[
                ("rpc_service", "Chaos"),
                ("rpc_method", job),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(jobs("square", "succeeded"), Some(3.0));
    assert_eq!(jobs("square", "failed"), Some(1.0));
    assert_eq!(jobs("(unknown)", "unknown_job"), Some(1.0));
    assert_eq!(jobs("sleep", "timeout"), Some(1.0));
    assert_eq!(jobs("(unknown)", "dead"), Some(1.0));
    let square = [("rpc_service", "Chaos"), ("rpc_method", "square")];
    assert_eq!(
        sample(&s, "rpc_worker_handler_duration_seconds_count", &square),
        Some(4.0)
    );
    assert_eq!(
        sample(&s, "rpc_worker_queue_wait_seconds_count", &square),
        Some(4.0)
    );
    assert_eq!(sample(&s, "rpc_worker_jobs_in_flight", &[]), Some(0.0));
    assert_eq!(
        sample(&s, "rpc_worker_reclaimed_jobs_total", &[]),
        Some(0.0)
    );
    assert!(sample(&s, "rpc_worker_broker_errors_total", &[]).is_some());
    // The queues' gauges are `rpc exporter`'s, once for the fleet, not
    // every worker's (rpc-cli/tests/metrics_conventions.rs).
    for gone in [
        "rpc_queue_dead_letters",
        "rpc_queue_depth",
        "rpc_queue_consumers",
    ] {
        assert_eq!(
            sample(&s, gone, &[("rpc_service", "Chaos")]),
            None,
            "{gone}"
        );
    }
}

/// `/healthz` and `/readyz` answer 200 while the worker serves and its
/// Redis answers; once Redis is gone, the worker process is reported not
/// ready within 5 s, naming the broker, and still alive: liveness does not
/// depend on Redis (restarting the worker would not bring Redis back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_within_5s_when_redis_is_gone_and_liveness_does_not() {
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    // A short visibility timeout makes the liveness window as short as it
    // gets (two janitor periods of 0.2 s, plus 20 s for a broker call).
    let (_worker, addr) = worker_with_metrics(&url, &["--visibility-ms", "600"], &[]);
    assert_eq!(get(&addr, "/healthz"), (200, "ok\n".to_owned()));
    // `ready` is printed just before the worker starts serving; a readiness
    // probe polls.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while get(&addr, "/readyz").0 != 200 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(get(&addr, "/readyz"), (200, "ok\n".to_owned()));
    assert_eq!(get(&addr, "/nothing").0, 404);
    let gone = std::time::Instant::now();
    drop(redis);
    let deadline = gone + Duration::from_secs(30);
    let (status, body) = loop {
        let (status, body) = get(&addr, "/readyz");
        if status != 200 || std::time::Instant::now() > deadline {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let took = gone.elapsed();
    assert_eq!(status, 503, "{body}");
    assert!(
        took < Duration::from_secs(5),
        "not ready only after {took:?}"
    );
    assert!(body.contains("broker"), "{body}");
    // Longer than the old liveness window (5.4 s here), which counted the
    // broker's silence.
    while gone.elapsed() < Duration::from_secs(8) {
        assert_eq!(get(&addr, "/healthz"), (200, "ok\n".to_owned()));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(get(&addr, "/readyz").0, 503);
}

/// A metrics address that is taken: the worker does not start, and says why.
#[test]
fn a_metrics_address_that_cannot_be_bound_fails_the_start_clearly() {
    let redis = RedisServer::start().expect("redis");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = std::process::Command::new(bin())
        .args(["--url", &redis.url(), "--metrics-addr", &addr])
        .output()
        .expect("run chaos-worker");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started anyway: {stderr}");
    assert!(
        stderr.contains(&format!("serve metrics and health checks on {addr}")),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("ready"));
}

/// A caller's trace context crosses into the worker process: the job's
/// context is in the caller's trace, as a child span when the worker
/// records spans, and a malformed `traceparent` starts a new trace instead
/// of failing the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_context_crosses_into_the_worker_process() {
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let (_worker, _) = worker_with_metrics(&url, &[], &[("RUST_LOG", "error,rpc_runtime=info")]);
    let client = Client::connect(&url).await.unwrap();
    let caller = TraceContext::new_root();
    let mut options = CallOptions::timeout(Duration::from_secs(10));
    options
        .metadata
        .insert("traceparent".into(), caller.traceparent());
    let answer = client
        .call("Chaos.context", json!({}))
        .options(options.clone())
        .response()
        .await
        .unwrap();
    let job = TraceContext::parse(answer.data["traceparent"].as_str().expect("in a trace"))
        .expect("a valid traceparent");
    assert_eq!(job.trace_id, caller.trace_id, "the caller's trace");
    assert_ne!(job.span_id, caller.span_id, "the worker's own span");

    options
        .metadata
        .insert("traceparent".into(), "00-not-a-trace-01".into());
    let answer = client
        .call("Chaos.context", json!({}))
        .options(options.clone())
        .response()
        .await
        .expect("a malformed traceparent is no error");
    let fresh = TraceContext::parse(answer.data["traceparent"].as_str().expect("a new trace"))
        .expect("valid");
    assert_ne!(fresh.trace_id, caller.trace_id);
}
