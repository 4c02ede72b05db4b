//! Attacks on coalesced single pushes (`backend/redis/coalesce.rs`):
//! concurrent pushes joined into pipelines by a spawned flush task.
//! Against private redis-servers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rpc_runtime::backend::{connect, Broker, BrokerConfig};
use rpc_runtime::Client;
use rpc_testkit::RedisServer;
use serde_json::json;

const JOBS: &str = "rpc:{Q}:jobs";

fn xlen(server: &RedisServer, key: &str) -> usize {
    server.cli(["XLEN", key]).trim().parse().unwrap()
}

/// `n` pushes of `payload(i)` at once, each given up after `patience`:
/// how each ended (`None`: it hung past its patience).
async fn flood(
    backend: &Arc<dyn Broker>,
    n: usize,
    patience: Duration,
    payload: impl Fn(usize) -> Vec<u8>,
) -> Vec<Option<Result<(), String>>> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let backend = backend.clone();
            let body = payload(i);
            tokio::spawn(async move {
                tokio::time::timeout(patience, backend.push_job("Q", &body))
                    .await
                    .ok()
                    .map(|r| r.map_err(|e| e.to_string()))
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// A long-lived runtime and a backend connected on it, and a runtime of
/// another caller's (a short-lived or idle `current_thread` one).
fn two_runtimes(
    server: &RedisServer,
) -> (
    tokio::runtime::Runtime,
    Arc<dyn Broker>,
    tokio::runtime::Runtime,
) {
    let main = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let backend: Arc<dyn Broker> = main.block_on(async {
        let b = connect(&BrokerConfig::new(server.url()))
            .await
            .expect("connect");
        b.prepare_queues(&["Q".to_owned()]).await.unwrap();
        b
    });
    let side = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    (main, backend, side)
}

/// A push whose flush task was spawned onto a runtime that is then shut
/// down (a client shared by a short-lived runtime, a test's runtime) must
/// not leave later pushes waiting forever.
#[test]
fn a_flush_lost_with_its_runtime_does_not_stall_later_pushes() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let (main, backend, side) = two_runtimes(&server);
    // Two pushes at once on a short-lived runtime, dropped after one poll
    // (e.g. a select whose other branch won), then the runtime goes.
    side.block_on(async {
        let a = backend.push_job("Q", b"a");
        let b = backend.push_job("Q", b"b");
        let mut both = Box::pin(futures_util::future::join(a, b));
        let _ = futures_util::poll!(&mut both);
    });
    drop(side);
    // Later pushes, at once, on the long-lived runtime.
    let ends = main.block_on(flood(&backend, 20, Duration::from_secs(5), |i| {
        format!("later {i}").into_bytes()
    }));
    let hung = ends.iter().filter(|e| e.is_none()).count();
    assert_eq!(hung, 0, "{hung} of 20 later pushes hung: {ends:?}");
}

/// On a current_thread runtime, a flood of concurrent pushes all land once.
#[tokio::test]
async fn a_current_thread_flood_lands_every_push_once() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let backend = connect(&BrokerConfig::new(server.url()))
        .await
        .expect("connect");
    backend.prepare_queues(&["Q".to_owned()]).await.unwrap();
    let ends = flood(&backend, 2000, Duration::from_secs(20), |i| {
        format!("{i}").into_bytes()
    })
    .await;
    assert!(
        ends.iter().all(|e| matches!(e, Some(Ok(())))),
        "{:?}",
        ends.iter().find(|e| !matches!(e, Some(Ok(()))))
    );
    assert_eq!(xlen(&server, JOBS), 2000);
}

