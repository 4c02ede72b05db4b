//! Observing a call: its `tracing` span, its place in the W3C trace (sent
//! as `traceparent` in the message's `meta`), and the client's metrics.
//!
//! With no subscriber interested and no metrics registered, observing is a
//! disabled span and a `None`: the message is encoded exactly as without
//! it, and a `traceparent` the caller put in the options (e.g. from
//! [`crate::Context::call_options`]) goes out as it came.

use std::time::Instant;

use tracing::Span;

use super::handle::Client;

use crate::call::{CallOptions, JobRef};
use crate::error::{CallError, Error, ErrorKind};
use crate::telemetry::{spans, TraceContext, TRACEPARENT};

/// One call being observed.
pub(super) struct Observed {
    pub(super) span: Span,
    /// The call span's own trace context, when it replaces the one in the
    /// options (the span is recorded); `None`: send the options' as is.
    pub(super) trace: Option<TraceContext>,
    started: Option<Instant>,
}

impl Client {
    /// Opens the span of a call to `job`, a child of the trace context in
    /// `options` if there is one.
    pub(super) fn observe(&self, job: &JobRef, options: &CallOptions) -> Observed {
        let span = spans::call_span(job.service, job.job);
        let trace = if span.is_disabled() {
            None
        } else {
            let parent = options
                .metadata
                .get(TRACEPARENT)
                .and_then(|h| TraceContext::parse(h));
            spans::place(&span, parent)
        };
        Observed {
            span,
            trace,
            started: self.inner.config.metrics.as_ref().map(|_| Instant::now()),
        }
    }

    /// Records how an observed call ended.
    pub(super) fn observed<T, E>(
        &self,
        observed: Observed,
        job: &JobRef,
        result: &Result<T, CallError<E>>,
    ) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(CallError::App(_)) => "app_error",
            Err(CallError::Rpc(e)) => error_outcome(e),
        };
        spans::record_outcome(&observed.span, outcome, result.is_ok());
        if let (Some(metrics), Some(started)) = (&self.inner.config.metrics, observed.started) {
            metrics.call_ended(job.service, job.job, outcome, started.elapsed());
        }
    }
}

/// The `outcome` label of a call that failed with `e`.
pub(super) fn error_outcome(e: &Error) -> &'static str {
    match e {
        Error::Timeout { .. } => "timeout",
        Error::Remote { kind, .. } => match kind {
            ErrorKind::App => "app_error",
            ErrorKind::Handler => "handler",
            ErrorKind::UnknownJob => "unknown_job",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::DeadlineExceeded => "deadline_exceeded",
            ErrorKind::DeadLettered => "dead_lettered",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::IdempotencyConflict => "idempotency_conflict",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::PermissionDenied => "permission_denied",
            _ => "unknown",
        },
        Error::Broker(_) => "broker_error",
        Error::PayloadTooLarge { .. } => "payload_too_large",
        Error::Codec { .. } => "codec_error",
        Error::Refused { .. } => "refused",
        Error::Config(_) => "config_error",
        Error::Closed => "closed",
        _ => "error",
    }
}
