//! The `tracing` spans of calls and jobs, with fields named after
//! OpenTelemetry's RPC and messaging semantic conventions, and how a span
//! gets its place in a W3C trace.
//!
//! Spans cost nothing when no subscriber wants them: the macros return a
//! disabled span without evaluating any field, and the trace ids are then
//! neither made nor formatted (a caller's `traceparent` is passed on as it
//! came). Fields known only later are declared `Empty` and recorded.

use tracing::field::Empty;
use tracing::Span;

use super::propagation::TraceContext;

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
        rpc.system = RPC_SYSTEM,
        rpc.service = service,
        rpc.method = job,
        messaging.system = MESSAGING_SYSTEM,
        messaging.destination.name = service,
        messaging.message.id = Empty,
        rpc.outcome = Empty,
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
        rpc.system = RPC_SYSTEM,
        rpc.service = queue,
        rpc.method = job.split_once('.').map_or(job, |(_, j)| j),
        messaging.system = MESSAGING_SYSTEM,
        messaging.operation = "process",
        messaging.destination.name = queue,
        messaging.message.id = id,
        rpc.attempt = attempt,
        messaging.queue_wait_ms = Empty,
        rpc.outcome = Empty,
        trace_id = Empty,
        span_id = Empty,
        parent_span_id = Empty,
    )
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

/// Records how a call or job ended; anything but success marks the span
/// as an error for OpenTelemetry.
pub(crate) fn record_outcome(span: &Span, outcome: &'static str, ok: bool) {
    if span.is_disabled() {
        return;
    }
    span.record("rpc.outcome", outcome);
    if !ok {
        span.record("otel.status_code", "ERROR");
    }
}
