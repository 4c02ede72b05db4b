//! Rate limits in-process, on Redis and on `memory://`: starts spaced by
//! the limit (a job's own and its service's together), waiting that is no
//! attempt, a call whose turn would come after its deadline answered at
//! once, and garbage where the limit keeps its state that stops nothing.
//! The fleet-wide figure (four processes, 50/s) is
//! `rpc-chaos/tests/rate_limit.rs`.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use rpc_runtime::inspect::{RateState, ServiceRateLimit, MAX_RATE_LIMITS_LISTED};
use rpc_runtime::{CallOptions, ErrorKind, Inspector, RateLimit};
use serde_json::json;

use super::*;

fn rate(text: &str) -> RateLimit {
    text.parse().expect("a valid rate")
}

/// No start before its turn: the k-th (in time) at least k intervals after
/// the first, less what reading the clock after the script lets the first
/// gain. Not each gap: a call that came back late for its turn starts as
/// soon as it is back, and the next may follow it closely on a loaded
/// machine (PROTOCOL.md, "Rate limits").
pub fn assert_spaced(url: &str, what: &str, sorted: &[Instant], interval: Duration) {
    let slack = Duration::from_millis(15);
    for (k, &at) in sorted.iter().enumerate() {
        let turn = sorted[0] + interval * k as u32;
        assert!(
            at + slack >= turn,
            "{url}: {what}: start {k} came {:?} before its turn",
            turn - at
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_are_spaced_by_the_jobs_and_the_services_limits_and_waiting_is_no_attempt() {
    on_both("rate-spacing", |url| async move {
        let log = Log::default();
        let name = "RateSpaced";
        // echo: its own 5/s; every job of the service together: 10/s.
        let service = service_named(name, log.clone())
            .rate_limit(Some("echo"), rate("5/s"))
            .rate_limit(None, rate("10/s"));
        let _worker = start(settings(Worker::builder(&url).mount(service))).await;
        let client = client(&url).await;
        let calls = (0..6).map(|i| {
            let client = client.clone();
            let job = if i % 2 == 0 { "echo" } else { "slow" };
            async move {
                client
                    .call(&format!("{name}.{job}"), json!({"ms": 0}))
                    .options(CallOptions::timeout(PATIENCE))
                    .response()
                    .await
                    .unwrap_or_else(|e| panic!("{job}: {e}"))
            }
        });
        join_all(calls).await;
        let mut echo: Vec<Instant> = log.runs("echo").iter().map(|r| r.2).collect();
        let mut all: Vec<Instant> = echo.clone();
        all.extend(log.runs("slow").iter().map(|r| r.2));
        echo.sort();
        all.sort();
        assert_eq!(all.len(), 6, "{url}");
        assert_spaced(&url, "echo", &echo, Duration::from_millis(200));
        assert_spaced(&url, "every job", &all, Duration::from_millis(100));
        let attempts: Vec<u32> = ["echo", "slow"]
            .iter()
            .flat_map(|job| log.runs(job))
            .map(|r| r.1)
            .collect();
        assert!(attempts.iter().all(|&a| a == 1), "{url}: {attempts:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_turn_comes_after_its_deadline_is_answered_at_once() {
    on_both("rate-deadline", |url| async move {
        let log = Log::default();
        let name = "RateLate";
        let service = service_named(name, log.clone()).rate_limit(Some("echo"), rate("1/m"));
        let _worker = start(settings(Worker::builder(&url).mount(service))).await;
        let client = client(&url).await;
        let job = format!("{name}.echo");
        client
            .call(&job, json!(1))
            .options(CallOptions::timeout(PATIENCE))
            .response()
            .await
            .expect("the first start is allowed");
        // The next turn is a minute away; this call has 20 s.
        let asked = Instant::now();
        let e = client
            .call(&job, json!(2))
            .options(CallOptions::timeout(Duration::from_secs(20)))
            .response()
            .await
            .expect_err("its turn is after its deadline");
        assert_eq!(
            e.remote_kind(),
            Some(ErrorKind::DeadlineExceeded),
            "{url}: {e}"
        );
        assert!(
            e.to_string().contains("rate limit of RateLate.echo (1/m)"),
            "{url}: {e}"
        );
        assert!(
            asked.elapsed() < Duration::from_secs(15),
            "{url}: answered after {:?}",
            asked.elapsed()
        );
        assert_eq!(log.runs("echo").len(), 1, "{url}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_waits_on_the_schedule_for_its_turn_holding_nothing() {
    rpc_testkit::require_redis_server();
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let log = Log::default();
    let name = "RateWait";
    let service = service_named(name, log.clone()).rate_limit(Some("echo"), rate("1/m"));
    let _worker = start(settings(Worker::builder(&url).mount(service))).await;
    let client = client(&url).await;
    let job = format!("{name}.echo");
    // Its deadline (10 min) is after its turn (a minute on).
    let patient = CallOptions::timeout(Duration::from_secs(600));
    let first = client
        .send(&job, json!(1))
        .options(patient.clone())
        .await
        .unwrap();
    let second = client.send(&job, json!(2)).options(patient).await.unwrap();
    let turns = format!("rpc:{{{name}}}:turns:echo");
    // One of the two starts (the worker may take both in one read and ask
    // for both at once); the other is given the next turn.
    wait_until("a call holds a turn", PATIENCE, || {
        redis.cli(["ZCARD", &turns]).trim() == "1"
    })
    .await;
    let waiting = redis.cli(["ZRANGE", &turns, "0", "0"]).trim().to_owned();
    assert!(
        [first.as_str(), second.as_str()].contains(&waiting.as_str()),
        "{waiting} holds the turn"
    );
    // On the schedule, its turn a minute on: not leased, not run.
    let schedule = format!("rpc:{{{name}}}:schedule");
    assert_eq!(redis.cli(["ZCARD", &schedule]).trim(), "1");
    let turn_us: u64 = redis
        .cli(["ZSCORE", &turns, &waiting])
        .trim()
        .parse()
        .unwrap();
    let due_ms: u64 = redis
        .cli(["ZSCORE", &schedule, &waiting])
        .trim()
        .parse()
        .unwrap();
    assert!(
        due_ms * 1_000 + 5_000 >= turn_us,
        "due {due_ms} ms, turn {turn_us} µs"
    );
    assert_eq!(log.runs("echo").len(), 1);
    let state = format!("rpc:{{{name}}}:rate:echo");
    assert_eq!(redis.cli(["HGET", &state, "rate"]).trim(), "1/m");
    assert_eq!(redis.cli(["HGET", &state, "allowed"]).trim(), "1");
    assert_eq!(redis.cli(["HGET", &state, "waited"]).trim(), "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_in_a_limits_state_stops_nothing() {
    rpc_testkit::require_redis_server();
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let log = Log::default();
    let name = "RateGarbage";
    let state = format!("rpc:{{{name}}}:rate:echo");
    let turns = format!("rpc:{{{name}}}:turns:echo");
    let all = format!("rpc:{{{name}}}:rate");
    // Keys of the wrong types, and a hash whose `tat` is no number.
    redis.cli(["RPUSH", &state, "not", "a", "hash"]);
    redis.cli(["SET", &turns, "not a sorted set"]);
    redis.cli(["HSET", &all, "tat", "soon", "allowed", "many"]);
    let service = service_named(name, log.clone())
        .rate_limit(Some("echo"), rate("100/s"))
        .rate_limit(None, rate("100/s"));
    let _worker = start(settings(Worker::builder(&url).mount(service))).await;
    let client = client(&url).await;
    for i in 0..3 {
        let reply = client
            .call(&format!("{name}.echo"), json!(i))
            .options(CallOptions::timeout(PATIENCE))
            .response()
            .await
            .expect("answered despite the garbage");
        assert_eq!(reply.data, json!(i));
    }
    assert_eq!(redis.cli(["TYPE", &state]).trim(), "hash");
    assert_ne!(redis.cli(["TYPE", &turns]).trim(), "string");
    assert_eq!(redis.cli(["HGET", &state, "allowed"]).trim(), "3");
    let tat: u64 = redis
        .cli(["HGET", &all, "tat"])
        .trim()
        .parse()
        .expect("a number again");
    assert!(tat > 1_000_000_000_000_000, "tat {tat} µs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_refuses_a_limit_for_a_job_it_does_not_serve() {
    let url = memory_url("rate-config");
    let e = match settings(Worker::builder(&url).mount(service_named("RateConf", Log::default())))
        .rate_limits("RateConf.echo=5/s; RateConf.nope=1/s")
        .expect("the spec parses")
        .build()
        .await
    {
        Ok(_) => panic!("built with a limit for no job"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("service `RateConf` has no job `nope`"), "{e}");
    let e = match Worker::builder(&url).rate_limits("RateConf.echo=5/fortnight") {
        Ok(_) => panic!("a bad rate was taken"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("unknown period unit \"fortnight\""), "{e}");
}

/// Issue 24 point 5: operators see every limit of a service with its
/// state (`rpc stats`, the dashboard and the exporter read this list): a
/// job's limit of 1/m and its service's own, after one call started and
/// one was given the next turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_services_limits_are_listed_with_their_state_for_operators() {
    on_both("rate-listed", |url| async move {
        let log = Log::default();
        let name = "RateListed";
        let service = service_named(name, log.clone())
            .rate_limit(Some("echo"), rate("1/m"))
            .rate_limit(None, rate("100/s"));
        let _worker = start(settings(Worker::builder(&url).mount(service))).await;
        let client = client(&url).await;
        let inspector = Inspector::new(client.backend().clone());
        assert_eq!(inspector.rate_limits(name).await.unwrap(), []);
        let job = format!("{name}.echo");
        let patient = CallOptions::timeout(Duration::from_secs(600));
        for i in 0..2 {
            client
                .send(&job, json!(i))
                .options(patient.clone())
                .await
                .unwrap();
        }
        let deadline = Instant::now() + PATIENCE;
        let limits = loop {
            let limits = inspector.rate_limits(name).await.expect("listed");
            if limits.iter().any(|l| l.state.waiting == 1) {
                break limits;
            }
            assert!(Instant::now() < deadline, "{url}: none waits: {limits:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let jobs: Vec<Option<&str>> = limits.iter().map(|l| l.job.as_deref()).collect();
        assert_eq!(jobs, [None, Some("echo")], "{url}: the service's first");
        let [own, echo] = [&limits[0].state, &limits[1].state];
        assert_eq!(own.rate.as_deref(), Some("100/s"), "{url}");
        assert_eq!(echo.rate.as_deref(), Some("1/m"), "{url}");
        for state in [own, echo] {
            assert_eq!((state.allowed, state.waited), (1, 1), "{url}: {state:?}");
            assert!(state.last_second <= 1, "{url}: {state:?}");
        }
        // The turn is kept with the job's limit, the first the call asks.
        assert_eq!((own.waiting, echo.waiting), (0, 1), "{url}");
        // Every service's, in one pass: the same.
        let every = inspector.every_rate_limit().await.expect("listed");
        assert_eq!(every.get(name), Some(&limits), "{url}");
    })
    .await;
}

/// What the broker holds where limits keep their state is listed only
/// when it is a limit's hash (its numbers that are not numbers read as
/// zeros), never an error that would break `rpc stats` or the dashboard;
/// and however many there are, at most `MAX_RATE_LIMITS_LISTED` are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_where_limits_keep_state_is_left_out_or_read_as_zeros() {
    rpc_testkit::require_redis_server();
    let redis = RedisServer::start().expect("redis");
    let name = "RateJunk";
    redis.cli(["RPUSH", &format!("rpc:{{{name}}}:rate"), "not a hash"]);
    let echo = format!("rpc:{{{name}}}:rate:echo");
    redis.cli([
        "HSET", &echo, "rate", "5/s", "allowed", "many", "waited", "-3", "second", "x",
    ]);
    redis.cli(["SET", &format!("rpc:{{{name}}}:turns:echo"), "no zset"]);
    redis.cli(["HSET", &format!("rpc:{{{name}}}:rates"), "allowed", "1"]);
    redis.cli(["HSET", &format!("rpc:{{{name}}}:rate:"), "allowed", "1"]);
    let inspector = Inspector::connect(&redis.url(), "rpc").await.unwrap();
    let limits = inspector
        .rate_limits(name)
        .await
        .expect("garbage is no error");
    let expected = ServiceRateLimit {
        job: Some("echo".to_owned()),
        state: RateState {
            rate: Some("5/s".to_owned()),
            ..RateState::default()
        },
    };
    assert_eq!(limits, std::slice::from_ref(&expected));

    let many = "rpc:{RateMany}:rate";
    let script = "for i = 1, 150 do redis.call('HSET', KEYS[1] .. ':j' .. i, 'allowed', i) end";
    redis.cli(["EVAL", script, "1", many]);
    let limits = inspector.rate_limits("RateMany").await.unwrap();
    assert_eq!(limits.len(), MAX_RATE_LIMITS_LISTED);
    let every = inspector.every_rate_limit().await.expect("listed");
    let services: Vec<&String> = every.keys().collect();
    assert_eq!(services, ["RateJunk", "RateMany"]);
    assert_eq!(every["RateJunk"], [expected]);
    assert_eq!(every["RateMany"].len(), MAX_RATE_LIMITS_LISTED);
}

/// On a Cluster a service's limits are all in its slot: the listing scans
/// the one master that holds it and finds them, whichever master that is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_services_limits_are_listed_on_a_cluster() {
    rpc_testkit::require_redis_server();
    let cluster = rpc_testkit::RedisCluster::start(3).expect("cluster");
    for name in ["RateA", "RateB", "RateC"] {
        for key in [
            format!("rpc:{{{name}}}:rate"),
            format!("rpc:{{{name}}}:rate:echo"),
        ] {
            cluster.cli(["HSET", &key, "rate", "5/s", "allowed", "2"]);
        }
    }
    let inspector = Inspector::connect(&cluster.cluster_url(), "rpc")
        .await
        .unwrap();
    for name in ["RateA", "RateB", "RateC"] {
        let limits = inspector.rate_limits(name).await.expect("listed");
        let found: Vec<(Option<&str>, u64)> = limits
            .iter()
            .map(|l| (l.job.as_deref(), l.state.allowed))
            .collect();
        assert_eq!(found, [(None, 2), (Some("echo"), 2)], "{name}");
    }
    // Every service's, scanning every master once.
    let every = inspector.every_rate_limit().await.expect("listed");
    let counts: Vec<(&str, usize)> = every.iter().map(|(s, l)| (s.as_str(), l.len())).collect();
    assert_eq!(counts, [("RateA", 2), ("RateB", 2), ("RateC", 2)]);
}
