//! The worker's common completions (replies and acks) ride on its next read
//! batched per queue: a few acks alone as one `XACK` + `XDEL`, more acks
//! alone as one `XACK` + `trim_acked.lua` (owed until a few hundred ids or
//! the next read that waits for jobs), a lone reply as
//! `reply_and_ack.lua`, anything larger as one `complete_batch.lua` call;
//! both scripts trim the acked entries from the stream
//! (rpc-bench/RESULTS.md). Driven through the backend's `Reader` against a
//! private redis-server, as rpc-runtime/tests/redis_reader.rs does: every
//! completion of a mixed batch takes effect, in the right place; the trim
//! removes exactly the acked entries, never a job still queued or leased;
//! what a trim leaves goes with the next read; a refused batch is reported
//! for each of its jobs, still leased.

use std::sync::Arc;
use std::time::Duration;

use rpc_runtime::backend::{
    connect, Broker, BrokerConfig, CompleteError, Completion, CompletionStep, Delivery, Reader,
};
use rpc_testkit::RedisServer;

const QUEUE: &str = "Svc";
const OTHER: &str = "Other";

async fn taken(
    server: &RedisServer,
    jobs: &[(&str, &[u8])],
) -> (Arc<dyn Broker>, Box<dyn Reader>, Vec<Delivery>) {
    let backend = connect(&BrokerConfig::new(server.url()))
        .await
        .expect("connect");
    let queues = vec![QUEUE.to_owned(), OTHER.to_owned()];
    backend.prepare_queues(&queues).await.unwrap();
    for (queue, payload) in jobs {
        backend.push_job(queue, payload).await.unwrap();
    }
    let mut reader = backend.open_reader().await.unwrap();
    let out = take(&mut *reader, jobs.len()).await;
    (backend, reader, out)
}

/// Takes `n` jobs from the two queues.
async fn take(reader: &mut dyn Reader, n: usize) -> Vec<Delivery> {
    take_as(reader, "c1", n).await
}

/// Takes `n` jobs from the two queues as `consumer`.
async fn take_as(reader: &mut dyn Reader, consumer: &str, n: usize) -> Vec<Delivery> {
    let queues = vec![QUEUE.to_owned(), OTHER.to_owned()];
    let mut out = Vec::new();
    while out.len() < n {
        let more = reader
            .take_jobs(&queues, consumer, n - out.len(), Duration::from_secs(1))
            .await
            .unwrap();
        assert!(!more.is_empty(), "jobs not taken: {out:?}");
        out.extend(more);
    }
    out
}

/// The ids of a stream's entries, oldest first.
fn entry_ids(server: &RedisServer, queue: &str) -> Vec<String> {
    server
        .cli(["XRANGE", &format!("rpc:{{{queue}}}:jobs"), "-", "+"])
        .lines()
        .filter(|l| l.contains('-') && l.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(str::to_owned)
        .collect()
}

fn answer(inbox: &str) -> Completion {
    Completion {
        reply: Some(b"{\"v\":1,\"id\":\"x\",\"ok\":1}".to_vec()),
        reply_to: Some(inbox.to_owned()),
        ..Completion::default()
    }
}

fn pending(server: &RedisServer, queue: &str) -> String {
    server.cli(["XPENDING", &format!("rpc:{{{queue}}}:jobs"), "workers"])
}

/// Asserts how many leases a queue holds (a digit: the count's first).
fn assert_pending(server: &RedisServer, queue: &str, count: char) {
    let pending = pending(server, queue);
    assert!(pending.starts_with(count), "{queue}: {pending}");
}

/// `n` jobs queued on [`QUEUE`], none taken yet: the backend, a reader,
/// and the entries' ids, oldest first.
async fn backlog(
    server: &RedisServer,
    n: usize,
) -> (Arc<dyn Broker>, Box<dyn Reader>, Vec<String>) {
    let (backend, reader, _) = taken(server, &[]).await;
    for p in payloads(n) {
        backend.push_job(QUEUE, &p).await.unwrap();
    }
    (backend, reader, entry_ids(server, QUEUE))
}

/// `n` distinct job messages.
fn payloads(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("job {i}").into_bytes()).collect()
}

