//! The Redis ACL roles of `deploy/redis/roles.acl` (client, per-tenant
//! client, worker, operator) against a private redis-server that loads that
//! very file. Each role does its whole job with an empty `ACL LOG`
//! (`whole_job`), and is refused everything docs/SECURITY.md says it may
//! not do: every attack of the second security round is a test here that
//! the roles before it let through (`client_attacks`, `worker_attacks`,
//! `tenants`).

use std::process::Command;
use std::time::{Duration, Instant};

use rpc_runtime::{
    CallOptions, Client, DynamicService, HandlerError, Periodic, StatsSnapshot, Worker,
};
use rpc_testkit::RedisServer;
use serde_json::json;

mod client_attacks;
mod doorbell;
mod heartbeats;
mod intake_cancel;
mod intake_volume;
mod known_ids;
mod priorities;
mod progress;
mod rate_limits;
mod tenants;
mod whole_job;
mod worker_attacks;

const ROLES: &str = include_str!("../../../deploy/redis/roles.acl");

/// The users of the roles file, and the password of each in the tests.
const CLIENT: (&str, &str) = ("rpc-client", "client-pw");
const WORKER: (&str, &str) = ("rpc-worker", "worker-pw");
const OPERATOR: (&str, &str) = ("rpc-operator", "operator-pw");
/// Two tenants' client users, made from the file's `rpc-client-TENANT`.
const TENANT_A: (&str, &str) = ("rpc-client-a", "tenant-a-pw");
const TENANT_B: (&str, &str) = ("rpc-client-b", "tenant-b-pw");

/// A private Redis with the admin user the kit uses and the roles, the
/// tenant template made into tenants `a` and `b`.
fn redis_with_roles() -> (RedisServer, tempfile::TempDir) {
    rpc_testkit::require_redis_server();
    let dir = tempfile::TempDir::new().expect("a temporary directory");
    let acl = dir.path().join("users.acl");
    let mut users = String::from("user default on >admin ~* &* +@all\n");
    for line in ROLES.lines().filter(|l| !l.trim().is_empty()) {
        if line.contains("TENANT") {
            for tenant in ["a", "b"] {
                let user = line
                    .replace("TENANT_PASSWORD", &format!("tenant-{tenant}-pw"))
                    .replace("TENANT", tenant);
                users.push_str(&user);
                users.push('\n');
            }
        } else {
            let user = line
                .replace("CLIENT_PASSWORD", CLIENT.1)
                .replace("WORKER_PASSWORD", WORKER.1)
                .replace("OPERATOR_PASSWORD", OPERATOR.1);
            users.push_str(&user);
            users.push('\n');
        }
    }
    std::fs::write(&acl, users).unwrap();
    let redis = RedisServer::builder()
        .acl_file(&acl)
        .auth("default", "admin")
        .start()
        .expect("redis with the role ACL");
    (redis, dir)
}

/// `redis-cli` as one of the roles: what it answered, errors included.
fn cli_as(redis: &RedisServer, (user, password): (&str, &str), args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &redis.port().to_string()])
        .args(["--user", user, "--pass", password, "--no-auth-warning"])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Asserts that Redis refuses `args` to `role` for want of permission.
fn denied(redis: &RedisServer, role: (&str, &str), args: &[&str]) {
    let out = cli_as(redis, role, args);
    assert!(
        out.contains("NOPERM"),
        "{} was allowed {args:?}: {out}",
        role.0
    );
}

/// The URL of a role's user. A client user says `enqueue=intake`: it may
/// not `XADD`, and so should not try (a refusal shows in the ACL log).
fn url(redis: &RedisServer, (user, password): (&str, &str)) -> String {
    let url = redis.url_as(user, password);
    if user.starts_with("rpc-client") {
        format!("{url}?enqueue=intake")
    } else {
        url
    }
}

type Running = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<StatsSnapshot, rpc_runtime::Error>>,
);

/// A worker as the worker role: `Acl.echo`; `Acl.square`; `Acl.flaky`,
/// which fails its first attempt (so a retry is queued); `Acl.hold`,
/// which takes `ms` (or stops when cancelled) and answers its attempt;
/// `Acl.held`, which runs until the test lets it go ([`RELEASE`]) and
/// answers its attempt; `Acl.echo` also runs every 100 ms as the periodic
/// job `acl-beat` (the tick script).
async fn worker(redis: &RedisServer) -> Running {
    let service = DynamicService::new("Acl")
        .job("echo", |req| async move { Ok(req.data.clone()) })
        .job("square", |req| async move {
            let n = req.data["n"].as_i64().unwrap_or(0);
            Ok(json!(n * n))
        })
        .job("hold", |req| async move {
            let ms = req.data["ms"].as_u64().unwrap_or(0);
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(ms)) => {}
                () = req.context.cancelled() => return Err(HandlerError::fatal("cancelled")),
            }
            Ok(json!(req.context.attempt()))
        })
        .job("held", |req| async move {
            RELEASE.notified().await;
            Ok(json!(req.context.attempt()))
        })
        .job("flaky", |req| async move {
            if req.context.attempt() == 1 {
                return Err(HandlerError::retry("first attempts fail"));
            }
            Ok(json!("second time lucky"))
        });
    let worker = Worker::builder(url(redis, WORKER))
        .mount(service)
        .periodic(Periodic::every(
            "acl-beat",
            Duration::from_millis(100),
            "Acl.echo",
            json!({}),
        ))
        .visibility_timeout(VISIBILITY)
        .build()
        .await
        .expect("worker as the worker role");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(worker.run_until(async move {
        let _ = rx.await;
    }));
    (tx, task)
}

async fn stop(running: Running) {
    let _ = running.0.send(());
    running.1.await.unwrap().unwrap();
}

/// The workers' visibility timeout: a lease not renewed for that long is
/// taken over.
const VISIBILITY: Duration = Duration::from_millis(300);

/// Lets one `Acl.held` job end.
static RELEASE: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// How long any waited-for event may take on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);

fn opts() -> CallOptions {
    CallOptions::timeout(Duration::from_secs(10))
}

fn assert_acl_log_empty(redis: &RedisServer) {
    let log = redis.cli(["ACL", "LOG"]);
    assert!(log.trim().is_empty(), "a role was denied something:\n{log}");
}

/// Waits until the service has at least `n` dead letters, and returns them.
async fn wait_for_dead_letters(client: &Client, n: usize) -> Vec<rpc_runtime::backend::DeadLetter> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let dead = client.dead_letters("Acl", 100).await.unwrap();
        if dead.len() >= n {
            return dead;
        }
        assert!(
            Instant::now() < deadline,
            "only {} dead letters: {dead:?}",
            dead.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
