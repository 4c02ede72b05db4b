//! The memory broker's priority lanes against the promises of
//! `scripts/poll.lua`, `complete.lua`, `cancel.lua`, `group_*.lua` and
//! `tick.lua` on Redis (docs/PROTOCOL.md, "Priorities"): a lane is a queue
//! of its own for its stream alone, and everything else is its queue's.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::MemoryBackend;
use crate::backend::{
    Broker, Cancelled, Completion, Delivery, GroupAdmission, GroupSlot, TickMode, TickOutcome,
    TickRequest,
};

/// A broker of its own for one test (brokers are shared by name).
fn broker(test: &str) -> Arc<dyn Broker> {
    MemoryBackend::named(&format!("lanes-{test}"))
}

/// A job message of call `id`, at `priority` when given.
fn message(id: &str, priority: Option<u8>) -> Vec<u8> {
    let mut m = json!({"v": 1, "id": id, "job": "Q.work", "args": {}});
    if let Some(p) = priority {
        m["priority"] = json!(p);
    }
    serde_json::to_vec(&m).unwrap()
}

/// Takes what `queues` hold now, without waiting.
async fn take(broker: &Arc<dyn Broker>, queues: &[&str]) -> Vec<Delivery> {
    let queues: Vec<String> = queues.iter().map(|q| (*q).to_owned()).collect();
    let mut reader = broker.open_reader().await.unwrap();
    reader
        .take_jobs(&queues, "w1", 10, Duration::ZERO)
        .await
        .unwrap()
}

/// The lifecycle poll of `queue` now, every due job moved.
async fn poll(broker: &Arc<dyn Broker>, queue: &str) -> crate::backend::LifecyclePoll {
    broker
        .poll_lifecycle(queue, 100, 0, 100, None)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_call_pushed_onto_a_lane_is_taken_from_that_lane_alone() {
    let broker = broker("taken");
    broker
        .push_job("Q^1", &message("c1", Some(1)))
        .await
        .unwrap();
    assert!(take(&broker, &["Q"]).await.is_empty());
    let taken = take(&broker, &["Q", "Q^1"]).await;
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].queue, "Q^1");
    // The lane's lease: reclaimed and extended on the lane.
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(broker
        .reclaim("Q", "w2", Duration::ZERO, 10)
        .await
        .unwrap()
        .is_empty());
    let reclaimed = broker
        .reclaim("Q^1", "w2", Duration::ZERO, 10)
        .await
        .unwrap();
    assert_eq!(reclaimed.len(), 1);
    assert_eq!(reclaimed[0].queue, "Q^1");
    assert_eq!(reclaimed[0].deliveries, 2);
}

#[tokio::test]
async fn a_retry_of_a_lane_delivery_waits_on_its_queues_schedule_and_comes_back_onto_its_lane() {
    let broker = broker("retry");
    let m = message("c1", Some(1));
    broker.push_job("Q^1", &m).await.unwrap();
    let delivery = take(&broker, &["Q^1"]).await.remove(0);
    let retry = Completion {
        requeue: Some(m.clone()),
        requeue_after: Some(("c1".to_owned(), Duration::ZERO)),
        ..Completion::default()
    };
    broker.complete(&delivery, &retry).await.unwrap();
    // On the queue's schedule, not a lane's.
    assert_eq!(broker.scheduled_count("Q").await.unwrap(), 1);
    let polled = poll(&broker, "Q").await;
    assert_eq!(polled.moved, 1);
    assert_eq!(polled.lanes, 0b1, "lane 1 exists");
    assert_eq!(broker.scheduled_count("Q").await.unwrap(), 0);
    assert!(take(&broker, &["Q"]).await.is_empty());
    let again = take(&broker, &["Q^1"]).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].payload, m);
}

