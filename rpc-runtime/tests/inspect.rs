//! The operator's read-only view (`rpc_runtime::inspect`) against private
//! Redis servers whose queue contents the tests write by hand, with the
//! commands of docs/PROTOCOL.md.

use std::time::Duration;

use rpc_runtime::inspect::{Inspector, Rates, ScheduledJob};
use rpc_runtime::{CallOptions, Client, DynamicService, Error, Worker};
use rpc_testkit::{RedisCluster, RedisServer};
use serde_json::json;

/// Redis's clock, in milliseconds.
fn server_ms(redis: &RedisServer) -> u64 {
    let time = redis.cli(["TIME"]);
    let mut parts = time.split_whitespace().map(|p| p.parse::<u64>().unwrap());
    let (secs, micros) = (parts.next().unwrap(), parts.next().unwrap());
    secs * 1000 + micros / 1000
}

/// Writes the known contents: service `Math` with 5 jobs (the first added a
/// minute ago), 3 of them leased to two workers, one delivered twice, and 2
/// dead letters; service `Idle` with one job and no worker yet; an inbox
/// with two replies and a kept result; keys that look alike but are not
/// queues of this prefix.
fn fill(redis: &RedisServer) {
    let jobs = "rpc:{Math}:jobs";
    redis.cli(["XGROUP", "CREATE", jobs, "workers", "0", "MKSTREAM"]);
    let minute_ago = format!("{}-0", server_ms(redis) - 60_000);
    redis.cli(["XADD", jobs, &minute_ago, "m", r#"{"n":1}"#]);
    for n in 2..=5 {
        redis.cli(["XADD", jobs, "*", "m", &format!(r#"{{"n":{n}}}"#)]);
    }
    redis.cli([
        "XREADGROUP",
        "GROUP",
        "workers",
        "w1",
        "COUNT",
        "2",
        "STREAMS",
        jobs,
        ">",
    ]);
    redis.cli([
        "XREADGROUP",
        "GROUP",
        "workers",
        "w2",
        "COUNT",
        "1",
        "STREAMS",
        jobs,
        ">",
    ]);
    // A second delivery of the first job, to w2 (a reclaim).
    redis.cli(["XCLAIM", jobs, "workers", "w2", "0", &minute_ago]);
    for n in 1..=2 {
        let message = format!(r#"{{"dead":{n}}}"#);
        redis.cli([
            "XADD",
            "rpc:{Math}:dead",
            "*",
            "reason",
            "boom",
            "m",
            &message,
        ]);
    }
    redis.cli(["XADD", "rpc:{Idle}:jobs", "*", "m", "not json"]);
    redis.cli(["RPUSH", "rpc:inbox:{c1}", "r1", "r2"]);
    redis.cli(["PEXPIRE", "rpc:inbox:{c1}", "60000"]);
    redis.cli([
        "SET",
        "rpc:result:{call1}",
        r#"{"v":1,"id":"call1","ok":3}"#,
        "PX",
        "60000",
    ]);
    redis.cli(["XADD", "other:{Hidden}:jobs", "*", "m", "{}"]);
    redis.cli(["SET", "rpc:{NotAStream}:jobs", "x"]);
}

fn message(n: u32) -> Vec<u8> {
    format!(r#"{{"n":{n}}}"#).into_bytes()
}

#[tokio::test]
async fn stats_show_what_is_queued_leased_and_dead() {
    // An operator asks "what is waiting, what is running, what failed" of a
    // Redis whose queues are known exactly.
    let redis = RedisServer::start().expect("start redis-server");
    fill(&redis);
    let inspector = Inspector::connect(&redis.url(), "rpc").await.unwrap();

    assert_eq!(inspector.services().await.unwrap(), ["Idle", "Math"]);

    let math = inspector
        .service_stats("Math")
        .await
        .unwrap()
        .expect("Math");
    assert_eq!((math.queued, math.leased, math.dead_letters), (2, 3, 2));
    assert_eq!(math.stream_length, 5);
    assert_eq!(math.entries_added, Some(5), "Redis 7 reports entries-added");
    let consumers: Vec<(&str, u64)> = math
        .consumers
        .iter()
        .map(|c| (c.name.as_str(), c.pending))
        .collect();
    assert_eq!(consumers, [("w1", 1), ("w2", 2)]);
    assert!(math
        .consumers
        .iter()
        .all(|c| c.idle < Duration::from_secs(30)));
    let age = math.oldest_leased_age.expect("something is leased");
    assert!(
        (Duration::from_secs(59)..Duration::from_secs(90)).contains(&age),
        "the oldest lease is on the job added a minute ago: {age:?}"
    );

    let json = serde_json::to_value(&math).unwrap();
    assert_eq!(json["queued"], 2);
    assert_eq!(json["consumers"][1]["name"], "w2");
    assert!(json["oldest_leased_age_ms"].as_u64().unwrap() >= 59_000);

    let idle = inspector
        .service_stats("Idle")
        .await
        .unwrap()
        .expect("Idle");
    assert_eq!((idle.queued, idle.leased, idle.dead_letters), (1, 0, 0));
    assert!(idle.consumers.is_empty());
    assert_eq!(idle.oldest_leased_age, None);
}

#[tokio::test]
async fn leased_and_queued_jobs_are_listed_with_their_messages() {
    // `rpc stats`' detail view: which jobs are leased to whom, how often they
    // were handed out, and which wait.
    let redis = RedisServer::start().expect("start redis-server");
    fill(&redis);
    let inspector = Inspector::connect(&redis.url(), "rpc").await.unwrap();

    let leased = inspector.leased("Math", 10).await.unwrap().expect("Math");
    let seen: Vec<(&str, u64, Option<Vec<u8>>)> = leased
        .iter()
        .map(|j| (j.consumer.as_str(), j.deliveries, j.payload.clone()))
        .collect();
    assert_eq!(
        seen,
        [
            ("w2", 2, Some(message(1))),
            ("w1", 1, Some(message(2))),
            ("w2", 1, Some(message(3))),
        ]
    );
    assert_eq!(inspector.leased("Math", 1).await.unwrap().unwrap().len(), 1);

    let queued = inspector.queued("Math", 10).await.unwrap().expect("Math");
    let payloads: Vec<Vec<u8>> = queued.iter().map(|j| j.payload.clone()).collect();
    assert_eq!(payloads, [message(4), message(5)]);
    assert!(queued[0].token < queued[1].token);

    // No group yet: everything in the stream is queued.
    let idle = inspector.queued("Idle", 10).await.unwrap().expect("Idle");
    assert_eq!(idle.len(), 1);
    assert!(inspector
        .leased("Idle", 10)
        .await
        .unwrap()
        .unwrap()
        .is_empty());
    let json = serde_json::to_value(&idle[0]).unwrap();
    assert_eq!(
        json["message"], "not json",
        "non-JSON messages print as text"
    );
}

#[tokio::test]
async fn inboxes_and_kept_results_are_readable() {
    // Replies piling up in an inbox are a client that stopped reading; a
    // kept result can be looked at by call id.
    let redis = RedisServer::start().expect("start redis-server");
    fill(&redis);
    let inspector = Inspector::connect(&redis.url(), "rpc").await.unwrap();
    let inboxes = inspector.inboxes().await.unwrap();
    assert_eq!(inboxes.len(), 1);
    assert_eq!((inboxes[0].client.as_str(), inboxes[0].replies), ("c1", 2));
    let ttl = inboxes[0].expires_in.expect("inboxes expire");
    assert!(ttl > Duration::from_secs(50) && ttl <= Duration::from_secs(60));
    let kept = inspector.kept_result("call1").await.unwrap().expect("kept");
    assert_eq!(kept, br#"{"v":1,"id":"call1","ok":3}"#);
    assert_eq!(inspector.kept_result("nope").await.unwrap(), None);
}

#[tokio::test]
async fn an_unknown_service_is_told_apart_from_an_empty_one() {
    // A typo in a service name must not look like an idle queue.
    let redis = RedisServer::start().expect("start redis-server");
    fill(&redis);
    let inspector = Inspector::connect(&redis.url(), "rpc").await.unwrap();
    assert!(inspector.service_stats("Nope").await.unwrap().is_none());
    assert!(inspector.leased("Nope", 10).await.unwrap().is_none());
    assert!(inspector.queued("Nope", 10).await.unwrap().is_none());
    // Another prefix's queue is not ours.
    assert!(inspector.service_stats("Hidden").await.unwrap().is_none());
    let other = Inspector::connect(&redis.url(), "other").await.unwrap();
    assert_eq!(other.services().await.unwrap(), ["Hidden"]);
}

#[tokio::test]
async fn unreachable_redis_is_a_clear_error() {
    // An operator pointing the tool at the wrong port gets a message naming
    // it, not a hang.
    let redis = RedisServer::start().expect("start redis-server");
    redis.kill().unwrap();
    // Not `url()`: another test's server may have taken the freed port.
    let url = redis.unreachable_url();
    match Inspector::connect(&url, "rpc").await {
        Err(Error::Broker(message)) => assert!(message.contains("cannot connect"), "{message}"),
        Err(other) => panic!("expected a broker error, got {other}"),
        Ok(_) => panic!("connected to a dead server"),
    }
    assert!(matches!(
        Inspector::connect("postgres://x", "rpc").await,
        Err(Error::InvalidUrl { .. })
    ));
    // A memory broker can be inspected, from inside its process only.
    let memory = Inspector::connect("memory://demo", "rpc").await.unwrap();
    assert!(!memory.is_shared());
}

#[tokio::test]
async fn ping_reports_the_server_version() {
    let redis = RedisServer::start().expect("start redis-server");
    let inspector = Inspector::connect(&redis.url(), "rpc").await.unwrap();
    let ping = inspector.ping().await.unwrap();
    let version = ping.server_version.expect("INFO server has redis_version");
    assert!(
        version.starts_with(|c: char| c.is_ascii_digit()),
        "{version}"
    );
    assert!(ping.latency < Duration::from_secs(5));
}

#[tokio::test]
async fn rates_come_from_entries_added_and_the_stream_length() {
    // `rpc top`'s jobs/s: 10 added and the stream 4 shorter in 2 s is 5/s in
    // and 7/s out.
    let redis = RedisServer::start().expect("start redis-server");
    fill(&redis);
    let inspector = Inspector::connect(&redis.url(), "rpc").await.unwrap();
    let earlier = inspector.service_stats("Math").await.unwrap().unwrap();
    let mut later = earlier.clone();
    later.entries_added = earlier.entries_added.map(|n| n + 10);
    later.stream_length = earlier.stream_length + 10 - 14;
    let rates = Rates::between(&earlier, &later, Duration::from_secs(2));
    assert_eq!(rates.in_per_sec, Some(5.0));
    assert_eq!(rates.out_per_sec, Some(7.0));
    later.entries_added = None;
    assert_eq!(
        Rates::between(&earlier, &later, Duration::from_secs(2)).in_per_sec,
        None
    );
}

#[tokio::test]
async fn the_schedule_is_listed_soonest_first_and_garbage_on_it_is_shown_not_fatal() {
    // `rpc scheduled` and the dashboard: a delayed call sent by the real
    // client (put on the schedule by a real worker), a retry waiting out
    // its backoff, and what a broken writer
    // could leave there (no message, bytes that are no JSON, a JSON array,
    // a score of +inf): every entry is listed, in due order, none fails
    // the listing.
    let redis = RedisServer::start().expect("start redis-server");
    fill(&redis);
    let url = redis.url();
    let client = Client::connect(&url).await.unwrap();
    let delayed = client
        .send("Math.add", json!({"a": 1, "b": 2}))
        .options(CallOptions::delay(Duration::from_secs(60)))
        .await
        .unwrap();
    // A worker takes the delayed call and puts it on the schedule; it is
    // stopped before the garbage below is written (it would dead-letter it).
    let worker = Worker::builder(&url)
        .mount(DynamicService::new("Math").job("add", |req| async move { Ok(req.data) }))
        .build()
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run_until(async {
        let _ = stopped.await;
    }));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while redis
        .cli(["ZSCORE", "rpc:{Math}:schedule", delayed.as_str()])
        .trim()
        .is_empty()
    {
        assert!(std::time::Instant::now() < deadline, "never scheduled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    let now = server_ms(&redis);
    let retry =
        r#"{"v":1,"id":"retry-1","job":"Math.add","params":{},"attempt":2,"max_attempts":3}"#;
    let mut con = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let (schedule, messages) = ("rpc:{Math}:schedule", "rpc:{Math}:scheduled");
    let _: () = redis::pipe()
        .cmd("ZADD")
        .arg(schedule)
        .arg(now + 5_000)
        .arg("retry-1")
        .cmd("HSET")
        .arg(messages)
        .arg("retry-1")
        .arg(retry)
        .cmd("ZADD")
        .arg(schedule)
        .arg(1)
        .arg("no-message")
        .cmd("ZADD")
        .arg(schedule)
        .arg(2)
        .arg("garbage")
        .cmd("HSET")
        .arg(messages)
        .arg("garbage")
        .arg(&b"\xff\x00not json{"[..])
        .cmd("ZADD")
        .arg(schedule)
        .arg("+inf")
        .arg("never")
        .cmd("HSET")
        .arg(messages)
        .arg("never")
        .arg("[1,2]")
        .query_async(&mut con)
        .await
        .unwrap();
    let inspector = Inspector::connect(&url, "rpc").await.unwrap();

    let jobs = inspector
        .scheduled("Math", 10)
        .await
        .unwrap()
        .expect("Math");
    let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "no-message",
            "garbage",
            "retry-1",
            delayed.as_str(),
            "never"
        ]
    );
    let seen: Vec<(Option<u32>, Option<&str>, bool)> = jobs
        .iter()
        .map(|j| (j.attempt, j.job.as_deref(), j.is_retry()))
        .collect();
    assert_eq!(
        seen,
        [
            (None, None, false),
            (None, None, false),
            (Some(2), Some("Math.add"), true),
            (Some(1), Some("Math.add"), false),
            (None, None, false),
        ]
    );
    assert_eq!((jobs[0].due_ms, jobs[1].due_ms), (1, 2));
    assert!(jobs[0].payload.is_empty(), "no message is an empty one");
    assert_eq!(jobs[1].payload, b"\xff\x00not json{");
    assert_eq!(jobs[2].due_ms, now + 5_000);
    assert!(
        (now + 55_000..=now + 60_000).contains(&jobs[3].due_ms),
        "the delayed call is due a minute after it was sent: {} vs {now}",
        jobs[3].due_ms
    );
    assert_eq!(jobs[4].due_ms, u64::MAX, "+inf");
    let sent: serde_json::Value = serde_json::from_slice(&jobs[3].payload).unwrap();
    assert_eq!(sent["params"], json!({"a": 1, "b": 2}));

    let json = serde_json::to_value(&jobs[2]).unwrap();
    assert_eq!(json["id"], "retry-1");
    assert_eq!(json["due_ms"], now + 5_000);
    assert_eq!(json["message"]["attempt"], 2, "the message as JSON");

    let first_two = inspector.scheduled("Math", 2).await.unwrap().unwrap();
    assert_eq!(first_two, jobs[..2].to_vec());
    assert_eq!(
        inspector.scheduled("Math", 0).await.unwrap(),
        Some(Vec::new())
    );
    assert_eq!(inspector.scheduled_count("Math").await.unwrap(), 5);

    // A service with a queue and nothing scheduled, one with only a
    // schedule (no worker made its stream yet), and an unknown one.
    assert_eq!(
        inspector.scheduled("Idle", 10).await.unwrap(),
        Some(Vec::new())
    );
    assert_eq!(inspector.scheduled_count("Idle").await.unwrap(), 0);
    // A retry waiting on the schedule of a service whose stream is gone.
    let due = (now + 60_000).to_string();
    redis.cli(["ZADD", "rpc:{Later}:schedule", &due, "later-1"]);
    redis.cli([
        "HSET",
        "rpc:{Later}:scheduled",
        "later-1",
        r#"{"v":1,"id":"later-1","job":"Later.run","params":{},"attempt":2}"#,
    ]);
    let later: Vec<ScheduledJob> = inspector.scheduled("Later", 10).await.unwrap().unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].job.as_deref(), Some("Later.run"));
    assert!(inspector.scheduled("Nope", 10).await.unwrap().is_none());
    assert_eq!(inspector.scheduled_count("Nope").await.unwrap(), 0);
}

#[tokio::test]
async fn a_paused_service_is_seen_as_paused_until_it_is_resumed() {
    // The dashboard's "paused" badge reads the flag the client's pause sets.
    let redis = RedisServer::start().expect("start redis-server");
    fill(&redis);
    let client = Client::connect(&redis.url()).await.unwrap();
    let inspector = Inspector::connect(&redis.url(), "rpc").await.unwrap();
    assert!(!inspector.is_paused("Math").await.unwrap());
    assert!(client.pause("Math").await.unwrap());
    assert!(inspector.is_paused("Math").await.unwrap());
    assert!(!inspector.is_paused("Idle").await.unwrap(), "only Math");
    assert!(client.resume("Math").await.unwrap());
    assert!(!inspector.is_paused("Math").await.unwrap());
}

/// The operator's read-only rules from docs/PROTOCOL.md ("ACL").
const OPERATOR_RULES: &str = "on >0ps resetkeys ~rpc:* resetchannels -@all +ping +info +time +scan +exists +xlen +xrange +xpending +xinfo|stream +xinfo|groups +xinfo|consumers +llen +pttl +get +type +hgetall +zcard +zcount +zrange +hmget +evalsha_ro +script|load";

#[tokio::test]
async fn works_as_a_read_only_operator_user() {
    // The operator role of DESIGN.md: it sees every figure with read
    // commands only, and cannot write to a queue.
    let acl = std::env::temp_dir().join(format!("rpc-inspect-acl-{}.acl", std::process::id()));
    let users = format!("user default on >admin ~* &* +@all\nuser ops {OPERATOR_RULES}\n");
    std::fs::write(&acl, users).unwrap();
    let redis = RedisServer::builder()
        .acl_file(&acl)
        .auth("default", "admin")
        .start()
        .expect("acl redis");
    fill(&redis);
    let inspector = Inspector::connect(&redis.url_as("ops", "0ps"), "rpc")
        .await
        .unwrap();
    inspector.ping().await.unwrap();
    assert_eq!(inspector.services().await.unwrap(), ["Idle", "Math"]);
    let math = inspector.service_stats("Math").await.unwrap().unwrap();
    assert_eq!((math.queued, math.leased, math.dead_letters), (2, 3, 2));
    assert_eq!(
        inspector.leased("Math", 10).await.unwrap().unwrap().len(),
        3
    );
    assert_eq!(
        inspector.queued("Math", 10).await.unwrap().unwrap().len(),
        2
    );
    // `rpc periodic` (the hashes a worker with periodic jobs keeps).
    redis.cli(["HSET", "rpc:{Math}:periodic", "beat", "{}"]);
    redis.cli(["HSET", "rpc:{Math}:periodic:last", "beat", "1000"]);
    assert_eq!(inspector.periodic_services().await.unwrap(), ["Math"]);
    let periodic = inspector.periodic("Math").await.unwrap().unwrap();
    assert_eq!(periodic[0].last_ms, Some(1000));
    redis.cli(["ZADD", "rpc:{Math}:schedule", "1", "c9"]);
    redis.cli(["HSET", "rpc:{Math}:scheduled", "c9", "{}"]);
    assert_eq!(inspector.scheduled_count("Math").await.unwrap(), 1);
    assert_eq!(
        inspector.scheduled("Math", 10).await.unwrap().unwrap()[0].payload,
        b"{}"
    );
    assert!(!inspector.is_paused("Math").await.unwrap());
    // A priority lane and a group key (issue 24 point 5).
    redis.cli(["XADD", "rpc:{Math}:jobs:1", "*", "m", "{}"]);
    redis.cli(["ZADD", "rpc:{Math}:group:add:t1:running", "+inf", "c1"]);
    let math = inspector.service_stats("Math").await.unwrap().unwrap();
    assert_eq!((math.queued, math.lanes[0].queued), (3, 1));
    let busy = inspector.busy_group_keys("Math").await.unwrap();
    assert_eq!(
        busy.keys.iter().map(|k| k.running).collect::<Vec<_>>(),
        [Some(1)]
    );
    let log = redis.cli(["ACL", "LOG"]);
    assert!(
        log.trim().is_empty(),
        "the inspector was denied something:\n{log}"
    );
    let denied = redis.cli([
        "ACL",
        "DRYRUN",
        "ops",
        "XADD",
        "rpc:{Math}:jobs",
        "*",
        "m",
        "x",
    ]);
    assert!(denied.contains("no permissions"), "{denied}");
    std::fs::remove_file(&acl).ok();
}

#[tokio::test]
async fn services_are_found_on_every_master_of_a_cluster() {
    // On a Cluster each service's stream lives on the master of its slot; a
    // SCAN of one node would miss the others.
    let cluster = RedisCluster::start(3).expect("start a cluster");
    let services = ["Alpha", "Beta", "Gamma", "Delta", "Epsilon", "Zeta"];
    for s in services {
        cluster.cli(["XADD", &format!("rpc:{{{s}}}:jobs"), "*", "m", "{}"]);
    }
    cluster.cli(["XADD", "rpc:{Alpha}:dead", "*", "reason", "r", "m", "{}"]);
    cluster.cli(["XGROUP", "CREATE", "rpc:{Beta}:jobs", "workers", "0"]);
    cluster.cli([
        "XREADGROUP",
        "GROUP",
        "workers",
        "w1",
        "STREAMS",
        "rpc:{Beta}:jobs",
        ">",
    ]);
    let seeds: Vec<String> = cluster
        .urls()
        .iter()
        .map(|u| {
            u.trim_start_matches("redis://")
                .trim_end_matches('/')
                .to_owned()
        })
        .collect();
    let url = format!("redis+cluster://{}/", seeds.join(","));
    let inspector = Inspector::connect(&url, "rpc").await.unwrap();
    let mut expected = services.map(str::to_owned).to_vec();
    expected.sort();
    assert_eq!(inspector.services().await.unwrap(), expected);
    let alpha = inspector.service_stats("Alpha").await.unwrap().unwrap();
    assert_eq!((alpha.queued, alpha.dead_letters), (1, 1));
    assert_eq!(inspector.queued("Zeta", 5).await.unwrap().unwrap().len(), 1);
    let beta = inspector.service_stats("Beta").await.unwrap().unwrap();
    assert_eq!((beta.queued, beta.leased, beta.consumers.len()), (0, 1, 1));
    let leased = inspector.leased("Beta", 5).await.unwrap().unwrap();
    assert_eq!(leased[0].payload.as_deref(), Some(&b"{}"[..]));
    assert!(inspector.ping().await.unwrap().server_version.is_some());
}
