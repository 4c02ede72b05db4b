//! The job lifecycle's rules, followed by hand as another implementation
//! would (issue 19, points 10 to 14): a start time is a time on Redis's
//! clock; a keyed call's result is kept as long as its key; the
//! fingerprint is the canonical form of the parameters; which answer a
//! retry past the deadline gets; due jobs move while a service is paused;
//! what a hand-back carries; the order of the checks before a job runs;
//! what the poll script's arguments bound.

use sha2::{Digest, Sha256};

use super::*;

/// The value Redis keeps under `key` (empty when there is none).
fn get(rig: &Rig, key: &str) -> String {
    rig.redis.cli(["GET", key]).trim().to_owned()
}

/// Waits up to 10 s for `check` to hold.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while !check() {
        assert!(t0.elapsed() < Duration::from_secs(10), "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Point 10: a `run_at_ms` is a time on Redis's clock, used as it is: the
/// worker that takes the call early puts it on the schedule due exactly
/// then (no clock of the sender's or the worker's moves it), and it is not
/// answered before Redis's clock reaches it. Sent through the intake, as a
/// client without `XADD` rights does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_time_is_a_time_on_redis_s_clock() {
    let rig = rig().await;
    let run_at = rig.now_ms() + 1_500;
    let mut message = job("at-1", "echo", json!({"at": 1}), "rpc:inbox:{at}");
    message["v"] = json!(2);
    message["run_at_ms"] = json!(run_at);
    message["timeout_ms"] = json!(10_000);
    rig.push(message);
    eventually("the call is on the schedule", || {
        !rig.redis
            .cli(["ZSCORE", "rpc:{Rules}:schedule", "at-1"])
            .trim()
            .is_empty()
    })
    .await;
    let due = rig.redis.cli(["ZSCORE", "rpc:{Rules}:schedule", "at-1"]);
    assert_eq!(due.trim(), run_at.to_string(), "due exactly at run_at_ms");
    let reply = rig.reply("rpc:inbox:{at}");
    assert_eq!(reply["ok"], json!({"at": 1}));
    assert!(rig.now_ms() >= run_at, "answered before its start time");
}

/// Point 11: a call with an idempotency key has its result kept at least
/// as long as the key (1 h by default), whatever `result_ttl_ms` it asked
/// for, so a duplicate sent while the key lives finds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_call_s_result_is_kept_as_long_as_its_key() {
    let rig = rig().await;
    let mut message = job("k1", "echo", json!({"n": 1}), "rpc:inbox:{k}");
    message["v"] = json!(2);
    message["idempotency_key"] = json!("order-1");
    message["result_ttl_ms"] = json!(300_000);
    rig.send(message);
    assert_eq!(rig.reply("rpc:inbox:{k}")["ok"], json!({"n": 1}));
    let ttl: i64 = rig
        .redis
        .cli(["PTTL", "rpc:result:{k1}"])
        .trim()
        .parse()
        .unwrap();
    assert!((3_500_000..=3_600_000).contains(&ttl), "kept {ttl} ms");
    let key_ttl: i64 = rig
        .redis
        .cli(["PTTL", "rpc:{Rules}:once:order-1"])
        .trim()
        .parse()
        .unwrap();
    assert!(ttl >= key_ttl - 1_000, "result {ttl} ms, key {key_ttl} ms");
}

