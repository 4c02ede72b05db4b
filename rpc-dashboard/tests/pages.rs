//! The dashboard's promises that need no browser, over HTTP against a
//! private redis-server (and a Redis Cluster): bad input, a Redis that goes
//! away, escaping, the token, CSRF and read-only mode; the job lifecycle's
//! pages and actions in `pages/lifecycle.rs`; the workers page in `pages/workers.rs`; failed attempts in `pages/attempts.rs`; a sharded service in `pages/shards.rs`; rate limits in `pages/rate_limits.rs`; priority lanes and group keys in `pages/lanes_and_groups.rs`; a call's progress in `pages/progress.rs`.

#[path = "pages/access.rs"]
mod access;
#[path = "pages/attempts.rs"]
mod attempts;
#[path = "pages/history.rs"]
mod history;
#[path = "pages/lanes_and_groups.rs"]
mod lanes_and_groups;
#[path = "pages/lifecycle.rs"]
mod lifecycle;
#[path = "pages/progress.rs"]
mod progress;
#[path = "pages/rate_limits.rs"]
mod rate_limits;
#[path = "pages/shards.rs"]
mod shards;
mod support;
#[path = "pages/tables.rs"]
mod tables;
#[path = "pages/workers.rs"]
mod workers;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use rpc_testkit::RedisCluster;
use serde_json::json;
use support::{dead_message, job_message, Fixture};
use tables::{row_cell, row_figure};
use tower::ServiceExt;

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

async fn send(router: &Router, request: Request<Body>) -> Page {
    let response = router.clone().oneshot(request).await.expect("a response");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 16 << 20)
        .await
        .expect("the body");
    Page {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn get(router: &Router, path: &str) -> Page {
    send(
        router,
        Request::get(path).body(Body::empty()).expect("request"),
    )
    .await
}

async fn get_with(router: &Router, path: &str, name: header::HeaderName, value: &str) -> Page {
    let request = Request::get(path).header(name, value).body(Body::empty());
    send(router, request.expect("request")).await
}

async fn post(router: &Router, path: &str, form: &str) -> Page {
    let request = Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.to_owned()));
    send(router, request.expect("request")).await
}

fn dashboard(options: rpc_dashboard::Options) -> Router {
    rpc_dashboard::router(options)
        .expect("the dashboard starts")
        .0
}

