//! The schedule, driven through the broker traits against a private
//! redis-server and the memory backend: a scheduled job waits outside the
//! consumer group until it is due (on the broker's clock), and of many
//! workers racing to move due jobs onto the queue each job moves exactly
//! once. (The job lifecycle builds delayed calls and retries with backoff
//! on this.) Jobs get onto the schedule the way workers put them there: a
//! job is taken, then completed with "requeue after a delay".

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rpc_runtime::backend::{connect, Broker, BrokerConfig, Completion};
use rpc_testkit::RedisServer;

const QUEUE: &str = "Later";

async fn backends(redis: &RedisServer) -> Vec<Arc<dyn Broker>> {
    let name = format!(
        "memory://schedule-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let mut out = Vec::new();
    for url in [redis.url(), name] {
        let backend = connect(&BrokerConfig::new(url)).await.expect("connect");
        backend.prepare_queues(&[QUEUE.to_owned()]).await.unwrap();
        out.push(backend);
    }
    out
}

/// Takes everything on the queue (a fresh consumer each time).
async fn take_all(backend: &dyn Broker) -> Vec<Vec<u8>> {
    let mut reader = backend.open_reader().await.unwrap();
    let mut out = Vec::new();
    loop {
        let taken = reader
            .take_jobs(
                &[QUEUE.to_owned()],
                "taker",
                1000,
                Duration::from_millis(50),
            )
            .await
            .unwrap();
        if taken.is_empty() {
            return out;
        }
        out.extend(taken.into_iter().map(|d| d.payload));
    }
}

/// Puts each `(token, payload, delay)` on the schedule as a worker does:
/// queued, taken, then completed with a requeue after the delay.
async fn schedule(backend: &dyn Broker, jobs: &[(String, Vec<u8>, Duration)]) {
    for (_, payload, _) in jobs {
        backend.push_job(QUEUE, payload).await.unwrap();
    }
    let mut reader = backend.open_reader().await.unwrap();
    let mut left: HashMap<&[u8], (&str, Duration)> = jobs
        .iter()
        .map(|(token, payload, delay)| (payload.as_slice(), (token.as_str(), *delay)))
        .collect();
    while !left.is_empty() {
        let taken = reader
            .take_jobs(
                &[QUEUE.to_owned()],
                "scheduler",
                1000,
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert!(!taken.is_empty(), "the jobs to schedule never came");
        for delivery in taken {
            let (token, delay) = left.remove(delivery.payload.as_slice()).expect("ours");
            let completion = Completion {
                requeue: Some(delivery.payload.clone()),
                requeue_after: Some((token.to_owned(), delay)),
                ..Completion::default()
            };
            backend.complete(&delivery, &completion).await.unwrap();
        }
    }
}

async fn poll(backend: &dyn Broker, max: usize) -> usize {
    backend
        .poll_lifecycle(QUEUE, max, 0, 100, None)
        .await
        .unwrap()
        .moved
}

/// A job scheduled 2 s ahead is not moved before it is due, and is moved
/// once after: polled until it moves, which must not be before its delay
/// has passed (the delay is long enough that the first poll, however slow
/// the machine, is well before it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_job_is_moved_onto_the_queue_only_once_it_is_due() {
    rpc_testkit::require_redis_server();
    let redis = RedisServer::start().expect("redis");
    let delay = Duration::from_secs(2);
    for backend in backends(&redis).await {
        let t0 = Instant::now();
        let later = ("job-1".to_owned(), b"later".to_vec(), delay);
        schedule(&*backend, &[later]).await;
        assert_eq!(poll(&*backend, 10).await, 0);
        assert!(
            take_all(&*backend).await.is_empty(),
            "{}",
            backend.describe()
        );
        let moved_after = loop {
            if poll(&*backend, 10).await == 1 {
                break t0.elapsed();
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "never moved: {}",
                backend.describe()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // Due times are whole milliseconds: a couple of ms of slack.
        assert!(
            moved_after + Duration::from_millis(2) >= delay,
            "moved after {moved_after:?}, before its {delay:?}: {}",
            backend.describe()
        );
        assert_eq!(poll(&*backend, 10).await, 0);
        assert_eq!(take_all(&*backend).await, vec![b"later".to_vec()]);
    }
}

/// 300 due jobs, eight movers racing: every job reaches the queue exactly
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_movers_move_each_due_job_exactly_once() {
    rpc_testkit::require_redis_server();
    let redis = RedisServer::start().expect("redis");
    for backend in backends(&redis).await {
        let jobs: Vec<_> = (0..300)
            .map(|i| {
                let payload = format!("job {i}").into_bytes();
                (format!("t{i}"), payload, Duration::ZERO)
            })
            .collect();
        schedule(&*backend, &jobs).await;
        let movers: Vec<_> = (0..8)
            .map(|_| {
                let backend = backend.clone();
                tokio::spawn(async move {
                    let mut moved = 0;
                    loop {
                        match poll(&*backend, 7).await {
                            0 => return moved,
                            n => moved += n,
                        }
                    }
                })
            })
            .collect();
        let mut moved = 0;
        for mover in movers {
            moved += mover.await.unwrap();
        }
        assert_eq!(moved, 300, "{}", backend.describe());
        let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
        for payload in take_all(&*backend).await {
            *seen.entry(payload).or_default() += 1;
        }
        assert_eq!(seen.len(), 300, "{}", backend.describe());
        assert!(seen.values().all(|&n| n == 1), "a job moved twice");
    }
}