/// Point 12: the fingerprint is SHA-256 of `Service.job`, a newline and the
/// parameters in canonical form (RFC 8785, integers as written), so the
/// same call in another key order and number spelling is the same call
/// (answered with the holder's id), and other parameters are a conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fingerprint_is_of_the_canonical_parameters() {
    let rig = rig().await;
    let keyed = |id: &str, params: Value| {
        let mut message = job(id, "echo", params, "rpc:inbox:{fp}");
        message["v"] = json!(2);
        message["idempotency_key"] = json!("fp-key");
        message
    };
    rig.send_raw(&keyed("fp-1", json!({})).to_string().replace(
        "\"params\":{}",
        r#""params":{"b":[1.0,2e0],"a":{"y":-0,"x":"é"},"big":9007199254740993}"#,
    ));
    let first = rig.reply("rpc:inbox:{fp}");
    assert!(first.get("ok").is_some(), "{first}");
    // Independently: the canonical text, hashed by hand.
    let canonical = r#"{"a":{"x":"é","y":0},"b":[1,2],"big":9007199254740993}"#;
    let sha = Sha256::digest(format!("Rules.echo\n{canonical}").as_bytes());
    let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(get(&rig, "rpc:{Rules}:once:fp-key"), format!("fp-1 {hex}"));
    // A keyed call's reply, and the result kept for it, say its fingerprint.
    assert_eq!(first["fingerprint"], json!(hex), "{first}");
    let kept: Value = serde_json::from_str(&get(&rig, "rpc:result:{fp-1}")).unwrap();
    assert_eq!(kept["fingerprint"], json!(hex), "{kept}");
    // The same call spelled otherwise: answered with the holder.
    rig.send_raw(&keyed("fp-2", json!({})).to_string().replace(
        "\"params\":{}",
        r#""params":{"big":9007199254740993,"a":{"y":0,"x":"\u00e9"},"b":[1,2]}"#,
    ));
    let reply = rig.reply("rpc:inbox:{fp}");
    assert_eq!(
        reply,
        json!({"v": 1, "id": "fp-2", "fingerprint": hex, "holder": "fp-1"})
    );
    // One integer off (where doubles would agree): a conflict.
    rig.send_raw(&keyed("fp-3", json!({})).to_string().replace(
        "\"params\":{}",
        r#""params":{"big":9007199254740992,"a":{"y":0,"x":"é"},"b":[1,2]}"#,
    ));
    let reply = rig.reply("rpc:inbox:{fp}");
    assert_eq!(reply["error"]["kind"], "idempotency_conflict", "{reply}");
    assert_eq!(reply["error"]["data"], json!({"key": "fp-key"}));
    assert!(!reply.to_string().contains("fp-1"), "{reply}");
}

/// Point 13: a service whose calls wait only on its schedule or its intake
/// (no worker made its stream yet) exists for an operator: it can be
/// paused and its calls cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_with_calls_only_on_its_schedule_or_intake_exists() {
    rpc_testkit::require_redis_server();
    let redis = RedisServer::start().expect("redis-server");
    let inspector = rpc_runtime::Inspector::connect(&redis.url(), "rpc")
        .await
        .unwrap();
    assert!(!inspector.has_service("Later").await.unwrap());
    redis.cli(["ZADD", "rpc:{Later}:schedule", "1", "x"]);
    assert!(inspector.has_service("Later").await.unwrap());
    redis.cli(["RPUSH", "rpc:{Early}:intake", "{}"]);
    assert!(inspector.has_service("Early").await.unwrap());
    assert!(
        inspector.services().await.unwrap().is_empty(),
        "no stream yet"
    );
}

/// Point 14: a retry whose backoff would start it after the deadline is not
/// made: the caller is answered with the failure's own kind (here
/// `handler`), and nothing is dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_past_the_deadline_is_answered_with_its_failure_not_dead_lettered() {
    let rig = rig().await;
    let mut message = job("late-1", "slow", json!({}), "rpc:inbox:{late}");
    message["timeout_ms"] = json!(2_000);
    rig.send(message);
    let reply = rig.reply("rpc:inbox:{late}");
    assert_eq!(reply["error"]["kind"], "handler", "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("after the call's deadline"),
        "{reply}"
    );
    assert_eq!(rig.redis.cli(["XLEN", DEAD]).trim(), "0");
}

/// Point 14: due jobs move onto the stream while their service is paused
/// (they wait there, not on the schedule), and none runs until it resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_jobs_move_while_paused_and_wait_on_the_stream() {
    let rig = rig().await;
    rig.redis.cli(["SET", "rpc:{Rules}:paused", "1"]);
    // A worker stops taking a paused service's jobs within a poll and one
    // blocking read (about a second): the job comes due well after.
    let due = (rig.now_ms() + 3_000).to_string();
    let message = job("p-1", "echo", json!({"p": 1}), "rpc:inbox:{p}").to_string();
    rig.redis
        .cli(["HSET", "rpc:{Rules}:scheduled", "p-1", &message]);
    rig.redis.cli(["ZADD", "rpc:{Rules}:schedule", &due, "p-1"]);
    eventually("the due job left the schedule", || {
        rig.redis.cli(["ZCARD", "rpc:{Rules}:schedule"]).trim() == "0"
    })
    .await;
    let queued = rig.redis.cli(["XRANGE", JOBS, "-", "+"]);
    assert!(
        queued.contains("\"p-1\""),
        "moved onto the stream: {queued}"
    );
    rig.no_reply("rpc:inbox:{p}");
    rig.redis.cli(["DEL", "rpc:{Rules}:paused"]);
    assert_eq!(rig.reply("rpc:inbox:{p}")["ok"], json!({"p": 1}));
}

