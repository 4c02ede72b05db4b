//! One call, looked up by id: where it is now (scheduled, queued, running,
//! dead, done with its kept result), its parameters and its reply, and the
//! Cancel button while it has not finished.
//!
//! Redis has no index by call id, so the lookup reads each service's
//! schedule, queue and dead letters (up to `SCAN_LIMIT` entries of each) and
//! the kept result key. A call can be in more than one place at once (a
//! duplicate delivery, a replayed dead letter whose old result is still
//! kept): every sighting is listed. The cancel action looks the call up the
//! same way before it cancels anything.

use std::time::SystemTime;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::entry_id;
use crate::error::{render, PageError};
use crate::message_view::{self, MessageView, ReplyView};
use crate::pages::Layout;
use crate::paths;
use crate::state::AppState;
use crate::time_text;

/// Entries read per stream when looking for a call.
const SCAN_LIMIT: usize = 10_000;

/// Where the call was seen.
pub struct Sighting {
    /// `scheduled`, `queued`, `running` or `dead`.
    pub state: &'static str,
    pub service: String,
    pub token: String,
    /// The worker holding it, or why it died, and since when.
    pub detail: String,
    pub message: MessageView,
}

impl Sighting {
    /// Whether the call has yet to finish here, so that cancelling it means
    /// something.
    pub fn can_be_cancelled(&self) -> bool {
        matches!(self.state, "scheduled" | "queued" | "running")
    }
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    layout: Layout,
    id: String,
    sightings: Vec<Sighting>,
    reply: Option<ReplyView>,
    /// `Service.job`, when known.
    job: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LookupQuery {
    id: Option<String>,
}

/// `?job=Service.job`: which job the call is, when nothing left in Redis
/// says so (a finished call's kept reply does not name its job).
#[derive(Debug, Deserialize)]
pub struct JobQuery {
    job: Option<String>,
}

/// The header's search box: `/jobs?id=...` goes to the call's page.
pub async fn lookup(Query(query): Query<LookupQuery>) -> Response {
    match query
        .id
        .as_deref()
        .map(str::trim)
        .filter(|id| !id.is_empty())
    {
        Some(id) => Redirect::to(&paths::call(id)).into_response(),
        None => Redirect::to("/").into_response(),
    }
}

pub async fn job(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<JobQuery>,
) -> Result<Response, PageError> {
    let now = SystemTime::now();
    let mut sightings = Vec::new();
    for service in state.services().await? {
        sightings.extend(sightings_in(&state, &service, &id, now).await?);
    }
    let kept = state.inspector().await?.kept_result(&id).await?;
    let job = sightings
        .first()
        .map(|s| s.message.job.clone())
        .or(query.job.filter(|j| state.catalog().job(j).is_some()));
    let reply = kept.map(|bytes| {
        message_view::reply(&bytes, job.as_deref().and_then(|j| state.catalog().job(j)))
    });
    if sightings.is_empty() && reply.is_none() {
        return Err(PageError::NotFound(format!(
            "no call `{id}` is scheduled, queued, running, dead or kept: it may have finished \
             without a kept result, or its result expired"
        )));
    }
    let page = JobPage {
        layout: Layout::new(&state, format!("Call {id}"), ""),
        id,
        sightings,
        reply,
        job,
    };
    Ok(render(StatusCode::OK, &page).into_response())
}

/// Where call `id` is in `service`: on the schedule, leased, queued, dead.
pub async fn sightings_in(
    state: &AppState,
    service: &str,
    id: &str,
    now: SystemTime,
) -> Result<Vec<Sighting>, PageError> {
    let inspector = state.inspector().await?;
    let catalog = state.catalog();
    let mut found = Vec::new();
    let sighting = |state: &'static str, token: String, detail: String, payload: &[u8]| Sighting {
        state,
        service: service.to_owned(),
        token,
        detail,
        message: message_view::job_message(Some(payload), catalog, now),
    };
    for job in inspector
        .scheduled(service, SCAN_LIMIT)
        .await?
        .unwrap_or_default()
    {
        if job.id == id {
            let mut detail = format!("(due {}", time_text::due_ms(job.due_ms, now));
            if let Some(attempt) = job.attempt.filter(|_| job.is_retry()) {
                detail.push_str(&format!(", a retry: attempt {attempt}"));
            }
            detail.push(')');
            // No message: moved onto the queue meanwhile, or written broken.
            let payload = (!job.payload.is_empty()).then_some(job.payload.as_slice());
            let message = message_view::job_message(payload, catalog, now);
            found.push(Sighting {
                state: "scheduled",
                service: service.to_owned(),
                token: job.id,
                detail,
                message,
            });
        }
    }
    for job in inspector
        .leased(service, SCAN_LIMIT)
        .await?
        .unwrap_or_default()
    {
        if let Some(payload) = job.payload.filter(|p| is_call(p, id)) {
            let detail = format!(
                "held by {} (delivery {}, lease idle {})",
                job.consumer,
                job.deliveries,
                time_text::duration(job.idle)
            );
            found.push(sighting("running", job.token, detail, &payload));
        }
    }
    for job in inspector
        .queued(service, SCAN_LIMIT)
        .await?
        .unwrap_or_default()
    {
        if is_call(&job.payload, id) {
            let detail = added(&job.token, now);
            found.push(sighting("queued", job.token, detail, &job.payload));
        }
    }
    for dead in state
        .client()
        .await?
        .dead_letters(service, SCAN_LIMIT)
        .await?
    {
        if is_call(&dead.payload, id) {
            let detail = format!("{} ({})", dead.reason, added(&dead.token, now));
            found.push(sighting("dead", dead.token, detail, &dead.payload));
        }
    }
    Ok(found)
}

fn added(token: &str, now: SystemTime) -> String {
    entry_id::added_at(token)
        .map(|t| format!("since {}", time_text::relative(t, now)))
        .unwrap_or_default()
}

/// Whether a message is the call `id`.
fn is_call(message: &[u8], id: &str) -> bool {
    // Cheap test first: most messages do not even contain the id.
    let needle = id.as_bytes();
    !needle.is_empty()
        && message.windows(needle.len()).any(|w| w == needle)
        && serde_json::from_slice::<serde_json::Value>(message)
            .ok()
            .is_some_and(|v| v.get("id").and_then(|i| i.as_str()) == Some(id))
}
