//! Parking ahead ("Per-key concurrency", step 5): `group_admit.lua`
//! driven by hand with `redis-cli EVAL` against a private redis-server
//! with no worker, as another implementation's worker would run it. A
//! parked call takes with it the next calls of its job and key that no
//! worker was handed, and nothing else.

use super::*;

const STREAM: &str = "rpc:{Keyed}:jobs";
const RUNNING: &str = "rpc:{Keyed}:group:work:A:running";
const WAITING: &str = "rpc:{Keyed}:group:work:A:waiting";
const GROUPS: &str = "rpc:{Keyed}:groups";

fn message(id: &str, job: &str, key: &str, extra: &str) -> String {
    format!(
        r#"{{"v":1,"id":"{id}","job":"Keyed.{job}","params":{{}},"reply_to":"rpc:inbox:{{c}}"{extra},"group":"{key}"}}"#
    )
}

/// Adds `fields` as one entry; returns its id.
fn add(redis: &RedisServer, fields: &[&str]) -> String {
    redis
        .cli([&["XADD", STREAM, "*"][..], fields].concat())
        .trim()
        .to_owned()
}

/// The call ids of the stream's messages, in order.
fn stream_ids(redis: &RedisServer) -> Vec<String> {
    let out = redis.cli(["--json", "XRANGE", STREAM, "-", "+"]);
    let entries: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| call_id(e[1][1].as_str().unwrap()))
        .collect()
}

fn call_id(message: &str) -> String {
    serde_json::from_str::<Value>(message).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The call ids parked for key A, oldest first.
fn waiting_ids(redis: &RedisServer) -> Vec<String> {
    let out = redis.cli(["--json", "LRANGE", WAITING, "0", "-1"]);
    let list: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    list.as_array()
        .unwrap()
        .iter()
        .map(|m| call_id(m.as_str().unwrap()))
        .collect()
}

/// `group_admit.lua` for a delivered message of key A with limit 1.
fn admit(redis: &RedisServer, id: &str, entry: &str, message: &str) -> String {
    redis.cli([
        "EVAL",
        rpc_runtime::protocol::scripts::GROUP_ADMIT.source,
        "4",
        RUNNING,
        WAITING,
        GROUPS,
        STREAM,
        id,
        "1",
        "30000",
        "workers",
        entry,
        message,
        "work:A",
    ])
}

/// A1 is parked (B0 holds A's one slot). It takes with it the A calls of
/// `work` behind it that no worker was handed, in order; it leaves A2,
/// delivered to a worker, which parks it itself, after them; and it
/// leaves another key's call, another job's, a delayed one, one marked
/// cancelled, one too large to decode, and one holding a slot (moved back
/// by a hand-on: parking it again would hold the slot with nothing to
/// run, until the slot lapsed).
#[test]
fn a_parked_call_parks_the_undelivered_calls_of_its_job_and_key_behind_it() {
    let redis = rpc_testkit::RedisServer::start().expect("redis-server");
    redis.cli(["XGROUP", "CREATE", STREAM, "workers", "0", "MKSTREAM"]);
    redis.cli(["ZADD", RUNNING, "99999999999999", "b0"]);
    let a1 = message("a1", "work", "A", "");
    let a1_entry = add(&redis, &["m", &a1]);
    let a2 = message("a2", "work", "A", "");
    let a2_entry = add(&redis, &["m", &a2]);
    add(&redis, &["m", &message("b1", "work", "B", "")]);
    add(&redis, &["m", &message("a3", "work", "A", "")]);
    add(&redis, &["m", &message("other", "other", "A", "")]);
    add(
        &redis,
        &["m", &message("delayed", "work", "A", r#","run_at_ms":1"#)],
    );
    add(
        &redis,
        &["m", &message("marked", "work", "A", ""), "c", "1"],
    );
    let large = format!(r#","pad":"{}""#, "x".repeat(17_000));
    add(&redis, &["m", &message("large", "work", "A", &large)]);
    // Moved back by a hand-on, which reserved its slot: it is to run.
    add(&redis, &["m", &message("moved", "work", "A", "")]);
    redis.cli(["ZADD", RUNNING, "99999999999999", "moved"]);
    add(&redis, &["m", &message("a4", "work", "A", "")]);
    // A worker is handed A1 and A2.
    redis.cli([
        "XREADGROUP",
        "GROUP",
        "workers",
        "w",
        "COUNT",
        "2",
        "STREAMS",
        STREAM,
        ">",
    ]);

    assert_eq!(admit(&redis, "a1", &a1_entry, &a1).trim(), "0\n0\n0");
    assert_eq!(waiting_ids(&redis), ["a1", "a3", "a4"]);
    assert_eq!(
        stream_ids(&redis),
        ["a2", "b1", "other", "delayed", "marked", "large", "moved"]
    );
    // The parked entries are gone from the group's pending list too.
    let pending = redis.cli(["XPENDING", STREAM, "workers"]);
    assert!(pending.starts_with("1\n"), "{pending}");

    // A2's worker parks it: behind the calls parked ahead of it.
    assert_eq!(admit(&redis, "a2", &a2_entry, &a2).trim(), "0\n0\n0");
    assert_eq!(waiting_ids(&redis), ["a1", "a3", "a4", "a2"]);
    assert_eq!(
        redis.cli(["SMEMBERS", GROUPS]).trim(),
        "work:A",
        "the group is listed as waiting"
    );
}

/// Parking ahead looks at a bounded number of entries: with 250 of A's
/// calls queued behind A1, one step parks A1 and the next 100.
#[test]
fn parking_ahead_looks_at_a_hundred_entries() {
    let redis = rpc_testkit::RedisServer::start().expect("redis-server");
    redis.cli(["XGROUP", "CREATE", STREAM, "workers", "0", "MKSTREAM"]);
    redis.cli(["ZADD", RUNNING, "99999999999999", "b0"]);
    let a1 = message("a1", "work", "A", "");
    let a1_entry = add(&redis, &["m", &a1]);
    for i in 0..250 {
        add(&redis, &["m", &message(&format!("n{i}"), "work", "A", "")]);
    }
    redis.cli([
        "XREADGROUP",
        "GROUP",
        "workers",
        "w",
        "COUNT",
        "1",
        "STREAMS",
        STREAM,
        ">",
    ]);
    assert_eq!(admit(&redis, "a1", &a1_entry, &a1).trim(), "0\n0\n0");
    let waiting = waiting_ids(&redis);
    assert_eq!(waiting.len(), 101);
    assert_eq!(waiting[100], "n99");
    assert_eq!(stream_ids(&redis).first().map(String::as_str), Some("n100"));
}
