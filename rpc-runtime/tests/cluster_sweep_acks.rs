//! A Cluster worker's acks and inbox TTLs sent with its next sweep of each
//! master (`cluster_reader/sweep.rs`), when that master cannot take them:
//! a killed sweep connection, a failover, a master down, a slot being
//! migrated or moved, a queue no longer read. Each goes again over the
//! shared connection or is reported; none is lost or applied twice.
//! (Written by an adversarial review of that change.)

use std::sync::Arc;
use std::time::Duration;

use rpc_runtime::backend::{Broker, CompleteError, Completion, Delivery, Reader};
use rpc_testkit::RedisCluster;

mod cluster_support;
use cluster_support::{backend_on, cluster_with, pushed_and_taken, reply, slot_of, take_all};

const QUEUE: &str = "Svc";
const OTHER: &str = "Oth";

/// An inbox key on the master of `near` (a key), by trying names.
fn inbox_on_master_of(cluster: &RedisCluster, near: &str) -> String {
    let port = cluster.master_of(near).unwrap().port();
    (0..1000)
        .map(|i| format!("rpc:inbox:{{c{i}}}"))
        .find(|k| cluster.master_of(k).unwrap().port() == port)
        .expect("an inbox there")
}

/// dd1e315: a TTL sent with the sweep to the master the worker's slot map
/// names, whose slot has since moved: `MOVED`, and the TTL is only logged,
/// never sent again over the shared connection (as the acks are): the
/// caller's inbox is left without a TTL, for ever if the caller died.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbox_ttl_refused_with_moved_on_the_sweep_is_sent_again() {
    let (cluster, backend) = cluster_with(&[QUEUE, OTHER]).await;
    let both = vec![QUEUE.to_owned(), OTHER.to_owned()];
    let mut reader = backend.open_reader().await.unwrap();
    let inbox = inbox_on_master_of(&cluster, "rpc:{Svc}:jobs");
    for queue in &both {
        backend.push_job(queue, b"job").await.unwrap();
    }
    // The worker's ClusterTaker fetches the map and links both masters.
    let taken = take_all(&mut *reader, &both, 2).await;
    // The inbox's slot moves to another master (nothing in it yet).
    let slot = slot_of(&cluster, &inbox);
    let source = cluster.master_of(&inbox).unwrap();
    let target = *cluster
        .masters()
        .iter()
        .find(|m| m.port() != source.port())
        .unwrap();
    cluster.start_moving_slot(&slot, source, target);
    cluster.finish_moving_slot(&slot, target);

    let done: Vec<(Delivery, Completion)> =
        taken.iter().map(|d| (d.clone(), reply(&inbox))).collect();
    let out = reader
        .complete_and_take(&done, &both, "c1", 10, Duration::from_millis(200))
        .await;
    assert!(out.not_completed.is_empty(), "{:?}", out.not_completed);
    assert_eq!(cluster.cli(["LLEN", &inbox]).trim(), "2");
    let ttl: i64 = cluster.cli(["PTTL", &inbox]).trim().parse().unwrap();
    assert!(ttl > 500_000, "the inbox's TTL: {ttl}");
}

/// Client ids on `node` whose last command was `cmd`.
fn clients_by_cmd(node: &rpc_testkit::RedisServer, cmd: &str) -> Vec<String> {
    node.cli(["CLIENT", "LIST"])
        .lines()
        .filter(|l| l.split(' ').any(|f| f == format!("cmd={cmd}")))
        .filter_map(|l| {
            l.split(' ')
                .find_map(|f| f.strip_prefix("id=").map(str::to_owned))
        })
        .collect()
}

/// Checks that every job of `taken` not in `not_completed` is gone (acked,
/// entry removed) and every one in it is still pending.
fn check_settled(cluster: &RedisCluster, taken: &[Delivery], not_completed: &[usize]) {
    for (i, d) in taken.iter().enumerate() {
        let jobs = format!("rpc:{{{}}}:jobs", d.queue);
        let pending = cluster.cli(["XPENDING", &jobs, "workers", "-", "+", "100"]);
        let left = cluster.cli(["XRANGE", &jobs, "-", "+"]);
        let kept = not_completed.contains(&i);
        assert_eq!(
            pending.contains(&d.token),
            kept,
            "job {i} {}: {pending}",
            d.token
        );
        assert_eq!(left.contains(&d.token), kept, "job {i} {}: {left}", d.token);
    }
}

