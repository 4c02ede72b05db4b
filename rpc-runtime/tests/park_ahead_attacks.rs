//! Attacks on parking ahead (docs/PROTOCOL.md, "Per-key concurrency",
//! "Parking ahead"), with real workers on a private redis-server fed raw
//! messages with `redis-cli`, as a hostile or sloppy sender would write
//! them. Parking ahead moves calls no worker has checked onto a key's
//! waiting list, and the hand-on reserves a slot for each as it moves it
//! back: what the workers refuse must not keep that slot.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rpc_runtime::{DynamicService, Worker};
use rpc_testkit::RedisServer;
use serde_json::{json, Value};

const STREAM: &str = "rpc:{Keyed}:jobs";
const DEAD: &str = "rpc:{Keyed}:dead";
const RUNNING: &str = "rpc:{Keyed}:group:work:A:running";
const WAITING: &str = "rpc:{Keyed}:group:work:A:waiting";

/// A long slot lease (the workers' visibility timeout): a slot kept by
/// mistake is held far longer than any deadline below.
const LEASE: Duration = Duration::from_secs(60);

/// `Keyed.work`, per-key limit 1: records the `n` of each call it runs;
/// a call with `"hold": true` waits for a permit of `gate` first.
struct Rig {
    redis: RedisServer,
    ran: Arc<Mutex<Vec<String>>>,
    gate: Arc<tokio::sync::Semaphore>,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl Rig {
    fn start() -> Rig {
        rpc_testkit::require_redis_server();
        Rig {
            redis: RedisServer::start().expect("redis-server"),
            ran: Arc::default(),
            gate: Arc::new(tokio::sync::Semaphore::new(0)),
            stops: Vec::new(),
        }
    }

    /// Starts a worker of one job at a time.
    async fn worker(&mut self) {
        let (ran, gate) = (self.ran.clone(), self.gate.clone());
        let service = DynamicService::new("Keyed").job("work", move |req| {
            let (ran, gate) = (ran.clone(), gate.clone());
            async move {
                if req.data["hold"] == json!(true) {
                    gate.acquire().await.unwrap().forget();
                }
                let n = req.data["n"].as_str().unwrap_or_default().to_owned();
                ran.lock().unwrap().push(n);
                Ok(Value::Null)
            }
        });
        let worker = Worker::builder(self.redis.url())
            .mount(service)
            .concurrency(1)
            .visibility_timeout(LEASE)
            .group_limit("Keyed.work", 1)
            .build()
            .await
            .expect("worker");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(worker.run_until(async move {
            let _ = stopped.await;
        }));
        self.stops.push(stop);
    }

    /// Adds every message as one entry of the stream, in one step (no
    /// worker can be handed the first before the others are there).
    fn add_at_once(&self, messages: &[String]) {
        let script = "for _, m in ipairs(ARGV) do redis.call('XADD', KEYS[1], '*', 'm', m) end";
        let mut args = vec![
            "EVAL".to_owned(),
            script.to_owned(),
            "1".to_owned(),
            STREAM.to_owned(),
        ];
        args.extend(messages.iter().cloned());
        self.redis.cli(args);
    }

    fn ran(&self) -> Vec<String> {
        self.ran.lock().unwrap().clone()
    }

    fn llen(&self, key: &str) -> usize {
        self.redis.cli(["LLEN", key]).trim().parse().unwrap()
    }

    fn dead_letters(&self) -> usize {
        self.redis.cli(["XLEN", DEAD]).trim().parse().unwrap()
    }
}

/// Waits (up to `within`) until `done` holds.
async fn until(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(
            t0.elapsed() < within,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A job message of `Keyed.work` for key A; `extra` is spliced into its
/// parameters.
fn message(n: &str, extra: &str) -> String {
    format!(
        r#"{{"v":1,"id":"{n}","job":"Keyed.work","params":{{"n":"{n}"{extra}}},"reply_to":"rpc:inbox:{{c}}","group":"A"}}"#
    )
}

/// Key A's one slot is held (A0 runs, held by the gate) while `bad`, a
/// message of key A that a worker refuses before it asks for a slot, is
/// added between A1 and A2; a second worker is handed A1, parks it, and
/// parks `bad` and A2 ahead behind it. Then A0 ends: A1 runs, the hand-on
/// moves `bad` back with a slot reserved under its id, and a worker
/// dead-letters it. A2 must run at once, not a slot lease later.
async fn a_refused_message_parked_ahead_does_not_hold_the_slot(bad: &str) {
    let mut rig = Rig::start();
    rig.worker().await;
    rig.redis
        .cli(["XADD", STREAM, "*", "m", &message("a0", r#","hold":true"#)]);
    until(Duration::from_secs(10), "A0 to take A's slot", || {
        rig.redis.cli(["ZSCORE", RUNNING, "a0"]).trim() != ""
    })
    .await;
    rig.add_at_once(&[message("a1", ""), bad.to_owned(), message("a2", "")]);
    rig.worker().await;
    until(
        Duration::from_secs(10),
        "A1, the bad one and A2 to wait",
        || rig.llen(WAITING) == 3,
    )
    .await;
    rig.gate.add_permits(1);
    until(Duration::from_secs(10), "A0 and A1 to run", || {
        rig.ran().len() >= 2
    })
    .await;
    until(
        Duration::from_secs(10),
        "the bad message's dead letter",
        || rig.dead_letters() == 1,
    )
    .await;
    // A2 waits for A's slot: a few job-times, not the 60 s lease.
    until(Duration::from_secs(8), "A2 to run", || rig.ran().len() == 3).await;
    assert_eq!(rig.ran(), ["a0", "a1", "a2"]);
    assert_eq!(rig.redis.cli(["ZCARD", RUNNING]).trim(), "0");
}

/// A `reply_to` that is no inbox: dead-lettered before the worker asks
/// for a slot (its checks), so nothing releases the one the hand-on
/// reserved for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_ahead_call_with_a_bad_reply_to_does_not_hold_its_keys_slot() {
    let bad = r#"{"v":1,"id":"bad","job":"Keyed.work","params":{},"reply_to":"rpc:{Keyed}:jobs","group":"A"}"#;
    a_refused_message_parked_ahead_does_not_hold_the_slot(bad).await;
}

/// A protocol version this worker does not speak: kept as a dead letter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_ahead_call_of_another_version_does_not_hold_its_keys_slot() {
    let bad = r#"{"v":9,"id":"bad","job":"Keyed.work","params":{},"reply_to":"rpc:inbox:{c}","group":"A"}"#;
    a_refused_message_parked_ahead_does_not_hold_the_slot(bad).await;
}

/// A message Redis's cjson reads but the worker's strict reader does not
/// (a number out of its range): unreadable, dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_ahead_unreadable_call_does_not_hold_its_keys_slot() {
    let bad = r#"{"v":1,"id":"bad","job":"Keyed.work","params":{},"reply_to":"rpc:inbox:{c}","attempt":-1,"group":"A"}"#;
    a_refused_message_parked_ahead_does_not_hold_the_slot(bad).await;
}

/// An id over 256 bytes: dead-lettered unanswered, its slot reserved
/// under that very id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_ahead_call_with_a_long_id_does_not_hold_its_keys_slot() {
    let bad = format!(
        r#"{{"v":1,"id":"{}","job":"Keyed.work","params":{{}},"reply_to":"rpc:inbox:{{c}}","group":"A"}}"#,
        "x".repeat(300)
    );
    a_refused_message_parked_ahead_does_not_hold_the_slot(&bad).await;
}

/// `group` given twice (Redis's cjson, as a map, keeps the last: the
/// script parks it under A; the worker's strict reader refuses it as
/// unreadable).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_ahead_call_with_two_groups_does_not_hold_its_keys_slot() {
    let bad = r#"{"v":1,"id":"bad","job":"Keyed.work","group":"B","params":{},"reply_to":"rpc:inbox:{c}","group":"A"}"#;
    a_refused_message_parked_ahead_does_not_hold_the_slot(bad).await;
}

/// A number Redis's cjson reads but no strict JSON reader does (`NaN`,
/// `-Infinity`, `0x10`, `1e400`, `012`): the worker could not read the
/// message's `id` and `group` to give a reserved slot back, so parking
/// ahead leaves such a message on the stream (`strict_enough` in
/// group_admit.lua), for its worker to refuse before it takes a slot; the
/// call behind it is parked ahead, and runs once A's slot is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_only_cjson_reads_is_not_parked_ahead() {
    for number in ["NaN", "-Infinity", "0x10", "1e400", "012"] {
        let bad = format!(
            r#"{{"v":1,"id":"bad","job":"Keyed.work","params":{{"x":{number}}},"reply_to":"rpc:inbox:{{c}}","group":"A"}}"#
        );
        let mut rig = Rig::start();
        rig.worker().await;
        rig.redis
            .cli(["XADD", STREAM, "*", "m", &message("a0", r#","hold":true"#)]);
        until(Duration::from_secs(10), "A0 to take A's slot", || {
            rig.redis.cli(["ZSCORE", RUNNING, "a0"]).trim() != ""
        })
        .await;
        rig.add_at_once(&[message("a1", ""), bad, message("a2", "")]);
        rig.worker().await;
        // A1 and A2 wait; the bad one is dead-lettered by the worker it
        // reaches, or, if that worker reads it, parked by it (checked).
        until(Duration::from_secs(10), "A1 and A2 to wait", || {
            rig.llen(WAITING) + rig.dead_letters() == 3
        })
        .await;
        rig.gate.add_permits(1);
        until(Duration::from_secs(10), "A0, A1 and A2 to run", || {
            ["a0", "a1", "a2"]
                .iter()
                .all(|n| rig.ran().iter().any(|r| r == n))
        })
        .await;
        until(Duration::from_secs(10), "A's slots to be free", || {
            rig.redis.cli(["ZCARD", RUNNING]).trim() == "0"
        })
        .await;
    }
}

/// Key A's slot held by A0 (held by the gate); A1, A2 and A3 added at
/// once; a second worker is handed A1, parks it, and parks A2 and A3
/// ahead: A3 was never handed to any worker.
async fn three_parked_behind_a_held_slot(rig: &mut Rig) {
    rig.worker().await;
    rig.redis
        .cli(["XADD", STREAM, "*", "m", &message("a0", r#","hold":true"#)]);
    until(Duration::from_secs(10), "A0 to take A's slot", || {
        rig.redis.cli(["ZSCORE", RUNNING, "a0"]).trim() != ""
    })
    .await;
    rig.add_at_once(&[message("a1", ""), message("a2", ""), message("a3", "")]);
    rig.worker().await;
    until(Duration::from_secs(10), "A1, A2 and A3 to wait", || {
        rig.llen(WAITING) == 3
    })
    .await;
}

/// Held: a client's cancellation of a call parked ahead (the cancelled
/// set) is honoured when the hand-on moves it back: it never runs, and
/// the slot reserved for it is given back at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_parked_ahead_that_a_client_cancels_never_runs_nor_holds_the_slot() {
    let mut rig = Rig::start();
    three_parked_behind_a_held_slot(&mut rig).await;
    let client = rpc_runtime::Client::connect(&rig.redis.url())
        .await
        .unwrap();
    let id = rpc_runtime::JobId::from("a2".to_owned());
    client.cancel_in("Keyed", &id).await.unwrap();
    // Workers learn cancellations with their lifecycle polls, at most
    // ~1 s apart while idle ("Cancellation"): a call taken sooner starts
    // (documented, and no concern of parking ahead). Nothing shows that a
    // worker has learned it, so this waits twice that.
    tokio::time::sleep(Duration::from_secs(2)).await;
    rig.gate.add_permits(1);
    until(Duration::from_secs(10), "A0, A1 and A3 to run", || {
        rig.ran().len() == 3
    })
    .await;
    assert_eq!(rig.ran(), ["a0", "a1", "a3"]);
    until(
        Duration::from_secs(10),
        "A's slots to be given back",
        || rig.redis.cli(["EXISTS", RUNNING]).trim() == "0",
    )
    .await;
}

/// `rpc cancel ID` looks for the call before it cancels it (on the
/// schedule and in the jobs stream, `Inspector::find_call`) and refuses,
/// exit 1, "no such call is scheduled, queued or running here", when it
/// finds none. A call parked ahead is on neither: it was sent a moment
/// ago, no worker ever held it, and the operator is told it does not
/// exist, so it runs. (A call parked by its own delivery was already
/// missed; parking ahead makes every queued call of a flooded key one.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_finds_a_call_parked_ahead_to_cancel_it() {
    let mut rig = Rig::start();
    three_parked_behind_a_held_slot(&mut rig).await;
    let inspector = rpc_runtime::Inspector::connect(&rig.redis.url(), "rpc")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let found = inspector
        .find_call(
            "Keyed",
            rpc_runtime::inspect::Stream::Jobs,
            "a3",
            1,
            deadline,
        )
        .await
        .unwrap();
    assert!(
        !found.tokens.is_empty() || !found.finished,
        "`rpc cancel a3` would answer that no such call waits here, though it waits in {WAITING}"
    );
}

/// The mean time Redis spent in one `EVALSHA`, in µs (INFO commandstats).
fn evalsha_usec_per_call(redis: &RedisServer) -> f64 {
    let stats = redis.cli(["INFO", "commandstats"]);
    let line = stats
        .lines()
        .find(|l| l.starts_with("cmdstat_evalsha:"))
        .unwrap_or_else(|| panic!("no evalsha in {stats}"));
    let field = line
        .split(',')
        .find_map(|f| f.strip_prefix("usec_per_call="))
        .unwrap();
    field.trim().parse().unwrap()
}

/// A private Redis whose key A's one slot is held, with `fill` (a script
/// adding entries to [`STREAM`]) run; then a worker is handed the first
/// `n` entries, each of which must be parked by `group_admit.lua`, run by
/// hand. Returns Redis's average time per parking step, in µs.
fn park_the_first(fill: &str, n: usize) -> f64 {
    rpc_testkit::require_redis_server();
    let redis = RedisServer::start().expect("redis-server");
    let running = "rpc:{Keyed}:group:work:A:running";
    let groups = "rpc:{Keyed}:groups";
    redis.cli(["XGROUP", "CREATE", STREAM, "workers", "0", "MKSTREAM"]);
    redis.cli(["ZADD", running, "99999999999999", "holder"]);
    redis.cli(["EVAL", fill, "1", STREAM]);
    let count = n.to_string();
    let out = redis.cli([
        "--json",
        "XREADGROUP",
        "GROUP",
        "workers",
        "w",
        "COUNT",
        &count,
        "STREAMS",
        STREAM,
        ">",
    ]);
    let read: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let entries = read[STREAM]
        .as_array()
        .unwrap_or_else(|| panic!("unexpected XREADGROUP answer: {out}"));
    assert_eq!(entries.len(), n);
    let sha = redis
        .cli([
            "SCRIPT",
            "LOAD",
            rpc_runtime::protocol::scripts::GROUP_ADMIT.source,
        ])
        .trim()
        .to_owned();
    redis.cli(["CONFIG", "RESETSTAT"]);
    for e in entries {
        let entry = e[0].as_str().unwrap();
        let message = e[1][1].as_str().unwrap();
        let id = serde_json::from_str::<Value>(message).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let answer = redis.cli([
            "EVALSHA", &sha, "4", running, WAITING, groups, STREAM, &id, "1", "30000", "workers",
            entry, message, "work:A",
        ]);
        assert!(answer.starts_with('0'), "parked: {answer}");
    }
    assert_eq!(redis.cli(["LLEN", WAITING]).trim(), count);
    evalsha_usec_per_call(&redis)
}

/// A parking step looks at the 100 entries after the group's
/// last-delivered-id and decodes each that holds `"group":"<key>"`. Calls
/// of another job of the same key (or any call whose parameters hold an
/// object member `"group":"A"`) all hold it, are decoded (up to 16 KiB
/// each, 1.6 MB a step) and stay on the stream, so every parking of the
/// key decodes them again: ~12 ms of Redis's one thread per step on the
/// machine this was found on, against ~50 µs before parking ahead. What
/// is decoded and not parked must be bounded to a few times a call's own
/// cost: here, under 2 ms a step on average.
#[test]
fn parking_ahead_does_not_decode_a_window_of_another_jobs_large_calls_again_and_again() {
    // 20 calls of `work`, then 100 of `report` for the same key, 16,000
    // bytes each.
    let fill = r#"
        for i = 1, 20 do
          redis.call('XADD', KEYS[1], '*', 'm', '{"v":1,"id":"w' .. i .. '","job":"Keyed.work","params":{},"reply_to":"rpc:inbox:{c}","group":"A"}')
        end
        local pad = string.rep('x', 15850)
        for i = 1, 100 do
          redis.call('XADD', KEYS[1], '*', 'm', '{"v":1,"id":"r' .. i .. '","job":"Keyed.report","params":{"p":"' .. pad .. '"},"reply_to":"rpc:inbox:{c}","group":"A"}')
        end"#;
    let usec = park_the_first(fill, 20);
    assert!(
        usec < 2000.0,
        "a parking step took {usec:.0} µs on average (100 calls of another job of the key decoded each time)"
    );
}

/// A parking step reads the 100 entries after the group's
/// last-delivered-id whatever their size (messages may be 16 MiB): with
/// other jobs' large calls queued behind (here unkeyed calls of 256 KiB),
/// every parking of a keyed call copies 25 MB into the script, blocking
/// Redis (~0.5 s a step with 1 MB calls, ~95 MB of Lua memory, on the
/// machine this was found on; 1.6 GB with 16 MiB ones), where it took
/// ~50 µs before parking ahead. What a step reads must be bounded: here,
/// under 40 ms a step on average.
#[test]
fn parking_ahead_does_not_read_a_window_of_large_calls_whole() {
    let fill = r#"
        for i = 1, 5 do
          redis.call('XADD', KEYS[1], '*', 'm', '{"v":1,"id":"w' .. i .. '","job":"Keyed.work","params":{},"reply_to":"rpc:inbox:{c}","group":"A"}')
        end
        local pad = string.rep('x', 262144)
        for i = 1, 100 do
          redis.call('XADD', KEYS[1], '*', 'm', '{"v":1,"id":"u' .. i .. '","job":"Keyed.upload","params":{"p":"' .. pad .. '"},"reply_to":"rpc:inbox:{c}"}')
        end"#;
    let usec = park_the_first(fill, 5);
    assert!(
        usec < 40_000.0,
        "a parking step took {usec:.0} µs on average (100 calls of 256 KiB read each time)"
    );
}

/// Held: parking ahead stays within the lane the parked call came from.
/// With A's slot held, A1 and A3 at the default priority and A2 at
/// priority 1 (its own lane, read first): A2 is parked alone, A1 parks A3
/// ahead behind it, and the slot goes round A2, A1, A3, each moved back
/// onto its own lane.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parking_ahead_keeps_to_the_lane_and_the_urgent_call_runs_first() {
    let mut rig = Rig::start();
    rig.worker().await;
    rig.redis
        .cli(["XADD", STREAM, "*", "m", &message("a0", r#","hold":true"#)]);
    until(Duration::from_secs(10), "A0 to take A's slot", || {
        rig.redis.cli(["ZSCORE", RUNNING, "a0"]).trim() != ""
    })
    .await;
    let urgent = message("a2", "").replace(r#""group":"A"}"#, r#""group":"A","priority":1}"#);
    let script = "redis.call('XADD', KEYS[1], '*', 'm', ARGV[1]) \
                  redis.call('XADD', KEYS[2], '*', 'm', ARGV[2]) \
                  redis.call('XADD', KEYS[1], '*', 'm', ARGV[3])";
    rig.redis.cli([
        "EVAL",
        script,
        "2",
        STREAM,
        "rpc:{Keyed}:jobs:1",
        &message("a1", ""),
        &urgent,
        &message("a3", ""),
    ]);
    rig.worker().await;
    until(Duration::from_secs(10), "A1, A2 and A3 to wait", || {
        rig.llen(WAITING) == 3
    })
    .await;
    rig.gate.add_permits(1);
    until(Duration::from_secs(10), "every call to run", || {
        rig.ran().len() == 4
    })
    .await;
    assert_eq!(rig.ran(), ["a0", "a2", "a1", "a3"]);
}
