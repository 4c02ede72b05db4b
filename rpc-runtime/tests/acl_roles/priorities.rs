//! Priorities under the roles: a client that may not `XADD` sends calls
//! at several priorities through the intake, the worker role moves them
//! onto their lanes, learns the lanes (`TYPE` in `poll.lua`) and reads
//! them, with nothing refused; no client may write a lane.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_role_reads_the_lanes_and_clients_cannot_write_them() {
    let (redis, _dir) = redis_with_roles();
    let service = DynamicService::new("AclPrio")
        .job("go", |req| async move { req.respond(req.data.clone()) });
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
    for p in [1u8, 3, 5] {
        let answer = client
            .call("AclPrio.go", json!(p))
            .options(opts())
            .priority(p)
            .response()
            .await
            .expect("answered");
        assert_eq!(answer.data, json!(p));
    }
    // The urgent and the least urgent went through their own lanes.
    for lane in ["rpc:{AclPrio}:jobs:1", "rpc:{AclPrio}:jobs:5"] {
        assert_eq!(redis.cli(["EXISTS", lane]).trim(), "1", "{lane}");
    }
    assert_acl_log_empty(&redis);
    for role in [CLIENT, TENANT_A] {
        denied(
            &redis,
            role,
            &["XADD", "rpc:{AclPrio}:jobs:1", "*", "m", "{}"],
        );
        denied(&redis, role, &["DEL", "rpc:{AclPrio}:jobs:5"]);
    }
    let _ = tx.send(());
    task.await.unwrap().unwrap();
}
