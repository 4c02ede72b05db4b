//! Errors, one enum per boundary.
//!
//! * [`Error`] is what a caller sees: the broker failed, the call timed out,
//!   the worker answered with an error, the program is misconfigured. Every
//!   variant says what to do next.
//! * [`CallError`] is what every call of a job fails with: the job's typed
//!   application error (`Result<T, E>` in the schema; [`Never`] for jobs
//!   without one) or an [`Error`]. Plain and `Result` jobs match alike.
//! * [`HandlerError`] is what a handler returns when it cannot do its job:
//!   either "try again later" (the job is retried until its attempt limit) or
//!   "this will never work" (the caller gets the error at once). `?` turns
//!   any `std::error::Error` into one (a retry).
//! * [`JobError`] is the handler-side twin of [`CallError`]: the typed
//!   application error, or a [`HandlerError`].

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use rpc_protocol::ErrorKind;

/// Why a call failed, as seen by the caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection URL could not be used.
    #[error("invalid broker URL `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },

    /// The program asked for something that cannot work as configured: a
    /// service mounted twice, a metrics address that cannot be bound, a
    /// malformed job name, call id or client id prefix. Fix the program;
    /// retrying will not help.
    #[error("misconfigured: {0}")]
    Config(String),

    /// A client interceptor refused the call before it was sent.
    #[error("`{job}` was refused before it was sent: {reason}")]
    Refused { job: String, reason: String },

    /// The broker could not be reached or refused a command.
    #[error("broker error: {0}")]
    Broker(String),

    /// No reply came before the call's deadline. `diagnosis` says why, as
    /// far as the broker could tell right after the timeout (the service
    /// is paused, has no live worker, or is busy); `None` when it could
    /// not be read in time.
    #[error("call {id} to `{job}` got no reply within {after:?}{}", DiagnosisSuffix(.diagnosis))]
    Timeout {
        job: String,
        id: String,
        after: Duration,
        diagnosis: Option<Box<TimeoutDiagnosis>>,
    },

    /// The request was larger than the configured payload limit; nothing was sent.
    #[error("request for `{job}` is {size} bytes, over the limit of {limit} bytes (raise it with ClientBuilder::max_payload)")]
    PayloadTooLarge {
        job: String,
        size: usize,
        limit: usize,
    },

    /// The idempotency key is held by another call with other parameters
    /// (or another job): this call did not run. Which call holds it is not
    /// told: it may be another caller's.
    #[error("idempotency key {key:?} of `{job}` is held by another call with other parameters; this call did not run")]
    IdempotencyConflict { job: String, key: String },

    /// The call's idempotency key is held by call `holder` for the same
    /// job and parameters, so this call did not run, but what is kept
    /// under the holder's id is not that call's answer: another call sent
    /// under the same id overwrote it, or it is no answer at all. Nothing
    /// is made up in its place; the call may be sent again under a new key.
    #[error("the result of call {holder}, which holds the idempotency key of this call to `{job}`, cannot answer it: {reason}; this call did not run")]
    HolderResultRefused {
        job: String,
        holder: String,
        reason: String,
    },

    /// A value could not be encoded or a reply could not be decoded.
    #[error("could not {what}: {reason}")]
    Codec { what: String, reason: String },

    /// The worker answered with an error.
    #[error("`{job}` failed ({kind}): {message}")]
    Remote {
        job: String,
        kind: ErrorKind,
        message: String,
        /// The application error value, for `kind == App` on untyped calls.
        data: Option<serde_json::Value>,
    },

    /// The client was shut down while the call was in flight.
    #[error("the client was closed")]
    Closed,
}

impl Error {
    /// The remote error kind, if the worker answered with an error.
    pub fn remote_kind(&self) -> Option<ErrorKind> {
        match self {
            Error::Remote { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// True when the broker refused a command for want of permission: a
    /// Redis ACL user without the rights (`NOPERM`, which the driver
    /// writes `NoPerm`).
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, Error::Broker(message) if message.contains("NOPERM") || message.contains("NoPerm"))
    }

    /// True for errors that may go away if the same call is made again
    /// (broker down, timeout); false for errors that will repeat.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Broker(_) | Error::Timeout { .. })
    }

    pub(crate) fn config(what: impl fmt::Display) -> Self {
        Error::Config(what.to_string())
    }

