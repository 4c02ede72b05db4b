//! Every job of `schema/everything.rpc` (and `common.rpc`) called over a
//! private redis-server: `everything::check::every_job` (typed calls for each
//! shape of job and each error, untyped calls that pin the wire names) against
//! the Rust worker, and the JSON Schemas reachable at run time. The same
//! checks run against the Python worker through the `everything-check`
//! binary (python/tests/test_interop_rust_client.py).

use std::time::Duration;

use everything::common::HealthServer;
use everything::everything::AdminServer;
use everything::{Canvas, DrawingServer, Healthy};
use rpc_runtime::{Client, Worker};
use rpc_testkit::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_job_over_redis() {
    let redis = RedisServer::start().expect("start redis-server");
    let url = redis.url();
    let canvas = Canvas::with_capacity(everything::check::CAPACITY);
    let worker = Worker::builder(&url)
        .mount(DrawingServer::new(canvas.clone()))
        .mount(AdminServer::new(canvas))
        .mount(HealthServer::new(Healthy))
        .build()
        .await
        .expect("worker connects");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run_until(async {
        let _ = stopped.await;
    }));
    let client = Client::builder(&url)
        .default_timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap();
    let passed = everything::check::every_job(&client)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(passed.len() >= 10, "{passed:?}");

    let _ = stop.send(());
    running.await.unwrap().unwrap();
}

#[test]
fn json_schemas_cover_every_job() {
    let schemas = everything::everything::json_schemas();
    let names: Vec<String> = schemas
        .iter()
        .map(|s| format!("{}.{}", s.service, s.job))
        .collect();
    for job in [
        "Drawing.count",
        "Drawing.type",
        "Drawing.headerValue",
        "Drawing.shape.rotate",
        "Admin.stats",
    ] {
        assert!(
            names.contains(&job.to_owned()),
            "{job} missing from {names:?}"
        );
    }
    let draw = schemas.iter().find(|s| s.job == "draw").unwrap();
    assert!(draw.error.is_some(), "draw declares an application error");
    let request = serde_json::to_string(&draw.request).unwrap();
    assert!(
        request.contains("\"shape\"") && request.contains("\"color\""),
        "{request}"
    );
    let rotate = schemas.iter().find(|s| s.job == "shape.rotate").unwrap();
    assert!(serde_json::to_string(&rotate.request)
        .unwrap()
        .contains("\"deg\""));
    assert_eq!(everything::common::json_schemas().len(), 1);
}
