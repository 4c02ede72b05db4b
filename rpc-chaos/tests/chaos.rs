//! Chaos under load: workers SIGKILLed and restarted while thousands of calls
//! run, a worker frozen past its lease, Redis (with AOF) killed mid-load, and
//! garbage mixed into the queue. Each test prints its figures (eprintln, so
//! they show with a failure too) and is bounded well under two minutes.
//!
//! The tests take turns (a lock): on a 2-core machine, two of them at once
//! would measure the machine, not the runtime.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rpc_chaos::{jobs_key, pending_count, timeout, Event, WorkerProcess};
use rpc_runtime::{Client, Error};
use rpc_testkit::RedisServer;
use serde_json::json;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_chaos-worker"))
}

/// Runs one chaos test at a time, on its own runtime.
fn serial<F: std::future::Future<Output = ()>>(body: F) {
    static TURN: Mutex<()> = Mutex::new(());
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(body);
}

/// Runs `calls` squares with at most `in_flight` at once; returns the
/// slowest call. Panics on a wrong or missing answer.
async fn squares(client: &Client, calls: i64, in_flight: usize, deadline_ms: u64) -> Duration {
    let slots = Arc::new(tokio::sync::Semaphore::new(in_flight));
    let mut tasks = Vec::new();
    for n in 0..calls {
        let permit = slots.clone().acquire_owned().await.expect("semaphore");
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let r = client
                .call("Chaos.square", json!({"n": n}))
                .options(timeout(deadline_ms))
                .response()
                .await;
            drop(permit);
            let took = t0.elapsed();
            match r {
                Ok(r) => assert_eq!(r.data, json!(n * n), "call {n}"),
                Err(e) => panic!("call {n} failed after {took:?}: {e}"),
            }
            took
        }));
    }
    let mut slowest = Duration::ZERO;
    for t in tasks {
        slowest = slowest.max(t.await.expect("call task"));
    }
    slowest
}

#[test]
fn a_workers_killed_every_200ms_lose_no_call() {
    serial(async {
        let redis = RedisServer::start().expect("redis");
        let url = redis.url();
        let args = [
            "--visibility-ms",
            "1000",
            "--max-attempts",
            "100",
            "--concurrency",
            "32",
        ];
        let mut workers: Vec<WorkerProcess> = (0..4)
            .map(|_| WorkerProcess::start(bin(), &url, &args).expect("worker"))
            .collect();
        let client = Client::connect(&url).await.unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let kills = Arc::new(AtomicU64::new(0));
        let killer = {
            let (done, kills, url) = (done.clone(), kills.clone(), url.clone());
            std::thread::spawn(move || {
                let mut graveyard = Vec::new();
                let mut i = 0;
                while !done.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(200));
                    let victim = &mut workers[i % 4];
                    let _ = victim.child.sigkill();
                    let _ = victim.child.wait();
                    kills.fetch_add(1, Ordering::SeqCst);
                    let fresh = WorkerProcess::spawn(bin(), &url, &args).expect("restart");
                    graveyard.push(std::mem::replace(victim, fresh));
                    i += 1;
                }
                graveyard.extend(workers);
                graveyard
                    .iter_mut()
                    .map(WorkerProcess::redeliveries)
                    .sum::<usize>()
            })
        };
        let t0 = Instant::now();
        let slowest = squares(&client, 5000, 200, 60_000).await;
        let elapsed = t0.elapsed();
        done.store(true, Ordering::SeqCst);
        let redeliveries = tokio::task::spawn_blocking(move || killer.join().expect("killer"))
            .await
            .unwrap();
        let kills = kills.load(Ordering::SeqCst);
        eprintln!(
            "chaos (a): 5000 calls, 4 workers, {kills} SIGKILLs (one every 200 ms, restarted): all answered right in {elapsed:?} ({:.0} calls/s), {redeliveries} redeliveries, slowest call {slowest:?}",
            5000.0 / elapsed.as_secs_f64()
        );
        assert!(kills >= 3, "the run was too short to kill anything");
    });
}

