//! The operator's subcommands of the real `rpc` binary (`ping`, `stats`,
//! `top`) against a private redis-server with known contents: a real worker
//! holding one lease, jobs waiting behind it, dead letters written as
//! docs/PROTOCOL.md says. `rpc top` runs under a pseudo-terminal, its screen
//! read back through a terminal emulator (vt100).

use std::io::Write as _;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use expectrl::Session;
use rpc_runtime::{Client, DynamicService, Inspector, Worker};
use rpc_testkit::RedisServer;
use serde_json::{json, Value};
use tokio::sync::{oneshot, Notify};

mod support;

use support::rpc_async;

/// A worker serving `Slow.hold` one job at a time, each held until
/// `release` is notified; stopped when dropped through `stop`.
struct Holding {
    release: Arc<Notify>,
    stop: Option<oneshot::Sender<()>>,
    running: tokio::task::JoinHandle<Result<rpc_runtime::StatsSnapshot, rpc_runtime::Error>>,
}

impl Holding {
    async fn start(url: &str) -> Holding {
        let release = Arc::new(Notify::new());
        let r = release.clone();
        let service = DynamicService::new("Slow").job("hold", move |req| {
            let release = r.clone();
            async move {
                release.notified().await;
                req.respond(json!("done"))
            }
        });
        let worker = Worker::builder(url)
            .concurrency(1)
            .mount(service)
            .build()
            .await
            .expect("worker");
        let (stop, stopped) = oneshot::channel::<()>();
        let running = tokio::spawn(worker.run_until(async {
            let _ = stopped.await;
        }));
        Holding {
            release,
            stop: Some(stop),
            running,
        }
    }

