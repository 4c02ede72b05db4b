//! Priorities in-process, on Redis and on `memory://`: urgent calls queued
//! behind a backlog are taken first and in order, a delayed urgent call
//! keeps its lane when it leaves the schedule, a priority out of range is
//! refused at the client and dead-lettered with the reason when it arrives
//! raw, and garbage where a lane would be stops nothing. The fleet figures (10,000 low and 1,000 high; the least urgent
//! lane's share under a constant urgent load) are
//! `rpc-chaos/tests/priority.rs`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rpc_runtime::{CallOptions, DynamicService};
use rpc_testkit::RedisServer;
use serde_json::json;

use super::*;

/// A service whose one job `work` records `n` (in start order) and takes
/// `ms`.
fn recorder(name: &str, seen: Arc<Mutex<Vec<u64>>>) -> DynamicService {
    DynamicService::new(name).job("work", move |req| {
        let seen = seen.clone();
        async move {
            seen.lock()
                .unwrap()
                .push(req.data["n"].as_u64().unwrap_or(0));
            let ms = req.data["ms"].as_u64().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            req.respond(json!(null))
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urgent_calls_queued_behind_a_backlog_are_taken_first_and_in_order() {
    on_both("priority-order", |url| async move {
        let name = "Prio";
        let client = client(&url).await;
        // 20 at the least urgent priority, then 10 at the most urgent,
        // all queued before any worker runs.
        for n in 0..20u64 {
            client
                .send(&format!("{name}.work"), json!({"n": n}))
                .priority(5)
                .await
                .expect("queued");
        }
        for n in 100..110u64 {
            client
                .send(&format!("{name}.work"), json!({"n": n}))
                .priority(1)
                .await
                .expect("queued");
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let _worker = start(settings(
            Worker::builder(&url)
                .mount(recorder(name, seen.clone()))
                .concurrency(1),
        ))
        .await;
        wait_until(&format!("{url}: every call ran"), PATIENCE, || {
            seen.lock().unwrap().len() >= 30
        })
        .await;
        let order = seen.lock().unwrap().clone();
        let urgent: Vec<u64> = (100..110).collect();
        let rest: Vec<u64> = (0..20).collect();
        assert_eq!(order[..10], urgent[..], "{url}: {order:?}");
        assert_eq!(order[10..], rest[..], "{url}: {order:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_urgent_call_keeps_its_lane_when_it_leaves_the_schedule() {
    on_both("priority-delayed", |url| async move {
        let name = "PrioDelayed";
        let client = client(&url).await;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let _worker = start(settings(
            Worker::builder(&url)
                .mount(recorder(name, seen.clone()))
                .concurrency(1),
        ))
        .await;
        // A lane of priority 1 exists, so the worker reads it.
        client
            .call(&format!("{name}.work"), json!({"n": 999}))
            .options(CallOptions::timeout(PATIENCE))
            .priority(1)
            .response()
            .await
            .expect("answered");
        // A backlog of 200 jobs of 10 ms at the default priority (two
        // seconds), and an urgent call due in 300 ms.
        for n in 0..200u64 {
            client
                .send(&format!("{name}.work"), json!({"n": n, "ms": 10}))
                .await
                .expect("queued");
        }
        let sent = Instant::now();
        client
            .send(&format!("{name}.work"), json!({"n": 1000}))
            .options(CallOptions::delay(Duration::from_millis(300)))
            .priority(1)
            .await
            .expect("queued");
        wait_until(&format!("{url}: the urgent call ran"), PATIENCE, || {
            seen.lock().unwrap().contains(&1000)
        })
        .await;
        let order = seen.lock().unwrap().clone();
        let at = order.iter().position(|&n| n == 1000).unwrap();
        // It ran soon after its due time (about the 30th), ahead of most of
        // the backlog: not behind all of it, as it would have from the
        // default lane's tail, had it gone back anywhere but its lane.
        assert!(
            at < 120,
            "{url}: the urgent call ran {at}th of {}, {:?} after it was sent",
            order.len(),
            sent.elapsed()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_priority_out_of_range_is_refused_at_the_client_and_dead_lettered_raw() {
    on_both("priority-refused", |url| async move {
        let client = client(&url).await;
        for p in [0u8, 6, 255] {
            let e = client
                .send("PrioBad.work", json!({}))
                .priority(p)
                .await
                .expect_err("refused");
            assert!(
                e.to_string()
                    .contains(&format!("`priority` {p} is outside 1..=5")),
                "{url}: {e}"
            );
        }
    })
    .await;
    // Raw, on Redis: a message whose priority is garbage.
    rpc_testkit::require_redis_server();
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let raw = redis::Client::open(url.as_str()).unwrap();
    let mut con = raw.get_multiplexed_async_connection().await.unwrap();
    // Garbage where lane 1 would be: never taken for a lane, never a
    // reason to stop serving the others.
    let _: () = redis::cmd("SET")
        .arg("rpc:{PrioRaw}:jobs:1")
        .arg("not a stream")
        .query_async(&mut con)
        .await
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let _worker = start(settings(
        Worker::builder(&url).mount(recorder("PrioRaw", seen.clone())),
    ))
    .await;
    for (id, priority) in [("p9", "9"), ("px", "\"high\""), ("pneg", "-1")] {
        let message = format!(
            r#"{{"v":1,"id":"{id}","job":"PrioRaw.work","params":{{"n":1}},"priority":{priority}}}"#
        );
        let _: String = redis::cmd("XADD")
            .arg("rpc:{PrioRaw}:jobs")
            .arg("*")
            .arg("m")
            .arg(message)
            .query_async(&mut con)
            .await
            .unwrap();
    }
    let client = client(&url).await;
    let deadline = Instant::now() + PATIENCE;
    let dead = loop {
        let dead = client.dead_letters("PrioRaw", 10).await.unwrap();
        if dead.len() >= 3 {
            break dead;
        }
        assert!(Instant::now() < deadline, "only {dead:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let reasons: Vec<&str> = dead.iter().map(|d| d.reason.as_str()).collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("`priority` 9 is outside 1..=5")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("`priority` -1 is outside 1..=5")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().all(|r| r.contains("unreadable job message")),
        "{reasons:?}"
    );
    assert!(seen.lock().unwrap().is_empty(), "a refused call ran");
    for p in [3u8, 5] {
        client
            .call("PrioRaw.work", json!({"n": p}))
            .options(CallOptions::timeout(PATIENCE))
            .priority(p)
            .response()
            .await
            .unwrap_or_else(|e| panic!("priority {p} next to a garbage lane: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_named_like_a_lane_or_a_shard_is_refused() {
    for name in ["Prio^1", "Prio~2"] {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let e = Worker::builder(memory_url("priority-names"))
            .mount(recorder(name, seen))
            .build()
            .await
            .err()
            .expect("refused");
        assert!(
            e.to_string().contains("a service name has no"),
            "{name}: {e}"
        );
    }
}
