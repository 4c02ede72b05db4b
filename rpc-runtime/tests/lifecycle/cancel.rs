//! Cancellation: a queued, a scheduled and a running call are cancelled;
//! the first two never run, the running one ends within the grace period
//! (at once if its handler listens), and every caller gets `cancelled`.

use std::time::{Duration, Instant};

use rpc_runtime::{CallOptions, Cancelled, ErrorKind};
use serde_json::json;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_and_scheduled_calls_cancelled_never_run() {
    on_both("cancel-queued", |url| async move {
        let log = Log::default();
        let _worker = start(worker(&url, log.clone())).await;
        let client = client(&url).await;
        let echo = format!("{SERVICE}.echo");

        // Scheduled: answered `cancelled` at once, long before it is due.
        let scheduled = client
            .call(&echo, json!("s"))
            .options(CallOptions::delay(Duration::from_secs(30)))
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
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "{url}: {:?}",
            t0.elapsed()
        );

        // Queued: held by a pause until after the cancellation.
        client.pause(SERVICE).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        let queued = client
            .call(&echo, json!("q"))
            .options(CallOptions::default())
            .send()
            .await
            .unwrap();
        assert_eq!(client.cancel(queued.id()).await.unwrap(), Cancelled::Marked);
        // Workers learn it within a poll.
        tokio::time::sleep(Duration::from_millis(300)).await;
        client.resume(SERVICE).await.unwrap();
        let err = queued.wait().await.unwrap_err();
        assert_eq!(
            err.remote_kind(),
            Some(ErrorKind::Cancelled),
            "{url}: {err}"
        );
        assert!(log.runs("echo").is_empty(), "{url}: a cancelled call ran");
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
        while log.runs("polite").is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let asked = Instant::now();
        polite.cancel().await.unwrap();
        let id = polite.id().to_string();
        let err = polite.wait().await.unwrap_err();
        assert_eq!(err.remote_kind(), Some(ErrorKind::Cancelled), "{url}: {err}");
        let seen = CANCEL_SEEN
            .lock()
            .unwrap()
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, at)| *at - asked)
            .expect("the handler saw its cancellation");
        println!("{url}: a running handler learned of its cancellation after {seen:?}; its caller after {:?}", asked.elapsed());
        assert!(seen < Duration::from_secs(1), "{url}: {seen:?}");

        // A 30 s handler that ignores it is dropped after the grace (1 s).
        let slow = client
            .call(&format!("{SERVICE}.slow"), json!({"ms": 30_000})).options(long.clone()).send()
            .await
            .unwrap();
        while log.runs("slow").is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let asked = Instant::now();
        slow.cancel().await.unwrap();
        let err = slow.wait().await.unwrap_err();
        assert_eq!(err.remote_kind(), Some(ErrorKind::Cancelled), "{url}: {err}");
        assert!(err.to_string().contains("grace period"), "{url}: {err}");
        assert!(asked.elapsed() < Duration::from_secs(4), "{url}: {:?}", asked.elapsed());
        assert_eq!(log.runs("slow").len(), 1, "{url}: a cancelled job was retried");
    })
    .await;
}
