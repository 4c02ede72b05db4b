//! OpenTelemetry over real OTLP across real processes (feature `otlp`): a
//! caller process and a worker process, each set up with nothing but
//! `telemetry::otlp::install`, post their spans over HTTP/protobuf to a
//! receiver this test runs (`receiver`), and the worker's job span
//! arrives with the caller's trace id and the caller's call span as its
//! parent.
//!
//! The caller and the worker are this test binary run again with only the
//! ignored `otlp_caller_process` or `otlp_worker_process` test. The worker
//! finds the receiver through `OTEL_EXPORTER_OTLP_ENDPOINT`, the caller is
//! given it in code: both ways an operator configures the endpoint.
#![cfg(feature = "otlp")]

#[path = "otlp/receiver.rs"]
mod receiver;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use rpc_runtime::telemetry::otlp;
use rpc_runtime::{Client, DynamicService, Worker};
use rpc_testkit::{ChildGuard, RedisServer};
use serde_json::json;
use tracing::Instrument;

use receiver::{ReceivedSpan, Receiver};

/// The Redis URL a child process serves or calls on.
const REDIS_URL: &str = "RPC_OTLP_TEST_REDIS_URL";
/// The receiver's base URL, which the caller passes to `install` in code.
const CALLER_ENDPOINT: &str = "RPC_OTLP_TEST_ENDPOINT";
/// The service names the two processes export as.
const CALLER_SERVICE: &str = "otlp-test-caller";
const WORKER_SERVICE: &str = "otlp-test-worker";
/// The longest any step may take before the test gives up.
const PATIENCE: Duration = Duration::from_secs(60);

/// The worker process (started by the test below, ignored otherwise):
/// exports through `OTEL_EXPORTER_OTLP_ENDPOINT`, serves one job, shuts
/// down gracefully and flushes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the worker process of the cross-process test; runs only when started by it"]
async fn otlp_worker_process() {
    let Ok(url) = std::env::var(REDIS_URL) else {
        return;
    };
    let otlp =
        otlp::install(WORKER_SERVICE, None).expect("OTLP export set up from the environment");
    let served = Arc::new(tokio::sync::Notify::new());
    let on_job = served.clone();
    let worker = Worker::builder(&url)
        .mount(
            DynamicService::new("Otlp")
                .job("echo", move |req| {
                    on_job.notify_one();
                    async move { Ok(json!(req.context.traceparent())) }
                })
                .job("fail", |_| async move {
                    Err::<serde_json::Value, _>(rpc_runtime::HandlerError::fatal("no"))
                }),
        )
        .build()
        .await
        .expect("worker");
    // On a line of its own: libtest has written "test NAME ... " before it.
    println!("\nready");
    // A graceful stop finishes the job (and ends its span) before returning.
    worker
        .run_until(async move { served.notified().await })
        .await
        .expect("worker ran");
    otlp.shutdown().expect("the spans were exported");
}

/// The caller process: exports to the endpoint given in code, makes one
/// call inside an application span, and flushes by dropping the guard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the caller process of the cross-process test; runs only when started by it"]
async fn otlp_caller_process() {
    let (Ok(url), Ok(endpoint)) = (std::env::var(REDIS_URL), std::env::var(CALLER_ENDPOINT)) else {
        return;
    };
    let otlp = otlp::install(CALLER_SERVICE, Some(&endpoint)).expect("OTLP export set up");
    assert_eq!(otlp.endpoint(), format!("{endpoint}/v1/traces"));
    let client = Client::connect(&url).await.expect("client");
    // First a call that fails (the worker stops after the echo).
    client
        .call_and_wait("Otlp.fail", json!({}))
        .await
        .expect_err("the handler fails");
    let answer = client
        .call_and_wait("Otlp.echo", json!({}))
        .instrument(tracing::info_span!("request"))
        .await
        .expect("answered");
    assert!(
        answer.data.is_string(),
        "the worker's traceparent: {answer:?}"
    );
    drop(client);
    // The guard flushes when dropped (the worker shuts down explicitly):
    // the receiver must have the spans by the time this process exits.
    drop(otlp);
}

