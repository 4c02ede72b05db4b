//! Honest health checks (issue 19, point 7) of a real `Worker` against a
//! private redis-server, read over HTTP from its metrics listener:
//! `/readyz` fails within 5 s of Redis dying or freezing (even while every
//! slot is busy, so the taker is not reading) and when completions are
//! refused for the worker's own reason (an ACL without `EVALSHA`, or
//! without `SCRIPT LOAD` for a script Redis lacks), and comes back when the
//! cause goes; `/healthz` does not depend on Redis; a worker that has not
//! read its queues yet, or is shutting down, is not ready.
//!
//! Every wait polls the endpoint until it flips, under a generous deadline;
//! the 5 s promise is then checked on the time measured from the fault.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rpc_runtime::{CallOptions, Client, DynamicService, StatsSnapshot, Worker};
use rpc_testkit::RedisServer;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

/// The promise: readiness reflects the fault within this.
const PROMISE: Duration = Duration::from_secs(5);
/// How long a test waits for anything (a loaded machine is slow).
const PATIENCE: Duration = Duration::from_secs(30);
/// How long liveness is watched through an outage: longer than the
/// liveness window of these workers before this change (two janitor
/// periods of 0.2 s, plus 5 s), when a silent broker failed `/healthz`.
const WATCH_LIVENESS: Duration = Duration::from_secs(8);

const ROLES: &str = include_str!("../../deploy/redis/roles.acl");

/// `GET path` over HTTP/1.1: the status and the body, or `(0, why)` when
/// the listener did not answer within 5 s.
async fn get(addr: &str, path: &str) -> (u16, String) {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&response).into_owned())
    };
    let response = match tokio::time::timeout(Duration::from_secs(5), exchange).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => return (0, format!("no answer: {e}")),
        Err(_) => return (0, "no answer within 5 s".to_owned()),
    };
    let Some((head, body)) = response.split_once("\r\n\r\n") else {
        return (0, format!("not an HTTP response: {response:?}"));
    };
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.trim_end().to_owned())
}