    async fn finish(mut self) {
        self.release.notify_waiters();
        // Jobs taken after the release wait for the next one.
        let release = self.release.clone();
        let nudge = tokio::spawn(async move {
            loop {
                release.notify_waiters();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.running).await;
        nudge.abort();
    }
}

/// The known contents: `Slow` with 1 job leased to the worker and 2 queued;
/// `Math` with 1 job queued (no worker) and 2 dead letters.
async fn fill(redis: &RedisServer) -> Holding {
    let url = redis.url();
    let worker = Holding::start(&url).await;
    let client = Client::connect(&url).await.expect("client");
    for _ in 0..3 {
        client.send("Slow.hold", json!({})).await.expect("send");
    }
    client
        .send("Math.add", json!({"a": 1, "b": 2}))
        .await
        .expect("send");
    for n in 1..=2 {
        let message = json!({"v": 1, "id": format!("d{n}"), "job": "Math.add", "params": {}});
        redis.cli([
            "XADD",
            "rpc:{Math}:dead",
            "*",
            "reason",
            "boom",
            "m",
            &message.to_string(),
        ]);
    }
    let inspector = Inspector::connect(&url, "rpc").await.expect("inspector");
    let t0 = Instant::now();
    loop {
        let slow = inspector.service_stats("Slow").await.expect("stats");
        if slow.is_some_and(|s| s.leased == 1 && s.queued == 2) {
            return worker;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the worker never took a job"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_json_reports_queued_leased_dead_and_workers() {
    // A script asks for the queue figures as JSON and gets exactly what is in
    // Redis: the held job as leased to the one worker, the rest as queued.
    let redis = RedisServer::start().expect("start redis-server");
    let worker = fill(&redis).await;
    let url = redis.url();

    let (ok, out, err) = rpc_async(&url, &["stats", "--json"]).await;
    assert!(ok, "{err}");
    let stats: Value = serde_json::from_str(&out).expect("JSON");
    let by_name = |name: &str| {
        stats
            .as_array()
            .and_then(|a| a.iter().find(|s| s["service"] == name))
            .unwrap_or_else(|| panic!("{name} in {stats}"))
            .clone()
    };
    let slow = by_name("Slow");
    assert_eq!(
        (slow["queued"].as_u64(), slow["leased"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(slow["dead_letters"], 0);
    let consumers = slow["consumers"].as_array().expect("consumers");
    assert_eq!(consumers.len(), 1);
    assert_eq!(consumers[0]["pending"], 1);
    assert!(consumers[0]["idle_ms"].as_u64().is_some());
    assert!(slow["oldest_leased_age_ms"].as_u64().is_some());
    let math = by_name("Math");
    assert_eq!(
        (
            math["queued"].as_u64(),
            math["leased"].as_u64(),
            math["dead_letters"].as_u64()
        ),
        (Some(1), Some(0), Some(2))
    );
    assert!(math["oldest_leased_age_ms"].is_null());

    // Named services only; the table for people.
    let (ok, out, _) = rpc_async(&url, &["stats", "Math", "--json"]).await;
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (ok, out, _) = rpc_async(&url, &["stats"]).await;
    assert!(ok);
    assert!(out.starts_with("SERVICE"), "{out}");
    let slow_row = ["Slow", "1", "2", "1", "0", "1"]; // service shards queued leased dead workers
    assert!(
        out.lines().any(|l| l
            .split_whitespace()
            .collect::<Vec<_>>()
            .starts_with(&slow_row)),
        "{out}"
    );
    assert!(out.contains("1 leased, idle"), "{out}");

    worker.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_service_or_a_dead_redis_exits_non_zero_with_the_reason() {
    // A typo or a wrong port must not print an empty, healthy-looking table.
    let redis = RedisServer::start().expect("start redis-server");
    redis.cli(["XADD", "rpc:{Math}:jobs", "*", "m", "{}"]);
    let url = redis.url();
    let (ok, _, err) = rpc_async(&url, &["stats", "Nope"]).await;
    assert!(!ok);
    assert!(err.contains("`Nope`") && err.contains("Math"), "{err}");
    let (ok, _, err) = rpc_async(&url, &["top", "Nope"]).await;
    assert!(!ok);
    assert!(err.contains("terminal") || err.contains("`Nope`"), "{err}");

    redis.kill().unwrap();
    // Not `url`: another test's server may have taken the freed port.
    let dead = redis.unreachable_url();
    for command in [&["stats"][..], &["stats", "--json"], &["ping"]] {
        let (ok, out, err) = rpc_async(&dead, command).await;
        assert!(!ok, "{command:?} succeeded: {out}");
        assert!(err.contains("cannot connect"), "{command:?}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_prints_latency_and_version_and_refuses_a_wrong_password() {
    // `rpc ping` as a deploy check: a good URL answers, a wrong password
    // fails with Redis's reason.
    let redis = RedisServer::builder()
        .requirepass("s3cret")
        .start()
        .expect("start redis-server");
    let (ok, out, err) = rpc_async(&redis.url_as("", "s3cret"), &["ping"]).await;
    assert!(ok, "{err}");
    assert!(
        out.starts_with("PONG in ") && out.contains("ms (Redis 7"),
        "{out}"
    );
    let (ok, _, err) = rpc_async(&redis.url_as("", "wrong"), &["ping"]).await;
    assert!(!ok);
    assert!(err.contains("cannot connect"), "{err}");
    assert!(
        err.to_lowercase().contains("authentication failed"),
        "{err}"
    );
    assert!(
        !err.contains("wrong@"),
        "the password is not printed: {err}"
    );
    let (ok, _, err) = rpc_async(&redis.url(), &["ping"]).await;
    assert!(!ok);
    assert!(err.contains("NOAUTH") || err.contains("auth"), "{err}");
}

/// A running `rpc top` on a pseudo-terminal, and the screen it drew.
struct Top {
    session: expectrl::session::OsSession,
    screen: vt100::Parser,
    /// Whether it gave the terminal back (left the alternate screen): the
    /// screen then keeps its last picture.
    left: bool,
}

/// What a program writes to leave the alternate screen.
const LEAVE_ALTERNATE_SCREEN: &[u8] = b"\x1b[?1049l";

impl Top {
    fn start(url: &str, args: &[&str]) -> Top {
        let mut command = Command::new(env!("CARGO_BIN_EXE_rpc"));
        command.args(["--url", url, "top"]).args(args);
        let session = Session::spawn(command).expect("spawn rpc top on a pty");
        Top {
            session,
            // 80x24, the pty's default size.
            screen: vt100::Parser::default(),
            left: false,
        }
    }

    /// Reads what `rpc top` wrote so far into the emulated screen.
    fn pump(&mut self) {
        let mut buf = [0u8; 8192];
        loop {
            match self.session.try_read(&mut buf) {
                Ok(0) => return,
                Ok(_) if self.left => {}
                Ok(n) => {
                    let bytes = &buf[..n];
                    let end = bytes
                        .windows(LEAVE_ALTERNATE_SCREEN.len())
                        .position(|w| w == LEAVE_ALTERNATE_SCREEN);
                    self.screen.process(&bytes[..end.unwrap_or(n)]);
                    self.left = end.is_some();
                }
                Err(_) => return,
            }
        }
    }

    /// Waits until a line of the screen satisfies `wanted`; returns it.
    fn wait_for_line(&mut self, wanted: impl Fn(&[&str]) -> bool) -> String {
        let t0 = Instant::now();
        loop {
            self.pump();
            let contents = self.screen.screen().contents();
            for line in contents.lines() {
                let words: Vec<&str> = line
                    .split(|c: char| c.is_whitespace() || c == '│')
                    .filter(|w| !w.is_empty())
                    .collect();
                if wanted(&words) {
                    return line.to_owned();
                }
            }
            assert!(
                t0.elapsed() < Duration::from_secs(15),
                "never shown; screen:\n{contents}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the process to exit; its exit code.
    fn wait_exit(&mut self) -> i32 {
        let t0 = Instant::now();
        loop {
            self.pump();
            match self.session.get_process().status() {
                Ok(expectrl::process::unix::WaitStatus::Exited(_, code)) => return code,
                Ok(expectrl::process::unix::WaitStatus::StillAlive) | Err(_) => {}
                Ok(other) => panic!("rpc top ended with {other:?}"),
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "rpc top did not exit"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_shows_the_figures_and_rates_and_quits_on_q() {
    // An operator watches the queues live: the figures appear, jobs sent
    // meanwhile show up as jobs/s in, and `q` gives the terminal back.
    let redis = RedisServer::start().expect("start redis-server");
    let worker = fill(&redis).await;
    let url = redis.url();

    let u = url.clone();
    let mut top = tokio::task::spawn_blocking(move || {
        let mut top = Top::start(&u, &["--interval", "1"]);
        top.wait_for_line(|w| w.starts_with(&["Slow", "2", "1", "0"]));
        top.wait_for_line(|w| w.starts_with(&["Math", "1", "0", "2"]));
        top
    })
    .await
    .expect("top task");

    let client = Client::connect(&url).await.expect("client");
    for _ in 0..20 {
        client.send("Math.add", json!({})).await.expect("send");
    }
    let top = tokio::task::spawn_blocking(move || {
        // SERVICE QUEUED LEASED DEAD IN/S ...: 20 in within one refresh.
        let line = top.wait_for_line(|w| {
            w.first() == Some(&"Math")
                && w.get(1) == Some(&"21")
                && w.get(4)
                    .and_then(|r| r.parse::<f64>().ok())
                    .is_some_and(|r| r > 0.0)
        });
        assert!(line.contains("Math"));
        top.session.write_all(b"q").expect("type q");
        let code = top.wait_exit();
        assert_eq!(code, 0, "q quits cleanly");
        top
    })
    .await
    .expect("top task");
    drop(top);

    worker.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_with_iterations_stops_by_itself() {
    // Scripted runs: `--iterations N` draws N screens and exits 0.
    let redis = RedisServer::start().expect("start redis-server");
    redis.cli(["XADD", "rpc:{Math}:jobs", "*", "m", "{}"]);
    let url = redis.url();
    tokio::task::spawn_blocking(move || {
        let mut top = Top::start(&url, &["--iterations", "2", "--interval", "0.2"]);
        top.wait_for_line(|w| w.starts_with(&["Math", "1", "0", "0", "0.0", "0.0"]));
        assert_eq!(top.wait_exit(), 0);
    })
    .await
    .expect("top task");
}

/// Issue 24 point 5: `rpc stats` shows each rate limit of a service (the
/// limit, starts in the last second, calls waiting for their turn, starts
/// allowed and turns given in all), in the table and in JSON; a service
/// without limits shows as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_show_each_rate_limit_with_its_waiting_calls() {
    let redis = RedisServer::start().expect("start redis-server");
    let url = redis.url();
    let mail = support::limited_mail(&url).await;
    redis.cli(["XADD", "rpc:{Math}:jobs", "*", "m", "{}"]);

    let (ok, out, err) = rpc_async(&url, &["stats", "--json"]).await;
    assert!(ok, "{err}");
    let stats: Value = serde_json::from_str(&out).expect("JSON");
    let by_name = |name: &str| {
        stats
            .as_array()
            .and_then(|a| a.iter().find(|s| s["service"] == name))
            .unwrap_or_else(|| panic!("{name} in {stats}"))
            .clone()
    };
    let limits = by_name("Mail")["rate_limits"].clone();
    let limits = limits.as_array().unwrap_or_else(|| panic!("{stats}"));
    let figures: Vec<_> = limits
        .iter()
        .map(|l| {
            (
                l["job"].as_str(),
                l["rate"].as_str(),
                l["waiting"].as_u64(),
                l["allowed"].as_u64(),
                l["waited"].as_u64(),
            )
        })
        .collect();
    assert_eq!(
        figures,
        [
            (None, Some("100/s"), Some(0), Some(1), Some(1)),
            (Some("send"), Some("1/m"), Some(1), Some(1), Some(1)),
        ],
        "{stats}"
    );
    assert!(limits.iter().all(|l| l["last_second"].as_u64() <= Some(1)));
    assert!(
        by_name("Math").get("rate_limits").is_none(),
        "no limits, no key: {stats}"
    );

    let (ok, out, err) = rpc_async(&url, &["stats"]).await;
    assert!(ok, "{err}");
    for line in [
        "rate limit 100/s (the service): ",
        "rate limit 1/m (job send): ",
        ", 1 waiting, 1 allowed, 1 waited",
    ] {
        assert!(out.contains(line), "no {line:?} in\n{out}");
    }
    let _ = mail.stop.send(());
    let _ = mail.running.await;
}

/// Issue 24 point 5: `rpc stats` shows how many calls wait in each
/// priority lane (adding up to QUEUED) and the busiest group keys with
/// their calls running and parked; a lane or a key whose state is of the
/// wrong type shows as unreadable, and the rest of the view as ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_show_priority_lanes_and_the_busiest_group_keys() {
    let redis = RedisServer::start().expect("start redis-server");
    let url = redis.url();
    support::prio_with_lanes_and_group_keys(&redis);
    redis.cli(["XADD", "rpc:{Math}:jobs", "*", "m", "{}"]);

    for args in [&["stats", "--json"][..], &["stats", "--json", "Prio"][..]] {
        let (ok, out, err) = rpc_async(&url, args).await;
        assert!(ok, "{err}");
        let stats: Value = serde_json::from_str(&out).expect("JSON");
        let prio = stats
            .as_array()
            .and_then(|a| a.iter().find(|s| s["service"] == "Prio"))
            .unwrap_or_else(|| panic!("Prio in {stats}"));
        assert_eq!(prio["queued"], 3, "{prio}");
        assert_eq!(
            prio["lanes"],
            json!([
                {"priority": 1, "queued": 2},
                {"priority": 2, "queued": 0},
                {"priority": 3, "queued": 1},
                {"priority": 4, "queued": 0},
                {"priority": 5, "queued": 0, "unreadable": true},
            ]),
            "{prio}"
        );
        assert_eq!(
            prio["group_keys"],
            json!({
                "keys": [
                    {"job": "send", "key": "t1", "running": 2, "waiting": 1},
                    {"job": "send", "key": "junk", "running": null, "waiting": 0},
                ],
                "visited": 2,
                "running": 2,
                "waiting": 1,
                "at_limit": 1,
                "capped": false,
            }),
            "{prio}"
        );
        if let Some(math) = stats
            .as_array()
            .and_then(|a| a.iter().find(|s| s["service"] == "Math"))
        {
            assert!(math.get("group_keys").is_none(), "none, no key: {math}");
        }
    }

    let (ok, out, err) = rpc_async(&url, &["stats"]).await;
    assert!(ok, "{err}");
    for line in [
        "priority lanes (queued): 1: 2, 2: 0, 3 (default): 1, 4: 0, 5: unreadable",
        "group key t1 (job send): 2 running, 1 waiting",
        "group key junk (job send): unreadable running, 0 waiting",
    ] {
        assert!(out.contains(line), "no {line:?} in\n{out}");
    }
    let math = out.lines().position(|l| l.starts_with("Math")).unwrap();
    let prio = out.lines().position(|l| l.starts_with("Prio")).unwrap();
    assert!(
        math < prio
            && !out
                .lines()
                .nth(math + 1)
                .unwrap()
                .contains("priority lanes"),
        "a service with only default-lane calls shows no lanes line:\n{out}"
    );
}
