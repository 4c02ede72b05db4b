//! Downloads of whole values the pages show cut: a queued or leased job's
//! message, a dead letter's message or reason, a scheduled job's message, a
//! kept result.
//!
//! A value may be any size, so it is streamed: read from Redis a window at
//! a time (`bounds::DOWNLOAD_CHUNK_BYTES`, the inspector's excerpts) and
//! sent on as it comes, never held whole. The length is known from the
//! first window and sent as `Content-Length`. Stream entries never change,
//! but a scheduled message or a kept result can be replaced or removed
//! between two windows: a window of another length, or none, ends the body
//! with an error, so the client sees a broken download rather than a
//! spliced one. The body is an attachment of bytes (`nosniff` comes with
//! every response), never a page the browser would render.

use std::future::Future;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rpc_protocol::limits::MAX_ID_BYTES;
use rpc_runtime::inspect::{Excerpt, Inspector, Stream};
use serde::Deserialize;

use crate::bounds::DOWNLOAD_CHUNK_BYTES;
use crate::entry_id::is_entry_id;
use crate::error::PageError;
use crate::state::AppState;

/// `?field=reason` downloads a dead letter's reason instead of its message.
#[derive(Debug, Deserialize)]
pub struct FieldQuery {
    field: Option<String>,
}

pub async fn queued_message(
    State(state): State<AppState>,
    Path((service, token)): Path<(String, String)>,
) -> Result<Response, PageError> {
    entry(&state, &service, Stream::Jobs, &token, "m").await
}

pub async fn dead_message(
    State(state): State<AppState>,
    Path((service, token)): Path<(String, String)>,
    Query(query): Query<FieldQuery>,
) -> Result<Response, PageError> {
    let field = match query.field.as_deref() {
        None | Some("m") => "m",
        Some("reason") => "reason",
        Some(other) => {
            return Err(PageError::BadRequest(format!(
                "a dead letter has the fields `m` and `reason`, not `{}`",
                crate::bounds::name(other)
            )))
        }
    };
    entry(&state, &service, Stream::Dead, &token, field).await
}

pub async fn scheduled_message(
    State(state): State<AppState>,
    Path((service, id)): Path<(String, String)>,
) -> Result<Response, PageError> {
    check_id(&id)?;
    let inspector = state.inspector().await?;
    let first = inspector
        .scheduled_window(&service, &id, 0, DOWNLOAD_CHUNK_BYTES)
        .await?
        .and_then(|job| job.message);
    let name = format!("scheduled-{}.json", file_safe(&id));
    let read = move |inspector: Arc<Inspector>, offset: u64| {
        let (service, id) = (service.clone(), id.clone());
        async move {
            let job = inspector
                .scheduled_window(&service, &id, offset, DOWNLOAD_CHUNK_BYTES)
                .await?;
            Ok(job.and_then(|j| j.message))
        }
    };
    streamed(inspector, first, name, read)
}

pub async fn kept_result(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    check_id(&id)?;
    let inspector = state.inspector().await?;
    let first = inspector
        .kept_result_window(&id, 0, DOWNLOAD_CHUNK_BYTES)
        .await?;
    let name = format!("result-{}.json", file_safe(&id));
    let read = move |inspector: Arc<Inspector>, offset: u64| {
        let id = id.clone();
        async move {
            inspector
                .kept_result_window(&id, offset, DOWNLOAD_CHUNK_BYTES)
                .await
        }
    };
    streamed(inspector, first, name, read)
}

/// One field of one stream entry, streamed.
async fn entry(
    state: &AppState,
    service: &str,
    stream: Stream,
    token: &str,
    field: &'static str,
) -> Result<Response, PageError> {
    if !is_entry_id(token) {
        return Err(PageError::NotFound(format!(
            "`{}` is not an entry's token",
            crate::bounds::name(token)
        )));
    }
    let inspector = state.inspector().await?;
    let first = inspector
        .entry_window(service, stream, token, field, 0, DOWNLOAD_CHUNK_BYTES)
        .await?;
    let kind = match stream {
        Stream::Jobs => "job",
        Stream::Dead => "dead",
    };
    let suffix = if field == "m" { "json" } else { "txt" };
    let name = format!("{kind}-{token}-{field}.{suffix}");
    let (service, token) = (service.to_owned(), token.to_owned());
    let read = move |inspector: Arc<Inspector>, offset: u64| {
        let (service, token) = (service.clone(), token.clone());
        async move {
            inspector
                .entry_window(
                    &service,
                    stream,
                    &token,
                    field,
                    offset,
                    DOWNLOAD_CHUNK_BYTES,
                )
                .await
        }
    };
    streamed(inspector, first, name, read)
}

/// The response that streams a value of which `first` is the first
/// window; `read(offset)` gives the window from `offset`.
fn streamed<F, Fut>(
    inspector: Arc<Inspector>,
    first: Option<Excerpt>,
    file_name: String,
    read: F,
) -> Result<Response, PageError>
where
    F: Fn(Arc<Inspector>, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<Excerpt>, rpc_runtime::Error>> + Send + 'static,
{
    let first = first.ok_or_else(|| {
        PageError::NotFound("no such value: it was removed, or expired, meanwhile".to_owned())
    })?;
    let len = first.len;
    let read = Arc::new(read);
    // State: the window in hand (the first one at the start), and the offset
    // of the next byte to send.
    let chunks =
        futures_util::stream::unfold((Some(first.bytes), 0u64), move |(in_hand, offset)| {
            let (inspector, read) = (inspector.clone(), read.clone());
            async move {
                if offset >= len {
                    return None;
                }
                let bytes = match in_hand {
                    Some(bytes) => Ok(bytes),
                    None => match read(inspector, offset).await {
                        Ok(Some(w)) if w.len == len && !w.bytes.is_empty() => Ok(w.bytes),
                        Ok(_) => Err(std::io::Error::other(
                            "the value changed or went away during the download",
                        )),
                        Err(e) => Err(std::io::Error::other(e.to_string())),
                    },
                };
                match bytes {
                    Ok(bytes) if !bytes.is_empty() => {
                        let next = offset + bytes.len() as u64;
                        Some((Ok(bytes), (None, next)))
                    }
                    Ok(_) => Some((
                        Err(std::io::Error::other("an empty window before the end")),
                        (None, len),
                    )),
                    // Ends the body here: the connection is cut, short of
                    // `Content-Length`.
                    Err(e) => Some((Err(e), (None, len))),
                }
            }
        });
    let mut response = Body::from_stream(chunks).into_response();
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

fn check_id(id: &str) -> Result<(), PageError> {
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        return Err(PageError::NotFound(format!(
            "no call can have this id: a call id is 1 to {MAX_ID_BYTES} bytes"
        )));
    }
    Ok(())
}

/// A name fit for a file: letters, digits, `-`, `_`, `.`; anything else `_`.
fn file_safe(text: &str) -> String {
    text.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}
