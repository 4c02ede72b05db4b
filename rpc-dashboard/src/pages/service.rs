//! One service: the jobs workers hold (worker, attempt, age, deadline), the
//! jobs waiting, the jobs on the schedule (delayed calls, retries waiting
//! out their backoff) and the dead letters with their reason, each message
//! pretty-printed and, with a schema, shown by field and checked. The
//! actions sit beside what they act on: Cancel on every call that has yet
//! to finish, Pause or Resume by the service's name, replay and delete on
//! dead letters (Sidekiq's Scheduled, Retries and Dead tabs).

use std::time::SystemTime;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::entry_id;
use crate::error::{render, PageError};
use crate::message_view::{self, MessageView};
use crate::pages::Layout;
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

/// A job waiting on the schedule.
pub struct ScheduledRow {
    /// The call id.
    pub id: String,
    /// `in 20.0s` (`5.0s ago` for one due that no worker moved yet).
    pub due: String,
    pub attempt: Option<u32>,
    pub retry: bool,
    /// `Service.job`; `None` for a message that is no job message.
    pub job: Option<String>,
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
    scheduled: u64,
    dead_letters: u64,
    consumers: usize,
    paused: bool,
    leased_rows: Vec<LeasedRow>,
    queued_rows: Vec<EntryRow>,
    scheduled_rows: Vec<ScheduledRow>,
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
    state.known_service(&service).await?;
    let max = query.max.unwrap_or(DEFAULT_MAX).clamp(1, 1_000);
    let now = SystemTime::now();
    let catalog = state.catalog();
    let inspector = state.inspector().await?;
    let stats = state.service_stats(&service).await?;
    let leased_rows = inspector
        .leased(&service, max)
        .await?
        .unwrap_or_default()
        .into_iter()
        .map(|l| {
            let message = message_view::job_message(l.payload.as_deref(), catalog, now);
            LeasedRow {
                attempt: u64::from(message.attempt.max(1)) + l.deliveries.saturating_sub(1),
                age: entry_age(&l.token, now),
                idle: time_text::duration(l.idle),
                token: l.token,
                consumer: l.consumer,
                deliveries: l.deliveries,
                message,
            }
        })
        .collect();
    let queued_rows = inspector
        .queued(&service, max)
        .await?
        .unwrap_or_default()
        .into_iter()
        .map(|q| EntryRow {
            age: entry_age(&q.token, now),
            reason: String::new(),
            message: message_view::job_message(Some(&q.payload), catalog, now),
            token: q.token,
        })
        .collect();
    let scheduled_rows = inspector
        .scheduled(&service, max)
        .await?
        .unwrap_or_default()
        .into_iter()
        .map(|j| ScheduledRow {
            // Redis's clock set the due time, this machine's reads it:
            // close enough for "in 20s".
            due: time_text::due_ms(j.due_ms, now),
            retry: j.is_retry(),
            attempt: j.attempt,
            job: j.job,
            id: j.id,
        })
        .collect();
    let scheduled = inspector.scheduled_count(&service).await?;
    let paused = inspector.is_paused(&service).await?;
    let dead_rows = state
        .client()
        .await?
        .dead_letters(&service, max)
        .await?
        .into_iter()
        .map(|d| EntryRow {
            age: entry_age(&d.token, now),
            message: message_view::job_message(Some(&d.payload), catalog, now),
            reason: d.reason,
            token: d.token,
        })
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
        scheduled,
        dead_letters: stats.dead_letters,
        consumers: stats.consumers.len(),
        paused,
        service,
        leased_rows,
        queued_rows,
        scheduled_rows,
        dead_rows,
        jobs,
        max,
    };
    Ok(render(StatusCode::OK, &page).into_response())
}

/// How long ago the entry was added (from its stream id).
fn entry_age(token: &str, now: SystemTime) -> String {
    entry_id::added_at(token)
        .map(|t| time_text::age(t, now))
        .unwrap_or_default()
}
