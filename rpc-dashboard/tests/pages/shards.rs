//! Issue 23: a sharded service on the dashboard. `Orders` is spread over
//! three queues (`Orders`, `Orders~1`, `Orders~2`) written by hand as
//! clients and workers leave them. The overview lists one service; its
//! page shows the sums, a table of its shards (so a hot or stuck one
//! shows), and lists that merge every shard; a dead letter replays onto
//! the shard it came from and is deleted there; a call without a shard
//! mark is cancelled in whichever shard holds it.

use rpc_protocol::{shards, Keys};

use super::*;

/// A key of shard `k` of `Orders`.
fn key(k: u32, which: fn(&Keys, &str) -> String) -> String {
    which(&Keys::new("rpc"), &shards::queue("Orders", k))
}

/// The `data-token`s of the page's rows of class `class`, in order.
fn tokens<'p>(page: &'p Page, class: &str) -> Vec<&'p str> {
    page.body
        .split(&format!("<tr class=\"{class}\" data-token=\""))
        .skip(1)
        .filter_map(|row| row.split('"').next())
        .collect()
}

/// The figure of column `class` in the shards table's row of `shard`.
fn shard_figure(page: &Page, shard: u32, class: &str) -> String {
    let row = format!("<tr class=\"shard\" data-shard=\"{shard}\">");
    row_figure(page, &row, class)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_service_is_one_service_summed_with_a_table_of_its_shards() {
    let fixture = Fixture::start().await;
    for (k, queued) in [(0, 1), (1, 2), (2, 3)] {
        for i in 0..queued {
            let id = format!("q{k}-{i}");
            let message = job_message(&id, "Orders.place", json!({"n": i}));
            fixture
                .push_raw(&shards::queue("Orders", k), &message)
                .await;
        }
    }
    let dead = dead_message("d2~2", "Orders.place", json!({"n": 9}));
    let dead_on_2 = fixture.dead_letter("Orders~2", "boom", &dead).await;
    let dead = dead_message("d0", "Orders.place", json!({"n": 8}));
    let dead_on_0 = fixture.dead_letter("Orders", "boom", &dead).await;
    let due = fixture.server_ms().await + 3_600_000;
    let later = job_message("s1~1", "Orders.place", json!({"n": 7}));
    fixture.schedule_raw("Orders~1", "s1~1", due, &later).await;
    let router = dashboard(support::options(&fixture.url));

    let overview = get(&router, "/").await;
    assert_eq!(overview.status, StatusCode::OK, "{}", overview.body);
    assert!(overview.body.contains("data-service=\"Orders\""));
    assert!(
        !overview.body.contains("Orders~"),
        "a shard is no service: {}",
        overview.body
    );
    assert!(overview.body.contains("3 shards"), "{}", overview.body);

    let page = get(&router, "/services/Orders").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for (figure, n) in [("queued", 6), ("dead", 2), ("scheduled", 1), ("shards", 3)] {
        assert!(
            page.body.contains(&format!("id=\"count-{figure}\">{n}<")),
            "{figure} {n}: {}",
            page.body
        );
    }
    let per_shard: Vec<(String, String, String)> = (0..3)
        .map(|k| {
            (
                shard_figure(&page, k, "shard-queued"),
                shard_figure(&page, k, "shard-scheduled"),
                shard_figure(&page, k, "shard-dead"),
            )
        })
        .collect();
    let expected = [("1", "0", "1"), ("2", "1", "0"), ("3", "0", "1")];
    assert_eq!(
        per_shard,
        expected.map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
    );
    // Every shard's jobs are listed, oldest first; those of shard k >= 1
    // marked with it.
    let queued = tokens(&page, "queued");
    assert_eq!(queued.len(), 6, "{queued:?}");
    assert_eq!(queued.iter().filter(|t| t.ends_with("~2")).count(), 3);
    assert!(
        page.body.contains("s1~1"),
        "the schedule of shard 1 is listed"
    );
    // Oldest first over the shards (shard 2's was added first), ties (the
    // same id in two shards' streams) in shard order.
    let dead_rows = tokens(&page, "dead");
    let marked = format!("{dead_on_2}~2");
    let expected = if dead_on_2 == dead_on_0 {
        [dead_on_0.as_str(), marked.as_str()]
    } else {
        [marked.as_str(), dead_on_0.as_str()]
    };
    assert_eq!(dead_rows, expected);

    // Downloads find the shard by the mark.
    let download = get(&router, &format!("/services/Orders/dead/{marked}/message")).await;
    assert_eq!(download.status, StatusCode::OK, "{}", download.body);
    assert!(download.body.contains("d2~2"), "{}", download.body);
    let download = get(&router, "/services/Orders/scheduled/s1~1/message").await;
    assert_eq!(download.status, StatusCode::OK, "{}", download.body);

    // The failures page lists both, under the service.
    let failures = get(&router, "/failures").await;
    assert!(failures.body.contains(&marked), "{}", failures.body);
    assert!(!failures.body.contains(">Orders~"), "{}", failures.body);

    // Replay goes back onto shard 2, delete takes shard 0's letter.
    let csrf = csrf_of(&page);
    let replayed = post(
        &router,
        &format!("/services/Orders/dead/{marked}/replay"),
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(replayed.status, StatusCode::SEE_OTHER, "{}", replayed.body);
    assert_eq!(fixture.len(&key(2, Keys::dead)).await, 0);
    assert_eq!(fixture.len(&key(2, Keys::jobs)).await, 4, "back on shard 2");
    assert_eq!(fixture.len(&key(0, Keys::jobs)).await, 1, "not on shard 0");
    let deleted = post(
        &router,
        &format!("/services/Orders/dead/{dead_on_0}/delete"),
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER, "{}", deleted.body);
    assert_eq!(fixture.len(&key(0, Keys::dead)).await, 0);

    // A call id without a shard mark (q1-0 waits on shard 1): cancelled
    // where it is.
    let cancelled = post(
        &router,
        "/services/Orders/calls/q1-0/cancel",
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(
        cancelled.status,
        StatusCode::SEE_OTHER,
        "{}",
        cancelled.body
    );
    assert!(fixture.is_marked_cancelled("Orders~1", "q1-0").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shards_of_a_service_on_a_cluster_are_read_on_their_own_nodes() {
    // Shards live in different slots, most likely on different masters.
    let cluster = RedisCluster::start(3).expect("start a cluster");
    let message = String::from_utf8(job_message("c1", "Orders.place", json!({}))).expect("utf-8");
    for k in 0..4 {
        cluster.cli(["XADD", &key(k, Keys::jobs), "*", "m", &message]);
    }
    let router = dashboard(support::options(&cluster.cluster_url()));
    let page = get(&router, "/services/Orders").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("id=\"count-queued\">4<"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("id=\"count-shards\">4<"),
        "{}",
        page.body
    );
}
