//! Issue 24 point 5: a service's priority lanes and busiest group keys on
//! its page. State written by hand as workers and clients leave it: calls
//! at priority 1 beside the default's, a group key whose slots are taken
//! with a call parked behind it, and garbage (a lane that is no stream, a
//! running set that is no sorted set) shown as unreadable, never an error
//! page. Keys are escaped like everything else; a look at more keys than
//! its bound says it stopped.

use super::*;

/// Runs one Redis command on the fixture's server.
async fn cmd(fixture: &Fixture, args: &[&str]) {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    let _: redis::Value = c
        .query_async(&mut fixture.connection())
        .await
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_services_page_shows_its_lanes_and_busiest_group_keys_garbage_as_unreadable() {
    let fixture = Fixture::start().await;
    for stream in ["rpc:{Prio}:jobs", "rpc:{Prio}:jobs:1"] {
        cmd(
            &fixture,
            &["XGROUP", "CREATE", stream, "workers", "0", "MKSTREAM"],
        )
        .await;
    }
    cmd(&fixture, &["XADD", "rpc:{Prio}:jobs", "*", "m", "{}"]).await;
    for _ in 0..2 {
        cmd(&fixture, &["XADD", "rpc:{Prio}:jobs:1", "*", "m", "{}"]).await;
    }
    cmd(&fixture, &["SET", "rpc:{Prio}:jobs:5", "not a stream"]).await;
    let running = "rpc:{Prio}:group:send:t1:running";
    cmd(&fixture, &["ZADD", running, "+inf", "c1", "+inf", "c2"]).await;
    cmd(
        &fixture,
        &["RPUSH", "rpc:{Prio}:group:send:t1:waiting", "{}"],
    )
    .await;
    cmd(
        &fixture,
        &["SET", "rpc:{Prio}:group:send:junk:running", "x"],
    )
    .await;
    let evil = "rpc:{Prio}:group:send:<script>alert(1)</script>:running";
    cmd(&fixture, &["ZADD", evil, "+inf", "c3"]).await;
    let router = dashboard(support::options(&fixture.url));

    let page = get(&router, "/services/Prio").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page
        .body
        .contains("<div class=\"n\" id=\"count-queued\">3</div>"));
    assert!(page.body.contains("<section id=\"priorities\">"));
    let lane = |p: u8| row_cell(&page, &format!("data-priority=\"{p}\""), "lane-queued");
    assert_eq!(lane(1), "2");
    assert_eq!(lane(3), "1");
    assert_eq!(lane(2), "0");
    assert!(lane(5).contains("unreadable"), "{}", lane(5));

    assert!(page.body.contains("<section id=\"group-keys\">"));
    assert!(page
        .body
        .contains("3 running, 1 waiting, 1 keys at their limit, of 3 keys looked at"));
    let key = |k: &str, class: &str| row_cell(&page, &format!("data-key=\"{k}\""), class);
    assert_eq!(
        (key("t1", "group-running"), key("t1", "group-waiting")),
        ("2".into(), "1".into())
    );
    assert!(key("junk", "group-running").contains("unreadable"));
    assert_eq!(key("junk", "group-waiting"), "0");
    assert!(!page.body.contains("<script>alert"), "{}", page.body);
    assert!(page.body.contains("&#60;script&#62;alert(1)"));
    // The busiest first.
    let t1 = page.body.find("data-key=\"t1\"").unwrap();
    let junk = page.body.find("data-key=\"junk\"").unwrap();
    assert!(t1 < junk);
    assert!(!page.body.contains("group-keys-capped"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_without_lanes_or_keys_has_no_tables_and_a_capped_look_says_so() {
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
    assert!(
        !page.body.contains("id=\"priorities\""),
        "no lanes, no table"
    );
    assert!(
        !page.body.contains("id=\"group-keys\""),
        "no keys, no table"
    );

    let script = "for i = 1, 1050 do \
        redis.call('ZADD', 'rpc:{Calculator}:group:add:t' .. i .. ':running', '+inf', 'c') end";
    cmd(&fixture, &["EVAL", script, "0"]).await;
    let page = get(&router, "/services/Calculator").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("id=\"group-keys-capped\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("The look stopped after 1000 keys"));
    assert_eq!(page.body.matches("<tr class=\"group-key\"").count(), 10);
}
