//! Every page bounded in size whatever the queues hold, over HTTP against
//! the dashboard serving on a real port and a private redis-server: ten
//! 8 MB dead letters (and an 8 MB job queued, leased, scheduled, and kept
//! as a result) make small pages, Redis sends little for them, and every
//! value cut on a page downloads whole; a call is found among 100,000 dead
//! letters, newest first; one page's many messages share one text budget.

mod support;

use std::time::Instant;

use serde_json::json;
use support::{http, redis_bytes_sent, Answer, Fixture};

const MB8: usize = 8 * 1024 * 1024;
/// What every page must stay under, however large the values behind it.
const PAGE_LIMIT: usize = 2 * 1024 * 1024;

/// A job message of about `padding` bytes, as a client writes it.
fn big_message(id: &str, padding: usize) -> Vec<u8> {
    support::dead_message(
        id,
        "Calculator.add",
        json!({"a": "x".repeat(padding), "b": 2}),
    )
}

async fn get(base: &str, path: &str) -> Answer {
    http(base, "GET", path, &[], "").await
}

/// Ten 8 MB dead letters (one with an 8 MB reason), an 8 MB job queued
/// and one leased, an 8 MB scheduled job and an 8 MB kept result.
async fn large_values(fixture: &Fixture) -> Vec<String> {
    let mut tokens = Vec::new();
    for i in 0..10 {
        let reason = if i == 0 {
            "r".repeat(MB8)
        } else {
            format!("boom {i}")
        };
        let message = big_message(&format!("big-dead-{i}"), MB8);
        tokens.push(fixture.dead_letter("Calculator", &reason, &message).await);
    }
    fixture
        .push_raw("Calculator", &big_message("big-queued", MB8))
        .await;
    let mut con = fixture.connection();
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg("rpc:{Calculator}:jobs")
        .arg("workers")
        .arg("0")
        .query_async(&mut con)
        .await
        .expect("XGROUP CREATE");
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("workers")
        .arg("w-1")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg("rpc:{Calculator}:jobs")
        .arg(">")
        .query_async(&mut con)
        .await
        .expect("XREADGROUP");
    fixture
        .push_raw("Calculator", &big_message("big-waiting", MB8))
        .await;
    let due = fixture.server_ms().await + 600_000;
    fixture
        .schedule_raw(
            "Calculator",
            "big-later",
            due,
            &big_message("big-later", MB8),
        )
        .await;
    let reply = serde_json::to_vec(&json!({"v": 1, "id": "big-dead-3", "ok": "y".repeat(MB8)}))
        .expect("JSON");
    let _: () = redis::cmd("SET")
        .arg("rpc:result:{big-dead-3}")
        .arg(reply)
        .arg("EX")
        .arg(600)
        .query_async(&mut con)
        .await
        .expect("SET a kept result");
    tokens
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_stay_small_and_read_little_with_ten_8mb_dead_letters() {
    // Issue 19, point 5: one service page was 168 MB. Every page now stays
    // under 2 MB, and Redis sends under 4 MB for all of them together
    // (the values behind them are over 100 MB).
    let fixture = Fixture::start().await;
    let tokens = large_values(&fixture).await;
    let served = support::serve(support::options(&fixture.url)).await;
    let base = served.base.clone();

    let before = redis_bytes_sent(&fixture.url).await;
    let pages = [
        "/".to_owned(),
        "/workers".to_owned(),
        "/services/Calculator".to_owned(),
        "/services/Calculator?max=1000".to_owned(),
        "/jobs/big-dead-9".to_owned(),
        "/jobs/big-queued".to_owned(),
        "/jobs/big-later".to_owned(),
        "/jobs/big-dead-3".to_owned(),
    ];
    let mut sizes = Vec::new();
    for path in &pages {
        let page = get(&base, path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.text());
        assert!(
            page.body.len() < PAGE_LIMIT,
            "{path} is {} bytes",
            page.body.len()
        );
        sizes.push(format!("{path}: {} bytes", page.body.len()));
    }
    let edit = get(
        &base,
        &format!("/services/Calculator/dead/{}/edit", tokens[9]),
    )
    .await;
    assert_eq!(edit.status, 413, "too large to edit: {}", edit.text());
    assert!(edit.text().contains("8.0 MiB"), "{}", edit.text());
    let sent = redis_bytes_sent(&fixture.url).await - before;
    println!("{}", sizes.join("\n"));
    println!(
        "Redis sent {sent} bytes for the {} pages above and the edit page",
        pages.len()
    );
    assert!(sent < 4 * 1024 * 1024, "Redis sent {sent} bytes");

    let service = get(&base, "/services/Calculator").await.text();
    for token in &tokens {
        assert!(
            service.contains(&format!("/services/Calculator/dead/{token}/message")),
            "a download link for dead letter {token}"
        );
    }
    assert!(service.contains("Message of 8.0 MiB: its start is shown"));
    assert!(service.contains("Download the whole reason"));
    assert!(service.contains("w-1"), "the leased job's worker");
    let later = get(&base, "/jobs/big-later").await.text();
    assert!(later.contains("/services/Calculator/scheduled/big-later/message"));
    let kept = get(&base, "/jobs/big-dead-3").await.text();
    assert!(kept.contains("Download the whole reply"), "{kept}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_cut_on_a_page_downloads_whole() {
    // The link under a cut message streams the very bytes in Redis.
    let fixture = Fixture::start().await;
    let message = big_message("big-1", 3 * 1024 * 1024 + 7);
    let token = fixture
        .dead_letter("Calculator", &"r".repeat(70_000), &message)
        .await;
    let due = fixture.server_ms().await + 600_000;
    fixture
        .schedule_raw("Calculator", "later-1", due, &message)
        .await;
    let served = support::serve(support::options(&fixture.url)).await;
    let download = get(
        &served.base,
        &format!("/services/Calculator/dead/{token}/message"),
    )
    .await;
    assert_eq!(download.status, 200);
    assert_eq!(
        download.header("content-type"),
        Some("application/octet-stream")
    );
    assert!(download
        .header("content-disposition")
        .is_some_and(|d| d.starts_with("attachment")));
    assert_eq!(
        download.header("content-length"),
        Some(message.len().to_string().as_str())
    );
    assert!(download.body == message, "the download is the message");
    let reason = get(
        &served.base,
        &format!("/services/Calculator/dead/{token}/message?field=reason"),
    )
    .await;
    assert_eq!(reason.body, "r".repeat(70_000).as_bytes());
    let scheduled = get(
        &served.base,
        "/services/Calculator/scheduled/later-1/message",
    )
    .await;
    assert!(scheduled.body == message, "the scheduled message, whole");
    for missing in [
        "/services/Calculator/dead/1-1/message",
        "/services/Calculator/dead/not-a-token/message",
        "/services/Calculator/queue/1-1/message",
        "/services/Calculator/scheduled/nope/message",
        "/jobs/nope/result",
    ] {
        assert_eq!(get(&served.base, missing).await.status, 404, "{missing}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_found_among_100000_dead_letters_newest_first() {
    // Issue 19, point 5: with 100,000 entries the lookup read only the
    // oldest 10,000, so the newest dead letter's page and edit page were
    // 404. Now the newest, the oldest, and a call that died twice (newest
    // first) are all found, each lookup in bounded steps.
    let fixture = Fixture::start().await;
    let mut con = fixture.connection();
    let total = 100_000;
    for batch in 0..total / 1000 {
        let mut pipe = redis::pipe();
        for i in batch * 1000..(batch + 1) * 1000 {
            let id = if i == 5 {
                "twice".to_owned()
            } else {
                format!("call-{i}")
            };
            pipe.cmd("XADD")
                .arg("rpc:{Calculator}:dead")
                .arg("*")
                .arg("reason")
                .arg("boom")
                .arg("m")
                .arg(support::dead_message(
                    &id,
                    "Calculator.add",
                    json!({"a": i, "b": 1}),
                ))
                .ignore();
        }
        let _: () = pipe.query_async(&mut con).await.expect("XADD a batch");
    }
    let newest = fixture
        .dead_letter(
            "Calculator",
            "died again",
            &support::dead_message("twice", "Calculator.add", json!({"a": 1, "b": 1})),
        )
        .await;
    let served = support::serve(support::options(&fixture.url)).await;
    let base = served.base.clone();

    let mut timings = Vec::new();
    for id in ["twice", "call-99999", "call-0"] {
        let started = Instant::now();
        let page = get(&base, &format!("/jobs/{id}")).await;
        timings.push(format!("/jobs/{id}: {:?}", started.elapsed()));
        assert_eq!(page.status, 200, "{id}: {}", page.text());
        assert!(
            !page.text().contains("search-unfinished"),
            "{id}: searched to the end"
        );
        assert!(page.text().contains("state-dead"), "{id}");
    }
    println!(
        "lookups among 100,001 dead letters:\n{}",
        timings.join("\n")
    );
    let twice = get(&base, "/jobs/twice").await.text();
    let newest_at = twice.find(&newest).expect("the newest sighting");
    let older_at = twice
        .match_indices("<section class=\"sighting\">")
        .nth(1)
        .map(|(at, _)| at)
        .expect("two sightings");
    assert!(newest_at < older_at, "the newest sighting comes first");

    let edit = get(&base, &format!("/services/Calculator/dead/{newest}/edit")).await;
    assert_eq!(edit.status, 200, "{}", edit.text());
    assert!(edit.text().contains("id=\"call-form\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_messages_on_one_page_share_one_text_budget() {
    // 200 dead letters of 12 KiB each, read whole (under the window) but
    // shown pretty and by field: without a page budget this page is about
    // 5 MB; with it, a little over 1 MB, and the rows past it say so.
    let fixture = Fixture::start().await;
    for i in 0..200 {
        let message = big_message(&format!("mid-{i}"), 12 * 1024);
        fixture.dead_letter("Calculator", "boom", &message).await;
    }
    let served = support::serve(support::options(&fixture.url)).await;
    let page = get(&served.base, "/services/Calculator?max=200").await;
    assert_eq!(page.status, 200);
    println!(
        "a page of 200 dead letters of 12 KiB: {} bytes",
        page.body.len()
    );
    assert!(page.body.len() < PAGE_LIMIT, "{} bytes", page.body.len());
    let text = page.text();
    assert_eq!(text.matches("<tr class=\"dead\"").count(), 200);
    assert!(text.contains("Part of this message is not shown"));
    assert!(
        text.contains("id=\"dead-next\""),
        "the next 200 are a link away"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_page_on_past_the_first_ones() {
    // `?after=` goes on where a page stopped, so every dead letter can be
    // reached however many there are, one bounded page at a time.
    let fixture = Fixture::start().await;
    let mut tokens = Vec::new();
    for i in 0..5 {
        let message = support::dead_message(&format!("p-{i}"), "Calculator.add", json!({}));
        tokens.push(fixture.dead_letter("Calculator", "boom", &message).await);
    }
    let served = support::serve(support::options(&fixture.url)).await;
    let first = get(&served.base, "/services/Calculator?max=2").await.text();
    assert!(first.contains(&tokens[0]) && first.contains(&tokens[1]));
    assert!(!first.contains(&format!("data-token=\"{}\"", tokens[2])));
    let next = get(
        &served.base,
        &format!("/services/Calculator?max=2&after={}", tokens[1]),
    )
    .await
    .text();
    assert!(next.contains(&format!("data-token=\"{}\"", tokens[2])));
    assert!(!next.contains(&format!("data-token=\"{}\"", tokens[1])));
}

/// The `data-token`s of a failures page's rows, in order.
fn failure_tokens(page: &str) -> Vec<String> {
    page.match_indices("<tr class=\"failure\" data-token=\"")
        .map(|(at, m)| {
            page[at + m.len()..]
                .split('"')
                .next()
                .expect("a token")
                .to_owned()
        })
        .collect()
}

/// The href of the link with `id` on a page, unescaped.
fn link(page: &str, id: &str) -> Option<String> {
    let at = page.find(&format!("id=\"{id}\""))?;
    let start = page[..at].rfind("href=\"")? + 6;
    Some(
        page[start..]
            .split('"')
            .next()?
            .replace("&amp;", "&")
            .replace("&#38;", "&"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_page_through_100000_dead_letters_in_bounded_time() {
    // Issue 21: a list of recent failures, searchable, with paging that
    // stays bounded per page with 100,000 dead letters present. The newest
    // page, the next one by its cursor, and a search for a job name that
    // only the oldest letters have all load within a generous bound, and
    // the cursor neither skips nor repeats a row. The worker and duration
    // a newer worker writes with a dead letter are shown.
    let fixture = Fixture::start().await;
    let mut con = fixture.connection();
    let total = 100_000;
    for batch in 0..total / 1000 {
        let mut pipe = redis::pipe();
        for i in batch * 1000..(batch + 1) * 1000 {
            // The 10 oldest are of another job, to search for.
            let job = if i < 10 {
                "Calculator.divide"
            } else {
                "Calculator.add"
            };
            pipe.cmd("XADD")
                .arg("rpc:{Calculator}:dead")
                .arg("*")
                .arg("reason")
                .arg(format!("failed on attempt 3 of 3: boom {i}"))
                .arg("m")
                .arg(support::dead_message(
                    &format!("f-{i}"),
                    job,
                    json!({"a": i, "b": 1}),
                ))
                .arg("worker")
                .arg("host-1:4242:w")
                .arg("duration_ms")
                .arg(1500)
                .ignore();
        }
        let _: () = pipe.query_async(&mut con).await.expect("XADD a batch");
    }
    let served = support::serve(support::options(&fixture.url)).await;
    let bound = std::time::Duration::from_secs(20);

    let started = Instant::now();
    let first = get(&served.base, "/failures?max=50").await;
    let first_took = started.elapsed();
    assert_eq!(first.status, 200, "{}", first.text());
    let first = first.text();
    let rows = failure_tokens(&first);
    assert_eq!(rows.len(), 50, "a full first page");
    assert!(first.contains(">f-99999<"), "the newest comes first");
    assert!(first.contains("host-1:4242:w"), "the worker");
    assert!(
        first.contains("class=\"duration\">1.5s<"),
        "how long the last attempt ran"
    );
    assert!(first.contains("3 of 3"), "the attempt");
    let next = link(&first, "failures-next").expect("a link to the next page");

    let started = Instant::now();
    let second = get(&served.base, &next).await;
    let second_took = started.elapsed();
    assert_eq!(second.status, 200, "{}", second.text());
    let second = second.text();
    let more = failure_tokens(&second);
    assert_eq!(more.len(), 50, "a full second page");
    assert!(
        second.contains(">f-99949<"),
        "the second page goes on where the first stopped"
    );
    assert!(more.iter().all(|t| !rows.contains(t)), "no row twice");

    // A search that has to look through all of them: the 10 oldest.
    let started = Instant::now();
    let mut found = Vec::new();
    let mut path = "/failures?q=Calculator.divide&max=50".to_owned();
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages < 100, "the search pages on to the end");
        let page = get(&served.base, &path).await;
        assert_eq!(page.status, 200, "{}", page.text());
        let page = page.text();
        found.extend(failure_tokens(&page));
        match link(&page, "failures-next") {
            Some(next) => path = next,
            None => break,
        }
    }
    let search_took = started.elapsed();
    assert_eq!(found.len(), 10, "every letter of the job, once: {found:?}");
    println!(
        "failures among 100,000 dead letters: first page {first_took:?}, next {second_took:?}, \
         a search through all in {pages} page(s) {search_took:?}"
    );
    assert!(
        first_took < bound && second_took < bound,
        "{first_took:?} {second_took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_jobs_and_the_schedule_page_on_past_the_first_ones() {
    // Issue 21: the queued and scheduled lists stopped at "Showing the
    // first 50" (or 200 with `?max=`), a dead end. Now each pages on with a
    // cursor: every queued job and every scheduled call can be reached,
    // one bounded page at a time, none twice.
    let fixture = Fixture::start().await;
    // 7 jobs, the first leased: 6 queued.
    fixture.lease_jobs("Reports", "builder-1", 7, 1).await;
    let due = fixture.server_ms().await + 3_600_000;
    for i in 0..5u64 {
        let id = format!("later-{i}");
        let message = support::job_message(&id, "Reports.build", json!({"n": i}));
        fixture
            .schedule_raw("Reports", &id, due + i * 1000, &message)
            .await;
    }
    let served = support::serve(support::options(&fixture.url)).await;
    let row_tokens = |page: &str, class: &str, attr: &str| -> Vec<String> {
        let marker = format!("<tr class=\"{class}\" {attr}=\"");
        page.match_indices(&marker)
            .map(|(at, m)| {
                page[at + m.len()..]
                    .split('"')
                    .next()
                    .unwrap_or("")
                    .to_owned()
            })
            .collect()
    };
    let mut queued = Vec::new();
    let mut scheduled = Vec::new();
    let mut path = "/services/Reports?max=2".to_owned();
    for _ in 0..10 {
        let page = get(&served.base, &path).await;
        assert_eq!(page.status, 200, "{}", page.text());
        let page = page.text();
        queued.extend(row_tokens(&page, "queued", "data-token"));
        match page.find("id=\"queued-next\"") {
            Some(at) => {
                let href = page[..at].rfind("href=\"").expect("a link") + 6;
                path = format!(
                    "/services/Reports{}",
                    page[href..]
                        .split('"')
                        .next()
                        .unwrap_or("")
                        .replace("&amp;", "&")
                );
                path = path.split('#').next().unwrap_or("").to_owned();
            }
            None => break,
        }
    }
    let mut unique = queued.clone();
    unique.dedup();
    assert_eq!(queued.len(), 6, "every queued job once: {queued:?}");
    assert_eq!(unique.len(), 6, "{queued:?}");
    for from in [0, 2, 4] {
        let page = get(
            &served.base,
            &format!("/services/Reports?max=2&scheduled_from={from}"),
        )
        .await
        .text();
        scheduled.extend(row_tokens(&page, "scheduled", "data-id"));
        assert_eq!(
            page.contains("id=\"scheduled-next\""),
            from < 4,
            "from {from}"
        );
    }
    assert_eq!(
        scheduled,
        (0..5).map(|i| format!("later-{i}")).collect::<Vec<_>>(),
        "the schedule, soonest first, each once"
    );
}
