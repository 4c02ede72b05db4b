//! What a worker runs: a [`Service`] is a named set of jobs with a dispatch
//! function from job name and raw JSON parameters to an [`Outcome`].
//!
//! Generated `<Service>Server<H>` types implement it for typed handlers;
//! [`DynamicService`] implements it for untyped closures over
//! `serde_json::Value` (the old library's `Request { data, respond() }`), for
//! scripts, tools and bridges.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::call::JobInfo;
use crate::context::Context;
use crate::error::{ErrorKind, HandlerError, JobError};
use rpc_protocol::rate::RateLimit;
use rpc_protocol::Backoff;

/// A boxed, sendable future (what [`Service::dispatch`] returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A set of jobs mounted on a worker under one name.
pub trait Service: Send + Sync + 'static {
    /// The wire service name; also the queue the worker reads.
    fn name(&self) -> &'static str;

    /// The jobs this service serves.
    fn jobs(&self) -> &'static [JobInfo];

    /// How many shards (queues) the service is spread over, the schema's
    /// `#[shards = N]`; the broker's shard count may raise what a worker
    /// reads (`rpc_protocol::shards`).
    fn shards(&self) -> u32 {
        1
    }

    /// The service's own rate limit, the schema's `#[rate = "..."]` on
    /// the service: every start of any of its jobs counts (`None`: no
    /// limit). A worker's [`rate_limit`](crate::WorkerBuilder::rate_limit)
    /// overrides it.
    fn rate(&self) -> Option<RateLimit> {
        None
    }

    /// Runs one job. `job` is the wire job name without the service prefix.
    fn dispatch<'a>(
        &'a self,
        ctx: Context,
        job: &'a str,
        params: &'a RawValue,
    ) -> BoxFuture<'a, Outcome>;
}

/// How one job ended, ready to become a reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The job's return value, serialized as JSON.
    Ok(String),
    /// The job's application error, serialized as JSON.
    App(String),
    /// The job failed. `retry` asks for another attempt, after
    /// `retry_after` if set (else after the job's backoff).
    Failed {
        kind: ErrorKind,
        message: String,
        retry: bool,
        retry_after: Option<std::time::Duration>,
    },
}

impl Outcome {
    /// The outcome for a job name the service does not have.
    pub fn unknown_job(job: &str) -> Self {
        Outcome::Failed {
            kind: ErrorKind::UnknownJob,
            message: format!("no job named `{job}` is mounted on this worker"),
            retry: false,
            retry_after: None,
        }
    }

    /// The outcome for parameters that do not fit the job's request type.
    pub fn bad_request(reason: impl std::fmt::Display) -> Self {
        Outcome::Failed {
            kind: ErrorKind::BadRequest,
            message: format!("parameters do not match the job: {reason}"),
            retry: false,
            retry_after: None,
        }
    }

    /// The outcome for a call its sender did not prove the right to make
    /// (a missing or wrong token): what a [`Middleware`](crate::Middleware)
    /// answers. The caller gets an `unauthenticated` error; nothing is
    /// retried.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Outcome::Failed {
            kind: ErrorKind::Unauthenticated,
            message: message.into(),
            retry: false,
            retry_after: None,
        }
    }

    /// The outcome for a call its (proven) sender may not make: the caller
    /// gets a `permission_denied` error; nothing is retried.
    pub fn permission_denied(message: impl Into<String>) -> Self {
        Outcome::Failed {
            kind: ErrorKind::PermissionDenied,
            message: message.into(),
            retry: false,
            retry_after: None,
        }
    }

    fn from_handler_error(e: HandlerError) -> Self {
        Outcome::Failed {
            kind: ErrorKind::Handler,
            retry: e.is_retry(),
            retry_after: e.retry_delay(),
            message: e.message().to_owned(),
        }
    }

    fn encode<T: Serialize>(value: &T, app: bool) -> Self {
        match serde_json::to_string(value) {
            Ok(json) if app => Outcome::App(json),
            Ok(json) => Outcome::Ok(json),
            Err(e) => Outcome::Failed {
                kind: ErrorKind::Handler,
                message: format!("could not serialize the result: {e}"),
                retry: false,
                retry_after: None,
            },
        }
    }
}

/// Decodes a job's parameters, or says why they do not fit.
pub(crate) fn decode<T: DeserializeOwned>(params: &RawValue) -> Result<T, Outcome> {
    serde_json::from_str(params.get()).map_err(Outcome::bad_request)
}

/// Turns a plain (or one-way) job's result into an outcome.
pub(crate) fn finish<T: Serialize>(result: Result<T, HandlerError>) -> Outcome {
    match result {
        Ok(value) => Outcome::encode(&value, false),
        Err(e) => Outcome::from_handler_error(e),
    }
}

/// Turns a `Result<T, E>` job's result into an outcome.
pub(crate) fn finish_app<T: Serialize, E: Serialize>(result: Result<T, JobError<E>>) -> Outcome {
    match result {
        Ok(value) => Outcome::encode(&value, false),
        Err(JobError::App(e)) => Outcome::encode(&e, true),
        Err(JobError::Handler(e)) => Outcome::from_handler_error(e),
    }
}

/// An untyped request: the old library's `Request { data, respond() }`.
#[derive(Debug, Clone)]
pub struct Request {
    /// The call's parameters.
    pub data: serde_json::Value,
    /// The call's context (id, attempt, deadline, metadata).
    pub context: Context,
}

impl Request {
    /// Answers the call with `data` (sugar for `Ok(data)`).
    pub fn respond(&self, data: serde_json::Value) -> Result<serde_json::Value, HandlerError> {
        Ok(data)
    }
}

type DynHandler = Arc<
    dyn Fn(Request) -> BoxFuture<'static, Result<serde_json::Value, HandlerError>> + Send + Sync,
