//! What volume on the intake costs Redis (the third security round).
//! SECURITY.md says a client that fills an intake is bounded by Redis's
//! `maxmemory`; but what a client pushes is moved by the workers'
//! `intake.lua`, which reads up to 1,000 elements of the intake into Lua
//! (`LRANGE`) whatever their size before it stops at 8 MiB, so large
//! elements make every move copy the head of the list, and Redis runs
//! nothing else meanwhile. Seen with the release `chaos-worker`: 300
//! elements of 1 MB took 40 s to move in calls of up to 2.3 s; 1,000 of
//! them, calls of 6.5 to 7.5 s, 48 moved in 30 s, a `PING` waited 37 s.

use super::*;

/// A client-role user pushes 600 elements of 256 KiB (150 MiB) onto an
/// intake, then a worker starts: no call of the mover's script may hold
/// Redis for 100 ms (it moves at most 8 MiB a call, a few milliseconds of
/// copying), as seen in Redis's own `SLOWLOG`.
/// What marks a call of `intake.lua` in the `SLOWLOG` (its first key).
const MOVE: &str = "rpc:{Acl}:moving";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intake_of_large_elements_never_holds_redis_for_long() {
    let (redis, _dir) = redis_with_roles();
    redis.cli(["CONFIG", "SET", "slowlog-log-slower-than", "100000"]);
    redis.cli(["SLOWLOG", "RESET"]);
    let raw = redis::Client::open(url(&redis, CLIENT)).unwrap();
    let mut con = raw.get_multiplexed_async_connection().await.unwrap();
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
    let running = worker(&redis).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let slow = loop {
        let slow = redis.cli(["SLOWLOG", "GET", "10"]);
        let left = redis.cli(["LLEN", "rpc:{Acl}:intake"]);
        if slow.contains(MOVE) || left.trim() == "0" {
            break slow;
        }
        assert!(
            Instant::now() < deadline,
            "the intake was not moved: {left} left"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop(running).await;
    assert!(
        !slow.contains(MOVE),
        "a move of the intake held Redis for over 100 ms:\n{}",
        slow.chars().take(600).collect::<String>()
    );
}
