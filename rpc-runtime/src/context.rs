//! What a handler knows about the call it serves: its [`Context`] (id,
//! attempt, deadline, metadata, trace) and whether the call was cancelled.
//!
//! It sits below the worker, which builds contexts, and below services,
//! which receive them: cancellation is a set the worker fills
//! ([`cancellations::Cancellations`]) and a context only reads; progress
//! is a board a context writes and the worker's writer empties
//! ([`progress::ProgressBoard`]).

pub(crate) mod cancellations;
pub(crate) mod progress;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use self::cancellations::Cancellations;
use self::progress::{BadProgress, Progress, ProgressHandle};
use crate::call::{CallOptions, JobId};
use crate::telemetry::propagation::{TraceContext, TRACEPARENT, TRACESTATE};

/// What a handler knows about the call it is serving.
#[derive(Debug, Clone)]
pub struct Context {
    pub(crate) id: JobId,
    pub(crate) job: Arc<str>,
    pub(crate) attempt: u32,
    pub(crate) max_attempts: u32,
    pub(crate) deadline: Option<SystemTime>,
    pub(crate) metadata: Arc<BTreeMap<String, String>>,
    /// The job's place in its trace: the worker's span, or the caller's
    /// when this worker records no spans (`None`: no trace).
    pub(crate) trace: Option<TraceContext>,
    /// The worker's cancellations, for this call's id (`None`: a detached
    /// context, never cancelled).
    pub(crate) cancel: Option<Arc<Cancellations>>,
    /// The worker's progress board (`None`: a detached context, whose
    /// progress goes nowhere).
    pub(crate) progress: Option<ProgressHandle>,
}

impl Context {
    /// A context for calling a handler directly (tests, in-process use).
    pub fn detached(job: &str) -> Self {
        Context {
            id: JobId::new_random(),
            job: job.into(),
            attempt: 1,
            max_attempts: 1,
            deadline: None,
            metadata: Arc::default(),
            trace: None,
            cancel: None,
            progress: None,
        }
    }

    /// The call id.
    pub fn id(&self) -> &JobId {
        &self.id
    }

    /// The full job name, `Service.job`.
    pub fn job(&self) -> &str {
        &self.job
    }

    /// Which attempt this is, starting at 1. Greater than 1 after a worker
    /// crash (redelivery) or a retry.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The attempt limit for this job.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// When the caller stops waiting, if it set a deadline.
    pub fn deadline(&self) -> Option<SystemTime> {
        self.deadline
    }

    /// Time left before the deadline (`None` when there is no deadline;
    /// `Some(ZERO)` once it has passed).
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline.map(|d| {
            d.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
        })
    }

    /// Whether the call has been cancelled (by its caller or an operator).
    /// Cheap: a handler can check it between steps of a long loop.
    pub fn is_cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.is_cancelled(self.id.as_str()))
    }

    /// Resolves when the call is cancelled: race it against the work
    /// (`tokio::select!`) to stop early. A handler that ignores it is
    /// dropped after the worker's cancel grace period
    /// ([`WorkerSettings::cancel_grace`](crate::WorkerSettings::cancel_grace)).
    pub async fn cancelled(&self) {
        match &self.cancel {
            Some(cancellations) => cancellations.wait(self.id.as_str()).await,
            None => std::future::pending().await,
        }
    }

    /// Reports how far along the job is: a fraction (`0.5`) or steps
    /// (`(3, 10)`), with a message (cut to 200 characters). Callers watch
    /// it ([`Pending::progress`](crate::Pending::progress), `rpc call
    /// --progress`, the dashboard). It never waits: the newest value is
    /// written by the worker at most every 200 ms, so a tight loop may
    /// report as often as it likes. A value out of range (NaN, outside
    /// `0..=1`, `done > total`, `total` 0) is refused; a detached
    /// context's progress goes nowhere.
    ///
    /// ```
    /// let ctx = rpc_runtime::Context::detached("Files.copy");
    /// ctx.progress((3, 10), "copying").unwrap();
    /// ctx.progress(0.5, "half way").unwrap();
    /// assert!(ctx.progress(1.5, "too far").is_err());
    /// ```
    pub fn progress(
        &self,
        progress: impl Into<Progress>,
        message: impl AsRef<str>,
    ) -> Result<(), BadProgress> {
        let progress = progress.into();
        let Some(handle) = &self.progress else {
            return progress.fraction().map(drop);
        };
        let ttl = rpc_protocol::progress::ttl(self.remaining(), handle.kept);
        handle.board.report(
            self.id.as_str(),
            self.attempt,
            ttl,
            progress,
            message.as_ref(),
        )
    }

    /// Caller metadata.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// The W3C `traceparent` of this job's span (the worker's span, or the
    /// caller's when the worker records none); `None` outside a trace.
    pub fn traceparent(&self) -> Option<String> {
        self.trace.map(|t| t.traceparent())
    }

    /// Options for a call made while serving this job: the call inherits
    /// what is left of this job's deadline as its timeout, and the trace
    /// context (`traceparent`, `tracestate`), so the callee's span is a
    /// child of this job's and a chain of calls never waits past its first
    /// caller's deadline (as grpc-go propagates deadlines). Other metadata
    /// is not passed on; add to the returned options what should be.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let ctx = rpc_runtime::Context::detached("Svc.job");
    /// let options = ctx.call_options();
    /// assert_eq!(options.timeout, None); // no deadline here: the job's or client's default applies
    /// ```
    pub fn call_options(&self) -> CallOptions {
        let mut options = CallOptions {
            timeout: self.remaining(),
            ..CallOptions::default()
        };
        if let Some(trace) = self.trace {
            options
                .metadata
                .insert(TRACEPARENT.to_owned(), trace.traceparent());
            if let Some(state) = self.metadata.get(TRACESTATE) {
                options
                    .metadata
                    .insert(TRACESTATE.to_owned(), state.clone());
            }
        }
        options
    }
}
