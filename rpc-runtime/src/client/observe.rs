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
use crate::telemetry::{spans, JobOutcome, TraceContext, TRACEPARENT};

/// One call being observed.
pub(super) struct Observed {
    pub(super) span: Span,
    /// The call span's own trace context, when it replaces the one in the
    /// options (the span is recorded); `None`: send the options' as is.
    pub(super) trace: Option<TraceContext>,
    started: Option<Instant>,
}

impl Observed {
    /// Nothing observed: no span, no trace context, no metrics.
    pub(super) fn none() -> Self {
        Observed {
            span: Span::none(),
            trace: None,
            started: None,
        }
    }

    /// Whether there is nothing to observe (nobody listens to the span and
    /// no metrics are kept): a batch keeps such a call's as `None`.
    pub(super) fn is_idle(&self) -> bool {
        self.span.is_disabled() && self.trace.is_none() && self.started.is_none()
    }
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
            Ok(_) => JobOutcome::succeeded,
            Err(CallError::App(_)) => JobOutcome::failed,
            Err(CallError::Rpc(e)) => error_outcome(e),
        };
        let error_type = match result {
            Ok(_) => None,
            Err(CallError::App(_)) => Some(spans::error_type_of(ErrorKind::App)),
            Err(CallError::Rpc(e)) => Some(error_type(e)),
        };
        spans::record_outcome(&observed.span, outcome, error_type);
        if let (Some(metrics), Some(started)) = (&self.inner.config.metrics, observed.started) {
            metrics.call_ended(job.service, job.job, outcome, started.elapsed());
        }
    }
}

/// The `outcome` of a call that failed with `e`: the same words a worker
/// uses for how the job ended (`telemetry::JobOutcome`).
pub(super) fn error_outcome(e: &Error) -> JobOutcome {
    match e {
        Error::Timeout { .. } => JobOutcome::timeout,
        Error::Remote { kind, .. } => match kind {
            ErrorKind::UnknownJob => JobOutcome::unknown_job,
            ErrorKind::DeadlineExceeded => JobOutcome::timeout,
            ErrorKind::DeadLettered => JobOutcome::dead,
            ErrorKind::Cancelled => JobOutcome::cancelled,
            _ => JobOutcome::failed,
        },
        _ => JobOutcome::error,
    }
}

/// The `error.type` of a call that failed with `e`: the error kind a
/// worker answered (`handler`, `bad_request`, ...), or what went wrong on
/// this side (`timeout`, `broker`, ...).
fn error_type(e: &Error) -> &'static str {
    match e {
        Error::Timeout { .. } => "timeout",
        Error::Remote { kind, .. } => spans::error_type_of(*kind),
        Error::Broker(_) => "broker",
        Error::PayloadTooLarge { .. } => "payload_too_large",
        Error::Codec { .. } => "codec",
        Error::Refused { .. } => "refused",
        Error::Config(_) => "config",
        Error::Closed => "closed",
        _ => "_OTHER",
    }
}
