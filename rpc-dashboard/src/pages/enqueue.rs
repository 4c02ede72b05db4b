//! The two forms: a new call of a job, built from its JSON Schema, and a
//! dead letter's parameters to fix before replaying it. Both are sent to
//! `actions`, which checks them against the schema and shows this page
//! again with the errors beside their fields when they do not fit.

use std::time::SystemTime;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rpc_runtime::backend::{DeadLetter, DEAD_LETTER_CAP};

use crate::entry_id::is_entry_id;
use crate::error::{render, PageError};
use crate::message_view;
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
    let schema = schema_job(&state, &service, &job)?;
    let page = FormPage::new_call(&state, schema, Form::for_job(Some(schema), None));
    Ok(page.respond(StatusCode::OK))
}

/// A dead letter by token, or the 404 page.
pub async fn dead_letter(
    state: &AppState,
    service: &str,
    token: &str,
) -> Result<DeadLetter, PageError> {
    if !is_entry_id(token) {
        return Err(PageError::NotFound(format!(
            "`{token}` is not a dead letter's token"
        )));
    }
    state.known_service(service).await?;
    // The dead-letter stream is capped, so reading it whole to find one is bounded.
    state
        .client()
        .await?
        .dead_letters(service, DEAD_LETTER_CAP)
        .await?
        .into_iter()
        .find(|d| d.token == token)
        .ok_or_else(|| {
            PageError::NotFound(format!(
                "no dead letter {token} in {service}: it was replayed or deleted meanwhile"
            ))
        })
}

pub async fn edit_dead_letter(
    State(state): State<AppState>,
    Path((service, token)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let dead = dead_letter(&state, &service, &token).await?;
    let message =
        message_view::job_message(Some(&dead.payload), state.catalog(), SystemTime::now());
    if !message.is_readable() {
        return Err(PageError::BadRequest(
            "an unreadable message cannot be edited or replayed; delete it instead".to_owned(),
        ));
    }
    let schema = state.catalog().job(&message.job);
    let form = Form::for_job(schema, Some(&message.params_value()));
    let page = FormPage::edit(&state, &service, &token, &message.job, &dead.reason, form);
    Ok(page.respond(StatusCode::OK).into_response())
}
