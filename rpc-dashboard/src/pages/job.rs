//! One call, looked up by id: where it is now (scheduled, queued, running,
//! dead, done with its kept result), its parameters and its reply, and the
//! Cancel button while it has not finished, and its progress, kept live
//! by `progress.rs`'s fragment. The search itself is
//! `call_search`: bounded in time, newest first; the page says when it was
//! cut short. Messages and the reply are read cut to a window, with a link
//! to download them whole.

use std::time::Instant;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use rpc_protocol::limits::MAX_ID_BYTES;
use serde::Deserialize;

use crate::bounds::{TextBudget, PREVIEW_BYTES};
use crate::call_search::{sightings_in, Places, Sighting, LOOKUP_TIME, MAX_SIGHTINGS_PER_PAGE};
use crate::error::{render, PageError};
use crate::pages::progress::{self, ProgressView};
use crate::pages::Layout;
use crate::paths;
use crate::reply_view::{self, ReplyView};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    layout: Layout,
    id: String,
    sightings: Vec<Sighting>,
    reply: Option<ReplyView>,
    /// Where the whole reply is downloaded.
    reply_download: String,
    /// `Service.job`, when known.
    job: Option<String>,
    /// Whether the search stopped before it looked at every entry.
    unfinished: bool,
    /// The handler's newest progress report, if one is kept.
    progress: Option<ProgressView>,
    /// Whether the call has yet to finish: its progress is polled.
    live: bool,
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
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        return Err(PageError::NotFound(format!(
            "no call can have this id: a call id is 1 to {MAX_ID_BYTES} bytes"
        )));
    }
    let deadline = Instant::now() + LOOKUP_TIME;
    let mut budget = TextBudget::default();
    let mut sightings = Vec::new();
    let mut unfinished = false;
    for service in state.services().await? {
        if sightings.len() >= MAX_SIGHTINGS_PER_PAGE {
            unfinished = true;
            break;
        }
        let (found, finished) =
            sightings_in(&state, &service, &id, Places::All, deadline, &mut budget).await?;
        sightings.extend(found);
        unfinished |= !finished;
    }
    let kept = state
        .inspector()
        .await?
        .kept_result_window(&id, 0, PREVIEW_BYTES)
        .await?;
    let job = sightings
        .iter()
        .map(|s| s.message.job.clone())
        .find(|j| !j.is_empty())
        .or(query.job.filter(|j| state.catalog().job(j).is_some()));
    let reply = kept.map(|excerpt| {
        let schema = job.as_deref().and_then(|j| state.catalog().job(j));
        reply_view::reply(&excerpt, schema, &mut budget)
    });
    if sightings.is_empty() && reply.is_none() && !unfinished {
        return Err(PageError::NotFound(format!(
            "no call `{id}` is scheduled, queued, running, dead or kept: it may have finished \
             without a kept result, or its result expired"
        )));
    }
    let live = reply.is_none() && sightings.iter().any(Sighting::can_be_cancelled);
    let progress = progress::read(&*state.inspector().await?, &id).await?;
    let page = JobPage {
        layout: Layout::new(&state, format!("Call {id}"), ""),
        reply_download: paths::kept_result(&id),
        id,
        sightings,
        reply,
        job,
        unfinished,
        progress,
        live,
    };
    Ok(render(StatusCode::OK, &page).into_response())
}