    pub(crate) fn codec(what: impl Into<String>, reason: impl fmt::Display) -> Self {
        Error::Codec {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}

/// Why a call may have timed out, read from the broker right after it did
/// (a few bounded reads, never on a call that is answered in time). Each
/// figure is `None` when it could not be read (the client ACL role reads
/// only the pause flag).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimeoutDiagnosis {
    /// The service called.
    pub service: String,
    /// Whether the service is paused.
    pub paused: Option<bool>,
    /// Workers with a live heartbeat that serve the service.
    pub live_workers: Option<u64>,
    /// Of those, how many are quiet or stopping (take no jobs).
    pub quiet_workers: Option<u64>,
    /// How long ago a worker of the service last beat (within the last day).
    #[serde(rename = "last_seen_ago_ms", serialize_with = "millis_opt")]
    pub last_seen_ago: Option<Duration>,
    /// Jobs waiting for a worker.
    pub queued: Option<u64>,
    /// How long the oldest of them has waited.
    #[serde(rename = "oldest_queued_age_ms", serialize_with = "millis_opt")]
    pub oldest_queued_age: Option<Duration>,
}

/// What most likely kept a call from its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeoutCause {
    /// The service is paused: its jobs wait for a resume.
    Paused,
    /// No worker with a live heartbeat serves it.
    NoLiveWorker,
    /// Its workers are all quiet or stopping.
    NoTakingWorker,
    /// Workers are there; the queue is long, or the job slow.
    Busy,
    /// The broker could not tell.
    Unknown,
}

impl TimeoutDiagnosis {
    /// The likeliest cause, in the order an operator checks them.
    pub fn cause(&self) -> TimeoutCause {
        match (self.paused, self.live_workers, self.quiet_workers) {
            (Some(true), _, _) => TimeoutCause::Paused,
            (_, Some(0), _) => TimeoutCause::NoLiveWorker,
            (_, Some(live), Some(quiet)) if quiet >= live => TimeoutCause::NoTakingWorker,
            (_, Some(_), _) => TimeoutCause::Busy,
            _ => TimeoutCause::Unknown,
        }
    }
}

impl fmt::Display for TimeoutDiagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let service = &self.service;
        match self.cause() {
            TimeoutCause::Paused => write!(
                f,
                "service `{service}` is paused: its jobs wait until it is resumed (`rpc resume {service}`)"
            ),
            TimeoutCause::NoLiveWorker => {
                write!(f, "no live worker serves `{service}`")?;
                match self.last_seen_ago {
                    Some(ago) => write!(f, " (one was last seen {} ago)", short_duration(ago)),
                    None => f.write_str(" (none seen in the last day)"),
                }
            }
            TimeoutCause::NoTakingWorker => write!(
                f,
                "every live worker of `{service}` is quiet or stopping: none takes jobs"
            ),
            TimeoutCause::Busy => {
                let live = self.live_workers.unwrap_or(0);
                let s = if live == 1 { "" } else { "s" };
                write!(f, "`{service}` has {live} live worker{s}")?;
                match (self.queued, self.oldest_queued_age) {
                    (Some(0), _) => f.write_str(" and no queued job: the job itself is slow"),
                    (Some(n), Some(age)) => write!(
                        f,
                        " and is busy: {n} queued, the oldest waiting {}",
                        short_duration(age)
                    ),
                    (Some(n), None) => write!(f, " and is busy: {n} queued"),
                    (None, _) => Ok(()),
                }
            }
            TimeoutCause::Unknown => {
                write!(f, "the broker could not tell why (no rights to read `{service}`'s workers?)")
            }
        }
    }
}

/// `4.2s`, `13m14s`, `2h05m`: the operator's duration style (this layer
/// cannot use `inspect::human_time`; the same rules, cut down).
fn short_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 => format!("{}ms", d.subsec_millis()),
        1..10 => match d.subsec_millis() / 100 {
            0 => format!("{secs}s"),
            tenths => format!("{secs}.{tenths}s"),
        },
        10..60 => format!("{secs}s"),
        60..3600 => two_units(secs / 60, 'm', secs % 60, 's'),
        3600..86400 => two_units(secs / 3600, 'h', secs % 3600 / 60, 'm'),
        _ => two_units(secs / 86400, 'd', secs % 86400 / 3600, 'h'),
    }
}

fn two_units(large: u64, large_unit: char, small: u64, small_unit: char) -> String {
    if small == 0 {
        format!("{large}{large_unit}")
    } else {
        format!("{large}{large_unit}{small:02}{small_unit}")
    }
}

fn millis_opt<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        None => s.serialize_none(),
    }
}

/// `: <diagnosis>` after a timeout's message, or nothing.
struct DiagnosisSuffix<'a>(&'a Option<Box<TimeoutDiagnosis>>);

impl fmt::Display for DiagnosisSuffix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(diagnosis) => write!(f, "; {diagnosis}"),
            None => Ok(()),
        }
    }
}

impl Error {
    /// Why a timed-out call got no answer, if this is a timeout and the
    /// broker could tell (see [`TimeoutDiagnosis`]).
    pub fn timeout_diagnosis(&self) -> Option<&TimeoutDiagnosis> {
        match self {
            Error::Timeout { diagnosis, .. } => diagnosis.as_deref(),
            _ => None,
        }
    }
}

impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Self {
        Error::Broker(e.to_string())
    }
}

/// An uninhabited type: the application error of jobs that declare none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Never {}

impl fmt::Display for Never {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {}
    }
}

