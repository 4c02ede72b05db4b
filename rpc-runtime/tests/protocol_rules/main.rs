//! docs/PROTOCOL.md's rules, one test each, followed by hand: a real worker
//! on a private redis-server is fed raw job messages with `redis-cli XADD`
//! (or `RPUSH` onto the intake), and its answers are read with `BLPOP`,
//! `GET`, `PTTL` and `XRANGE`, as a client in another language would. No
//! rpc-runtime client is involved. The job lifecycle's rules (start times,
//! idempotency keys, cancellation, the poll script) are in `lifecycle.rs`;
//! the intake script's (order, cancelled flags, oversized elements) in
//! `intake.rs`.

mod group_admit;
mod intake;
mod known_ids;
mod lifecycle;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rpc_runtime::{DynamicService, HandlerError, Worker};
use rpc_testkit::RedisServer;
use serde_json::{json, Value};

const JOBS: &str = "rpc:{Rules}:jobs";
const DEAD: &str = "rpc:{Rules}:dead";
const INTAKE: &str = "rpc:{Rules}:intake";

/// A private Redis and a worker serving `Rules`: `echo` (answers its
/// parameters), `quiet` (returns nothing), `fatal`, `panic`, `flaky`
/// (fails with "retry" until its third attempt) and `slow` (retries
/// after 5 s, asking for it); `attempts` records the attempt each run of
/// `flaky` and `panic` saw.
struct Rig {
    redis: RedisServer,
    attempts: Arc<Mutex<Vec<u32>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn rig() -> Rig {
    rpc_testkit::require_redis_server();
    let redis = RedisServer::start().expect("redis-server");
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let (seen_flaky, seen_panic) = (attempts.clone(), attempts.clone());
    let service = DynamicService::new("Rules")
        .job("echo", |req| async move { Ok(req.data.clone()) })
        .job("quiet", |_req| async move { Ok(Value::Null) })
        .job("fatal", |_req| async move {
            Err(HandlerError::fatal("this will never work"))
        })
        .job("panic", move |req| {
            let seen = seen_panic.clone();
            async move {
                seen.lock().unwrap().push(req.context.attempt());
                if req.context.attempt() < 2 {
                    panic!("boom");
                }
                Ok(json!("survived"))
            }
        })
        .job("slow", |_req| async move {
            Err(HandlerError::retry_after(Duration::from_secs(5), "later"))
        })
        .job("flaky", move |req| {
            let seen = seen_flaky.clone();
            async move {
                seen.lock().unwrap().push(req.context.attempt());
                if req.context.attempt() < 3 {
                    return Err(HandlerError::retry("not yet"));
                }
                Ok(json!("third time"))
            }
        });
    let worker = Worker::builder(redis.url())
        .mount(service)
        .max_attempts(3)
        .build()
        .await
        .expect("worker");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(worker.run_until(async move {
        let _ = stopped.await;
    }));
    Rig {
        redis,
        attempts,
        _stop: stop,
    }
}

impl Rig {
    fn send(&self, message: Value) {
        self.send_raw(&message.to_string());
    }

    fn send_raw(&self, message: &str) {
        self.redis.cli(["XADD", JOBS, "*", "m", message]);
    }

    /// Sends as a client without `XADD` rights does: onto the intake.
    fn push(&self, message: Value) {
        self.redis.cli(["RPUSH", INTAKE, &message.to_string()]);
    }

    /// Redis's clock, in ms.
    fn now_ms(&self) -> u64 {
        let time = self.redis.cli(["TIME"]);
        let mut parts = time.split_whitespace().map(|p| p.parse::<u64>().unwrap());
        let (secs, micros) = (parts.next().unwrap(), parts.next().unwrap());
        secs * 1000 + micros / 1000
    }

    /// The next reply in `inbox`, parsed (panics after 10 s).
    fn reply(&self, inbox: &str) -> Value {
        let out = self.redis.cli(["BLPOP", inbox, "10"]);
        let body = out
            .lines()
            .nth(1)
            .unwrap_or_else(|| panic!("no reply in {inbox}"));
        serde_json::from_str(body).expect("a JSON reply")
    }

    /// No reply arrives in `inbox` within half a second.
    fn no_reply(&self, inbox: &str) {
        let out = self.redis.cli(["BLPOP", inbox, "0.5"]);
        assert!(out.trim().is_empty(), "unexpected reply: {out}");
    }

