//! What the dashboard keeps across its restarts, and what the badges of a
//! finished call say: the chart of jobs processed and failed per day is
//! read from the counters a real worker flushes into Redis, so a new
//! dashboard process draws the same bars; a call that was dead-lettered or
//! cancelled is not shown as `done`.

use std::time::Duration;

use calculator::{Calc, CalculatorServer};
use rpc_protocol::Keys;
use rpc_runtime::{Client, Worker};

use super::*;

/// The `data-processed`/`data-failed` of `day`'s bars in the chart `id`.
fn bar(page: &Page, id: &str, day: &str) -> (u64, u64) {
    let chart = &page.body[page.body.find(&format!("id=\"{id}\"")).expect(id)..];
    let at = chart
        .find(&format!("data-day=\"{day}\""))
        .unwrap_or_else(|| panic!("no bar for {day} in {id}"));
    let attr = |name: &str| -> u64 {
        let rest = &chart[at..];
        let from = rest.find(&format!("{name}=\"")).expect(name) + name.len() + 2;
        rest[from..]
            .split('"')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a count")
    };
    (attr("data-processed"), attr("data-failed"))
}

/// Issue 21: the dashboard had no history; after a restart its charts were
/// empty. Now a real worker counts 3 calls that succeeded and 2 that
/// failed (divisions by zero), flushes them when it stops, and a first
/// dashboard and then a second one, built afresh over the same Redis,
/// both chart them under today, beside a count written for an older day.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_chart_comes_from_redis_and_survives_a_restart_of_the_dashboard() {
    let fixture = Fixture::start().await;
    let worker = Worker::builder(&fixture.url)
        .mount(CalculatorServer::new(Calc))
        .build()
        .await
        .expect("a worker");
    let running = support::Running::spawn(worker);
    let client = Client::connect(&fixture.url).await.expect("a client");
    let opts = rpc_runtime::CallOptions::timeout(Duration::from_secs(30));
    for i in 0..3 {
        client
            .call("Calculator.add", json!({"a": i, "b": 1}))
            .options(opts.clone())
            .await
            .expect("an addition");
    }
    for _ in 0..2 {
        client
            .call("Calculator.divide", json!({"a": 1.0, "b": 0.0}))
            .options(opts.clone())
            .await
            .expect_err("a division by zero fails");
    }
    running.stop().await;

    // An older day, as workers would have left it.
    let now = fixture.server_ms().await;
    let days = rpc_runtime::inspect::last_days(now, 30);
    let (old_day, today) = (days[3].clone(), days[29].clone());
    let keys = Keys::new("rpc");
    let mut con = fixture.connection();
    let _: () = redis::cmd("SET")
        .arg(keys.stat_processed("Calculator", &old_day))
        .arg(40)
        .query_async(&mut con)
        .await
        .expect("SET");
    let _: () = redis::cmd("SET")
        .arg(keys.stat_failed("Calculator", &old_day))
        .arg(4)
        .query_async(&mut con)
        .await
        .expect("SET");
    // Garbage where a count should be reads as 0, not as an error page.
    let _: () = redis::cmd("SET")
        .arg(keys.stat_failed("Calculator", &days[5]))
        .arg("lots")
        .query_async(&mut con)
        .await
        .expect("SET");

    for restart in 0..2 {
        let router = dashboard(support::options(&fixture.url));
        let overview = get(&router, "/").await;
        assert_eq!(overview.status, StatusCode::OK, "{}", overview.body);
        assert_eq!(bar(&overview, "daily-all", &today), (5, 2), "run {restart}");
        assert_eq!(
            bar(&overview, "daily-all", &old_day),
            (40, 4),
            "run {restart}"
        );
        assert_eq!(
            bar(&overview, "daily-all", &days[5]),
            (0, 0),
            "run {restart}"
        );
        let service = get(&router, "/services/Calculator").await;
        assert_eq!(service.status, StatusCode::OK, "{}", service.body);
        assert_eq!(bar(&service, "daily-service", &today), (5, 2));
        assert!(service.body.contains("class=\"total-processed\">45<"));
    }
    // Every count expires: nothing of the history grows without bound.
    let ttl: i64 = redis::cmd("TTL")
        .arg(keys.stat_processed("Calculator", &today))
        .query_async(&mut con)
        .await
        .expect("TTL");
    assert!(
        ttl > 30 * 24 * 3600 && ttl <= 35 * 24 * 3600,
        "today's count expires in {ttl} s"
    );
}

