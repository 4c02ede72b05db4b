//! Pushes onto a queue whose slot moves to another master. A push is a
//! single command, and its doorbell ring (`SPUBLISH`) another, sent once
//! the push is answered (`doorbell.rs`): the cluster connection follows
//! `MOVED` and `ASK` for each, and a push runs once, on the master that
//! holds the queue now (no job lost, none queued twice), and is answered
//! as it ran. (In one pipeline with its ring, a push during a migration
//! ran on the target with `ASKING`, the ring after it answered `MOVED`,
//! and the `redis` crate sent the whole pipeline again: the caller was
//! told `ASK` for a job that was queued.)

use std::time::Duration;

mod cluster_support;
use cluster_support::{cluster_with, slot_of};

const QUEUE: &str = "Svc";
const JOBS: &str = "rpc:{Svc}:jobs";

/// A push onto a queue whose slot is being migrated (its keys already on
/// the target, where the source sends it with `ASK`). Found by a review:
/// in one pipeline with its ring it was answered `ASK` after it ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_during_a_slot_migration_runs_once_and_is_answered_ok() {
    let (cluster, backend) = cluster_with(&[QUEUE]).await;
    let jobs = JOBS;
    let intake = "rpc:{Svc}:intake";
    let slot = slot_of(&cluster, jobs);
    let source = cluster.master_of(jobs).expect("master");
    let target = *cluster
        .masters()
        .iter()
        .find(|m| m.port() != source.port())
        .expect("another master");
    cluster.start_moving_slot(&slot, source, target);

    let pushed = backend.push_job(QUEUE, b"the one job").await;
    let xadds = target.command_calls("xadd") + target.command_calls("rpush");

    cluster.finish_moving_slot(&slot, target);
    let queued: u64 = cluster.cli(["XLEN", jobs]).trim().parse().unwrap();
    let intaken: u64 = cluster.cli(["LLEN", intake]).trim().parse().unwrap_or(0);
    assert!(
        pushed.is_ok(),
        "the push ran (queued {queued}, intake {intaken}) but was answered {pushed:?}"
    );
    assert_eq!(
        queued + intaken,
        1,
        "one push, {} jobs queued ({xadds} push commands run on the target)",
        queued + intaken
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_to_a_moved_slot_goes_again_to_its_new_master_once() {
    let (cluster, backend) = cluster_with(&[QUEUE]).await;
    // A worker of several queues listens on the queue's doorbell, so the
    // client rings (a ring nobody hears silences the doorbell a while):
    // the ring is redirected too.
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
    let slot = slot_of(&cluster, JOBS);
    let new = cluster
        .masters()
        .into_iter()
        .find(|m| m.port() != old.port())
        .expect("another master");
    cluster.start_moving_slot(&slot, old, new);
    cluster.finish_moving_slot(&slot, new);
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