/// Polls `path` until `done` holds for its answer; the answer and the time
/// since `from`. Panics after [`PATIENCE`].
async fn poll_until(
    addr: &str,
    path: &str,
    from: Instant,
    done: impl Fn(u16, &str) -> bool,
) -> (u16, String, Duration) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, body) = get(addr, path).await;
        if done(status, &body) {
            return (status, body, from.elapsed());
        }
        assert!(
            Instant::now() < deadline,
            "{path} never got there; last answer {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts that `/healthz` answers 200 `ok` on every poll until `until`.
async fn assert_alive_until(addr: &str, until: Instant) {
    let mut polls = 0;
    while Instant::now() < until {
        let (status, body) = get(addr, "/healthz").await;
        assert_eq!((status, body.as_str()), (200, "ok"), "after {polls} polls");
        polls += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(polls > 10, "liveness was hardly watched ({polls} polls)");
}

/// A handler that waits until released, saying when it started.
#[derive(Clone, Default)]
struct Hold {
    started: Arc<AtomicBool>,
    release: Arc<Notify>,
}

impl Hold {
    async fn until_started(&self) {
        let deadline = Instant::now() + PATIENCE;
        while !self.started.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "the held job never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

type Running = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<StatsSnapshot, rpc_runtime::Error>>,
);

/// A worker of `Health.echo` and `Health.hold` on `url`, one job at a time,
/// with a metrics listener; not running yet.
async fn worker(url: &str, hold: &Hold) -> (Worker, String) {
    let held = hold.clone();
    let service = DynamicService::new("Health")
        .job("echo", |req| async move { Ok(req.data.clone()) })
        .job("hold", move |_| {
            let held = held.clone();
            async move {
                held.started.store(true, Ordering::SeqCst);
                held.release.notified().await;
                Ok(json!("released"))
            }
        });
    let worker = Worker::builder(url)
        .mount(service)
        .concurrency(1)
        .visibility_timeout(Duration::from_millis(600))
        .metrics_addr("127.0.0.1:0".parse().unwrap())
        .build()
        .await
        .expect("worker");
    let addr = worker.metrics_addr().expect("listener").to_string();
    (worker, addr)
}

fn run(worker: Worker) -> Running {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(worker.run_until(async move {
        let _ = rx.await;
    }));
    (tx, task)
}

/// A running worker that has become ready.
async fn ready_worker(url: &str, hold: &Hold) -> (Running, String) {
    let (worker, addr) = worker(url, hold).await;
    let running = run(worker);
    poll_until(&addr, "/readyz", Instant::now(), |s, _| s == 200).await;
    (running, addr)
}

async fn stop(running: Running) {
    let (tx, task) = running;
    let _ = tx.send(());
    tokio::time::timeout(PATIENCE, task)
        .await
        .expect("the worker stops")
        .expect("joins")
        .expect("runs");
}

/// Reproduces the black-box finding: Redis died and `/healthz` (the only
/// check that looked at it) stayed 200 for about 25 s. Now `/readyz` fails
/// within 5 s, naming the broker, while `/healthz` stays 200 (restarting the
/// worker would not bring Redis back), and readiness returns with Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_within_5s_of_redis_dying_and_healthz_does_not_depend_on_it() {
    let redis = RedisServer::start().expect("redis");
    let (running, addr) = ready_worker(&redis.url(), &Hold::default()).await;
    let killed = Instant::now();
    redis.kill().expect("kill redis");
    let (_, body, took) = poll_until(&addr, "/readyz", killed, |s, _| s == 503).await;
    eprintln!(
        "/readyz failed {} ms after SIGKILL: {body}",
        took.as_millis()
    );
    assert!(took < PROMISE, "/readyz took {took:?}: {body}");
    let (_, body, _) = poll_until(&addr, "/readyz", killed, |_, b| {
        b.starts_with("the broker cannot be reached")
    })
    .await;
    assert_alive_until(&addr, killed + WATCH_LIVENESS).await;
    assert_eq!(get(&addr, "/readyz").await.0, 503, "{body}");
    let back = Instant::now();
    redis.restart().expect("restart redis");
    let (_, _, took) = poll_until(&addr, "/readyz", back, |s, _| s == 200).await;
    eprintln!(
        "/readyz passed again {} ms after the restart began",
        took.as_millis()
    );
    stop(running).await;
}

/// A frozen Redis (SIGSTOP: connections open, nothing answers) while the
/// worker's only slot is busy, so the taker is not reading at all: the
/// probe notices within 5 s; liveness holds; both recover on SIGCONT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_within_5s_of_redis_freezing_even_while_every_slot_is_busy() {
    let redis = RedisServer::start().expect("redis");
    let hold = Hold::default();
    let (running, addr) = ready_worker(&redis.url(), &hold).await;
    let client = Client::connect(&redis.url()).await.unwrap();
    let held = client.call("Health.hold", json!({})).send().await.unwrap();
    hold.until_started().await;
    let frozen = Instant::now();
    rpc_testkit::process::sigstop(redis.pid()).expect("SIGSTOP redis");
    let (_, body, took) = poll_until(&addr, "/readyz", frozen, |s, _| s == 503).await;
    eprintln!(
        "/readyz failed {} ms after SIGSTOP: {body}",
        took.as_millis()
    );
    assert!(took < PROMISE, "/readyz took {took:?}: {body}");
    assert!(body.contains("broker"), "{body}");
    assert_alive_until(&addr, frozen + WATCH_LIVENESS).await;
    rpc_testkit::process::sigcont(redis.pid()).expect("SIGCONT redis");
    let thawed = Instant::now();
    let (_, _, took) = poll_until(&addr, "/readyz", thawed, |s, _| s == 200).await;
    eprintln!("/readyz passed again {} ms after SIGCONT", took.as_millis());
    hold.release.notify_one();
    tokio::time::timeout(PATIENCE, held.wait())
        .await
        .expect("the held job ends")
        .expect("with its reply");
    stop(running).await;
}

/// A private Redis whose `rpc-worker` user is the deployed worker role
/// without `permission`, with the admin user the kit uses.
fn redis_with_worker_lacking(permission: &str) -> (RedisServer, tempfile::TempDir) {
    rpc_testkit::require_redis_server();
    let role = ROLES
        .lines()
        .find(|l| l.starts_with("user rpc-worker "))
        .expect("the worker role in deploy/redis/roles.acl")
        .replace("WORKER_PASSWORD", "worker-pw");
    // Wherever it is granted: on its own, or first in a selector.
    let without = role
        .replace(&format!("({permission} "), "(")
        .replace(&format!(" {permission}"), "");
    assert_ne!(
        role, without,
        "the worker role has no {permission} to take away"
    );
    let dir = tempfile::TempDir::new().expect("a temporary directory");
    let acl = dir.path().join("users.acl");
    std::fs::write(
        &acl,
        format!("user default on >admin ~* &* +@all\n{without}\n"),
    )
    .unwrap();
    let redis = RedisServer::builder()
        .acl_file(&acl)
        .auth("default", "admin")
        .start()
        .expect("redis with the ACL");
    (redis, dir)
}

fn admin_url(redis: &RedisServer) -> String {
    redis.url_as("default", "admin")
}

fn opts() -> CallOptions {
    CallOptions::timeout(Duration::from_secs(20))
}

/// Reproduces the black-box finding: a worker whose ACL lacks `EVALSHA`
/// said it was healthy and ready while every completion failed with
/// NOPERM. Now `/readyz` fails within 5 s of the job whose completion is
/// refused, naming the refusal; `/healthz` stays 200 (a restart would not
/// grant the permission); once the permission is granted, the next
/// completion goes through and the worker is ready again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_within_5s_of_completions_refused_for_lack_of_evalsha_and_recovers() {
    let (redis, _dir) = redis_with_worker_lacking("+evalsha");
    let (running, addr) =
        ready_worker(&redis.url_as("rpc-worker", "worker-pw"), &Hold::default()).await;
    let client = Client::connect(&admin_url(&redis)).await.unwrap();
    let sent = Instant::now();
    let _refused = client
        .call("Health.echo", json!("refused"))
        .send()
        .await
        .unwrap();
    let (_, body, took) = poll_until(&addr, "/readyz", sent, |s, _| s == 503).await;
    eprintln!(
        "/readyz failed {} ms after the job was sent: {body}",
        took.as_millis()
    );
    assert!(took < PROMISE, "/readyz took {took:?}: {body}");
    assert!(
        body.starts_with("completions refused: NOPERM") && body.contains("evalsha"),
        "{body}"
    );
    assert_eq!(get(&addr, "/healthz").await, (200, "ok".to_owned()));
    // Back as the role grants it: in a selector with the keys scripts touch.
    redis.cli(["ACL", "SETUSER", "rpc-worker", "(+evalsha ~rpc:*)"]);
    let r = client
        .call("Health.echo", json!("through"))
        .options(opts())
        .response()
        .await
        .expect("a completion goes through once the worker may run scripts");
    assert_eq!(r.data, json!("through"));
    let (_, body, _) = poll_until(&addr, "/readyz", Instant::now(), |s, _| s == 200).await;
    assert_eq!(body, "ok");
    stop(running).await;
}

