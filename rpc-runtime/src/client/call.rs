//! A call before it is sent: [`Call`], what every job method of a
//! generated client returns (and the untyped [`Client::call`] /
//! [`Client::send`]), in the manner of reqwest's `RequestBuilder` and
//! tonic's `IntoRequest`: options go on the call, and `.await` sends it.
//!
//! ```no_run
//! # async fn f(client: rpc_runtime::Client) -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use serde_json::json;
//!
//! // Sent and waited for: the job's answer.
//! let sum = client.call("Calculator.add", json!({"a": 2, "b": 3})).await?;
//! // Options on the call.
//! let sum = client
//!     .call("Calculator.add", json!({"a": 2, "b": 3}))
//!     .timeout(Duration::from_secs(2))
//!     .meta("tenant", "a")
//!     .await?;
//! // Sent now, answered later (or elsewhere, by id).
//! let pending = client.call("Calculator.add", json!({"a": 2, "b": 3})).send().await?;
//! let sum = pending.await?;
//! // A one-way job: `.await` gives its id once it is queued.
//! let id = client.send("Calculator.log", json!({"line": "hi"})).delay(Duration::from_secs(60)).await?;
//! # Ok(()) }
//! ```

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use rpc_protocol::WriteParams;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::handle::Client;
use super::pending::Pending;
use super::typed::Parts;

use crate::call::{CallOptions, JobId, JobRef};
use crate::error::{CallError, Error, Never};

/// The mode of a call that is answered: `.await` gives the answer,
/// `.send()` a [`Pending`] handle.
#[derive(Debug, Clone, Copy)]
pub struct Answered;

/// The mode of a one-way call: `.await` gives its id once it is queued.
#[derive(Debug, Clone, Copy)]
pub struct OneWay;

/// A one-way call (a job that returns nothing).
pub type OneWayCall = Call<(), Never, OneWay>;

/// What a call answers, fails with and how it is sent, carried only as
/// types (a `fn` pointer keeps the call `Send` whatever `T` and `E` are).
type Types<T, E, M> = PhantomData<fn() -> (T, E, M)>;

/// A call of one job, not sent yet: set its options, then `.await` it.
///
/// `T` is what the job answers and `E` its application error ([`Never`]
/// for jobs without one); `M` is [`Answered`] or [`OneWay`]. Dropping a
/// call sends nothing.
#[must_use = "a call does nothing until it is awaited (or sent)"]
pub struct Call<T, E = Never, M = Answered> {
    client: Client,
    job: Result<JobRef, Error>,
    /// Serialized once, straight into the message, when the call is sent.
    params: Box<dyn WriteParams + Send + Sync>,
    /// `None` until an option is set: a call without options carries no
    /// options of its own (its future stays small).
    options: Option<Box<CallOptions>>,
    _types: Types<T, E, M>,
}

impl<T, E, M> std::fmt::Debug for Call<T, E, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Call");
        if let Ok(job) = &self.job {
            d.field("service", &job.service).field("job", &job.job);
        }
        d.field("options", &self.options).finish()
    }
}

