//! A worker's batch of completions on a real Redis Cluster, driven through
//! the `Reader` trait: grouped by key (one `RPUSH` per caller's inbox, then
//! each queue's acks), it must keep what job-by-job completion promised.
//! A refused push leaves exactly its jobs leased and its key untouched;
//! every other job is acked and its entry gone; one-way jobs are acked
//! whatever the replies did; and it takes a handful of commands, not a
//! script call per job and slot.

use std::time::Duration;

use rpc_runtime::backend::{CompleteError, Completion, CompletionStep, Delivery};
use rpc_testkit::RedisCluster;

mod cluster_support;
use cluster_support::{cluster_with, pushed_and_taken, reply};

const QUEUE: &str = "Svc";
const JOBS: &str = "rpc:{Svc}:jobs";

/// The bad inbox (a string) untouched, with no TTL; the good one holds
/// `replies`, with the TTL asked (600 s).
fn check_inboxes(cluster: &RedisCluster, replies: usize) {
    assert_eq!(cluster.cli(["GET", "rpc:inbox:{bad}"]).trim(), "not a list");
    assert_eq!(cluster.cli(["PTTL", "rpc:inbox:{bad}"]).trim(), "-1");
    assert_eq!(
        cluster.cli(["LLEN", "rpc:inbox:{good}"]).trim(),
        replies.to_string()
    );
    let ttl: u64 = cluster
        .cli(["PTTL", "rpc:inbox:{good}"])
        .trim()
        .parse()
        .unwrap();
    assert!(ttl > 500_000 && ttl <= 600_000, "the TTL asked: {ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_on_a_cluster_is_grouped_and_a_refused_push_keeps_its_jobs_leased() {
    let (cluster, backend) = cluster_with(&[QUEUE]).await;
    let queues = vec![QUEUE.to_owned()];
    let mut reader = backend.open_reader().await.unwrap();
    let taken = pushed_and_taken(&*backend, &mut *reader, &queues, 12).await;
    // Inboxes in other slots than the queue (and, likely, on other masters).
    cluster.cli(["SET", "rpc:inbox:{bad}", "not a list"]);
    let done: Vec<(Delivery, Completion)> = taken
        .iter()
        .enumerate()
        .map(|(i, delivery)| {
            let completion = match i % 4 {
                0 | 1 => reply("rpc:inbox:{good}"),
                2 => reply("rpc:inbox:{bad}"),
                _ => Completion::default(),
            };
            (delivery.clone(), completion)
        })
        .collect();
    // A token no read hands out fails alone (Redis would refuse the whole
    // `XACK` of its queue).
    let mut forged = taken[0].clone();
    forged.token = "not-an-id".into();
    let mut done = done;
    done.push((forged, Completion::default()));

    let out = reader
        .complete_and_take(&done, &queues, "c1", 10, Duration::from_millis(200))
        .await;

    let refused: Vec<usize> = out.not_completed.iter().map(|(i, _)| *i).collect();
    assert_eq!(
        refused,
        vec![2, 6, 10, 12],
        "the replies to the bad inbox, the forged id"
    );
    assert!(
        matches!(&out.not_completed[3].1, CompleteError::Refused { step: Some(CompletionStep::Ack), reason } if reason.contains("not a stream entry id")),
        "{:?}",
        out.not_completed[3]
    );
    let refused = &refused[..3];
    for (_, error) in &out.not_completed[..3] {
        assert!(
            matches!(error, CompleteError::Refused { step: Some(CompletionStep::Reply), reason } if reason.starts_with("WRONGTYPE")),
            "{error:?}"
        );
    }
    check_inboxes(&cluster, 6);
    // The refused are still leased and queued; every other entry is gone.
    let pending = cluster.cli(["XPENDING", JOBS, "workers", "-", "+", "20"]);
    let left = cluster.cli(["XRANGE", JOBS, "-", "+"]);
    for (i, delivery) in taken.iter().enumerate() {
        let kept = refused.contains(&i);
        assert_eq!(
            pending.contains(&delivery.token),
            kept,
            "job {i}: {pending}"
        );
        assert_eq!(left.contains(&delivery.token), kept, "job {i}: {left}");
    }
    assert!(out.taken.expect("the read").is_empty());
    // Grouped: two pushes, one TTL, one script call acking the queue's
    // jobs (`complete_batch.lua`: one `XACK`, the entries removed); job by
    // job it was a script call per job and slot (21 here).
    let calls = |command: &str| -> u64 {
        cluster
            .masters()
            .iter()
            .map(|m| m.command_calls(command))
            .sum()
    };
    assert_eq!(calls("rpush"), 2, "one push per inbox");
    assert_eq!(calls("pexpire"), 1, "a TTL only where a push succeeded");
    assert_eq!(calls("xack"), 1, "one ack for the queue");
    assert_eq!(calls("evalsha"), 1, "one script call for the queue's acks");
}

/// The leases of a master that failed over to a replica short of its last
/// entries (here: the stream emptied and written again), whose new, waiting
/// jobs took the ids the old master handed out: the worker's late batch
/// acks nothing there, and deletes nothing (a plain `XACK` + `XDEL`
/// deleted whatever the ids named).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_batch_on_a_cluster_never_deletes_a_waiting_job_that_took_its_id() {
    let (cluster, backend) = cluster_with(&[QUEUE]).await;
    let queues = [QUEUE.to_owned()];
    for n in [3, 12] {
        let mut reader = backend.open_reader().await.unwrap();
        let taken = pushed_and_taken(&*backend, &mut *reader, &queues, n).await;
        cluster.cli(["DEL", JOBS]);
        cluster.cli(["XGROUP", "CREATE", JOBS, "workers", "0", "MKSTREAM"]);
        for d in &taken {
            cluster.cli(["XADD", JOBS, &d.token, "m", "new, waiting"]);
        }
        let before = cluster.cli(["XRANGE", JOBS, "-", "+"]);
        let done: Vec<(Delivery, Completion)> = taken
            .iter()
            .enumerate()
            .map(|(i, d)| match i % 2 {
                0 => (d.clone(), reply("rpc:inbox:{late}")),
                _ => (d.clone(), Completion::default()),
            })
            .collect();
        let out = reader
            .complete_and_take(&done, &queues[..0], "c1", 1, Duration::from_millis(10))
            .await;
        assert!(out.not_completed.is_empty(), "{:?}", out.not_completed);
        assert_eq!(
            cluster.cli(["XRANGE", JOBS, "-", "+"]),
            before,
            "a late batch of {n} deleted waiting jobs"
        );
    }
}

