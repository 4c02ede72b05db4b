//! Heartbeats under the roles: a worker writes its beat and its registry
//! entries and reads its control, with an empty `ACL LOG`, and nothing
//! more; a client can neither forge a beat nor quiet or stop a worker; an
//! operator lists the workers and writes the controls.

use rpc_runtime::inspect::{Liveness, WorkerControl};
use rpc_runtime::Inspector;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_beats_under_its_role_and_an_operator_quiets_it() {
    let (redis, _dir) = redis_with_roles();
    let running = worker(&redis).await;
    let operator = Inspector::connect(&url(&redis, OPERATOR), "rpc")
        .await
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    let id = loop {
        let workers = operator.workers(Some("Acl")).await.unwrap();
        if let Some(w) = workers.iter().find(|w| w.liveness == Liveness::Live) {
            break w.id.clone();
        }
        assert!(Instant::now() < deadline, "no live worker: {workers:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // The operator asks it to be quiet; the worker reads it under its role.
    let as_operator = Client::builder(url(&redis, OPERATOR))
        .connect()
        .await
        .unwrap();
    as_operator
        .control_worker(&id, WorkerControl::Quiet)
        .await
        .unwrap();
    loop {
        let workers = operator.workers(Some("Acl")).await.unwrap();
        let quiet = workers
            .iter()
            .any(|w| w.id == id && w.beat.as_ref().is_some_and(|b| b.state.as_str() == "quiet"));
        if quiet {
            break;
        }
        assert!(Instant::now() < deadline, "never quiet: {workers:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop(running).await;
    assert_acl_log_empty(&redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_forge_a_beat_nor_quiet_or_stop_a_worker() {
    let (redis, _dir) = redis_with_roles();
    let beat = r#"{"v":1,"id":"w","host":"h","pid":1,"version":"x","services":["Acl"],"concurrency":1,"in_flight":0,"started_ms":1,"beat_ms":1,"every_ms":5000,"ttl_ms":30000,"state":"running"}"#;
    for role in [CLIENT, TENANT_A] {
        for attack in [
            &["SET", "rpc:worker:{w}", beat, "PX", "30000"][..],
            &["ZADD", "rpc:{Acl}:workers", "1", "w"],
            &["ZREM", "rpc:{Acl}:workers", "w"],
            &["DEL", "rpc:worker:{w}"],
            &["SET", "rpc:worker:{w}:control", "stop"],
            &["GETRANGE", "rpc:worker:{w}", "0", "10"],
        ] {
            denied(&redis, role, attack);
        }
    }
    // A worker writes beats, not another's orders, nor keys beside them.
    for attack in [
        &["SET", "rpc:worker:{w}:control", "stop"][..],
        &["DEL", "rpc:worker:{w}:control"],
        &["SET", "rpc:worker:other", "x"],
        &["ZADD", "rpc:{Acl}:paused", "1", "w"],
        &["EXPIRE", "rpc:{Acl}:workers", "1"],
    ] {
        denied(&redis, WORKER, attack);
    }
    // The operator reads beats and writes controls, and cannot forge a beat.
    let ok = cli_as(
        &redis,
        OPERATOR,
        &["SET", "rpc:worker:{w}:control", "quiet"],
    );
    assert!(ok.contains("OK"), "{ok}");
    denied(&redis, OPERATOR, &["SET", "rpc:worker:{w}", beat]);
    denied(&redis, OPERATOR, &["ZADD", "rpc:{Acl}:workers", "1", "w"]);
}
