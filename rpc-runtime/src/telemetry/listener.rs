//! The metrics listener of a worker and of `rpc exporter`: a minimal
//! HTTP/1 server (hyper, one tiny service) answering `GET /metrics`
//! (OpenMetrics to a scraper that asks for it, else the classic Prometheus
//! text format: `exposition`), `/healthz` and `/readyz`, and 404 for
//! anything else.
//!
//! A check answers `200` with the body `ok`, or `503` with the reason on
//! one line of text (`shutting down`, `the broker cannot be reached: ...`,
//! `completions refused: NOPERM ...`). What a worker's checks look at, and
//! why `/healthz` does not ask the broker, is in `health`; the exporter is
//! alive while it answers and ready while it can read the broker.
//!
//! The exporter's queue figures are read from Redis at scrape time
//! (`queue_metrics`), bounded by a timeout so a slow broker cannot hold a
//! scrape: the scrape is then answered with `rpc_broker_up 0`.

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

use super::exposition;
use super::health::{self, Health, Verdict};
use super::queue_metrics::QueueMetrics;
use crate::error::Error;

/// How long a scrape waits for the queue figures from Redis.
const QUEUE_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// What the listener serves.
pub(crate) struct Exposition {
    pub(crate) registry: Registry,
    /// A worker's liveness and readiness; `None` for the exporter.
    pub(crate) health: Option<Arc<Health>>,
    /// The exporter's queue figures, read before each scrape.
    pub(crate) queues: Option<QueueMetrics>,
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
        "/metrics" => {
            let accept = request
                .headers()
                .get(hyper::header::ACCEPT)
                .and_then(|v| v.to_str().ok());
            metrics(exposition, accept).await
        }
        "/healthz" => verdict(match &exposition.health {
            Some(health) => health.alive(),
            None => health::pass(),
        }),
        "/readyz" => verdict(match (&exposition.health, &exposition.queues) {
            (Some(health), _) => health.ready(),
            (None, Some(queues)) => match queues.refresh(QUEUE_READ_TIMEOUT).await {
                Ok(()) => health::pass(),
                Err(e) => health::fail(format!("the broker cannot be read: {e}")),
            },
            (None, None) => health::pass(),
        }),
        _ => plain(
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /healthz or /readyz\n".to_owned(),
        ),
    }
}

async fn metrics(exposition: &Exposition, accept: Option<&str>) -> Response<Full<Bytes>> {
    if let Some(queues) = &exposition.queues {
        if let Err(e) = queues.refresh(QUEUE_READ_TIMEOUT).await {
            tracing::warn!(error = %e, "could not read the queue figures; serving rpc_broker_up 0");
        }
    }
    let (body, content_type) = match exposition::encode(&exposition.registry, accept) {
        Ok(encoded) => encoded,
        Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
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
