//! What the second security round did as a client-role user (issue 19,
//! points 1, 2 and 4), each refused now. The roles before let every one of
//! them through: a client could trim the jobs stream, unschedule or
//! rewrite another caller's scheduled call, read and plant idempotency
//! records, load and run Lua of its own, and blind the workers to
//! cancellations. Now a client may only append to intakes, read its inbox
//! and kept results and the pause flag, and read Redis's clock.

use rpc_runtime::{Error, ErrorKind};

use super::*;

/// A victim's queued and delayed calls survive everything a client-role
/// attacker tries on the stream, the schedule and the intake, and are
/// answered with what the victim asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_trim_delete_or_rewrite_other_callers_jobs() {
    let (redis, _dir) = redis_with_roles();
    let victim = Client::connect(&url(&redis, CLIENT)).await.unwrap();
    // Queued before any worker runs, and one delayed past the attacks.
    let queued = victim
        .call("Acl.square", json!({"n": 3}))
        .options(opts())
        .send()
        .await
        .unwrap();
    let later = victim
        .call("Acl.square", json!({"n": 4}))
        .options(CallOptions::delay(Duration::from_secs(2)).with_timeout(Duration::from_secs(20)))
        .send()
        .await
        .unwrap();
    let running = worker(&redis).await;
    // Wait until the delayed call is on the schedule (moved there by the
    // worker from the stream), so the attacks below aim at it.
    let deadline = Instant::now() + PATIENCE;
    while redis.cli(["ZCARD", "rpc:{Acl}:schedule"]).trim() != "1" {
        assert!(
            Instant::now() < deadline,
            "the delayed call never reached the schedule"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let id = later.id().to_string();
    let forged = json!({"v": 1, "id": id, "job": "Acl.square", "params": {"n": 1000}}).to_string();
    for attack in [
        // Trimming the stream with XADD's options, or any other way.
        &["XADD", "rpc:{Acl}:jobs", "MAXLEN", "0", "*", "m", "x"][..],
        &["XADD", "rpc:{Acl}:jobs", "*", "m", "{}"],
        &["XTRIM", "rpc:{Acl}:jobs", "MAXLEN", "0"],
        &["XDEL", "rpc:{Acl}:jobs", "0-1"],
        &["DEL", "rpc:{Acl}:jobs"],
        // Unscheduling or rewriting the delayed call.
        &["ZREMRANGEBYSCORE", "rpc:{Acl}:schedule", "-inf", "+inf"],
        &["ZREM", "rpc:{Acl}:schedule", &id],
        &["ZADD", "rpc:{Acl}:schedule", "1", &id],
        &["HSET", "rpc:{Acl}:scheduled", &id, &forged],
        &["HGET", "rpc:{Acl}:scheduled", &id],
        &["HDEL", "rpc:{Acl}:scheduled", &id],
        // Reading or removing other callers' calls from the intake.
        &["LRANGE", "rpc:{Acl}:intake", "0", "-1"],
        &["LPOP", "rpc:{Acl}:intake"],
        &["LTRIM", "rpc:{Acl}:intake", "1", "0"],
        &[
            "BLMOVE",
            "rpc:{Acl}:intake",
            "rpc:{Acl}:mine",
            "LEFT",
            "RIGHT",
            "0.1",
        ],
        &["DEL", "rpc:{Acl}:intake"],
        // Finding other callers' keys.
        &["SCAN", "0"],
        &["KEYS", "*"],
    ] {
        denied(&redis, CLIENT, attack);
    }
    assert_eq!(queued.wait().await.unwrap(), json!(9));
    assert_eq!(
        later.wait().await.unwrap(),
        json!(16),
        "the delayed call as its caller sent it"
    );
    stop(running).await;
}

/// Idempotency records are the worker's to write: a client can neither read
/// whose call holds a key nor plant one. Taking a key first with a real
/// call of its own gets an attacker nothing: a caller with the same key and
/// other parameters is told of the conflict (never handed the attacker's
/// result), and one with the same parameters gets the result of exactly
/// what it asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_read_or_plant_idempotency_records() {
    let (redis, _dir) = redis_with_roles();
    let running = worker(&redis).await;
    let attacker = Client::connect(&url(&redis, CLIENT)).await.unwrap();
    let victim = Client::connect(&url(&redis, CLIENT)).await.unwrap();
    let holder = format!("{} {}", "attacker-call", "0".repeat(64));
    denied(&redis, CLIENT, &["GET", "rpc:{Acl}:once:order-42"]);
    denied(&redis, CLIENT, &["SET", "rpc:{Acl}:once:order-43", &holder]);
    denied(&redis, CLIENT, &["EXISTS", "rpc:{Acl}:once:order-43"]);

    let key = |k: &str| CallOptions::idempotency_key(k).with_timeout(Duration::from_secs(10));
    // The attacker takes order-43 first, with other parameters.
    attacker
        .call("Acl.square", json!({"n": 1000}))
        .options(key("order-43"))
        .response()
        .await
        .unwrap();
    let err = victim
        .call("Acl.square", json!({"n": 3}))
        .options(key("order-43"))
        .response()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::IdempotencyConflict { .. }), "{err}");
    // With the very parameters the victim will send: the victim's call is
    // answered with the result of those parameters.
    attacker
        .call("Acl.square", json!({"n": 3}))
        .options(key("order-44"))
        .response()
        .await
        .unwrap();
    let r = victim
        .call("Acl.square", json!({"n": 3}))
        .options(key("order-44"))
        .response()
        .await
        .unwrap();
    assert_eq!(r.data, json!(9));
    stop(running).await;
}

