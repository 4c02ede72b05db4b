//! Periodic ticks at the broker seam (`Schedule::enqueue_tick`), against a
//! private redis-server (`tick.lua`) and the memory backend, which must
//! decide alike: a tick is enqueued once however many workers offer it, an
//! older tick never follows a newer one, a catch-up runs only for a job
//! that ran before, a tick in the broker's future is refused, and garbage
//! in the hashes neither stops a tick nor half-applies one.

use std::sync::Arc;
use std::time::Duration;

use rpc_runtime::backend::{connect, Broker, BrokerConfig, TickMode, TickOutcome, TickRequest};
use rpc_testkit::RedisServer;

const QUEUE: &str = "Beat";

async fn backends(redis: &RedisServer) -> Vec<Arc<dyn Broker>> {
    let name = format!(
        "memory://periodic-{}",
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

/// A tick's message, as a worker would write it (only its id matters here).
fn message(name: &str, tick: u64) -> Vec<u8> {
    format!(
        r#"{{"v":1,"id":"periodic:{name}:{tick}","job":"Beat.tick","params":{{}},"meta":{{"periodic":"{name}"}}}}"#
    )
    .into_bytes()
}

fn definition(name: &str) -> Vec<u8> {
    format!(
        r#"{{"v":1,"name":"{name}","service":"Beat","job":"Beat.tick","every_ms":100,"params":{{}},"timeout_ms":30000,"missed":"run_once","next_ms":null}}"#
    )
    .into_bytes()
}

async fn offer(
    backend: &dyn Broker,
    name: &str,
    tick: u64,
    mode: TickMode,
) -> rpc_runtime::backend::TickAnswer {
    let message = message(name, tick);
    let definition = definition(name);
    let request = TickRequest {
        name,
        tick_ms: tick,
        mode,
        message: &message,
        definition: &definition,
    };
    backend.enqueue_tick(QUEUE, &request).await.expect("offer")
}

/// The ids of everything on the queue (taken by a fresh consumer).
async fn taken_ids(backend: &dyn Broker) -> Vec<String> {
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
        for delivery in taken {
            let message: serde_json::Value = serde_json::from_slice(&delivery.payload).unwrap();
            out.push(message["id"].as_str().unwrap().to_owned());
        }
    }
}

/// A tick in the past of the broker's clock (ticks must not be in its future).
async fn past(backend: &dyn Broker, ago_ms: u64) -> u64 {
    backend.broker_time_ms().await.unwrap() / 100 * 100 - ago_ms
}

/// Eight workers offer each of 30 ticks at the same moment: every tick is
/// enqueued by exactly one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tick_is_enqueued_once_however_many_workers_offer_it() {
    rpc_testkit::require_redis_server();
    let redis = RedisServer::start().expect("redis");
    for backend in backends(&redis).await {
        let first = past(&*backend, 10_000).await;
        for i in 0..30 {
            let tick = first + i * 100;
            let offers: Vec<_> = (0..8)
                .map(|_| {
                    let backend = backend.clone();
                    tokio::spawn(
                        async move { offer(&*backend, "race", tick, TickMode::OnTime).await },
                    )
                })
                .collect();
            let mut enqueued = 0;
            for o in offers {
                match o.await.unwrap().outcome {
                    TickOutcome::Enqueued => enqueued += 1,
                    TickOutcome::AlreadyEnqueued => {}
                    other => panic!("{}: {other:?}", backend.describe()),
                }
            }
            assert_eq!(enqueued, 1, "tick {i} on {}", backend.describe());
        }
        let ids = taken_ids(&*backend).await;
        let expected: Vec<String> = (0..30)
            .map(|i| format!("periodic:race:{}", first + i * 100))
            .collect();
        assert_eq!(ids, expected, "{}", backend.describe());
        let states = backend.periodic_jobs(QUEUE).await.unwrap();
        assert_eq!(states.len(), 1);
        assert_eq!(states[0].last_ms, Some(first + 2_900));
        assert_eq!(states[0].schedule.as_deref(), Some("every 100ms"));
    }
}

