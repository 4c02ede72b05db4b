//! One service: the jobs workers hold (worker, attempt, age, deadline), the
//! jobs waiting, and the dead letters with their reason, each message
//! pretty-printed and, with a schema, shown by field and checked. The
//! actions on dead letters sit beside them (Sidekiq's Dead tab).

use std::time::SystemTime;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::error::{render, PageError};
use crate::message_view::{self, MessageView};
use crate::pages::Layout;
use crate::queue_reader::Entry;
use crate::state::AppState;
use crate::time_text;

/// How many entries of each list a page shows unless `?max=` says otherwise.
const DEFAULT_MAX: usize = 50;

/// A job a worker holds.
pub struct LeasedRow {
    pub token: String,
    pub consumer: String,
    /// The attempt it is on: the message's attempt plus redeliveries.
    pub attempt: u64,
    pub deliveries: u64,
    pub age: String,
    pub idle: String,
    pub message: MessageView,
}

/// A job waiting in the queue, or a dead letter.
pub struct EntryRow {
    pub token: String,
    pub age: String,
    /// The dead letter's reason (empty for queued jobs).
    pub reason: String,
    pub message: MessageView,
}

/// A job the schema defines, with a link to its form.
pub struct JobLink {
    pub job: String,
    pub signature: String,
}

#[derive(Template)]
#[template(path = "service.html")]
struct ServicePage {
    layout: Layout,
    service: String,
    queued: u64,
    leased: u64,
    dead_letters: u64,
    consumers: usize,
    leased_rows: Vec<LeasedRow>,
    queued_rows: Vec<EntryRow>,
    dead_rows: Vec<EntryRow>,
    jobs: Vec<JobLink>,
    max: usize,
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    max: Option<usize>,
    notice: Option<String>,
}

pub async fn service(
    State(state): State<AppState>,
    Path(service): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<Response, PageError> {
    let reader = state.known_service(&service).await?;
    let max = query.max.unwrap_or(DEFAULT_MAX).clamp(1, 1_000);
    let now = SystemTime::now();
    let catalog = state.catalog();
    let stats = reader.service_stats(&service).await?;
    let leased_rows = reader
        .leased(&service, max)
        .await?
        .into_iter()
        .map(|l| {
            let message = message_view::job_message(l.entry.field("m"), catalog, now);
            LeasedRow {
                attempt: u64::from(message.attempt.max(1)) + l.deliveries.saturating_sub(1),
                age: entry_age(&l.entry, now),
                idle: time_text::duration(l.idle),
                token: l.entry.id,
                consumer: l.consumer,
                deliveries: l.deliveries,
                message,
            }
        })
        .collect();
    let queued_rows = reader
        .queued(&stats, max)
        .await?
        .into_iter()
        .map(|e| entry_row(e, now, &state))
        .collect();
    let dead_rows = reader
        .range(&reader.dead_key(&service), "-", "+", max)
        .await?
        .into_iter()
        .map(|e| entry_row(e, now, &state))
        .collect();
    let jobs = catalog
        .jobs_of(&service)
        .map(|j| JobLink {
            job: j.job.clone(),
            signature: format!(
                "({}) -> {}",
                j.fields
                    .iter()
                    .map(|f| format!("{}: {}", f.name, f.type_label))
                    .collect::<Vec<_>>()
                    .join(", "),
                match &j.error_type {
                    Some(e) => format!("Result<{}, {e}>", j.returns),
                    None => j.returns.clone(),
                }
            ),
        })
        .collect();
    let page = ServicePage {
        layout: Layout::new(&state, service.clone(), "").with_notice(query.notice.as_deref()),
        queued: stats.queued,
        leased: stats.leased,
        dead_letters: stats.dead_letters,
        consumers: stats.consumers.len(),
        service,
        leased_rows,
        queued_rows,
        dead_rows,
        jobs,
        max,
    };
    Ok(render(StatusCode::OK, &page).into_response())
}

fn entry_row(entry: Entry, now: SystemTime, state: &AppState) -> EntryRow {
    EntryRow {
        age: entry_age(&entry, now),
        reason: entry
            .field("reason")
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .unwrap_or_default(),
        message: message_view::job_message(entry.field("m"), state.catalog(), now),
        token: entry.id,
    }
}

/// How long ago the entry was added (from its stream id).
fn entry_age(entry: &Entry, now: SystemTime) -> String {
    entry
        .added_at()
        .map(|t| time_text::age(t, now))
        .unwrap_or_default()
}
