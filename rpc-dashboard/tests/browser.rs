//! The dashboard in a real browser: headless Chromium driven through
//! chromedriver (WebDriver, with fantoccini), against a private
//! redis-server, a Calculator worker in its own process, and the dashboard
//! serving on a free port.
//!
//! The worker process is this test binary started again with
//! `RPC_DASHBOARD_TEST_WORKER_URL` set and `--include-ignored`, which makes
//! `serves_the_calculator_when_started_as_the_worker_process` run the
//! Calculator worker until it is killed (it returns at once otherwise): a
//! real second process running the real example service, with no binary of
//! another crate to find.
//!
//! Screenshots go to a temporary folder, or to `docs/dashboard/` with
//! `UPDATE_DASHBOARD_SCREENSHOTS=1`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client as Browser, Locator};
use rpc_testkit::{ChildGuard, Tool};
use serde_json::json;
use support::browser::start_browser;
use support::{dead_message, Fixture};

const WORKER_URL_VAR: &str = "RPC_DASHBOARD_TEST_WORKER_URL";

/// Not a test of its own: the body of the worker process the browser test
/// starts (see the module docs). Ignored, so that a plain run does not
/// count it as a passing test when it did nothing; the browser test runs it
/// with `--include-ignored`.
#[test]
#[ignore = "the worker process of the browser test; runs only when started by it"]
fn serves_the_calculator_when_started_as_the_worker_process() {
    let Ok(url) = std::env::var(WORKER_URL_VAR) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    runtime.block_on(async {
        let worker = rpc_runtime::Worker::builder(&url)
            .mount(calculator::CalculatorServer::new(calculator::Calc))
            .build()
            .await
            .expect("the worker starts");
        println!("worker ready");
        let _ = worker.run().await;
    });
}

fn start_worker(url: &str) -> ChildGuard {
    let exe = std::env::current_exe().expect("the test binary's path");
    ChildGuard::spawn(
        Command::new(exe)
            .args([
                "serves_the_calculator_when_started_as_the_worker_process",
                "--exact",
                "--include-ignored",
                "--nocapture",
            ])
            .env(WORKER_URL_VAR, url)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null()),
    )
    .expect("spawn the worker process")
}

/// Where screenshots go.
fn screenshot_dir(scratch: &Path) -> PathBuf {
    if std::env::var_os("UPDATE_DASHBOARD_SCREENSHOTS").is_some() {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/dashboard"))
    } else {
        scratch.join("screenshots")
    }
}

async fn text(browser: &Browser, css: &str) -> String {
    match browser.find(Locator::Css(css)).await {
        Ok(element) => element.text().await.unwrap_or_default(),
        Err(e) => panic!("no `{css}` on {:?}: {e}", browser.current_url().await.ok()),
    }
}

async fn count(browser: &Browser, css: &str) -> usize {
    browser
        .find_all(Locator::Css(css))
        .await
        .map(|found| found.len())
        .unwrap_or(0)
}

async fn goto(browser: &Browser, url: &str) {
    browser
        .goto(url)
        .await
        .unwrap_or_else(|e| panic!("cannot load {url}: {e}"));
}

/// Clicks `css` and waits until the page it leads to shows `then`.
async fn submit(browser: &Browser, css: &str, then: &str) {
    click(browser, css).await;
    browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(then))
        .await
        .unwrap_or_else(|e| panic!("clicking `{css}` never led to `{then}`: {e}"));
}

async fn click(browser: &Browser, css: &str) {
    let element = browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no `{css}` to click: {e}"));
    element.click().await.expect("click");
}

async fn screenshot(browser: &Browser, dir: &Path, name: &str) {
    let png = browser.screenshot().await.expect("screenshot");
    std::fs::create_dir_all(dir).expect("screenshot folder");
    std::fs::write(dir.join(name), png).expect("write screenshot");
}