/// A late worker offering a tick older than the last one enqueued changes
/// nothing: ticks run in order, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_older_than_the_last_one_is_never_enqueued() {
    rpc_testkit::require_redis_server();
    let redis = RedisServer::start().expect("redis");
    for backend in backends(&redis).await {
        let tick = past(&*backend, 1_000).await;
        let first = offer(&*backend, "order", tick, TickMode::OnTime).await;
        assert_eq!(first.outcome, TickOutcome::Enqueued);
        assert_eq!(first.previous_ms, None);
        let late = offer(&*backend, "order", tick - 100, TickMode::OnTime).await;
        assert_eq!(late.outcome, TickOutcome::AlreadyEnqueued);
        assert_eq!(late.previous_ms, Some(tick));
        let again = offer(&*backend, "order", tick, TickMode::CatchUp).await;
        assert_eq!(again.outcome, TickOutcome::AlreadyEnqueued);
        assert_eq!(
            taken_ids(&*backend).await,
            [format!("periodic:order:{tick}")]
        );
    }
}

/// A starting worker's catch-up enqueues one run only for a job that has
/// run before (a new job has missed nothing); a registration never
/// enqueues, but lists the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catch_up_runs_only_for_a_job_that_ran_before() {
    rpc_testkit::require_redis_server();
    let redis = RedisServer::start().expect("redis");
    for backend in backends(&redis).await {
        let tick = past(&*backend, 5_000).await;
        let new = offer(&*backend, "nightly", tick, TickMode::CatchUp).await;
        assert_eq!(
            new.outcome,
            TickOutcome::Registered,
            "{}",
            backend.describe()
        );
        let skip = offer(&*backend, "hourly", tick, TickMode::Register).await;
        assert_eq!(skip.outcome, TickOutcome::Registered);
        assert!(taken_ids(&*backend).await.is_empty());
        let names: Vec<String> = backend
            .periodic_jobs(QUEUE)
            .await
            .unwrap()
            .into_iter()
            .map(|s| {
                assert_eq!(s.last_ms, None, "{s:?}");
                assert_eq!(s.unreadable, None, "{s:?}");
                s.name
            })
            .collect();
        assert_eq!(names, ["hourly", "nightly"]);

        // It ran once; ticks were missed; a worker starts: one run.
        offer(&*backend, "nightly", tick, TickMode::OnTime).await;
        let catch_up = offer(&*backend, "nightly", tick + 3_000, TickMode::CatchUp).await;
        assert_eq!(catch_up.outcome, TickOutcome::Enqueued);
        assert_eq!(catch_up.previous_ms, Some(tick));
        // A second worker starting just after finds it done.
        let second = offer(&*backend, "nightly", tick + 3_000, TickMode::CatchUp).await;
        assert_eq!(second.outcome, TickOutcome::AlreadyEnqueued);
        assert_eq!(
            taken_ids(&*backend).await,
            [
                format!("periodic:nightly:{tick}"),
                format!("periodic:nightly:{}", tick + 3_000)
            ]
        );
    }
}

/// A worker whose clock runs ahead offers a tick before the broker's clock
/// reaches it: refused as early, nothing recorded, so the on-time offers
/// that follow are not mistaken for done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_in_the_brokers_future_is_refused_as_early() {
    rpc_testkit::require_redis_server();
    let redis = RedisServer::start().expect("redis");
    for backend in backends(&redis).await {
        let future = backend.broker_time_ms().await.unwrap() + 60_000;
        let early = offer(&*backend, "ahead", future, TickMode::OnTime).await;
        assert_eq!(early.outcome, TickOutcome::Early, "{}", backend.describe());
        assert!(early.broker_now_ms < future);
        assert!(taken_ids(&*backend).await.is_empty());
        let now = past(&*backend, 0).await;
        let on_time = offer(&*backend, "ahead", now, TickMode::OnTime).await;
        assert_eq!(on_time.outcome, TickOutcome::Enqueued);
    }
}