/// What one-way jobs that ran complete with.
fn acks(taken: &[Delivery]) -> Vec<(Delivery, Completion)> {
    taken
        .iter()
        .map(|d| (d.clone(), Completion::default()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_only_completions_of_two_queues_and_a_reply_all_take_effect() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let jobs: [(&str, &[u8]); 4] = [
        (QUEUE, b"one"),
        (QUEUE, b"two"),
        (OTHER, b"three"),
        (QUEUE, b"four"),
    ];
    let (backend, mut reader, taken) = taken(&server, &jobs).await;
    let done: Vec<(Delivery, Completion)> = taken
        .iter()
        .map(|d| {
            let completion = if d.payload == b"two" {
                Completion {
                    reply: Some(b"{\"v\":1,\"id\":\"x\",\"ok\":1}".to_vec()),
                    reply_to: Some("rpc:inbox:{c}".to_owned()),
                    ..Completion::default()
                }
            } else {
                // What a one-way job that ran completes with.
                Completion::default()
            };
            (d.clone(), completion)
        })
        .collect();
    backend.push_job(QUEUE, b"five").await.unwrap();
    let queues = vec![QUEUE.to_owned(), OTHER.to_owned()];
    let out = reader
        .complete_and_take(&done, &queues, "c1", 10, Duration::from_millis(500))
        .await;
    assert!(out.not_completed.is_empty(), "{:?}", out.not_completed);
    let next = out.taken.expect("the read succeeds");
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].payload, b"five");
    // The next read deletes what XACK counted.
    reader
        .take_jobs(&queues, "c1", 10, Duration::from_millis(10))
        .await
        .unwrap();
    // Acked and deleted: only the job taken since is left, in each queue.
    assert_eq!(server.cli(["XLEN", "rpc:{Svc}:jobs"]).trim(), "1");
    assert_eq!(server.cli(["XLEN", "rpc:{Other}:jobs"]).trim(), "0");
    assert_pending(&server, QUEUE, '1');
    assert_pending(&server, OTHER, '0');
    assert_eq!(server.cli(["LLEN", "rpc:inbox:{c}"]).trim(), "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_ack_batch_is_reported_for_each_job_and_a_vanished_group_is_no_refusal() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let jobs: [(&str, &[u8]); 3] = [(QUEUE, b"one"), (QUEUE, b"two"), (OTHER, b"three")];
    let (_backend, mut reader, taken) = taken(&server, &jobs).await;
    let done: Vec<(Delivery, Completion)> = acks(&taken);
    // The Svc stream replaced by a string: its acks are refused (WRONGTYPE);
    // the Other stream deleted: NOGROUP on its ack, which is no refusal.
    server.cli(["DEL", "rpc:{Svc}:jobs"]);
    server.cli(["SET", "rpc:{Svc}:jobs", "not a stream"]);
    server.cli(["DEL", "rpc:{Other}:jobs"]);
    let queues = vec![OTHER.to_owned()];
    let out = reader
        .complete_and_take(&done, &queues, "c1", 10, Duration::from_millis(100))
        .await;
    let mut refused: Vec<usize> = Vec::new();
    for (i, e) in &out.not_completed {
        assert_eq!(taken[*i].queue, QUEUE, "{e:?}");
        assert!(
            matches!(e, CompleteError::Refused { step: Some(CompletionStep::Ack), reason } if reason.starts_with("WRONGTYPE")),
            "{e:?}"
        );
        refused.push(*i);
    }
    let svc: Vec<usize> = (0..taken.len())
        .filter(|&i| taken[i].queue == QUEUE)
        .collect();
    assert_eq!(refused, svc, "each of Svc's jobs, in order");
    assert!(out.taken.is_ok(), "{:?}", out.taken);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_batch_trims_exactly_the_acked_entries() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    // 30 taken (leased), 10 still queued.
    let (_backend, mut reader, all) = backlog(&server, 40).await;
    assert_eq!(all.len(), 40);
    let leased = take(&mut *reader, 30).await;
    // Jobs 10..15 stay leased (still running): the oldest leased entry is
    // older than most of what is acked, so the trim stops there and the
    // acked entries past it are deleted one by one.
    let done: Vec<(Delivery, Completion)> = leased
        .iter()
        .enumerate()
        .filter(|(i, _)| !(10..15).contains(i))
        .map(|(i, d)| {
            let completion = match i % 3 {
                0 => answer("rpc:inbox:{a}"),
                1 => answer("rpc:inbox:{b}"),
                _ => Completion::default(),
            };
            (d.clone(), completion)
        })
        .collect();
    // The read that follows looks at the other queue only.
    let queues = vec![OTHER.to_owned()];
    let out = reader
        .complete_and_take(&done, &queues, "c1", 1, Duration::from_millis(10))
        .await;
    assert!(out.not_completed.is_empty(), "{:?}", out.not_completed);
    let mut left: Vec<String> = all[10..15].to_vec();
    left.extend_from_slice(&all[30..]);
    assert_eq!(
        entry_ids(&server, QUEUE),
        left,
        "the leased and the queued, nothing else"
    );
    assert_eq!(server.cli(["LLEN", "rpc:inbox:{a}"]).trim(), "9");
    assert_eq!(server.cli(["LLEN", "rpc:inbox:{b}"]).trim(), "8");
    assert_pending(&server, QUEUE, '5');
    let ttl: i64 = server
        .cli(["PTTL", "rpc:inbox:{a}"])
        .trim()
        .parse()
        .unwrap();
    assert!(ttl > 0, "the inbox expires: {ttl}");
    let stats = server.cli(["INFO", "commandstats"]);
    assert!(
        stats.contains("cmdstat_xtrim:calls=1,"),
        "trimmed, once: {stats}"
    );

    // The rest taken and completed, the oldest leased among them: the
    // stream is empty.
    let rest = take(&mut *reader, 10).await;
    let done: Vec<(Delivery, Completion)> = leased[10..15]
        .iter()
        .chain(&rest)
        .map(|d| (d.clone(), Completion::default()))
        .collect();
    let out = reader
        .complete_and_take(&done, &queues, "c1", 1, Duration::from_millis(10))
        .await;
    assert!(out.not_completed.is_empty(), "{:?}", out.not_completed);
    assert_pending(&server, QUEUE, '0');
    // Fifteen acks alone: acked, their trim owed until the reader's next
    // read that waits for jobs.
    assert_eq!(entry_ids(&server, QUEUE).len(), 15);
    reader
        .take_jobs(&queues, "c1", 1, Duration::from_millis(10))
        .await
        .unwrap();
    assert!(
        entry_ids(&server, QUEUE).is_empty(),
        "{:?}",
        entry_ids(&server, QUEUE)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_reply_in_a_batch_leaves_its_jobs_leased_and_trims_nothing_else() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let payloads = payloads(12);
    let jobs: Vec<(&str, &[u8])> = payloads.iter().map(|p| (QUEUE, p.as_slice())).collect();
    let (backend, mut reader, leased) = taken(&server, &jobs).await;
    let all = entry_ids(&server, QUEUE);
    backend.push_job(QUEUE, b"queued").await.unwrap();
    // One caller's inbox is not a list: its replies are refused for good.
    server.cli(["SET", "rpc:inbox:{bad}", "not a list"]);
    let done: Vec<(Delivery, Completion)> = leased
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let completion = match i % 2 {
                0 => answer("rpc:inbox:{bad}"),
                _ => answer("rpc:inbox:{good}"),
            };
            (d.clone(), completion)
        })
        .collect();
    // The read that follows looks at the other queue only.
    let queues = vec![OTHER.to_owned()];
    let out = reader
        .complete_and_take(&done, &queues, "c1", 1, Duration::from_millis(10))
        .await;
    let refused: Vec<usize> = out.not_completed.iter().map(|(i, _)| *i).collect();
    assert_eq!(refused, (0..12).step_by(2).collect::<Vec<_>>());
    for (_, e) in &out.not_completed {
        assert!(
            matches!(e, CompleteError::Refused { step: Some(CompletionStep::Reply), reason } if reason.starts_with("WRONGTYPE")),
            "{e:?}"
        );
    }
    // The refused ones stay, leased, and so does the queued job.
    let mut left: Vec<String> = all.iter().step_by(2).cloned().collect();
    left.push(entry_ids(&server, QUEUE).last().unwrap().clone());
    assert_eq!(entry_ids(&server, QUEUE), left);
    assert_pending(&server, QUEUE, '6');
    assert_eq!(server.cli(["LLEN", "rpc:inbox:{good}"]).trim(), "6");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_completed_twice_in_a_batch_is_removed_by_a_later_trim() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let (_backend, mut reader, all) = backlog(&server, 80).await;
    let first = take(&mut *reader, 40).await;
    // XACK counts the twice-given id once: nothing of that range (one
    // caller's replies, `complete_batch.lua`) is removed now (its ids might
    // name no lease).
    let mut done: Vec<(Delivery, Completion)> = first
        .iter()
        .map(|d| (d.clone(), answer("rpc:inbox:{a}")))
        .collect();
    done.push(done[3].clone());
    let out = reader
        .complete_and_take(
            &done,
            &[OTHER.to_owned()],
            "c1",
            1,
            Duration::from_millis(10),
        )
        .await;
    assert!(out.not_completed.is_empty(), "{:?}", out.not_completed);
    assert_pending(&server, QUEUE, '0');
    assert_eq!(entry_ids(&server, QUEUE), all, "acked, not yet removed");
    // The next batch's trim (owed, sent with the next read that waits for
    // jobs) removes them with its own.
    let second = take(&mut *reader, 40).await;
    let done: Vec<(Delivery, Completion)> = acks(&second);
    let out = reader
        .complete_and_take(
            &done,
            &[OTHER.to_owned()],
            "c1",
            1,
            Duration::from_millis(10),
        )
        .await;
    assert!(out.not_completed.is_empty(), "{:?}", out.not_completed);
    reader
        .take_jobs(&[OTHER.to_owned()], "c1", 1, Duration::from_millis(10))
        .await
        .unwrap();
    assert!(
        entry_ids(&server, QUEUE).is_empty(),
        "{:?}",
        entry_ids(&server, QUEUE)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_removal_does_not_undo_the_completions() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    // A user who may do everything but remove entries.
    server.cli([
        "ACL", "SETUSER", "w", "on", ">pw", "~*", "&*", "+@all", "-xtrim", "-xdel",
    ]);
    let backend = connect(&BrokerConfig::new(server.url_as("w", "pw")))
        .await
        .expect("connect");
    let queues = vec![QUEUE.to_owned(), OTHER.to_owned()];
    backend.prepare_queues(&queues).await.unwrap();
    for i in 0..10 {
        backend
            .push_job(QUEUE, format!("job {i}").as_bytes())
            .await
            .unwrap();
    }
    let mut reader = backend.open_reader().await.unwrap();
    let leased = take(&mut *reader, 10).await;
    let done: Vec<(Delivery, Completion)> = leased
        .iter()
        .map(|d| (d.clone(), answer("rpc:inbox:{a}")))
        .collect();
    let out = reader
        .complete_and_take(
            &done,
            &[OTHER.to_owned()],
            "c1",
            1,
            Duration::from_millis(10),
        )
        .await;
    assert!(
        out.not_completed.is_empty(),
        "completed: {:?}",
        out.not_completed
    );
    assert_eq!(server.cli(["LLEN", "rpc:inbox:{a}"]).trim(), "10");
    assert_pending(&server, QUEUE, '0');
    assert_eq!(entry_ids(&server, QUEUE).len(), 10, "the entries stay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_that_are_not_leases_neither_trim_nor_delete_waiting_jobs() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let (_backend, mut reader, all) = backlog(&server, 20).await;
    let leased = take(&mut *reader, 10).await;
    // A completion naming a job still waiting (never delivered), one with
    // an id Redis refuses, and the ten leases.
    let forged = |token: &str| Delivery {
        token: token.to_owned(),
        ..leased[0].clone()
    };
    let mut done: Vec<(Delivery, Completion)> = leased
        .iter()
        .map(|d| (d.clone(), answer("rpc:inbox:{a}")))
        .collect();
    done.push((forged(&all[15]), Completion::default()));
    for _ in 0..8 {
        done.push((forged("bogus"), Completion::default()));
    }
    let out = reader
        .complete_and_take(
            &done,
            &[OTHER.to_owned()],
            "c1",
            1,
            Duration::from_millis(10),
        )
        .await;
    // The ack-only range holds an id Redis refuses: those jobs are not
    // acked, and say so; the replies' range is acked.
    let refused: Vec<usize> = out.not_completed.iter().map(|(i, _)| *i).collect();
    assert_eq!(refused, (10..19).collect::<Vec<_>>());
    for (_, e) in &out.not_completed {
        assert!(
            matches!(
                e,
                CompleteError::Refused {
                    step: Some(CompletionStep::Ack),
                    ..
                }
            ),
            "{e:?}"
        );
    }
    assert_eq!(server.cli(["LLEN", "rpc:inbox:{a}"]).trim(), "10");
    assert_eq!(
        entry_ids(&server, QUEUE),
        all[10..].to_vec(),
        "every waiting job stays"
    );

    // Again with the waiting job's id alone among the acks: XACK takes it
    // (it acks nothing), and it is still not deleted.
    let more = take(&mut *reader, 2).await;
    let mut done: Vec<(Delivery, Completion)> = more
        .iter()
        .map(|d| (d.clone(), answer("rpc:inbox:{a}")))
        .collect();
    done.push((forged(&all[15]), Completion::default()));
    let out = reader
        .complete_and_take(
            &done,
            &[OTHER.to_owned()],
            "c1",
            1,
            Duration::from_millis(10),
        )
        .await;
    assert!(out.not_completed.is_empty(), "{:?}", out.not_completed);
    assert_eq!(
        entry_ids(&server, QUEUE),
        all[12..].to_vec(),
        "every waiting job stays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batches_of_several_queues_are_one_script_call() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let payloads = payloads(10);
    let mut jobs: Vec<(&str, &[u8])> = payloads.iter().map(|p| (QUEUE, p.as_slice())).collect();
    jobs.extend(payloads.iter().map(|p| (OTHER, p.as_slice())));
    let (_backend, mut reader, taken) = taken(&server, &jobs).await;
    // Svc's jobs answer one caller and ack; Other's answer two callers.
    let done: Vec<(Delivery, Completion)> = taken
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let completion = match (d.queue.as_str(), i % 2) {
                (QUEUE, 0) => Completion::default(),
                (QUEUE, _) => answer("rpc:inbox:{c}"),
                (_, 0) => answer("rpc:inbox:{a}"),
                _ => answer("rpc:inbox:{b}"),
            };
            (d.clone(), completion)
        })
        .collect();
    server.cli(["CONFIG", "RESETSTAT"]);
    let out = reader
        .complete_and_take(
            &done,
            &[OTHER.to_owned()],
            "c1",
            1,
            Duration::from_millis(10),
        )
        .await;
    assert!(out.not_completed.is_empty(), "{:?}", out.not_completed);
    assert!(entry_ids(&server, QUEUE).is_empty());
    assert!(entry_ids(&server, OTHER).is_empty());
    let a: u64 = server
        .cli(["LLEN", "rpc:inbox:{a}"])
        .trim()
        .parse()
        .unwrap();
    let b: u64 = server
        .cli(["LLEN", "rpc:inbox:{b}"])
        .trim()
        .parse()
        .unwrap();
    assert_eq!(a + b, 10);
    let stats = server.cli(["INFO", "commandstats"]);
    assert!(
        stats.contains("cmdstat_evalsha:calls=1,"),
        "one script call: {stats}"
    );
}

/// Acks alone (one-way jobs) of a batch: `XACK`, and `trim_acked.lua` owed
/// until the reader's next read that waits for jobs. A lease older than
/// some of them is held by another worker: the trim stops at it, and the
/// acked entries past it are deleted in the same step; a job acked twice is
/// no matter; a waiting job is never touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_alone_are_trimmed_and_what_a_held_lease_keeps_goes_with_the_next_read() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let (backend, mut reader, all) = backlog(&server, 40).await;
    let mine = take(&mut *reader, 10).await;
    // Another worker holds entries 10..20.
    let mut other = backend.open_reader().await.unwrap();
    let theirs = other
        .take_jobs(&[QUEUE.to_owned()], "c2", 10, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(theirs.len(), 10);
    let more = take(&mut *reader, 10).await;
    // Entries 0..10 and 20..30 acked, one twice.
    let mut done = acks(&mine);
    done.extend(acks(&more));
    done.push(done[12].clone());
    server.cli(["CONFIG", "RESETSTAT"]);
    let out = reader
        .complete_and_take(
            &done,
            &[OTHER.to_owned()],
            "c1",
            1,
            Duration::from_millis(10),
        )
        .await;
    assert!(out.not_completed.is_empty(), "{:?}", out.not_completed);
    // Acked; the trim is owed (fewer than `TRIM_AT` ids).
    assert_eq!(entry_ids(&server, QUEUE), all);
    assert_pending(&server, QUEUE, '1');
    let stats = server.cli(["INFO", "commandstats"]);
    assert!(!stats.contains("cmdstat_xtrim"), "no trim yet: {stats}");
    // The next read, which waits for jobs, trims first, up to the held
    // lease, and deletes what the trim left; the held and the waiting
    // stay.
    let none = reader
        .take_jobs(&[OTHER.to_owned()], "c1", 1, Duration::from_millis(10))
        .await
        .unwrap();
    assert!(none.is_empty());
    let stats = server.cli(["INFO", "commandstats"]);
    assert!(stats.contains("cmdstat_xtrim:calls=1,"), "{stats}");
    assert!(stats.contains("cmdstat_xdel:calls="), "{stats}");
    let mut left = all[10..20].to_vec();
    left.extend_from_slice(&all[30..]);
    assert_eq!(entry_ids(&server, QUEUE), left);
    // The other worker acks its ten: nothing is leased any more, so the
    // trim goes up to the last delivered entry; the waiting ten stay.
    let out = other
        .complete_and_take(
            &acks(&theirs),
            &[OTHER.to_owned()],
            "c2",
            1,
            Duration::from_millis(10),
        )
        .await;
    assert!(out.not_completed.is_empty(), "{:?}", out.not_completed);
    // Ten acks alone: their XDEL goes with that worker's next read.
    other
        .take_jobs(&[OTHER.to_owned()], "c2", 1, Duration::from_millis(10))
        .await
        .unwrap();
    assert_eq!(entry_ids(&server, QUEUE), all[30..].to_vec());
    assert_pending(&server, QUEUE, '0');
}

/// A worker whose ACL predates `xinfo|groups` cannot tell that the newest
/// id of its batch was delivered: nothing is trimmed, and its acked entries
/// go with its next read, by `XDEL`, as plain completions do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_xinfo_groups_acks_alone_are_deleted_with_the_next_read() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    server.cli([
        "ACL",
        "SETUSER",
        "w",
        "on",
        ">pw",
        "~*",
        "&*",
        "+@all",
        "-xinfo|groups",
    ]);
    let backend = connect(&BrokerConfig::new(server.url_as("w", "pw")))
        .await
        .expect("connect");
    let queues = vec![QUEUE.to_owned(), OTHER.to_owned()];
    backend.prepare_queues(&queues).await.unwrap();
    for p in payloads(14) {
        backend.push_job(QUEUE, &p).await.unwrap();
    }
    let all = entry_ids(&server, QUEUE);
    let mut reader = backend.open_reader().await.unwrap();
    let leased = take(&mut *reader, 12).await;
    let out = reader
        .complete_and_take(
            &acks(&leased),
            &[OTHER.to_owned()],
            "c1",
            1,
            Duration::from_millis(10),
        )
        .await;
    assert!(out.not_completed.is_empty(), "{:?}", out.not_completed);
    assert_pending(&server, QUEUE, '0');
    assert_eq!(entry_ids(&server, QUEUE), all, "acked, not trimmed");
    reader
        .take_jobs(&[OTHER.to_owned()], "c1", 1, Duration::from_millis(10))
        .await
        .unwrap();
    assert_eq!(entry_ids(&server, QUEUE), all[12..].to_vec());
}