/// No client can load or run code of its own on Redis, nor run the
/// workers' scripts: a script that never returns would stop the broker
/// until an administrator killed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_load_or_run_code_on_redis() {
    let (redis, _dir) = redis_with_roles();
    let busy = "local t = redis.call('TIME') while true do end";
    let sha = redis.cli(["SCRIPT", "LOAD", "return 1"]).trim().to_owned();
    for attack in [
        &["SCRIPT", "LOAD", busy][..],
        &["EVAL", busy, "0"],
        &["EVAL_RO", "return 1", "0"],
        &["EVALSHA", &sha, "0"],
        &["EVALSHA_RO", &sha, "0"],
        &["SCRIPT", "FLUSH"],
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=x\nredis.register_function('x', function() return 1 end)",
        ],
        &["FCALL", "x", "0"],
    ] {
        denied(&redis, CLIENT, attack);
    }
    // Nor write the daily counts the dashboard charts: only workers count.
    for attack in [
        &["INCRBY", "rpc:{Acl}:stat:processed:2026-12-06", "1000000"][..],
        &["SET", "rpc:{Acl}:stat:failed:2026-12-06", "1000000"],
        &["EXPIRE", "rpc:{Acl}:stat:failed:2026-12-06", "1"],
    ] {
        denied(&redis, CLIENT, attack);
    }
    // Nor forge, nor expire, the record of recent failures.
    for attack in [
        &[
            "XADD",
            "rpc:{Acl}:failures",
            "*",
            "id",
            "forged",
            "retried",
            "0",
        ][..],
        &["PEXPIRE", "rpc:{Acl}:failures", "1"],
        &["DEL", "rpc:{Acl}:failures"],
    ] {
        denied(&redis, CLIENT, attack);
    }
}

/// The cancelled set is the workers' and operators' to write: a client can
/// neither score an entry in the future (which hid every later
/// cancellation from the workers until they restarted) nor pause. Garbage
/// scored in the future by anyone else is ignored and removed, and a real
/// cancellation after it is honoured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellations_cannot_be_blinded_and_clients_cannot_pause() {
    let (redis, _dir) = redis_with_roles();
    denied(
        &redis,
        CLIENT,
        &["ZADD", "rpc:{Acl}:cancelled", "9000000000000000", "x"],
    );
    denied(&redis, CLIENT, &["SET", "rpc:{Acl}:paused", "1"]);
    denied(&redis, CLIENT, &["DEL", "rpc:{Acl}:paused"]);
    // What a client could write before, written by the administrator; and
    // the service paused before its worker starts, which then takes none
    // of its jobs.
    redis.cli(["ZADD", "rpc:{Acl}:cancelled", "9000000000000000", "blinder"]);
    let client = Client::connect(&url(&redis, CLIENT)).await.unwrap();
    let operator = Client::connect(&url(&redis, OPERATOR)).await.unwrap();
    assert!(operator.pause("Acl").await.unwrap());
    let running = worker(&redis).await;
    let queued = client
        .call("Acl.echo", json!("never"))
        .options(opts())
        .send()
        .await
        .unwrap();
    queued.cancel().await.unwrap();
    // The worker learns the cancellation (the blinder is gone from the set
    // once a poll saw it) and answers the call when the service resumes.
    let deadline = Instant::now() + PATIENCE;
    while redis
        .cli(["ZSCORE", "rpc:{Acl}:cancelled", "blinder"])
        .trim()
        != ""
        || redis
            .cli(["ZSCORE", "rpc:{Acl}:cancelled", queued.id().as_str()])
            .trim()
            == ""
    {
        assert!(
            Instant::now() < deadline,
            "the cancellation was not applied"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(operator.resume("Acl").await.unwrap());
    let err = queued.wait().await.unwrap_err();
    assert_eq!(err.remote_kind(), Some(ErrorKind::Cancelled), "{err}");
    stop(running).await;
}

/// 100,000 cancellations of made-up ids, pushed by a client as fast as it
/// can, then a real one of a running call: the worker honours the real one
/// (its handler is told) within a second on a quiet machine; the test
/// allows five.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_cancellations_does_not_hide_a_real_one() {
    let (redis, _dir) = redis_with_roles();
    let running = worker(&redis).await;
    let client = Client::connect(&url(&redis, CLIENT)).await.unwrap();
    let call = client
        .call("Acl.hold", json!({"ms": 60_000}))
        .options(CallOptions::timeout(Duration::from_secs(60)))
        .send()
        .await
        .unwrap();
    // Running: its lease is in the group.
    let deadline = Instant::now() + PATIENCE;
    while !redis
        .cli(["XPENDING", "rpc:{Acl}:jobs", "workers"])
        .starts_with('1')
    {
        assert!(Instant::now() < deadline, "the call never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let raw = redis::Client::open(url(&redis, CLIENT)).unwrap();
    // 10,000 commands a pipeline: on a loaded machine their answers take
    // longer than redis-rs's default response timeout (500 ms).
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    let mut con = raw
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap();
    for chunk in 0..10 {
        let mut pipe = redis::pipe();
        for i in 0..10_000 {
            pipe.cmd("RPUSH")
                .arg("rpc:{Acl}:intake")
                .arg(format!("cancel bogus-{chunk}-{i}"))
                .ignore();
        }
        let () = pipe.query_async(&mut con).await.unwrap();
    }
    let t0 = Instant::now();
    call.cancel().await.unwrap();
    let err = call.wait().await.unwrap_err();
    let took = t0.elapsed();
    assert_eq!(err.remote_kind(), Some(ErrorKind::Cancelled), "{err}");
    println!("a real cancellation after 100,000 made-up ones was honoured in {took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    stop(running).await;
}