    /// The dead letters' (reason, m) pairs, waiting up to 10 s for `n`.
    async fn dead_letters(&self, n: usize) -> Vec<(String, String)> {
        let t0 = std::time::Instant::now();
        loop {
            let out = self.redis.cli(["XRANGE", DEAD, "-", "+"]);
            let lines: Vec<&str> = out.lines().collect();
            let mut found = Vec::new();
            for (i, line) in lines.iter().enumerate() {
                if *line == "reason" {
                    let reason = lines.get(i + 1).unwrap_or(&"").to_string();
                    let m = lines.get(i + 3).unwrap_or(&"").to_string();
                    found.push((reason, m));
                }
            }
            if found.len() >= n || t0.elapsed() > Duration::from_secs(10) {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn job(id: &str, name: &str, params: Value, inbox: &str) -> Value {
    json!({"v": 1, "id": id, "job": format!("Rules.{name}"), "params": params, "reply_to": inbox})
}

/// A job returning nothing is answered `"ok":null` when the message names a
/// `reply_to`; without one, nothing is written, but a `result_ttl_ms` still
/// keeps the reply under the result key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_way_jobs_are_answered_ok_null_and_kept_without_a_reply_to() {
    let rig = rig().await;
    rig.send(job("q1", "quiet", json!({}), "rpc:inbox:{r1}"));
    assert_eq!(
        rig.reply("rpc:inbox:{r1}"),
        json!({"v": 1, "id": "q1", "ok": null})
    );
    rig.send(json!({"v": 1, "id": "q2", "job": "Rules.echo", "params": {"x": 1}, "result_ttl_ms": 60000}));
    let t0 = std::time::Instant::now();
    loop {
        let kept = rig.redis.cli(["GET", "rpc:result:{q2}"]);
        if !kept.trim().is_empty() {
            let kept: Value = serde_json::from_str(kept.trim()).unwrap();
            assert_eq!(kept["ok"], json!({"x": 1}));
            let ttl: i64 = rig
                .redis
                .cli(["PTTL", "rpc:result:{q2}"])
                .trim()
                .parse()
                .unwrap();
            assert!((50_000..=60_000).contains(&ttl), "result TTL {ttl}");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "never kept");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The inbox's TTL is set when the reply is pushed (the worker's inbox TTL,
/// 60 s by default), so a dead client's inbox goes away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_gets_its_ttl_with_the_reply() {
    let rig = rig().await;
    rig.send(job("t1", "echo", json!(1), "rpc:inbox:{ttl}"));
    // Read the TTL while the reply is still there: wait for it first.
    let t0 = std::time::Instant::now();
    while rig.redis.cli(["LLEN", "rpc:inbox:{ttl}"]).trim() == "0" {
        assert!(t0.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ttl: i64 = rig
        .redis
        .cli(["PTTL", "rpc:inbox:{ttl}"])
        .trim()
        .parse()
        .unwrap();
    assert!((50_000..=60_000).contains(&ttl), "inbox TTL {ttl}");
}

/// A message of a protocol version the worker does not speak (it speaks 1
/// and 2) is dead-lettered with the reason and answered `bad_request`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_version_is_dead_lettered_and_answered_bad_request() {
    let rig = rig().await;
    let mut message = job("v3", "echo", json!({}), "rpc:inbox:{v}");
    message["v"] = json!(3);
    rig.send(message);
    let reply = rig.reply("rpc:inbox:{v}");
    assert_eq!(reply["error"]["kind"], "bad_request", "{reply}");
    let dead = rig.dead_letters(1).await;
    assert_eq!(dead.len(), 1);
    assert!(dead[0].0.contains("protocol version 3"), "{dead:?}");
}

/// A job naming another service than the stream it is on is answered
/// `unknown_job` at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_of_another_service_on_this_stream_is_answered_unknown_job() {
    let rig = rig().await;
    rig.send(
        json!({"v": 1, "id": "o1", "job": "Other.echo", "params": {}, "reply_to": "rpc:inbox:{o}"}),
    );
    let reply = rig.reply("rpc:inbox:{o}");
    assert_eq!(reply["error"]["kind"], "unknown_job", "{reply}");
}

/// An entry without the `m` field is dead-lettered with an empty `m`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_without_m_is_dead_lettered_with_an_empty_m() {
    let rig = rig().await;
    rig.redis.cli(["XADD", JOBS, "*", "other", "field"]);
    let dead = rig.dead_letters(1).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].0.starts_with("unreadable job message"), "{dead:?}");
    assert_eq!(dead[0].1, "", "{dead:?}");
}

/// "retry" failures are retried as new entries with the effective attempt
/// plus one, not answered until the last run; a panic counts as "retry";
/// `fatal` is answered `handler` at once, without a retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_by_the_rules() {
    let rig = rig().await;
    rig.send(job("f1", "flaky", json!({}), "rpc:inbox:{f}"));
    let reply = rig.reply("rpc:inbox:{f}");
    assert_eq!(reply["ok"], "third time", "{reply}");
    assert_eq!(*rig.attempts.lock().unwrap(), vec![1, 2, 3]);
    rig.no_reply("rpc:inbox:{f}");

    rig.attempts.lock().unwrap().clear();
    rig.send(job("p1", "panic", json!({}), "rpc:inbox:{p}"));
    assert_eq!(rig.reply("rpc:inbox:{p}")["ok"], "survived");
    assert_eq!(*rig.attempts.lock().unwrap(), vec![1, 2]);

    rig.send(job("x1", "fatal", json!({}), "rpc:inbox:{x}"));
    let reply = rig.reply("rpc:inbox:{x}");
    assert_eq!(reply["error"]["kind"], "handler", "{reply}");
    assert_eq!(reply["error"]["message"], "this will never work");
    rig.no_reply("rpc:inbox:{x}");
}

/// Out of attempts (here the message says attempt 3 of 2): dead-lettered
/// with "delivered N times" (N the effective attempt) and answered
/// `dead_lettered`; a retry that runs out is dead-lettered with "failed on
/// attempt N of M".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_attempts_a_job_is_dead_lettered_with_the_effective_attempt() {
    let rig = rig().await;
    let mut message = job("d1", "echo", json!({}), "rpc:inbox:{d}");
    message["attempt"] = json!(3);
    message["max_attempts"] = json!(2);
    rig.send(message);
    let reply = rig.reply("rpc:inbox:{d}");
    assert_eq!(reply["error"]["kind"], "dead_lettered", "{reply}");
    let mut message = job("d2", "flaky", json!({}), "rpc:inbox:{d}");
    message["max_attempts"] = json!(2);
    rig.send(message);
    let reply = rig.reply("rpc:inbox:{d}");
    assert_eq!(reply["error"]["kind"], "dead_lettered", "{reply}");
    let dead = rig.dead_letters(2).await;
    assert!(
        dead[0]
            .0
            .starts_with("delivered 3 times, over the limit of 2"),
        "{dead:?}"
    );
    assert!(
        dead[1].0.starts_with("failed on attempt 2 of 2: not yet"),
        "{dead:?}"
    );
}
