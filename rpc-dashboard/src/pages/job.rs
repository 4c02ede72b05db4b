//! One call, looked up by id: where it is now (queued, running, dead, done
//! with its kept result), its parameters and its reply.
//!
//! Redis has no index by call id, so the lookup reads each service's queue
//! and dead letters (up to `SCAN_LIMIT` entries each) and the kept result
//! key. A call can be in more than one place at once (a duplicate delivery,
//! a replayed dead letter whose old result is still kept): every sighting is
//! listed. Scheduled and cancelled calls join the list with the job
//! lifecycle.

use std::time::SystemTime;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::error::{render, PageError};
use crate::message_view::{self, MessageView, ReplyView};
use crate::pages::Layout;
use crate::queue_reader::{Entry, QueueReader};
use crate::state::AppState;
use crate::time_text;

/// Entries read per stream when looking for a call.
const SCAN_LIMIT: usize = 10_000;

/// Where the call was seen.
pub struct Sighting {
    /// `queued`, `running` or `dead`.
    pub state: &'static str,
    pub service: String,
    pub token: String,
    /// The worker holding it, or why it died, and since when.
    pub detail: String,
    pub message: MessageView,
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    layout: Layout,
    id: String,
    sightings: Vec<Sighting>,
    reply: Option<ReplyView>,
}

#[derive(Debug, Deserialize)]
pub struct LookupQuery {
    id: Option<String>,
}

/// The header's search box: `/jobs?id=...` goes to the call's page.
pub async fn lookup(Query(query): Query<LookupQuery>) -> Response {
    match query
        .id
        .as_deref()
        .map(str::trim)
        .filter(|id| !id.is_empty())
    {
        Some(id) => Redirect::to(&format!("/jobs/{}", encode(id))).into_response(),
        None => Redirect::to("/").into_response(),
    }
}

/// A path segment, percent-encoded.
pub fn encode(segment: &str) -> String {
    form_urlencoded::byte_serialize(segment.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

pub async fn job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let reader = state.reader().await?;
    let now = SystemTime::now();
    let mut sightings = Vec::new();
    for service in state.services().await? {
        sightings.extend(find_in_service(&state, &reader, &service, &id, now).await?);
    }
    let client = state.client().await?;
    let reply = client.backend().get_result(&id).await?.map(|bytes| {
        let job = sightings.first().map(|s| s.message.job.clone());
        message_view::reply(&bytes, job.and_then(|j| state.catalog().job(&j)))
    });
    if sightings.is_empty() && reply.is_none() {
        return Err(PageError::NotFound(format!(
            "no call `{id}` is queued, running, dead or kept: it may have finished without a \
             kept result, or its result expired"
        )));
    }
    let page = JobPage {
        layout: Layout::new(&state, format!("Call {id}"), ""),
        id,
        sightings,
        reply,
    };
    Ok(render(StatusCode::OK, &page).into_response())
}

async fn find_in_service(
    state: &AppState,
    reader: &QueueReader,
    service: &str,
    id: &str,
    now: SystemTime,
) -> Result<Vec<Sighting>, PageError> {
    let mut found = Vec::new();
    let queued = matching(
        reader
            .range(&reader.jobs_key(service), "-", "+", SCAN_LIMIT)
            .await?,
        id,
    );
    if !queued.is_empty() {
        let leases = reader.leased(service, SCAN_LIMIT).await?;
        for entry in queued {
            let lease = leases.iter().find(|l| l.entry.id == entry.id);
            let (state_name, detail) = match lease {
                Some(l) => (
                    "running",
                    format!(
                        "held by {} (delivery {}, lease idle {})",
                        l.consumer,
                        l.deliveries,
                        time_text::duration(l.idle)
                    ),
                ),
                None => ("queued", added(&entry, now)),
            };
            found.push(sighting(state, state_name, service, entry, detail, now));
        }
    }
    for entry in matching(
        reader
            .range(&reader.dead_key(service), "-", "+", SCAN_LIMIT)
            .await?,
        id,
    ) {
        let reason = entry
            .field("reason")
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .unwrap_or_default();
        let detail = format!("{reason} ({})", added(&entry, now));
        found.push(sighting(state, "dead", service, entry, detail, now));
    }
    Ok(found)
}

fn sighting(
    state: &AppState,
    state_name: &'static str,
    service: &str,
    entry: Entry,
    detail: String,
    now: SystemTime,
) -> Sighting {
    Sighting {
        state: state_name,
        service: service.to_owned(),
        message: message_view::job_message(entry.field("m"), state.catalog(), now),
        token: entry.id,
        detail,
    }
}

fn added(entry: &Entry, now: SystemTime) -> String {
    entry
        .added_at()
        .map(|t| format!("since {}", time_text::relative(t, now)))
        .unwrap_or_default()
}

/// The entries whose message is the call `id`.
fn matching(entries: Vec<Entry>, id: &str) -> Vec<Entry> {
    entries
        .into_iter()
        .filter(|e| {
            let Some(m) = e.field("m") else { return false };
            // Cheap test first: most entries do not even contain the id.
            contains(m, id.as_bytes())
                && serde_json::from_slice::<serde_json::Value>(m)
                    .ok()
                    .is_some_and(|v| v.get("id").and_then(|i| i.as_str()) == Some(id))
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}
