//! Rate limits under the roles: the worker role asks `rate_limit.lua`
//! (its keys and commands) with nothing refused, also for a call that
//! waits for its turn, and no client may touch a limit's state.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_role_asks_its_limits_and_clients_cannot_touch_them() {
    let (redis, _dir) = redis_with_roles();
    let service = DynamicService::new("AclRate")
        .job("go", |req| async move { req.respond(req.data.clone()) })
        .rate_limit(Some("go"), "20/s".parse().unwrap())
        .rate_limit(None, "1000/m".parse().unwrap());
    let worker = Worker::builder(url(&redis, WORKER))
        .mount(service)
        .build()
        .await
        .expect("worker as the worker role");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(worker.run_until(async move {
        let _ = rx.await;
    }));
    let client = Client::connect(&url(&redis, CLIENT)).await.unwrap();
    // Five at once: four of them wait for their turns (50 ms apart).
    let calls = (0..5).map(|i| {
        let client = client.clone();
        async move {
            client
                .call("AclRate.go", json!(i))
                .options(opts())
                .response()
                .await
        }
    });
    for (i, answer) in futures_util::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(answer.expect("answered").data, json!(i));
    }
    let state = "rpc:{AclRate}:rate:go";
    assert_eq!(redis.cli(["HGET", state, "allowed"]).trim(), "5");
    assert_ne!(redis.cli(["HGET", state, "waited"]).trim(), "");
    assert_acl_log_empty(&redis);
    for role in [CLIENT, TENANT_A] {
        denied(&redis, role, &["HSET", state, "tat", "0"]);
        denied(&redis, role, &["DEL", state]);
        denied(&redis, role, &["ZADD", "rpc:{AclRate}:turns:go", "0", "x"]);
    }
    let _ = tx.send(());
    task.await.unwrap().unwrap();
}