#[tokio::test]
async fn due_calls_go_onto_the_lane_their_message_names_or_the_default_one() {
    let broker = broker("due");
    for (id, p) in [("c5", Some(5)), ("c3", Some(3)), ("none", None)] {
        let delivery = Delivery {
            queue: "Q".to_owned(),
            token: "0-0".to_owned(),
            payload: Vec::new(),
            deliveries: 1,
            enqueued_ms: None,
            cancelled: false,
        };
        let later = Completion {
            requeue: Some(message(id, p)),
            requeue_after: Some((id.to_owned(), Duration::ZERO)),
            ..Completion::default()
        };
        broker.complete(&delivery, &later).await.unwrap();
    }
    let garbage = Completion {
        requeue: Some(b"{not json".to_vec()),
        requeue_after: Some(("bad".to_owned(), Duration::ZERO)),
        ..Completion::default()
    };
    let nowhere = Delivery {
        queue: "Q^2".to_owned(),
        token: "0-0".to_owned(),
        payload: Vec::new(),
        deliveries: 1,
        enqueued_ms: None,
        cancelled: false,
    };
    broker.complete(&nowhere, &garbage).await.unwrap();
    assert_eq!(poll(&broker, "Q").await.moved, 4);
    let lane5 = take(&broker, &["Q^5"]).await;
    assert_eq!(lane5.len(), 1);
    assert_eq!(lane5[0].payload, message("c5", Some(5)));
    // Priority 3, none and garbage: the default lane, where the worker
    // refuses what does not parse.
    assert_eq!(take(&broker, &["Q"]).await.len(), 3);
}

#[tokio::test]
async fn the_lifecycle_poll_reports_the_lanes_that_exist() {
    let broker = broker("bits");
    assert_eq!(poll(&broker, "Q").await.lanes, 0);
    broker
        .prepare_queues(&["Q".to_owned(), "Q^2".to_owned()])
        .await
        .unwrap();
    broker
        .push_job("Q^5", &message("c1", Some(5)))
        .await
        .unwrap();
    broker
        .push_job("Other^1", &message("c2", Some(1)))
        .await
        .unwrap();
    assert_eq!(poll(&broker, "Q").await.lanes, 0b1_0010);
}

#[tokio::test]
async fn a_cancel_on_the_queue_reaches_a_call_in_any_lane() {
    let broker = broker("cancel");
    let m = message("c1", Some(1));
    broker.push_job("Q^1", &m).await.unwrap();
    assert_eq!(
        broker.cancel_job("Q", "c1").await.unwrap(),
        Cancelled::Marked
    );
    // The worker of the lane sees the mark, and so does the queue's poll.
    assert!(broker.cancelled_at("Q^1", "c1").await.unwrap().is_some());
    let polled = poll(&broker, "Q").await;
    assert_eq!(
        polled
            .cancelled
            .iter()
            .map(|(id, _)| id.as_str())
            .collect::<Vec<_>>(),
        ["c1"]
    );
    // Cancelled while leased: its retry is queued flagged on its lane.
    let delivery = take(&broker, &["Q^1"]).await.remove(0);
    let retry = Completion {
        requeue: Some(m.clone()),
        requeue_after: Some(("c1".to_owned(), Duration::from_secs(3600))),
        ..Completion::default()
    };
    broker.complete(&delivery, &retry).await.unwrap();
    let flagged = take(&broker, &["Q^1"]).await;
    assert!(flagged[0].cancelled);
}

#[tokio::test]
async fn a_cancelled_scheduled_call_goes_onto_the_default_lane_flagged() {
    let broker = broker("unschedule");
    let m = message("c1", Some(1));
    broker.push_job("Q^1", &m).await.unwrap();
    let delivery = take(&broker, &["Q^1"]).await.remove(0);
    let later = Completion {
        requeue: Some(m.clone()),
        requeue_after: Some(("c1".to_owned(), Duration::from_secs(3600))),
        ..Completion::default()
    };
    broker.complete(&delivery, &later).await.unwrap();
    assert_eq!(
        broker.cancel_job("Q", "c1").await.unwrap(),
        Cancelled::Unscheduled
    );
    let flagged = take(&broker, &["Q"]).await;
    assert_eq!(flagged.len(), 1);
    assert!(flagged[0].cancelled);
}

