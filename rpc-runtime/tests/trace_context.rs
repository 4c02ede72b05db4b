//! Spans of calls and jobs (issue 12): a job's span is a child of its
//! caller's span through the W3C `traceparent` in the message's `meta`, with
//! the OpenTelemetry-convention fields; a malformed `traceparent` starts a
//! new trace; a call from a handler through `Context::call_options`
//! continues the trace and inherits the remaining deadline, so a chain of
//! three services never waits past its first caller's deadline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rpc_runtime::telemetry::TraceContext;
use rpc_runtime::{CallOptions, Client, DynamicService, Error, ErrorKind, Worker};
use rpc_testkit::RedisServer;
use serde_json::json;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};
use tracing_subscriber::Layer;

/// A span's fields by name.
type SpanFields = HashMap<String, String>;

/// Every span's name and fields, as recorded.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<HashMap<u64, (String, SpanFields)>>>);

/// Sets its flag when dropped: a handler's future ending, however it ends.
struct SetOnDrop(Arc<std::sync::atomic::AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// What each hop of a chain saw: its job, time left, traceparent.
type Hops = Arc<Mutex<Vec<(String, Option<Duration>, Option<String>)>>>;

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: tracing::Subscriber> Layer<S> for Captured {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: LayerContext<'_, S>) {
        let mut fields = HashMap::new();
        attrs.record(&mut Fields(&mut fields));
        let name = attrs.metadata().name().to_owned();
        self.0.lock().unwrap().insert(id.into_u64(), (name, fields));
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, _: LayerContext<'_, S>) {
        if let Some((_, fields)) = self.0.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(fields));
        }
    }
}

impl Captured {
    /// The spans called `name` of service `service`.
    fn spans(&self, name: &str, service: &str) -> Vec<SpanFields> {
        self.0
            .lock()
            .unwrap()
            .values()
            .filter(|(n, f)| n == name && f.get("rpc.service").map(String::as_str) == Some(service))
            .map(|(_, f)| f.clone())
            .collect()
    }
}

/// The recording subscriber, process-wide: a thread-local default would
/// race with the other tests over the callsites' cached interest.
fn captured() -> Captured {
    static CAPTURED: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let captured = Captured::default();
            tracing::subscriber::set_global_default(
                tracing_subscriber::registry().with(captured.clone()),
            )
            .expect("no other subscriber");
            captured
        })
        .clone()
}

async fn start(url: &str, service: DynamicService) -> tokio::sync::oneshot::Sender<()> {
    let worker = Worker::builder(url).mount(service).build().await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(worker.run_until(async {
        let _ = stopped.await;
    }));
    stop
}

/// One process, a recording subscriber: the client's `rpc.call` span and
/// the worker's `rpc.job` span share the trace id, the job's parent is the
/// call's span, and both carry the RPC and messaging fields.
#[tokio::test]
async fn a_jobs_span_is_a_child_of_its_callers_span() {
    let captured = captured();
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let stop = start(
        &url,
        DynamicService::new("Echo").job("echo", |req| async move {
            Ok(json!(req.context.traceparent()))
        }),
    )
    .await;
    let client = Client::connect(&url).await.unwrap();
    let answer = client.call_and_wait("Echo.echo", json!({})).await.unwrap();
    let _ = stop.send(());

    let calls = captured.spans("rpc.call", "Echo");
    let jobs = captured.spans("rpc.job", "Echo");
    assert_eq!((calls.len(), jobs.len()), (1, 1), "{calls:?} {jobs:?}");
    let (call, job) = (&calls[0], &jobs[0]);
    assert_eq!(job["trace_id"], call["trace_id"]);
    assert_eq!(job["parent_span_id"], call["span_id"]);
    assert_ne!(job["span_id"], call["span_id"]);
    for span in [call, job] {
        assert_eq!(span["rpc.system"], "redis_rpc");
        assert_eq!(span["rpc.service"], "Echo");
        assert_eq!(span["rpc.method"], "echo");
        assert_eq!(span["rpc.redis_rpc.outcome"], "succeeded");
        assert_eq!(span["messaging.message.id"], answer.id.as_str());
    }
    assert_eq!(job["rpc.redis_rpc.attempt"], "1");
    assert!(job.contains_key("rpc.redis_rpc.queue_wait"), "{job:?}");
    // The handler sees its own span's context.
    let seen = TraceContext::parse(answer.data.as_str().unwrap()).unwrap();
    assert_eq!(format!("{:016x}", seen.span_id), job["span_id"]);
}