/// Point 14: a hand-back (a job this worker does not know) keeps the
/// message's `attempt`, `deadline_ms` and id, adds one to `handoffs`,
/// carries the time left as `timeout_ms`, and waits on the schedule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_back_keeps_attempt_and_deadline_and_waits_on_the_schedule() {
    let rig = rig().await;
    let mut message = job("hb-1", "nope", json!({}), "rpc:inbox:{hb}");
    message["attempt"] = json!(2);
    message["deadline_ms"] = json!(253_402_300_799_999u64);
    message["timeout_ms"] = json!(60_000);
    rig.send(message);
    let mut seen = String::new();
    eventually("the hand-back is on the schedule", || {
        seen = rig.redis.cli(["HGET", "rpc:{Rules}:scheduled", "hb-1"]);
        !seen.trim().is_empty()
    })
    .await;
    let handed: Value = serde_json::from_str(seen.trim()).unwrap();
    assert_eq!(handed["id"], "hb-1");
    assert_eq!(handed["attempt"], 2);
    assert_eq!(handed["deadline_ms"], 253_402_300_799_999u64);
    assert!(handed["handoffs"].as_u64().unwrap() >= 1, "{handed}");
    let left = handed["timeout_ms"].as_u64().unwrap();
    assert!((50_000..60_000).contains(&left), "timeout_ms {left}");
}

/// Point 14: the order of the checks before a job runs. A message both
/// cancelled and past its deadline is answered `cancelled`; one both over
/// its attempts and past its deadline is dead-lettered; one whose version
/// is unknown is refused before anything else is looked at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checks_before_a_job_runs_go_in_the_documented_order() {
    let rig = rig().await;
    let expired = |id: &str| {
        let mut message = job(id, "echo", json!({}), "rpc:inbox:{order}");
        message["timeout_ms"] = json!(0);
        message
    };
    // Cancelled while it waited on the schedule: the entry carries `c`.
    rig.redis.cli([
        "XADD",
        JOBS,
        "*",
        "m",
        &expired("o-1").to_string(),
        "c",
        "1",
    ]);
    let reply = rig.reply("rpc:inbox:{order}");
    assert_eq!(reply["error"]["kind"], "cancelled", "{reply}");
    let mut over = expired("o-2");
    over["attempt"] = json!(4);
    over["max_attempts"] = json!(3);
    rig.send(over);
    let reply = rig.reply("rpc:inbox:{order}");
    assert_eq!(reply["error"]["kind"], "dead_lettered", "{reply}");
    let mut unknown = expired("o-3");
    unknown["v"] = json!(9);
    unknown["attempt"] = json!(4);
    unknown["max_attempts"] = json!(3);
    rig.send(unknown);
    let reply = rig.reply("rpc:inbox:{order}");
    assert_eq!(reply["error"]["kind"], "bad_request", "{reply}");
}

/// Point 14: `poll.lua`'s arguments, run by hand: ARGV[1] bounds the jobs
/// moved, ARGV[3] the cancellations reported, and ARGV[2] is exclusive
/// (cancellations scored above it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poll_script_s_bounds_and_since_are_as_documented() {
    rpc_testkit::require_redis_server();
    let redis = RedisServer::start().expect("redis-server");
    let script = rpc_protocol::scripts::POLL.source;
    for i in 0..5 {
        let token = format!("t{i}");
        redis.cli(["ZADD", "rpc:{P}:schedule", "1", &token]);
        redis.cli(["HSET", "rpc:{P}:scheduled", &token, "{}"]);
    }
    for (i, at) in [100, 200, 200, 300].iter().enumerate() {
        redis.cli([
            "ZADD",
            "rpc:{P}:cancelled",
            &at.to_string(),
            &format!("c{i}"),
        ]);
    }
    let keys = [
        "rpc:{P}:schedule",
        "rpc:{P}:scheduled",
        "rpc:{P}:jobs",
        "rpc:{P}:cancelled",
        "rpc:{P}:paused",
        "rpc:{P}:dead",
    ];
    let poll = |max: &str, since: &str, limit: &str| {
        let mut args = vec!["EVAL", script, "6"];
        args.extend(keys);
        args.extend([max, since, limit, "31708800000", "10000", ""]);
        redis.cli(args)
    };
    let out = poll("2", "100", "2");
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(lines[1], "2", "moved at most ARGV[1]: {out}");
    // Above 100 (exclusive), at most 2: c1 and c2 (scored 200), not c0.
    assert!(out.contains("c1") && out.contains("c2"), "{out}");
    assert!(!out.contains("c0") && !out.contains("c3"), "{out}");
    assert_eq!(redis.cli(["XLEN", "rpc:{P}:jobs"]).trim(), "2");
}