/// Issue 21: a call that was dead-lettered, and one that was cancelled,
/// showed a green `done` badge, since a kept result was all the page
/// looked at. Now the badge is the state the reply says the call ended in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_calls_badge_says_how_it_ended() {
    let fixture = Fixture::start().await;
    let keys = Keys::new("rpc");
    let mut con = fixture.connection();
    for (id, reply) in [
        ("ended-ok", json!({"v": 1, "id": "ended-ok", "ok": 3})),
        (
            "ended-dead",
            json!({"v": 1, "id": "ended-dead", "error": {"kind": "dead_lettered", "message": "out of attempts"}}),
        ),
        (
            "ended-cancelled",
            json!({"v": 1, "id": "ended-cancelled", "error": {"kind": "cancelled", "message": "cancelled by an operator"}}),
        ),
        (
            "ended-failed",
            json!({"v": 1, "id": "ended-failed", "error": {"kind": "handler", "message": "boom"}}),
        ),
    ] {
        let _: () = redis::cmd("SET")
            .arg(keys.result(id))
            .arg(reply.to_string())
            .arg("EX")
            .arg(300)
            .query_async(&mut con)
            .await
            .expect("SET");
    }
    let router = dashboard(support::options(&fixture.url));
    for (id, state) in [
        ("ended-ok", "done"),
        ("ended-dead", "dead"),
        ("ended-cancelled", "cancelled"),
        ("ended-failed", "failed"),
    ] {
        let page = get(&router, &format!("/jobs/{id}")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(
            page.body
                .contains(&format!("id=\"state-{state}\">{state}<")),
            "{id}: {}",
            page.body
        );
        if state != "done" {
            assert!(!page.body.contains("state-done"), "{id} shows done");
        }
    }
}

/// Issue 21: the list of failures shows, beside each dead letter's error
/// and attempt, how long its last attempt ran and on which worker. A real
/// worker that gives up on a job (out of attempts) writes both with the
/// dead letter, and the Failures page shows them, found by the job's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_gives_up_says_who_it_was_and_how_long_the_job_ran() {
    let fixture = Fixture::start().await;
    let service = rpc_runtime::DynamicService::new("Flaky").job("down", |_req| async move {
        tokio::time::sleep(Duration::from_millis(120)).await;
        Err::<serde_json::Value, _>(rpc_runtime::HandlerError::retry("the database is down"))
    });
    let worker = Worker::builder(&fixture.url)
        .mount(service)
        .max_attempts(1)
        .consumer_name("host-a:4242")
        .build()
        .await
        .expect("a worker");
    let running = support::Running::spawn(worker);
    let client = Client::connect(&fixture.url).await.expect("a client");
    let error = client
        .call("Flaky.down", json!({}))
        .options(rpc_runtime::CallOptions::timeout(Duration::from_secs(30)))
        .await
        .expect_err("out of attempts");
    assert_eq!(
        error.remote_kind(),
        Some(rpc_runtime::ErrorKind::DeadLettered),
        "{error}"
    );
    running.stop().await;

    let router = dashboard(support::options(&fixture.url));
    let page = get(&router, "/failures?q=Flaky.down").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(
        page.body.matches("<tr class=\"failure\"").count(),
        1,
        "{}",
        page.body
    );
    assert!(
        page.body.contains("class=\"worker\">host-a:4242<"),
        "{}",
        page.body
    );
    let ran = page
        .body
        .split("class=\"duration\">")
        .nth(1)
        .expect("a duration cell");
    assert!(!ran.starts_with('<'), "how long it ran is shown: {ran:.80}");
    assert!(page.body.contains("the database is down"));
    assert!(page.body.contains("class=\"num attempt\">1"), "the attempt");
}