/// Garbage written by hand into the hashes: a last tick that is not a
/// number is treated as none (and replaced), definitions that are not
/// JSON list as unreadable, and a key of the wrong type refuses the whole
/// offer before anything is written (no job without its record).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_in_the_hashes_neither_stops_a_tick_nor_half_applies_one() {
    rpc_testkit::require_redis_server();
    let redis = RedisServer::start().expect("redis");
    let backend = connect(&BrokerConfig::new(redis.url())).await.unwrap();
    backend.prepare_queues(&[QUEUE.to_owned()]).await.unwrap();
    redis.cli(["HSET", "rpc:{Beat}:periodic:last", "beat", "garbage"]);
    redis.cli(["HSET", "rpc:{Beat}:periodic", "junk", "\u{1}not json"]);
    let tick = past(&*backend, 1_000).await;
    let answer = offer(&*backend, "beat", tick, TickMode::OnTime).await;
    assert_eq!(answer.outcome, TickOutcome::Enqueued);
    assert_eq!(answer.unreadable_previous.as_deref(), Some("garbage"));
    assert_eq!(
        redis
            .cli(["HGET", "rpc:{Beat}:periodic:last", "beat"])
            .trim(),
        tick.to_string()
    );
    let states = backend.periodic_jobs(QUEUE).await.unwrap();
    assert_eq!(states.len(), 2, "{states:?}");
    assert_eq!(states[0].name, "beat");
    assert_eq!(states[0].last_ms, Some(tick));
    assert_eq!(states[1].name, "junk");
    assert!(states[1].unreadable.is_some(), "{states:?}");

    // The definitions key is a string now: refused, nothing enqueued.
    redis.cli(["DEL", "rpc:{Beat}:periodic"]);
    redis.cli(["SET", "rpc:{Beat}:periodic", "oops"]);
    let message = message("beat", tick + 100);
    let definition = definition("beat");
    let request = TickRequest {
        name: "beat",
        tick_ms: tick + 100,
        mode: TickMode::OnTime,
        message: &message,
        definition: &definition,
    };
    let err = backend.enqueue_tick(QUEUE, &request).await.unwrap_err();
    assert!(err.to_string().contains("WRONGTYPE"), "{err}");
    assert_eq!(
        redis
            .cli(["HGET", "rpc:{Beat}:periodic:last", "beat"])
            .trim(),
        tick.to_string(),
        "the record moved although nothing was enqueued"
    );
    assert_eq!(
        taken_ids(&*backend).await,
        [format!("periodic:beat:{tick}")]
    );
}

/// Issue 19, point 6: a last tick far in Redis's future (999999999999999:
/// 15 digits, so a number) used to count as "done" for every later tick,
/// and the job stopped for good. No tick is recorded before it is due, so
/// one more than an hour ahead is garbage: the next tick is enqueued and
/// replaces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_tick_far_in_the_future_does_not_stop_the_job() {
    rpc_testkit::require_redis_server();
    let redis = RedisServer::start().expect("redis");
    let backend = connect(&BrokerConfig::new(redis.url())).await.unwrap();
    backend.prepare_queues(&[QUEUE.to_owned()]).await.unwrap();
    redis.cli([
        "HSET",
        "rpc:{Beat}:periodic:last",
        "beat",
        "999999999999999",
    ]);
    let tick = past(&*backend, 1_000).await;
    let answer = offer(&*backend, "beat", tick, TickMode::OnTime).await;
    assert_eq!(answer.outcome, TickOutcome::Enqueued);
    assert_eq!(
        redis
            .cli(["HGET", "rpc:{Beat}:periodic:last", "beat"])
            .trim(),
        tick.to_string()
    );
    assert_eq!(
        taken_ids(&*backend).await,
        [format!("periodic:beat:{tick}")]
    );
}
