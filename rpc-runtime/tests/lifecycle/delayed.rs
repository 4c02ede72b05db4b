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
        // Its timeout (3 s) is shorter than its delay (4 s): it counts from
        // when the job is due, or the call would fail before the job ran.
        // The 3 s are also the bound on how late the job may run, generous
        // for a loaded machine.
        let delay = Duration::from_secs(4);
        let options = CallOptions::delay(delay).with_timeout(Duration::from_secs(3));
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
            waited >= delay - Duration::from_millis(10),
            "{url}: ran after {waited:?}"
        );

        // run_at, through a handle kept by id (due far enough ahead that
        // no result can be there yet when it is first looked for).
        let at = SystemTime::now() + Duration::from_secs(3);
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
