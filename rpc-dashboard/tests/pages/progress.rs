//! A call's progress on its page: the bar, the steps, the handler's
//! message (escaped) and when, from a real worker's report; the fragment
//! the page's script polls, which says when the call has finished; and a
//! value that is not progress shown as unreadable, not as a failed page.

use std::sync::Arc;
use std::time::Duration;

use rpc_runtime::{CallOptions, Client, DynamicService, HandlerError, Worker};
use tokio::sync::Notify;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_calls_page_shows_its_progress_and_the_fragment_keeps_it_live() {
    let fixture = Fixture::start().await;
    let release = Arc::new(Notify::new());
    let held = release.clone();
    let service = DynamicService::new("Files").job("copy", move |req| {
        let held = held.clone();
        async move {
            req.context
                .progress((3, 4), "copied <b>three</b> & more")
                .map_err(|e| HandlerError::fatal(e.to_string()))?;
            held.notified().await;
            Ok(json!("copied"))
        }
    });
    let worker = Worker::builder(&fixture.url)
        .mount(service)
        .build()
        .await
        .expect("a worker");
    let running = support::Running::spawn(worker);
    let client = Client::connect(&fixture.url).await.expect("a client");
    let pending = client
        .call("Files.copy", json!({}))
        .options(CallOptions {
            result_ttl: Some(Duration::from_secs(300)),
            ..CallOptions::timeout(Duration::from_secs(60))
        })
        .send()
        .await
        .expect("the call goes out");
    let id = pending.id().clone();
    // Until the worker has written the report.
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.read_progress(&id).await.expect("a read").is_none() {
        assert!(Instant::now() < deadline, "the progress was never written");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let router = dashboard(support::options(&fixture.url));
    let page = get(&router, &format!("/jobs/{id}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("<progress max=\"100\" value=\"75\">"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("<span class=\"steps\">3/4</span>"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("copied &#60;b&#62;three&#60;/b&#62; &#38; more")
            || page
                .body
                .contains("copied &lt;b&gt;three&lt;/b&gt; &amp; more"),
        "the message is escaped: {}",
        page.body
    );
    assert!(!page.body.contains("<b>three</b>"));
    assert!(page.body.contains("ago</span>"), "{}", page.body);
    assert!(
        page.body
            .contains(&format!("data-progress-url=\"/jobs/{id}/progress\"")),
        "a running call's progress is polled: {}",
        page.body
    );
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("connect-src 'self'"), "{csp}");

    let fragment = get(&router, &format!("/jobs/{id}/progress")).await;
    assert_eq!(fragment.status, StatusCode::OK);
    assert!(fragment.body.contains("value=\"75\""), "{}", fragment.body);
    assert!(
        !fragment.body.contains("data-finished"),
        "{}",
        fragment.body
    );
    assert!(!fragment.body.contains("<html"), "a fragment, not a page");

    // Garbage in the key: shown as unreadable.
    let key = format!("rpc:progress:{{{id}}}");
    fixture.redis.cli(["SET", &key, "{\"seq\": \"x\"}"]);
    let fragment = get(&router, &format!("/jobs/{id}/progress")).await;
    assert_eq!(fragment.status, StatusCode::OK);
    assert!(fragment.body.contains("unreadable"), "{}", fragment.body);

    release.notify_one();
    assert_eq!(pending.await.expect("the answer"), json!("copied"));
    let fragment = get(&router, &format!("/jobs/{id}/progress")).await;
    assert!(fragment.body.contains("data-finished"), "{}", fragment.body);
    let page = get(&router, &format!("/jobs/{id}")).await;
    assert!(
        !page.body.contains("data-progress-url"),
        "a finished call is not polled"
    );

    running.stop().await;
}
