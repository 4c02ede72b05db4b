//! The Calculator end to end over a private redis-server: the `worker`
//! binary in its own process, typed clients in this one (and the `client`
//! binary), plus the `demo` binary on both backends.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use calculator::{CalculatorClient, MathError, Tagged};
use rpc_runtime::{CallError, Client, ErrorKind, Pending};
use rpc_testkit::{ChildGuard, RedisServer};

/// A `worker` process whose stdout lines arrive on a channel.
struct WorkerProcess {
    child: ChildGuard,
    lines: mpsc::Receiver<String>,
}

impl WorkerProcess {
    fn start(url: &str) -> WorkerProcess {
        let mut child = ChildGuard::spawn(
            Command::new(env!("CARGO_BIN_EXE_worker"))
                .args(["--url", url, "--concurrency", "32"])
                .env("RUST_LOG", "warn")
                .stdout(Stdio::piped()),
        )
        .expect("spawn worker");
        let stdout = child.child_mut().stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let w = WorkerProcess { child, lines };
        w.expect_line(|l| l == "worker ready", Duration::from_secs(20));
        w
    }

    fn expect_line(&self, want: impl Fn(&str) -> bool, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if want(&line) => return line,
                Ok(_) => continue,
                Err(e) => panic!("worker did not print the expected line: {e}"),
            }
        }
    }
}

