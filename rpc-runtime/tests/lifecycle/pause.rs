//! Pause and resume: while a service is paused its jobs queue up and none
//! runs; after the resume they all run.
//!
//! Nothing running is shown, not waited for: the test waits until the
//! worker has seen the pause (its log event), then until it has taken a
//! probe of another service (so the read it had under way when it saw the
//! pause is over), queues the paused service's jobs, and waits until it
//! has taken a second probe (a read that would have taken them too). Then
//! the jobs are still queued, none leased, none run.

use rpc_runtime::{CallOptions, Client, Inspector};
use serde_json::json;

use super::*;

/// The paused service, a name of its own (see [`WorkerEvents`]).
const PAUSED: &str = "LifePause";
/// The service the probes go to, never paused.
const PROBE: &str = "LifePauseProbe";

/// Calls the probe service and waits for the answer: the worker took it.
async fn probe(client: &Client, n: u32) {
    let answer = client
        .call(&format!("{PROBE}.echo"), json!({"probe": n}))
        .options(CallOptions::timeout(PATIENCE))
        .response()
        .await
        .expect("the probe is answered");
    assert_eq!(answer.data, json!({"probe": n}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_jobs_wait_and_run_after_the_resume() {
    let events = WorkerEvents::get();
    on_both("pause", |url| {
        let events = events.clone();
        async move {
            let log = Log::default();
            let _worker = start(settings(
                Worker::builder(&url)
                    .mount(service_named(PAUSED, log.clone()))
                    .mount(service_named(PROBE, Log::default())),
            ))
            .await;
            let client = client(&url).await;
            let inspector = Inspector::new(client.backend().clone());
            let seen_before = events.pauses(PAUSED, true);
            assert!(client.pause(PAUSED).await.unwrap());
            assert!(!client.pause(PAUSED).await.unwrap(), "{url}: paused twice");
            assert!(client.is_paused(PAUSED).await.unwrap());
            wait_until("the worker saw the pause", PATIENCE, || {
                events.pauses(PAUSED, true) > seen_before
            })
            .await;
            probe(&client, 1).await;
            let options = CallOptions::timeout(PATIENCE);
            let mut pending = Vec::new();
            for n in 0..5 {
                pending.push(
                    client
                        .call(&format!("{PAUSED}.echo"), json!(n))
                        .options(options.clone())
                        .send()
                        .await
                        .unwrap(),
                );
            }
            probe(&client, 2).await;
            let stats = inspector
                .service_stats(PAUSED)
                .await
                .unwrap()
                .expect("the paused service's queue");
            assert_eq!(
                (stats.queued, stats.leased),
                (5, 0),
                "{url}: the paused jobs are not all waiting: {stats:?}"
            );
            assert!(log.runs("echo").is_empty(), "{url}: a job ran while paused");
            assert!(client.resume(PAUSED).await.unwrap());
            assert!(!client.is_paused(PAUSED).await.unwrap());
            for (n, p) in pending.into_iter().enumerate() {
                assert_eq!(p.wait().await.unwrap(), json!(n), "{url}");
            }
            assert_eq!(log.runs("echo").len(), 5, "{url}");
        }
    })
    .await;
}
