//! The token, when the dashboard has one: every request must carry it, as
//! a bearer token, as the password of basic auth (what a browser prompts
//! for), or once as `?token=...`, which sets a session cookie.
//!
//! The cookie holds a session value derived from the token (HMAC-SHA256
//! under a key drawn at start), never the token itself: a leaked cookie
//! opens this process until it stops, and gives away nothing that works
//! anywhere else or after a restart.
//!
//! Wrong tokens are throttled per client address (an IPv6 address by its
//! /64, what one host usually holds) and across all addresses: a token
//! bucket of a few attempts that refills slowly. Once a bucket is empty, a
//! token is not even compared (429 with `Retry-After`), so guessing runs at
//! the refill rate, not at thousands a second; a right token gives its
//! attempt back. A session cookie is checked regardless: it is 256 bits,
//! and a browser that already logged in keeps working during an attack.
//! Behind a reverse proxy every client has the proxy's address, and the
//! throttle is one bucket for all.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use ring::hmac;

use crate::error::PageError;
use crate::security::{new_secret, same_secret};
use crate::state::AppState;

/// The cookie a browser keeps the session value in after `?token=`.
const SESSION_COOKIE: &str = "rpc_dashboard_session";
/// Wrong tokens one address may send in a burst.
const ADDRESS_BURST: f64 = 10.0;
/// Wrong tokens one address may send per second, once its burst is spent.
const ADDRESS_PER_SEC: f64 = 0.5;
/// Wrong tokens all addresses together may send in a burst.
const GLOBAL_BURST: f64 = 100.0;
/// Wrong tokens all addresses together may send per second after that.
const GLOBAL_PER_SEC: f64 = 5.0;
/// Addresses the throttle remembers; past that, full buckets are dropped
/// and new addresses share one.
const MAX_ADDRESSES: usize = 10_000;

/// The session value for `token`, under a key drawn now: what the cookie holds.
pub fn session_value(token: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, new_secret().as_bytes());
    let tag = hmac::sign(&key, token.as_bytes());
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Every request needs the token, when there is one (see the module docs).
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let (Some(expected), Some(session)) = (state.token(), state.session()) else {
        return next.run(request).await;
    };
    if cookie(&request).is_some_and(|c| same_secret(&c, session)) {
        return next.run(request).await;
    }
    let Some((given, from_query)) = presented_token(&request) else {
        return challenge("this dashboard needs its token");
    };
    let address = client_address(&request);
    if let Err(wait_secs) = state.throttle().attempt(address) {
        return PageError::TooManyAttempts(wait_secs).into_response();
    }
    if !same_secret(&given, expected) {
        return challenge("wrong token");
    }
    state.throttle().give_back(address);
    if !from_query {
        return next.run(request).await;
    }
    // `?token=` once: set the cookie and come back without it in the URL.
    let cookie = format!("{SESSION_COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/");
    // `//host/...` would leave the site: only a plain path comes back.
    let path = request.uri().path();
    let back = if path.starts_with("//") { "/" } else { path };
    let mut response = Redirect::to(back).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

fn challenge(why: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            "Basic realm=\"rpc dashboard\", charset=\"UTF-8\"",
        )],
        format!(
            "{why}: basic auth (any user, the token as password), a bearer token, \
             or ?token=... once"
        ),
    )
        .into_response()
}

/// The session cookie's value, if the request carries one.
fn cookie(request: &Request) -> Option<String> {
    request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            c.trim()
                .strip_prefix(SESSION_COOKIE)
                .and_then(|rest| rest.strip_prefix('='))
                .map(str::to_owned)
        })
}

/// A token the request presents (bearer, basic auth, `?token=`), and
/// whether it came in the query.
fn presented_token(request: &Request) -> Option<(String, bool)> {
    let from_header = request
        .headers()
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
    if let Some(token) = from_header {
        return Some((token, false));
    }
    let query = request.uri().query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| (v.into_owned(), true))
}

fn base64_decode(text: &str) -> Option<String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// The address the throttle counts a request against: the peer's (an
/// IPv6 address by its /64), or one shared bucket when it is unknown.
fn client_address(request: &Request) -> IpAddr {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    match peer {
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        Some(v4) => v4,
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    }
}

/// Token buckets of wrong-token attempts, per address and for all.
#[derive(Debug)]
pub struct Throttle {
    buckets: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    by_address: HashMap<IpAddr, Bucket>,
    global: Bucket,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    left: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: f64) -> Bucket {
        Bucket {
            left: burst,
            at: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant, burst: f64, per_sec: f64) {
        let secs = now.saturating_duration_since(self.at).as_secs_f64();
        self.left = (self.left + secs * per_sec).min(burst);
        self.at = now;
    }

    /// Seconds until one attempt is back.
    fn wait_secs(&self, per_sec: f64) -> u64 {
        ((1.0 - self.left) / per_sec).ceil().max(1.0) as u64
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            buckets: Mutex::new(Buckets {
                by_address: HashMap::new(),
                global: Bucket::full(GLOBAL_BURST),
            }),
        }
    }
}

impl Throttle {
    /// Takes one attempt for `address`, or says how many seconds until it
    /// may try again.
    pub fn attempt(&self, address: IpAddr) -> Result<(), u64> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let Buckets { by_address, global } = &mut *buckets;
        if by_address.len() >= MAX_ADDRESSES && !by_address.contains_key(&address) {
            by_address.retain(|_, b| {
                b.refill(now, ADDRESS_BURST, ADDRESS_PER_SEC);
                b.left < ADDRESS_BURST
            });
        }
        let key = if by_address.len() >= MAX_ADDRESSES && !by_address.contains_key(&address) {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            address
        };
        let mine = by_address
            .entry(key)
            .or_insert_with(|| Bucket::full(ADDRESS_BURST));
        mine.refill(now, ADDRESS_BURST, ADDRESS_PER_SEC);
        global.refill(now, GLOBAL_BURST, GLOBAL_PER_SEC);
        if mine.left < 1.0 {
            return Err(mine.wait_secs(ADDRESS_PER_SEC));
        }
        if global.left < 1.0 {
            return Err(global.wait_secs(GLOBAL_PER_SEC));
        }
        mine.left -= 1.0;
        global.left -= 1.0;
        Ok(())
    }

    /// Gives back the attempt of a right token.
    pub fn give_back(&self, address: IpAddr) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let Buckets { by_address, global } = &mut *buckets;
        if let Some(mine) = by_address.get_mut(&address) {
            mine.left = (mine.left + 1.0).min(ADDRESS_BURST);
        }
        global.left = (global.left + 1.0).min(GLOBAL_BURST);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_wrong_tokens_empties_the_address_bucket_only() {
        let throttle = Throttle::default();
        let guesser: IpAddr = "10.0.0.1".parse().expect("address");
        let other: IpAddr = "10.0.0.2".parse().expect("address");
        let allowed = (0..50)
            .filter(|_| throttle.attempt(guesser).is_ok())
            .count();
        assert_eq!(allowed, ADDRESS_BURST as usize);
        assert!(throttle.attempt(guesser).is_err_and(|wait| wait >= 1));
        assert!(
            throttle.attempt(other).is_ok(),
            "another address still may try"
        );
    }

    #[test]
    fn the_session_value_is_not_the_token_and_differs_per_process() {
        let token = "a-token-of-twenty-chars";
        let one = session_value(token);
        assert_ne!(one, token);
        assert!(!one.contains(token));
        assert_eq!(one.len(), 64);
        assert_ne!(one, session_value(token), "a new key every start");
    }
}