async fn typed_client(url: &str) -> CalculatorClient {
    let client = Client::builder(url)
        .default_timeout(Duration::from_secs(20))
        .connect()
        .await
        .expect("client connects");
    CalculatorClient::new(client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_calls_across_two_processes() {
    let redis = RedisServer::start().expect("start redis-server");
    let url = redis.url();
    let mut worker = WorkerProcess::start(&url);
    let calc = typed_client(&url).await;

    assert_eq!(calc.add(2, 3).await.unwrap(), 5);
    assert_eq!(calc.divide(7.0, 2.0).await.unwrap(), 3.5);
    let total = calc
        .sum(vec![
            Tagged {
                value: 1.5,
                label: Some("a".into()),
            },
            Tagged {
                value: 2.0,
                label: None,
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        total,
        Tagged {
            value: 3.5,
            label: Some("sum".into())
        }
    );

    // The typed application error arrives as that type.
    match calc.divide(1.0, 0.0).await {
        Err(CallError::App(MathError::DivideByZero)) => {}
        other => panic!("expected MathError::DivideByZero, got {other:?}"),
    }
    // A handler's own failure is a runtime error, not an application error.
    let err = calc.add(i64::MAX, 1).await.unwrap_err();
    assert_eq!(err.remote_kind(), Some(ErrorKind::Handler), "{err}");

    // Fire and forget: the call returns its id at once; the worker logs the line.
    let id = calc.log("fire and forget").await.unwrap();
    let line = worker.expect_line(|l| l.contains("fire and forget"), Duration::from_secs(10));
    assert!(line.contains(id.as_str()), "{line}");

    // Send now, await later; and fetch the kept result by id from another client.
    let pending = calc.add(40, 2).send().await.unwrap();
    let id = pending.id().clone();
    assert_eq!(pending.await.unwrap(), 42);
    let elsewhere = typed_client(&url).await;
    let attached: Pending<i64> = elsewhere.client().attach(id);
    assert_eq!(attached.await.unwrap(), 42);

    // An unknown job gets an error reply, promptly, not a hang.
    let raw = Client::connect(&url).await.unwrap();
    let t0 = Instant::now();
    let err = raw
        .call_and_wait("Calculator.nope", serde_json::json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.remote_kind(), Some(ErrorKind::UnknownJob), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    // So do parameters of the wrong shape.
    let err = raw
        .call_and_wait("Calculator.add", serde_json::json!({"a": "two"}))
        .await
        .unwrap_err();
    assert_eq!(err.remote_kind(), Some(ErrorKind::BadRequest), "{err}");

    // The untyped path reaches the typed worker: the old library's API.
    let response = raw
        .call_and_wait("Calculator.add", serde_json::json!({"a": 1, "b": 2}))
        .await
        .unwrap();
    assert_eq!(response.data, serde_json::json!(3));

    worker.child.sigterm().unwrap();
    let status = worker.child.wait_timeout(Duration::from_secs(20)).unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "worker exits cleanly on SIGTERM: {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_calls_from_fifty_tasks() {
    let redis = RedisServer::start().expect("start redis-server");
    let url = redis.url();
    let _worker = WorkerProcess::start(&url);
    let calc = typed_client(&url).await;

    let t0 = Instant::now();
    let tasks: Vec<_> = (0..50i64)
        .map(|task| {
            let calc = calc.clone();
            tokio::spawn(async move {
                for i in 0..20i64 {
                    let (a, b) = (task * 1000 + i, i * 7 - task);
                    assert_eq!(calc.add(a, b).await.expect("call answered"), a + b);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task finished without a wrong answer");
    }
    eprintln!("1,000 calls from 50 tasks in {:?}", t0.elapsed());
}

#[test]
fn client_binary_talks_to_worker_binary() {
    let redis = RedisServer::start().expect("start redis-server");
    let url = redis.url();
    let _worker = WorkerProcess::start(&url);
    let client = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_client"))
            .args(["--url", &url])
            .args(args)
            .output()
            .expect("run client")
    };
    let run = |args: &[&str]| {
        let out = client(args);
        assert!(
            out.status.success(),
            "client {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    };
    assert_eq!(run(&["add", "2", "3"]).trim(), "5");
    assert!(run(&[]).contains("add(2, 3) = 5"));
    // The job answered with its error: printed on stderr, exit 1 (it
    // exited 0, so a script could not tell).
    let out = client(&["divide", "1", "0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("math error: DivideByZero"), "{stderr}");
    // A broker that does not answer: could not run, exit 2.
    let out = Command::new(env!("CARGO_BIN_EXE_client"))
        .args(["--url", "redis://127.0.0.1:1/", "add", "1", "2"])
        .output()
        .expect("run client");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every example binary says its version.
#[test]
fn every_binary_prints_its_version() {
    for bin in [
        env!("CARGO_BIN_EXE_worker"),
        env!("CARGO_BIN_EXE_client"),
        env!("CARGO_BIN_EXE_demo"),
    ] {
        let out = Command::new(bin).arg("--version").output().expect("run");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{bin}: {stdout}");
        assert!(
            stdout.contains(env!("CARGO_PKG_VERSION")),
            "{bin}: {stdout}"
        );
    }
}

/// Reproduces log files full of ANSI escapes: the log lines of a binary
/// whose stderr goes to a file carry no ESC byte, whatever the level.
#[test]
fn logs_written_to_a_file_have_no_colour_escapes() {
    let path = std::env::temp_dir().join(format!("calculator-demo-{}.log", std::process::id()));
    let log = std::fs::File::create(&path).expect("log file");
    let out = Command::new(env!("CARGO_BIN_EXE_demo"))
        .env_remove("REDIS_URL")
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "debug")
        .stderr(log)
        .output()
        .expect("run demo");
    assert!(out.status.success());
    let logged = std::fs::read(&path).expect("read the log");
    let _ = std::fs::remove_file(&path);
    let text = String::from_utf8_lossy(&logged);
    assert!(
        text.contains("DEBUG") || text.contains("INFO"),
        "no log lines: {text}"
    );
    assert!(
        !logged.contains(&0x1b),
        "ANSI escapes in a log file:\n{text}"
    );
}

#[test]
fn demo_runs_in_memory_by_default_and_on_redis_when_asked() {
    let out = Command::new(env!("CARGO_BIN_EXE_demo"))
        .env_remove("REDIS_URL")
        .output()
        .expect("run demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("broker: memory://"), "{stdout}");
    assert!(stdout.contains("add(2, 3) = 5"), "{stdout}");
    assert!(stdout.contains("Err(MathError::DivideByZero)"), "{stdout}");

    let redis = RedisServer::start().expect("start redis-server");
    let out = Command::new(env!("CARGO_BIN_EXE_demo"))
        .env("REDIS_URL", redis.url())
        .output()
        .expect("run demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo on redis failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("broker: {}", redis.url())),
        "{stdout}"
    );
    assert!(stdout.contains("add(40, 2).send()"), "{stdout}");
}

/// Asking a binary built without the `otlp` feature for traces is an error
/// that says how to build it, before it touches the broker: a deploy that
/// forgot the feature must not run on without traces and unnoticed.
#[cfg(not(feature = "otlp"))]
#[test]
fn asking_for_otlp_without_the_feature_says_how_to_build_it() {
    for bin in [env!("CARGO_BIN_EXE_worker"), env!("CARGO_BIN_EXE_client")] {
        let out = Command::new(bin)
            .args(["--url", "redis://127.0.0.1:1/"])
            .args(["--otlp-endpoint", "http://127.0.0.1:4318"])
            .output()
            .expect("run the binary");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bin}: {stderr}");
        assert!(stderr.contains("--features otlp"), "{bin}: {stderr}");
    }
}
