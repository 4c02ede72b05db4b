//! A push whose queue's slot moved to another master since the client
//! last read the slot map. On a Cluster a push and its doorbell ring go in
//! one pipeline (`doorbell.rs`): the old master answers `MOVED` to both,
//! and the push must then run once, on the new master (no job lost, none
//! queued twice), whether the `redis` crate's cluster connection sends the
//! pipeline again itself (as 1.8 does) or the doorbell sends the push
//! again on its own.

use std::time::Duration;

use rpc_runtime::backend::{connect, BrokerConfig};
use rpc_testkit::{RedisCluster, RedisServer};

const QUEUE: &str = "Svc";
const JOBS: &str = "rpc:{Svc}:jobs";

fn node_id(node: &RedisServer) -> String {
    node.cli(["CLUSTER", "MYID"]).trim().to_owned()
}

/// Moves `slot` and its keys from `from` to `to`, and tells every node.
fn move_slot(cluster: &RedisCluster, slot: &str, from: &RedisServer, to: &RedisServer) {
    let (from_id, to_id) = (node_id(from), node_id(to));
    to.cli(["CLUSTER", "SETSLOT", slot, "IMPORTING", &from_id]);
    from.cli(["CLUSTER", "SETSLOT", slot, "MIGRATING", &to_id]);
    let keys = from.cli(["CLUSTER", "GETKEYSINSLOT", slot, "100"]);
    for key in keys.lines().map(str::trim).filter(|k| !k.is_empty()) {
        let port = to.port().to_string();
        let moved = from.cli(["MIGRATE", "127.0.0.1", &port, key, "0", "5000"]);
        assert_eq!(moved.trim(), "OK", "MIGRATE {key}: {moved}");
    }
    for node in cluster.masters() {
        node.cli(["CLUSTER", "SETSLOT", slot, "NODE", &to_id]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_to_a_moved_slot_goes_again_to_its_new_master_once() {
    rpc_testkit::require_redis_server();
    let cluster = RedisCluster::start(3).expect("cluster");
    let backend = connect(&BrokerConfig::new(cluster.cluster_url()))
        .await
        .expect("connect");
    backend.prepare_queues(&[QUEUE.to_owned()]).await.unwrap();
    // A worker of several queues listens on the queue's doorbell, so the
    // client rings (a ring nobody hears silences the doorbell a while).
    let old = cluster.master_of(JOBS).expect("the queue's master");
    let channel = "rpc:{Svc}:ready";
    let mut listener = old
        .cli_command()
        .args(["SSUBSCRIBE", channel])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-cli");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !old
        .cli(["PUBSUB", "SHARDNUMSUB", channel])
        .lines()
        .any(|l| l.trim() == "1")
    {
        assert!(std::time::Instant::now() < deadline, "never subscribed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The client learns the slot map with a first push.
    backend.push_job(QUEUE, b"before").await.unwrap();
    let slot = cluster.cli(["CLUSTER", "KEYSLOT", JOBS]).trim().to_owned();
    let new = cluster
        .masters()
        .into_iter()
        .find(|m| m.port() != old.port())
        .expect("another master");
    move_slot(&cluster, &slot, old, new);
    assert_eq!(new.cli(["XLEN", JOBS]).trim(), "1", "the stream moved");

    // The client's map still names the old master.
    tokio::time::timeout(Duration::from_secs(30), backend.push_job(QUEUE, b"after"))
        .await
        .expect("the push answered in time")
        .expect("the push went again to the new master");
    assert_eq!(
        new.cli(["XLEN", JOBS]).trim(),
        "2",
        "queued once, on the new master"
    );
    assert_eq!(
        old.cli(["DBSIZE"]).trim(),
        "0",
        "nothing left on the old one"
    );
    let _ = listener.kill();
    let _ = listener.wait();
}
