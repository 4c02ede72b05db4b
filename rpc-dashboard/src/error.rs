//! The dashboard's two kinds of failure: it cannot start (told on the
//! terminal), or a page cannot be served (turned into an error page here, in
//! one place, with the right status).
//!
//! An unreachable Redis is a 503 page with a banner that reloads itself
//! every few seconds, so an operator who leaves the tab open sees the
//! dashboard come back with Redis.

use std::net::SocketAddr;

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::pages::Layout;

/// Why the dashboard did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "refusing to listen on {listen} without a token: anyone who can reach it could \
         replay, delete, enqueue and cancel jobs and pause services. Pass --token (or set \
         RPC_DASHBOARD_TOKEN), or listen on 127.0.0.1"
    )]
    NoToken { listen: SocketAddr },
    #[error("cannot listen on {listen}: {source}")]
    Bind {
        listen: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Schema(String),
    #[error("{0}")]
    Options(String),
    #[error(
        "the token is too short: a dashboard token must be at least {min} characters, so it \
         cannot be guessed (try: openssl rand -hex 16)"
    )]
    ShortToken { min: usize },
    #[error("the server stopped: {0}")]
    Serve(std::io::Error),
}

/// Why a page could not be served.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("{0}")]
    NotFound(String),
    /// Redis could not be reached or answered with an error.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    /// A value too large for what was asked (editing an 8 MB message).
    #[error("{0}")]
    TooLarge(String),
    /// Too many wrong tokens: try again in this many seconds.
    #[error("too many wrong tokens from this address: try again in {0} s")]
    TooManyAttempts(u64),
}

impl From<rpc_runtime::Error> for PageError {
    fn from(e: rpc_runtime::Error) -> Self {
        PageError::Unavailable(e.to_string())
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    heading: &'static str,
    detail: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, heading) = match &self {
            PageError::NotFound(_) => (StatusCode::NOT_FOUND, "Not found"),
            PageError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "Redis is unavailable"),
            PageError::BadRequest(_) => (StatusCode::BAD_REQUEST, "Bad request"),
            PageError::Forbidden(_) => (StatusCode::FORBIDDEN, "Forbidden"),
            PageError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "Too large"),
            PageError::TooManyAttempts(_) => (StatusCode::TOO_MANY_REQUESTS, "Too many attempts"),
        };
        let mut layout = Layout::plain(heading);
        if let PageError::Unavailable(reason) = &self {
            layout.banner = Some(reason.clone());
            layout.refresh_secs = Some(crate::pages::RETRY_SECS);
        }
        let page = ErrorPage {
            layout,
            heading,
            detail: self.to_string(),
        };
        let mut response = render(status, &page);
        if let PageError::TooManyAttempts(secs) = self {
            if let Ok(value) = axum::http::HeaderValue::from_str(&secs.to_string()) {
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, value);
            }
        }
        response
    }
}

/// Renders a template as an HTML response with a status.
pub fn render<T: Template>(status: StatusCode, template: &T) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page failed to render",
            )
                .into_response()
        }
    }
}
