//! The job lifecycle on the dashboard, over HTTP: the schedule counted and
//! listed, Cancel on calls that have yet to finish, Pause and Resume, each
//! refused without this process's CSRF token and in read-only mode. Delayed
//! calls are sent by the real client (`CallOptions::delay`) and put on the
//! schedule by a real worker; retries and garbage are written onto the
//! schedule by hand.

use std::time::Duration;

use calculator::{Calc, CalculatorServer};
use rpc_runtime::{CallOptions, Client, ErrorKind, Worker};

use super::*;

/// A retry waiting out its backoff, as the completion script leaves it.
fn retry_message(id: &str) -> Vec<u8> {
    let message = json!({
        "v": 1, "id": id, "job": "Calculator.add", "params": {"a": 1, "b": 2},
        "attempt": 2, "max_attempts": 3,
    });
    serde_json::to_vec(&message).expect("a JSON value serializes")
}

async fn client(fixture: &Fixture) -> Client {
    Client::connect(&fixture.url).await.expect("a client")
}

/// Sends `Calculator.add` due in `secs`, and waits until a worker has put
/// it on the schedule; returns its call id.
async fn delayed(fixture: &Fixture, client: &Client, secs: u64) -> String {
    let options = CallOptions::delay(Duration::from_secs(secs));
    let id = client
        .send("Calculator.add", json!({"a": 1, "b": 2}))
        .options(options.clone())
        .await
        .expect("a delayed call")
        .as_str()
        .to_owned();
    until_scheduled(fixture, &[&id]).await;
    id
}

/// Runs a worker until the calls `ids` are on `Calculator`'s schedule
/// (where a worker puts a delayed call it takes before its time).
async fn until_scheduled(fixture: &Fixture, ids: &[&str]) {
    let worker = Worker::builder(&fixture.url)
        .mount(CalculatorServer::new(Calc))
        .build()
        .await
        .expect("a worker");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run_until(async {
        let _ = stopped.await;
    }));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let on = fixture.scheduled_ids("Calculator").await;
        if ids.iter().all(|id| on.iter().any(|o| o == id)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never scheduled: {ids:?} not in {on:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop.send(());
    running.await.expect("the worker task").expect("the worker");
}

/// The HTML of the table row whose `attribute` is `value`.
fn row<'a>(page: &'a Page, attribute: &str, value: &str) -> &'a str {
    let marker = format!("{attribute}=\"{value}\"");
    let start = page
        .body
        .find(&marker)
        .unwrap_or_else(|| panic!("no row with {marker}:\n{}", page.body));
    let end = page.body[start..]
        .find("</tr>")
        .map_or(page.body.len(), |n| start + n);
    &page.body[start..end]
}

