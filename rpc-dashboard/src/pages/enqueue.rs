//! The two forms: a new call of a job, built from its JSON Schema, and a
//! dead letter's parameters to fix before replaying it. Both are sent to
//! `actions`, which checks them against the schema and shows this page
//! again with the errors beside their fields when they do not fit. A
//! read-only dashboard has neither (403). A dead letter is read by its
//! token, its message whole only when it is small enough to edit
//! (`bounds::EDIT_MAX_BYTES`).

use std::time::SystemTime;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rpc_runtime::backend::DeadLetter;
use rpc_runtime::inspect::{DeadLetterExcerpt, Excerpt, Stream, MAX_WINDOW_BYTES};

use crate::bounds::{self, TextBudget, EDIT_MAX_BYTES, REASON_BYTES};
use crate::entry_id::is_entry_id;
use crate::error::{render, PageError};
use crate::message_view;
use crate::pages::service::reason_text;
use crate::pages::Layout;
use crate::paths;
use crate::schema_catalog::JobSchemas;
use crate::schema_forms::{Form, InputKind, RAW_PARAMS};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "form.html")]
pub struct FormPage {
    pub layout: Layout,
    pub heading: String,
    pub intro: String,
    /// Where the form is posted.
    pub action: String,
    pub form: Form,
    pub submit_label: &'static str,
    pub back: String,
    pub raw_name: &'static str,
    /// The job's doc comment, from its schema.
    pub job_doc: Option<String>,
}

impl FormPage {
    /// The page for a new call of `job`, showing `form`.
    pub fn new_call(state: &AppState, job: &JobSchemas, form: Form) -> FormPage {
        FormPage {
            layout: Layout::new(state, format!("New {}", job.name()), ""),
            heading: format!("New call of {}", job.name()),
            intro: format!("Returns {}.", job.returns),
            action: format!(
                "/services/{}/jobs/{}/new",
                paths::segment(&job.service),
                paths::segment(&job.job)
            ),
            form,
            submit_label: "Enqueue",
            back: paths::service(&job.service),
            raw_name: RAW_PARAMS,
            job_doc: job.description.clone(),
        }
    }

    /// The page to fix and replay a dead letter, showing `form`.
    pub fn edit(
        state: &AppState,
        service: &str,
        token: &str,
        job: &str,
        reason: &str,
        form: Form,
    ) -> FormPage {
        FormPage {
            layout: Layout::new(state, format!("Edit dead letter {token}"), ""),
            heading: format!("Edit and replay {job}"),
            intro: format!("Dead because: {reason}"),
            action: format!(
                "{}/dead/{}/edit",
                paths::service(service),
                paths::segment(token)
            ),
            form,
            submit_label: "Replay with these parameters",
            back: format!("{}#dead", paths::service(service)),
            raw_name: RAW_PARAMS,
            job_doc: None,
        }
    }

    pub fn respond(&self, status: StatusCode) -> Response {
        render(status, self)
    }
}

/// The job of a service the schema defines, or the 404 page.
pub fn schema_job<'a>(
    state: &'a AppState,
    service: &str,
    job: &str,
) -> Result<&'a JobSchemas, PageError> {
    state.catalog().job(&format!("{service}.{job}")).ok_or_else(|| {
        PageError::NotFound(format!(
            "no schema defines a job `{job}` of `{service}` (start the dashboard with --schema FILE.rpc)"
        ))
    })
}

pub async fn new_call(
    State(state): State<AppState>,
    Path((service, job)): Path<(String, String)>,
) -> Result<Response, PageError> {
    refuse_if_read_only(&state)?;
    let schema = schema_job(&state, &service, &job)?;
    let page = FormPage::new_call(&state, schema, Form::for_job(Some(schema), None));
    Ok(page.respond(StatusCode::OK))
}

