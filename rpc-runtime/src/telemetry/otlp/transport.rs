//! How an OTLP batch travels: one HTTP/1.1 `POST` on a connection of its
//! own, made with hyper's client half and driven on the exporting thread.
//!
//! Why this and not a client `opentelemetry-otlp` brings:
//!
//! * Its blocking reqwest client works, but adds reqwest, tower,
//!   tower-http and their kin (about a dozen crates) for one request every
//!   few seconds; hyper is already here for the metrics listener, and its
//!   client half is small.
//! * Its async clients (reqwest, hyper-util's pool) and tonic (gRPC) need a
//!   Tokio runtime that still runs when they are used. The SDK's batch
//!   processor exports from a thread of its own, outside any runtime, and
//!   the last flush comes at shutdown, often after the application's
//!   runtime has stopped: a client tied to that runtime would hang or lose
//!   the last spans. gRPC would also bring h2, tonic and tower.
//!
//! So each export makes a small current-thread runtime, connects, posts,
//! reads the answer and drops it all: a batch goes out every few seconds
//! at most, so a connection per batch costs nothing that matters, and no
//! background task outlives anything. There is no TLS: the usual setting
//! is a collector or agent next to the process, spoken to over http
//! (`endpoint` refuses https at start).

use std::time::Duration;

use async_trait::async_trait;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, HOST};
use hyper_util::rt::TokioIo;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};

/// The most of a collector's answer that is read: an
/// `ExportTraceServiceResponse` is a few bytes, or a short error message.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// The per-export timeout when the environment sets none: the
/// specification's default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The timeout of one traces export, in milliseconds.
const TRACES_TIMEOUT_VAR: &str = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT";
/// The timeout of one export of any signal, in milliseconds.
const TIMEOUT_VAR: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";

/// Posts each batch on a fresh hyper connection (see the module docs).
#[derive(Debug)]
pub(super) struct HyperTransport {
    /// The longest one export may take, connection included.
    timeout: Duration,
}

impl HyperTransport {
    /// A transport whose timeout is `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`,
    /// else `OTEL_EXPORTER_OTLP_TIMEOUT` (milliseconds), else 10 s.
    pub(super) fn from_env() -> HyperTransport {
        let millis = |var| {
            std::env::var(var)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let timeout = millis(TRACES_TIMEOUT_VAR)
            .or_else(|| millis(TIMEOUT_VAR))
            .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
        HyperTransport { timeout }
    }
}

#[async_trait]
impl HttpClient for HyperTransport {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let timeout = self.timeout;
        // The batch processor calls this on its own thread, where no Tokio
        // runtime is current. Called from within one (a simple processor in
        // async code), the exchange moves to a thread of its own: a runtime
        // cannot be started inside another.
        if tokio::runtime::Handle::try_current().is_err() {
            return post_blocking(request, timeout);
        }
        std::thread::scope(|s| {
            s.spawn(move || post_blocking(request, timeout))
                .join()
                .unwrap_or_else(|_| Err("the OTLP export thread panicked".into()))
        })
    }
}

/// Posts `request` on a runtime made for it, within `timeout`.
fn post_blocking(request: Request<Bytes>, timeout: Duration) -> Result<Response<Bytes>, HttpError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let uri = request.uri().to_string();
    runtime.block_on(async move {
        tokio::time::timeout(timeout, post(request))
            .await
            .map_err(|_| format!("no answer from the OTLP endpoint {uri} within {timeout:?}"))?
    })
}

/// One exchange: connect, send `request` in origin form, read the answer.
async fn post(request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
    let (mut parts, body) = request.into_parts();
    let authority = parts
        .uri
        .authority()
        .ok_or("the OTLP endpoint has no host")?
        .clone();
    // `Uri::host` keeps an IPv6 address's brackets; connecting needs it bare.
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("cannot connect to the OTLP endpoint {authority}: {e}"))?;
    stream.set_nodelay(true)?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // Driven by this runtime while the answer is read; dropped with it.
    tokio::spawn(connection);

    // A client connection sends the URI as given: HTTP/1.1 wants the path
    // on the request line and the authority in `Host`.
    parts.uri = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()?;
    parts
        .headers
        .insert(HOST, HeaderValue::from_str(authority.as_str())?);
    let response = sender
        .send_request(hyper::Request::from_parts(parts, Full::new(body)))
        .await?;
    let (parts, body) = response.into_parts();
    let body = Limited::new(body, MAX_RESPONSE_BYTES)
        .collect()
        .await?
        .to_bytes();
    Ok(Response::from_parts(parts, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn export_to(url: &str) -> Request<Bytes> {
        Request::post(url)
            .header("content-type", "application/x-protobuf")
            .body(Bytes::from_static(b"spans"))
            .unwrap()
    }

    /// Called from inside a runtime (here the test's), the exchange runs on
    /// a thread of its own; the request goes out in origin form with
    /// `Host`, as HTTP/1.1 servers expect, and the answer comes back whole.
    /// (Two threads: the exchange blocks the one that calls it, and the
    /// stand-in collector needs the other.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_is_posted_in_origin_form_and_the_answer_read() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.ends_with(b"spans") {
                let n = stream.read(&mut buf).await.unwrap();
                assert!(n > 0, "the request ended early");
                request.extend_from_slice(&buf[..n]);
            }
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
            String::from_utf8(request).unwrap()
        });
        let transport = HyperTransport {
            timeout: Duration::from_secs(10),
        };
        let url = format!("http://{addr}/v1/traces");
        let response = transport.send_bytes(export_to(&url)).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.body().as_ref(), b"ok");
        let request = server.await.unwrap().to_lowercase();
        assert!(
            request.starts_with("post /v1/traces http/1.1\r\n"),
            "{request}"
        );
        assert!(request.contains(&format!("host: {addr}\r\n")), "{request}");
        assert!(
            request.contains("content-type: application/x-protobuf\r\n"),
            "{request}"
        );
    }

    /// A collector that is not there is an error naming it, at once, not a
    /// hang until the timeout.
    #[tokio::test]
    async fn an_absent_collector_is_an_error_that_names_it() {
        let addr = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        let transport = HyperTransport {
            timeout: Duration::from_secs(30),
        };
        let started = std::time::Instant::now();
        let url = format!("http://{addr}/v1/traces");
        let error = transport.send_bytes(export_to(&url)).await.unwrap_err();
        assert!(error.to_string().contains(&addr.to_string()), "{error}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
