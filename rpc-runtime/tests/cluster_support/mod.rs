//! What the tests of a worker's completions and a client's pushes on a
//! real Redis Cluster share: a 3-master Cluster with queues prepared, a
//! reply to an inbox, the slot of a key, and taking every job of queues.
#![allow(dead_code)] // each test file uses some of these

use std::sync::Arc;
use std::time::{Duration, Instant};

use rpc_runtime::backend::{connect, Broker, BrokerConfig, Completion, Delivery, Reader};
use rpc_testkit::RedisCluster;

/// A completion that replies to `to` (an inbox), with a 600 s TTL.
pub fn reply(to: &str) -> Completion {
    Completion {
        reply: Some(b"{\"v\":1,\"id\":\"x\",\"ok\":1}".to_vec()),
        reply_to: Some(to.to_owned()),
        inbox_ttl: Some(Duration::from_secs(600)),
        ..Completion::default()
    }
}

/// A backend on `cluster` with `queues` prepared.
pub async fn backend_on(cluster: &RedisCluster, queues: &[&str]) -> Arc<dyn Broker> {
    let backend = connect(&BrokerConfig::new(cluster.cluster_url()))
        .await
        .expect("connect");
    let queues: Vec<String> = queues.iter().map(|q| q.to_string()).collect();
    backend.prepare_queues(&queues).await.unwrap();
    backend
}

/// A 3-master Cluster and a backend on it with `queues` prepared.
pub async fn cluster_with(queues: &[&str]) -> (RedisCluster, Arc<dyn Broker>) {
    rpc_testkit::require_redis_server();
    let cluster = RedisCluster::start(3).expect("cluster");
    let backend = backend_on(&cluster, queues).await;
    (cluster, backend)
}

pub fn slot_of(cluster: &RedisCluster, key: &str) -> String {
    cluster.cli(["CLUSTER", "KEYSLOT", key]).trim().to_owned()
}

/// Pushes `n` jobs onto each of `queues`, in turns, then takes them all
/// with `reader` (as consumer `c1`).
pub async fn pushed_and_taken(
    backend: &dyn Broker,
    reader: &mut dyn Reader,
    queues: &[String],
    n: usize,
) -> Vec<Delivery> {
    for i in 0..n {
        for queue in queues {
            backend
                .push_job(queue, format!("job {i}").as_bytes())
                .await
                .unwrap();
        }
    }
    take_all(reader, queues, n * queues.len()).await
}

/// Takes `n` jobs of `queues` with `reader` (as consumer `c1`), within
/// 20 s.
pub async fn take_all(reader: &mut dyn Reader, queues: &[String], n: usize) -> Vec<Delivery> {
    let mut taken = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while taken.len() < n {
        assert!(Instant::now() < deadline, "took {} of {n}", taken.len());
        taken.extend(
            reader
                .take_jobs(queues, "c1", n, Duration::from_secs(1))
                .await
                .unwrap(),
        );
    }
    taken
}
