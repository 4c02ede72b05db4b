//! `rpc call` as a script sees it, with the real binary against a private
//! redis-server and a worker whose job answers with a typed application
//! error: `--no-wait` keeps the result so `rpc fetch` can read it, and an
//! application error's value (`error.data`) is shown, as JSON with `--full`.
//! (Issue 13: the README's `--no-wait` then `fetch` could not work, and
//! `error.data` was never shown.)

use rpc_runtime::{BoxFuture, Context, JobInfo, Outcome, Service, Worker};
use rpc_testkit::RedisServer;
use serde_json::value::RawValue;
use serde_json::{json, Value};

mod support;

use support::rpc_async;

/// `Math.divide {a, b}`: the quotient, or the application error
/// `"DivideByZero"`, as a generated server would answer.
struct Math;

impl Service for Math {
    fn name(&self) -> &'static str {
        "Math"
    }

    fn jobs(&self) -> &'static [JobInfo] {
        &[JobInfo {
            name: "divide",
            one_way: false,
            timeout_ms: None,
            max_attempts: None,
            deprecated: false,
            backoff: None,
            rate: None,
            group_limit: None,
            priority: None,
        }]
    }

    fn dispatch<'a>(
        &'a self,
        _ctx: Context,
        _job: &'a str,
        params: &'a RawValue,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let p: Value = serde_json::from_str(params.get()).unwrap_or_default();
            match (p["a"].as_f64(), p["b"].as_f64()) {
                (Some(a), Some(b)) => match a / b {
                    q if q.is_finite() => Outcome::Ok(q.to_string()),
                    _ => Outcome::App("\"DivideByZero\"".to_owned()),
                },
                _ => Outcome::bad_request("a and b are numbers"),
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_wait_keeps_the_result_for_fetch_and_app_errors_show_their_data() {
    let redis = RedisServer::start().expect("redis-server");
    let url = redis.url();
    let worker = Worker::builder(&url).mount(Math).build().await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run_until(async {
        let _ = stopped.await;
    }));

    let (ok, out, err) = rpc_async(
        &url,
        &["call", "Math.divide", r#"{"a": 6, "b": 3}"#, "--no-wait"],
    )
    .await;
    assert!(ok, "{err}");
    let id = out.trim().to_owned();
    let t0 = std::time::Instant::now();
    loop {
        let (ok, out, err) = rpc_async(&url, &["fetch", &id]).await;
        if ok {
            assert_eq!(out.trim(), "2");
            break;
        }
        assert!(err.contains("no result is kept"), "{err}");
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(10),
            "never kept"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let ttl: i64 = redis
        .cli(["PTTL", &format!("rpc:result:{{{id}}}")])
        .trim()
        .parse()
        .unwrap();
    assert!((290_000..=300_000).contains(&ttl), "kept for 5 min: {ttl}");

    let (ok, _, err) = rpc_async(&url, &["call", "Math.divide", r#"{"a": 1, "b": 0}"#]).await;
    assert!(!ok);
    assert!(
        err.contains("(app)") && err.contains("\"DivideByZero\""),
        "{err}"
    );
    let (ok, out, _) = rpc_async(
        &url,
        &["call", "Math.divide", r#"{"a": 1, "b": 0}"#, "--full"],
    )
    .await;
    assert!(!ok, "an error exits non-zero, --full or not");
    let whole: Value = serde_json::from_str(out.trim()).expect("JSON on stdout");
    assert_eq!(whole["error"]["kind"], "app");
    assert_eq!(whole["error"]["data"], json!("DivideByZero"));

    let _ = stop.send(());
    running.await.unwrap().unwrap();
}
