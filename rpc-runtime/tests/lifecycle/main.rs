//! The job lifecycle through the public API, in-process, against a private
//! redis-server and the memory backend: delayed calls, retries with
//! backoff, cancellation, idempotency keys, pause and resume, rate limits,
//! and garbage where the lifecycle keeps its state. One test binary, one
//! file per capability.
//!
//! Tests wait on events with generous deadlines ([`wait_until`],
//! [`PATIENCE`]): what the handlers logged ([`Log`]), what the worker says
//! it learned ([`WorkerEvents`]: a pause seen, a cancellation learned), a
//! reply; never a sleep followed by a look.

mod cancel;
mod cluster;
mod delayed;
mod garbage;
mod idle;
mod once;
mod pause;
mod priority;
mod rate;
mod retries;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rpc_runtime::{Backoff, Client, DynamicService, HandlerError, Worker, WorkerBuilder};
use rpc_testkit::RedisServer;
use serde_json::json;

/// The service every test mounts.
pub const SERVICE: &str = "Life";

/// A worker running in this process until dropped (or stopped).
pub struct Running {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<rpc_runtime::StatsSnapshot, rpc_runtime::Error>>>,
}

impl Running {
    pub async fn stop(mut self) -> rpc_runtime::StatsSnapshot {
        let _ = self.stop.take().map(|s| s.send(()));
        self.task
            .take()
            .expect("running")
            .await
            .expect("worker task")
            .expect("worker result")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// One run a handler saw: job name, call id, attempt, when.
type Run = (String, String, u32, Instant);

/// What the handlers saw.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<Run>>>);

impl Log {
    pub fn runs(&self, job: &str) -> Vec<(String, u32, Instant)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(j, ..)| j == job)
            .map(|(_, id, attempt, at)| (id.clone(), *attempt, *at))
            .collect()
    }

    fn record(&self, job: &str, ctx: &rpc_runtime::Context) {
        self.0.lock().unwrap().push((
            job.to_owned(),
            ctx.id().to_string(),
            ctx.attempt(),
            Instant::now(),
        ));
    }
}

/// The test service: `echo` answers its data; `flaky` fails until the
/// attempt given in `ok_on` (0: never); `slow` sleeps `ms`, ignoring
/// cancellation; `polite` sleeps `ms` unless cancelled.
pub fn service(log: Log) -> DynamicService {
    service_named(SERVICE, log)
}

/// [`service`] under another name: a test that pauses a service has one of
/// its own, so that the pauses other tests make are not taken for its own
/// (see [`WorkerEvents`]).
pub fn service_named(name: &str, log: Log) -> DynamicService {
    let (l1, l2, l3, l4) = (log.clone(), log.clone(), log.clone(), log);
    DynamicService::new(name)
        .job("echo", move |req| {
            let log = l1.clone();
            async move {
                log.record("echo", &req.context);
                req.respond(req.data.clone())
            }
        })
        .job("flaky", move |req| {
            let log = l2.clone();
            async move {
                log.record("flaky", &req.context);
                let ok_on = req.data["ok_on"].as_u64().unwrap_or(0) as u32;
                if ok_on != 0 && req.context.attempt() >= ok_on {
                    return req.respond(json!({"attempt": req.context.attempt()}));
                }
                Err(HandlerError::retry(format!(
                    "not yet (attempt {})",
                    req.context.attempt()
                )))
            }
        })
        .job("slow", move |req| {
            let log = l3.clone();
            async move {
                log.record("slow", &req.context);
                let ms = req.data["ms"].as_u64().unwrap_or(30_000);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                req.respond(json!("done"))
            }
        })
        .job("polite", move |req| {
            let log = l4.clone();
            async move {
                log.record("polite", &req.context);
                let ms = req.data["ms"].as_u64().unwrap_or(30_000);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(ms)) => req.respond(json!("done")),
                    _ = req.context.cancelled() => {
                        log_cancel_seen(&req.context);
                        Err(HandlerError::fatal("stopped: cancelled"))
                    }
                }
            }
        })
}

/// When a `polite` handler saw its cancellation (for the latency figure).
pub static CANCEL_SEEN: Mutex<Vec<(String, Instant)>> = Mutex::new(Vec::new());

fn log_cancel_seen(ctx: &rpc_runtime::Context) {
    CANCEL_SEEN
        .lock()
        .unwrap()
        .push((ctx.id().to_string(), Instant::now()));
}

/// A worker builder for `url` with the test service and quick settings.
pub fn worker(url: &str, log: Log) -> WorkerBuilder {
    settings(Worker::builder(url).mount(service(log)))
}