#[test]
fn b_frozen_worker_is_overtaken_and_its_late_answer_does_no_harm() {
    serial(async {
        let redis = RedisServer::start().expect("redis");
        let url = redis.url();
        let args = ["--visibility-ms", "1000"];
        let mut a = WorkerProcess::start(bin(), &url, &args).expect("worker a");
        let client = Client::connect(&url).await.unwrap();
        let t0 = Instant::now();
        let call = {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .call("Chaos.sleep", json!({"ms": 1500}))
                    .options(timeout(20_000))
                    .response()
                    .await
            })
        };
        a.wait_for(Duration::from_secs(60), |e| matches!(e, Event::Start(..)))
            .unwrap();
        a.child.sigstop().unwrap();
        let mut b = WorkerProcess::start(bin(), &url, &args).expect("worker b");
        let taken = b
            .wait_for(Duration::from_secs(60), |e| matches!(e, Event::Start(..)))
            .unwrap();
        assert!(matches!(taken, Event::Start(_, 2)), "{taken:?}");
        let answer = call.await.unwrap().expect("answered by b").data;
        let answered_after = t0.elapsed();
        assert_eq!(answer["pid"], b.child.pid(), "{answer}");
        assert_eq!(answer["attempt"], 2);

        // Thaw A: it finishes late, pushes a second reply and acks an entry
        // that is already gone.
        a.child.sigcont().unwrap();
        // Waited for: A's second reply lands in the client's inbox.
        let t0 = Instant::now();
        while !redis
            .keys("rpc:inbox:*")
            .iter()
            .any(|inbox| redis.cli(["LLEN", inbox]).trim() == "1")
        {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "A never pushed its late reply"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(a.child.is_running().unwrap());
        assert_eq!(pending_count(&redis), 0);
        assert_eq!(redis.cli(["XLEN", &jobs_key()]).trim(), "0");
        assert_eq!(client.in_flight(), 0);
        // Nobody waits, so nobody reads: the duplicate sits in the inbox
        // (which expires) until the client's next read.
        let inboxes = redis.keys("rpc:inbox:*");
        assert_eq!(inboxes.len(), 1, "{inboxes:?}");
        assert_eq!(redis.cli(["LLEN", &inboxes[0]]).trim(), "1");
        // The client is fine and gets exactly its own answers afterwards;
        // that read drops the duplicate, and the inbox is empty (gone).
        let r = client
            .call("Chaos.square", json!({"n": 5}))
            .options(timeout(5000))
            .response()
            .await
            .unwrap();
        assert_eq!(r.data, json!(25));
        assert!(redis.keys("rpc:inbox:*").is_empty());
        eprintln!(
            "chaos (b): worker frozen with the job; taken over (attempt 2) and answered by the other after {answered_after:?}; the thawed worker's late ack/reply left 0 pending, 0 queued, its duplicate reply was dropped by the next read (no inbox left), and the caller saw one answer"
        );
    });
}

