//! A client's metrics (issue 12, point 4; issue 21, point 3): calls by
//! outcome, in the same words a worker uses for its jobs, and their
//! latency, in the application's own `prometheus-client` registry.

use std::time::Duration;

use rpc_runtime::telemetry::prometheus_client::encoding::text::encode;
use rpc_runtime::telemetry::prometheus_client::registry::Registry;
use rpc_runtime::telemetry::ClientMetrics;
use rpc_runtime::{CallOptions, Client, DynamicService, HandlerError, Worker};
use rpc_testkit::RedisServer;
use serde_json::json;

/// Two answered calls, one failed by its handler and one unanswered: the
/// registry counts each under its outcome and times all four.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_calls_are_counted_by_outcome_in_the_applications_registry() {
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let worker = Worker::builder(&url)
        .mount(
            DynamicService::new("Echo")
                .job("echo", |req| async move { Ok(req.data) })
                .job("fail", |_| async move {
                    Err::<serde_json::Value, _>(HandlerError::fatal("no"))
                }),
        )
        .build()
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run_until(async {
        let _ = stopped.await;
    }));
    let mut registry = Registry::default();
    let client = Client::builder(&url)
        .metrics(ClientMetrics::register(&mut registry))
        .connect()
        .await
        .unwrap();
    for n in 0..2 {
        client.call_and_wait("Echo.echo", json!(n)).await.unwrap();
    }
    client
        .call_and_wait("Echo.fail", json!({}))
        .await
        .unwrap_err();
    // No worker serves `Idle`: the call times out.
    let short = CallOptions::timeout(Duration::from_millis(200));
    client
        .call("Idle.wait", json!({}))
        .options(short.clone())
        .response()
        .await
        .unwrap_err();
    let _ = stop.send(());
    let _ = running.await;

    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    for line in [
        r#"rpc_client_calls_total{rpc_service="Echo",rpc_method="echo",outcome="succeeded"} 2"#,
        r#"rpc_client_calls_total{rpc_service="Echo",rpc_method="fail",outcome="failed"} 1"#,
        r#"rpc_client_calls_total{rpc_service="Idle",rpc_method="wait",outcome="timeout"} 1"#,
        r#"rpc_client_call_duration_seconds_count{rpc_service="Echo",rpc_method="echo"} 2"#,
        "# TYPE rpc_client_call_duration_seconds histogram",
        "# UNIT rpc_client_call_duration_seconds seconds",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
}
