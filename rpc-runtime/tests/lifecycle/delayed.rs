//! Delayed calls: `CallOptions::delay` / `run_at` hold the job on the
//! schedule until it is due; the caller can wait for it, its timeout
//! counting from the due time; the id works with `pending`.

use std::time::{Duration, Instant, SystemTime};

use rpc_runtime::CallOptions;
use serde_json::json;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_call_runs_after_its_delay_and_its_caller_gets_the_answer() {
    on_both("delayed", |url| async move {
        let log = Log::default();
        let _worker = start(worker(&url, log.clone())).await;
        let client = client(&url).await;
        let sent = Instant::now();
        // Its timeout (500 ms) is shorter than its delay: it counts from
        // when the job is due.
        let options = CallOptions::delay(Duration::from_millis(700))
            .with_timeout(Duration::from_millis(1_500));
        let reply = client
            .call(&format!("{SERVICE}.echo"), json!({"n": 1}))
            .options(options.clone())
            .response()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(reply.data, json!({"n": 1}));
        let runs = log.runs("echo");
        assert_eq!(runs.len(), 1, "{url}");
        let waited = runs[0].2 - sent;
        assert!(
            waited >= Duration::from_millis(690),
            "{url}: ran after {waited:?}"
        );
        assert!(
            waited < Duration::from_millis(1_400),
            "{url}: ran after {waited:?}"
        );

        // run_at, through a handle kept by id.
        let at = SystemTime::now() + Duration::from_millis(400);
        let pending = client
            .call(&format!("{SERVICE}.echo"), json!("later"))
            .options(CallOptions::run_at(at))
            .send()
            .await
            .unwrap();
        let id = pending.id().clone();
        assert!(client.fetch_result(&id).await.unwrap().is_none());
        let again = client.attach::<serde_json::Value, serde_json::Value>(id);
        assert_eq!(again.wait().await.unwrap(), json!("later"));
        assert!(SystemTime::now() >= at, "{url}");
    })
    .await;
}
