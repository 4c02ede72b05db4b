//! The intake's rules ("The intake"), followed by driving `intake.lua`
//! by hand with `redis-cli EVAL` against a private redis-server with no
//! worker, as another implementation's mover would: what one call takes,
//! in which order, what it flags cancelled and what it dead-letters.

use super::*;

const MOVING: &str = "rpc:{Mover}:moving";
const INTAKE_LIST: &str = "rpc:{Mover}:intake";
const STREAM: &str = "rpc:{Mover}:jobs";
const CANCELLED: &str = "rpc:{Mover}:cancelled";
const DEAD_STREAM: &str = "rpc:{Mover}:dead";

/// A private Redis for the script alone.
fn redis() -> RedisServer {
    rpc_testkit::require_redis_server();
    RedisServer::start().expect("redis-server")
}

/// What one call of `intake.lua` answered: `{moved, cancels, refused,
/// error, dead}`.
#[derive(Debug, PartialEq)]
struct Answer {
    moved: u64,
    cancels: u64,
    refused: u64,
    error: String,
    dead: u64,
}

/// Reads `redis-cli`'s print of the answer (one part a line).
fn parse_answer(out: &str) -> Answer {
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "intake.lua answered {out:?}");
    let n = |i: usize| {
        lines[i]
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("{out:?}"))
    };
    Answer {
        moved: n(0),
        cancels: n(1),
        refused: n(2),
        error: lines[3].to_owned(),
        dead: n(4),
    }
}

/// One call of `intake.lua`, as `redis-cli` prints its answer: at most
/// `per_list` elements of each list, a budget of `max_bytes`, elements
/// over `largest` bytes dead-lettered; the other arguments as a worker
/// passes them (a day of cancellations, ids of 256 bytes, a dead-letter
/// cap of 10,000).
fn call_script(redis: &RedisServer, per_list: usize, max_bytes: usize, largest: usize) -> String {
    redis.cli([
        "EVAL",
        rpc_runtime::protocol::scripts::INTAKE.source,
        "7",
        MOVING,
        INTAKE_LIST,
        STREAM,
        "rpc:{Mover}:schedule",
        "rpc:{Mover}:scheduled",
        CANCELLED,
        DEAD_STREAM,
        &per_list.to_string(),
        &max_bytes.to_string(),
        "86400000",
        "256",
        &largest.to_string(),
        "10000",
    ])
}

/// The entries of `stream`, each as its fields in order.
fn entries(redis: &RedisServer, stream: &str) -> Vec<Vec<String>> {
    let out = redis.cli(["--json", "XRANGE", stream, "-", "+"]);
    let parsed: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    parsed
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            entry[1]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap().to_owned())
                .collect()
        })
        .collect()
}

fn llen(redis: &RedisServer, key: &str) -> usize {
    redis.cli(["LLEN", key]).trim().parse().unwrap()
}

/// Moves `moving` = `taken` and `intake` = `waiting` onto a fresh stream
/// with calls of `intake.lua` taking at most `per_list` elements of each
/// list and `max_bytes` bytes, until both lists are empty; returns the
/// stream's messages in order.
fn move_all(
    redis: &RedisServer,
    taken: &[&str],
    waiting: &[&str],
    per_list: usize,
    max_bytes: usize,
) -> Vec<String> {
    redis.cli(["DEL", MOVING, INTAKE_LIST, STREAM]);
    redis.cli([&["RPUSH", MOVING][..], taken].concat());
    redis.cli([&["RPUSH", INTAKE_LIST][..], waiting].concat());
    let mut calls = 0;
    while llen(redis, MOVING) + llen(redis, INTAKE_LIST) > 0 {
        calls += 1;
        assert!(calls <= 10, "the lists never emptied");
        let answer = call_script(redis, per_list, max_bytes, 1_000);
        assert!(
            !answer.starts_with("0\n"),
            "a call moves at least one: {answer}"
        );
    }
    entries(redis, STREAM)
        .into_iter()
        .map(|fields| fields[1].clone())
        .collect()
}

