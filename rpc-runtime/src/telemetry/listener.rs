//! The worker's metrics listener: a minimal HTTP/1 server (hyper, one tiny
//! service) answering `GET /metrics` (Prometheus/OpenMetrics text),
//! `/healthz` and `/readyz`, and 404 for anything else.
//!
//! A check answers `200` with the body `ok`, or `503` with the reason on
//! one line of text (`shutting down`, `the broker cannot be reached: ...`,
//! `completions refused: NOPERM ...`). What each one checks, and why
//! `/healthz` does not ask the broker, is in `health`.
//!
//! The per-service gauges are read from Redis at scrape time (through the
//! same [`Inspector`] as `rpc stats`), bounded by a timeout so a slow
//! broker cannot hold a scrape: the other figures are still served, and
//! the gauges keep their last values.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use super::health::{Health, Verdict};
use super::metrics::WorkerMetrics;
use crate::error::Error;
use crate::inspect::Inspector;

/// How long a scrape waits for the queue figures from Redis.
const QUEUE_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// What the listener serves.
pub(crate) struct Exposition {
    pub(crate) registry: Registry,
    pub(crate) metrics: WorkerMetrics,
    pub(crate) health: Arc<Health>,
    /// Reads the per-service gauges (`None` on a broker that cannot be
    /// inspected, e.g. `memory://`).
    pub(crate) inspector: Inspector,
    pub(crate) services: Vec<String>,
}

/// Binds the metrics address, or says clearly why it cannot.
pub(crate) async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr).await.map_err(|e| {
        Error::config(format_args!(
            "cannot serve metrics and health checks on {addr}: {e} \
             (choose another metrics address, or free this one)"
        ))
    })
}

/// Serves `exposition` on `listener` until the task is aborted.
pub(crate) async fn serve(listener: TcpListener, exposition: Arc<Exposition>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait, do not spin.
                tracing::warn!(error = %e, "the metrics listener could not accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let exposition = exposition.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let exposition = exposition.clone();
                async move { Ok::<_, Infallible>(answer(&exposition, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer<B>(exposition: &Exposition, request: Request<B>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".to_owned());
    }
    match request.uri().path() {
        "/metrics" => metrics(exposition).await,
        "/healthz" => verdict(exposition.health.alive()),
        "/readyz" => verdict(exposition.health.ready()),
        _ => plain(
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /healthz or /readyz\n".to_owned(),
        ),
    }
}

async fn metrics(exposition: &Exposition) -> Response<Full<Bytes>> {
    let read = async {
        for service in &exposition.services {
            match exposition.inspector.service_stats(service).await {
                Ok(Some(stats)) => exposition.metrics.queues.set(&stats),
                Ok(None) => {}
                Err(e) => {
                    exposition.metrics.broker_error();
                    tracing::debug!(error = %e, service, "could not read queue figures");
                }
            }
        }
    };
    if tokio::time::timeout(QUEUE_READ_TIMEOUT, read)
        .await
        .is_err()
    {
        tracing::debug!("reading queue figures timed out; serving the last ones");
    }
    let mut body = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut body, &exposition.registry) {
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("could not encode metrics: {e}\n"),
        );
    }
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    );
    response
}

fn verdict(v: Verdict) -> Response<Full<Bytes>> {
    let status = if v.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    plain(status, format!("{}\n", v.reason))
}

fn plain(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
