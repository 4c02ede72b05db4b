//! Who may use the dashboard and how a page can be abused, decided in one
//! place: the bind check at start, the token on every request (or, without
//! one, loopback host names only), the CSRF token on every POST, and headers
//! that keep the pages from being framed or running scripts that are not ours.
//!
//! The dashboard can replay, delete, enqueue and cancel jobs and pause
//! services, so it is an operator's tool with an operator's reach. It
//! listens on 127.0.0.1 by default; any other address needs a token, or it
//! refuses to start. A page is never trusted to be harmless: message content
//! is escaped by the templates, and the Content-Security-Policy allows only
//! our own script and style files, so even a missed escape could not run an
//! injected `<script>`.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use crate::error::{PageError, StartError};
use crate::state::AppState;

/// The form field every POST carries.
pub const CSRF_FIELD: &str = "csrf";
/// The cookie a browser keeps the token in after `?token=`.
const TOKEN_COOKIE: &str = "rpc_dashboard_token";
/// The largest form the dashboard reads (an edited dead letter's params).
const MAX_FORM_BYTES: usize = 4 * 1024 * 1024;

/// Refuses a non-loopback address without a token.
pub fn check_bind(listen: SocketAddr, token: Option<&str>) -> Result<(), StartError> {
    let has_token = token.is_some_and(|t| !t.trim().is_empty());
    if listen.ip().is_loopback() || has_token {
        Ok(())
    } else {
        Err(StartError::NoToken { listen })
    }
}

/// A fresh random secret (244 random bits, hex).
pub fn new_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Compares secrets in time that does not depend on where they differ.
pub fn same_secret(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Every request needs the token, when there is one: as a bearer token, as
/// the password of basic auth (what a browser prompts for), or in the cookie
/// set by visiting any page once with `?token=...`.
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = state.token() else {
        return next.run(request).await;
    };
    let headers = request.headers();
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            if let Some(bearer) = v.strip_prefix("Bearer ") {
                return Some(bearer.trim().to_owned());
            }
            let decoded = base64_decode(v.strip_prefix("Basic ")?.trim())?;
            decoded
                .split_once(':')
                .map(|(_, password)| password.to_owned())
        });
    let from_cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| {
            c.trim()
                .strip_prefix(&format!("{TOKEN_COOKIE}="))
                .map(str::to_owned)
        })
        .next();
    if [from_header, from_cookie]
        .iter()
        .flatten()
        .any(|t| same_secret(t, expected))
    {
        return next.run(request).await;
    }
    // `?token=` once: set the cookie and come back without it in the URL.
    let query: HashMap<String, String> = request
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    if let Some(given) = query.get("token").filter(|t| same_secret(t, expected)) {
        let cookie = format!("{TOKEN_COOKIE}={given}; HttpOnly; SameSite=Strict; Path=/");
        // `//host/...` would leave the site: only a plain path comes back.
        let path = request.uri().path();
        let back = if path.starts_with("//") { "/" } else { path };
        let mut response = Redirect::to(back).into_response();
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
        return response;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            "Basic realm=\"rpc dashboard\", charset=\"UTF-8\"",
        )],
        "this dashboard needs its token: basic auth (any user, the token as password), \
         a bearer token, or ?token=... once",
    )
        .into_response()
}

fn base64_decode(text: &str) -> Option<String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// Without a token, only loopback host names are served. A page on another
/// site can point its own host name at 127.0.0.1 (DNS rebinding) and then
/// read this dashboard as same-origin, CSRF token included; its requests
/// still name that host, so they are refused here.
pub async fn require_loopback_host(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if state.token().is_some() {
        return next.run(request).await;
    }
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    match host {
        Some(host) if !is_loopback_host(&host) => PageError::Forbidden(format!(
            "this dashboard answers only to localhost, 127.0.0.1 or [::1], not `{host}` \
             (serve it on another address with --listen and --token)"
        ))
        .into_response(),
        _ => next.run(request).await,
    }
}

/// Whether a `Host` header names this machine's loopback (any port).
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Every POST must carry this process's CSRF token in its form, and no POST
/// is taken at all in read-only mode. The body is read here, checked, and
/// handed on unchanged, so no action can forget the check.
pub async fn check_csrf(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    if state.read_only() {
        return PageError::Forbidden("the dashboard is read-only".to_owned()).into_response();
    }
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_FORM_BYTES).await {
        Ok(b) => b,
        Err(e) => return PageError::BadRequest(format!("unreadable form: {e}")).into_response(),
    };
    let token = form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == CSRF_FIELD)
        .map(|(_, v)| v.into_owned());
    match token {
        Some(t) if same_secret(&t, state.csrf()) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        _ => PageError::Forbidden(
            "the form's CSRF token is missing or stale: reload the page and try again".to_owned(),
        )
        .into_response(),
    }
}

/// Headers on every response: our own scripts and styles only, no framing,
/// no content sniffing, no referrer leaking ids to other sites.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_may_listen_without_a_token() {
        // `--listen 0.0.0.0:9870` alone must not put the actions on the network.
        let any: SocketAddr = "0.0.0.0:9870".parse().expect("addr");
        assert!(matches!(
            check_bind(any, None),
            Err(StartError::NoToken { .. })
        ));
        assert!(matches!(
            check_bind(any, Some("  ")),
            Err(StartError::NoToken { .. })
        ));
        assert!(check_bind(any, Some("s3cret")).is_ok());
        assert!(check_bind("127.0.0.1:0".parse().expect("addr"), None).is_ok());
        assert!(check_bind("[::1]:0".parse().expect("addr"), None).is_ok());
    }

    #[test]
    fn only_loopback_host_names_pass_without_a_token() {
        for host in [
            "localhost:9870",
            "127.0.0.1:9870",
            "127.0.0.1",
            "[::1]:9870",
            "LOCALHOST",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example:9870",
            "evil.example",
            "10.0.0.1:9870",
            "[2001:db8::1]:80",
            "localhost.evil.example",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abd", "abc"));
        assert!(!same_secret("ab", "abc"));
        assert_ne!(new_secret(), new_secret());
        assert_eq!(new_secret().len(), 64);
    }
}
