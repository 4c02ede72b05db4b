//! Issue 19, point 8, over HTTP against the dashboard serving on a real
//! port and a private redis-server: a POST from a foreign origin is refused
//! even with the CSRF token; the Host must name this listener with its
//! port; a short token does not start; wrong tokens are throttled while a
//! logged-in browser and, once the burst has passed, the right token work;
//! the cookie holds a session value, never the token; a read-only
//! dashboard shows no form anywhere and takes no POST.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{csrf_in, http, Answer, Fixture};

const TOKEN: &str = "guard-token-0123456789";

async fn get(base: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    http(base, "GET", path, headers, "").await
}

/// The `host:port` the dashboard listens on.
fn address(base: &str) -> &str {
    base.strip_prefix("http://").expect("http base")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_from_a_foreign_origin_is_refused_even_with_the_csrf_token() {
    // The black-box round replayed a dead letter from `Origin: evil` with a
    // valid CSRF token. Now only this dashboard's own origin may act.
    let fixture = Fixture::start().await;
    let message = support::dead_message("c1", "Calculator.add", json!({"a": 1, "b": 2}));
    let token = fixture.dead_letter("Calculator", "boom", &message).await;
    let served = support::serve(support::options(&fixture.url)).await;
    let base = served.base.clone();
    let page = get(&base, "/services/Calculator", &[]).await;
    let form = format!("csrf={}", csrf_in(&page.text()));
    let replay = format!("/services/Calculator/dead/{token}/replay");
    for foreign in [
        &[("Origin", "http://evil.example")][..],
        &[("Origin", "evil")],
        &[("Origin", "null")],
        &[("Origin", &format!("http://{}.evil.example", address(&base)))],
        &[("Sec-Fetch-Site", "cross-site")],
    ] {
        let refused = http(&base, "POST", &replay, foreign, &form).await;
        assert_eq!(refused.status, 403, "{foreign:?}: {}", refused.text());
    }
    assert_eq!(
        fixture.len("rpc:{Calculator}:dead").await,
        1,
        "nothing replayed"
    );
    let own = format!("http://{}", address(&base));
    let accepted = http(&base, "POST", &replay, &[("Origin", &own)], &form).await;
    assert_eq!(accepted.status, 303, "{}", accepted.text());
    assert_eq!(fixture.len("rpc:{Calculator}:dead").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_must_name_this_listener_with_its_port() {
    // `127.0.0.1:PORT.evil.example` passed the check that read only the
    // name before the last colon; another port is another origin too.
    let fixture = Fixture::start().await;
    let served = support::serve(support::options(&fixture.url)).await;
    let base = served.base.clone();
    let port = address(&base)
        .rsplit_once(':')
        .expect("a port")
        .1
        .to_owned();
    let other = if port == "9" { "10" } else { "9" };
    for host in [
        format!("127.0.0.1:{port}.evil.example"),
        format!("localhost:{port}.evil.example"),
        format!("127.0.0.1:{other}"),
        format!("evil.example:{port}"),
        "127.0.0.1".to_owned(),
    ] {
        let page = get(&base, "/", &[("Host", &host)]).await;
        assert_eq!(page.status, 403, "{host}");
        assert!(!page.text().contains("name=\"csrf\""), "{host}");
    }
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ] {
        assert_eq!(
            get(&base, "/", &[("Host", &host)]).await.status,
            200,
            "{host}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_token_does_not_start_the_dashboard() {
    // `--token x` was accepted, and fell to guessing.
    for short in ["x", "s3cret", "fifteen-chars!!"] {
        let mut options = support::options("redis://127.0.0.1:1/");
        options.token = Some(short.to_owned());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let refused = rpc_dashboard::serve(listener, options, async {}).await;
        let message = refused.expect_err("a short token").to_string();
        assert!(
            message.contains("at least 16 characters"),
            "{short}: {message}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_tokens_are_throttled_and_the_right_one_works_afterwards() {
    // The black-box round guessed 3,700-4,400 tokens a second. A burst of
    // wrong tokens now gets 429 after the first few, the right token is not
    // even compared while the address is throttled, a browser that logged
    // in before keeps working, and the right token works again once the
    // bucket refills.
    let fixture = Fixture::start().await;
    let mut options = support::options(&fixture.url);
    options.token = Some(TOKEN.to_owned());
    let served = support::serve(options).await;
    let base = served.base.clone();
    let login = get(&base, &format!("/workers?token={TOKEN}"), &[]).await;
    assert_eq!(login.status, 303);
    let cookie = login.header("set-cookie").expect("a cookie").to_owned();
    let session = cookie.split(';').next().expect("name=value").to_owned();

    let started = Instant::now();
    let mut statuses = Vec::new();
    for i in 0..60 {
        let guess = format!("Bearer guess-{i:016}");
        statuses.push(get(&base, "/", &[("Authorization", &guess)]).await.status);
    }
    let took = started.elapsed();
    let compared = statuses.iter().filter(|s| **s == 401).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    println!(
        "60 wrong tokens in {took:?}: {compared} compared (401), {throttled} refused unread (429)"
    );
    assert_eq!(compared + throttled, 60, "{statuses:?}");
    assert!(
        compared <= 12,
        "at most the burst is compared: {statuses:?}"
    );
    assert!(throttled >= 48, "{statuses:?}");
    let right = format!("Bearer {TOKEN}");
    let refused = get(&base, "/", &[("Authorization", &right)]).await;
    assert_eq!(refused.status, 429, "not even compared while throttled");
    assert!(refused.header("retry-after").is_some());
    assert_eq!(
        get(&base, "/", &[("Cookie", &session)]).await.status,
        200,
        "the logged-in browser still works"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = get(&base, "/", &[("Authorization", &right)]).await.status;
        if status == 200 {
            break;
        }
        assert_eq!(status, 429);
        assert!(
            Instant::now() < deadline,
            "the right token never worked again"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cookie_holds_a_session_value_never_the_token() {
    let fixture = Fixture::start().await;
    let mut options = support::options(&fixture.url);
    options.token = Some(TOKEN.to_owned());
    let served = support::serve(options).await;
    let base = served.base.clone();
    let login = get(&base, &format!("/?token={TOKEN}"), &[]).await;
    let cookie = login.header("set-cookie").expect("a cookie").to_owned();
    assert!(!cookie.contains(TOKEN), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let (name, value) = cookie
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .expect("name=value");
    assert_eq!(value.len(), 64, "an HMAC-SHA256 in hex");
    let session = format!("{name}={value}");
    assert_eq!(get(&base, "/", &[("Cookie", &session)]).await.status, 200);
    let raw = format!("{name}={TOKEN}");
    assert_eq!(
        get(&base, "/", &[("Cookie", &raw)]).await.status,
        401,
        "the token itself is no session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_dashboard_shows_no_form_anywhere_and_takes_no_post() {
    // The edit page of `--read-only` still showed its form. Now no page
    // has an action form (the header's search box, a GET, stays), the form
    // pages are 403, and every POST is refused.
    let fixture = Fixture::start().await;
    let message = support::dead_message("c1", "Calculator.add", json!({"a": 1, "b": 2}));
    let dead = fixture.dead_letter("Calculator", "boom", &message).await;
    fixture
        .push_raw(
            "Calculator",
            &support::job_message("c2", "Calculator.add", json!({"a": 1, "b": 2})),
        )
        .await;
    let due = fixture.server_ms().await + 600_000;
    let later = support::job_message("c3", "Calculator.add", json!({"a": 1, "b": 2}));
    fixture.schedule_raw("Calculator", "c3", due, &later).await;
    let mut options = support::options(&fixture.url);
    options.read_only = true;
    let served = support::serve(options).await;
    let base = served.base.clone();
    for path in [
        "/",
        "/workers",
        "/services/Calculator",
        "/jobs/c1",
        "/jobs/c2",
        "/jobs/c3",
    ] {
        let page = get(&base, path, &[]).await;
        assert_eq!(page.status, 200, "{path}");
        let html = page.text();
        assert!(html.contains("read-only"), "{path}");
        for form_part in [
            "method=\"post\"",
            "name=\"csrf\"",
            "<textarea",
            "id=\"call-form\"",
        ] {
            assert!(!html.contains(form_part), "{path} has {form_part}");
        }
        assert_eq!(
            html.matches("<form").count(),
            1,
            "{path}: only the search box"
        );
    }
    for path in [
        format!("/services/Calculator/dead/{dead}/edit"),
        "/services/Calculator/jobs/add/new".to_owned(),
    ] {
        let page = get(&base, &path, &[]).await;
        assert_eq!(page.status, 403, "{path}");
        assert!(!page.text().contains("<form class=\"call\""), "{path}");
    }
    let own = format!("http://{}", address(&base));
    for path in [
        format!("/services/Calculator/dead/{dead}/replay"),
        format!("/services/Calculator/dead/{dead}/delete"),
        format!("/services/Calculator/dead/{dead}/edit"),
        "/services/Calculator/dead/replay-all".to_owned(),
        "/services/Calculator/dead/delete-all".to_owned(),
        "/services/Calculator/jobs/add/new".to_owned(),
        "/services/Calculator/calls/c3/cancel".to_owned(),
        "/services/Calculator/pause".to_owned(),
    ] {
        let post = http(
            &base,
            "POST",
            &path,
            &[("Origin", &own)],
            "csrf=x&p.a=1&p.b=2",
        )
        .await;
        assert_eq!(post.status, 403, "{path}");
    }
    assert_eq!(fixture.len("rpc:{Calculator}:dead").await, 1);
    assert_eq!(fixture.scheduled_ids("Calculator").await, ["c3"]);
}