/// The caller's application span encloses the call; both processes send
/// their spans over OTLP; the worker's job span has the caller's trace id
/// and the caller's `rpc.call` span (itself a child of the application's
/// span) as parent, and both carry the RPC and messaging conventions'
/// kind, attributes and types.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workers_span_sent_over_otlp_has_the_callers_trace_and_parent() {
    let receiver = Receiver::start().await;
    let spans = spans_of_one_call(&receiver, &[]);
    check_trace_and_conventions(&spans);
}

/// The same to a collector that speaks only https, with a certificate of a
/// private CA that the processes are told to trust by the standard
/// `OTEL_EXPORTER_OTLP_CERTIFICATE`: every span arrives over TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_https_collector_whose_ca_is_named_by_the_standard_variable() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let tls = rpc_testkit::TlsFiles::generate(dir.path()).expect("throwaway certificates");
    let receiver = Receiver::start_tls(&tls).await;
    assert!(receiver.endpoint().starts_with("https://"));
    let ca = tls.ca_cert.to_str().expect("a UTF-8 path").to_owned();
    let spans = spans_of_one_call(&receiver, &[("OTEL_EXPORTER_OTLP_CERTIFICATE", ca)]);
    check_trace_and_conventions(&spans);
}

/// Runs the worker and the caller processes against `receiver` (with
/// `env` added to both) and returns the spans it received.
fn spans_of_one_call(receiver: &Receiver, env: &[(&str, String)]) -> Vec<ReceivedSpan> {
    let redis = RedisServer::start().expect("redis");
    let mut worker = Role::start("otlp_worker_process", &redis.url(), |c| {
        c.envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
    });
    worker.wait_for_line("ready");
    let mut caller = Role::start("otlp_caller_process", &redis.url(), |c| {
        c.envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env(CALLER_ENDPOINT, receiver.endpoint())
    });
    // Each process exits only after its last export was answered.
    caller.expect_success();
    worker.expect_success();
    assert!(receiver.refused().is_empty(), "{:?}", receiver.refused());
    receiver.spans()
}

