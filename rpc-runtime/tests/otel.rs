//! OpenTelemetry across two real processes (issue 12, point 2; feature
//! `otel`): a caller and a worker, each with the tracing-opentelemetry
//! layer and an SDK exporter of its own, and the worker's exported job span
//! has the caller's trace id and the caller's call span as its parent.
//!
//! The worker process is this test binary run again with only the ignored
//! `otel_worker_process` test, which prints the spans its SDK exported.
#![cfg(feature = "otel")]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use rpc_runtime::{Client, DynamicService, Worker};
use rpc_testkit::{ChildGuard, RedisServer};
use serde_json::json;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

/// The environment variable that makes `otel_worker_process` serve.
const WORKER_URL: &str = "RPC_OTEL_TEST_WORKER_URL";

/// An exporter that keeps what it is given.
#[derive(Debug, Clone, Default)]
struct Collect(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Collect {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

impl Collect {
    fn named(&self, name: &str) -> Option<SpanData> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|s| s.name == name)
            .cloned()
    }
}

/// Installs the tracing-opentelemetry layer over an SDK that exports to `spans`.
fn install(spans: Collect) -> SdkTracerProvider {
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(spans)
        .build();
    let tracer = provider.tracer("rpc-runtime-otel-test");
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer)),
    )
    .expect("no other subscriber");
    provider
}

/// The worker process (run by the test below, ignored otherwise): serves
/// one job, then prints `span NAME TRACE_ID SPAN_ID PARENT_SPAN_ID` for
/// every span its SDK exported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the worker process of the cross-process test; runs only when started by it"]
async fn otel_worker_process() {
    let Ok(url) = std::env::var(WORKER_URL) else {
        return;
    };
    let spans = Collect::default();
    let provider = install(spans.clone());
    let worker = Worker::builder(&url)
        .mount(DynamicService::new("Otel").job("echo", |req| async move {
            Ok(json!(req.context.traceparent()))
        }))
        .build()
        .await
        .expect("worker");
    // On a line of its own: libtest has written "test NAME ... " before it.
    println!("\nready");
    let served = spans.clone();
    worker
        .run_until(async move {
            while served.named("rpc.job").is_none() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("worker ran");
    let _ = provider.force_flush();
    for s in spans.0.lock().unwrap().iter() {
        println!(
            "span {} {} {} {}",
            s.name,
            s.span_context.trace_id(),
            s.span_context.span_id(),
            s.parent_span_id
        );
    }
}

/// The caller's application span encloses the call; the worker process
/// exports its job span with the caller's trace id, and the caller's
/// `rpc.call` span (itself a child of the application's span) as parent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workers_exported_span_has_the_callers_trace_and_parent() {
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let exe = std::env::current_exe().expect("this test binary");
    let mut child = ChildGuard::spawn(
        Command::new(exe)
            .args(["otel_worker_process", "--exact", "--include-ignored"])
            .args(["--nocapture", "--test-threads=1"])
            .env(WORKER_URL, &url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped()),
    )
    .expect("worker process");
    let stdout = child.child_mut().stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let wait = Duration::from_secs(60);
    while rx.recv_timeout(wait).expect("the worker says ready") != "ready" {}
    // Kept until the end: the worker process's Redis.
    let _ = &redis;

    let spans = Collect::default();
    let provider = install(spans.clone());
    let client = Client::connect(&url).await.unwrap();
    let answer = client
        .call_and_wait("Otel.echo", json!({}))
        .instrument(tracing::info_span!("request"))
        .await
        .expect("answered");
    let seen = rpc_runtime::telemetry::TraceContext::parse(answer.data.as_str().unwrap()).unwrap();
    let _ = provider.force_flush();
    let request = spans.named("request").expect("the application's span");
    let call = spans.named("rpc.call").expect("the call's span");
    assert_eq!(
        call.span_context.trace_id(),
        request.span_context.trace_id()
    );
    assert_eq!(call.parent_span_id, request.span_context.span_id());

    let mut job = None;
    while let Ok(line) = rx.recv_timeout(wait) {
        let fields: Vec<&str> = line.split(' ').collect();
        if let ["span", "rpc.job", trace, span, parent] = fields[..] {
            job = Some((trace.to_owned(), span.to_owned(), parent.to_owned()));
        }
    }
    let (trace, span, parent) = job.expect("the worker exported its job span");
    assert_eq!(
        trace,
        call.span_context.trace_id().to_string(),
        "the caller's trace"
    );
    assert_eq!(
        parent,
        call.span_context.span_id().to_string(),
        "the caller's span as parent"
    );
    assert_ne!(span, call.span_context.span_id().to_string());
    // The handler's context names the exported span: calls it makes are its children.
    assert_eq!(format!("{:016x}", seen.span_id), span);
    assert!(child
        .wait_timeout(Duration::from_secs(10))
        .expect("wait")
        .is_some());
}
