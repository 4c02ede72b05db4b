//! The workers page over HTTP with a real in-process worker beating into
//! a private redis-server: its row shows what the beat says; Quiet and
//! Stop posted from the page reach the worker (it goes quiet, then exits
//! and is marked gone); both need this process's CSRF token, and a
//! read-only dashboard offers neither and refuses the POST.

use std::time::Duration;

use calculator::{Calc, CalculatorServer};
use rpc_runtime::inspect::{Liveness, WorkerInfo, WorkerState};
use rpc_runtime::{Inspector, Worker};

use super::*;

const WORKER: &str = "dash-worker-1";

/// Polls the inspector until `cond` holds of the worker, up to 30 s.
async fn until_worker(inspector: &Inspector, what: &str, cond: impl Fn(&WorkerInfo) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let workers = inspector.workers(None).await.expect("workers");
        if workers.iter().any(|w| w.id == WORKER && cond(w)) {
            return;
        }
        assert!(Instant::now() < deadline, "never {what}: {workers:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The HTML of the table row of worker `id`.
fn worker_row<'a>(page: &'a Page, id: &str) -> &'a str {
    let marker = format!("data-worker=\"{id}\"");
    let start = page
        .body
        .find(&marker)
        .unwrap_or_else(|| panic!("no row for {id}:\n{}", page.body));
    let end = page.body[start..]
        .find("</tr>")
        .map_or(page.body.len(), |n| start + n);
    &page.body[start..end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workers_page_lists_a_live_worker_and_quiet_and_stop_reach_it() {
    let fixture = Fixture::start().await;
    let worker = Worker::builder(&fixture.url)
        .mount(CalculatorServer::new(Calc))
        .consumer_name(WORKER)
        .concurrency(3)
        .version("calc <1.2.3>")
        .heartbeat(Duration::from_millis(200), Duration::from_secs(10))
        .build()
        .await
        .expect("a worker");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut running = tokio::spawn(worker.run_until(async {
        let _ = stopped.await;
    }));
    let inspector = Inspector::connect(&fixture.url, "rpc")
        .await
        .expect("an inspector");
    until_worker(&inspector, "live", |w| w.liveness == Liveness::Live).await;
    let beat = inspector
        .workers(None)
        .await
        .expect("workers")
        .into_iter()
        .find(|w| w.id == WORKER)
        .and_then(|w| w.beat)
        .expect("its beat");

    let router = dashboard(support::options(&fixture.url));
    let page = get(&router, "/workers").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("<a href=\"/workers\" class=\"active\">"));
    let row = worker_row(&page, WORKER);
    assert!(row.contains("class=\"live\""), "{row}");
    assert!(row.contains("badge worker-running\">running<"), "{row}");
    assert!(
        row.contains(&format!("<td class=\"host\">{}</td>", beat.host)),
        "{row}"
    );
    assert!(
        row.contains(&format!(">{}</td>", std::process::id())),
        "{row}"
    );
    // The version is the worker's own text, escaped.
    assert!(
        row.contains("calc &#60;1.2.3&#62;") || row.contains("calc &lt;1.2.3&gt;"),
        "{row}"
    );
    assert!(!row.contains("<1.2.3>"), "{row}");
    assert!(
        row.contains("<td class=\"num concurrency\">3</td>"),
        "{row}"
    );
    assert!(row.contains("<td class=\"num in-flight\">0</td>"), "{row}");
    assert!(row.contains("href=\"/services/Calculator\""), "{row}");
    assert!(
        row.contains(" ago</td>") || row.contains(">now</td>"),
        "{row}"
    );
    if beat.rss_bytes.is_some() {
        assert!(row.contains("iB</td>"), "memory shown: {row}");
    }
    assert!(
        row.contains(&format!("action=\"/workers/{WORKER}/quiet\"")),
        "{row}"
    );
    assert!(
        row.contains(&format!("action=\"/workers/{WORKER}/stop\"")),
        "{row}"
    );
    assert!(
        page.body.contains("id=\"worker-counts\">1 live, 0 gone"),
        "{}",
        page.body
    );

    // The service page counts it and links to the service's workers.
    let service = get(&router, "/services/Calculator").await;
    assert!(
        service
            .body
            .contains("href=\"/workers?service=Calculator\" id=\"service-workers\">1</a>"),
        "{}",
        service.body
    );
    let narrowed = get(&router, "/workers?service=Calculator").await;
    assert_eq!(narrowed.status, StatusCode::OK);
    worker_row(&narrowed, WORKER);
    assert_eq!(
        get(&router, "/workers?service=NoSuch").await.status,
        StatusCode::NOT_FOUND
    );

    // Without this process's token the POST is refused and nothing is sent.
    let quiet = format!("/workers/{WORKER}/quiet");
    for form in ["", "csrf=guessed"] {
        let refused = post(&router, &quiet, form).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{form:?}");
    }
    // A read-only dashboard lists the worker with no button and refuses both.
    let mut options = support::options(&fixture.url);
    options.read_only = true;
    let read_only = dashboard(options);
    let page = get(&read_only, "/workers").await;
    assert_eq!(page.status, StatusCode::OK);
    worker_row(&page, WORKER);
    assert!(!page.body.contains("method=\"post\""), "{}", page.body);
    for action in ["quiet", "stop"] {
        let refused = post(&read_only, &format!("/workers/{WORKER}/{action}"), "csrf=x").await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{action}");
    }
    let csrf = csrf_of(&get(&router, "/workers").await);
    let form = format!("csrf={csrf}");
    // An id no live worker has is a 404, not a request nobody reads.
    let unknown = post(&router, "/workers/no-such-worker/quiet", &form).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.body);
    // Refused before anything is written: no control key exists at all,
    // so the worker has nothing to read at its next beat.
    assert_eq!(
        fixture.redis.keys("rpc:worker:*:control"),
        Vec::<String>::new()
    );
    let still = inspector.workers(None).await.expect("workers");
    let me = still.iter().find(|w| w.id == WORKER).expect("listed");
    assert_eq!(
        me.beat.as_ref().map(|b| b.state),
        Some(WorkerState::Running),
        "{me:#?}"
    );

    // Quiet: the worker reads it on a beat and says so; it stays up.
    let done = post(&router, &quiet, &form).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.headers[header::LOCATION], "/workers?notice=quiet");
    until_worker(&inspector, "quiet", |w| {
        w.liveness == Liveness::Live
            && w.beat
                .as_ref()
                .is_some_and(|b| b.state == WorkerState::Quiet)
    })
    .await;
    let page = get(&router, "/workers?notice=quiet").await;
    assert!(page.body.contains("id=\"notice\""), "{}", page.body);
    let row = worker_row(&page, WORKER);
    assert!(row.contains("badge worker-quiet\">quiet<"), "{row}");
    assert!(
        !row.contains("/quiet\""),
        "no Quiet on a quiet worker: {row}"
    );
    assert!(!running.is_finished(), "quiet keeps the worker up");

    // Stop: the worker drains and exits by itself, and is marked gone.
    let done = post(&router, &format!("/workers/{WORKER}/stop"), &form).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.headers[header::LOCATION], "/workers?notice=stopping");
    let exited = tokio::time::timeout(Duration::from_secs(30), &mut running).await;
    let result = exited
        .expect("the worker exits after Stop")
        .expect("the worker task");
    result.expect("the worker stops cleanly");
    drop(stop);
    until_worker(&inspector, "gone", |w| w.liveness == Liveness::Gone).await;
    let page = get(&router, "/workers").await;
    let row = worker_row(&page, WORKER);
    assert!(row.contains("class=\"gone\""), "{row}");
    assert!(row.contains("badge worker-gone\">gone<"), "{row}");
    assert!(!row.contains("method=\"post\""), "{row}");
    assert!(
        page.body.contains("id=\"worker-counts\">0 live, 1 gone"),
        "{}",
        page.body
    );
}
