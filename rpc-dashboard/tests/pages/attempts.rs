//! Issue 21: the failures page listed dead letters only; an attempt that
//! failed and was retried, or a handler error answered to its caller, was
//! kept nowhere. Now a real worker records each in `P:{S}:failures` and the
//! page lists them, newest first, with the job, call, attempt, error, how
//! long it ran, the worker, and whether it is retried; searched by job
//! name or call id, and paged.

use std::time::{Duration, Instant};

use rpc_runtime::{Backoff, Client, DynamicService, HandlerError, Worker};

use super::*;

/// The `data-entry`s of the page's failed attempts, in order.
fn attempt_rows(page: &Page) -> Vec<&str> {
    page.body
        .split("<tr class=\"attempt-failure\" data-entry=\"")
        .skip(1)
        .filter_map(|row| row.split('"').next())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_attempts_are_listed_beside_the_dead_letters() {
    let fixture = Fixture::start().await;
    let service = DynamicService::new("Att")
        .job("flaky", |req| async move {
            if req.context.attempt() == 1 {
                tokio::time::sleep(Duration::from_millis(30)).await;
                return Err(HandlerError::retry("the cache was cold"));
            }
            Ok(json!("warm"))
        })
        .job("broken", |_req| async move {
            Err::<serde_json::Value, _>(HandlerError::fatal("the input is wrong"))
        });
    let worker = Worker::builder(&fixture.url)
        .mount(service)
        .consumer_name("host-b:77")
        .max_attempts(3)
        .backoff(Backoff::Exponential {
            base_ms: 50,
            max_ms: 500,
        })
        .build()
        .await
        .expect("a worker");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run_until(async {
        let _ = stopped.await;
    }));
    let client = Client::connect(&fixture.url).await.expect("a client");
    let opts = rpc_runtime::CallOptions::timeout(Duration::from_secs(30));
    client
        .call("Att.flaky", json!({}))
        .options(opts.clone())
        .await
        .expect("retried, then answered");
    client
        .call("Att.broken", json!({}))
        .options(opts.clone())
        .await
        .expect_err("answered with the error");

    let router = dashboard(support::options(&fixture.url));
    // Recorded after each completion: wait until both are.
    let deadline = Instant::now() + Duration::from_secs(60);
    let page = loop {
        let page = get(&router, "/failures").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        if attempt_rows(&page).len() == 2 {
            break page;
        }
        assert!(Instant::now() < deadline, "{}", page.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let table = &page.body[page.body.find("id=\"attempts\"").expect("the table")..];
    // Newest first: the error answered after the retried attempt.
    let broken_at = table.find("Att.broken").expect("Att.broken");
    let flaky_at = table.find("Att.flaky").expect("Att.flaky");
    assert!(broken_at < flaky_at, "{table:.2000}");
    assert!(
        table.contains("handler: the cache was cold"),
        "{table:.2000}"
    );
    assert!(table.contains("the input is wrong"));
    assert_eq!(table.matches("class=\"worker\">host-b:77<").count(), 2);
    assert_eq!(table.matches("class=\"retried\">retried<").count(), 1);
    assert_eq!(
        table
            .matches("class=\"retried\">answered with the error<")
            .count(),
        1
    );
    assert_eq!(table.matches("class=\"num attempt\">1<").count(), 2);
    assert!(!table.contains("class=\"duration\"><"), "durations shown");
    // Neither is a dead letter.
    assert!(page.body.contains("id=\"no-failures\""), "{}", page.body);

    // Searched by job name, and by call id.
    let found = get(&router, "/failures?q=Att.flaky").await;
    assert_eq!(attempt_rows(&found).len(), 1, "{}", found.body);
    let id = found
        .body
        .split("class=\"call-id\" href=\"/jobs/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the call's link")
        .to_owned();
    let by_id = get(&router, &format!("/failures?q={id}")).await;
    assert_eq!(attempt_rows(&by_id), attempt_rows(&found));

    // Paged: one row a page, the next older than the last shown.
    let first = get(&router, "/failures?max=1").await;
    let rows = attempt_rows(&first);
    assert_eq!(rows.len(), 1);
    assert!(first.body.contains("Att.broken"));
    let next = first
        .body
        .split("id=\"attempts-next\"")
        .next()
        .and_then(|head| head.rsplit("href=\"").next())
        .and_then(|href| href.split('"').next())
        .expect("a link to older attempts")
        .replace("&amp;", "&");
    let second = get(&router, &next).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    let second_rows = attempt_rows(&second);
    assert_eq!(second_rows.len(), 1, "{}", second.body);
    assert_ne!(second_rows, rows);
    assert!(!second.body.contains("id=\"attempts-next\""));

    let _ = stop.send(());
    running.await.expect("the worker task").expect("the worker");
}
