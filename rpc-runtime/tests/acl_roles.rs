//! The three Redis ACL roles of `deploy/redis/roles.acl` (client, worker,
//! operator) against a private redis-server that loads that very file: each
//! role does its whole job with an empty `ACL LOG`, and is refused the rest.
//! Above all, a client-role user, who may add jobs, can neither write to an
//! inbox nor make a worker touch a key that is not an inbox.

use std::process::Command;
use std::time::{Duration, Instant};

use rpc_runtime::{
    CallOptions, Client, DynamicService, HandlerError, Periodic, StatsSnapshot, Worker,
};
use rpc_testkit::RedisServer;
use serde_json::json;

const ROLES: &str = include_str!("../../deploy/redis/roles.acl");

/// A private Redis with the admin user the kit uses and the three roles.
fn redis_with_roles() -> (RedisServer, tempdir::Dir) {
    rpc_testkit::require_redis_server();
    let dir = tempdir::Dir::new();
    let acl = dir.path.join("users.acl");
    let roles = ROLES
        .replace("CLIENT_PASSWORD", "client-pw")
        .replace("WORKER_PASSWORD", "worker-pw")
        .replace("OPERATOR_PASSWORD", "operator-pw");
    std::fs::write(&acl, format!("user default on >admin ~* &* +@all\n{roles}")).unwrap();
    let redis = RedisServer::builder()
        .acl_file(&acl)
        .auth("default", "admin")
        .start()
        .expect("redis with the role ACL");
    (redis, dir)
}

/// `redis-cli` as one of the roles.
fn cli_as(redis: &RedisServer, user: &str, password: &str, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &redis.port().to_string()])
        .args(["--user", user, "--pass", password, "--no-auth-warning"])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

type Running = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<StatsSnapshot, rpc_runtime::Error>>,
);

/// A worker as the worker role: `Acl.echo`, and `Acl.flaky`, which fails
/// its first attempt (so a retry is queued); `Acl.echo` also runs every
/// 100 ms as the periodic job `acl-beat` (the tick script).
async fn worker(redis: &RedisServer) -> Running {
    let service = DynamicService::new("Acl")
        .job("echo", |req| async move { Ok(req.data.clone()) })
        .job("flaky", |req| async move {
            if req.context.attempt() == 1 {
                return Err(HandlerError::retry("first attempts fail"));
            }
            Ok(json!("second time lucky"))
        });
    let worker = Worker::builder(redis.url_as("rpc-worker", "worker-pw"))
        .mount(service)
        .periodic(Periodic::every(
            "acl-beat",
            Duration::from_millis(100),
            "Acl.echo",
            json!({}),
        ))
        .visibility_timeout(Duration::from_millis(300))
        .build()
        .await
        .expect("worker as the worker role");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(worker.run_until(async move {
        let _ = rx.await;
    }));
    (tx, task)
}

fn opts() -> CallOptions {
    CallOptions::timeout(Duration::from_secs(10))
}

fn assert_acl_log_empty(redis: &RedisServer) {
    let log = redis.cli(["ACL", "LOG"]);
    assert!(log.trim().is_empty(), "a role was denied something:\n{log}");
}