/// Reloads `url` until `css` is on the page (the worker runs asynchronously).
async fn wait_for(browser: &Browser, url: &str, css: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        goto(browser, url).await;
        if browser.find(Locator::Css(css)).await.is_ok() {
            return;
        }
        assert!(Instant::now() < deadline, "`{css}` never appeared on {url}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Another site on a free port: every request gets a page that posts a
/// form to `action` with `csrf` in it as soon as it loads. Returns its URL.
async fn attacker_site(action: &str, csrf: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the other site");
    let url = format!("http://{}/", listener.local_addr().expect("address"));
    let page = format!(
        "<!doctype html><form id=\"f\" method=\"post\" action=\"{action}\">\
         <input name=\"csrf\" value=\"{csrf}\"></form>\
         <script>document.getElementById('f').submit()</script>"
    );
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await;
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{page}",
                page.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sees_and_fixes_the_queues_in_a_real_browser() {
    // Every page loads with the figures the test put in Redis; a dead letter
    // replayed from the page runs on the worker; an invalid form shows its
    // error beside the field; `<script>` in a message stays text; Pause
    // (through its confirm dialog) shows the badge, Cancel takes a call off
    // the schedule, Resume clears the badge. Another site's form carrying
    // the CSRF token is refused by origin; a large message shows its start
    // and a download link.
    // Skipped when they are not installed, unless the run requires every
    // tool (scripts/test, CI): then it fails.
    let test = "the browser test";
    let (Some(chromium), Some(driver)) = (
        Tool::Chromium.or_skip(test),
        Tool::Chromedriver.or_skip(test),
    ) else {
        return;
    };
    let scratch =
        std::env::temp_dir().join(format!("rpc-dashboard-browser-{}", std::process::id()));
    let shots = screenshot_dir(&scratch);
    let fixture = Fixture::start().await;
    let url = fixture.url.clone();

    // What the pages must show.
    fixture
        .lease_jobs("Reports", "report-builder-1", 3, 1)
        .await;
    // Reports' schedule: two delayed calls, as the worker that took them
    // early left them (Reports has no worker here: its jobs stay as the
    // fixture leased them), and a retry waiting out its backoff.
    let mut delayed = Vec::new();
    for (minutes, month) in [(10u64, "2024-05"), (120, "2024-06")] {
        let id = format!("report-{month}");
        let run_at = fixture.server_ms().await + minutes * 60_000;
        let message = serde_json::to_vec(&json!({
            "v": 2, "id": id, "job": "Reports.build", "params": {"month": month},
            "timeout_ms": 30_000, "attempt": 1, "run_at_ms": run_at,
        }))
        .expect("JSON");
        fixture.schedule_raw("Reports", &id, run_at, &message).await;
        delayed.push(id);
    }
    let retry = serde_json::to_vec(&json!({
        "v": 1, "id": "report-retry-1", "job": "Reports.build", "params": {"month": "2024-04"},
        "attempt": 2, "max_attempts": 5,
    }))
    .expect("JSON");
    let due = fixture.server_ms().await + 45_000;
    fixture
        .schedule_raw("Reports", "report-retry-1", due, &retry)
        .await;
    let replayable = fixture
        .dead_letter(
            "Calculator",
            "failed on attempt 3 of 3: the database was down",
            &dead_message(
                "call-to-replay",
                "Calculator.add",
                json!({"a": 20, "b": 22}),
            ),
        )
        .await;
    let hostile = fixture
        .dead_letter(
            "Calculator",
            "failed on attempt 3 of 3: <script>document.title='pwned'</script>",
            &dead_message(
                "call-with-script",
                "Calculator.log",
                json!({"line": "<script>document.title='pwned'</script>"}),
            ),
        )
        .await;
    fixture
        .dead_letter(
            "Calculator",
            "bad_request: a is not an integer",
            &dead_message(
                "call-with-bad-params",
                "Calculator.add",
                json!({"a": "one", "b": 2}),
            ),
        )
        .await;
    let mut worker = start_worker(&url);
    // Garbage queued for the worker: it dead-letters it as unreadable.
    fixture
        .push_raw("Calculator", b"\xff\xfe not json <b>at all</b>")
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while fixture.len("rpc:{Calculator}:dead").await < 4 {
        assert!(
            Instant::now() < deadline,
            "the worker never dead-lettered the garbage"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The last 29 days' counts, as workers would have left them, for the
    // 30-day chart; today's come from the worker process below.
    let days = rpc_runtime::inspect::last_days(fixture.server_ms().await, 30);
    let keys = rpc_protocol::Keys::new("rpc");
    let mut con = fixture.connection();
    for (i, day) in days.iter().take(29).enumerate() {
        let i = i as u64;
        for (key, n) in [
            (
                keys.stat_processed("Calculator", day),
                400 + (i * 137) % 300,
            ),
            (keys.stat_failed("Calculator", day), (i * 7) % 40),
        ] {
            let _: () = redis::cmd("SET")
                .arg(key)
                .arg(n)
                .query_async(&mut con)
                .await
                .expect("SET a day's count");
        }
    }

    let served = support::serve(support::options(&url)).await;
    let base = served.base.clone();
    let (mut driver_process, browser) =
        start_browser(&chromium, &driver, &scratch.join("profile")).await;

    // Calls flowing at a changing pace while the dashboard samples, for the charts.
    let (stop_traffic, traffic) = tokio::sync::watch::channel(false);
    let caller = rpc_runtime::Client::connect(&url).await.expect("client");
    let calls = tokio::spawn(async move {
        let mut n = 0u64;
        while !*traffic.borrow() {
            let _ = caller
                .call_and_wait("Calculator.add", json!({"a": n, "b": 1}))
                .await;
            n += 1;
            tokio::time::sleep(Duration::from_millis(5 + (n / 20 % 4) * 10)).await;
        }
    });

    // Overview: one row per service with the figures put there, and charts
    // (reloaded until the dashboard has sampled the traffic three times).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        goto(&browser, &format!("{base}/")).await;
        let points = browser
            .find(Locator::Css(
                "tr[data-service='Calculator'] svg.in polyline",
            ))
            .await
            .expect("the jobs-in chart")
            .attr("points")
            .await
            .expect("points");
        if points.as_deref().is_some_and(|p| p.split(' ').count() >= 3) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the chart never had three samples: {points:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        text(&browser, "tr[data-service='Reports'] td.queued").await,
        "2"
    );
    assert_eq!(
        text(&browser, "tr[data-service='Reports'] td.leased span.n").await,
        "1"
    );
    assert_eq!(
        text(&browser, "tr[data-service='Reports'] td.consumers").await,
        "1"
    );
    assert_eq!(
        text(&browser, "tr[data-service='Calculator'] td.dead").await,
        "4"
    );
    assert_eq!(
        text(&browser, "tr[data-service='Calculator'] td.consumers").await,
        "1"
    );
    // Today's bar: the worker process flushes what it counted every 5 s.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        goto(&browser, &format!("{base}/")).await;
        let today = browser
            .find(Locator::Css(&format!(
                "#daily-all g.day[data-day='{}']",
                days[29]
            )))
            .await
            .expect("today's bar")
            .attr("data-processed")
            .await
            .expect("its count");
        if today
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n > 0)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the worker's counts never reached the chart"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(count(&browser, "#daily-all g.day").await, 30);
    screenshot(&browser, &shots, "overview.png").await;
    let _ = stop_traffic.send(true);
    calls.await.expect("the calls stop");
    assert_eq!(
        text(&browser, "tr[data-service='Reports'] td.scheduled").await,
        "3"
    );

    // Service: the job in flight with its worker and attempt.
    goto(&browser, &format!("{base}/services/Reports")).await;
    assert_eq!(
        text(&browser, "tr.leased td.consumer").await,
        "report-builder-1"
    );
    assert_eq!(count(&browser, "tr.queued").await, 2);
    assert_eq!(text(&browser, "#count-scheduled").await, "3");
    assert_eq!(count(&browser, "tr.scheduled").await, 3);
    screenshot(&browser, &shots, "service-in-flight.png").await;

    // Pause (after the confirm dialog): the badge, here and on the overview.
    click(&browser, "#pause").await;
    browser.accept_alert().await.expect("the confirm dialog");
    browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#paused-badge"))
        .await
        .expect("the paused badge");
    assert!(text(&browser, "#notice").await.contains("Service paused"));
    // Cancel one delayed call: it leaves the schedule.
    let cancel = format!("tr.scheduled[data-id='{}'] button.cancel", delayed[1]);
    click(&browser, &cancel).await;
    browser.accept_alert().await.expect("the confirm dialog");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !browser
        .current_url()
        .await
        .is_ok_and(|u| u.as_str().contains("notice=cancelled"))
    {
        assert!(Instant::now() < deadline, "the cancel never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(text(&browser, "#notice").await.contains("Call cancelled"));
    assert_eq!(count(&browser, "tr.scheduled").await, 2);
    assert!(text(
        &browser,
        "tr.scheduled[data-id='report-retry-1'] td.attempt"
    )
    .await
    .contains("retry"));
    goto(&browser, &format!("{base}/services/Reports#scheduled")).await;
    screenshot(&browser, &shots, "service-scheduled.png").await;
    goto(&browser, &format!("{base}/")).await;
    assert_eq!(
        count(&browser, "tr[data-service='Reports'] .badge.paused").await,
        1
    );
    goto(&browser, &format!("{base}/services/Reports")).await;
    submit(&browser, "#resume", "#pause").await;
    assert_eq!(count(&browser, "#paused-badge").await, 0);

    // Dead letters: reasons, typed params, the unreadable one, `<script>` as text.
    goto(&browser, &format!("{base}/services/Calculator")).await;
    let hostile_row = format!("tr[data-token='{hostile}']");
    assert!(text(&browser, &format!("{hostile_row} td.reason"))
        .await
        .contains("<script>document.title='pwned'</script>"));
    assert!(text(&browser, &format!("{hostile_row} pre.value"))
        .await
        .contains("<script>"));
    assert_eq!(count(&browser, "script").await, 1, "only our own script");
    assert_ne!(browser.title().await.expect("title"), "pwned");
    let unreadable = text(&browser, "div.message.unreadable pre.raw").await;
    assert!(
        unreadable.contains("\\xff\\xfe not json <b>at all</b>"),
        "{unreadable}"
    );
    assert!(text(&browser, "ul.problems")
        .await
        .contains("\"one\" is not of type \"integer\""));
    assert!(text(
        &browser,
        &format!("tr[data-token='{replayable}'] table.params")
    )
    .await
    .contains("i64"));
    screenshot(&browser, &shots, "service-dead-letters.png").await;

    // Replay: the dead letter leaves the list, runs, and its result is kept.
    let replay = format!("tr[data-token='{replayable}'] button.replay");
    submit(&browser, &replay, "#notice").await;
    assert!(text(&browser, "#notice")
        .await
        .contains("Replayed 1 dead letter"));
    wait_for(
        &browser,
        &format!("{base}/jobs/call-to-replay"),
        "#state-done",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(text(&browser, "#reply-value").await, "42");

    // A form built from the schema: an invalid value is refused beside its field.
    goto(
        &browser,
        &format!("{base}/services/Calculator/jobs/sum/new"),
    )
    .await;
    let values = browser
        .find(Locator::Css("textarea[name='p.values']"))
        .await
        .expect("values input");
    values
        .send_keys(r#"[{"label": "no value"}]"#)
        .await
        .expect("type");
    submit(&browser, "#submit", "#error-values").await;
    let error = text(&browser, "#error-values").await;
    assert!(
        error.contains("\"value\" is a required property"),
        "{error}"
    );
    screenshot(&browser, &shots, "form-error.png").await;

    // The same form, valid: the call is enqueued, runs, and its page shows the answer.
    let values = browser
        .find(Locator::Css("textarea[name='p.values']"))
        .await
        .expect("values input");
    values.clear().await.expect("clear");
    values
        .send_keys(r#"[{"value": 1.5}, {"value": 2}]"#)
        .await
        .expect("type");
    submit(&browser, "#submit", "#call-id").await;
    let call_page = browser.current_url().await.expect("url").to_string();
    assert!(call_page.contains("/jobs/"), "{call_page}");
    wait_for(&browser, &call_page, "#state-done", Duration::from_secs(20)).await;
    let reply = text(&browser, "#reply-fields").await;
    assert!(
        reply.contains("value") && reply.contains("f64") && reply.contains("3.5"),
        "{reply}"
    );
    screenshot(&browser, &shots, "job.png").await;

    // Workers: the Calculator worker process from its heartbeat (live,
    // running, its pid, Quiet and Stop), and below, the consumers: its own
    // and the one holding Reports' job.
    let workers = format!("{base}/workers");
    wait_for(
        &browser,
        &workers,
        "#live-workers tr.live",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(count(&browser, "#live-workers tr.live").await, 1);
    assert_eq!(
        text(&browser, "#live-workers tr.live td.state").await,
        "running"
    );
    let pid = text(&browser, "#live-workers tr.live td.pid").await;
    assert!(pid.parse::<u32>().is_ok_and(|p| p > 0), "{pid:?}");
    assert_eq!(
        text(&browser, "#live-workers tr.live td.services").await,
        "Calculator"
    );
    assert_eq!(
        count(&browser, "#live-workers tr.live button.quiet").await,
        1
    );
    assert_eq!(
        count(&browser, "#live-workers tr.live button.stop").await,
        1
    );
    assert_eq!(
        text(
            &browser,
            "tr[data-consumer='report-builder-1'] td.in-flight"
        )
        .await,
        "1"
    );
    assert_eq!(count(&browser, "#workers tbody tr").await, 2);
    screenshot(&browser, &shots, "workers.png").await;

    // Failures: every dead letter, newest first, with its attempt and
    // error (`<script>` as text); a search by call id finds the one.
    goto(&browser, &format!("{base}/failures")).await;
    assert!(count(&browser, "tr.failure").await >= 3);
    assert!(text(&browser, "#failures")
        .await
        .contains("<script>document.title"));
    assert_ne!(browser.title().await.expect("title"), "pwned");
    screenshot(&browser, &shots, "failures.png").await;
    goto(&browser, &format!("{base}/failures?q=call-with-bad-params")).await;
    assert_eq!(count(&browser, "tr.failure").await, 1);
    assert_eq!(
        text(&browser, "tr.failure td.call").await,
        "call-with-bad-params"
    );
    assert!(text(&browser, "tr.failure td.reason")
        .await
        .contains("a is not an integer"));

    // The schema's doc comments beside each job and its parameters.
    goto(&browser, &format!("{base}/services/Calculator")).await;
    assert_eq!(
        text(&browser, "tr.job[data-job='add'] .job-doc").await,
        "Adds two numbers."
    );
    assert_eq!(count(&browser, "#daily-service g.day").await, 30);
    screenshot(&browser, &shots, "service-jobs.png").await;

    // Another site's page posts a form with this dashboard's CSRF token
    // (as if it had leaked): the browser names that site in `Origin` and
    // `Sec-Fetch-Site`, and the dashboard refuses; nothing is paused.
    goto(&browser, &format!("{base}/services/Reports")).await;
    let csrf = browser
        .find(Locator::Css("input[name='csrf']"))
        .await
        .expect("a form")
        .attr("value")
        .await
        .expect("its value")
        .expect("a CSRF token");
    let attacker = attacker_site(&format!("{base}/services/Reports/pause"), &csrf).await;
    goto(&browser, &attacker).await;
    browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#error-detail"))
        .await
        .expect("the dashboard's answer to the foreign form");
    assert_eq!(text(&browser, "h1").await, "Forbidden");
    assert!(text(&browser, "#error-detail")
        .await
        .contains("may not act on this dashboard"));
    goto(&browser, &format!("{base}/services/Reports")).await;
    assert_eq!(count(&browser, "#paused-badge").await, 0, "not paused");

    // A large message: its start, its size, and a link to the whole of it.
    let large = dead_message(
        "call-with-a-large-report",
        "Reports.build",
        json!({"month": "2024-07", "rows": "r".repeat(300 * 1024)}),
    );
    let large_token = fixture
        .dead_letter(
            "Archive",
            "failed on attempt 3 of 3: the report is too large",
            &large,
        )
        .await;
    goto(&browser, &format!("{base}/services/Archive")).await;
    assert_eq!(
        text(&browser, "#count-dead").await,
        "1",
        "counted without a queue"
    );
    let row = format!("tr[data-token='{large_token}']");
    assert!(text(&browser, &format!("{row} p.truncated"))
        .await
        .contains("its start is shown"));
    let link = browser
        .find(Locator::Css(&format!("{row} a.download")))
        .await
        .expect("a download link")
        .attr("href")
        .await
        .expect("href")
        .expect("a link");
    assert!(
        link.ends_with(&format!("/dead/{large_token}/message")),
        "{link}"
    );
    screenshot(&browser, &shots, "service-large-message.png").await;

    // An unknown service is a 404 page, not a panic.
    goto(&browser, &format!("{base}/services/NoSuchService")).await;
    assert_eq!(text(&browser, "h1").await, "Not found");

    browser.close().await.expect("close the browser");
    let _ = driver_process.kill_and_wait();
    let _ = worker.kill_and_wait();
    drop(served);
    let _ = std::fs::remove_dir_all(scratch.join("profile"));
}