#[test]
fn c_redis_with_aof_killed_mid_load_loses_no_call() {
    serial(async {
        let redis = Arc::new(
            RedisServer::builder()
                .appendonly(true)
                .appendfsync_always(true)
                .start()
                .expect("redis"),
        );
        let url = redis.url();
        let args = ["--visibility-ms", "1000", "--max-attempts", "20"];
        let _w1 = WorkerProcess::start(bin(), &url, &args).expect("worker");
        let _w2 = WorkerProcess::start(bin(), &url, &args).expect("worker");
        let client = Client::connect(&url).await.unwrap();
        let calls = 2000i64;
        let deadline_ms = 20_000;
        let answered = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let slots = Arc::new(tokio::sync::Semaphore::new(100));
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        let mut outage = None;
        for n in 0..calls {
            if n == 600 {
                // Kill Redis mid-load, bring it back a second later.
                let redis = redis.clone();
                outage = Some(tokio::task::spawn_blocking(move || {
                    redis.kill().expect("kill redis");
                    let down = Instant::now();
                    std::thread::sleep(Duration::from_secs(1));
                    redis.restart().expect("restart redis");
                    down.elapsed()
                }));
            }
            let permit = slots.clone().acquire_owned().await.unwrap();
            let (client, answered, refused) = (client.clone(), answered.clone(), refused.clone());
            tasks.push(tokio::spawn(async move {
                let started = Instant::now();
                loop {
                    let t = Instant::now();
                    match client
                        .call("Chaos.square", json!({"n": n}))
                        .options(timeout(deadline_ms))
                        .response()
                        .await
                    {
                        Ok(r) => {
                            assert_eq!(r.data, json!(n * n));
                            answered.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        // Not enqueued (Redis was down): the caller may try again.
                        Err(Error::Broker(_)) => {
                            assert!(t.elapsed() < Duration::from_millis(deadline_ms));
                            refused.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(e) => panic!("call {n} failed after {:?}: {e}", t.elapsed()),
                    }
                    assert!(
                        started.elapsed() < Duration::from_secs(60),
                        "call {n} never answered"
                    );
                }
                drop(permit);
                started.elapsed()
            }));
        }
        let mut slowest = Duration::ZERO;
        for t in tasks {
            slowest = slowest.max(t.await.expect("call"));
        }
        let downtime = match outage {
            Some(o) => o.await.unwrap(),
            None => Duration::ZERO,
        };
        let elapsed = t0.elapsed();
        assert_eq!(answered.load(Ordering::SeqCst), calls as u64);
        let t1 = Instant::now();
        while pending_count(&redis) != 0 {
            assert!(t1.elapsed() < Duration::from_secs(10));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!(
            "chaos (c): 2000 calls, Redis (AOF, fsync always) SIGKILLed after 600 and back after {downtime:?}: all {} answered right in {elapsed:?}; {} sends refused while down (retried by the caller); slowest call {slowest:?} (deadline {deadline_ms} ms)",
            answered.load(Ordering::SeqCst),
            refused.load(Ordering::SeqCst)
        );
    });
}

#[test]
fn d_garbage_in_the_queue_is_dead_lettered() {
    serial(async {
        let redis = RedisServer::start().expect("redis");
        let url = redis.url();
        let _w = WorkerProcess::start(bin(), &url, &["--concurrency", "32"]).expect("worker");
        let client = Client::connect(&url).await.unwrap();
        let raw = redis::Client::open(url.as_str()).unwrap();
        let mut con = raw.get_multiplexed_async_connection().await.unwrap();
        let garbage = tokio::spawn(async move {
            for i in 0..1000 {
                let body = match i % 4 {
                    0 => format!("not json {i}"),
                    1 => "{\"v\":1}".to_owned(),
                    2 => format!("[{i}]"),
                    _ => format!("{{\"v\":1,\"id\":\"g{i}\",\"job\":{i},\"params\":{{}}}}"),
                };
                let _: String = redis::cmd("XADD")
                    .arg(jobs_key())
                    .arg("*")
                    .arg("m")
                    .arg(body)
                    .query_async(&mut con)
                    .await
                    .unwrap();
            }
        });
        let t0 = Instant::now();
        let slowest = squares(&client, 1000, 100, 30_000).await;
        garbage.await.unwrap();
        let mut dead = Vec::new();
        while dead.len() < 1000 {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "{} dead",
                dead.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
            dead = client.backend().dead_letters("Chaos", 2000).await.unwrap();
        }
        assert_eq!(dead.len(), 1000);
        assert!(dead
            .iter()
            .all(|d| d.reason.starts_with("unreadable job message")));
        assert_eq!(pending_count(&redis), 0);
        eprintln!(
            "chaos (d): 1000 garbage messages mixed with 1000 calls: all 1000 dead-lettered with the reason, all calls answered right in {:?}, slowest {slowest:?}",
            t0.elapsed()
        );
    });
}
