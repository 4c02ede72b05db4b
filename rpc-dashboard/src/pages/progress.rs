//! A call's progress on its page (`/jobs/{id}`), and the fragment
//! `/jobs/{id}/progress` that `dashboard.js` fetches every second while
//! the call has yet to finish, so the bar moves without reloading the
//! page (which would search the streams again).
//!
//! The value is read through the operator's read-only view
//! (`Inspector::progress`: `GETRANGE`, checked) and rendered by the
//! template, which escapes the handler's message as any message content;
//! the bar is a `<progress>` element, so no inline style or script is
//! needed under the Content-Security-Policy (`security.rs`). A value that
//! is not progress is shown as unreadable, with why.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rpc_protocol::limits::MAX_ID_BYTES;
use rpc_runtime::inspect::{human_time, Inspector, ProgressValue};

use crate::error::{render, PageError};
use crate::state::AppState;

/// A call's progress as the page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressView {
    /// 0 to 100, for the bar and the label.
    pub percent: u32,
    /// `7/20`, for steps.
    pub steps: Option<String>,
    pub message: String,
    /// When it was reported (`3s ago`).
    pub when: String,
    /// Why the stored value could not be read, when it could not.
    pub unreadable: Option<String>,
}

impl ProgressView {
    fn of(value: &ProgressValue, now_ms: u64) -> ProgressView {
        ProgressView {
            percent: (value.fraction.clamp(0.0, 1.0) * 100.0).floor() as u32,
            steps: value
                .done
                .zip(value.total)
                .map(|(done, total)| format!("{done}/{total}")),
            message: value.message.clone(),
            when: human_time::relative_ms(value.at_ms, now_ms),
            unreadable: None,
        }
    }
}

/// The call's progress, if any is kept; an unreadable value is shown as
/// such rather than failing the page.
pub async fn read(inspector: &Inspector, id: &str) -> Result<Option<ProgressView>, PageError> {
    match inspector.progress(id).await {
        Ok(None) => Ok(None),
        Ok(Some(value)) => {
            let now_ms = inspector.broker_time_ms().await?;
            Ok(Some(ProgressView::of(&value, now_ms)))
        }
        Err(rpc_runtime::Error::Codec { reason, .. }) => Ok(Some(ProgressView {
            percent: 0,
            steps: None,
            message: String::new(),
            when: String::new(),
            unreadable: Some(reason),
        })),
        Err(e) => Err(e.into()),
    }
}

/// The fragment `progress.html` renders, alone or inside the call's page.
#[derive(Template)]
#[template(path = "progress.html")]
struct ProgressFragment {
    progress: Option<ProgressView>,
    /// Whether the call has yet to finish (the page keeps polling).
    live: bool,
}

/// `GET /jobs/{id}/progress`: the fragment, for `dashboard.js`. The call
/// is finished (polling stops) once its kept result is there.
pub async fn fragment(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        return Err(PageError::NotFound(format!(
            "no call can have this id: a call id is 1 to {MAX_ID_BYTES} bytes"
        )));
    }
    let inspector = state.inspector().await?;
    let progress = read(&inspector, &id).await?;
    let finished = inspector.kept_result_window(&id, 0, 1).await?.is_some();
    let fragment = ProgressFragment {
        progress,
        live: !finished,
    };
    Ok(render(StatusCode::OK, &fragment).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_fractions_show_as_percent_and_counts() {
        let value = ProgressValue {
            seq: 1,
            at_ms: 10_000,
            attempt: 1,
            done: Some(7),
            total: Some(20),
            fraction: 0.35,
            message: "copying".to_owned(),
        };
        let view = ProgressView::of(&value, 13_000);
        assert_eq!(view.percent, 35);
        assert_eq!(view.steps.as_deref(), Some("7/20"));
        assert_eq!(view.when, "3s ago");
    }
}
