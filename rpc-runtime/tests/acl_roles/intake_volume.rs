//! What volume on the intake costs Redis (the third security round).
//! SECURITY.md says a client that fills an intake is bounded by Redis's
//! `maxmemory`; but what a client pushes is moved by the workers'
//! `intake.lua`, which read up to 1,000 elements of the intake into Lua
//! (`LRANGE`) whatever their size before it stopped at 8 MiB, so large
//! elements made every move copy the head of the list, and Redis ran
//! nothing else meanwhile. Seen with the release `chaos-worker`: 300
//! elements of 1 MB took 40 s to move in calls of up to 2.3 s; 1,000 of
//! them, calls of 6.5 to 7.5 s, 48 moved in 30 s, a `PING` waited 37 s.
//! Now a call reads the lists a slice at a time and stops at its byte
//! budget, and an element over the workers' message limit is
//! dead-lettered by the script, never queued.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::*;

/// What marks a call of `intake.lua` in the `SLOWLOG` (its first key).
const MOVE: &str = "rpc:{Acl}:moving";

/// The longest call of `intake.lua` in Redis's `SLOWLOG`, in µs (0 when
/// none was logged).
async fn longest_move_us(con: &mut redis::aio::MultiplexedConnection) -> u64 {
    let log: Vec<redis::Value> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(-1)
        .query_async(con)
        .await
        .unwrap();
    log.iter()
        .filter_map(|entry| {
            let redis::Value::Array(parts) = entry else {
                return None;
            };
            let redis::Value::Int(us) = parts.get(2)? else {
                return None;
            };
            let redis::Value::Array(args) = parts.get(3)? else {
                return None;
            };
            let names_move = args
                .iter()
                .any(|a| matches!(a, redis::Value::BulkString(b) if b == MOVE.as_bytes()));
            names_move.then_some(*us as u64)
        })
        .max()
        .unwrap_or(0)
}

/// Pings Redis at `url` every 10 ms until `done`; returns the longest
/// wait for an answer (waiting as long as it takes).
async fn longest_ping(url: String, done: Arc<AtomicBool>) -> Duration {
    let admin = redis::Client::open(url).unwrap();
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    let mut con = admin
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap();
    let mut longest = Duration::ZERO;
    while !done.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        let _: String = redis::cmd("PING").query_async(&mut con).await.unwrap();
        longest = longest.max(t0.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    longest
}

/// A client-role user pushes 600 elements of 256 KiB (150 MiB) onto an
/// intake, then a worker starts: no call of the mover's script may hold
/// Redis for 500 ms (each reads about a MiB: a few milliseconds of
/// copying, more when the machine is loaded; one unbounded move of the
/// whole intake takes seconds), as Redis's own `SLOWLOG` says, and a `PING` sent meanwhile
/// is answered within a second. Prints the longest call and `PING`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intake_of_large_elements_never_holds_redis_for_long() {
    let (redis, _dir) = redis_with_roles();
    redis.cli(["CONFIG", "SET", "slowlog-log-slower-than", "1000"]);
    redis.cli(["CONFIG", "SET", "slowlog-max-len", "100000"]);
    redis.cli(["SLOWLOG", "RESET"]);
    let raw = redis::Client::open(url(&redis, CLIENT)).unwrap();
    let mut con = raw
        .get_multiplexed_async_connection_with_config(&patient())
        .await
        .unwrap();
    let element = format!("{{{}", "x".repeat(256 * 1024 - 1));
    for _ in 0..20 {
        let mut pipe = redis::pipe();
        for _ in 0..30 {
            pipe.cmd("RPUSH")
                .arg("rpc:{Acl}:intake")
                .arg(&element)
                .ignore();
        }
        let () = pipe.query_async(&mut con).await.unwrap();
    }
    let done = Arc::new(AtomicBool::new(false));
    let pinger = tokio::spawn(longest_ping(redis.url_as("default", "admin"), done.clone()));
    let running = worker(&redis).await;
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(180);
    loop {
        let left = redis.cli(["LLEN", "rpc:{Acl}:intake"]);
        let moving = redis.cli(["LLEN", "rpc:{Acl}:moving"]);
        if left.trim() == "0" && moving.trim() == "0" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the intake was not moved: {left} left"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = t0.elapsed();
    done.store(true, Ordering::Relaxed);
    let longest_ping = pinger.await.unwrap();
    stop(running).await;
    let admin = redis::Client::open(redis.url_as("default", "admin")).unwrap();
    let mut admin = admin
        .get_multiplexed_async_connection_with_config(&patient())
        .await
        .unwrap();
    let longest = Duration::from_micros(longest_move_us(&mut admin).await);
    println!(
        "moved 600 elements of 256 KiB in {took:?}: the longest intake.lua call took {longest:?}, the longest PING {longest_ping:?}"
    );
    assert!(
        longest < Duration::from_millis(500),
        "a move of the intake held Redis for {longest:?}"
    );
    assert!(
        longest_ping < Duration::from_secs(1),
        "a PING waited {longest_ping:?} while the intake moved"
    );
}

/// A client-role user pushes a job message over the workers' message
/// limit onto the intake: the mover dead-letters it (the reason names its
/// size and the limit, `m` keeps its first KiB) instead of queueing it,
/// and the next call is served as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intake_element_over_the_message_limit_is_dead_lettered_not_queued() {
    let (redis, _dir) = redis_with_roles();
    let limit = 64 * 1024;
    let big = json!({"v": 1, "id": "too-big", "job": "Acl.echo",
                     "params": {"s": "x".repeat(100 * 1024)}, "timeout_ms": 10_000})
    .to_string();
    let out = cli_as(&redis, CLIENT, &["RPUSH", "rpc:{Acl}:intake", &big]);
    assert_eq!(out.trim(), "1", "{out}");
    let service = DynamicService::new("Acl").job("echo", |req| async move { Ok(req.data.clone()) });
    let worker = Worker::builder(url(&redis, WORKER))
        .mount(service)
        .max_message_bytes(limit)
        .build()
        .await
        .expect("worker as the worker role");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(worker.run_until(async move {
        let _ = rx.await;
    }));
    let client = Client::connect(&url(&redis, CLIENT)).await.unwrap();
    let r = client
        .call("Acl.echo", json!("after"))
        .options(opts())
        .response()
        .await
        .expect("the call after the oversized element");
    assert_eq!(r.data, json!("after"));
    stop((tx, task)).await;

    // Moved in order, so the oversized element was handled first.
    let operator = Client::connect(&url(&redis, OPERATOR)).await.unwrap();
    let dead = operator.dead_letters("Acl", 10).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    let reason = &dead[0].reason;
    assert!(
        reason.contains(&format!("{} bytes", big.len()))
            && reason.contains(&format!("{limit} bytes")),
        "the reason names the size and the limit: {reason}"
    );
    assert!(
        reason.contains("intake"),
        "dead-lettered by the mover, not by a worker that took it off the stream: {reason}"
    );
    assert_eq!(
        dead[0].payload,
        big.as_bytes()[..1024],
        "m keeps its first KiB"
    );
    assert_acl_log_empty(&redis);
}

/// A connection whose commands wait as long as they need: the pipelines
/// here carry megabytes, and a loaded machine answers them later than
/// redis-rs's default response timeout (500 ms).
fn patient() -> redis::AsyncConnectionConfig {
    redis::AsyncConnectionConfig::new().set_response_timeout(None)
}