impl<T, E, M> Call<T, E, M> {
    /// A call of `job` with `params` through `client` (what generated code
    /// and the untyped methods build).
    pub(crate) fn new<P: Serialize + Send + Sync + 'static>(
        client: &Client,
        job: Result<JobRef, Error>,
        params: P,
    ) -> Self {
        Call {
            client: client.clone(),
            job,
            params: Box::new(params),
            options: None,
            _types: PhantomData,
        }
    }

    /// How long the caller waits for the answer (and the job's deadline);
    /// a delayed call's time counts from when it is due. Default: the
    /// job's `#[timeout_ms]`, else the client's default.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options_mut().timeout = Some(timeout);
        self
    }

    /// Runs the job no sooner than `delay` after it is sent (measured on
    /// the broker's clock).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.options_mut().delay = Some(delay);
        self
    }

    /// Runs the job no sooner than `at`, read on the broker's clock (the
    /// time all workers judge it by); a time already past runs at once.
    pub fn at(mut self, at: SystemTime) -> Self {
        self.options_mut().run_at = Some(at);
        self
    }

    /// Runs the call at most once per `key` while the key is remembered
    /// (an hour unless [`idempotency_ttl`](Self::idempotency_ttl) says):
    /// the same call again with the same key is answered with the first
    /// one's result; with other parameters it fails
    /// ([`Error::IdempotencyConflict`]).
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.options_mut().idempotency_key = Some(key.into());
        self
    }

    /// How long the idempotency key is remembered.
    pub fn idempotency_ttl(mut self, ttl: Duration) -> Self {
        self.options_mut().idempotency_ttl = Some(ttl);
        self
    }

    /// Puts the call in group `key` (a tenant, a customer, a resource): at
    /// most the job's per-key limit of calls with this key run at once
    /// across the fleet, and keys take turns on the workers. A key that
    /// is not 1 to 128 bytes without control characters or braces is
    /// refused when the call is sent.
    pub fn group(mut self, key: impl Into<String>) -> Self {
        self.options_mut().group = Some(key.into());
        self
    }

    /// The call's priority, 1 (taken first) to 5 (last); default the
    /// job's `#[priority]`, else 3 (see
    /// [`CallOptions::priority`](crate::CallOptions::priority)). Out of
    /// range is refused when the call is sent.
    pub fn priority(mut self, priority: u8) -> Self {
        self.options_mut().priority = Some(priority);
        self
    }

    /// Adds metadata the handler reads in
    /// [`Context::metadata`](crate::Context::metadata) (a tenant, a
    /// request id...).
    pub fn meta(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.options_mut().metadata.insert(key.into(), value.into());
        self
    }

    /// The attempt limit before the job is dead-lettered. Default: the
    /// job's `#[attempts]`, else the client's default.
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.options_mut().max_attempts = Some(attempts);
        self
    }

    /// Keeps the result this long for fetch-by-id
    /// ([`Client::fetch_result`], [`Client::attach`]); `ZERO` keeps
    /// nothing.
    pub fn keep_result(mut self, ttl: Duration) -> Self {
        self.options_mut().result_ttl = Some(ttl);
        self
    }

    /// Replaces every option with `options` (those of
    /// [`Context::call_options`](crate::Context::call_options), say, for a
    /// call made while serving a job: it inherits the job's deadline and
    /// trace).
    pub fn options(mut self, options: CallOptions) -> Self {
        self.options = Some(Box::new(options));
        self
    }

    fn options_mut(&mut self) -> &mut CallOptions {
        self.options.get_or_insert_with(Default::default)
    }

    pub(super) fn parts(self) -> Result<Parts, Error> {
        Ok(Parts {
            client: self.client,
            job: self.job?,
            params: self.params,
            options: self.options,
        })
    }
}

impl<T, E> Call<T, E, Answered>
where
    T: DeserializeOwned + Send + 'static,
    E: DeserializeOwned + Send + 'static,
{
    /// Sends the call without waiting for its answer: the [`Pending`]
    /// handle is awaited later (it is itself a future), or its id kept to
    /// fetch the result from anywhere while it is kept (the client's
    /// result TTL, unless [`keep_result`](Self::keep_result) says).
    pub async fn send(self) -> Result<Pending<T, E>, Error> {
        self.parts()?.send().await
    }
}

impl<T, E> IntoFuture for Call<T, E, Answered>
where
    T: DeserializeOwned + Send + 'static,
    E: DeserializeOwned + Send + 'static,
{
    type Output = Result<T, CallError<E>>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        // The parts are moved into the future as the arguments of an
        // `async fn`, stored once: the boxed future is the call's whole
        // cost in memory on the plain path.
        match self.parts() {
            Ok(parts) => Box::pin(parts.answer()),
            Err(e) => Box::pin(std::future::ready(Err(CallError::Rpc(e)))),
        }
    }
}

impl IntoFuture for Call<(), Never, OneWay> {
    type Output = Result<JobId, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        match self.parts() {
            Ok(parts) => Box::pin(parts.send_one_way()),
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }
}