/// A `traceparent` that is not one (from a buggy or hostile peer) is
/// ignored: the job runs, in a new trace, with no parent.
#[tokio::test]
async fn a_malformed_traceparent_starts_a_new_trace() {
    let captured = captured();
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let stop = start(
        &url,
        DynamicService::new("Bad").job("echo", |_| async move { Ok(json!(1)) }),
    )
    .await;
    let client = Client::connect(&url).await.unwrap();
    // Sent as is: straight onto the queue, as a client in another language would.
    let message = json!({
        "v": 1, "id": "bad-trace", "job": "Bad.echo", "params": {},
        "meta": {"traceparent": "00-zzzz-not-hex-01", "tracestate": "x=1"},
    });
    client
        .backend()
        .push_job("Bad", message.to_string().as_bytes())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while captured
        .spans("rpc.job", "Bad")
        .iter()
        .all(|s| !s.contains_key("rpc.redis_rpc.outcome"))
    {
        assert!(Instant::now() < deadline, "the job never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    let job = &captured.spans("rpc.job", "Bad")[0];
    assert_eq!(job["rpc.redis_rpc.outcome"], "succeeded");
    assert_eq!(job["trace_id"].len(), 32);
    assert!(!job.contains_key("parent_span_id"), "{job:?}");
}

/// Three services, A calls B calls C through their contexts; C takes far
/// longer than the first caller allows. Nobody waits past the first
/// caller's 1 s deadline: each hop's deadline is within it, C is cancelled
/// at it, and all three jobs are in the first caller's trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_three_services_keeps_the_first_callers_deadline_and_trace() {
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let client = Client::connect(&url).await.unwrap();
    let seen: Hops = Arc::default();
    // C's handler finished its sleep / ended either way (finished or
    // dropped by its worker at the deadline).
    let c_finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let c_ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hop = |next: Option<&'static str>| {
        let (client, seen, c_finished, c_ended) = (
            client.clone(),
            seen.clone(),
            c_finished.clone(),
            c_ended.clone(),
        );
        move |req: rpc_runtime::Request| {
            let (client, seen, c_finished, c_ended) = (
                client.clone(),
                seen.clone(),
                c_finished.clone(),
                c_ended.clone(),
            );
            async move {
                let ctx = &req.context;
                seen.lock().unwrap().push((
                    ctx.job().to_owned(),
                    ctx.remaining(),
                    ctx.traceparent(),
                ));
                match next {
                    Some(next) => {
                        let r = client
                            .call(next, json!({}))
                            .options(ctx.call_options())
                            .response()
                            .await;
                        // The next hop's answer, or null if it failed.
                        Ok(json!(r.map(|r| r.data).ok()))
                    }
                    None => {
                        let _ended = SetOnDrop(c_ended);
                        tokio::time::sleep(Duration::from_secs(20)).await;
                        c_finished.store(true, std::sync::atomic::Ordering::SeqCst);
                        Ok(json!("done"))
                    }
                }
            }
        }
    };
    let stop = start(
        &url,
        DynamicService::new("Chain")
            .job("a", hop(Some("Chain.b")))
            .job("b", hop(Some("Chain.c")))
            .job("c", hop(None)),
    )
    .await;
    let first = TraceContext::new_root();
    let mut options = CallOptions::timeout(Duration::from_secs(1));
    options
        .metadata
        .insert("traceparent".into(), first.traceparent());
    let t0 = Instant::now();
    let r = client
        .call("Chain.a", json!({}))
        .options(options.clone())
        .response()
        .await;
    // The caller's own timeout, or A's answer that its deadline passed or
    // that the chain failed further down (B's, or C's, deadline), whichever
    // comes first: never a finished chain (C's "done" passed back up).
    match &r {
        Err(Error::Timeout { .. }) => {}
        Err(e) if e.remote_kind() == Some(ErrorKind::DeadlineExceeded) => {}
        Ok(answer) if !answer.data.to_string().contains("done") => {}
        other => panic!("the chain finished or failed otherwise: {other:?}"),
    }
    // Given up at the 1 s deadline, not when C's 20 s were up (a far
    // bound, for a loaded machine).
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    // C's handler ends: dropped at the deadline, not after its 20 s.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !c_ended.load(std::sync::atomic::Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "C's handler never ended");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop.send(());
    assert!(
        !c_finished.load(std::sync::atomic::Ordering::SeqCst),
        "C ran past the deadline"
    );
    let seen = seen.lock().unwrap().clone();
    let jobs: Vec<&str> = seen.iter().map(|(j, _, _)| j.as_str()).collect();
    assert_eq!(jobs, ["Chain.a", "Chain.b", "Chain.c"]);
    for (job, remaining, traceparent) in &seen {
        let remaining = remaining.unwrap_or_else(|| panic!("{job} has no deadline"));
        assert!(remaining <= Duration::from_secs(1), "{job}: {remaining:?}");
        let trace = TraceContext::parse(traceparent.as_deref().expect("in a trace")).unwrap();
        assert_eq!(trace.trace_id, first.trace_id, "{job}");
    }
}
