//! What a client-role user can still do with a call id it knows (the third
//! security round, after the intake): call ids are free-form strings a
//! sender chooses, and the worker uses them as the schedule's token, as
//! the kept result's key and as the owner of an idempotency key, without
//! ever asking whether the id is already taken by another caller's call.
//! An attacker learns ids it does not choose from an idempotency
//! conflict's answer (`data.holder`), across tenants too.
//!
//! Each test pushes the attacker's messages by hand, as the client role
//! may (`RPUSH` onto the intake), and checks a promise of docs/SECURITY.md
//! that this breaks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::*;

/// A hand-written client (docs/PROTOCOL.md): the attacker's connection as
/// `role`, pushing raw messages onto the `Acl` intake and popping its own
/// inbox.
struct Attacker {
    con: redis::aio::MultiplexedConnection,
    inbox: String,
}

impl Attacker {
    async fn new(redis: &RedisServer, role: (&str, &str), client: &str) -> Attacker {
        let raw = redis::Client::open(url(redis, role)).unwrap();
        Attacker {
            con: raw.get_multiplexed_async_connection().await.unwrap(),
            inbox: format!("rpc:inbox:{{{client}}}"),
        }
    }

    /// Pushes `message` (its `reply_to` set to this attacker's inbox).
    async fn push(&mut self, mut message: serde_json::Value) {
        message["reply_to"] = json!(self.inbox);
        let () = redis::cmd("RPUSH")
            .arg("rpc:{Acl}:intake")
            .arg(message.to_string())
            .query_async(&mut self.con)
            .await
            .unwrap();
    }

    /// The next reply in the attacker's inbox.
    async fn reply(&mut self) -> serde_json::Value {
        let popped: Option<(String, String)> = redis::cmd("BLPOP")
            .arg(&self.inbox)
            .arg(10)
            .query_async(&mut self.con)
            .await
            .unwrap();
        let (_, body) = popped.expect("the attacker's call was answered");
        serde_json::from_str(&body).unwrap()
    }
}

fn keyed(id: &str, n: i64, key: &str) -> serde_json::Value {
    json!({"v": 2, "id": id, "job": "Acl.square", "params": {"n": n},
           "timeout_ms": 10_000, "idempotency_key": key})
}

/// SECURITY.md: a caller that takes an idempotency key first "can only do
/// so with a real call of its own ... one with the same job and
/// parameters is answered with the result of exactly what it asked". The
/// attacker holds the key for the victim's very parameters under its own
/// call id, then sends another call under that same id with other
/// parameters: the worker runs it and overwrites the kept result the
/// victim is then pointed at (`holder`). Seen with `rpc call --key` too:
/// it printed 152399025 for `Chaos.square {"n":3}`, exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_call_is_answered_with_the_result_of_what_it_asked_not_a_reused_ids() {
    let (redis, _dir) = redis_with_roles();
    let running = worker(&redis).await;
    let mut attacker = Attacker::new(&redis, CLIENT, "attacker-1").await;
    attacker.push(keyed("attacker-call", 3, "order-500")).await;
    assert_eq!(attacker.reply().await["ok"], json!(9));
    attacker
        .push(json!({"v": 1, "id": "attacker-call", "job": "Acl.square",
                     "params": {"n": 12345}, "timeout_ms": 10_000, "result_ttl_ms": 3_600_000}))
        .await;
    assert_eq!(attacker.reply().await["ok"], json!(152_399_025));

    let victim = Client::connect(&url(&redis, CLIENT)).await.unwrap();
    let options = CallOptions::idempotency_key("order-500").with_timeout(Duration::from_secs(10));
    let answer = victim
        .call("Acl.square", json!({"n": 3}))
        .options(options.clone())
        .response()
        .await;
    stop(running).await;
    match answer {
        Ok(r) => assert_eq!(r.data, json!(9), "the victim got another call's answer"),
        // Refusing to answer is acceptable; a wrong answer is not.
        Err(e) => assert!(
            !e.to_string().contains("152399025"),
            "the victim got another call's answer: {e}"
        ),
    }
}

/// PROTOCOL.md: "Of any number of racing calls with one key exactly one
/// runs." A second entry of the same keyed message (the same call id: a
/// sender that sends again when it cannot tell whether its first send
/// landed, as rpc-runtime's lead does, or anyone replaying a message) is
/// taken for a redelivery of the holder (`holder == id`) and runs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_call_runs_once_even_when_its_message_arrives_twice() {
    let (redis, _dir) = redis_with_roles();
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let service = DynamicService::new("Acl").job("square", move |req| {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            let n = req.data["n"].as_i64().unwrap_or(0);
            Ok(json!(n * n))
        }
    });
    let worker = Worker::builder(url(&redis, WORKER))
        .mount(service)
        .build()
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(worker.run_until(async move {
        let _ = rx.await;
    }));
    let mut sender = Attacker::new(&redis, CLIENT, "sender-1").await;
    let message = keyed("charge-card-call", 7, "charge-42");
    sender.push(message.clone()).await;
    assert_eq!(sender.reply().await["ok"], json!(49));
    sender.push(message).await;
    let second = sender.reply().await;
    let _ = tx.send(());
    task.await.unwrap().unwrap();
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the keyed call ran twice (second answer: {second})"
    );
}

