//! Every action, each a POST that redirects back to a page (so a reload
//! does not repeat it): replay or delete one dead letter or all of them,
//! fix a dead letter's parameters and replay it, enqueue a new call, cancel
//! a call, pause or resume a service, ask a worker to be quiet or to stop.
//!
//! The CSRF token and read-only mode are checked before any of these run
//! (`security::check_csrf`). Writes go through `rpc_runtime::Client`, the
//! same public API `rpc replay` uses, so the dashboard cannot drift from the
//! protocol. Edited parameters and new calls are checked against the job's
//! JSON Schema first; what does not fit is shown on the form again, with
//! nothing queued. A cancel names a call the dashboard can see scheduled,
//! queued or running in that service, so a mistyped id is a 404 rather than
//! a cancellation mark nobody ever reads.
//!
//! Dead letters are found by token, and a message is read whole only to
//! replay it (one at a time, up to the size workers take); acting on all
//! of them pages through their tokens, never holding their messages. A
//! sharded service's dead letters are listed over all its shards, a token
//! of shard `k >= 1` marked `<id>~k`: a replay puts the letter back on the
//! shard it came from, a delete removes it there ([`on_its_shard`]).

use std::collections::HashMap;
use std::time::{Instant, SystemTime};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form as Submitted;
use rpc_protocol::limits::MAX_ID_BYTES;
use rpc_runtime::backend::DeadLetter;
use rpc_runtime::inspect::shards::locate;
use rpc_runtime::inspect::{DeadLetterExcerpt, Excerpt, Liveness, WorkerControl};
use rpc_runtime::{Cancelled, JobId};
use serde_json::Value;

use crate::bounds::{TextBudget, EDIT_MAX_BYTES, REPLAY_MAX_BYTES};
use crate::call_search::{sightings_in, Places, LOOKUP_TIME};
use crate::error::PageError;
use crate::message_view;
use crate::pages::enqueue::{dead_letter, schema_job, whole_dead_letter, FormPage};
use crate::pages::service::reason_text;
use crate::paths;
use crate::schema_forms::Form;
use crate::state::AppState;

/// Dead-letter tokens read per step when acting on all of them.
const TOKENS_PER_READ: usize = 500;

/// The queue (shard) dead letter `dead` of `service` is on, and the letter
/// under the token it has there.
fn on_its_shard(service: &str, dead: &DeadLetter) -> (String, DeadLetter) {
    let (queue, bare) = locate(service, &dead.token);
    let letter = DeadLetter {
        token: bare.to_owned(),
        ..dead.clone()
    };
    (queue.into_owned(), letter)
}

/// Removes dead letter (marked) `token` of `service` from its shard.
async fn remove_from_its_shard(
    state: &AppState,
    service: &str,
    token: &str,
) -> Result<bool, PageError> {
    let (queue, bare) = locate(service, token);
    Ok(state
        .client()
        .await?
        .backend()
        .remove_dead_letter(&queue, bare)
        .await?)
}

fn back_to_service(service: &str, notice: &str) -> Response {
    Redirect::to(&format!("{}?notice={notice}", paths::service(service))).into_response()
}

pub async fn replay_one(
    State(state): State<AppState>,
    Path((service, token)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let (_, dead) = whole_dead_letter(&state, &service, &token, REPLAY_MAX_BYTES).await?;
    let client = state.client().await?;
    let (queue, dead) = on_its_shard(&service, &dead);
    client
        .replay_dead_letter(&queue, &dead)
        .await
        .map_err(|e| PageError::BadRequest(format!("cannot replay {token}: {e}")))?;
    Ok(back_to_service(&service, "replayed-1"))
}

pub async fn delete_one(
    State(state): State<AppState>,
    Path((service, token)): Path<(String, String)>,
) -> Result<Response, PageError> {
    dead_letter(&state, &service, &token).await?;
    remove_from_its_shard(&state, &service, &token).await?;
    Ok(back_to_service(&service, "deleted-1"))
}

/// The tokens and message lengths of every dead letter there is now,
/// read a page at a time with no message in them.
async fn every_dead_letter(
    state: &AppState,
    service: &str,
) -> Result<Vec<DeadLetterExcerpt>, PageError> {
    let inspector = state.inspector().await?;
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = inspector
            .dead_letter_excerpts(service, after.as_deref(), TOKENS_PER_READ, 0)
            .await?;
        let Some(last) = page.last() else {
            return Ok(all);
        };
        after = Some(last.token.clone());
        all.extend(page);
    }
}

