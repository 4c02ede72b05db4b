//! `rpc call --progress` and `rpc fetch ID --wait D --progress` with the
//! real binary against a private redis-server: stderr that is not a
//! terminal gets one plain line per new progress value, stdout only the
//! answer; the fetch watches a call another process placed, by its id.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rpc_runtime::{DynamicService, HandlerError, Worker};
use rpc_testkit::RedisServer;
use serde_json::json;

mod support;

use support::rpc_async;

/// How long any awaited event may take on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// `GETRANGE`s Redis has run so far (the watchers' reads of progress).
fn progress_reads(redis: &RedisServer) -> u64 {
    redis
        .info("cmdstat_getrange")
        .and_then(|stat| {
            stat.split(',')
                .find_map(|f| f.strip_prefix("calls=").and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// Waits until call `id`'s progress key holds report `seq` and a watcher
/// has read the key since: the `rpc` process has seen that value.
fn wait_until_seen(redis: &RedisServer, id: &str, seq: u64) -> Result<(), String> {
    let key = format!("rpc:progress:{{{id}}}");
    let deadline = Instant::now() + PATIENCE;
    let wanted = format!("\"seq\":{seq},");
    while !redis.cli(["GET", &key]).contains(&wanted) {
        if Instant::now() > deadline {
            return Err(format!("report {seq} was never written"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let reads = progress_reads(redis);
    while progress_reads(redis) <= reads {
        if Instant::now() > deadline {
            return Err(format!("report {seq} was never read"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// A worker of `Work.steps`, which reports steps 1 to 3 of 3, each once
/// the `rpc` process has seen it, and answers `{"copied": 3}`.
async fn steps_worker(redis: &Arc<RedisServer>) -> Running {
    let server = redis.clone();
    let service = DynamicService::new("Work").job("steps", move |req| {
        let redis = server.clone();
        async move {
            for i in 1..=3u64 {
                req.context
                    .progress((i, 3), format!("step {i}"))
                    .map_err(|e| HandlerError::fatal(e.to_string()))?;
                let (redis, id) = (redis.clone(), req.context.id().to_string());
                tokio::task::spawn_blocking(move || wait_until_seen(&redis, &id, i))
                    .await
                    .expect("the wait")
                    .map_err(HandlerError::fatal)?;
            }
            Ok(json!({"copied": 3}))
        }
    });
    let worker = Worker::builder(redis.url())
        .mount(service)
        .build()
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run_until(async {
        let _ = stopped.await;
    }));
    (stop, running)
}

type Running = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<rpc_runtime::StatsSnapshot, rpc_runtime::Error>>,
);

async fn stop(running: Running) {
    let _ = running.0.send(());
    running.1.await.unwrap().unwrap();
}

/// The plain progress lines of `rpc`'s stderr.
fn progress_lines(err: &str) -> Vec<&str> {
    err.lines().filter(|l| l.starts_with("progress")).collect()
}

const STEPS: [&str; 3] = [
    "progress 1/3 33% step 1",
    "progress 2/3 66% step 2",
    "progress 3/3 100% step 3",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_with_progress_prints_a_line_per_new_value_when_stderr_is_not_a_terminal() {
    let redis = Arc::new(RedisServer::start().expect("redis-server"));
    let url = redis.url();
    let running = steps_worker(&redis).await;

    let (ok, out, err) = rpc_async(
        &url,
        &["call", "Work.steps", "{}", "--progress", "--timeout", "60s"],
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), r#"{"copied":3}"#);
    assert_eq!(progress_lines(&err), STEPS, "{err}");
    assert!(!err.contains('\r'), "no bar drawn off a terminal: {err:?}");
    stop(running).await;
}

/// A call placed by one `rpc` process (`--no-wait`, its result kept) is
/// watched by id from another, which prints its progress and then its
/// answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_with_progress_watches_a_call_by_id_until_its_kept_result() {
    let redis = Arc::new(RedisServer::start().expect("redis-server"));
    let url = redis.url();
    let running = steps_worker(&redis).await;
    let (ok, out, err) = rpc_async(&url, &["call", "Work.steps", "{}", "--no-wait"]).await;
    assert!(ok, "{err}");
    let id = out.trim().to_owned();
    let (ok, out, err) = rpc_async(&url, &["fetch", &id, "--wait", "60s", "--progress"]).await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), r#"{"copied":3}"#);
    assert_eq!(progress_lines(&err), STEPS, "{err}");
    stop(running).await;
}