fn check_trace_and_conventions(spans: &[ReceivedSpan]) {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    let find = |service: &str, name: &str| -> ReceivedSpan {
        spans
            .iter()
            .find(|s| {
                s.service == service && s.name == name && s.attribute("rpc.method") != Some("fail")
            })
            .cloned()
            .unwrap_or_else(|| panic!("no {name} span from {service} in {spans:#?}"))
    };
    let failed = |service: &str, name: &str| -> ReceivedSpan {
        spans
            .iter()
            .find(|s| {
                s.service == service && s.name == name && s.attribute("rpc.method") == Some("fail")
            })
            .cloned()
            .unwrap_or_else(|| panic!("no failed {name} span from {service} in {spans:#?}"))
    };
    // A failure: the span's status is error (2), `error.type` the kind.
    for span in [
        failed(CALLER_SERVICE, "rpc.call"),
        failed(WORKER_SERVICE, "rpc.job"),
    ] {
        assert_eq!(span.status, 2, "{span:?}");
        assert_eq!(span.attribute("error.type"), Some("handler"), "{span:?}");
        assert_eq!(
            span.attribute("rpc.redis_rpc.outcome"),
            Some("failed"),
            "{span:?}"
        );
    }
    let request = find(CALLER_SERVICE, "request");
    let call = find(CALLER_SERVICE, "rpc.call");
    let job = find(WORKER_SERVICE, "rpc.job");

    assert_eq!(
        call.trace_id, request.trace_id,
        "the call is in the application's trace"
    );
    assert_eq!(
        call.parent_span_id, request.span_id,
        "the call is the application span's child"
    );
    assert_eq!(job.trace_id, call.trace_id, "the caller's trace");
    assert_eq!(
        job.parent_span_id, call.span_id,
        "the caller's span as parent"
    );
    assert_ne!(job.span_id, call.span_id);
    // SpanKind: 3 client, 5 consumer (from the spans' `otel.kind`).
    assert_eq!((call.kind, job.kind), (3, 5));
    for span in [&call, &job] {
        assert_eq!(span.attribute("rpc.system"), Some("redis_rpc"), "{span:?}");
        assert_eq!(span.attribute("rpc.method"), Some("echo"), "{span:?}");
        assert_eq!(
            span.attribute("messaging.system"),
            Some("redis"),
            "{span:?}"
        );
        assert_eq!(
            span.attribute("messaging.destination.name"),
            Some("Otlp"),
            "{span:?}"
        );
        assert_eq!(
            span.attribute("rpc.redis_rpc.outcome"),
            Some("succeeded"),
            "{span:?}"
        );
        assert!(span.attribute("messaging.message.id").is_some(), "{span:?}");
        // Neither deprecated nor invented names.
        for gone in [
            "messaging.operation",
            "rpc.attempt",
            "messaging.queue_wait_ms",
            "rpc.outcome",
        ] {
            assert!(span.value(gone).is_none(), "{gone} in {span:?}");
        }
        assert_ne!(span.status, 2, "a success is not an error: {span:?}");
    }
    assert_eq!(call.attribute("messaging.operation.type"), Some("send"));
    assert_eq!(job.attribute("messaging.operation.type"), Some("process"));
    // Numbers as numbers.
    assert_eq!(
        job.value("rpc.redis_rpc.attempt"),
        Some(&Value::IntValue(1)),
        "{job:?}"
    );
    assert!(
        matches!(job.value("rpc.redis_rpc.queue_wait"), Some(Value::DoubleValue(s)) if *s >= 0.0),
        "{job:?}"
    );
}

/// A child process running one of the ignored tests above, its output
/// gathered line by line.
struct Role {
    name: &'static str,
    child: ChildGuard,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Role {
    fn start(
        name: &'static str,
        redis_url: &str,
        env: impl FnOnce(&mut Command) -> &mut Command,
    ) -> Role {
        let exe = std::env::current_exe().expect("this test binary");
        let mut command = Command::new(exe);
        command
            .args([name, "--exact", "--include-ignored", "--nocapture"])
            .arg("--test-threads=1")
            .env(REDIS_URL, redis_url)
            // The test decides the endpoints and names, not the environment.
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .env_remove("OTEL_SERVICE_NAME")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        env(&mut command);
        let mut child = ChildGuard::spawn(&mut command).expect("start the child process");
        let (tx, lines) = mpsc::channel();
        let stdout = child.child_mut().stdout.take().expect("piped");
        let stderr = child.child_mut().stderr.take().expect("piped");
        for out in [Box::new(stdout) as Box<dyn Read + Send>, Box::new(stderr)] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        Role {
            name,
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Blocks (off the async threads) until the process prints `line`.
    fn wait_for_line(&mut self, line: &str) {
        tokio::task::block_in_place(|| loop {
            match self.lines.recv_timeout(PATIENCE) {
                Ok(l) if l == line => return,
                Ok(l) => self.seen.push(l),
                Err(e) => panic!("{} never said {line:?} ({e}): {:#?}", self.name, self.seen),
            }
        })
    }

    /// Blocks until the process exits, and fails the test unless it passed.
    fn expect_success(&mut self) {
        let status = tokio::task::block_in_place(|| self.child.wait_timeout(PATIENCE))
            .expect("wait for the child");
        self.seen.extend(self.lines.try_iter());
        match status {
            Some(status) if status.success() => {}
            Some(status) => panic!("{} failed ({status}): {:#?}", self.name, self.seen),
            None => panic!("{} did not finish: {:#?}", self.name, self.seen),
        }
    }
}
