//! Pause and resume: while a service is paused its jobs queue up and none
//! runs; after the resume they all run.

use std::time::Duration;

use rpc_runtime::CallOptions;
use serde_json::json;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_jobs_wait_and_run_after_the_resume() {
    on_both("pause", |url| async move {
        let log = Log::default();
        let _worker = start(worker(&url, log.clone())).await;
        let client = client(&url).await;
        assert!(client.pause(SERVICE).await.unwrap());
        assert!(!client.pause(SERVICE).await.unwrap(), "{url}: paused twice");
        assert!(client.is_paused(SERVICE).await.unwrap());
        // Within about a second every worker has stopped taking.
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        let options = CallOptions::timeout(Duration::from_secs(20));
        let mut pending = Vec::new();
        for n in 0..5 {
            pending.push(
                client
                    .call(&format!("{SERVICE}.echo"), json!(n))
                    .options(options.clone())
                    .send()
                    .await
                    .unwrap(),
            );
        }
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        assert!(log.runs("echo").is_empty(), "{url}: a job ran while paused");
        assert!(client.resume(SERVICE).await.unwrap());
        assert!(!client.is_paused(SERVICE).await.unwrap());
        for (n, p) in pending.into_iter().enumerate() {
            assert_eq!(p.wait().await.unwrap(), json!(n), "{url}");
        }
        assert_eq!(log.runs("echo").len(), 5, "{url}");
    })
    .await;
}