/// Order: what a mover took (`moving`) goes before what is still on the
/// intake, however a call's limits stop it. Reproduces the third round's
/// finding: with A and B in `moving` and the byte budget spent after A,
/// the script went on to the intake and moved C ahead of B (A, C, B).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_intake_keeps_order_when_a_move_stops_early() {
    let redis = redis();
    let (a, b, c, d) = (
        "A".repeat(50),
        "B".repeat(100),
        "C".repeat(10),
        "D".repeat(20),
    );
    // The byte budget (70) is spent in `moving`, before D.
    let moved = move_all(&redis, &[&a, &b, &d], &[&c], 1_000, 70);
    assert_eq!(
        moved,
        [&a, &b, &d, &c].map(String::as_str),
        "out of order (a budget of 70 bytes)"
    );
    // The element count (1 per list) stops the call in `moving`.
    let moved = move_all(&redis, &[&a, &b], &[&c], 1, 1_000_000);
    assert_eq!(
        moved,
        [&a, &b, &c].map(String::as_str),
        "out of order (1 element per list)"
    );
}

/// Cancellation: a job message whose call is cancelled, by a cancellation
/// request later in the same call or in the cancelled set already, is
/// moved with `c` = 1 (its worker answers it `cancelled` unrun). The id
/// is read without trusting the message: the canonical start, or the
/// whole message as JSON; no JSON object, or no string `id`: unflagged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_message_cancelled_in_its_batch_or_before_is_moved_flagged() {
    let redis = redis();
    redis.cli(["ZADD", CANCELLED, "1", "earlier"]);
    let elements = [
        r#"{"v":1,"id":"same-batch","job":"Mover.a","params":{}}"#,
        r#"{ "params": {"id": "decoy"}, "id": "spaced", "v": 1 }"#,
        r#"{"v":1,"id":"earlier","job":"Mover.a","params":{}}"#,
        r#"{"v":1,"id":"running","job":"Mover.a","params":{}}"#,
        r#"{"v":1,"job":"Mover.a","params":{"id":"same-batch"}}"#,
        r#"{"v":1,"id":7,"job":"Mover.a","params":{}}"#,
        r#"["same-batch"]"#,
        "not json: same-batch",
        "cancel same-batch",
        "cancel spaced",
    ];
    for element in elements {
        redis.cli(["RPUSH", INTAKE_LIST, element]);
    }
    let answer = call_script(&redis, 1_000, 1024 * 1024, 16 * 1024 * 1024);
    let flagged: Vec<(String, bool)> = entries(&redis, STREAM)
        .into_iter()
        .map(|fields| {
            let flag = fields.get(2).map(String::as_str) == Some("c")
                && fields.get(3).map(String::as_str) == Some("1");
            (fields[1].clone(), flag)
        })
        .collect();
    let expected: Vec<(String, bool)> = elements[..8]
        .iter()
        .enumerate()
        .map(|(i, e)| (e.to_string(), i < 3))
        .collect();
    assert_eq!(flagged, expected);
    assert_eq!(
        parse_answer(&answer),
        Answer {
            moved: 8,
            cancels: 2,
            refused: 0,
            error: String::new(),
            dead: 0
        }
    );
}

/// Size: an element over the size limit (the workers' message limit) is
/// never put on the stream: it is dead-lettered with a reason naming its
/// size and the limit, its first KiB kept, and counted in the answer; the
/// elements around it move as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intake_element_over_the_size_limit_is_dead_lettered_not_moved() {
    let redis = redis();
    let big = format!("{{\"v\":1,\"id\":\"big\",\"s\":\"{}\"}}", "x".repeat(3_000));
    redis.cli(["RPUSH", INTAKE_LIST, "before", &big, "after"]);
    let answer = call_script(&redis, 1_000, 1024 * 1024, 2_000);
    // Their first bytes (the oversized one would fill the screen).
    let moved: Vec<String> = entries(&redis, STREAM)
        .into_iter()
        .map(|fields| fields[1].chars().take(16).collect())
        .collect();
    assert_eq!(moved, ["before", "after"]);
    let dead = entries(&redis, DEAD_STREAM);
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0][0], "reason");
    let reason = &dead[0][1];
    assert!(
        reason.contains(&format!("{} bytes", big.len())) && reason.contains("2000 bytes"),
        "the reason names the size and the limit: {reason}"
    );
    assert_eq!(dead[0][2], "m");
    assert_eq!(
        dead[0][3],
        big[..1024],
        "the dead letter keeps the first KiB"
    );
    assert_eq!(llen(&redis, INTAKE_LIST), 0);
    let answer = parse_answer(&answer);
    assert_eq!((answer.moved, answer.dead), (2, 1), "{answer:?}");
}