/// dd1e315: the sweep's connections killed (CLIENT KILL) after the jobs
/// were taken and before the batch completes: what the links carried goes
/// again over the shared connection; every job acked once, its reply
/// written once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_on_a_killed_sweep_link_go_again_and_complete_every_job() {
    let (cluster, backend) = cluster_with(&[QUEUE, OTHER]).await;
    let both = vec![QUEUE.to_owned(), OTHER.to_owned()];
    let mut reader = backend.open_reader().await.unwrap();
    let taken = pushed_and_taken(&*backend, &mut *reader, &both, 5).await;
    let mut killed = 0;
    for master in cluster.masters() {
        for id in clients_by_cmd(master, "xreadgroup") {
            master.cli(["CLIENT", "KILL", "ID", &id]);
            killed += 1;
        }
    }
    assert!(killed >= 2, "the sweep links: {killed}");
    let done: Vec<(Delivery, Completion)> = taken
        .iter()
        .map(|d| (d.clone(), reply("rpc:inbox:{k1}")))
        .collect();
    let out = reader
        .complete_and_take(&done, &both, "c1", 10, Duration::from_millis(200))
        .await;
    let failed: Vec<usize> = out.not_completed.iter().map(|(i, _)| *i).collect();
    assert!(failed.is_empty(), "{:?}", out.not_completed);
    check_settled(&cluster, &taken, &failed);
    assert_eq!(cluster.cli(["LLEN", "rpc:inbox:{k1}"]).trim(), "10");
    let ttl: i64 = cluster
        .cli(["PTTL", "rpc:inbox:{k1}"])
        .trim()
        .parse()
        .unwrap();
    assert!(ttl > 500_000, "ttl {ttl}");
}

/// Completes every job of `taken` with a reply to one inbox, and reads
/// `queues` again: the indices of the jobs not completed, and why.
async fn reply_to_all(
    reader: &mut dyn Reader,
    taken: &[Delivery],
    queues: &[String],
) -> (Vec<usize>, Vec<(usize, CompleteError)>) {
    let done: Vec<(Delivery, Completion)> = taken
        .iter()
        .map(|d| (d.clone(), reply("rpc:inbox:{k1}")))
        .collect();
    let out = reader
        .complete_and_take(&done, queues, "c1", 10, Duration::from_millis(200))
        .await;
    let failed = out.not_completed.iter().map(|(i, _)| *i).collect();
    (failed, out.not_completed)
}

/// A 3-master Cluster with a replica each, both queues prepared, and five
/// jobs of each leased by a reader: the cluster, the backend, the reader,
/// the queues and the deliveries.
async fn leased_on_replicated_masters() -> (
    RedisCluster,
    Arc<dyn Broker>,
    Box<dyn Reader>,
    Vec<String>,
    Vec<Delivery>,
) {
    rpc_testkit::require_redis_server();
    let cluster =
        RedisCluster::start_with_replicas(3, 1, Duration::from_millis(1000)).expect("cluster");
    let backend = backend_on(&cluster, &[QUEUE, OTHER]).await;
    let both = vec![QUEUE.to_owned(), OTHER.to_owned()];
    let mut reader = backend.open_reader().await.unwrap();
    let taken = pushed_and_taken(&*backend, &mut *reader, &both, 5).await;
    (cluster, backend, reader, both, taken)
}

/// dd1e315: a queue's master SIGKILLed after its jobs were leased (and the
/// leases replicated), a replica takes over, then the batch completes: the
/// link to the dead master is lost; a job reported completed must be
/// acked on the new master (else it runs again), one not completed must
/// still be pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_after_a_failover_are_acked_on_the_new_master_or_reported() {
    let (cluster, _backend, mut reader, both, taken) = leased_on_replicated_masters().await;
    let jobs = "rpc:{Svc}:jobs";
    let master = cluster.master_of(jobs).unwrap();
    master.cli(["WAIT", "1", "2000"]);
    master.kill().unwrap();
    cluster
        .wait_for_failover(jobs, Duration::from_secs(30))
        .unwrap();
    let (failed, _) = reply_to_all(&mut *reader, &taken, &both).await;
    check_settled(&cluster, &taken, &failed);
}

