//! The job lifecycle through the public API, in-process, against a private
//! redis-server and the memory backend: delayed calls, retries with
//! backoff, cancellation, idempotency keys, pause and resume, and garbage
//! where the lifecycle keeps its state. One test binary, one file per
//! capability.

mod cancel;
mod cluster;
mod delayed;
mod garbage;
mod once;
mod pause;
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
    let (l1, l2, l3, l4) = (log.clone(), log.clone(), log.clone(), log);
    DynamicService::new(SERVICE)
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
    Worker::builder(url)
        .mount(service(log))
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