fn cancel_path(service: &str, id: &str) -> String {
    format!("/services/{service}/calls/{id}/cancel")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_is_counted_on_the_overview_and_listed_on_the_pages() {
    // Two delayed calls, a retry and an entry holding no job message: the
    // overview counts them, the service page lists them soonest first with
    // a link, due time, attempt, job and Cancel, the call's page says when
    // it is due.
    let fixture = Fixture::start().await;
    let client = client(&fixture).await;
    let soon = delayed(&fixture, &client, 60).await;
    let later = delayed(&fixture, &client, 3_600).await;
    let now = fixture.server_ms().await;
    fixture
        .schedule_raw(
            "Calculator",
            "retry-1",
            now + 30_000,
            &retry_message("retry-1"),
        )
        .await;
    fixture
        .schedule_raw("Calculator", "garbage", now + 90_000, b"\xff not json")
        .await;
    let router = dashboard(support::options(&fixture.url));

    let overview = get(&router, "/").await;
    let calculator = row(&overview, "data-service", "Calculator");
    assert!(
        calculator.contains("<td class=\"num scheduled\">4</td>"),
        "{calculator}"
    );
    assert!(!calculator.contains("badge paused"));

    let page = get(&router, "/services/Calculator").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("id=\"count-scheduled\">4<"));
    let order: Vec<usize> = ["retry-1", &soon, "garbage", &later]
        .iter()
        .map(|id| page.body.find(&format!("data-id=\"{id}\"")).expect("a row"))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "soonest first");
    for id in ["retry-1", &soon, "garbage", &later] {
        let html = row(&page, "data-id", id);
        assert!(html.contains(&format!("href=\"/jobs/{id}\"")), "{html}");
        assert!(
            html.contains(&format!("action=\"{}\"", cancel_path("Calculator", id))),
            "{html}"
        );
        assert!(html.contains("class=\"due\">in "), "{html}");
    }
    let retry = row(&page, "data-id", "retry-1");
    assert!(
        retry.contains(">2 <span class=\"badge retry\">retry</span>"),
        "{retry}"
    );
    assert!(retry.contains("Calculator.add"));
    let first = row(&page, "data-id", &soon);
    assert!(
        first.contains(">1</td>") && !first.contains("badge retry"),
        "{first}"
    );
    assert!(row(&page, "data-id", &later).contains("class=\"due\">in 59m"));
    assert!(row(&page, "data-id", "garbage").contains("unreadable"));

    let call = get(&router, &format!("/jobs/{soon}")).await;
    assert_eq!(call.status, StatusCode::OK, "{}", call.body);
    assert!(call.body.contains("state-scheduled\">scheduled</span>"));
    assert!(call.body.contains("(due in "), "{}", call.body);
    assert!(call
        .body
        .contains(&format!("action=\"{}\"", cancel_path("Calculator", &soon))));
    let retry_call = get(&router, "/jobs/retry-1").await;
    assert!(
        retry_call.body.contains("a retry: attempt 2"),
        "{}",
        retry_call.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_scheduled_call_takes_it_off_the_schedule_and_its_caller_hears_cancelled() {
    // Cancel from the service page: the call leaves the schedule at once,
    // the other stays, and the worker that takes it answers its caller
    // `cancelled` without running it.
    let fixture = Fixture::start().await;
    let client = client(&fixture).await;
    let options = CallOptions::delay(Duration::from_secs(600));
    let pending = client
        .call("Calculator.add", json!({"a": 1, "b": 2}))
        .options(options.clone())
        .send()
        .await
        .expect("a delayed call");
    let id = pending.id().as_str().to_owned();
    let other = delayed(&fixture, &client, 600).await;
    until_scheduled(&fixture, &[&id]).await;
    let router = dashboard(support::options(&fixture.url));
    let csrf = csrf_of(&get(&router, "/services/Calculator").await);

    let done = post(
        &router,
        &cancel_path("Calculator", &id),
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(
        done.headers[header::LOCATION],
        "/services/Calculator?notice=cancelled"
    );
    assert_eq!(fixture.scheduled_ids("Calculator").await, [other.as_str()]);
    let page = get(&router, "/services/Calculator?notice=cancelled").await;
    assert!(page.body.contains("Call cancelled"), "{}", page.body);
    assert!(page.body.contains("id=\"count-scheduled\">1<"));
    assert!(!page.body.contains(&format!("data-id=\"{id}\"")));

    let worker = Worker::builder(&fixture.url)
        .mount(CalculatorServer::new(Calc))
        .build()
        .await
        .expect("a worker");
    let running = tokio::spawn(worker.run());
    let answer = tokio::time::timeout(Duration::from_secs(20), pending.wait())
        .await
        .expect("the caller is answered");
    let error = answer.expect_err("a cancelled call has no result");
    assert_eq!(error.remote_kind(), Some(ErrorKind::Cancelled), "{error}");
    assert_eq!(
        fixture.scheduled_ids("Calculator").await,
        [other],
        "the other call still waits"
    );
    running.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_marks_a_running_call_and_refuses_calls_it_cannot_see() {
    // A job a worker holds is marked cancelled for its worker to stop; an
    // id no service has, an unknown service or an id too long to be one is
    // a 404 page that marks nothing.
    let fixture = Fixture::start().await;
    fixture
        .lease_jobs("Reports", "report-builder-1", 2, 1)
        .await;
    let router = dashboard(support::options(&fixture.url));
    let page = get(&router, "/services/Reports").await;
    for id in ["Reports-job-0", "Reports-job-1"] {
        assert!(
            page.body.contains(&cancel_path("Reports", id)),
            "Cancel on the running and the queued job: {id}"
        );
    }
    let call = get(&router, "/jobs/Reports-job-0").await;
    assert!(call.body.contains("state-running"));
    assert!(call.body.contains(&cancel_path("Reports", "Reports-job-0")));
    let form = format!("csrf={}", csrf_of(&page));

    let done = post(&router, &cancel_path("Reports", "Reports-job-0"), &form).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(
        done.headers[header::LOCATION],
        "/services/Reports?notice=cancelling"
    );
    assert!(
        fixture
            .is_marked_cancelled("Reports", "Reports-job-0")
            .await
    );
    let notice = get(&router, "/services/Reports?notice=cancelling").await;
    assert!(notice.body.contains("Cancellation sent"));

    let too_long = "x".repeat(300);
    for path in [
        cancel_path("Reports", "no-such-call"),
        cancel_path("NoSuchService", "Reports-job-1"),
        cancel_path("Reports", &too_long),
    ] {
        let refused = post(&router, &path, &form).await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND, "{path}");
        assert!(refused.body.contains("<h1>Not found</h1>"), "{path}");
    }
    assert!(!fixture.is_marked_cancelled("Reports", "no-such-call").await);
    assert!(
        !fixture
            .is_marked_cancelled("NoSuchService", "Reports-job-1")
            .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_flip_the_services_flag_and_the_pages_show_it() {
    // The client's own `is_paused` sees what the buttons did; the overview
    // and the service page carry the badge while it lasts.
    let fixture = Fixture::start().await;
    let client = client(&fixture).await;
    let router = dashboard(support::options(&fixture.url));
    let page = get(&router, "/services/Calculator").await;
    assert!(page.body.contains("id=\"pause\""));
    assert!(!page.body.contains("paused-badge"));
    let form = format!("csrf={}", csrf_of(&page));

    let paused = post(&router, "/services/Calculator/pause", &form).await;
    assert_eq!(paused.status, StatusCode::SEE_OTHER, "{}", paused.body);
    assert_eq!(
        paused.headers[header::LOCATION],
        "/services/Calculator?notice=paused"
    );
    assert!(client.is_paused("Calculator").await.expect("is_paused"));
    let overview = get(&router, "/").await;
    assert!(row(&overview, "data-service", "Calculator").contains("badge paused"));
    let page = get(&router, "/services/Calculator?notice=paused").await;
    assert!(page.body.contains("id=\"paused-badge\""));
    assert!(page.body.contains("id=\"resume\"") && !page.body.contains("id=\"pause\""));
    assert!(page.body.contains("Service paused"));

    let resumed = post(&router, "/services/Calculator/resume", &form).await;
    assert_eq!(resumed.status, StatusCode::SEE_OTHER, "{}", resumed.body);
    assert!(!client.is_paused("Calculator").await.expect("is_paused"));
    assert!(!get(&router, "/").await.body.contains("badge paused"));

    let unknown = post(&router, "/services/NoSuchService/pause", &form).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(!client.is_paused("NoSuchService").await.expect("is_paused"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_actions_need_the_csrf_token_and_read_only_offers_and_takes_none() {
    // A form posted from another site cannot cancel or pause; a read-only
    // dashboard shows the schedule and the state but no button, and refuses
    // the POST.
    let fixture = Fixture::start().await;
    let client = client(&fixture).await;
    let id = delayed(&fixture, &client, 600).await;
    let router = dashboard(support::options(&fixture.url));
    let actions = [
        cancel_path("Calculator", &id),
        "/services/Calculator/pause".to_owned(),
    ];
    for path in &actions {
        for form in ["", "csrf=guessed"] {
            let refused = post(&router, path, form).await;
            assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path} {form:?}");
        }
    }
    assert_eq!(fixture.scheduled_ids("Calculator").await, [id.as_str()]);
    assert!(!client.is_paused("Calculator").await.expect("is_paused"));

    client.pause("Calculator").await.expect("pause");
    let mut options = support::options(&fixture.url);
    options.read_only = true;
    let read_only = dashboard(options);
    for path in ["/", "/services/Calculator", &format!("/jobs/{id}")] {
        let page = get(&read_only, path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(!page.body.contains("method=\"post\""), "{path} posts");
        assert!(!page.body.contains("/cancel\""), "{path} offers Cancel");
    }
    let page = get(&read_only, "/services/Calculator").await;
    assert!(page.body.contains(&format!("data-id=\"{id}\"")), "listed");
    assert!(page.body.contains("id=\"paused-badge\""), "shown paused");
    assert!(!page.body.contains("id=\"resume\""));
    for path in actions
        .iter()
        .chain(&["/services/Calculator/resume".to_owned()])
    {
        let refused = post(&read_only, path, "csrf=x").await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(fixture.scheduled_ids("Calculator").await, [id]);
    assert!(client.is_paused("Calculator").await.expect("is_paused"));
}