>;

/// A service built from closures over JSON values, mounted by name.
///
/// ```
/// use rpc_runtime::{Backoff, DynamicService, HandlerError, Service};
/// let svc = DynamicService::new("Echo")
///     .job("echo", |req| async move { req.respond(req.data.clone()) })
///     .backoff("echo", "fixed(2s)".parse().expect("a retry policy"));
/// assert_eq!(svc.jobs()[0].backoff, Some(Backoff::Fixed { delay_ms: 2_000 }));
/// ```
pub struct DynamicService {
    name: &'static str,
    handlers: HashMap<String, DynHandler>,
    /// Per-job retry policies (what `#[backoff]` is for a typed service).
    backoffs: HashMap<String, Backoff>,
    /// The job list, derived from `handlers` when first asked for.
    jobs: std::sync::OnceLock<&'static [JobInfo]>,
    /// What `#[shards = N]` is for a typed service.
    shards: u32,
    /// What `#[rate = "..."]` is for a typed service (`None` for the
    /// service's own), by job.
    rates: HashMap<Option<String>, RateLimit>,
}

impl DynamicService {
    /// An empty service named `name`.
    pub fn new(name: &str) -> Self {
        DynamicService {
            name: Box::leak(name.to_owned().into_boxed_str()),
            handlers: HashMap::new(),
            backoffs: HashMap::new(),
            jobs: std::sync::OnceLock::new(),
            shards: 1,
            rates: HashMap::new(),
        }
    }

    /// Spreads the service over `n` shards (queues), as `#[shards = n]`
    /// does for a typed one (clamped to 1..=256).
    pub fn shards(mut self, n: u32) -> Self {
        self.shards = n.clamp(1, rpc_protocol::shards::MAX_SHARDS);
        self
    }

    /// Adds a job that answers.
    pub fn job<F, Fut>(mut self, name: &str, handler: F) -> Self
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<serde_json::Value, HandlerError>> + Send + 'static,
    {
        let handler: DynHandler = Arc::new(move |req| Box::pin(handler(req)));
        self.handlers.insert(name.to_owned(), handler);
        self
    }

    /// Retries of the job `name` wait as `backoff` says, not as the
    /// worker's default does: the untyped form of the schema's
    /// `#[backoff = "..."]`. Given before or after the job itself.
    pub fn backoff(mut self, name: &str, backoff: Backoff) -> Self {
        self.backoffs.insert(name.to_owned(), backoff);
        self
    }

    /// Starts of the job `name` are limited to `rate` across the fleet,
    /// as the schema's `#[rate = "..."]` on a job does for a typed
    /// service; `name` `None` limits the service (every job's starts count).
    pub fn rate_limit(mut self, name: Option<&str>, rate: RateLimit) -> Self {
        self.rates.insert(name.map(str::to_owned), rate);
        self
    }

    /// The same service without the job `name`: what an older version of
    /// it, from before the job existed, would mount (rolling-deploy tests).
    pub fn without(mut self, name: &str) -> Self {
        self.handlers.remove(name);
        self.backoffs.remove(name);
        self
    }
}

impl Service for DynamicService {
    fn name(&self) -> &'static str {
        self.name
    }

    fn shards(&self) -> u32 {
        self.shards
    }

    fn rate(&self) -> Option<RateLimit> {
        self.rates.get(&None).copied()
    }

    fn jobs(&self) -> &'static [JobInfo] {
        // Built once per service at start-up; leaking it gives the `'static`
        // slice the trait asks for.
        self.jobs.get_or_init(|| {
            let jobs: Vec<JobInfo> = self
                .handlers
                .keys()
                .map(|name| JobInfo {
                    name: Box::leak(name.clone().into_boxed_str()),
                    one_way: false,
                    timeout_ms: None,
                    max_attempts: None,
                    deprecated: false,
                    backoff: self.backoffs.get(name).copied(),
                    rate: self.rates.get(&Some(name.clone())).copied(),
                    group_limit: None,
                    priority: None,
                })
                .collect();
            Box::leak(jobs.into_boxed_slice())
        })
    }

    fn dispatch<'a>(
        &'a self,
        ctx: Context,
        job: &'a str,
        params: &'a RawValue,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let Some(handler) = self.handlers.get(job) else {
                return Outcome::unknown_job(job);
            };
            let data = match decode::<serde_json::Value>(params) {
                Ok(data) => data,
                Err(outcome) => return outcome,
            };
            finish(handler(Request { data, context: ctx }).await)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(req: Request) -> BoxFuture<'static, Result<serde_json::Value, HandlerError>> {
        Box::pin(async move { Ok(req.data) })
    }

    fn backoff_of(service: &DynamicService, job: &str) -> Option<Backoff> {
        let info = service.jobs().iter().find(|info| info.name == job);
        info.expect("the job is listed").backoff
    }

    #[test]
    fn a_dynamic_job_keeps_the_backoff_given_for_it_and_only_it() {
        // Given before the job or after it, a policy lands on that job's
        // `JobInfo`; the other jobs keep the worker's default (`None`).
        let fixed = Backoff::Fixed { delay_ms: 2_000 };
        let service = DynamicService::new("Svc")
            .backoff("early", fixed)
            .job("early", answer)
            .job("late", answer)
            .job("plain", answer)
            .backoff("late", Backoff::None)
            .backoff("absent", fixed);
        assert_eq!(backoff_of(&service, "early"), Some(fixed));
        assert_eq!(backoff_of(&service, "late"), Some(Backoff::None));
        assert_eq!(backoff_of(&service, "plain"), None);
        assert_eq!(service.jobs().len(), 3, "a policy alone adds no job");
    }
}
