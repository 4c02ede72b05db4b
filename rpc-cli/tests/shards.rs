//! The operator's view of a sharded service, through the real `rpc` binary
//! against a private redis-server: `Orders` spread over three queues
//! (`Orders`, `Orders~1`, `Orders~2`), written by hand with the keys
//! `rpc_protocol` builds, as clients and workers leave them. Every command
//! must show one service `Orders` with the sums, never `Orders~k` as a
//! service of its own, give the per-shard breakdown where asked, and put a
//! dead letter back on the shard it came from.

use std::process::Command;

use rpc_protocol::{shards, Keys};
use rpc_runtime::Inspector;
use rpc_testkit::RedisServer;
use serde_json::{json, Value};

mod support;

use support::{rpc, rpc_status};

/// A job message of `Orders.place` with call id `id`.
fn job(id: &str) -> String {
    json!({"v": 1, "id": id, "job": "Orders.place", "params": {"n": 1}, "attempt": 1, "max_attempts": 3})
        .to_string()
}

/// The keys of shard `k` of `Orders`.
fn key(k: u32, which: fn(&Keys, &str) -> String) -> String {
    which(&Keys::new("rpc"), &shards::queue("Orders", k))
}

/// `Orders`: 1, 2 and 3 jobs queued on shards 0, 1 and 2; one dead letter
/// on shard 0 and two on shard 2; one call on shard 1's schedule. No
/// shard count is kept: the shards are found by the scan.
fn fill(redis: &RedisServer) {
    for (k, queued) in [(0, 1), (1, 2), (2, 3)] {
        for i in 0..queued {
            let id = shards::with_shard(&format!("q{k}-{i}"), k);
            redis.cli(["XADD", &key(k, Keys::jobs), "*", "m", &job(&id)]);
        }
    }
    for (k, id) in [(0, "d0"), (2, "d2a~2"), (2, "d2b~2")] {
        redis.cli([
            "XADD",
            &key(k, Keys::dead),
            "*",
            "reason",
            "boom",
            "m",
            &job(id),
        ]);
    }
    let due = "99999999999999";
    redis.cli(["ZADD", &key(1, Keys::schedule), due, "s1~1"]);
    redis.cli(["HSET", &key(1, Keys::scheduled), "s1~1", &job("s1~1")]);
}

fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn stats_show_one_service_with_the_sums_and_each_shard_on_demand() {
    // `Orders~1` listed as a service would hide that its figures are part of
    // `Orders`; the sums and the breakdown must both be there.
    let redis = RedisServer::start().expect("start redis-server");
    fill(&redis);
    let url = redis.url();

    let (ok, out, err) = rpc(&url, &["stats", "--format", "json"]);
    assert!(ok, "{err}");
    let stats: Value = serde_json::from_str(&out).expect("JSON");
    let rows = stats.as_array().expect("an array");
    assert_eq!(rows.len(), 1, "one service: {stats}");
    let orders = &rows[0];
    assert_eq!(orders["service"], "Orders");
    assert_eq!(orders["shards"], 3);
    assert_eq!(orders["queued"], 6);
    assert_eq!(orders["dead_letters"], 3);
    assert!(orders.get("per_shard").is_none(), "{orders}");

    let (ok, out, err) = rpc(&url, &["stats", "--shards", "--format", "json"]);
    assert!(ok, "{err}");
    let stats: Value = serde_json::from_str(&out).expect("JSON");
    let per_shard = stats[0]["per_shard"].as_array().expect("per_shard");
    let figures: Vec<(u64, &str, u64, u64, u64)> = per_shard
        .iter()
        .map(|s| {
            (
                s["shard"].as_u64().unwrap(),
                s["queue"].as_str().unwrap(),
                s["queued"].as_u64().unwrap(),
                s["scheduled"].as_u64().unwrap(),
                s["dead_letters"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        figures,
        vec![
            (0, "Orders", 1, 0, 1),
            (1, "Orders~1", 2, 1, 0),
            (2, "Orders~2", 3, 0, 2)
        ]
    );

    // The table for people: SHARDS after SERVICE, one line per shard under it.
    let (ok, out, _) = rpc(&url, &["stats", "--shards"]);
    assert!(ok);
    assert!(out.starts_with("SERVICE"), "{out}");
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(&header[..3], ["SERVICE", "SHARDS", "QUEUED"], "{out}");
    assert!(
        out.lines().any(
            |l| l.split_whitespace().collect::<Vec<_>>()[..5] == ["Orders", "3", "6", "0", "3"]
        ),
        "{out}"
    );
    assert!(
        out.contains("shard 2 (Orders~2): 3 queued, 0 leased, 0 scheduled, 2 dead"),
        "{out}"
    );
    assert!(
        !out.lines().any(|l| l.starts_with("Orders~")),
        "a shard is no service: {out}"
    );

    // A shard's queue is no service to name either; the service is.
    let (ok, out, err) = rpc(&url, &["scheduled", "Orders", "--format", "json"]);
    assert!(ok, "{err}");
    let scheduled = json_lines(&out);
    assert_eq!(scheduled.len(), 1, "{out}");
    assert_eq!(scheduled[0]["service"], "Orders");
    assert_eq!(scheduled[0]["id"], "s1~1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_of_every_shard_are_listed_and_replay_onto_their_own_shard() {
    // A letter replayed onto shard 0 would run, but out of its key's order
    // and where `rpc cancel` of its marked id does not look.
    let redis = RedisServer::start().expect("start redis-server");
    fill(&redis);
    let url = redis.url();

    let (ok, out, err) = rpc(&url, &["dead-letters", "Orders", "--format", "json"]);
    assert!(ok, "{err}");
    let letters = json_lines(&out);
    assert_eq!(letters.len(), 3, "{out}");
    assert!(letters.iter().all(|l| l["service"] == "Orders"), "{out}");
    let on_shard_2: Vec<String> = letters
        .iter()
        .filter(|l| l["message"]["id"].as_str().unwrap().starts_with("d2"))
        .map(|l| l["token"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(on_shard_2.len(), 2);
    assert!(
        on_shard_2.iter().all(|t| t.ends_with("~2")),
        "{on_shard_2:?}"
    );
    // Every service's letters: still one service.
    let (ok, out, _) = rpc(&url, &["dead-letters", "--format", "json"]);
    assert!(ok);
    assert!(json_lines(&out).iter().all(|l| l["service"] == "Orders"));

    let (ok, out, err) = rpc(&url, &["replay", "Orders", &on_shard_2[0]]);
    assert!(ok, "{err}");
    assert!(out.contains(&on_shard_2[0]), "{out}");
    let len = |key: String| -> u64 { redis.cli(["XLEN", &key]).trim().parse().expect("XLEN") };
    assert_eq!(
        len(key(2, Keys::dead)),
        1,
        "taken off shard 2's dead letters"
    );
    assert_eq!(len(key(2, Keys::jobs)), 4, "back on shard 2's queue");
    assert_eq!(len(key(0, Keys::jobs)), 1, "not on shard 0's");

    let (ok, _, err) = rpc(&url, &["replay", "Orders", "--all"]);
    assert!(ok, "{err}");
    assert_eq!(len(key(0, Keys::dead)) + len(key(2, Keys::dead)), 0);
    assert_eq!(
        (len(key(0, Keys::jobs)), len(key(2, Keys::jobs))),
        (2, 5),
        "each letter went home"
    );
    let inspector = Inspector::connect(&url, "rpc").await.expect("inspector");
    assert_eq!(inspector.dead_letter_count("Orders").await.unwrap(), 0);
}

#[test]
fn rpc_shards_prints_and_sets_the_count_within_bounds() {
    // An operator's count outside 1..=256 must be refused before Redis
    // is touched, with what is allowed.
    let redis = RedisServer::start().expect("start redis-server");
    fill(&redis);
    let url = redis.url();

    let (ok, out, err) = rpc(&url, &["shards", "Orders"]);
    assert!(ok, "{err}");
    assert!(out.contains("count not set"), "{out}");

    let (ok, out, err) = rpc(&url, &["shards", "Orders", "4"]);
    assert!(ok, "{err}");
    assert!(out.contains("now count 4, seen 4"), "{out}");
    let kept = redis.cli(["HMGET", &Keys::new("rpc").shards("Orders"), "count", "seen"]);
    assert_eq!(kept.split_whitespace().collect::<Vec<_>>(), ["4", "4"]);

    // Lowered: clients place on 2, workers still read all 4.
    let (ok, out, _) = rpc(&url, &["shards", "Orders", "2", "--format", "json"]);
    assert!(ok);
    let now: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        (now["count"].as_u64(), now["seen"].as_u64()),
        (Some(2), Some(4))
    );

    for bad in ["0", "257"] {
        let (status, _, err) = rpc_status(&url, &["shards", "Orders", bad]);
        assert_eq!(status, 2, "{err}");
        assert!(err.contains("1 to 256"), "{err}");
    }
    let (status, _, err) = rpc_status(&url, &["shards", "Ordres", "2"]);
    assert_eq!(status, 2);
    assert!(err.contains("`Ordres`"), "{err}");

    // The service now has 4 shards (shard 3 has no queue yet).
    let (ok, out, _) = rpc(&url, &["stats", "--format", "json"]);
    assert!(ok);
    let stats: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(stats[0]["shards"], 4, "{stats}");
    assert_eq!(stats[0]["queued"], 6);
}

#[test]
fn the_exporter_sums_a_sharded_service_with_no_label_per_shard() {
    // A label per shard would multiply the series by the shard count.
    let redis = RedisServer::start().expect("start redis-server");
    fill(&redis);
    let url = redis.url();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rpc"))
        .args(["--url", &url, "exporter", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start rpc exporter");
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let line = lines.next().expect("a line").expect("stderr");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    let text = get(&addr);
    let _ = child.kill();
    let _ = child.wait();
    for line in [
        r#"rpc_queue_depth{rpc_service="Orders"} 6.0"#,
        r#"rpc_queue_dead_letters{rpc_service="Orders"} 3.0"#,
        r#"rpc_queue_scheduled{rpc_service="Orders"} 1.0"#,
        r#"rpc_queue_shards{rpc_service="Orders"} 3.0"#,
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    assert!(!text.contains("Orders~"), "{text}");
}

/// `GET /metrics` of `addr`, the body.
fn get(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the exporter");
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("send");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read");
    raw.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or(raw)
}

#[test]
fn the_backlog_check_reads_every_shard_of_a_service() {
    // A message on shard 2 that the new schema rejects must be named, as
    // one on shard 0 would be.
    let redis = RedisServer::start().expect("start redis-server");
    fill(&redis);
    let url = redis.url();
    let dir = tempfile::tempdir().expect("temp dir");
    let schema = |name: &str, param: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("service Orders {{ fn place(n: {param}); }}"))
            .expect("write schema");
        path
    };
    let check = |schema: &std::path::Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_rpc"))
            .args([
                "--url",
                &url,
                "backlog-check",
                "--format",
                "json",
                "--schema",
            ])
            .arg(schema)
            .output()
            .expect("run rpc");
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code(), report)
    };
    // 6 queued, 1 scheduled, 3 dead letters over the three shards.
    let (status, report) = check(&schema("v1.rpc", "i64"));
    assert_eq!(status, Some(0), "{report}");
    assert_eq!(
        (report["checked"].as_u64(), report["rejected"].as_u64()),
        (Some(10), Some(0))
    );
    assert_eq!(report["services_not_in_schema"], json!([]), "no Orders~k");

    let (status, report) = check(&schema("v2.rpc", "String"));
    assert_eq!(status, Some(1), "{report}");
    assert_eq!(report["rejected"], 10, "{report}");
    let text = report.to_string();
    assert!(text.contains("q2-2~2") && text.contains("s1~1"), "{text}");
}

#[test]
fn a_call_id_without_a_shard_mark_is_cancelled_in_the_shard_that_holds_it() {
    // `u1` (a call of a client that marks no shard) waits on shard 1; a
    // cancel sent to shard 0 alone would leave it to run.
    let redis = RedisServer::start().expect("start redis-server");
    fill(&redis);
    for (k, id) in [(1, "u1"), (2, "u2")] {
        redis.cli(["XADD", &key(k, Keys::jobs), "*", "m", &job(id)]);
    }
    let url = redis.url();
    let (ok, out, err) = rpc(&url, &["cancel", "u1"]);
    assert!(ok, "{err}");
    assert!(out.contains("cancelled u1"), "{out}");
    let marked = redis.cli(["ZSCORE", &key(1, Keys::cancelled), "u1"]);
    assert!(!marked.trim().is_empty(), "not marked on shard 1");

    // Named by its service, the same.
    let (ok, _, err) = rpc(&url, &["cancel", "u2", "--service", "Orders"]);
    assert!(ok, "{err}");
    let marked = redis.cli(["ZSCORE", &key(2, Keys::cancelled), "u2"]);
    assert!(!marked.trim().is_empty(), "not marked on shard 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_a_client_spread_over_shards_are_counted_where_they_wait() {
    // The runtime's own placement: eight calls spread over four shards, no
    // worker yet. The operator sees one service of eight, each shard with
    // the calls whose ids name it, and cancels a marked id in its shard.
    let redis = RedisServer::start().expect("start redis-server");
    let url = redis.url();
    let broker =
        rpc_runtime::backend::connect(&rpc_runtime::backend::BrokerConfig::new(url.clone()))
            .await
            .expect("broker");
    broker
        .shard_count("Spread", rpc_runtime::backend::ShardOp::Set(4))
        .await
        .expect("set the count");
    let client = rpc_runtime::Client::connect(&url).await.expect("client");
    let mut ids = Vec::new();
    for n in 0..8 {
        let id = client
            .send("Spread.run", json!({"n": n}))
            .await
            .expect("send");
        ids.push(id.as_str().to_owned());
    }
    let (ok, out, err) = support::rpc_async(&url, &["stats", "--shards", "--format", "json"]).await;
    assert!(ok, "{err}");
    let stats: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(stats.as_array().map(Vec::len), Some(1), "{stats}");
    assert_eq!(
        (stats[0]["shards"].as_u64(), stats[0]["queued"].as_u64()),
        (Some(4), Some(8))
    );
    let per_shard: Vec<u64> = stats[0]["per_shard"]
        .as_array()
        .expect("per_shard")
        .iter()
        .map(|s| s["queued"].as_u64().unwrap())
        .collect();
    // Each shard holds the calls whose ids name it (an unmarked id's call
    // is on shard 0).
    let named: Vec<u64> = (0..4)
        .map(|k| {
            ids.iter()
                .filter(|id| shards::shard_of_id(id).unwrap_or(0) == k)
                .count() as u64
        })
        .collect();
    assert_eq!(per_shard, named, "{stats} {ids:?}");

    let marked = ids
        .iter()
        .find(|id| shards::shard_of_id(id).is_some_and(|k| k > 0))
        .expect("a call on a shard past 0");
    let shard = shards::shard_of_id(marked).unwrap();
    let (ok, out, err) = support::rpc_async(&url, &["cancel", marked]).await;
    assert!(ok, "{err}");
    assert!(out.contains("cancelled"), "{out}");
    let score = redis.cli([
        "ZSCORE",
        &Keys::new("rpc").cancelled(&shards::queue("Spread", shard)),
        marked,
    ]);
    assert!(!score.trim().is_empty(), "marked on shard {shard}");
}