/// Redis refusing writes for memory: each push that got Ok landed, each
/// that got an error did not (no answer handed to the wrong push).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_maxmemory_ok_means_landed() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let backend = connect(&BrokerConfig::new(server.url()))
        .await
        .expect("connect");
    backend.prepare_queues(&["Q".to_owned()]).await.unwrap();
    let used = server.used_memory();
    server.cli(["CONFIG", "SET", "maxmemory", &(used + 600_000).to_string()]);
    server.cli(["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    let ends = flood(&backend, 3000, Duration::from_secs(20), |i| {
        let mut v = format!("{i:06}").into_bytes();
        v.resize(700, b'x');
        v
    })
    .await;
    let ok = ends.iter().filter(|e| matches!(e, Some(Ok(())))).count();
    let oom = ends
        .iter()
        .filter(|e| matches!(e, Some(Err(m)) if m.contains("OOM")))
        .count();
    server.cli(["CONFIG", "SET", "maxmemory", "0"]);
    assert_eq!(
        ok + oom,
        3000,
        "{:?}",
        ends.iter().find(|e| !matches!(e, Some(Ok(()))))
    );
    assert!(oom > 0, "memory never ran out");
    assert_eq!(
        xlen(&server, JOBS),
        ok,
        "Ok answers do not match what landed"
    );
}

/// A client that may not XADD falls back to the intake, every concurrent
/// push included; each lands once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pushes_refused_xadd_go_through_the_intake_once_each() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let admin = connect(&BrokerConfig::new(server.url()))
        .await
        .expect("connect");
    admin.prepare_queues(&["Q".to_owned()]).await.unwrap();
    server.cli([
        "ACL", "SETUSER", "c", "on", ">pw", "~*", "&*", "+@all", "-xadd",
    ]);
    let backend = connect(&BrokerConfig::new(server.url_as("c", "pw")))
        .await
        .expect("connect");
    let ends = flood(&backend, 1000, Duration::from_secs(20), |i| {
        format!("{i}").into_bytes()
    })
    .await;
    let bad: Vec<_> = ends.iter().filter(|e| !matches!(e, Some(Ok(())))).collect();
    assert!(
        bad.is_empty(),
        "{} failed: {:?}",
        bad.len(),
        &bad[..bad.len().min(3)]
    );
    let intake = server.keys("*intake*");
    let listed: usize = intake
        .iter()
        .map(|k| server.cli(["LLEN", k]).trim().parse::<usize>().unwrap_or(0))
        .sum();
    assert_eq!(listed + xlen(&server, JOBS), 1000, "intake keys {intake:?}");
}

/// A push Redis drops the connection for (a message past
/// `proto-max-bulk-len`) fails, no push beside it hangs, and every push
/// answered Ok landed. (Pushes sharing the connection when Redis drops it
/// may fail with it, coalesced or not: their fate is unknown, and a
/// pipeline sent again may have run twice, as a single send may.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_push_fails_and_every_push_answered_ok_landed() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::builder()
        .args(["--proto-max-bulk-len", "1mb"])
        .start()
        .expect("redis-server");
    let backend = connect(&BrokerConfig::new(server.url()))
        .await
        .expect("connect");
    backend.prepare_queues(&["Q".to_owned()]).await.unwrap();
    let ends = flood(&backend, 101, Duration::from_secs(20), |i| {
        if i == 50 {
            vec![b'x'; 2 * 1024 * 1024]
        } else {
            format!("small {i}").into_bytes()
        }
    })
    .await;
    assert!(ends.iter().all(Option::is_some), "a push hung: {ends:?}");
    assert!(matches!(ends[50], Some(Err(_))), "{:?}", ends[50]);
    let listed = server.cli(["XRANGE", JOBS, "-", "+"]);
    for (i, end) in ends.iter().enumerate() {
        if matches!(end, Some(Ok(()))) {
            assert!(
                listed.lines().any(|l| l == format!("small {i}")),
                "push {i} answered Ok and is not queued"
            );
        }
    }
    let ok = ends.iter().filter(|e| matches!(e, Some(Ok(())))).count();
    assert!(ok > 0, "no push succeeded: {ends:?}");
}

/// 200 sends at once after Redis came back: every one succeeds.
async fn assert_recovered(client: &Client) {
    let after: Vec<_> = (0..200u64)
        .map(|n| {
            let c = client.clone();
            tokio::spawn(async move { c.send("Q.note", json!({ "n": n })).await.is_ok() })
        })
        .collect();
    let mut after_ok = 0;
    for t in after {
        after_ok += usize::from(t.await.unwrap());
    }
    assert_eq!(after_ok, 200, "sends after the restart failed");
}

