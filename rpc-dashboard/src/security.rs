//! How a page can be abused, decided in one place: the checks at start (no
//! public address without a token, no token short enough to guess), the
//! host check (without a token: loopback names with this listener's port
//! only), the checks on every POST (read-only mode, the origin, the CSRF
//! token), and headers that keep the pages from being framed or running
//! scripts that are not ours. The token itself is `auth`.
//!
//! The dashboard can replay, delete, enqueue and cancel jobs and pause
//! services, so it is an operator's tool with an operator's reach. It
//! listens on 127.0.0.1 by default; any other address needs a token, or it
//! refuses to start. A page is never trusted to be harmless: message content
//! is escaped by the templates, and the Content-Security-Policy allows only
//! our own script and style files, so even a missed escape could not run an
//! injected `<script>`.

use std::net::{IpAddr, SocketAddr};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{PageError, StartError};
use crate::state::AppState;

/// The form field every POST carries.
pub const CSRF_FIELD: &str = "csrf";
/// The shortest token the dashboard accepts: 16 characters of a random
/// hex string are 64 bits, beyond guessing at the throttled rate.
pub const MIN_TOKEN_CHARS: usize = 16;
/// The largest form the dashboard reads (an edited dead letter's params).
const MAX_FORM_BYTES: usize = 4 * 1024 * 1024;

/// Refuses a non-loopback address without a token, and a token too short
/// to stand up to guessing.
pub fn check_bind(listen: SocketAddr, token: Option<&str>) -> Result<(), StartError> {
    check_token(token)?;
    let has_token = token.is_some_and(|t| !t.trim().is_empty());
    if listen.ip().is_loopback() || has_token {
        Ok(())
    } else {
        Err(StartError::NoToken { listen })
    }
}

/// Refuses a token shorter than [`MIN_TOKEN_CHARS`] (an empty one is no
/// token at all).
pub fn check_token(token: Option<&str>) -> Result<(), StartError> {
    match token {
        Some(t) if !t.trim().is_empty() && t.chars().count() < MIN_TOKEN_CHARS => {
            Err(StartError::ShortToken {
                min: MIN_TOKEN_CHARS,
            })
        }
        _ => Ok(()),
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

/// Without a token, only this machine's loopback names are served, with
/// this listener's port. A page on another site can point its own host
/// name at 127.0.0.1 (DNS rebinding) and then read this dashboard as
/// same-origin, CSRF token included; its requests still name that host
/// (`evil.example:9870`, or `127.0.0.1:9870.evil.example`), so they are
/// refused here. A request with no `Host` at all comes from no browser.
pub async fn require_known_host(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if state.token().is_some() {
        return next.run(request).await;
    }
    let listen = state.listen();
    let host = request
        .headers()
        .get(header::HOST)
        .map(|h| h.to_str().map(str::to_owned));
    match host {
        Some(Ok(host)) if is_our_host(&host, listen) => next.run(request).await,
        None => next.run(request).await,
        Some(host) => {
            let host = host.unwrap_or_default();
            let port = match listen.port() {
                0 => String::new(),
                port => format!(":{port}"),
            };
            PageError::Forbidden(format!(
                "this dashboard answers only to localhost{port}, 127.0.0.1{port} or \
                 [::1]{port}, not `{}` (serve it on another address with --listen and --token)",
                crate::bounds::name(&host)
            ))
            .into_response()
        }
    }
}

/// Whether a `Host` header names this listener: a loopback name (or the
/// address it listens on) and its port. Port 0 is a listener not known
/// yet (`router` without `serve`): any port will do, but it must be one.
fn is_our_host(host: &str, listen: SocketAddr) -> bool {
    let (name, port) = match host.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((name, "")) => (name, None),
            Some((name, rest)) => match rest.strip_prefix(':') {
                Some(port) => (name, Some(port)),
                None => return false,
            },
            None => return false,
        },
        None => match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        },
    };
    let port_ok = match port {
        Some(port) => {
            let digits =
                !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
            digits
                && port
                    .parse::<u16>()
                    .is_ok_and(|p| listen.port() == 0 || p == listen.port())
        }
        // No port: the scheme's default, 80.
        None => listen.port() == 0 || listen.port() == 80,
    };
    let name_ok = name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| {
            ip.is_loopback() || (!listen.ip().is_unspecified() && ip == listen.ip())
        });
    port_ok && name_ok
}