/// The NOSCRIPT that cannot be fixed: Redis lacks the completion script and
/// the worker may not load it (`SCRIPT LOAD` refused). The first try
/// (NOSCRIPT) is transient; the reload is refused for good, and `/readyz`
/// says so within 5 s; granting the permission lets the next completion
/// load the script, and the worker is ready again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_within_5s_when_a_missing_script_cannot_be_loaded_and_recovers() {
    let (redis, _dir) = redis_with_worker_lacking("+script|load");
    let (running, addr) =
        ready_worker(&redis.url_as("rpc-worker", "worker-pw"), &Hold::default()).await;
    let client = Client::connect(&admin_url(&redis)).await.unwrap();
    // The worker could not load its scripts at start; make sure nobody did.
    assert_eq!(redis.cli(["SCRIPT", "FLUSH"]).trim(), "OK");
    let sent = Instant::now();
    let _refused = client
        .call("Health.echo", json!("refused"))
        .send()
        .await
        .unwrap();
    let (_, body, took) = poll_until(&addr, "/readyz", sent, |s, _| s == 503).await;
    eprintln!(
        "/readyz failed {} ms after the job was sent: {body}",
        took.as_millis()
    );
    assert!(took < PROMISE, "/readyz took {took:?}: {body}");
    assert!(
        body.starts_with("completions refused: NOPERM") && body.contains("script|load"),
        "{body}"
    );
    redis.cli(["ACL", "SETUSER", "rpc-worker", "+script|load"]);
    client
        .call("Health.echo", json!("through"))
        .options(opts())
        .response()
        .await
        .expect("a completion goes through once the worker may load scripts");
    poll_until(&addr, "/readyz", Instant::now(), |s, _| s == 200).await;
    stop(running).await;
}

/// A worker that has not read its queues yet is not ready (here Redis froze
/// between the worker's start and its first read), and says so; once it
/// reads, it is. A worker shutting down is not ready ("shutting down")
/// while it drains, and still alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_false_before_the_first_read_and_while_shutting_down() {
    let redis = RedisServer::start().expect("redis");
    let hold = Hold::default();
    let (worker, addr) = worker(&redis.url(), &hold).await;
    rpc_testkit::process::sigstop(redis.pid()).expect("SIGSTOP redis");
    let running = run(worker);
    let (status, first) = get(&addr, "/readyz").await;
    assert_eq!(status, 503, "{first}");
    assert!(
        first.starts_with("starting") || first.contains("broker"),
        "{first}"
    );
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let (status, body) = get(&addr, "/readyz").await;
        assert_eq!(status, 503, "ready before reading its queues: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rpc_testkit::process::sigcont(redis.pid()).expect("SIGCONT redis");
    poll_until(&addr, "/readyz", Instant::now(), |s, _| s == 200).await;

    let client = Client::connect(&redis.url()).await.unwrap();
    let held = client.call("Health.hold", json!({})).send().await.unwrap();
    hold.until_started().await;
    let (tx, task) = running;
    let _ = tx.send(());
    let (_, body, _) = poll_until(&addr, "/readyz", Instant::now(), |s, _| s == 503).await;
    assert_eq!(body, "shutting down");
    assert_eq!(get(&addr, "/healthz").await, (200, "ok".to_owned()));
    hold.release.notify_one();
    tokio::time::timeout(PATIENCE, held.wait())
        .await
        .expect("the held job ends")
        .expect("with its reply");
    tokio::time::timeout(PATIENCE, task)
        .await
        .expect("the worker stops")
        .expect("joins")
        .expect("runs");
}
