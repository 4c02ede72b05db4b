//! The vocabulary shared by callers, handlers and generated code: call ids,
//! per-call options, the handler's view of a call ([`Context`]) and the static
//! descriptions of jobs that codegen emits.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::telemetry::{TraceContext, TRACEPARENT, TRACESTATE};
use rpc_protocol::Backoff;

/// The id of one call. On the wire it is a string (a UUID when this crate
/// makes it); it doubles as the handle to fetch a kept result.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(Arc<str>);

impl JobId {
    /// A fresh random id.
    pub fn new_random() -> Self {
        JobId(uuid::Uuid::new_v4().simple().to_string().into())
    }

    /// The id as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for JobId {
    fn from(s: &str) -> Self {
        JobId(s.into())
    }
}

impl From<String> for JobId {
    fn from(s: String) -> Self {
        JobId(s.into())
    }
}

/// Options for one call. Unset fields fall back to the job's schema
/// attributes, then to the client's defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallOptions {
    /// How long the caller waits for the reply; also sent as the job's deadline.
    pub timeout: Option<Duration>,
    /// Attempt limit before the job is dead-lettered.
    pub max_attempts: Option<u32>,
    /// How long the worker keeps the result for [`crate::Pending`] handles and
    /// fetch-by-id. `Some(ZERO)` keeps nothing.
    pub result_ttl: Option<Duration>,
    /// Free-form metadata the handler sees in [`Context::metadata`].
    pub metadata: BTreeMap<String, String>,
    /// Run the job no sooner than this long after it is sent (measured on
    /// the broker's clock). The call's timeout counts from when it is due.
    pub delay: Option<Duration>,
    /// Run the job no sooner than this time (this machine's clock turned
    /// into a delay when the call is sent). `delay` wins if both are set.
    pub run_at: Option<SystemTime>,
    /// Send the call at most once per key while the key is remembered:
    /// a second send with the same key enqueues nothing and attaches to the
    /// first call (same id, same result); with other parameters it fails.
    pub idempotency_key: Option<String>,
    /// How long an idempotency key is remembered (default
    /// [`CallOptions::DEFAULT_IDEMPOTENCY_TTL`]); the call's result is
    /// kept at least as long, so every duplicate gets it.
    pub idempotency_ttl: Option<Duration>,
}

impl CallOptions {
    /// How long an idempotency key is remembered unless the options say.
    pub const DEFAULT_IDEMPOTENCY_TTL: Duration = Duration::from_secs(60 * 60);

    /// Options with only a timeout set.
    pub fn timeout(timeout: Duration) -> Self {
        CallOptions::default().with_timeout(timeout)
    }

    /// Options with only a delay set: the job runs `delay` after it is sent.
    pub fn delay(delay: Duration) -> Self {
        CallOptions::default().with_delay(delay)
    }

    /// Options with only a start time set: the job runs at `at` or later.
    pub fn run_at(at: SystemTime) -> Self {
        CallOptions::default().with_run_at(at)
    }

    /// Options with only an idempotency key set.
    pub fn idempotency_key(key: impl Into<String>) -> Self {
        CallOptions::default().with_idempotency_key(key)
    }

    /// These options with a timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// These options with a delay.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// These options with a start time.
    pub fn with_run_at(mut self, at: SystemTime) -> Self {
        self.run_at = Some(at);
        self
    }

    /// These options with an idempotency key.
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// These options with an attempt limit.
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// How long after sending the job is due (`None`: at once).
    pub fn due_in(&self) -> Option<Duration> {
        self.delay.or_else(|| {
            self.run_at.map(|at| {
                at.duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO)
            })
        })
    }
}

/// A job as the generated client names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobRef {
    /// Wire service name (the queue).
    pub service: &'static str,
    /// Wire job name inside the service.
    pub job: &'static str,
    /// `#[timeout_ms = N]` from the schema.
    pub timeout_ms: Option<u64>,
    /// `#[attempts = N]` from the schema.
    pub max_attempts: Option<u32>,
}

/// A job as a mounted service describes it to the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobInfo {
    /// Wire job name inside the service.
    pub name: &'static str,
    /// True when nothing comes back.
    pub one_way: bool,
    /// `#[timeout_ms = N]` from the schema.
    pub timeout_ms: Option<u64>,
    /// `#[attempts = N]` from the schema.
    pub max_attempts: Option<u32>,
    /// `#[deprecated]` in the schema.
    pub deprecated: bool,
    /// `#[backoff = "..."]` from the schema: the delay before each retry of
    /// this job (`None`: the worker's default).
    pub backoff: Option<Backoff>,
}

/// JSON Schemas of one job's request, response and application error.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JobSchema {
    pub service: String,
    pub job: String,
    pub request: serde_json::Value,
    pub response: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<serde_json::Value>,
}

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
    pub(crate) cancel: Option<Arc<crate::worker::Cancellations>>,
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