/// Every POST must come from one of this dashboard's own pages and carry
/// this process's CSRF token in its form, and no POST is taken at all in
/// read-only mode. The origin: a browser names the page a form was sent
/// from in `Origin` (or at least says `Sec-Fetch-Site`); it must be this
/// very host, so a form on another site is refused even if it somehow had
/// the CSRF token. A request with neither comes from no browser; the CSRF
/// token still guards it. The body is read here, checked, and handed on
/// unchanged, so no action can forget the check.
pub async fn check_post(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    if state.read_only() {
        return PageError::Forbidden("the dashboard is read-only".to_owned()).into_response();
    }
    if let Err(why) = same_origin(request.headers()) {
        return PageError::Forbidden(why).into_response();
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

/// Whether a POST comes from this dashboard's own pages, by what the
/// browser says. `Sec-Fetch-Site`, which a page cannot set, must be
/// `same-origin` (or `none`: the user's own doing); `Origin` must be
/// `http(s)://` and this request's `Host`. A browser may send `Origin:
/// null` for its own forms (under a `no-referrer` policy, as this
/// dashboard once sent): that passes only when `Sec-Fetch-Site` vouches
/// for it.
fn same_origin(headers: &HeaderMap) -> Result<(), String> {
    let text = |name| {
        headers
            .get(name)
            .map(|v: &HeaderValue| v.to_str().unwrap_or("\u{fffd}"))
    };
    let site = text(HeaderName::from_static("sec-fetch-site"));
    if let Some(site) = site.filter(|s| !matches!(*s, "same-origin" | "none")) {
        return Err(format!(
            "a form from another site (`Sec-Fetch-Site: {}`) may not act on this dashboard",
            crate::bounds::name(site)
        ));
    }
    let Some(origin) = text(header::ORIGIN) else {
        return Ok(());
    };
    if origin == "null" && site.is_some() {
        return Ok(());
    }
    let host = text(header::HOST).unwrap_or_default();
    let named = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    match named {
        Some(named) if !host.is_empty() && named.eq_ignore_ascii_case(host) => Ok(()),
        _ => Err(format!(
            "a form from `{}` may not act on this dashboard: only its own pages may",
            crate::bounds::name(origin)
        )),
    }
}

/// Headers on every response: our own scripts and styles only (and
/// fetches of our own pages only: a call's progress fragment), no framing,
/// no content sniffing, no referrer leaking ids to other sites. The
/// referrer policy is `same-origin`, not `no-referrer`: under the latter a
/// browser sends `Origin: null` with the dashboard's own forms, and the
/// origin check needs the real one.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; \
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
        HeaderValue::from_static("same-origin"),
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
        assert!(check_bind(any, Some("0123456789abcdef")).is_ok());
        assert!(check_bind("127.0.0.1:0".parse().expect("addr"), None).is_ok());
        assert!(check_bind("[::1]:0".parse().expect("addr"), None).is_ok());
    }

    #[test]
    fn a_token_shorter_than_16_characters_is_refused() {
        // A one-character token fell to guessing at thousands a second.
        let local: SocketAddr = "127.0.0.1:9870".parse().expect("addr");
        for short in ["x", "s3cret", "0123456789abcde"] {
            let refused = check_bind(local, Some(short));
            assert!(
                matches!(refused, Err(StartError::ShortToken { min: 16 })),
                "{short}"
            );
        }
        let message = check_token(Some("x")).expect_err("short").to_string();
        assert!(message.contains("at least 16 characters"), "{message}");
        assert!(check_token(Some("0123456789abcdef")).is_ok());
        assert!(
            check_token(Some("ééééééééééééééé€")).is_ok(),
            "characters, not bytes"
        );
    }

    #[test]
    fn only_loopback_names_with_this_port_pass_without_a_token() {
        let listen: SocketAddr = "127.0.0.1:9870".parse().expect("addr");
        for host in [
            "localhost:9870",
            "127.0.0.1:9870",
            "[::1]:9870",
            "LOCALHOST:9870",
        ] {
            assert!(is_our_host(host, listen), "{host}");
        }
        for host in [
            "127.0.0.1:9870.evil.example",
            "localhost:9870.evil.example",
            "127.0.0.1:9871",
            "127.0.0.1",
            "127.0.0.1:",
            "127.0.0.1:+9870",
            "evil.example:9870",
            "10.0.0.1:9870",
            "[2001:db8::1]:9870",
            "[::1]x:9870",
            "localhost.evil.example:9870",
        ] {
            assert!(!is_our_host(host, listen), "{host}");
        }
        // A router whose listener is not known yet checks the name and
        // that the port is a port.
        let unknown: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        assert!(is_our_host("127.0.0.1:9870", unknown));
        assert!(is_our_host("localhost", unknown));
        assert!(!is_our_host("127.0.0.1:9870.evil.example", unknown));
    }

    #[test]
    fn a_post_from_another_origin_is_refused() {
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, HeaderValue::from_str(value).expect("value"));
            }
            map
        };
        let own = [
            ("host", "127.0.0.1:9870"),
            ("origin", "http://127.0.0.1:9870"),
        ];
        assert!(same_origin(&headers(&own)).is_ok());
        assert!(
            same_origin(&headers(&[])).is_ok(),
            "no browser: the CSRF token decides"
        );
        for foreign in [
            &[
                ("host", "127.0.0.1:9870"),
                ("origin", "http://evil.example"),
            ][..],
            &[("host", "127.0.0.1:9870"), ("origin", "null")],
            &[
                ("host", "127.0.0.1:9870"),
                ("origin", "http://127.0.0.1:9871"),
            ],
            &[("origin", "http://127.0.0.1:9870")],
            &[("host", "127.0.0.1:9870"), ("sec-fetch-site", "cross-site")],
            &[("host", "127.0.0.1:9870"), ("sec-fetch-site", "same-site")],
            &[
                ("host", "127.0.0.1:9870"),
                ("origin", "null"),
                ("sec-fetch-site", "cross-site"),
            ],
        ] {
            assert!(same_origin(&headers(foreign)).is_err(), "{foreign:?}");
        }
        let fetch = [
            ("host", "127.0.0.1:9870"),
            ("sec-fetch-site", "same-origin"),
        ];
        assert!(same_origin(&headers(&fetch)).is_ok());
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
