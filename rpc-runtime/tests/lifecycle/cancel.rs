//! Cancellation: a queued, a scheduled and a running call are cancelled;
//! the first two never run, the running one ends within the grace period
//! (at once if its handler listens), and every caller gets `cancelled`.
//!
//! Order comes from events, not sleeps: the queued call is sent once the
//! worker has seen the pause that holds it (and taken a probe of another
//! service, ending the read it had under way), and the service is resumed
//! once the worker has learned of the cancellation (both from its log
//! events, [`WorkerEvents`]); a running call is cancelled once its handler
//! has started. Time bounds are only far ones (the 1 s grace against a 30 s
//! handler, an answer at once against a 10 min delay).

use std::time::{Duration, Instant};

use rpc_runtime::{CallOptions, Cancelled, ErrorKind};
use serde_json::json;

use super::*;

/// The service the queued test pauses, a name of its own (see
/// [`WorkerEvents`]).
const HELD: &str = "LifeCancel";
/// The service its probe goes to, never paused.
const PROBE: &str = "LifeCancelProbe";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_and_scheduled_calls_cancelled_never_run() {
    let events = WorkerEvents::get();
    on_both("cancel-queued", |url| {
        let events = events.clone();
        async move {
            let log = Log::default();
            let _worker = start(settings(
                Worker::builder(&url)
                    .mount(service_named(HELD, log.clone()))
                    .mount(service_named(PROBE, Log::default())),
            ))
            .await;
            let client = client(&url).await;
            let echo = format!("{HELD}.echo");

            // Scheduled: answered `cancelled` at once, long before it is due.
            let delay = Duration::from_secs(600);
            let scheduled = client
                .call(&echo, json!("s"))
                .options(CallOptions::delay(delay))
                .send()
                .await
                .unwrap();
            let t0 = Instant::now();
            // Unscheduled, or marked when it had not reached the schedule yet:
            // either way it is answered at once.
            assert_ne!(scheduled.cancel().await.unwrap(), Cancelled::Requested);
            let err = scheduled.wait().await.unwrap_err();
            assert_eq!(
                err.remote_kind(),
                Some(ErrorKind::Cancelled),
                "{url}: {err}"
            );
            assert!(t0.elapsed() < delay / 10, "{url}: {:?}", t0.elapsed());

            // Queued: held by a pause until after the cancellation.
            let paused_before = events.pauses(HELD, true);
            client.pause(HELD).await.unwrap();
            wait_until("the worker saw the pause", PATIENCE, || {
                events.pauses(HELD, true) > paused_before
            })
            .await;
            let probed = client
                .call(&format!("{PROBE}.echo"), json!("probe"))
                .options(CallOptions::timeout(PATIENCE))
                .response()
                .await
                .expect("the probe is answered");
            assert_eq!(probed.data, json!("probe"));
            let queued = client
                .call(&echo, json!("q"))
                .options(CallOptions::timeout(PATIENCE))
                .send()
                .await
                .unwrap();
            assert_eq!(client.cancel(queued.id()).await.unwrap(), Cancelled::Marked);
            let id = queued.id().to_string();
            wait_until("the worker learned of the cancellation", PATIENCE, || {
                events.knows_cancelled(&id)
            })
            .await;
            client.resume(HELD).await.unwrap();
            let err = queued.wait().await.unwrap_err();
            assert_eq!(
                err.remote_kind(),
                Some(ErrorKind::Cancelled),
                "{url}: {err}"
            );
            assert!(log.runs("echo").is_empty(), "{url}: a cancelled call ran");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_call_is_stopped_and_its_caller_told() {
    on_both("cancel-running", |url| async move {
        let log = Log::default();
        let _worker = start(worker(&url, log.clone())).await;
        let client = client(&url).await;
        let long = CallOptions::timeout(Duration::from_secs(40));

        // A handler that listens ends as soon as it learns.
        let polite = client
            .call(&format!("{SERVICE}.polite"), json!({"ms": 30_000})).options(long.clone()).send()
            .await
            .unwrap();
        wait_until("the polite handler started", PATIENCE, || {
            !log.runs("polite").is_empty()
        })
        .await;
        let asked = Instant::now();
        polite.cancel().await.unwrap();
        let id = polite.id().to_string();
        let err = polite.wait().await.unwrap_err();
        assert_eq!(err.remote_kind(), Some(ErrorKind::Cancelled), "{url}: {err}");
        // Ended by its handler, which listened, not dropped after the grace.
        assert!(!err.to_string().contains("grace period"), "{url}: {err}");
        let seen = CANCEL_SEEN
            .lock()
            .unwrap()
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, at)| *at - asked)
            .expect("the handler saw its cancellation");
        println!("{url}: a running handler learned of its cancellation after {seen:?}; its caller after {:?}", asked.elapsed());

        // A 30 s handler that ignores it is dropped after the grace (1 s).
        let slow = client
            .call(&format!("{SERVICE}.slow"), json!({"ms": 30_000})).options(long.clone()).send()
            .await
            .unwrap();
        wait_until("the slow handler started", PATIENCE, || {
            !log.runs("slow").is_empty()
        })
        .await;
        let asked = Instant::now();
        slow.cancel().await.unwrap();
        let err = slow.wait().await.unwrap_err();
        assert_eq!(err.remote_kind(), Some(ErrorKind::Cancelled), "{url}: {err}");
        assert!(err.to_string().contains("grace period"), "{url}: {err}");
        // Dropped after the grace (1 s), long before its 30 s were up.
        assert!(asked.elapsed() < Duration::from_secs(20), "{url}: {:?}", asked.elapsed());
        assert_eq!(log.runs("slow").len(), 1, "{url}: a cancelled job was retried");
    })
    .await;
}
