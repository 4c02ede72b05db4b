//! Retries with backoff: a failed attempt waits on the schedule before the
//! next, with growing gaps; one that always fails is dead-lettered after
//! its attempts, with the reason.

use std::time::Duration;

use rpc_runtime::ErrorKind;
use serde_json::json;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_failing_twice_runs_three_times_with_growing_gaps() {
    on_both("retries", |url| async move {
        let log = Log::default();
        let _worker = start(worker(&url, log.clone())).await;
        let client = client(&url).await;
        let reply = client
            .call_and_wait(&format!("{SERVICE}.flaky"), json!({"ok_on": 3}))
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(reply.data, json!({"attempt": 3}));
        let runs = log.runs("flaky");
        let attempts: Vec<u32> = runs.iter().map(|r| r.1).collect();
        assert_eq!(attempts, vec![1, 2, 3], "{url}");
        let gap1 = runs[1].2 - runs[0].2;
        let gap2 = runs[2].2 - runs[1].2;
        println!(
            "{url}: gaps between attempts {gap1:?}, {gap2:?} (backoff exponential(200ms, 5s))"
        );
        // Equal jitter: the first gap is 100-200 ms, the second 200-400 ms.
        // Only the lower bounds are checked (a loaded machine makes any gap
        // longer): the second's is twice the first's, so a backoff that did
        // not grow (a second gap of 100-200 ms) fails almost every run.
        assert!(gap1 >= Duration::from_millis(95), "{url}: {gap1:?}");
        assert!(gap2 >= Duration::from_millis(195), "{url}: {gap2:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_always_fails_is_dead_lettered_with_the_reason() {
    on_both("dead", |url| async move {
        let log = Log::default();
        let _worker = start(worker(&url, log.clone())).await;
        let client = client(&url).await;
        let err = client
            .call_and_wait(&format!("{SERVICE}.flaky"), json!({"ok_on": 0}))
            .await
            .unwrap_err();
        assert_eq!(
            err.remote_kind(),
            Some(ErrorKind::DeadLettered),
            "{url}: {err}"
        );
        assert_eq!(log.runs("flaky").len(), 3, "{url}");
        let dead = client.dead_letters(SERVICE, 10).await.unwrap();
        assert_eq!(dead.len(), 1, "{url}");
        assert!(
            dead[0]
                .reason
                .contains("failed on attempt 3 of 3: not yet (attempt 3)"),
            "{url}: {}",
            dead[0].reason
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_can_ask_for_its_own_retry_delay() {
    let url = memory_url("retry-after");
    let log = Log::default();
    let service = rpc_runtime::DynamicService::new("After").job("once", {
        let log = log.clone();
        move |req| {
            let log = log.clone();
            async move {
                log.record("once", &req.context);
                if req.context.attempt() == 1 {
                    return Err(rpc_runtime::HandlerError::retry_after(
                        Duration::from_millis(600),
                        "rate limited",
                    ));
                }
                req.respond(json!("ok"))
            }
        }
    });
    let _worker = start(Worker::builder(&url).mount(service)).await;
    let client = client(&url).await;
    client.call_and_wait("After.once", json!({})).await.unwrap();
    let runs = log.runs("once");
    assert_eq!(runs.len(), 2);
    let gap = runs[1].2 - runs[0].2;
    assert!(gap >= Duration::from_millis(590), "{gap:?}");
}
