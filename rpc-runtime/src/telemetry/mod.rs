//! Observability: `tracing` spans of calls and jobs with W3C trace context
//! carried in the message's `meta`, Prometheus metrics of workers, clients
//! and queues, and the `/metrics`, `/healthz` and `/readyz` listener.
//!
//! * `propagation`: the `traceparent` header (parse, child, write).
//! * `spans`: the spans and their OpenTelemetry-convention attributes.
//! * `outcome`: the one list of outcomes, for metrics and spans.
//! * `metrics`: the worker's and the client's metrics.
//! * `queue_metrics`: the queues' gauges, read from the broker per scrape.
//! * `process`: `rpc_build_info` and the standard `process_*` metrics.
//! * `exposition`: OpenMetrics or the classic text format, as asked.
//! * `health`: liveness and readiness marks.
//! * `listener`: the minimal HTTP server for all of it; `exporter` the
//!   queue exporter (`rpc exporter`) on it.
//! * [`otlp`] (feature `otlp`): the spans sent to an OTLP collector.

mod exporter;
pub mod exposition;
pub(crate) mod health;
mod lane_and_group_series;
pub(crate) mod listener;
mod metrics;
#[cfg(feature = "otlp")]
pub mod otlp;
mod outcome;
mod process;
pub(crate) mod propagation;
mod queue_metrics;
pub(crate) mod spans;

pub use self::exporter::QueueExporter;
pub use self::metrics::{
    ClientMetrics, JobOutcome, WorkerMetrics, DURATION_BUCKETS, QUEUE_WAIT_BUCKETS,
};
pub use self::process::{register_process_metrics, revision};
pub use self::propagation::{TraceContext, TRACEPARENT, TRACESTATE};
pub use self::spans::{MESSAGING_SYSTEM, RPC_SYSTEM};
/// The `prometheus-client` this crate registers its metrics with.
pub use prometheus_client;

pub(crate) use self::metrics::UNKNOWN;
