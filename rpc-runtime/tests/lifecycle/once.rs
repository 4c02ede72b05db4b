//! Idempotency keys: 100 racing sends with one key run the job once and
//! get one answer; the key with other parameters is an error.

use rpc_runtime::{CallOptions, Error};
use serde_json::json;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_racing_sends_with_one_key_run_once() {
    on_both("once", |url| async move {
        let log = Log::default();
        let _worker = start(worker(&url, log.clone())).await;
        let client = client(&url).await;
        let echo = format!("{SERVICE}.echo");
        let options = CallOptions::idempotency_key("order-42");
        let mut racers = Vec::new();
        for _ in 0..100 {
            let (client, echo, options) = (client.clone(), echo.clone(), options.clone());
            racers.push(tokio::spawn(async move {
                client
                    .call(&echo, json!({"order": 42}))
                    .options(options.clone())
                    .response()
                    .await
            }));
        }
        let mut answers = Vec::new();
        for racer in racers {
            let reply = racer
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("{url}: {e}"));
            answers.push((reply.id, reply.data));
        }
        assert_eq!(
            log.runs("echo").len(),
            1,
            "{url}: the job ran more than once"
        );
        let first = answers[0].clone();
        assert!(answers.iter().all(|a| *a == first), "{url}: answers differ");
        assert_eq!(first.1, json!({"order": 42}));

        // A later duplicate is answered too, with the first call's kept
        // result (the same parameters in another spelling are the same call).
        let later = client
            .call(&echo, json!({"order": 42.0}))
            .options(options.clone())
            .send()
            .await
            .unwrap();
        assert_ne!(later.id(), &first.0, "a call has its own id");
        let kept_id = later.id().clone();
        assert_eq!(later.wait().await.unwrap(), json!({"order": 42}));
        // Fetched by its own id, it leads to the first call's result.
        let fetched = client.fetch_result(&kept_id).await.unwrap();
        assert_eq!(fetched.map(Result::unwrap), Some(json!({"order": 42})));

        // The same key for other parameters is refused: the worker answers
        // so instead of running it (the answer comes only after it decided).
        let err = client
            .call(&echo, json!({"order": 43}))
            .options(options.clone())
            .response()
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::IdempotencyConflict { key, .. } if key == "order-42"),
            "{url}: {err}"
        );
        // Which call holds the key is not told: it may be another caller's.
        assert!(!err.to_string().contains(first.0.as_str()), "{url}: {err}");
        assert_eq!(log.runs("echo").len(), 1, "{url}");
    })
    .await;
}