/// Replays every readable dead letter (unreadable ones cannot run, and
/// ones larger than workers take would die again: they stay), one whole
/// message at a time.
pub async fn replay_all(
    State(state): State<AppState>,
    Path(service): Path<String>,
) -> Result<Response, PageError> {
    state.known_service(&service).await?;
    let client = state.client().await?;
    let mut replayed = 0;
    for letter in every_dead_letter(&state, &service).await? {
        let len = letter.message.as_ref().map_or(0, |m| m.len);
        if len == 0 || len > REPLAY_MAX_BYTES {
            continue;
        }
        let dead = match whole_dead_letter(&state, &service, &letter.token, REPLAY_MAX_BYTES).await
        {
            Ok((_, dead)) => dead,
            // Replayed or deleted by someone else meanwhile.
            Err(PageError::NotFound(_)) => continue,
            Err(e) => return Err(e),
        };
        if rpc_protocol::job::for_replay(&dead.payload).is_some() {
            let (queue, dead) = on_its_shard(&service, &dead);
            client.replay_dead_letter(&queue, &dead).await?;
            replayed += 1;
        }
    }
    Ok(back_to_service(&service, &format!("replayed-{replayed}")))
}

/// Deletes the dead letters there are now; any that arrive meanwhile stay.
pub async fn delete_all(
    State(state): State<AppState>,
    Path(service): Path<String>,
) -> Result<Response, PageError> {
    state.known_service(&service).await?;
    let mut deleted = 0;
    for letter in every_dead_letter(&state, &service).await? {
        if remove_from_its_shard(&state, &service, &letter.token).await? {
            deleted += 1;
        }
    }
    Ok(back_to_service(&service, &format!("deleted-{deleted}")))
}

/// Replays a dead letter with the parameters from the form, once they fit
/// the job's schema. The call keeps its id, as a plain replay does.
pub async fn edit_and_replay(
    State(state): State<AppState>,
    Path((service, token)): Path<(String, String)>,
    Submitted(submitted): Submitted<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let (letter, dead) = whole_dead_letter(&state, &service, &token, EDIT_MAX_BYTES).await?;
    let excerpt = Excerpt {
        len: dead.payload.len() as u64,
        bytes: dead.payload.clone(),
    };
    let mut budget = TextBudget::of(usize::MAX);
    let view = message_view::job_message(
        Some(&excerpt),
        state.catalog(),
        SystemTime::now(),
        &mut budget,
    );
    let schema = state.catalog().job(&view.job);
    let params = match Form::read(schema, &submitted) {
        Ok(params) => params,
        Err(form) => {
            let reason = reason_text(letter.reason.as_ref());
            let page = FormPage::edit(&state, &service, &token, &view.job, &reason, form);
            return Ok(page.respond(StatusCode::UNPROCESSABLE_ENTITY));
        }
    };
    let mut message: Value = serde_json::from_slice(&dead.payload)
        .map_err(|e| PageError::BadRequest(format!("the dead letter is unreadable: {e}")))?;
    let Some(fields) = message.as_object_mut() else {
        return Err(PageError::BadRequest(
            "the dead letter is not a job message".to_owned(),
        ));
    };
    fields.insert("params".to_owned(), params);
    let edited = DeadLetter {
        payload: serde_json::to_vec(&message)
            .map_err(|e| PageError::BadRequest(format!("cannot encode the message: {e}")))?,
        ..dead
    };
    let client = state.client().await?;
    let (queue, edited) = on_its_shard(&service, &edited);
    client
        .replay_dead_letter(&queue, &edited)
        .await
        .map_err(|e| PageError::BadRequest(format!("cannot replay {token}: {e}")))?;
    Ok(back_to_service(&service, "replayed-1"))
}

/// Enqueues a new call from the job's form, keeping its result so the
/// call's page can show the answer.
pub async fn enqueue(
    State(state): State<AppState>,
    Path((service, job)): Path<(String, String)>,
    Submitted(submitted): Submitted<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let schema = schema_job(&state, &service, &job)?;
    let params = match Form::read(Some(schema), &submitted) {
        Ok(params) => params,
        Err(form) => {
            let page = FormPage::new_call(&state, schema, form);
            return Ok(page.respond(StatusCode::UNPROCESSABLE_ENTITY));
        }
    };
    let client = state.client().await?;
    let pending = client.call(&schema.name(), params).send().await?;
    let page = format!(
        "{}?job={}",
        paths::call(pending.id().as_str()),
        paths::segment(&schema.name())
    );
    Ok(Redirect::to(&page).into_response())
}