/// SECURITY.md: a client cannot "unschedule, reschedule or rewrite a
/// delayed call". A client that knows a delayed call's id (the id is what
/// one hands out to fetch a result, and an idempotency conflict names it)
/// sends its own delayed call under that id: the worker that takes it puts
/// it on the schedule under the same token (`complete.lua` step `S`:
/// `HSET`, `ZADD`), replacing the victim's message and its due time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_rewrite_a_delayed_call_whose_id_it_knows() {
    let (redis, _dir) = redis_with_roles();
    let running = worker(&redis).await;
    let victim = Client::connect(&url(&redis, CLIENT)).await.unwrap();
    let later = victim
        .call("Acl.square", json!({"n": 4}))
        .options(CallOptions::delay(Duration::from_secs(3)).with_timeout(Duration::from_secs(10)))
        .send()
        .await
        .unwrap();
    let id = later.id().to_string();
    let deadline = Instant::now() + PATIENCE;
    while redis
        .cli(["ZSCORE", "rpc:{Acl}:schedule", &id])
        .trim()
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "the delayed call never reached the schedule"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut attacker = Attacker::new(&redis, CLIENT, "attacker-2").await;
    attacker
        .push(
            json!({"v": 2, "id": id, "job": "Acl.square", "params": {"n": 1000},
                     "timeout_ms": 1000, "run_at_ms": now_ms + 300 * 24 * 3600 * 1000}),
        )
        .await;
    let answer = later.wait().await;
    stop(running).await;
    assert_eq!(
        answer.unwrap(),
        json!(16),
        "the delayed call as its caller sent it"
    );
    // The attacker's call was dead-lettered by the worker role's own
    // rights (complete.lua step `S`: HGET, XADD to the dead letters).
    let dead = redis.cli(["XRANGE", "rpc:{Acl}:dead", "-", "+"]);
    assert!(dead.contains("already scheduled"), "{dead}");
    assert_acl_log_empty(&redis);
}

/// SECURITY.md: "Call ids are 128 random bits: knowing one is the
/// capability" (to cancel it), and tenants sharing services keep their
/// answers private. An idempotency conflict's answer names the holder's
/// call id to whoever sent the colliding key, so tenant b learns tenant
/// a's call id (for a key with a's name in it, as SECURITY.md advises) and
/// cancels a's running call with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_is_not_told_another_tenants_call_id() {
    let (redis, _dir) = redis_with_roles();
    let running = worker(&redis).await;
    let a = Client::builder(url(&redis, TENANT_A))
        .client_id_prefix("a")
        .connect()
        .await
        .unwrap();
    let options = CallOptions::idempotency_key("a:order-77").with_timeout(Duration::from_secs(20));
    let held = a
        .call("Acl.hold", json!({"ms": 3_000}))
        .options(options.clone())
        .send()
        .await
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while !redis
        .cli(["XPENDING", "rpc:{Acl}:jobs", "workers"])
        .starts_with('1')
    {
        assert!(Instant::now() < deadline, "a's call never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut b = Attacker::new(&redis, TENANT_B, "b-attacker").await;
    b.push(keyed("b-probe", 1, "a:order-77")).await;
    let answer = b.reply().await;
    let told = answer.to_string();
    let a_id = held.id().to_string();
    if told.contains(&a_id) {
        // What b does with it: cancel a's running call.
        let () = redis::cmd("RPUSH")
            .arg("rpc:{Acl}:intake")
            .arg(format!("cancel {a_id}"))
            .query_async(&mut b.con)
            .await
            .unwrap();
    }
    let a_answer = held.wait().await;
    stop(running).await;
    assert!(
        !told.contains(&a_id),
        "tenant b was told tenant a's call id: {told}; a's call then ended {:?}",
        a_answer.as_ref().map_err(|e| e.remote_kind())
    );
    assert!(a_answer.is_ok(), "{:?}", a_answer.err());
}

/// A holder answer is followed to the holder's kept result; when that is
/// itself a holder answer (the attacker answered a second call under the
/// holder's id as a duplicate of another key), the victim's call ends
/// "successfully" with `null` (`rpc call` printed `null`, exit 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followed_holder_answer_is_never_read_as_a_null_result() {
    let (redis, _dir) = redis_with_roles();
    let running = worker(&redis).await;
    let mut attacker = Attacker::new(&redis, CLIENT, "attacker-3").await;
    attacker.push(keyed("chain-x", 3, "order-600")).await;
    assert_eq!(attacker.reply().await["ok"], json!(9));
    attacker.push(keyed("chain-g", 4, "order-600-g")).await;
    assert_eq!(attacker.reply().await["ok"], json!(16));
    attacker.push(keyed("chain-x", 4, "order-600-g")).await;
    assert_eq!(attacker.reply().await["holder"], json!("chain-g"));

    let victim = Client::connect(&url(&redis, CLIENT)).await.unwrap();
    let options = CallOptions::idempotency_key("order-600").with_timeout(Duration::from_secs(5));
    let answer = victim
        .call("Acl.square", json!({"n": 3}))
        .options(options.clone())
        .response()
        .await;
    stop(running).await;
    // An error is an acceptable end; a made-up success is not.
    if let Ok(r) = answer {
        assert_eq!(r.data, json!(9), "a holder chain was read as a result");
    }
}