/// dd1e315: the queue's slot half migrated (its stream already on the
/// target) after the jobs were taken: the sweep's ack answers `ASK` and
/// goes again over the shared connection, which follows it; every job is
/// acked once the migration ends, none reported completed and left
/// pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_refused_with_ask_on_the_sweep_are_acked_on_the_target() {
    let (cluster, backend) = cluster_with(&[QUEUE, OTHER]).await;
    let both = vec![QUEUE.to_owned(), OTHER.to_owned()];
    let mut reader = backend.open_reader().await.unwrap();
    let taken = pushed_and_taken(&*backend, &mut *reader, &both, 4).await;
    let jobs = "rpc:{Svc}:jobs";
    let slot = slot_of(&cluster, jobs);
    let source = cluster.master_of(jobs).unwrap();
    let other_master = cluster.master_of("rpc:{Oth}:jobs").unwrap().port();
    let target = *cluster
        .masters()
        .iter()
        .find(|m| m.port() != source.port() && m.port() != other_master)
        .unwrap();
    cluster.start_moving_slot(&slot, source, target);
    let (failed, not_completed) = reply_to_all(&mut *reader, &taken, &both).await;
    cluster.finish_moving_slot(&slot, target);
    check_settled(&cluster, &taken, &failed);
    assert!(failed.is_empty(), "{not_completed:?}");
}

/// dd1e315: the queue's master SIGKILLed just before the batch completes
/// (no replica has taken over yet): the sweep link is lost, its acks go
/// again over the shared connection. Whatever is reported completed must
/// be acked on the master that takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_while_a_master_is_down_are_acked_or_reported() {
    let (cluster, _backend, mut reader, both, taken) = leased_on_replicated_masters().await;
    let inbox = inbox_on_master_of(&cluster, "rpc:{Oth}:jobs");
    let jobs = "rpc:{Svc}:jobs";
    let master = cluster.master_of(jobs).unwrap();
    master.cli(["WAIT", "1", "2000"]);
    master.kill().unwrap();
    let done: Vec<(Delivery, Completion)> =
        taken.iter().map(|d| (d.clone(), reply(&inbox))).collect();
    let started = std::time::Instant::now();
    let out = reader
        .complete_and_take(&done, &both, "c1", 10, Duration::from_millis(200))
        .await;
    eprintln!(
        "took {:?}; not completed: {:?}",
        started.elapsed(),
        out.not_completed
    );
    let failed: Vec<usize> = out.not_completed.iter().map(|(i, _)| *i).collect();
    cluster
        .wait_for_failover(jobs, Duration::from_secs(30))
        .unwrap();
    check_settled(&cluster, &taken, &failed);
}

/// dd1e315: the worker's queues change between the take and the batch's
/// completion (one dropped, one added): the acks of the dropped queue's
/// jobs have no link and go over the shared connection; all are acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_of_a_queue_no_longer_read_are_still_sent() {
    let (cluster, backend) = cluster_with(&[QUEUE, OTHER, "Third"]).await;
    let both = vec![QUEUE.to_owned(), OTHER.to_owned()];
    let mut reader = backend.open_reader().await.unwrap();
    let taken = pushed_and_taken(&*backend, &mut *reader, &both, 4).await;
    let now = vec![QUEUE.to_owned(), "Third".to_owned()];
    let done: Vec<(Delivery, Completion)> = taken
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let c = if i % 2 == 0 {
                reply("rpc:inbox:{k1}")
            } else {
                Completion::default()
            };
            (d.clone(), c)
        })
        .collect();
    let out = reader
        .complete_and_take(&done, &now, "c1", 10, Duration::from_millis(200))
        .await;
    let failed: Vec<usize> = out.not_completed.iter().map(|(i, _)| *i).collect();
    assert!(failed.is_empty(), "{:?}", out.not_completed);
    check_settled(&cluster, &taken, &failed);
    let ttl: i64 = cluster
        .cli(["PTTL", "rpc:inbox:{k1}"])
        .trim()
        .parse()
        .unwrap();
    assert!(ttl > 500_000, "ttl {ttl}");
}
