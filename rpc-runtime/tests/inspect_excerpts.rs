//! The inspector's bounded reads against a private redis-server: values
//! cut to a window inside Redis (only the window crosses the network,
//! measured with `INFO stats`), downloads a window at a time, a call found
//! by id among 100,000 dead letters newest first, and the operator role's
//! ACL with the two commands these reads add.

use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use rpc_runtime::inspect::{Inspector, Stream};
use rpc_testkit::RedisServer;
use serde_json::json;

const ROLES: &str = include_str!("../../deploy/redis/roles.acl");
const MB8: usize = 8 * 1024 * 1024;

async fn connect(redis: &RedisServer) -> MultiplexedConnection {
    // No response timeout: writing a 16 MB entry on a loaded machine can
    // take longer than the driver's default half second.
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    redis::Client::open(redis.url().as_str())
        .expect("URL")
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("connect")
}

/// A job message whose params carry `padding` bytes.
fn message(id: &str, padding: usize) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "v": 1, "id": id, "job": "Big.run", "params": {"blob": "x".repeat(padding)},
        "attempt": 3, "max_attempts": 3,
    }))
    .expect("JSON")
}

/// Bytes Redis has sent to all its clients so far (`INFO stats`).
async fn bytes_sent(con: &mut MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(con)
        .await
        .expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix("total_net_output_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("total_net_output_bytes")
}

/// How long each `EVALSHA_RO` in the slow log took, in microseconds.
async fn script_calls(con: &mut MultiplexedConnection) -> Vec<i64> {
    let log: Vec<redis::Value> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(128)
        .query_async(con)
        .await
        .expect("SLOWLOG GET");
    log.iter()
        .filter_map(|entry| {
            let redis::Value::Array(parts) = entry else {
                return None;
            };
            let redis::Value::Array(args) = parts.get(3)? else {
                return None;
            };
            let is_script =
                matches!(args.first(), Some(redis::Value::BulkString(c)) if c == b"EVALSHA_RO");
            match (is_script, parts.get(2)) {
                (true, Some(redis::Value::Int(micros))) => Some(*micros),
                _ => None,
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_window_of_a_large_value_leaves_redis() {
    // Ten 8 MB dead letters, an 8 MB queued job, leased job, scheduled job
    // and kept result: every listing reads their first 4 KiB and their
    // lengths, the service's figures read no entry, and Redis sends well
    // under 1 MB for all of it.
    let redis = RedisServer::start().expect("redis");
    let mut con = connect(&redis).await;
    let big = message("big-0", MB8);
    for i in 0..10 {
        let _: String = redis::cmd("XADD")
            .arg("rpc:{Big}:dead")
            .arg("*")
            .arg("reason")
            .arg("x".repeat(MB8))
            .arg("m")
            .arg(message(&format!("dead-{i}"), MB8))
            .query_async(&mut con)
            .await
            .expect("XADD dead");
    }
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg("rpc:{Big}:jobs")
        .arg("workers")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut con)
        .await
        .expect("XGROUP");
    for _ in 0..2 {
        let _: String = redis::cmd("XADD")
            .arg("rpc:{Big}:jobs")
            .arg("*")
            .arg("m")
            .arg(&big)
            .query_async(&mut con)
            .await
            .expect("XADD job");
    }
    // Lease one (XREADGROUP sends it whole once, before the measurement).
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("workers")
        .arg("w1")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg("rpc:{Big}:jobs")
        .arg(">")
        .query_async(&mut con)
        .await
        .expect("XREADGROUP");
    let _: () = redis::pipe()
        .cmd("ZADD")
        .arg("rpc:{Big}:schedule")
        .arg(5)
        .arg("sched-1")
        .cmd("HSET")
        .arg("rpc:{Big}:scheduled")
        .arg("sched-1")
        .arg(&big)
        .cmd("SET")
        .arg("rpc:result:{big-0}")
        .arg("y".repeat(MB8))
        .query_async(&mut con)
        .await
        .expect("schedule and result");

    let inspector = Inspector::connect(&redis.url(), "rpc")
        .await
        .expect("inspector");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-log-slower-than")
        .arg(0)
        .query_async(&mut con)
        .await
        .expect("CONFIG SET");
    let _: () = redis::cmd("SLOWLOG")
        .arg("RESET")
        .query_async(&mut con)
        .await
        .expect("SLOWLOG RESET");
    let before = bytes_sent(&mut con).await;
    let dead = inspector
        .dead_letter_excerpts("Big", None, 50, 4096)
        .await
        .expect("dead letters");
    // 80 MB of dead letters are read into the script in several calls, so
    // no single call holds Redis for all of it.
    let calls = script_calls(&mut con).await;
    println!(
        "listing ten 8 MB dead letters took {} script calls, the longest {} ms",
        calls.len(),
        calls.iter().max().unwrap_or(&0) / 1000
    );
    assert!(calls.len() >= 4, "{calls:?}");
    let queued = inspector
        .queued_excerpts("Big", None, 50, 4096)
        .await
        .expect("queued")
        .expect("Big");
    let leased = inspector
        .leased_excerpts("Big", 50, 4096)
        .await
        .expect("leased")
        .expect("Big");
    let scheduled = inspector
        .scheduled_excerpts("Big", 0, 50, 4096)
        .await
        .expect("scheduled")
        .expect("Big");
    let kept = inspector
        .kept_result_window("big-0", 0, 4096)
        .await
        .expect("kept")
        .expect("a kept result");
    let figures = inspector
        .service_stats_bounded("Big")
        .await
        .expect("figures")
        .expect("Big");
    let sent = bytes_sent(&mut con).await - before;
    println!("bytes Redis sent for the listings of 14 values of 8 MB: {sent}");
    // The same figures `XINFO STREAM` gives, which sends both entries whole.
    let whole = inspector
        .service_stats("Big")
        .await
        .expect("stats")
        .expect("Big");
    let counts = |s: &rpc_runtime::inspect::ServiceStats| {
        (
            s.queued,
            s.leased,
            s.dead_letters,
            s.stream_length,
            s.entries_added,
        )
    };
    assert_eq!(counts(&figures), counts(&whole));
    assert_eq!((figures.stream_length, figures.leased), (2, 1));
    assert!(inspector
        .service_stats_bounded("Nope")
        .await
        .expect("figures")
        .is_none());
    assert!(sent < 1024 * 1024, "Redis sent {sent} bytes");

    assert_eq!(dead.len(), 10);
    for d in &dead {
        let m = d.message.as_ref().expect("a message");
        assert_eq!(
            (m.bytes.len(), m.len),
            (4096, message("dead-0", MB8).len() as u64)
        );
        assert!(String::from_utf8_lossy(&m.bytes).contains(r#""id":"dead-"#));
        let r = d.reason.as_ref().expect("a reason");
        assert_eq!((r.bytes.len(), r.len), (4096, MB8 as u64));
    }
    assert_eq!(queued.len(), 1);
    assert_eq!(leased.len(), 1);
    assert_eq!(leased[0].lease.consumer, "w1");
    for m in [
        &queued[0].message,
        &leased[0].message,
        &scheduled[0].message,
    ] {
        let m = m.as_ref().expect("a message");
        assert_eq!((m.bytes.len(), m.len), (4096, big.len() as u64));
    }
    assert_eq!(scheduled[0].token.bytes, b"sched-1");
    assert_eq!(scheduled[0].due_ms, Some(5));
    assert_eq!((kept.bytes.len(), kept.len), (4096, MB8 as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_read_a_window_at_a_time_is_the_whole_value() {
    // What a download does: windows from offset 0 on, until the length.
    let redis = RedisServer::start().expect("redis");
    let mut con = connect(&redis).await;
    let value: Vec<u8> = (0..3_000_001u32).map(|i| (i % 251) as u8).collect();
    let token: String = redis::cmd("XADD")
        .arg("rpc:{Big}:dead")
        .arg("*")
        .arg("reason")
        .arg("r")
        .arg("m")
        .arg(&value)
        .query_async(&mut con)
        .await
        .expect("XADD");
    let inspector = Inspector::connect(&redis.url(), "rpc")
        .await
        .expect("inspector");
    let mut read = Vec::new();
    loop {
        let window = inspector
            .entry_window("Big", Stream::Dead, &token, "m", read.len() as u64, 1 << 20)
            .await
            .expect("a window")
            .expect("the entry");
        assert_eq!(window.len, value.len() as u64);
        if window.bytes.is_empty() {
            break;
        }
        read.extend_from_slice(&window.bytes);
    }
    assert!(read == value, "the windows add up to the value");
    assert_eq!(
        inspector
            .entry_window("Big", Stream::Dead, "1-1", "m", 0, 10)
            .await
            .expect("no error"),
        None
    );
    assert!(
        inspector
            .entry_window("Big", Stream::Dead, "+", "m", 0, 10)
            .await
            .is_err(),
        "only entry ids reach Redis"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_found_among_100000_dead_letters_newest_first() {
    // The newest and the oldest of 100,000 dead letters, each found in
    // bounded steps, the newest first when a call died twice.
    let redis = RedisServer::start().expect("redis");
    let mut con = connect(&redis).await;
    let total = 100_000;
    for batch in 0..total / 1000 {
        let mut pipe = redis::pipe();
        for i in batch * 1000..(batch + 1) * 1000 {
            let id = if i == total - 1 {
                "twice".to_owned()
            } else {
                format!("call-{i}")
            };
            pipe.cmd("XADD")
                .arg("rpc:{Many}:dead")
                .arg("*")
                .arg("reason")
                .arg("boom")
                .arg("m")
                .arg(message(&id, 64))
                .ignore();
        }
        let _: () = pipe.query_async(&mut con).await.expect("XADD batch");
    }
    let first: Vec<redis::Value> = redis::cmd("XRANGE")
        .arg("rpc:{Many}:dead")
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut con)
        .await
        .expect("XRANGE");
    assert_eq!(first.len(), 1);
    let newest: String = redis::cmd("XADD")
        .arg("rpc:{Many}:dead")
        .arg("*")
        .arg("reason")
        .arg("again")
        .arg("m")
        .arg(message("twice", 64))
        .query_async(&mut con)
        .await
        .expect("XADD");
    let inspector = Inspector::connect(&redis.url(), "rpc")
        .await
        .expect("inspector");
    let deadline = Instant::now() + Duration::from_secs(60);

    let started = Instant::now();
    let found = inspector
        .find_call("Many", Stream::Dead, "twice", 10, deadline)
        .await
        .expect("search");
    let newest_took = started.elapsed();
    assert!(found.finished);
    assert_eq!(found.tokens.len(), 2, "{found:?}");
    assert_eq!(found.tokens[0], newest, "newest first");

    let started = Instant::now();
    let oldest = inspector
        .find_call("Many", Stream::Dead, "call-0", 10, deadline)
        .await
        .expect("search");
    let oldest_took = started.elapsed();
    assert!(oldest.finished);
    assert_eq!(
        oldest.tokens.len(),
        1,
        "call-0 and not call-00..: {oldest:?}"
    );
    println!(
        "lookup among 100,001 dead letters: the whole stream in {oldest_took:?} \
         (a call that died twice, newest first, in {newest_took:?})"
    );

    // A deadline that has passed says the search is unfinished, not "absent".
    let cut_short = inspector
        .find_call("Many", Stream::Dead, "call-0", 10, Instant::now())
        .await
        .expect("search");
    assert!(!cut_short.finished && cut_short.tokens.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_role_reads_excerpts_with_its_read_only_scripts() {
    // deploy/redis/roles.acl's operator, which has `+evalsha_ro +zscore`:
    // every bounded read with an empty ACL LOG. Without them Redis refuses.
    rpc_testkit::require_redis_server();
    let dir = std::env::temp_dir().join(format!("rpc-excerpt-acl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let operator = ROLES
        .lines()
        .find(|l| l.starts_with("user rpc-operator"))
        .expect("the operator role")
        .replace("OPERATOR_PASSWORD", "op-pw");
    assert!(operator.contains(" +evalsha_ro") && operator.contains(" +zscore"));
    let without = operator
        .replace("user rpc-operator", "user rpc-operator-rw")
        .replace(" +evalsha_ro", "");
    let acl = dir.join("users.acl");
    std::fs::write(
        &acl,
        format!("user default on >admin ~* &* +@all\n{operator}\n{without}\n"),
    )
    .expect("write ACL");
    let redis = RedisServer::builder()
        .acl_file(&acl)
        .auth("default", "admin")
        .start()
        .expect("redis with ACL");
    let message = String::from_utf8(message("c1", 10)).expect("utf-8");
    let token = redis.cli([
        "XADD",
        "rpc:{Acl}:dead",
        "*",
        "reason",
        "boom",
        "m",
        &message,
    ]);
    let token = token.trim().to_owned();
    redis.cli(["XADD", "rpc:{Acl}:jobs", "*", "m", &message]);
    redis.cli(["ZADD", "rpc:{Acl}:schedule", "1", "c2"]);
    redis.cli(["HSET", "rpc:{Acl}:scheduled", "c2", &message]);
    redis.cli(["SET", "rpc:result:{c1}", "{\"ok\":1}"]);

    let inspector = Inspector::connect(&redis.url_as("rpc-operator", "op-pw"), "rpc")
        .await
        .expect("inspector");
    let dead = inspector
        .dead_letter_excerpts("Acl", None, 10, 100)
        .await
        .expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert!(inspector
        .queued_excerpts("Acl", None, 10, 100)
        .await
        .expect("queued")
        .is_some_and(|q| q.len() == 1));
    assert!(inspector
        .scheduled_window("Acl", "c2", 0, 100)
        .await
        .expect("scheduled")
        .is_some());
    assert!(inspector
        .kept_result_window("c1", 0, 100)
        .await
        .expect("kept")
        .is_some());
    let found = inspector
        .find_call(
            "Acl",
            Stream::Dead,
            "c1",
            10,
            Instant::now() + Duration::from_secs(30),
        )
        .await
        .expect("find");
    assert_eq!(found.tokens, [token]);
    let log = redis.cli(["ACL", "LOG"]);
    assert!(log.trim().is_empty(), "denied something:\n{log}");

    let plain = Inspector::connect(&redis.url_as("rpc-operator-rw", "op-pw"), "rpc")
        .await
        .expect("inspector");
    let refused = plain.dead_letter_excerpts("Acl", None, 10, 100).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().to_lowercase().contains("noperm")),
        "{refused:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