/// Every role does all it is for: the worker serves, retries and
/// dead-letters; the client calls, sends one-way, keeps and fetches
/// results; the operator lists and replays dead letters. Redis denies none
/// of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_does_its_whole_job_with_an_empty_acl_log() {
    let (redis, _dir) = redis_with_roles();
    let running = worker(&redis).await;
    let client = Client::connect(&redis.url_as("rpc-client", "client-pw"))
        .await
        .unwrap();
    for i in 0..5 {
        let r = client
            .call_and_wait_with("Acl.echo", json!({ "i": i }), &opts())
            .await
            .expect("a call as the client role");
        assert_eq!(r.data, json!({ "i": i }));
    }
    let r = client
        .call_and_wait_with("Acl.flaky", json!({}), &opts())
        .await
        .expect("retried once by the worker role");
    assert_eq!(r.data, json!("second time lucky"));
    client.call("Acl.echo", json!("one way")).await.unwrap();
    let pending = client.send("Acl.echo", json!("kept")).await.unwrap();
    let id = pending.id().clone();
    pending.wait().await.unwrap();
    let other = Client::connect(&redis.url_as("rpc-client", "client-pw"))
        .await
        .unwrap();
    let kept = other.fetch_result(&id).await.unwrap().expect("kept");
    assert_eq!(kept.unwrap(), json!("kept"));

    // The job lifecycle as the client role: a delayed call (moved by the
    // worker role), an idempotent one sent twice, a cancellation of a
    // scheduled call, a look at the pause flag.
    let later =
        CallOptions::delay(Duration::from_millis(200)).with_timeout(Duration::from_secs(10));
    let r = client
        .call_and_wait_with("Acl.echo", json!("later"), &later)
        .await
        .expect("a delayed call as the client role");
    assert_eq!(r.data, json!("later"));
    let once = CallOptions::idempotency_key("acl-once").with_timeout(Duration::from_secs(10));
    let first = client
        .call_and_wait_with("Acl.echo", json!(1), &once)
        .await
        .unwrap();
    let again = client
        .call_and_wait_with("Acl.echo", json!(1), &once)
        .await
        .unwrap();
    assert_eq!(first.id, again.id);
    let scheduled = client
        .send_with(
            "Acl.echo",
            json!("never"),
            &CallOptions::delay(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    scheduled
        .cancel()
        .await
        .expect("a cancel as the client role");
    assert!(scheduled.wait().await.is_err());
    client
        .cancel(&"some-call".into())
        .await
        .expect("a cancel by id as the client role");
    assert!(!client.is_paused("Acl").await.unwrap());

    // An unreadable job: the worker dead-letters it; the operator lists it,
    // and replays a readable dead letter.
    redis.cli(["XADD", "rpc:{Acl}:jobs", "*", "m", "garbage"]);
    let operator = Client::connect(&redis.url_as("rpc-operator", "operator-pw"))
        .await
        .unwrap();
    wait_for_dead_letters(&operator, 1).await;
    let readable =
        r#"{"v":1,"id":"replayed-1","job":"Acl.echo","params":{"x":1},"result_ttl_ms":60000}"#;
    redis.cli([
        "XADD",
        "rpc:{Acl}:dead",
        "*",
        "reason",
        "test",
        "m",
        readable,
    ]);
    let dead = operator.dead_letters("Acl", 10).await.unwrap();
    let to_replay = dead
        .iter()
        .find(|d| d.payload == readable.as_bytes())
        .unwrap();
    operator.replay_dead_letter("Acl", to_replay).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(result) = operator.fetch_result(&"replayed-1".into()).await.unwrap() {
            assert_eq!(result.unwrap(), json!({"x": 1}));
            break;
        }
        assert!(Instant::now() < deadline, "the replayed job never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The operator pauses and resumes, and cancels.
    assert!(operator
        .pause("Acl")
        .await
        .expect("a pause as the operator"));
    assert!(operator
        .resume("Acl")
        .await
        .expect("a resume as the operator"));
    operator
        .cancel_in("Acl", &"another-call".into())
        .await
        .expect("a cancel as the operator");

    // The operator's inspection (`rpc stats`, `rpc top`, `rpc ping`).
    let inspector =
        rpc_runtime::Inspector::connect(&redis.url_as("rpc-operator", "operator-pw"), "rpc")
            .await
            .unwrap();
    inspector.ping().await.expect("ping as the operator");
    assert!(inspector
        .services()
        .await
        .unwrap()
        .contains(&"Acl".to_owned()));
    let stats = inspector.service_stats("Acl").await.unwrap().expect("Acl");
    assert!(stats.dead_letters >= 1, "{stats:?}");
    inspector.inboxes().await.expect("inboxes as the operator");
    // `rpc periodic`: the worker role ran the tick script, the operator
    // reads its hashes.
    assert_eq!(inspector.periodic_services().await.unwrap(), ["Acl"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let periodic = loop {
        let periodic = inspector
            .periodic("Acl")
            .await
            .expect("periodic jobs as the operator")
            .expect("Acl");
        assert_eq!(periodic.len(), 1, "{periodic:?}");
        if periodic[0].last_ms.is_some() {
            break periodic;
        }
        assert!(
            Instant::now() < deadline,
            "acl-beat never ran: {periodic:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(periodic[0].unreadable, None);
    // Let the janitor renew and reclaim (XPENDING, XCLAIM) a few times.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let _ = running.0.send(());
    running.1.await.unwrap().unwrap();
    assert_acl_log_empty(&redis);
}

/// What each role may not do. A client-role user cannot push to or create
/// an inbox (so it cannot forge replies or clog another client's inbox),
/// write results or dead letters, or delete a queue; the worker and
/// operator roles cannot touch keys outside the prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_is_refused_what_it_is_not_for() {
    let (redis, _dir) = redis_with_roles();
    let denied = |user: &str, password: &str, args: &[&str]| {
        let out = cli_as(&redis, user, password, args);
        assert!(out.contains("NOPERM"), "{user} was allowed {args:?}: {out}");
    };
    let client = ("rpc-client", "client-pw");
    denied(
        client.0,
        client.1,
        &["RPUSH", "rpc:inbox:{someone}", "forged"],
    );
    denied(
        client.0,
        client.1,
        &["XADD", "rpc:inbox:{someone}", "*", "m", "x"],
    );
    denied(client.0, client.1, &["SET", "rpc:inbox:{someone}", "x"]);
    denied(client.0, client.1, &["SET", "rpc:result:{call}", "forged"]);
    denied(
        client.0,
        client.1,
        &["XADD", "rpc:{Acl}:dead", "*", "m", "x"],
    );
    denied(client.0, client.1, &["DEL", "rpc:{Acl}:jobs"]);
    denied(client.0, client.1, &["PEXPIRE", "rpc:{Acl}:jobs", "1"]);
    denied(client.0, client.1, &["EVAL", "return 1", "0"]);
    denied(
        client.0,
        client.1,
        &["XADD", "other:{Acl}:jobs", "*", "m", "x"],
    );
    let worker = ("rpc-worker", "worker-pw");
    denied(worker.0, worker.1, &["RPUSH", "other:inbox:{x}", "x"]);
    denied(worker.0, worker.1, &["SET", "app:key", "x"]);
    denied(worker.0, worker.1, &["DEL", "rpc:{Acl}:jobs"]);
    denied(worker.0, worker.1, &["FLUSHALL"]);
    let operator = ("rpc-operator", "operator-pw");
    denied(operator.0, operator.1, &["RPUSH", "rpc:inbox:{x}", "x"]);
    denied(operator.0, operator.1, &["SET", "rpc:result:{x}", "x"]);
    denied(operator.0, operator.1, &["GET", "app:key"]);
    denied(operator.0, operator.1, &["FLUSHALL"]);
    // What the client role is for, it may do.
    let out = cli_as(
        &redis,
        client.0,
        client.1,
        &["XADD", "rpc:{Acl}:jobs", "*", "m", "{}"],
    );
    assert!(!out.contains("NOPERM"), "{out}");
}

/// Issue 10, point 1: with only the client role's rights, messages whose
/// `reply_to` names the jobs stream, a hash, a string, another prefix's
/// inbox, or `""` used to make the worker `RPUSH` and `PEXPIRE` those keys
/// (the jobs stream expired 60 s later with its jobs). Now each message is
/// dead-lettered once with the reason, every one of those keys keeps its
/// type, content and TTL, and the worker goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_cannot_make_a_worker_touch_a_key_that_is_not_an_inbox() {
    let (redis, _dir) = redis_with_roles();
    let running = worker(&redis).await;
    let client = Client::connect(&redis.url_as("rpc-client", "client-pw"))
        .await
        .unwrap();
    // Make the stream and let the worker settle.
    client
        .call_and_wait_with("Acl.echo", json!(0), &opts())
        .await
        .unwrap();
    redis.cli(["HSET", "app:profile", "name", "ada"]);
    redis.cli(["SET", "app:token", "s3cret"]);
    redis.cli(["RPUSH", "other:inbox:{x}", "theirs"]);
    let watched = [
        "rpc:{Acl}:jobs",
        "app:profile",
        "app:token",
        "other:inbox:{x}",
    ];
    let state = |key: &str| {
        let kind = redis.cli(["TYPE", key]).trim().to_owned();
        let content = match kind.as_str() {
            "hash" => redis.cli(["HGETALL", key]),
            "string" => redis.cli(["GET", key]),
            "list" => redis.cli(["LRANGE", key, "0", "-1"]),
            _ => String::new(),
        };
        let ttl = redis.cli(["PTTL", key]).trim().to_owned();
        (kind, content, ttl)
    };
    let before: Vec<_> = watched.iter().map(|k| state(k)).collect();

    let targets = [
        "rpc:{Acl}:jobs",
        "app:profile",
        "app:token",
        "other:inbox:{x}",
        "",
    ];
    for (i, target) in targets.iter().enumerate() {
        let message = json!({
            "v": 1, "id": format!("hostile-{i}"), "job": "Acl.echo",
            "params": {"i": i}, "reply_to": target, "result_ttl_ms": 0
        })
        .to_string();
        let out = cli_as(
            &redis,
            "rpc-client",
            "client-pw",
            &["XADD", "rpc:{Acl}:jobs", "*", "m", &message],
        );
        assert!(!out.contains("NOPERM"), "{out}");
    }
    let operator = Client::connect(&redis.url_as("rpc-operator", "operator-pw"))
        .await
        .unwrap();
    let dead = wait_for_dead_letters(&operator, targets.len()).await;
    // Once each, with the reason.
    for (i, target) in targets.iter().enumerate() {
        let id = format!("\"hostile-{i}\"");
        let hits: Vec<_> = dead
            .iter()
            .filter(|d| String::from_utf8_lossy(&d.payload).contains(&id))
            .collect();
        assert_eq!(hits.len(), 1, "{target:?}: {dead:?}");
        assert!(hits[0].reason.contains("reply_to"), "{}", hits[0].reason);
    }
    // The worker keeps serving, and nothing it was pointed at changed.
    let r = client
        .call_and_wait_with("Acl.echo", json!("still here"), &opts())
        .await
        .unwrap();
    assert_eq!(r.data, json!("still here"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after: Vec<_> = watched.iter().map(|k| state(k)).collect();
    for ((key, b), a) in watched.iter().zip(&before).zip(&after) {
        if *key == "rpc:{Acl}:jobs" {
            // Its entries come and go; its type and (absent) TTL must not.
            assert_eq!((&b.0, &b.2), (&a.0, &a.2), "{key} changed");
        } else {
            assert_eq!(b, a, "{key} changed");
        }
    }
    assert_eq!(
        redis.cli(["EXISTS", ""]).trim(),
        "0",
        "a key named \"\" appeared"
    );
    let _ = running.0.send(());
    running.1.await.unwrap().unwrap();
    assert_acl_log_empty(&redis);
}

/// Waits until the service has at least `n` dead letters, and returns them.
async fn wait_for_dead_letters(client: &Client, n: usize) -> Vec<rpc_runtime::backend::DeadLetter> {
    let deadline = Instant::now() + Duration::from_secs(10);
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

/// A temporary directory removed on drop.
mod tempdir {
    pub struct Dir {
        pub path: std::path::PathBuf,
    }

    impl Dir {
        pub fn new() -> Self {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let path =
                std::env::temp_dir().join(format!("rpc-roles-{}-{nanos}", std::process::id()));
            std::fs::create_dir_all(&path).unwrap();
            Dir { path }
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