/// Redis restarted mid-flood: every send ends by its deadline, and the
/// client works at once afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_flood_leaves_no_send_hanging() {
    rpc_testkit::require_redis_server();
    let server = Arc::new(RedisServer::start().expect("redis-server"));
    let client = Client::builder(server.url())
        .default_timeout(Duration::from_secs(3))
        .connect()
        .await
        .unwrap();
    let started = Instant::now();
    let sends: Vec<_> = (0..4000u64)
        .map(|n| {
            let c = client.clone();
            tokio::spawn(async move {
                if n >= 2000 {
                    tokio::time::sleep(Duration::from_millis(n / 10)).await;
                }
                let t = Instant::now();
                let r = c.send("Q.note", json!({ "n": n })).await;
                (t.elapsed(), r.is_ok())
            })
        })
        .collect();
    let s = server.clone();
    tokio::time::sleep(Duration::from_millis(250)).await;
    tokio::task::spawn_blocking(move || s.restart().unwrap())
        .await
        .unwrap();
    let mut slow = 0;
    let mut ok = 0;
    for t in sends {
        let (took, was_ok) = tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("a send hung")
            .unwrap();
        if took > Duration::from_millis(4500) {
            slow += 1;
        }
        ok += usize::from(was_ok);
    }
    assert_eq!(slow, 0, "sends answered long past their deadline");
    eprintln!("ok {ok} of 4000 in {:?}", started.elapsed());
    assert_recovered(&client).await;
}

/// Redis frozen (`DEBUG SLEEP`) then killed and restarted while sends
/// keep coming, each with a 1 s deadline: every send ends by its deadline
/// (plus slack), and the client recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_then_killed_redis_mid_flood_leaves_no_send_hanging() {
    rpc_testkit::require_redis_server();
    let server = Arc::new(RedisServer::start().expect("redis-server"));
    let client = Client::builder(server.url())
        .default_timeout(Duration::from_secs(1))
        .connect()
        .await
        .unwrap();
    let sends: Vec<_> = (0..6000u64)
        .map(|n| {
            let c = client.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(n / 2)).await;
                let t = Instant::now();
                let r = c.send("Q.note", json!({ "n": n })).await;
                (t.elapsed(), r.is_ok())
            })
        })
        .collect();
    let s = server.clone();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sleeper = tokio::task::spawn_blocking(move || {
        let _ = s.try_cli(["DEBUG", "SLEEP", "1.5"]);
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sleeper.await.unwrap();
    let s = server.clone();
    tokio::task::spawn_blocking(move || {
        s.kill().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        s.restart().unwrap();
    })
    .await
    .unwrap();
    let (mut slow, mut ok, mut worst) = (0, 0, Duration::ZERO);
    for t in sends {
        let (took, was_ok) = tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("a send hung")
            .unwrap();
        worst = worst.max(took);
        if took > Duration::from_millis(2500) {
            slow += 1;
        }
        ok += usize::from(was_ok);
    }
    eprintln!("ok {ok} of 6000, worst {worst:?}");
    assert_eq!(
        slow, 0,
        "sends answered long past their deadline (worst {worst:?})"
    );
    assert_recovered(&client).await;
}

/// As above, but the short-lived runtime is kept (a sync facade's
/// per-thread current_thread runtime, idle between its block_on calls):
/// the flush runs on the connection's runtime, so pushes from every other
/// runtime never wait for that one to be driven again.
#[test]
fn a_flush_never_waits_on_another_callers_idle_runtime() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let (main, backend, side) = two_runtimes(&server);
    // A sync caller: two sends at once, given up at once (a biased select whose
    // later branch, say a cancellation already signalled, is ready).
    side.block_on(async {
        let a = backend.push_job("Q", b"a");
        let b = backend.push_job("Q", b"b");
        tokio::select! {
            biased;
            _ = futures_util::future::join(a, b) => {}
            _ = std::future::ready(()) => {}
        }
    });
    let ends = main.block_on(flood(&backend, 20, Duration::from_secs(3), |i| {
        format!("later {i}").into_bytes()
    }));
    let hung = ends.iter().filter(|e| e.is_none()).count();
    assert_eq!(
        hung, 0,
        "{hung} of 20 pushes hung on another runtime's idle flush"
    );
    drop(side);
}