/// One caller's replies from two queues (a sharded service's batch):
/// one push to its inbox for both, each queue's entries removed (ten by
/// a trim, three with `XDEL`); and when that push is refused, the jobs of
/// both queues are reported and stay leased.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_push_per_inbox_across_queues_and_a_refused_one_fails_both() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let bodies = payloads(10);
    let mut jobs: Vec<(&str, &[u8])> = bodies.iter().map(|p| (QUEUE, p.as_slice())).collect();
    jobs.extend(bodies[..3].iter().map(|p| (OTHER, p.as_slice())));
    let (backend, mut reader, leased) = taken(&server, &jobs).await;
    let done: Vec<(Delivery, Completion)> = leased
        .iter()
        .map(|d| (d.clone(), answer("rpc:inbox:{one}")))
        .collect();
    server.cli(["CONFIG", "RESETSTAT"]);
    let queues = [OTHER.to_owned()];
    let wait = Duration::from_millis(10);
    let out = reader
        .complete_and_take(&done, &queues, "c1", 1, wait)
        .await;
    assert!(out.not_completed.is_empty(), "{:?}", out.not_completed);
    assert_eq!(server.cli(["LLEN", "rpc:inbox:{one}"]).trim(), "13");
    assert!(entry_ids(&server, QUEUE).is_empty());
    assert!(entry_ids(&server, OTHER).is_empty());
    let stats = server.cli(["INFO", "commandstats"]);
    for one in ["evalsha", "rpush", "pexpire"] {
        assert!(
            stats.contains(&format!("cmdstat_{one}:calls=1,")),
            "one {one}: {stats}"
        );
    }
    assert!(stats.contains("cmdstat_xack:calls=2,"), "{stats}");
    assert!(stats.contains("cmdstat_xtrim:calls=1,"), "{stats}");

    // The same caller's inbox now a key of another type: every reply is
    // refused, in both queues, and no job is acked.
    for (queue, p) in [
        (QUEUE, &bodies[0]),
        (OTHER, &bodies[1]),
        (OTHER, &bodies[2]),
    ] {
        backend.push_job(queue, p).await.unwrap();
    }
    let leased = take(&mut *reader, 3).await;
    server.cli(["DEL", "rpc:inbox:{one}"]);
    server.cli(["SET", "rpc:inbox:{one}", "not a list"]);
    let done: Vec<(Delivery, Completion)> = leased
        .iter()
        .map(|d| (d.clone(), answer("rpc:inbox:{one}")))
        .collect();
    let out = reader
        .complete_and_take(&done, &queues, "c1", 1, wait)
        .await;
    assert_eq!(out.not_completed.len(), 3, "{:?}", out.not_completed);
    assert!(out.not_completed.iter().all(|(_, e)| matches!(
        e,
        CompleteError::Refused {
            step: Some(CompletionStep::Reply),
            ..
        }
    )));
    assert_pending(&server, QUEUE, '1');
    assert_pending(&server, OTHER, '2');
}

