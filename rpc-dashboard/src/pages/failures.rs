//! Recent failures: the failed attempts that are not dead letters (retried,
//! or answered with an error; `failed_attempts.rs`), and the dead letters
//! of every service (or of one), newest
//! first, each with its job, call id, attempt, error, and, when the worker
//! that gave up wrote them, how long the last attempt ran and on which
//! worker (Sidekiq's Dead tab, across queues). Searchable by a job's full
//! name (`Calculator.divide`) or a call id, and paged with a cursor.
//!
//! Bounded per page whatever the streams hold: each service's dead letters
//! are searched inside Redis, newest first, in bounded steps
//! (`Inspector::search_stream`), for at most [`SEARCH_TIME`] in all; only
//! the rows shown are then read, cut to a window. The cursor (`before`) is
//! a stream entry id, which is a time: a page shows every match newer than
//! the point down to which every service was searched, and the next page
//! starts below the last row shown, so paging skips nothing and shows
//! nothing twice (but two entries of two services with the very same id,
//! which Redis's millisecond clock makes rare).

use std::time::{Instant, SystemTime};

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rpc_protocol::limits::MAX_ID_BYTES;
use rpc_runtime::inspect::{human_time, Stream};
use serde::Deserialize;

use crate::bounds::{self, PREVIEW_BYTES, REASON_BYTES};
use crate::entry_id;
use crate::error::{render, PageError};
use crate::message_head;
use crate::pages::failed_attempts::{self, AttemptRow};
use crate::pages::service::reason_text;
use crate::pages::Layout;
use crate::paths;
use crate::state::AppState;

/// How long one page may search, across every service.
pub const SEARCH_TIME: std::time::Duration = std::time::Duration::from_secs(5);
/// Rows a page shows unless `?max=` says otherwise, and at most.
const DEFAULT_ROWS: usize = 50;
const MAX_ROWS: usize = 100;

/// A dead letter's row.
pub struct FailureRow {
    pub service: String,
    pub token: String,
    /// `3m ago`.
    pub died: String,
    /// The call id, when the message has one (and it can be linked).
    pub id: Option<String>,
    pub job: Option<String>,
    /// `2 of 3`.
    pub attempt: Option<String>,
    pub reason: String,
    /// Where the whole reason is downloaded, when it was cut.
    pub reason_download: Option<String>,
    /// How long the last attempt ran, when the worker wrote it.
    pub duration: Option<String>,
    /// The worker (consumer) that dead-lettered it, when it wrote it.
    pub worker: Option<String>,
}

