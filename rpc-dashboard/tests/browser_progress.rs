//! A running call's progress moves on its page in a real browser, with no
//! reload: headless Chromium (through chromedriver) runs the page's own
//! script under the dashboard's Content-Security-Policy, which polls the
//! progress fragment. A worker in this process reports step after step as
//! the test lets it; the page must show each without being reloaded, and
//! the finished call's fragment stops the polling.

mod support;

use std::time::Duration;

use fantoccini::Locator;
use rpc_runtime::{CallOptions, Client, DynamicService, HandlerError, Worker};
use rpc_testkit::Tool;
use serde_json::json;
use support::browser::start_browser;
use support::Fixture;
use tokio::sync::watch;

/// How long any awaited event may take on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_calls_progress_moves_on_its_page_without_a_reload() {
    let test = "the browser progress test";
    let (Some(chromium), Some(driver)) = (
        Tool::Chromium.or_skip(test),
        Tool::Chromedriver.or_skip(test),
    ) else {
        return;
    };
    let scratch = std::env::temp_dir().join(format!(
        "rpc-dashboard-browser-progress-{}",
        std::process::id()
    ));
    let fixture = Fixture::start().await;
    // Step `i` is reported once the test has let it (`go >= i`).
    let (go, steps) = watch::channel(1u64);
    let service = DynamicService::new("Files").job("copy", move |req| {
        let mut steps = steps.clone();
        async move {
            for i in 1..=3u64 {
                tokio::time::timeout(PATIENCE, steps.wait_for(|go| *go >= i))
                    .await
                    .map_err(|_| HandlerError::fatal("never let go"))?
                    .map_err(|_| HandlerError::fatal("the test went away"))?;
                req.context
                    .progress((i, 3), format!("copied file {i}"))
                    .map_err(|e| HandlerError::fatal(e.to_string()))?;
            }
            tokio::time::timeout(PATIENCE, steps.wait_for(|go| *go >= 4))
                .await
                .map_err(|_| HandlerError::fatal("never let go"))?
                .map_err(|_| HandlerError::fatal("the test went away"))?;
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
            ..CallOptions::timeout(PATIENCE)
        })
        .send()
        .await
        .expect("the call goes out");
    let id = pending.id().clone();
    let deadline = std::time::Instant::now() + PATIENCE;
    while client.read_progress(&id).await.expect("a read").is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "step 1 was never written"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let served = support::serve(support::options(&fixture.url)).await;
    let (_driver, browser) = start_browser(&chromium, &driver, &scratch.join("profile")).await;
    let page = format!("{}/jobs/{id}", served.base);
    browser.goto(&page).await.expect("the call's page");
    let steps_shown = |browser: &fantoccini::Client| {
        let browser = browser.clone();
        async move {
            match browser.find(Locator::Css("#progress .steps")).await {
                Ok(element) => element.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            }
        }
    };
    assert_eq!(steps_shown(&browser).await, "1/3");
    for step in 2..=3u64 {
        go.send_replace(step);
        let deadline = std::time::Instant::now() + PATIENCE;
        while steps_shown(&browser).await != format!("{step}/3") {
            assert!(
                std::time::Instant::now() < deadline,
                "the page never showed step {step} by itself"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(
        browser.current_url().await.expect("the URL").as_str(),
        page,
        "no navigation"
    );
    let message = browser
        .find(Locator::Css("#progress .progress-message"))
        .await
        .expect("the message")
        .text()
        .await
        .expect("its text");
    assert_eq!(message, "copied file 3");

    go.send_replace(4);
    assert_eq!(pending.await.expect("the answer"), json!("copied"));
    let deadline = std::time::Instant::now() + PATIENCE;
    while browser
        .find(Locator::Css("#progress .progress-value[data-finished]"))
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the page never learned the call finished"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.close().await.expect("close the browser");
    running.stop().await;
    let _ = std::fs::remove_dir_all(&scratch);
}
