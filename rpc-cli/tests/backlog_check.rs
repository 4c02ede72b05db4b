//! `rpc backlog-check` of the real binary against a private redis-server
//! filled the way a v1 deployment leaves it before a deploy: messages a v1
//! client queued (no worker running), some leased by a v1 worker that has
//! not acked them (a raw XREADGROUP), dead letters. A v2 schema with a new
//! required parameter, a removed job and a changed type must name exactly
//! the messages that break, and why; the v1 schema itself must pass them all.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use rpc_runtime::Client;
use rpc_testkit::RedisServer;
use serde_json::{json, Value};

/// Imported by both versions: `Tagged` does not change.
const COMMON: &str = "\
/// A labelled number.
struct Tagged {
    value: f64,
    label: Option<String>,
}
";

const V1: &str = r#"
import "common.rpc";

service Calculator {
    fn add(a: i64, b: i64) -> i64;
    fn log(line: String);
    fn scale(x: f64, factor: i32) -> f64;
    fn sum(values: Vec<Tagged>) -> Tagged;
}

service Billing {
    fn charge(cents: u32);
}
"#;

/// `add` gains a required `c`, `log` is gone, `scale`'s factor is a string.
const V2: &str = r#"
import "common.rpc";

service Calculator {
    fn add(a: i64, b: i64, c: i64) -> i64;
    fn scale(x: f64, factor: String) -> f64;
    fn sum(values: Vec<Tagged>) -> Tagged;
}

service Billing {
    fn charge(cents: u32);
}
"#;

/// Writes the schema files; the directory lives as long as the guard.
fn schemas() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write schema");
        path
    };
    write("common.rpc", COMMON);
    let (v1, v2) = (write("v1.rpc", V1), write("v2.rpc", V2));
    (dir, v1, v2)
}

/// Runs `rpc --url URL backlog-check --schema SCHEMA ARGS...` on a blocking
/// thread; (exit code, stdout, stderr).
async fn backlog_check(url: &str, schema: &Path, args: &[&str]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rpc"));
    command
        .args(["--url", url, "backlog-check", "--schema"])
        .arg(schema)
        .args(args);
    let out = tokio::task::spawn_blocking(move || command.output().expect("run rpc"))
        .await
        .expect("rpc task");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The call ids of what the v1 side left in Redis.
struct Backlog {
    add_delayed: String,
    add_scheduled: String,
    add_leased: String,
    add_queued: String,
    log_queued: String,
    scale_queued: String,
    log_dead: String,
}

/// Fills Redis as v1 clients and a v1 worker leave it: sends with the JSON
/// a v1 generated client sends, no worker running; the first two entries
/// leased by a worker that never acks; a delayed `add` (queued) and a retry
/// of one (on the schedule); a dead-lettered `log` call; a service (`Legacy`) the schema does not know.
async fn fill(redis: &RedisServer, url: &str) -> Backlog {
    let client = Client::connect(url).await.expect("client");
    let send = |job: &'static str, params: Value| {
        let client = client.clone();
        async move { client.send(job, params).await.expect("send").to_string() }
    };
    let add_leased = send("Calculator.add", json!({"a": 1, "b": 2})).await;
    let _sum_leased = send("Calculator.sum", json!({"values": [{"value": 1.5}]})).await;
    let add_queued = send("Calculator.add", json!({"a": 3, "b": 4})).await;
    let log_queued = send("Calculator.log", json!({"line": "hi"})).await;
    let scale_queued = send("Calculator.scale", json!({"x": 1.5, "factor": 2})).await;
    send(
        "Calculator.sum",
        json!({"values": [{"value": 1.0, "label": "one"}, {"value": 2.0, "label": null}]}),
    )
    .await;
    send("Legacy.ping", json!({})).await;
    // A delayed call (a lifecycle message, protocol version 2), queued
    // until a worker puts it on the schedule.
    let add_delayed = client
        .send("Calculator.add", json!({"a": 5, "b": 6}))
        .options(rpc_runtime::CallOptions {
            delay: Some(std::time::Duration::from_secs(3_600)),
            ..rpc_runtime::CallOptions::default()
        })
        .await
        .expect("send delayed")
        .to_string();
    // A retry waiting out its backoff on the schedule, as a worker leaves it.
    let add_scheduled = "retry-add-1".to_owned();
    let retry = json!({"v": 1, "id": add_scheduled, "job": "Calculator.add",
        "params": {"a": 5, "b": 6}, "attempt": 2});
    redis.cli([
        "HSET",
        "rpc:{Calculator}:scheduled",
        &add_scheduled,
        &retry.to_string(),
    ]);
    redis.cli([
        "ZADD",
        "rpc:{Calculator}:schedule",
        "99999999999999",
        &add_scheduled,
    ]);

    let jobs = "rpc:{Calculator}:jobs";
    redis.cli(["XGROUP", "CREATE", jobs, "workers", "0"]);
    let leased = redis.cli([
        "XREADGROUP",
        "GROUP",
        "workers",
        "v1-worker",
        "COUNT",
        "2",
        "STREAMS",
        jobs,
        ">",
    ]);
    assert!(leased.contains(&add_leased), "{leased}");

    let log_dead = "dead-log-1".to_owned();
    let dead = json!({"v": 1, "id": log_dead, "job": "Calculator.log", "params": {"line": "x"}});
    redis.cli([
        "XADD",
        "rpc:{Calculator}:dead",
        "*",
        "reason",
        "delivered 4 times, over the limit of 3",
        "m",
        &dead.to_string(),
    ]);
    Backlog {
        add_delayed,
        add_scheduled,
        add_leased,
        add_queued,
        log_queued,
        scale_queued,
        log_dead,
    }
}