/// The result of a typed call to a job declared `-> Result<T, E>`: either the
/// job's own error `E`, or a runtime [`Error`].
#[derive(Debug, thiserror::Error)]
pub enum CallError<E = Never> {
    /// The job answered with its application error.
    #[error("application error: {0:?}")]
    App(E),
    /// The call itself failed.
    #[error(transparent)]
    Rpc(#[from] Error),
}

impl<E> CallError<E> {
    /// The error kind the worker answered with, if this is a worker's
    /// answer (`App` for the application error).
    pub fn remote_kind(&self) -> Option<ErrorKind> {
        match self {
            CallError::App(_) => Some(ErrorKind::App),
            CallError::Rpc(e) => e.remote_kind(),
        }
    }

    /// Why a timed-out call got no answer (see [`Error::timeout_diagnosis`]).
    pub fn timeout_diagnosis(&self) -> Option<&TimeoutDiagnosis> {
        match self {
            CallError::Rpc(e) => e.timeout_diagnosis(),
            CallError::App(_) => None,
        }
    }

    /// The job's application error, if that is what came back.
    pub fn app(&self) -> Option<&E> {
        match self {
            CallError::App(e) => Some(e),
            CallError::Rpc(_) => None,
        }
    }

    /// True for errors that may go away if the same call is made again
    /// (see [`Error::is_transient`]); an application error is the job's
    /// answer, and is not.
    pub fn is_transient(&self) -> bool {
        matches!(self, CallError::Rpc(e) if e.is_transient())
    }
}

impl CallError<Never> {
    /// A call to a job without an application error can only fail with [`Error`].
    pub fn into_rpc(self) -> Error {
        match self {
            CallError::App(never) => match never {},
            CallError::Rpc(e) => e,
        }
    }
}

impl From<CallError<Never>> for Error {
    fn from(e: CallError<Never>) -> Self {
        e.into_rpc()
    }
}

/// What a handler returns when it cannot do its job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerError {
    message: String,
    retry: bool,
    retry_after: Option<Duration>,
}

impl HandlerError {
    /// A transient failure: the job goes back on the queue and is tried again,
    /// up to its attempt limit, after which it is dead-lettered.
    pub fn retry(message: impl Into<String>) -> Self {
        HandlerError {
            message: message.into(),
            retry: true,
            retry_after: None,
        }
    }

    /// A transient failure that should be tried again after `delay` (a
    /// rate limit's `Retry-After`, say) rather than after the job's
    /// backoff; still bounded by the attempt limit and the call's deadline.
    pub fn retry_after(delay: Duration, message: impl Into<String>) -> Self {
        HandlerError {
            message: message.into(),
            retry: true,
            retry_after: Some(delay),
        }
    }

    /// A permanent failure: the caller gets the error at once, no retry.
    pub fn fatal(message: impl Into<String>) -> Self {
        HandlerError {
            message: message.into(),
            retry: false,
            retry_after: None,
        }
    }

    /// The message given to the caller.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the job should be tried again.
    pub fn is_retry(&self) -> bool {
        self.retry
    }

    /// The delay the handler asked for before the next attempt, if any.
    pub fn retry_delay(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// `?` on any error in a handler: a transient failure (the job is tried
/// again up to its attempt limit, then dead-lettered and answered
/// `handler`), with the error and its sources as the message. A handler
/// that knows better says [`HandlerError::fatal`].
///
/// (So that this conversion can exist, `HandlerError` is not itself a
/// `std::error::Error`, as `anyhow::Error` is not.)
impl<X: std::error::Error + Send + Sync + 'static> From<X> for HandlerError {
    fn from(error: X) -> Self {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        HandlerError::retry(message)
    }
}

/// The handler-side result error of a job declared `-> Result<T, E>`.
///
/// `?` works for both kinds: on the job's error type `E` (generated code
/// implements `From<E>` for each schema type, so it reaches the caller
/// typed, as `CallError::App`), and on any `std::error::Error` (a handler
/// failure, as for plain jobs). Schema types therefore do not implement
/// `std::error::Error`; a builtin error type (`String`, say) is returned
/// as `JobError::App(e)`.
#[derive(Debug, Clone, PartialEq)]
pub enum JobError<E> {
    /// The job's application error, delivered to the caller as `CallError::App`.
    App(E),
    /// The handler failed (see [`HandlerError`]).
    Handler(HandlerError),
}

impl<E> From<HandlerError> for JobError<E> {
    fn from(e: HandlerError) -> Self {
        JobError::Handler(e)
    }
}

/// `?` on any error in a handler of a `Result` job: a handler failure, as
/// [`HandlerError`]'s conversion makes it.
impl<E, X: std::error::Error + Send + Sync + 'static> From<X> for JobError<E> {
    fn from(error: X) -> Self {
        JobError::Handler(HandlerError::from(error))
    }
}

impl<E> JobError<E> {
    /// Shorthand for `JobError::Handler(HandlerError::retry(msg))`.
    pub fn retry(message: impl Into<String>) -> Self {
        JobError::Handler(HandlerError::retry(message))
    }

    /// Shorthand for `JobError::Handler(HandlerError::fatal(msg))`.
    pub fn fatal(message: impl Into<String>) -> Self {
        JobError::Handler(HandlerError::fatal(message))
    }
}
