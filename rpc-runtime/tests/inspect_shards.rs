//! Issue 23: the [`Inspector`] shows a sharded service as one service, on
//! both brokers. `Orders` has jobs on shards 0, 1 and 2 (one leased on
//! shard 1, one dead-lettered on shard 2) and a kept shard count of 4,
//! built through the broker traits on a private redis-server and on
//! `memory://`. The service's figures must be the sums, its breakdown
//! each shard's, its merged lists must page through every shard's entries
//! exactly once, a marked token must lead back to its shard, and a timed-out
//! call's diagnosis must count the jobs waiting on every shard.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rpc_runtime::backend::{connect, Broker, BrokerConfig, Completion, ShardOp};
use rpc_runtime::inspect::{Inspector, Stream};
use rpc_testkit::RedisServer;

fn job(id: &str) -> Vec<u8> {
    format!(r#"{{"v":1,"id":"{id}","job":"Orders.place","params":{{}},"attempt":1}}"#).into_bytes()
}

/// What the inspector answers, tokens left out where brokers differ.
#[derive(Debug, PartialEq)]
struct Seen {
    services: Vec<String>,
    queues: Vec<String>,
    figures: (u32, u64, u64, u64),
    per_shard: Vec<(u32, String, u64, u64, u64)>,
    paged_ids: Vec<String>,
    dead_marked: bool,
    dead_by_token: bool,
    dead_window: Option<Vec<u8>>,
    leased_marked: bool,
    lease_found: bool,
    found_b3: Vec<bool>,
    /// What a timed-out call's diagnosis counts as queued.
    health_queued: Option<u64>,
}

async fn scenario(broker: Arc<dyn Broker>) -> Seen {
    let queues: Vec<String> = ["Orders", "Orders~1", "Orders~2"]
        .map(str::to_owned)
        .to_vec();
    broker.prepare_queues(&queues).await.unwrap();
    broker.push_job("Orders", &job("a0")).await.unwrap();
    for id in ["a1", "a2"] {
        broker.push_job("Orders~1", &job(id)).await.unwrap();
    }
    for id in ["b1", "b2", "b3"] {
        broker.push_job("Orders~2", &job(id)).await.unwrap();
    }
    let mut reader = broker.open_reader().await.unwrap();
    let taken = reader
        .take_jobs(&queues[1..2], "w1", 1, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(taken.len(), 1, "a1 leased on shard 1");
    let taken = reader
        .take_jobs(&queues[2..3], "w1", 1, Duration::from_secs(1))
        .await
        .unwrap();
    broker
        .complete(
            &taken[0],
            &Completion {
                dead_letter: Some("boom".to_owned()),
                ..Completion::default()
            },
        )
        .await
        .unwrap();
    broker.shard_count("Orders", ShardOp::Set(4)).await.unwrap();

    let inspector = Inspector::new(broker.clone());
    let stats = inspector.service_stats("Orders").await.unwrap().unwrap();
    let bounded = inspector
        .service_stats_bounded("Orders")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stats.queued, bounded.queued);
    let per_shard = inspector
        .shard_figures("Orders")
        .await
        .unwrap()
        .into_iter()
        .map(|f| (f.shard, f.queue, f.queued, f.leased, f.dead_letters))
        .collect();

    // One entry a page: every queued job once, whatever shard it is on.
    let mut paged_ids = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = inspector
            .queued_excerpts("Orders", after.as_deref(), 1, 1024)
            .await
            .unwrap()
            .unwrap();
        let Some(entry) = page.into_iter().next() else {
            break;
        };
        let message = entry.message.expect("a message").bytes;
        let value: serde_json::Value = serde_json::from_slice(&message).unwrap();
        paged_ids.push(value["id"].as_str().unwrap().to_owned());
        after = Some(entry.token);
        assert!(paged_ids.len() <= 10, "paging never ends: {paged_ids:?}");
    }

    let dead = inspector
        .dead_letter_excerpts("Orders", None, 10, 1024)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    let marked = dead[0].token.clone();
    let by_token = inspector
        .dead_letters_by_token("Orders", &[marked.as_str()], 64)
        .await
        .unwrap();
    let dead_window = inspector
        .entry_window("Orders", Stream::Dead, &marked, "m", 0, 1024)
        .await
        .unwrap()
        .map(|w| w.bytes);
    let leased = inspector
        .leased_excerpts("Orders", 10, 64)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(leased.len(), 1);
    let lease = inspector.lease("Orders", &leased[0].token).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let found = inspector
        .find_call("Orders", Stream::Jobs, "b3", 5, deadline)
        .await
        .unwrap();
    Seen {
        services: inspector.services().await.unwrap(),
        queues: inspector.queues().await.unwrap(),
        figures: (stats.shards, stats.queued, stats.leased, stats.dead_letters),
        per_shard,
        paged_ids,
        dead_marked: marked.ends_with("~2"),
        dead_by_token: by_token[0].as_ref().is_some_and(|d| d.token == marked),
        dead_window,
        leased_marked: leased[0].token.ends_with("~1"),
        lease_found: lease.is_some_and(|l| l.consumer == "w1"),
        found_b3: found.tokens.iter().map(|t| t.ends_with("~2")).collect(),
        health_queued: inspector.service_health("Orders").await.queued,
    }
}

fn expected() -> Seen {
    Seen {
        services: vec!["Orders".to_owned()],
        queues: ["Orders", "Orders~1", "Orders~2"]
            .map(str::to_owned)
            .to_vec(),
        figures: (4, 4, 1, 1),
        per_shard: vec![
            (0, "Orders".to_owned(), 1, 0, 0),
            (1, "Orders~1".to_owned(), 1, 1, 0),
            (2, "Orders~2".to_owned(), 2, 0, 1),
            (3, "Orders~3".to_owned(), 0, 0, 0),
        ],
        // Oldest first over the shards: the order they were pushed in.
        paged_ids: ["a0", "a2", "b2", "b3"].map(str::to_owned).to_vec(),
        dead_marked: true,
        dead_by_token: true,
        dead_window: Some(job("b1")),
        leased_marked: true,
        lease_found: true,
        found_b3: vec![true],
        health_queued: Some(4),
    }
}

#[tokio::test]
async fn a_sharded_service_is_one_service_on_both_brokers() {
    let redis = RedisServer::start().expect("start redis-server");
    let on_redis = scenario(connect(&BrokerConfig::new(redis.url())).await.unwrap()).await;
    let on_memory = scenario(
        connect(&BrokerConfig::new("memory://inspect-shards"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(on_redis, expected());
    assert_eq!(on_memory, expected());
    let ids: BTreeSet<_> = on_redis.paged_ids.iter().collect();
    assert_eq!(ids.len(), 4, "no job shown twice");
}
