//! The `tracing` spans of calls and jobs, with attributes named and typed
//! as OpenTelemetry's RPC and messaging semantic conventions say, and how a
//! span gets its place in a W3C trace.
//!
//! Both spans carry `rpc.system`, `rpc.service`, `rpc.method`,
//! `messaging.system`, `messaging.operation.type` and `.name` (`send` on
//! the caller, `process` on the worker), `messaging.destination.name` (the
//! service's queue) and `messaging.message.id` (the call id); a failure
//! sets `error.type` (the error kind, e.g. `handler`, `timeout`) and the
//! span status to error. What the conventions do not name lives under this
//! system's own namespace, as they advise (`rpc.<system>.*`, like
//! `rpc.grpc.status_code`): `rpc.redis_rpc.outcome` (the one list of
//! outcomes, as in the metrics), `rpc.redis_rpc.attempt` (an integer, the
//! first attempt is one) and `rpc.redis_rpc.queue_wait` (seconds from
//! enqueue to start, a float). `trace_id`, `span_id` and `parent_span_id`
//! are for log lines; README's tracing section lists all of it.
//!
//! Spans cost nothing when no subscriber wants them: the macros return a
//! disabled span without evaluating any field, and the trace ids are then
//! neither made nor formatted (a caller's `traceparent` is passed on as it
//! came). Fields known only later are declared `Empty` and recorded.

use tracing::field::Empty;
use tracing::Span;

use super::outcome::JobOutcome;
use super::propagation::TraceContext;
use crate::error::ErrorKind;

/// `rpc.system` of every span: this crate's protocol.
pub const RPC_SYSTEM: &str = "redis_rpc";
/// `messaging.system`: the broker.
pub const MESSAGING_SYSTEM: &str = "redis";

/// The span of one call, on the caller's side.
pub(crate) fn call_span(service: &'static str, job: &'static str) -> Span {
    tracing::info_span!(
        target: "rpc_runtime::call",
        "rpc.call",
        otel.kind = "client",
        otel.status_code = Empty,
        otel.status_message = Empty,
        rpc.system = RPC_SYSTEM,
        rpc.service = service,
        rpc.method = job,
        messaging.system = MESSAGING_SYSTEM,
        messaging.operation.type = "send",
        messaging.operation.name = "send",
        messaging.destination.name = service,
        messaging.message.id = Empty,
        error.r#type = Empty,
        rpc.redis_rpc.outcome = Empty,
        trace_id = Empty,
        span_id = Empty,
        parent_span_id = Empty,
    )
}

/// The span of one job run, on the worker's side.
pub(crate) fn job_span(queue: &str, job: &str, id: &str, attempt: u32) -> Span {
    tracing::info_span!(
        target: "rpc_runtime::job",
        "rpc.job",
        otel.kind = "consumer",
        otel.status_code = Empty,
        otel.status_message = Empty,
        rpc.system = RPC_SYSTEM,
        rpc.service = queue,
        rpc.method = job.split_once('.').map_or(job, |(_, j)| j),
        messaging.system = MESSAGING_SYSTEM,
        messaging.operation.type = "process",
        messaging.operation.name = "process",
        messaging.destination.name = queue,
        messaging.message.id = id,
        error.r#type = Empty,
        rpc.redis_rpc.attempt = i64::from(attempt),
        rpc.redis_rpc.queue_wait = Empty,
        rpc.redis_rpc.outcome = Empty,
        trace_id = Empty,
        span_id = Empty,
        parent_span_id = Empty,
    )
}

/// Records how long a job waited in its queue, in seconds.
pub(crate) fn record_queue_wait(span: &Span, waited: std::time::Duration) {
    span.record("rpc.redis_rpc.queue_wait", waited.as_secs_f64());
}

/// The `error.type` of an error kind a worker answered with: the wire's
/// name, or `_OTHER` (the semantic conventions' fallback) for a kind
/// this build does not know.
pub(crate) fn error_type_of(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Unknown => "_OTHER",
        known => known.as_str(),
    }
}

/// Gives `span` its place in the trace: a child of `parent` (the caller's
/// context), or the root of a new trace. Returns the span's own context,
/// which its outgoing calls carry. A disabled span gets no ids: `parent` is
/// passed on as it is, so the trace still joins up around a process that
/// records nothing.
///
/// With the `otel` feature and a tracing-opentelemetry layer installed, the
/// ids are OpenTelemetry's: `parent` becomes the span's remote parent, and
/// a span without one joins the trace of the current OpenTelemetry context
/// (the application's enclosing span).
pub(crate) fn place(span: &Span, parent: Option<TraceContext>) -> Option<TraceContext> {
    if span.is_disabled() {
        return parent;
    }
    #[cfg(feature = "otel")]
    if let Some(own) = otel::place(span, parent) {
        record_ids(span, own, parent);
        return Some(own);
    }
    let own = parent.map_or_else(TraceContext::new_root, |p| p.child());
    record_ids(span, own, parent);
    Some(own)
}

fn record_ids(span: &Span, own: TraceContext, parent: Option<TraceContext>) {
    use tracing::field::display;
    span.record("trace_id", display(format_args!("{:032x}", own.trace_id)));
    span.record("span_id", display(format_args!("{:016x}", own.span_id)));
    if let Some(parent) = parent {
        span.record(
            "parent_span_id",
            display(format_args!("{:016x}", parent.span_id)),
        );
    }
}

/// The spans' OpenTelemetry side (feature `otel`).
#[cfg(feature = "otel")]
mod otel {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use super::*;

    /// Sets `parent` as the OpenTelemetry parent of `span` and returns the
    /// span's OpenTelemetry ids; `None` when no OpenTelemetry layer
    /// records the span.
    pub(super) fn place(span: &Span, parent: Option<TraceContext>) -> Option<TraceContext> {
        if let Some(p) = parent {
            let flags = if p.sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            };
            let remote = SpanContext::new(
                TraceId::from_bytes(p.trace_id.to_be_bytes()),
                SpanId::from_bytes(p.span_id.to_be_bytes()),
                flags,
                true,
                TraceState::default(),
            );
            let cx = opentelemetry::Context::new().with_remote_span_context(remote);
            if span.set_parent(cx).is_err() {
                return None;
            }
        }
        let cx = span.context();
        let own = cx.span().span_context().clone();
        own.is_valid().then(|| TraceContext {
            trace_id: u128::from_be_bytes(own.trace_id().to_bytes()),
            span_id: u64::from_be_bytes(own.span_id().to_bytes()),
            sampled: own.is_sampled(),
        })
    }
}

/// Records how a call or job ended: its outcome and, on anything but
/// success, the span's status set to error and `error_type` as
/// `error.type` (a job's span gets it earlier, from [`record_error_type`],
/// where the error kind is known).
pub(crate) fn record_outcome(span: &Span, outcome: JobOutcome, error_type: Option<&'static str>) {
    if span.is_disabled() {
        return;
    }
    span.record("rpc.redis_rpc.outcome", outcome.as_str());
    if !outcome.is_success() {
        if let Some(error_type) = error_type {
            span.record("error.type", error_type);
        }
        span.record("otel.status_code", "ERROR");
        span.record("otel.status_message", outcome.as_str());
    }
}

/// Records the kind of error a job is answered with (or retried for) as
/// the span's `error.type`.
pub(crate) fn record_error_type(span: &Span, kind: ErrorKind) {
    span.record("error.type", error_type_of(kind));
}
