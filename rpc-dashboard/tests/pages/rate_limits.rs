//! Issue 24 point 5: a service's rate limits on its page. A real worker
//! whose job `Mail.send` is limited to 1/m (and its service to 100/s) is
//! sent two calls: the page's "Rate limits" table shows each limit, starts
//! in the last second, the call waiting for its turn, and the starts
//! allowed. What a limit's state holds is escaped like everything else.

use std::time::Duration;

use rpc_runtime::{CallOptions, Client, DynamicService, Inspector, Worker};

use super::*;

/// The figure of column `class` in the rate limits table's row of `job`
/// (empty for the service's own limit).
fn limit_figure(page: &Page, job: &str, class: &str) -> String {
    let row = format!("<tr class=\"rate-limit\" data-job=\"{job}\">");
    row_figure(page, &row, class)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_services_page_shows_its_rate_limits_and_the_calls_waiting_for_a_turn() {
    let fixture = Fixture::start().await;
    let service = DynamicService::new("Mail")
        .job("send", |req| async move { Ok(req.data) })
        .rate_limit(Some("send"), "1/m".parse().unwrap())
        .rate_limit(None, "100/s".parse().unwrap());
    let worker = Worker::builder(&fixture.url)
        .mount(service)
        .build()
        .await
        .expect("worker");
    let running = support::Running::spawn(worker);
    let client = Client::connect(&fixture.url).await.expect("client");
    for i in 0..2 {
        client
            .send("Mail.send", json!(i))
            .options(CallOptions::timeout(Duration::from_secs(600)))
            .await
            .expect("send");
    }
    let inspector = Inspector::connect(&fixture.url, "rpc").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !inspector
        .rate_limits("Mail")
        .await
        .unwrap()
        .iter()
        .any(|l| l.state.waiting == 1)
    {
        assert!(Instant::now() < deadline, "no call waits for its turn");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let router = dashboard(support::options(&fixture.url));

    let page = get(&router, "/services/Mail").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("<section id=\"rate-limits\">"));
    assert!(page.body.contains("<code class=\"rate\">1/m</code>"));
    assert!(page.body.contains("<code class=\"rate\">100/s</code>"));
    let figures = |job: &str| {
        ["rate-waiting", "rate-allowed", "rate-waited"].map(|c| limit_figure(&page, job, c))
    };
    assert_eq!(figures("send"), ["1", "1", "1"]);
    assert_eq!(figures(""), ["0", "1", "1"]);
    for job in ["send", ""] {
        let last: u64 = limit_figure(&page, job, "rate-last-second")
            .parse()
            .unwrap();
        assert!(last <= 1, "{last}");
    }
    // The service's own limit first.
    let own = page.body.find("data-job=\"\"").unwrap();
    let send = page.body.find("data-job=\"send\"").unwrap();
    assert!(own < send);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limits_state_is_escaped_and_a_service_without_limits_has_no_table() {
    let fixture = Fixture::start().await;
    fixture
        .push_raw(
            "Calculator",
            &job_message("c1", "Calculator.add", json!({})),
        )
        .await;
    let router = dashboard(support::options(&fixture.url));
    let page = get(&router, "/services/Calculator").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(!page.body.contains("rate-limits"), "no limits, no table");

    let evil = "<script>alert(1)";
    let key = format!("rpc:{{Calculator}}:rate:{evil}");
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg("rate")
        .arg("<img src=x onerror=alert(1)>")
        .arg("allowed")
        .arg("<b>")
        .query_async(&mut fixture.connection())
        .await
        .unwrap();
    let page = get(&router, "/services/Calculator").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(!page.body.contains("<script>alert"), "{}", page.body);
    assert!(!page.body.contains("<img src=x"), "{}", page.body);
    assert!(page.body.contains("&#60;script&#62;alert(1)"));
    assert!(page.body.contains("&#60;img src=x"));
    let escaped = "&#60;script&#62;alert(1)";
    assert_eq!(limit_figure(&page, escaped, "rate-allowed"), "0");
}
