//! Observability: `tracing` spans of calls and jobs with W3C trace context
//! carried in the message's `meta`, Prometheus metrics of workers and
//! clients, and a worker's `/metrics`, `/healthz` and `/readyz` listener.
//!
//! * `propagation`: the `traceparent` header (parse, child, write).
//! * `spans`: the spans and their OpenTelemetry-convention fields.
//! * `metrics`: the worker's and the client's metrics.
//! * `health`: liveness and readiness marks.
//! * `listener`: the minimal HTTP server for all of it.
//! * [`otlp`] (feature `otlp`): the spans sent to an OTLP collector.

pub(crate) mod health;
pub(crate) mod listener;
mod metrics;
#[cfg(feature = "otlp")]
pub mod otlp;
pub(crate) mod propagation;
pub(crate) mod spans;

pub use self::metrics::{ClientMetrics, JobOutcome, WorkerMetrics};
pub use self::propagation::{TraceContext, TRACEPARENT, TRACESTATE};
pub use self::spans::{MESSAGING_SYSTEM, RPC_SYSTEM};
/// The `prometheus-client` this crate registers its metrics with.
pub use prometheus_client;

pub(crate) use self::metrics::UNKNOWN;
