//! The schema's `#[group_by]` and `#[group_limit]` end to end: the typed
//! client sends each call under its parameter's value as the group key,
//! and workers that set no limit of their own apply the schema's, on Redis
//! and in memory.

use std::time::Duration;

use rpc_runtime::{Client, Worker};
use rpc_testkit::RedisServer;
use tenants::{Builder, ReportsClient, ReportsServer};

async fn limits_from_the_schema(url: &str) {
    let handler = Builder::default();
    let mut stops = Vec::new();
    let mut tasks = Vec::new();
    // Two workers with room for sixteen calls each: only the schema's
    // limits hold the keys back.
    for _ in 0..2 {
        let worker = Worker::builder(url)
            .mount(ReportsServer::new(handler.clone()))
            .concurrency(16)
            .build()
            .await
            .expect("worker starts");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tasks.push(tokio::spawn(worker.run_until(async move {
            let _ = rx.await;
        })));
        stops.push(tx);
    }
    let reports = ReportsClient::new(Client::connect(url).await.unwrap());
    let builds = [
        "acme", "acme", "acme", "acme", "acme", "acme", "initech", "initech",
    ]
    .iter()
    .enumerate()
    .map(|(i, tenant)| {
        reports
            .build(*tenant, i as u32)
            .timeout(Duration::from_secs(20))
    });
    let pages = futures_join(builds).await;
    assert_eq!(pages, (0..8).collect::<Vec<u32>>());
    let touches: Vec<_> = (0..6).map(|_| reports.touch(42u64)).collect();
    for touch in touches {
        touch.await.unwrap();
    }
    // One-way calls end out of sight: wait for the six to have run.
    let t0 = std::time::Instant::now();
    while handler.running.lock().unwrap().most("42") == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the touches never ran"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for stop in stops {
        let _ = stop.send(());
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let running = handler.running.lock().unwrap();
    assert_eq!(running.most("acme"), 2, "#[group_limit = 2]");
    assert!(running.most("initech") <= 2);
    assert_eq!(running.most("42"), 1, "no #[group_limit]: one at a time");
}

/// Awaits every call, in order.
async fn futures_join<F: std::future::IntoFuture<Output = Result<u32, rpc_runtime::CallError>>>(
    calls: impl Iterator<Item = F>,
) -> Vec<u32>
where
    F::IntoFuture: Send + 'static,
{
    let handles: Vec<_> = calls.map(|c| tokio::spawn(c.into_future())).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap().unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schemas_group_limits_hold_over_redis() {
    let redis = RedisServer::start().expect("start redis-server");
    limits_from_the_schema(&redis.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schemas_group_limits_hold_in_memory() {
    limits_from_the_schema("memory://tenants").await;
}

#[test]
fn a_bad_key_from_a_parameter_is_refused_at_the_client() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let reports = ReportsClient::new(Client::connect("memory://tenants-bad").await.unwrap());
        let err = reports.build("", 1).await.unwrap_err();
        assert!(err.to_string().contains("group key"), "{err}");
    });
}
