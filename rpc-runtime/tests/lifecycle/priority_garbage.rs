//! Garbage where a priority lane would be (a key of another type at
//! `P:{Q}:jobs:<p>`), on Redis: it never stops a worker nor loses a call.
//! A call that would go onto such a lane (from a client, alone or in a
//! batch, the schedule, the intake or a group's waiting list) goes onto
//! the queue's own stream instead, and a
//! lane the worker was reading that turns into garbage is dropped until
//! it is a stream again. Found by an adversarial review: before, one such
//! key stalled the schedule or the intake, lost a parked call, or stopped
//! the worker's taker for every service.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rpc_runtime::{CallOptions, DynamicService};
use rpc_testkit::RedisServer;
use serde_json::json;

use super::*;

/// A service whose one job `work` records `n` and takes `ms`.
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

async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(url).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

/// Calls `service.work` at priority `p` and waits for its answer (the
/// worker reads lane `p` from then on).
async fn answered_at(client: &rpc_runtime::Client, service: &str, n: u64, p: u8) {
    client
        .call(&format!("{service}.work"), json!({"n": n}))
        .options(CallOptions::timeout(PATIENCE))
        .priority(p)
        .response()
        .await
        .unwrap_or_else(|e| panic!("{service}: a call at priority {p}: {e}"));
}

async fn garbage_at(con: &mut redis::aio::MultiplexedConnection, key: &str) {
    let _: () = redis::cmd("DEL").arg(key).query_async(con).await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg("not a stream")
        .query_async(con)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_bound_for_a_garbage_lane_run_from_the_queue_s_own_stream() {
    rpc_testkit::require_redis_server();
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let mut con = raw(&url).await;
    garbage_at(&mut con, "rpc:{PrioJunk}:jobs:1").await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let _worker = start(settings(
        Worker::builder(&url).mount(recorder("PrioJunk", seen.clone())),
    ))
    .await;
    // Through the intake (pushed raw, as a client without XADD rights
    // would): an urgent call, then one at the default priority.
    for (id, n, p) in [("i1", 11, 1), ("i3", 13, 3)] {
        let m = format!(
            r#"{{"v":1,"id":"{id}","job":"PrioJunk.work","params":{{"n":{n}}},"priority":{p}}}"#
        );
        let _: u64 = redis::cmd("RPUSH")
            .arg("rpc:{PrioJunk}:intake")
            .arg(m)
            .query_async(&mut con)
            .await
            .unwrap();
    }
    // Through the schedule: a delayed urgent call, then a delayed one at
    // the default priority due after it.
    let client = client(&url).await;
    let urgent = client
        .call("PrioJunk.work", json!({"n": 21}))
        .options(CallOptions::delay(Duration::from_millis(200)).with_timeout(PATIENCE))
        .priority(1)
        .send()
        .await
        .unwrap();
    let plain = client
        .call("PrioJunk.work", json!({"n": 23}))
        .options(CallOptions::delay(Duration::from_millis(400)).with_timeout(PATIENCE))
        .send()
        .await
        .unwrap();
    // A batch bound for the lane: refused there, sent on the queue's own.
    let batch = (31..34).map(|n| json!({"n": n}));
    let ids = client
        .send_many("PrioJunk.work", batch)
        .priority(1)
        .await
        .expect("a batch at the garbage lane's priority is sent");
    assert_eq!(ids.len(), 3);
    urgent.wait().await.expect("the delayed urgent call ran");
    plain.wait().await.expect("the delayed call after it ran");
    wait_until("both intake pushes and the batch ran", PATIENCE, || {
        let seen = seen.lock().unwrap();
        [11, 13, 31, 32, 33].iter().all(|n| seen.contains(n))
    })
    .await;
    let kind: String = redis::cmd("TYPE")
        .arg("rpc:{PrioJunk}:jobs:1")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(kind, "string", "the garbage was left as it was");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_being_read_that_turns_into_garbage_stops_no_service() {
    rpc_testkit::require_redis_server();
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let mut con = raw(&url).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let _worker = start(settings(
        Worker::builder(&url)
            .mount(recorder("PrioTurned", seen.clone()))
            .mount(recorder("PrioOther", seen.clone())),
    ))
    .await;
    let client = client(&url).await;
    answered_at(&client, "PrioTurned", 1, 1).await;
    garbage_at(&mut con, "rpc:{PrioTurned}:jobs:1").await;
    // Another service is served next to a lane turned garbage.
    answered_at(&client, "PrioOther", 2, 3).await;
    answered_at(&client, "PrioOther", 3, 3).await;
    // A client sending onto the garbage lane sends onto the queue's own
    // stream instead.
    answered_at(&client, "PrioTurned", 4, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_call_released_towards_a_garbage_lane_is_not_lost() {
    rpc_testkit::require_redis_server();
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let mut con = raw(&url).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let _worker = start(settings(
        Worker::builder(&url)
            .mount(recorder("PrioPark", seen.clone()))
            .group_limit("PrioPark.work", 1),
    ))
    .await;
    let client = client(&url).await;
    // The worker reads lane 1 once it answered a call there.
    answered_at(&client, "PrioPark", 0, 1).await;
    // Key `k` has one slot: `a` holds it for two seconds, urgent `b` parks.
    let a = client
        .call("PrioPark.work", json!({"n": 1, "ms": 2000}))
        .options(CallOptions::timeout(PATIENCE))
        .group("k")
        .send()
        .await
        .unwrap();
    wait_until("a started", PATIENCE, || seen.lock().unwrap().contains(&1)).await;
    let b = client
        .call("PrioPark.work", json!({"n": 2}))
        .options(CallOptions::timeout(PATIENCE))
        .group("k")
        .priority(1)
        .send()
        .await
        .unwrap();
    let waiting = "rpc:{PrioPark}:group:work:k:waiting";
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let parked: u64 = redis::cmd("LLEN")
            .arg(waiting)
            .query_async(&mut con)
            .await
            .unwrap();
        if parked == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "b was never parked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    garbage_at(&mut con, "rpc:{PrioPark}:jobs:1").await;
    a.wait().await.expect("a ran");
    b.wait()
        .await
        .expect("the parked urgent call ran, from the queue's own stream");
}
