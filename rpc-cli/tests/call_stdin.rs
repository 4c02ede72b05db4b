//! `rpc call Service.job -`: one call per JSON line of stdin, sent as one
//! batch, one line printed per input in order (answers, `{"error": ...}`
//! lines, or ids with `--no-wait`), and the exit status by the workspace
//! rule: 0 all answered, 1 one failed, 2 a bad line (nothing sent).

use std::io::Write;
use std::process::{Command, Stdio};

use rpc_runtime::{DynamicService, HandlerError, Worker};
use rpc_testkit::RedisServer;
use serde_json::{json, Value};

/// `rpc --url URL ARGS...` with `input` on stdin: exit code, stdout, stderr.
async fn rpc_with_stdin(url: &str, args: &[&str], input: String) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rpc"));
    command
        .args(["--url", url])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().expect("run rpc");
        let mut stdin = child.stdin.take().expect("stdin");
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
        let out = child.wait_with_output().expect("rpc ends");
        writer.join().unwrap().expect("stdin written");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .expect("rpc task")
}

fn lines(n: u64, params: impl Fn(u64) -> Value) -> String {
    (0..n).map(|i| format!("{}\n", params(i))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_from_stdin_answer_one_line_per_input_in_order() {
    rpc_testkit::require_redis_server();
    let redis = RedisServer::start().expect("redis-server");
    let url = redis.url();
    let service = DynamicService::new("Lines").job("double", |req| async move {
        match req.data["n"].as_i64() {
            Some(13) => Err(HandlerError::fatal("13 is unlucky")),
            Some(n) => req.respond(json!(n * 2)),
            None => Err(HandlerError::fatal("n is a number")),
        }
    });
    let worker = Worker::builder(&url).mount(service).build().await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run_until(async {
        let _ = stopped.await;
    }));

    // Every answer, in order, one line each (13 is left out: it fails).
    let input = lines(300, |i| json!({ "n": if i == 13 { 0 } else { i } }));
    let (status, out, err) = rpc_with_stdin(&url, &["call", "Lines.double", "-"], input).await;
    assert_eq!(status, 0, "{err}");
    let answers: Vec<&str> = out.lines().collect();
    assert_eq!(answers.len(), 300);
    for (i, answer) in answers.iter().enumerate() {
        let expected = if i == 13 { 0 } else { i * 2 };
        assert_eq!(*answer, expected.to_string(), "line {i}");
    }

    // One failed call: its line says why, the others answer; exit 1.
    let input = lines(20, |i| json!({ "n": i }));
    let (status, out, err) =
        rpc_with_stdin(&url, &["call", "Lines.double", "--stdin", "--full"], input).await;
    assert_eq!(status, 1, "{err}");
    assert!(err.contains("1 of 20 calls failed"), "{err}");
    let answers: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers.len(), 20);
    for (i, answer) in answers.iter().enumerate() {
        if i == 13 {
            assert_eq!(answer["error"]["kind"], "handler", "{answer}");
            assert!(answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("13 is unlucky"));
        } else {
            assert_eq!(answer["data"], json!(i * 2), "{answer}");
            assert!(answer["id"].is_string() && answer["response_key"].is_string());
        }
    }

    // --no-wait: one id per line; each result kept for `rpc fetch`.
    let input = lines(3, |i| json!({ "n": 100 + i }));
    let (status, out, err) =
        rpc_with_stdin(&url, &["call", "Lines.double", "-", "--no-wait"], input).await;
    assert_eq!(status, 0, "{err}");
    let ids: Vec<String> = out.lines().map(str::to_owned).collect();
    assert_eq!(ids.len(), 3);
    for (i, id) in ids.iter().enumerate() {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let fetched = Command::new(env!("CARGO_BIN_EXE_rpc"))
                .args(["--url", &url, "fetch", id])
                .output()
                .unwrap();
            if fetched.status.success() {
                let text = String::from_utf8_lossy(&fetched.stdout);
                assert_eq!(text.trim(), ((100 + i) * 2).to_string());
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{id} never kept");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    // A line that is not a JSON object: nothing is sent, exit 2, its line named.
    let (status, _, err) = rpc_with_stdin(
        &url,
        &["call", "Unserved.double", "-", "--allow-new-service"],
        "{\"n\": 1}\n\n[2]\n".to_owned(),
    )
    .await;
    assert_eq!(status, 2, "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert_eq!(redis.cli(["EXISTS", "rpc:{Unserved}:jobs"]).trim(), "0");

    // Every call of the batch takes the group key and the priority given
    // (once dropped here: the jobs went to the default lane, ungrouped).
    let (status, out, err) = rpc_with_stdin(
        &url,
        &[
            "call",
            "Grouped.double",
            "-",
            "--no-wait",
            "--allow-new-service",
            "--group",
            "tenant-1",
            "--priority",
            "1",
        ],
        lines(2, |i| json!({ "n": i })),
    )
    .await;
    assert_eq!(status, 0, "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    let lane = redis.cli(["XRANGE", "rpc:{Grouped}:jobs:1", "-", "+"]);
    assert_eq!(lane.matches("\"group\":\"tenant-1\"").count(), 2, "{lane}");
    assert_eq!(lane.matches("\"priority\":1").count(), 2, "{lane}");
    assert_eq!(redis.cli(["EXISTS", "rpc:{Grouped}:jobs"]).trim(), "0");

    let _ = stop.send(());
    running.await.unwrap().unwrap();
}