/// A worker of queues on several masters sends its batch's acks and TTLs
/// with its next sweep of each master (`cluster_reader/sweep.rs`): the
/// same promises hold there. Every master's scripts flushed first, so the
/// acks meet `NOSCRIPT` on the sweep's connection and go again over the
/// shared one, which loads the script; the next batch's run where they are
/// sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_sent_with_the_next_sweep_keep_what_a_completion_promises() {
    // On different masters of a 3-master Cluster (slots 14756 and 6319).
    const OTHER: &str = "Oth";
    const OTHER_JOBS: &str = "rpc:{Oth}:jobs";
    let (cluster, backend) = cluster_with(&[QUEUE]).await;
    backend.prepare_queues(&[OTHER.to_owned()]).await.unwrap();
    let both = vec![QUEUE.to_owned(), OTHER.to_owned()];
    let mut reader = backend.open_reader().await.unwrap();
    cluster.cli(["SET", "rpc:inbox:{bad}", "not a list"]);
    let script_calls = |cluster: &RedisCluster| -> u64 {
        cluster
            .masters()
            .iter()
            .map(|m| m.command_calls("evalsha"))
            .sum()
    };
    for round in 0..2 {
        if round == 0 {
            for master in cluster.masters() {
                master.cli(["SCRIPT", "FLUSH"]);
            }
        }
        let taken = pushed_and_taken(&*backend, &mut *reader, &both, 6).await;
        let done: Vec<(Delivery, Completion)> = taken
            .iter()
            .enumerate()
            .map(|(i, delivery)| {
                let completion = match (round, i % 3) {
                    (0, 0) => reply("rpc:inbox:{good}"),
                    (0, 1) => reply("rpc:inbox:{bad}"),
                    _ => Completion::default(),
                };
                (delivery.clone(), completion)
            })
            .collect();
        let scripts_before = script_calls(&cluster);
        let out = reader
            .complete_and_take(&done, &both, "c1", 10, Duration::from_millis(200))
            .await;
        assert!(out.taken.expect("the read").is_empty());
        let refused: Vec<usize> = out.not_completed.iter().map(|(i, _)| *i).collect();
        let expected: Vec<usize> = match round {
            0 => (0..12).filter(|i| i % 3 == 1).collect(),
            _ => Vec::new(),
        };
        assert_eq!(refused, expected, "round {round}: {:?}", out.not_completed);
        for (_, error) in &out.not_completed {
            assert!(
                matches!(error, CompleteError::Refused { step: Some(CompletionStep::Reply), reason } if reason.starts_with("WRONGTYPE")),
                "{error:?}"
            );
        }
        // The refused are still leased and queued; every other entry is
        // gone, on both masters (whose ids may be the same).
        for (i, delivery) in taken.iter().enumerate() {
            let kept = refused.contains(&i);
            let jobs = if delivery.queue == QUEUE {
                JOBS
            } else {
                OTHER_JOBS
            };
            let pending = cluster.cli(["XPENDING", jobs, "workers", "-", "+", "20"]);
            let left = cluster.cli(["XRANGE", jobs, "-", "+"]);
            assert_eq!(
                pending.contains(&delivery.token),
                kept,
                "round {round}, job {i}: {pending}"
            );
            assert_eq!(
                left.contains(&delivery.token),
                kept,
                "round {round}, job {i}: {left}"
            );
        }
        if round == 0 {
            check_inboxes(&cluster, 4);
            // Refused on the sweep's connection, then run over the shared
            // one: more than one script call a queue.
            assert!(script_calls(&cluster) - scripts_before > 2);
        } else {
            // Loaded now: one script call per queue, where it was sent.
            assert_eq!(script_calls(&cluster) - scripts_before, 2);
        }
    }
}
