//! The schedule, driven through the `Backend` trait against a private
//! redis-server and the memory backend: a scheduled job waits outside the
//! consumer group until it is due (on the broker's clock), and of many
//! workers racing to move due jobs onto the queue each job moves exactly
//! once. (The job lifecycle builds delayed calls and retries with backoff
//! on this.)

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rpc_runtime::backend::{connect, Backend, BrokerConfig};
use rpc_testkit::RedisServer;

const QUEUE: &str = "Later";

async fn backends(redis: &RedisServer) -> Vec<Arc<dyn Backend>> {
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
async fn take_all(backend: &dyn Backend) -> Vec<Vec<u8>> {
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

/// A job scheduled 400 ms ahead is not moved before it is due, and is moved
/// once after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_job_is_moved_onto_the_queue_only_once_it_is_due() {
    rpc_testkit::require_redis_server();
    let redis = RedisServer::start().expect("redis");
    for backend in backends(&redis).await {
        let t0 = Instant::now();
        backend
            .schedule_job(QUEUE, "job-1", b"later", Duration::from_millis(400))
            .await
            .unwrap();
        assert_eq!(backend.poll_lifecycle(QUEUE, 10, 0).await.unwrap().moved, 0);
        assert!(
            take_all(&*backend).await.is_empty(),
            "{}",
            backend.describe()
        );
        while t0.elapsed() < Duration::from_millis(450) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(backend.poll_lifecycle(QUEUE, 10, 0).await.unwrap().moved, 1);
        assert_eq!(backend.poll_lifecycle(QUEUE, 10, 0).await.unwrap().moved, 0);
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
        for i in 0..300 {
            backend
                .schedule_job(
                    QUEUE,
                    &format!("t{i}"),
                    format!("job {i}").as_bytes(),
                    Duration::ZERO,
                )
                .await
                .unwrap();
        }
        let movers: Vec<_> = (0..8)
            .map(|_| {
                let backend = backend.clone();
                tokio::spawn(async move {
                    let mut moved = 0;
                    loop {
                        match backend.poll_lifecycle(QUEUE, 7, 0).await.unwrap().moved {
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