/// The CSRF token the page's forms carry.
fn csrf_of(page: &Page) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page.body.find(marker).expect("a form with a CSRF token") + marker.len();
    page.body[start..]
        .chars()
        .take_while(|c| *c != '"')
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_services_tokens_and_calls_are_404_pages() {
    // A typo in a URL is a page that says what is missing, never a panic.
    let fixture = Fixture::start().await;
    let router = dashboard(support::options(&fixture.url));
    for path in [
        "/services/NoSuchService",
        "/jobs/no-such-call",
        "/services/Calculator/dead/1-1/edit",
        "/services/Calculator/dead/not-a-token/edit",
        "/services/Calculator/jobs/no_such_job/new",
        "/services/NoSuchService/jobs/add/new",
        "/no/such/page",
    ] {
        let page = get(&router, path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            page.body.contains("<h1>Not found</h1>"),
            "{path}: {}",
            page.body
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_with_a_slash_links_to_its_own_page() {
    // A service `a/b` and a call `c/1`: every link keeps the name one path
    // segment (`a%2Fb`), and the page it leads to is that service's.
    let fixture = Fixture::start().await;
    fixture
        .push_raw("a/b", &job_message("c/1", "a/b.run", json!({})))
        .await;
    let router = dashboard(support::options(&fixture.url));
    let overview = get(&router, "/").await;
    assert!(
        overview.body.contains("href=\"/services/a%2Fb\""),
        "{}",
        overview.body
    );
    let service = get(&router, "/services/a%2Fb").await;
    assert_eq!(service.status, StatusCode::OK, "{}", service.body);
    assert!(service.body.contains("/services/a%2Fb/calls/c%2F1/cancel"));
    assert_eq!(get(&router, "/jobs/c%2F1").await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_goes_away_is_a_banner_and_the_page_keeps_retrying() {
    // Redis killed under an open dashboard: every page says so and reloads
    // itself; when Redis is back, so are the pages.
    let fixture = Fixture::start().await;
    fixture
        .dead_letter(
            "Calculator",
            "boom",
            &dead_message("c1", "Calculator.add", json!({"a": 1, "b": 2})),
        )
        .await;
    let router = dashboard(support::options(&fixture.url));
    assert_eq!(get(&router, "/").await.status, StatusCode::OK);

    fixture.redis.kill().expect("kill redis");
    for path in ["/", "/workers", "/services/Calculator", "/jobs/c1"] {
        let page = get(&router, path).await;
        assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(page.body.contains("id=\"banner\""), "{path}: {}", page.body);
        assert!(
            page.body
                .contains("<meta http-equiv=\"refresh\" content=\"5\">"),
            "{path}"
        );
    }

    fixture.redis.restart().expect("restart redis");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let page = get(&router, "/services/Calculator").await;
        if page.status == StatusCode::OK {
            assert!(!page.body.contains("id=\"banner\""));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dashboard never came back: {}",
            page.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dashboard_that_starts_before_redis_shows_the_error() {
    // Nothing listens on the port: the dashboard still serves, with the banner.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let router = dashboard(support::options(&format!("redis://127.0.0.1:{port}/")));
    let page = get(&router, "/").await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(page.body.contains("Redis is unavailable"), "{}", page.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_content_is_escaped_on_every_page() {
    // A dead letter carrying markup in every field it has, and a service
    // whose name is markup: every page shows the text, none carries the tag.
    let fixture = Fixture::start().await;
    let evil = "<script>alert(1)</script>";
    let message = dead_message(evil, &format!("{evil}.job"), json!({ evil: evil }));
    let token = fixture.dead_letter("Calculator", evil, &message).await;
    fixture
        .push_raw(
            "<img src=x onerror=alert(1)>",
            b"\xff<script>alert(2)</script>",
        )
        .await;
    let router = dashboard(support::options(&fixture.url));
    let encoded_id = "%3Cscript%3Ealert(1)%3C%2Fscript%3E";
    for path in [
        "/".to_owned(),
        "/services/Calculator".to_owned(),
        format!("/services/Calculator/dead/{token}/edit"),
        format!("/jobs/{encoded_id}"),
        "/services/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E".to_owned(),
    ] {
        let page = get(&router, &path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        assert!(
            !page.body.contains("<script>alert"),
            "{path} carries a script tag"
        );
        assert!(
            !page.body.contains("<img src=x"),
            "{path} carries an img tag"
        );
        assert!(
            page.body.contains("&#60;script&#62;alert") || page.body.contains("&#60;img src=x"),
            "{path} shows the markup as text"
        );
    }
    let unreadable = get(
        &router,
        "/services/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E",
    )
    .await;
    assert!(unreadable.body.contains("unreadable"));
    assert!(
        unreadable.body.contains("\\xff&#60;script&#62;alert(2)"),
        "{}",
        unreadable.body
    );
    let csp = get(&router, "/").await.headers[header::CONTENT_SECURITY_POLICY].clone();
    assert!(csp.to_str().unwrap_or("").contains("script-src 'self'"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_action_needs_this_processs_csrf_token() {
    // A form posted from another site cannot replay or delete dead letters.
    let fixture = Fixture::start().await;
    let message = job_message("c1", "Calculator.add", json!({"a": 1, "b": 2}));
    let token = fixture.dead_letter("Calculator", "boom", &message).await;
    let router = dashboard(support::options(&fixture.url));
    let delete = format!("/services/Calculator/dead/{token}/delete");
    assert_eq!(
        post(&router, &delete, "").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(&router, &delete, "csrf=guessed").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        fixture.len("rpc:{Calculator}:dead").await,
        1,
        "nothing was deleted"
    );

    let csrf = csrf_of(&get(&router, "/services/Calculator").await);
    let replayed = post(
        &router,
        &format!("/services/Calculator/dead/{token}/replay"),
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(replayed.status, StatusCode::SEE_OTHER);
    assert_eq!(fixture.len("rpc:{Calculator}:dead").await, 0);
    assert_eq!(
        fixture.len("rpc:{Calculator}:jobs").await,
        1,
        "the job is queued again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_dead_letter_is_checked_against_the_schema_before_it_is_queued() {
    // `a` fixed to a number is replayed; `a` as text is refused beside the field.
    let fixture = Fixture::start().await;
    let message = dead_message("c2", "Calculator.add", json!({"a": "one", "b": 2}));
    let token = fixture
        .dead_letter("Calculator", "bad_request", &message)
        .await;
    let router = dashboard(support::options(&fixture.url));
    let path = format!("/services/Calculator/dead/{token}/edit");
    let form = get(&router, &path).await;
    assert!(
        form.body.contains("value=\"&#34;one&#34;\""),
        "the form starts from the message"
    );
    let csrf = csrf_of(&form);
    let refused = post(&router, &path, &format!("csrf={csrf}&p.a=one&p.b=2")).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("id=\"error-a\""), "{}", refused.body);
    assert_eq!(
        fixture.len("rpc:{Calculator}:jobs").await,
        0,
        "nothing was queued"
    );

    let accepted = post(&router, &path, &format!("csrf={csrf}&p.a=1&p.b=2")).await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER);
    let page = get(&router, "/jobs/c2").await;
    assert!(page.body.contains("state-queued"), "{}", page.body);
    assert!(page.body.contains("matches schema"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_offers_no_action_and_takes_none() {
    let fixture = Fixture::start().await;
    let message = job_message("c1", "Calculator.add", json!({"a": 1, "b": 2}));
    let token = fixture.dead_letter("Calculator", "boom", &message).await;
    let mut options = support::options(&fixture.url);
    options.read_only = true;
    let router = dashboard(options);
    let page = get(&router, "/services/Calculator").await;
    assert!(page.body.contains("read-only"));
    assert!(
        !page.body.contains("method=\"post\""),
        "no form posts anything"
    );
    let attempt = post(
        &router,
        &format!("/services/Calculator/dead/{token}/replay"),
        "csrf=x",
    )
    .await;
    assert_eq!(attempt.status, StatusCode::FORBIDDEN);
    assert_eq!(fixture.len("rpc:{Calculator}:dead").await, 1);
}

/// A token long enough to be accepted (16 characters or more).
const TOKEN: &str = "s3cret-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_on_every_node_of_a_cluster_are_shown_and_replayed() {
    // The dashboard on `redis+cluster://`: queues in different slots.
    let cluster = RedisCluster::start(3).expect("start a cluster");
    let message = String::from_utf8(job_message("c1", "Alpha.run", json!({}))).expect("utf-8");
    for service in ["Alpha", "Beta", "Gamma", "Delta"] {
        cluster.cli([
            "XADD",
            &format!("rpc:{{{service}}}:jobs"),
            "*",
            "m",
            &message,
        ]);
    }
    cluster.cli([
        "XADD",
        "rpc:{Delta}:dead",
        "*",
        "reason",
        "boom",
        "m",
        &message,
    ]);
    let url = cluster.cluster_url();
    let router = dashboard(support::options(&url));
    let overview = get(&router, "/").await;
    assert_eq!(overview.status, StatusCode::OK, "{}", overview.body);
    for service in ["Alpha", "Beta", "Gamma", "Delta"] {
        assert!(
            overview
                .body
                .contains(&format!("data-service=\"{service}\"")),
            "{service} listed"
        );
    }
    let delta = get(&router, "/services/Delta").await;
    assert!(
        delta.body.contains("id=\"count-dead\">1<"),
        "{}",
        delta.body
    );
    let csrf = csrf_of(&delta);
    let replayed = post(
        &router,
        "/services/Delta/dead/replay-all",
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(replayed.status, StatusCode::SEE_OTHER);
    let delta = get(&router, "/services/Delta").await;
    assert!(
        delta.body.contains("id=\"count-queued\">2<"),
        "{}",
        delta.body
    );
    assert!(
        delta.body.contains("Replayed 1 dead letter")
            || delta.body.contains("id=\"count-dead\">0<")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_dashboard_needs_only_the_operators_read_only_acl() {
    // docs/PROTOCOL.md's read-only operator user serves every page of
    // `--read-only`: Redis denies it nothing. Pages read messages cut to a
    // window by read-only scripts, so it runs them (`+evalsha_ro
    // +script|load`), and a call is looked up newest first (`+xrevrange`)
    // and on the schedule by id (`+zscore`); the workers page reads a live
    // worker's beat (`+getrange`).
    let rules = "on >0ps resetkeys ~rpc:* resetchannels -@all +ping +info +time +scan +exists \
                 +xlen +xrange +xpending +xinfo|stream +xinfo|groups +xinfo|consumers +llen \
                 +pttl +get +zcard +zrange +hmget +evalsha_ro +script|load +zscore +xrevrange \
                 +getrange +type +zcount";
    let acl = std::env::temp_dir().join(format!("rpc-dashboard-acl-{}.acl", std::process::id()));
    std::fs::write(
        &acl,
        format!("user default on >admin ~* &* +@all\nuser ops {rules}\n"),
    )
    .expect("write the ACL file");
    let redis = rpc_testkit::RedisServer::builder()
        .acl_file(&acl)
        .auth("default", "admin")
        .start()
        .expect("start redis-server with an ACL");
    let mut options = support::options(&redis.url_as("ops", "0ps"));
    options.read_only = true;
    let router = dashboard(options);
    // A worker beating (as the admin), for the workers page to read its
    // beat; stopped before the jobs are written, so it takes none of them.
    let worker = rpc_runtime::Worker::builder(redis.url_as("default", "admin"))
        .mount(calculator::CalculatorServer::new(calculator::Calc))
        .consumer_name("acl-worker")
        .heartbeat(Duration::from_millis(200), Duration::from_secs(10))
        .build()
        .await
        .expect("a worker");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run_until(async {
        let _ = stopped.await;
    }));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page = get(&router, "/workers").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        if page
            .body
            .contains("data-worker=\"acl-worker\" class=\"live\"")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never listed live:\n{}",
            page.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(());
    running.await.expect("the worker task").expect("the worker");
    let message = String::from_utf8(job_message("c1", "Calculator.add", json!({"a": 1, "b": 2})))
        .expect("utf-8");
    redis.cli(["XADD", "rpc:{Calculator}:jobs", "*", "m", &message]);
    let scheduled = String::from_utf8(job_message("c2", "Calculator.add", json!({"a": 1, "b": 2})))
        .expect("utf-8");
    redis.cli(["ZADD", "rpc:{Calculator}:schedule", "1", "c2"]);
    // A call at priority 1 and a busy group key: the service page reads
    // their lane (`+exists +type`) and the key (`+zcount +llen`).
    redis.cli(["XADD", "rpc:{Calculator}:jobs:1", "*", "m", &message]);
    redis.cli([
        "ZADD",
        "rpc:{Calculator}:group:add:t1:running",
        "+inf",
        "c3",
    ]);
    redis.cli(["HSET", "rpc:{Calculator}:scheduled", "c2", &scheduled]);
    let dead = redis.cli([
        "XADD",
        "rpc:{Calculator}:dead",
        "*",
        "reason",
        "boom",
        "m",
        &message,
    ]);
    for path in [
        "/".to_owned(),
        "/workers".to_owned(),
        "/services/Calculator".to_owned(),
        "/jobs/c1".to_owned(),
        "/jobs/c2".to_owned(),
        format!("/services/Calculator/dead/{}/message", dead.trim()),
    ] {
        let page = get(&router, &path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
    }
    // The edit form is an action's first step: read-only has none.
    let edit = get(
        &router,
        &format!("/services/Calculator/dead/{}/edit", dead.trim()),
    )
    .await;
    assert_eq!(edit.status, StatusCode::FORBIDDEN);
    let page = get(&router, "/services/Calculator").await;
    assert!(
        page.body.contains("id=\"count-scheduled\">1<"),
        "the schedule is read"
    );
    assert!(
        page.body.contains("data-priority=\"1\"") && page.body.contains("data-key=\"t1\""),
        "the lanes and group keys are read: {}",
        page.body
    );
    let log = redis.cli(["ACL", "LOG"]);
    assert!(
        log.trim().is_empty(),
        "the dashboard was denied something:\n{log}"
    );
    std::fs::remove_file(&acl).ok();
}