/// Every rejection of a JSON report as (where, call id, rule, paths).
fn rejections(report: &Value) -> BTreeSet<(String, String, String, Vec<String>)> {
    let mut out = BTreeSet::new();
    for service in report["services"].as_array().expect("services") {
        for job in service["jobs"].as_array().expect("jobs") {
            for r in job["rejections"].as_array().expect("rejections") {
                let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
                let paths = r["reasons"]
                    .as_array()
                    .expect("reasons")
                    .iter()
                    .map(|reason| text(&reason["path"]))
                    .collect();
                out.insert((
                    text(&r["where"]),
                    text(&r["call_id"]),
                    text(&r["rule"]),
                    paths,
                ));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_names_exactly_the_messages_the_new_schema_would_reject() {
    // A deploy of v2 over a v1 backlog: the operator learns which scheduled,
    // queued, leased and dead-lettered calls v2's workers would refuse, and why,
    // while v1 itself finds nothing wrong with them.
    let redis = RedisServer::start().expect("start redis-server");
    let (_dir, v1, v2) = schemas();
    let url = redis.url();
    let ids = fill(&redis, &url).await;

    let (code, out, err) = backlog_check(&url, &v1, &[]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("0 of 9 messages would be rejected"), "{out}");
    assert!(
        out.contains("Billing: nothing scheduled, queued, leased or dead-lettered"),
        "{out}"
    );

    // Garbage on the dead-letter stream, as a worker dead-letters it.
    let garbage = redis.cli([
        "XADD",
        "rpc:{Calculator}:dead",
        "*",
        "reason",
        "unreadable",
        "m",
        "not json",
    ]);
    let garbage = garbage.trim().to_owned();

    let (code, out, err) = backlog_check(&url, &v2, &["--format", "json"]).await;
    assert_eq!(code, 1, "{out}{err}");
    let report: Value = serde_json::from_str(&out).expect("the report is JSON");
    let s = |x: &str| x.to_owned();
    let expected = BTreeSet::from([
        (
            s("scheduled"),
            ids.add_scheduled.clone(),
            s("invalid_params"),
            vec![s("")],
        ),
        (
            s("queued"),
            ids.add_delayed.clone(),
            s("invalid_params"),
            vec![s("")],
        ),
        (
            s("leased"),
            ids.add_leased.clone(),
            s("invalid_params"),
            vec![s("")],
        ),
        (
            s("queued"),
            ids.add_queued.clone(),
            s("invalid_params"),
            vec![s("")],
        ),
        (
            s("queued"),
            ids.log_queued.clone(),
            s("unknown_job"),
            vec![s("")],
        ),
        (
            s("queued"),
            ids.scale_queued.clone(),
            s("invalid_params"),
            vec![s("/factor")],
        ),
        (
            s("dead_letter"),
            ids.log_dead.clone(),
            s("unknown_job"),
            vec![s("")],
        ),
        (s("dead_letter"), s("-"), s("unreadable"), vec![s("")]),
    ]);
    assert_eq!(rejections(&report), expected, "{out}");
    assert_eq!(
        (report["checked"].as_u64(), report["rejected"].as_u64()),
        (Some(10), Some(8))
    );
    assert_eq!(report["services_not_in_schema"], json!(["Legacy"]));
    assert!(
        report.get("not_checked").is_none(),
        "scheduled jobs are checked"
    );
    let calculator = &report["services"][1];
    assert_eq!(calculator["service"], "Calculator");
    let sum = calculator["jobs"]
        .as_array()
        .and_then(|jobs| jobs.iter().find(|j| j["job"] == "Calculator.sum"))
        .expect("Calculator.sum in the report");
    assert_eq!(
        (sum["checked"].as_u64(), sum["rejected"].as_u64()),
        (Some(2), Some(0))
    );
    let unreadable = calculator["jobs"][0]["rejections"][0].clone();
    assert_eq!(unreadable["entry_id"], garbage.as_str());

    // The same for people: grouped per job, each message with its reasons.
    let (code, out, err) = backlog_check(&url, &v2, &[]).await;
    assert_eq!(code, 1, "{out}{err}");
    for line in [
        "Calculator: 10 checked, 8 would be rejected",
        "  Calculator.add: 4 checked, 4 rejected",
        &format!(
            "    scheduled {id} call {id}: invalid params",
            id = ids.add_scheduled
        ),
        "    leased ",
        &format!("call {}: invalid params", ids.add_leased),
        "      params: \"c\" is a required property",
        &format!("call {}: unknown job", ids.log_queued),
        "      the new schema has no job `log` in service `Calculator`",
        "      params/factor: 2 is not of type \"string\"",
        &format!("    dead letter {garbage} call -: unreadable"),
        "Not in the schema, not checked: Legacy",
        "8 of 10 messages would be rejected by the new schema",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_schema_or_an_unreachable_redis_exits_2_with_the_reason() {
    // Exit 2 tells CI "could not check", never "the backlog is fine" (0) or
    // "something would be rejected" (1).
    let redis = RedisServer::start().expect("start redis-server");
    let (dir, v1, _) = schemas();
    let broken = dir.path().join("broken.rpc");
    std::fs::write(&broken, "service S { fn f(a: Strng); }").expect("write");

    let (code, _, err) = backlog_check(&redis.url(), &broken, &[]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("did you mean `String`?"), "{err}");
    let (code, _, err) = backlog_check(&redis.url(), &dir.path().join("nope.rpc"), &[]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nope.rpc"), "{err}");

    redis.kill().expect("kill redis");
    // Not `url()`: another test's server may have taken the freed port.
    let (code, out, err) =
        backlog_check(&redis.unreachable_url(), &v1, &["--format", "json"]).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("cannot connect"), "{err}");
    assert!(out.is_empty(), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_role_is_enough_to_check_the_backlog() {
    // The check runs as the read-only operator of deploy/redis/roles.acl,
    // as it would against production: Redis refuses it nothing (empty
    // `ACL LOG`) and the report is the same.
    rpc_testkit::require_redis_server();
    let (dir, v1, v2) = schemas();
    let acl = dir.path().join("users.acl");
    let roles = include_str!("../../deploy/redis/roles.acl")
        .replace("CLIENT_PASSWORD", "client-pw")
        .replace("WORKER_PASSWORD", "worker-pw")
        .replace("OPERATOR_PASSWORD", "operator-pw");
    std::fs::write(&acl, format!("user default on >admin ~* &* +@all\n{roles}")).expect("acl");
    let redis = RedisServer::builder()
        .acl_file(&acl)
        .auth("default", "admin")
        .start()
        .expect("redis with the role ACL");
    let ids = fill(&redis, &redis.url_as("", "admin")).await;
    let operator = redis.url_as("rpc-operator", "operator-pw");

    let (code, out, err) = backlog_check(&operator, &v1, &[]).await;
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = backlog_check(&operator, &v2, &["--format", "json"]).await;
    assert_eq!(code, 1, "{out}{err}");
    let report: Value = serde_json::from_str(&out).expect("the report is JSON");
    assert_eq!(
        (report["checked"].as_u64(), report["rejected"].as_u64()),
        (Some(9), Some(7))
    );
    let called: BTreeSet<String> = rejections(&report).into_iter().map(|r| r.1).collect();
    let expected = [
        ids.add_delayed,
        ids.add_scheduled,
        ids.add_leased,
        ids.add_queued,
        ids.log_queued,
        ids.scale_queued,
        ids.log_dead,
    ];
    assert_eq!(called, BTreeSet::from(expected));
    assert!(
        !report["url"].as_str().unwrap_or("").contains("operator-pw"),
        "{out}"
    );
    assert_eq!(
        redis.cli(["ACL", "LOG"]).trim(),
        "",
        "Redis refused the operator something"
    );
}