/// The quick settings every test's worker has.
pub fn settings(builder: WorkerBuilder) -> WorkerBuilder {
    builder
        .max_attempts(3)
        .backoff(Backoff::Exponential {
            base_ms: 200,
            max_ms: 5_000,
        })
        .cancel_grace(Duration::from_secs(1))
}

/// Starts a built worker.
pub async fn start(builder: WorkerBuilder) -> Running {
    let worker = builder.build().await.expect("worker connects");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(worker.run_until(async move {
        let _ = rx.await;
    }));
    Running {
        stop: Some(tx),
        task: Some(task),
    }
}

pub async fn client(url: &str) -> Client {
    Client::builder(url)
        .default_timeout(Duration::from_secs(10))
        .connect()
        .await
        .expect("client connects")
}

/// A fresh memory broker's URL.
pub fn memory_url(test: &str) -> String {
    format!(
        "memory://{test}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )
}

/// Runs `case` on a private redis-server and on a memory broker.
pub async fn on_both<F, Fut>(test: &str, case: F)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    rpc_testkit::require_redis_server();
    let redis = RedisServer::start().expect("redis");
    case(redis.url()).await;
    case(memory_url(test)).await;
}

/// Polls `check` every 10 ms until it holds; panics with `what` after
/// `within`. The condition is what a test waits for; the deadline, generous,
/// only ends a test that would otherwise hang.
pub async fn wait_until(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// How long any waited-for event may take on a loaded machine.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// What the workers of this process said they learned, from their log
/// events: which services they saw paused or resumed, and which call ids
/// they learned are cancelled. It is how a test knows that a worker has
/// seen a pause or a cancellation, rather than waiting "long enough".
#[derive(Clone, Default)]
pub struct WorkerEvents(Arc<Mutex<Vec<Learned>>>);

/// One thing a worker learned.
#[derive(Clone, Debug, PartialEq)]
pub enum Learned {
    /// `service`'s pause flag, as a lifecycle poll saw it change.
    Paused { service: String, paused: bool },
    /// A call id the worker learned is cancelled.
    Cancelled { id: String },
}

impl WorkerEvents {
    /// The process-wide recorder (installed on first use): a thread-local
    /// subscriber would miss the events of the workers' tasks.
    pub fn get() -> WorkerEvents {
        use tracing_subscriber::layer::SubscriberExt;
        static EVENTS: std::sync::OnceLock<WorkerEvents> = std::sync::OnceLock::new();
        EVENTS
            .get_or_init(|| {
                let events = WorkerEvents::default();
                tracing::subscriber::set_global_default(
                    tracing_subscriber::registry().with(events.clone()),
                )
                .expect("no other subscriber");
                events
            })
            .clone()
    }

    /// How many times a worker has seen `service` turn `paused`.
    pub fn pauses(&self, service: &str, paused: bool) -> usize {
        let wanted = Learned::Paused {
            service: service.to_owned(),
            paused,
        };
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|l| **l == wanted)
            .count()
    }

    /// Whether a worker has learned that call `id` is cancelled.
    pub fn knows_cancelled(&self, id: &str) -> bool {
        let wanted = Learned::Cancelled { id: id.to_owned() };
        self.0.lock().unwrap().contains(&wanted)
    }
}

/// The fields of one event this recorder reads.
#[derive(Default)]
struct Fields {
    message: String,
    queue: Option<String>,
    paused: Option<bool>,
    id: Option<String>,
}

impl tracing::field::Visit for Fields {
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        if field.name() == "paused" {
            self.paused = Some(value);
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "queue" => self.queue = Some(value.to_owned()),
            "id" => self.id = Some(value.to_owned()),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        match field.name() {
            "message" => self.message = text,
            "queue" => self.queue = Some(text.trim_matches('"').to_owned()),
            "id" => self.id = Some(text.trim_matches('"').to_owned()),
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for WorkerEvents {
    fn enabled(
        &self,
        metadata: &tracing::Metadata<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        metadata.target().starts_with("rpc_runtime::worker")
            || metadata.target().starts_with("rpc_runtime::context")
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let learned = match fields {
            Fields {
                queue: Some(service),
                paused: Some(paused),
                ref message,
                ..
            } if message.starts_with("service ") => Learned::Paused { service, paused },
            Fields {
                id: Some(id),
                ref message,
                ..
            } if message == "learned a cancellation" => Learned::Cancelled { id },
            _ => return,
        };
        self.0.lock().unwrap().push(learned);
    }
}