/// Cancels one call of a service: one on the schedule is answered
/// `cancelled` at once, a queued one is skipped by the worker that takes
/// it, a running one is told to stop (`Client::cancel_in`).
pub async fn cancel(
    State(state): State<AppState>,
    Path((service, id)): Path<(String, String)>,
) -> Result<Response, PageError> {
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        return Err(PageError::NotFound(format!(
            "`{id}` is not a call id (1 to {MAX_ID_BYTES} bytes)"
        )));
    }
    state.known_service(&service).await?;
    let deadline = Instant::now() + LOOKUP_TIME;
    let mut budget = TextBudget::default();
    let (sightings, _) = sightings_in(
        &state,
        &service,
        &id,
        Places::Unfinished,
        deadline,
        &mut budget,
    )
    .await?;
    if !sightings.iter().any(|s| s.can_be_cancelled()) {
        return Err(PageError::NotFound(format!(
            "no call `{id}` is scheduled, queued or running in {service}: it has finished, \
             or there never was one"
        )));
    }
    let notice = match cancel_in_shards(&state, &service, &id).await? {
        Cancelled::Unscheduled => "cancelled",
        Cancelled::Marked | Cancelled::Requested => "cancelling",
    };
    Ok(back_to_service(&service, notice))
}

/// Cancels call `id` of `service` through the client, which routes an id
/// marked with its shard (`...~k`); an unmarked id in every shard of the
/// service, the strongest outcome reported.
async fn cancel_in_shards(
    state: &AppState,
    service: &str,
    id: &str,
) -> Result<Cancelled, PageError> {
    let client = state.client().await?;
    let job = JobId::from(id);
    let refused = |e| PageError::BadRequest(format!("cannot cancel {id}: {e}"));
    if rpc_protocol::shards::shard_of_id(id).is_some() {
        return client.cancel_in(service, &job).await.map_err(refused);
    }
    let mut outcome = Cancelled::Marked;
    // Each shard's queue itself (`cancel_in` of a shard's queue would
    // search the service's kept shards, missing one only the scan found).
    for (_, queue) in state.inspector().await?.shard_queues(service).await? {
        let done = client.backend().cancel_job(&queue, id).await;
        match done.map_err(refused)? {
            Cancelled::Unscheduled => outcome = Cancelled::Unscheduled,
            Cancelled::Requested if outcome == Cancelled::Marked => outcome = Cancelled::Requested,
            _ => {}
        }
    }
    Ok(outcome)
}

/// Pauses a service: its workers stop taking its jobs within about a second.
pub async fn pause(
    State(state): State<AppState>,
    Path(service): Path<String>,
) -> Result<Response, PageError> {
    state.known_service(&service).await?;
    state.client().await?.pause(&service).await?;
    Ok(back_to_service(&service, "paused"))
}

/// Resumes a paused service.
pub async fn resume(
    State(state): State<AppState>,
    Path(service): Path<String>,
) -> Result<Response, PageError> {
    state.known_service(&service).await?;
    state.client().await?.resume(&service).await?;
    Ok(back_to_service(&service, "resumed"))
}

/// Asks a live worker to take no new jobs and stay up (Sidekiq's quiet):
/// it reads the request on its next beat.
pub async fn quiet_worker(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    control_worker(&state, &id, WorkerControl::Quiet).await?;
    Ok(Redirect::to("/workers?notice=quiet").into_response())
}

/// Asks a live worker to finish its jobs and exit, as on SIGTERM.
pub async fn stop_worker(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    control_worker(&state, &id, WorkerControl::Stop).await?;
    Ok(Redirect::to("/workers?notice=stopping").into_response())
}

/// Sends `control` to `id` once the dashboard sees it beating, so a
/// mistyped or gone worker is a 404 rather than a request nobody reads.
async fn control_worker(
    state: &AppState,
    id: &str,
    control: WorkerControl,
) -> Result<(), PageError> {
    let workers = state.inspector().await?.workers(None).await?;
    if !workers
        .iter()
        .any(|w| w.id == id && w.liveness == Liveness::Live)
    {
        return Err(PageError::NotFound(format!(
            "no live worker `{}`: it has gone, or there never was one",
            crate::bounds::name(id)
        )));
    }
    state
        .client()
        .await?
        .control_worker(id, control)
        .await
        .map_err(|e| PageError::BadRequest(format!("cannot ask {id} to {}: {e}", control.as_str())))
}