#[tokio::test]
async fn a_lane_delivery_dead_letters_into_its_queue() {
    let broker = broker("dead");
    let m = message("c1", Some(2));
    broker.push_job("Q^2", &m).await.unwrap();
    let delivery = take(&broker, &["Q^2"]).await.remove(0);
    let dead = Completion {
        dead_letter: Some("broken".to_owned()),
        ..Completion::default()
    };
    broker.complete(&delivery, &dead).await.unwrap();
    let letters = broker.dead_letters("Q", 10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(
        (letters[0].reason.as_str(), &letters[0].payload),
        ("broken", &m)
    );
    assert_eq!(broker.dead_letters("Q^2", 10).await.unwrap(), letters);
    assert_eq!(broker.dead_letter_count("Q").await.unwrap(), 1);
    assert!(broker
        .remove_dead_letter("Q", &letters[0].token)
        .await
        .unwrap());
}

#[tokio::test]
async fn the_inspection_shows_a_queue_with_every_lane_and_no_lane_as_a_service() {
    let broker = broker("inspect");
    broker.push_job("Q", &message("c3", None)).await.unwrap();
    broker
        .push_job("Q^1", &message("c1", Some(1)))
        .await
        .unwrap();
    broker
        .push_job("Q^4", &message("c4", Some(4)))
        .await
        .unwrap();
    take(&broker, &["Q^4"]).await;
    broker
        .push_job("Solo^5", &message("s5", Some(5)))
        .await
        .unwrap();
    assert_eq!(broker.services().await.unwrap(), ["Q", "Solo"]);
    assert_eq!(broker.queues().await.unwrap(), ["Q", "Solo"]);
    assert!(broker.has_service("Solo").await.unwrap());
    let stats = broker.service_stats("Q").await.unwrap().unwrap();
    assert_eq!((stats.queued, stats.leased), (2, 1));
    assert_eq!(stats.entries_added, Some(3));
    assert_eq!(stats.consumers.len(), 1);
    assert_eq!(stats.consumers[0].pending, 1);
    let queued = broker.queued("Q", 10).await.unwrap().unwrap();
    assert_eq!(queued.len(), 2);
    let found = broker
        .find_call(
            "Q",
            crate::backend::inspection::excerpts::Stream::Jobs,
            "c1",
            10,
            std::time::Instant::now() + Duration::from_secs(1),
        )
        .await
        .unwrap();
    assert_eq!(found.tokens.len(), 1);
    // A lane's own name reads that lane alone.
    let lane = broker.service_stats("Q^1").await.unwrap().unwrap();
    assert_eq!((lane.queued, lane.leased), (1, 0));
}

#[tokio::test]
async fn a_parked_call_goes_back_onto_the_lane_of_its_priority() {
    let broker = broker("groups");
    let slot = GroupSlot {
        job: "work",
        key: "tenant",
        limit: 1,
    };
    let lease = Duration::from_secs(60);
    for id in ["c1", "c2"] {
        broker.push_job("Q^1", &message(id, Some(1))).await.unwrap();
    }
    let taken = take(&broker, &["Q^1"]).await;
    let admitted = broker
        .take_group_slot(&taken[0], "c1", &slot, lease)
        .await
        .unwrap();
    assert_eq!(admitted, GroupAdmission::Run);
    let parked = broker
        .take_group_slot(&taken[1], "c2", &slot, lease)
        .await
        .unwrap();
    assert_eq!(parked, GroupAdmission::Parked);
    // The group is the queue's, whatever lane asks.
    assert_eq!(
        broker.groups_waiting("Q", 10).await.unwrap(),
        [("work".to_owned(), "tenant".to_owned())]
    );
    let moved = broker
        .release_group_slot("Q^1", Some("c1"), &slot, lease)
        .await
        .unwrap();
    assert_eq!(moved, 1);
    assert!(take(&broker, &["Q"]).await.is_empty());
    assert_eq!(take(&broker, &["Q^1"]).await.len(), 1);
}

#[tokio::test]
async fn a_periodic_tick_goes_onto_the_lane_of_its_priority() {
    let broker = broker("tick");
    let m = message("periodic:nightly:1000", Some(2));
    let tick = TickRequest {
        name: "nightly",
        tick_ms: 1000,
        mode: TickMode::OnTime,
        message: &m,
        definition: b"{}",
    };
    let answer = broker.enqueue_tick("Q", &tick).await.unwrap();
    assert_eq!(answer.outcome, TickOutcome::Enqueued);
    assert!(take(&broker, &["Q"]).await.is_empty());
    assert_eq!(take(&broker, &["Q^2"]).await.len(), 1);
}
