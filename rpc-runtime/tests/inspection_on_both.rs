//! The operator's view asks the same questions of both brokers and gets
//! the same answers: one scenario (jobs queued, one leased, one
//! dead-lettered with its reason, one waiting on the schedule, a reply in
//! an inbox, a kept result) is built through the broker traits on a
//! private redis-server and on `memory://`, then read through
//! [`Inspector`]. Tokens differ between brokers; everything else must not.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rpc_runtime::backend::{connect, Broker, BrokerConfig, Completion};
use rpc_runtime::inspect::{Inspector, Stream};
use rpc_testkit::RedisServer;

const QUEUE: &str = "Books";

fn job(id: &str, body: &str) -> Vec<u8> {
    format!(r#"{{"v":1,"id":"{id}","job":"Books.add","params":{{"title":"{body}"}},"attempt":1}}"#)
        .into_bytes()
}

/// What the scenario leaves, as seen through the inspector, without the
/// tokens (which each broker makes its own way).
#[derive(Debug, PartialEq)]
struct Seen {
    services: Vec<String>,
    has_service: bool,
    unknown_service: bool,
    figures: (u64, u64, u64, u64, Option<u64>),
    consumers: Vec<(String, u64)>,
    queued: Vec<Vec<u8>>,
    queued_windows: Vec<(Vec<u8>, u64)>,
    leased: Vec<(String, u64, Option<Vec<u8>>)>,
    lease_of_leased: Option<(String, u64)>,
    dead: Vec<(Vec<u8>, u64, Vec<u8>, u64)>,
    dead_by_token: usize,
    dead_count: u64,
    dead_page_after_first: usize,
    reason_window: Option<Vec<u8>>,
    message_chunk: Option<(Vec<u8>, u64)>,
    found_in_jobs: usize,
    found_in_dead: usize,
    found_nowhere: (usize, bool),
    scheduled: Vec<(String, Option<u32>, Option<String>)>,
    scheduled_window: Option<(Vec<u8>, Vec<u8>)>,
    scheduled_count: u64,
    inboxes: Vec<(String, u64)>,
    kept: Option<(Vec<u8>, u64)>,
    periodic: Option<usize>,
    paused: bool,
}

async fn scenario(broker: Arc<dyn Broker>) -> Seen {
    broker.prepare_queues(&[QUEUE.to_owned()]).await.unwrap();
    for (id, title) in [
        ("a1", "Dune"),
        ("a2", "Emma"),
        ("a3", "Ulysses"),
        ("a4", "Beloved"),
    ] {
        broker.push_job(QUEUE, &job(id, title)).await.unwrap();
    }
    let mut reader = broker.open_reader().await.unwrap();
    let taken = reader
        .take_jobs(&[QUEUE.to_owned()], "w1", 3, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(taken.len(), 3);
    // a1: dead-lettered with a reason; a2: answered, its reply kept and
    // pushed to an inbox; a3 stays leased; a4 stays queued.
    broker
        .complete(
            &taken[0],
            &Completion {
                dead_letter: Some("bad_request: no such shelf".to_owned()),
                ..Completion::default()
            },
        )
        .await
        .unwrap();
    let reply = br#"{"v":1,"id":"a2","ok":true,"data":7}"#.to_vec();
    broker
        .complete(
            &taken[1],
            &Completion {
                reply: Some(reply.clone()),
                reply_to: Some(broker.inbox_name("client-1")),
                keep_result: Some(("a2".to_owned(), Duration::from_secs(60))),
                requeue: Some(job("s1", "Later")),
                requeue_after: Some(("s1".to_owned(), Duration::from_secs(3600))),
                ..Completion::default()
            },
        )
        .await
        .unwrap();

    let inspector = Inspector::new(broker.clone());
    let stats = inspector.service_stats(QUEUE).await.unwrap().unwrap();
    let bounded = inspector
        .service_stats_bounded(QUEUE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stats.queued, stats.leased, stats.dead_letters),
        (bounded.queued, bounded.leased, bounded.dead_letters)
    );
    let leased = inspector.leased(QUEUE, 10).await.unwrap().unwrap();
    let leased_token = leased[0].token.clone();
    let dead = inspector
        .dead_letter_excerpts(QUEUE, None, 10, 8)
        .await
        .unwrap();
    let dead_token = dead[0].token.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    let scheduled = inspector.scheduled(QUEUE, 10).await.unwrap().unwrap();
    Seen {
        services: inspector.services().await.unwrap(),
        has_service: inspector.has_service(QUEUE).await.unwrap(),
        unknown_service: inspector.has_service("Nope").await.unwrap()
            || inspector.service_stats("Nope").await.unwrap().is_some()
            || inspector.scheduled("Nope", 1).await.unwrap().is_some(),
        figures: (
            stats.queued,
            stats.leased,
            stats.dead_letters,
            stats.stream_length,
            stats.entries_added,
        ),
        consumers: stats
            .consumers
            .iter()
            .map(|c| (c.name.clone(), c.pending))
            .collect(),
        queued: inspector
            .queued(QUEUE, 10)
            .await
            .unwrap()
            .unwrap()
            .into_iter()
            .map(|q| q.payload)
            .collect(),
        queued_windows: inspector
            .queued_excerpts(QUEUE, None, 10, 5)
            .await
            .unwrap()
            .unwrap()
            .into_iter()
            .map(|q| {
                let m = q.message.unwrap();
                (m.bytes, m.len)
            })
            .collect(),
        leased: leased
            .iter()
            .map(|l| (l.consumer.clone(), l.deliveries, l.payload.clone()))
            .collect(),
        lease_of_leased: inspector
            .lease(QUEUE, &leased_token)
            .await
            .unwrap()
            .map(|l| (l.consumer, l.deliveries)),
        dead: dead
            .iter()
            .map(|d| {
                let reason = d.reason.clone().unwrap();
                let message = d.message.clone().unwrap();
                (reason.bytes, reason.len, message.bytes, message.len)
            })
            .collect(),
        dead_by_token: inspector
            .dead_letters_by_token(QUEUE, &[&dead_token, "1-1"], 8)
            .await
            .unwrap()
            .iter()
            .flatten()
            .count(),
        dead_count: inspector.dead_letter_count(QUEUE).await.unwrap(),
        dead_page_after_first: inspector
            .dead_letter_excerpts(QUEUE, Some(&dead_token), 10, 8)
            .await
            .unwrap()
            .len(),
        reason_window: inspector
            .entry_window(QUEUE, Stream::Dead, &dead_token, "reason", 13, 6)
            .await
            .unwrap()
            .map(|e| e.bytes),
        message_chunk: inspector
            .entry_window(QUEUE, Stream::Jobs, &leased_token, "m", 2, 4)
            .await
            .unwrap()
            .map(|e| (e.bytes, e.len)),
        found_in_jobs: inspector
            .find_call(QUEUE, Stream::Jobs, "a4", 5, deadline)
            .await
            .unwrap()
            .tokens
            .len(),
        found_in_dead: inspector
            .find_call(QUEUE, Stream::Dead, "a1", 5, deadline)
            .await
            .unwrap()
            .tokens
            .len(),
        found_nowhere: {
            let f = inspector
                .find_call(QUEUE, Stream::Jobs, "zz", 5, deadline)
                .await
                .unwrap();
            (f.tokens.len(), f.finished)
        },
        scheduled: scheduled
            .iter()
            .map(|s| (s.id.clone(), s.attempt, s.job.clone()))
            .collect(),
        scheduled_window: inspector
            .scheduled_window(QUEUE, "s1", 2, 6)
            .await
            .unwrap()
            .map(|s| (s.token.bytes, s.message.unwrap().bytes)),
        scheduled_count: inspector.scheduled_count(QUEUE).await.unwrap(),
        inboxes: inspector
            .inboxes()
            .await
            .unwrap()
            .into_iter()
            .map(|i| (i.client, i.replies))
            .collect(),
        kept: inspector
            .kept_result_window("a2", 0, 1000)
            .await
            .unwrap()
            .map(|e| (e.bytes, e.len)),
        periodic: inspector.periodic(QUEUE).await.unwrap().map(|p| p.len()),
        paused: inspector.is_paused(QUEUE).await.unwrap(),
    }
}

#[tokio::test]
async fn both_brokers_answer_the_operators_questions_alike() {
    let redis = RedisServer::start().expect("start redis-server");
    let on_redis = scenario(connect(&BrokerConfig::new(redis.url())).await.unwrap()).await;
    let on_memory = scenario(
        connect(&BrokerConfig::new("memory://inspection-on-both"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(on_redis, on_memory);

    // And the answers are the scenario's, not merely equal.
    let seen = on_memory;
    assert_eq!(seen.services, [QUEUE]);
    assert!(seen.has_service && !seen.unknown_service);
    assert_eq!(seen.figures, (1, 1, 1, 2, Some(4)));
    assert_eq!(seen.consumers, [("w1".to_owned(), 1)]);
    assert_eq!(seen.queued, [job("a4", "Beloved")]);
    assert_eq!(seen.queued_windows[0].0, b"{\"v\":");
    assert_eq!(seen.queued_windows[0].1, job("a4", "Beloved").len() as u64);
    assert_eq!(
        seen.leased,
        [("w1".to_owned(), 1, Some(job("a3", "Ulysses")))]
    );
    assert_eq!(seen.lease_of_leased, Some(("w1".to_owned(), 1)));
    assert_eq!(seen.dead.len(), 1);
    assert_eq!(seen.dead[0].0, b"bad_requ");
    assert_eq!(seen.dead[0].1, "bad_request: no such shelf".len() as u64);
    assert_eq!(seen.dead_by_token, 1);
    assert_eq!(seen.dead_count, 1);
    assert_eq!(seen.dead_page_after_first, 0);
    assert_eq!(seen.reason_window.as_deref(), Some(&b"no suc"[..]));
    assert_eq!(
        seen.message_chunk,
        Some((b"v\":1".to_vec(), job("a3", "Ulysses").len() as u64))
    );
    assert_eq!((seen.found_in_jobs, seen.found_in_dead), (1, 1));
    assert_eq!(seen.found_nowhere, (0, true));
    assert_eq!(
        seen.scheduled,
        [("s1".to_owned(), Some(1), Some("Books.add".to_owned()))]
    );
    assert_eq!(
        seen.scheduled_window,
        Some((b"s1".to_vec(), b"v\":1,\"".to_vec()))
    );
    assert_eq!(seen.scheduled_count, 1);
    assert_eq!(seen.inboxes, [("client-1".to_owned(), 1)]);
    let reply = br#"{"v":1,"id":"a2","ok":true,"data":7}"#;
    assert_eq!(seen.kept, Some((reply.to_vec(), reply.len() as u64)));
    assert_eq!(seen.periodic, Some(0));
    assert!(!seen.paused);
}