#[derive(Template)]
#[template(path = "failures.html")]
struct FailuresPage {
    layout: Layout,
    rows: Vec<FailureRow>,
    /// Every service, for the filter.
    services: Vec<String>,
    service: String,
    q: String,
    max: usize,
    /// The cursor this page started at, when it is not the first.
    before: Option<String>,
    /// Where the next page starts, when there may be one.
    next: Option<String>,
    /// Whether the time limit stopped the search (the next page goes on).
    stopped_early: bool,
    /// Recent failed attempts, newest first (`failed_attempts.rs`).
    attempts: Vec<AttemptRow>,
    /// The cursor the attempts started at, when not the newest.
    attempts_before: Option<String>,
    /// Where the attempts' next page starts, when there is one.
    attempts_next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct FailuresQuery {
    service: Option<String>,
    q: Option<String>,
    before: Option<String>,
    /// The failed attempts' cursor (an entry id).
    attempts_before: Option<String>,
    max: Option<usize>,
}

/// An entry id as a pair of numbers, to compare ids of two streams.
fn order(token: &str) -> (u64, u64) {
    // A token of a sharded service's shard is marked `~k`: still a time.
    rpc_runtime::inspect::shards::entry_order(token)
}

pub async fn failures(
    State(state): State<AppState>,
    Query(query): Query<FailuresQuery>,
) -> Result<Response, PageError> {
    let max = query.max.unwrap_or(DEFAULT_ROWS).clamp(1, MAX_ROWS);
    let q = query
        .q
        .as_deref()
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(|q| bounds::cut_str(q, MAX_ID_BYTES).to_owned());
    let before = query
        .before
        .as_deref()
        .filter(|t| entry_id::is_entry_id(t))
        .map(str::to_owned);
    let all = state.services().await?;
    let service = query.service.filter(|s| !s.is_empty());
    let searched = match &service {
        Some(s) => {
            state.known_service(s).await?;
            vec![s.clone()]
        }
        None => all.clone(),
    };
    let inspector = state.inspector().await?;
    let attempts_before = query
        .attempts_before
        .as_deref()
        .filter(|t| entry_id::is_entry_id(t))
        .map(str::to_owned);
    let attempts = failed_attempts::page(
        &inspector,
        &searched,
        q.as_deref(),
        attempts_before.as_deref(),
        max,
    )
    .await?;
    let deadline = Instant::now() + SEARCH_TIME;
    let mut found: Vec<(String, String)> = Vec::new();
    // Down to where every service was searched.
    let mut floor: Option<String> = None;
    for s in &searched {
        let page = inspector
            .search_stream(
                s,
                Stream::Dead,
                q.as_deref(),
                before.as_deref(),
                max,
                deadline,
            )
            .await?;
        found.extend(page.tokens.into_iter().map(|t| (s.clone(), t)));
        if let Some(reached) = page.reached {
            if floor.as_deref().is_none_or(|f| order(&reached) > order(f)) {
                floor = Some(reached);
            }
        }
    }
    if let Some(f) = &floor {
        let f = order(f);
        found.retain(|(_, t)| order(t) >= f);
    }
    found.sort_by_key(|(_, t)| std::cmp::Reverse(order(t)));
    // A service that filled its page, or the deadline, stopped the search
    // at `floor`: the next page goes on below it (or below the last row,
    // when the page is full before it).
    let mut next = floor.clone();
    if found.len() > max {
        found.truncate(max);
        next = found.last().map(|(_, t)| t.clone());
    }
    let stopped_early = floor.is_some() && found.len() < max;

    let now = SystemTime::now();
    let mut rows = Vec::with_capacity(found.len());
    for s in &searched {
        let tokens: Vec<&str> = found
            .iter()
            .filter(|(fs, _)| fs == s)
            .map(|(_, t)| t.as_str())
            .collect();
        if tokens.is_empty() {
            continue;
        }
        let letters = inspector
            .dead_letters_by_token(s, &tokens, PREVIEW_BYTES)
            .await?;
        for letter in letters.into_iter().flatten() {
            let head = letter
                .message
                .as_ref()
                .map(|m| message_head::read(&m.bytes))
                .unwrap_or_default();
            // A job message without `attempt` is on its first.
            let attempt = head.job.as_ref().map(|_| {
                let a = head.attempt.unwrap_or(1);
                match head.max_attempts {
                    Some(m) => format!("{a} of {m}"),
                    None => a.to_string(),
                }
            });
            // The search matched the text anywhere in the message: keep
            // the letters whose call id or job it is.
            if let Some(q) = &q {
                if head.id.as_deref() != Some(q) && head.job.as_deref() != Some(q) {
                    continue;
                }
            }
            let field = |name: &'static str| {
                let inspector = inspector.clone();
                let (s, token) = (s.clone(), letter.token.clone());
                async move {
                    inspector
                        .entry_window(&s, Stream::Dead, &token, name, 0, 64)
                        .await
                        .ok()
                        .flatten()
                        .filter(|e| e.is_whole())
                        .and_then(|e| String::from_utf8(e.bytes).ok())
                }
            };
            let duration = field(rpc_protocol::stream::DURATION_MS)
                .await
                .and_then(|ms| ms.parse::<u64>().ok())
                .map(|ms| human_time::duration(std::time::Duration::from_millis(ms)));
            let worker = field(rpc_protocol::stream::WORKER)
                .await
                .map(|w| bounds::name(&w));
            rows.push(FailureRow {
                service: s.clone(),
                died: entry_id::added_at(&letter.token)
                    .map(|t| human_time::relative(t, now))
                    .unwrap_or_default(),
                id: head.id.filter(|id| id.len() <= MAX_ID_BYTES),
                job: head.job.map(|j| bounds::name(&j)),
                attempt,
                reason: reason_text(letter.reason.as_ref()),
                reason_download: letter
                    .reason
                    .as_ref()
                    .filter(|r| r.len > REASON_BYTES as u64)
                    .map(|_| format!("{}?field=reason", paths::dead_message(s, &letter.token))),
                duration,
                worker,
                token: letter.token,
            });
        }
    }
    rows.sort_by_key(|r| std::cmp::Reverse(order(&r.token)));
    let page = FailuresPage {
        layout: Layout::new(&state, "Failures", "failures"),
        rows,
        services: all,
        service: service.unwrap_or_default(),
        q: q.unwrap_or_default(),
        max,
        before,
        next,
        stopped_early,
        attempts: attempts.rows,
        attempts_before,
        attempts_next: attempts.next,
    };
    Ok(render(StatusCode::OK, &page).into_response())
}