/// The form pages are actions' first step: a read-only dashboard has none.
fn refuse_if_read_only(state: &AppState) -> Result<(), PageError> {
    if state.read_only() {
        return Err(PageError::Forbidden(
            "the dashboard is read-only: it offers no forms and takes no action".to_owned(),
        ));
    }
    Ok(())
}

/// A dead letter's reason (cut) and the length of its message, by token,
/// or the 404 page. One entry is read by its id, however long the stream.
pub async fn dead_letter(
    state: &AppState,
    service: &str,
    token: &str,
) -> Result<DeadLetterExcerpt, PageError> {
    if !is_entry_id(token) {
        return Err(PageError::NotFound(format!(
            "`{token}` is not a dead letter's token"
        )));
    }
    state.known_service(service).await?;
    state
        .inspector()
        .await?
        .dead_letters_by_token(service, &[token], REASON_BYTES)
        .await?
        .pop()
        .flatten()
        .ok_or_else(|| {
            PageError::NotFound(format!(
                "no dead letter {token} in {service}: it was replayed or deleted meanwhile"
            ))
        })
}

/// A dead letter with its whole message, when the message is at most
/// `max` bytes (else the "too large" page, which links the download).
pub async fn whole_dead_letter(
    state: &AppState,
    service: &str,
    token: &str,
    max: u64,
) -> Result<(DeadLetterExcerpt, DeadLetter), PageError> {
    let dead = dead_letter(state, service, token).await?;
    let len = dead.message.as_ref().map_or(0, |m| m.len);
    if len > max {
        return Err(PageError::TooLarge(format!(
            "this dead letter's message is {}: the dashboard edits and replays messages of \
             at most {}. Download it from {} to look at it.",
            bounds::size(len),
            bounds::size(max),
            paths::dead_message(service, token)
        )));
    }
    let payload = whole_message(state, service, token, len).await?;
    let letter = DeadLetter {
        token: dead.token.clone(),
        reason: String::new(),
        payload,
    };
    Ok((dead, letter))
}

/// The message of dead letter `token`, `len` bytes, read a window at a
/// time, at most two such reads at once (each holds a whole message).
async fn whole_message(
    state: &AppState,
    service: &str,
    token: &str,
    len: u64,
) -> Result<Vec<u8>, PageError> {
    let _permit = state.whole_reads().await;
    let inspector = state.inspector().await?;
    let mut payload = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    while (payload.len() as u64) < len {
        let window = inspector
            .entry_window(
                service,
                Stream::Dead,
                token,
                "m",
                payload.len() as u64,
                MAX_WINDOW_BYTES,
            )
            .await?
            .filter(|w| w.len == len && !w.bytes.is_empty())
            .ok_or_else(|| {
                PageError::NotFound(format!(
                    "dead letter {token} in {service} was replayed or deleted meanwhile"
                ))
            })?;
        payload.extend_from_slice(&window.bytes);
    }
    Ok(payload)
}

pub async fn edit_dead_letter(
    State(state): State<AppState>,
    Path((service, token)): Path<(String, String)>,
) -> Result<Response, PageError> {
    refuse_if_read_only(&state)?;
    let (dead, letter) = whole_dead_letter(&state, &service, &token, EDIT_MAX_BYTES).await?;
    let mut budget = TextBudget::of(usize::MAX);
    let excerpt = Excerpt {
        len: letter.payload.len() as u64,
        bytes: letter.payload,
    };
    let message = message_view::job_message(
        Some(&excerpt),
        state.catalog(),
        SystemTime::now(),
        &mut budget,
    );
    if !message.is_readable() {
        return Err(PageError::BadRequest(
            "an unreadable message cannot be edited or replayed; delete it instead".to_owned(),
        ));
    }
    let schema = state.catalog().job(&message.job);
    let form = Form::for_job(schema, Some(&message.params_value));
    let reason = reason_text(dead.reason.as_ref());
    let page = FormPage::edit(&state, &service, &token, &message.job, &reason, form);
    Ok(page.respond(StatusCode::OK).into_response())
}