/// A token written otherwise than Redis writes ids ("11" for the entry
/// 11-0, which `XACK` takes) never becomes the trim's bound: no lease is
/// ever found older than "11", and `XTRIM MINID 11` removed another
/// worker's lease (found by an adversarial review).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_without_its_sequence_never_trims_another_workers_lease() {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let (backend, mut reader, _) = taken(&server, &[]).await;
    let jobs = format!("rpc:{{{QUEUE}}}:jobs");
    for i in 1..=12 {
        server.cli(["XADD", &jobs, &format!("{i}-0"), "m", &format!("job {i}")]);
    }
    let mut other = backend.open_reader().await.unwrap();
    let theirs = take_as(&mut *other, "c2", 1).await;
    assert_eq!(theirs[0].token, "1-0");
    let mine = take(&mut *reader, 10).await;
    assert_eq!(mine[9].token, "11-0");
    // 2-0 to 10-0 ack alone; 11-0, named "11", answers a caller.
    let mut done: Vec<(Delivery, Completion)> = mine[..9]
        .iter()
        .map(|d| (d.clone(), Completion::default()))
        .collect();
    let eleven = Delivery {
        token: "11".to_owned(),
        ..mine[9].clone()
    };
    done.push((eleven, answer("rpc:inbox:{a}")));
    let queues = [OTHER.to_owned()];
    let wait = Duration::from_millis(10);
    let out = reader
        .complete_and_take(&done, &queues, "c1", 1, wait)
        .await;
    assert!(out.not_completed.is_empty(), "{:?}", out.not_completed);
    assert_pending(&server, QUEUE, '1');
    let left = entry_ids(&server, QUEUE);
    assert!(
        left.contains(&"1-0".to_owned()),
        "another worker's lease (1-0) was trimmed: left {left:?}"
    );
}
