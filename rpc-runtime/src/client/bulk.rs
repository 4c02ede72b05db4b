//! Many calls in one round trip, as BullMQ's `addBulk` and Sidekiq's
//! `push_bulk`: a [`Batch`] of calls, each with its own options, sent
//! together and answered (or given an id) in order.
//!
//! ```no_run
//! # async fn f(client: rpc_runtime::Client) -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use serde_json::json;
//!
//! // One-way jobs: their ids, in order, once all are queued.
//! let ids = client
//!     .send_many("Calculator.log", (0..1000).map(|i| json!({"line": format!("row {i}")})))
//!     .await?;
//! // Calls: every answer, in order, each a `Result`.
//! let sums = client
//!     .call_many("Calculator.add", [json!({"a": 1, "b": 2}), json!({"a": 3, "b": 4})])
//!     .timeout(Duration::from_secs(5))
//!     .await?;
//! // Calls of several jobs and services, each with its options.
//! let mut batch = client.batch();
//! batch.push(client.send("Calculator.log", json!({"line": "a"})).delay(Duration::from_secs(60)));
//! batch.push(client.send("Mailer.welcome", json!({"user": 7})).idempotency_key("welcome-7"));
//! let ids = batch.await?;
//! # Ok(()) }
//! ```
//!
//! A call that cannot be sent (no such job name, parameters that do not
//! serialize, a bad idempotency key, too large) refuses the whole batch
//! before anything is sent. A batch goes out in one round trip per queue
//! (each a chunk of at most a thousand jobs or about a MiB; see
//! `bulk_send.rs`); if one fails, [`BatchError`] says which calls were
//! queued, which may have been, and which were not sent.

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;

pub use super::bulk_error::{BatchError, Sent};
use super::bulk_send::{told, Encoded, Fate, Mode, Payloads};
use super::call::{Answered, Call, OneWay};
use super::handle::Client;
use super::observe::Observed;
use super::pending::Pending;
use super::typed::Parts;
use super::untyped::untyped_ref;

use crate::call::{CallOptions, JobId};
use crate::error::{CallError, Error, Never};

/// A batch of one-way calls: `.await` gives their ids.
pub type OneWayBatch = Batch<(), Never, OneWay>;

/// Calls sent together, in one round trip per queue: set options on each
/// call or on the whole batch, then `.await` it.
///
/// `T`, `E` and `M` are those of its calls ([`Call`]): a batch of one-way
/// calls ([`OneWayBatch`], any jobs of any services) gives their ids; a
/// batch of calls that answer gives every answer in order, or
/// [`send`](Batch::send) gives a [`Pending`] handle per call. A batch is
/// sent through the client it was made from (or its first call's).
#[must_use = "a batch does nothing until it is awaited (or sent)"]
pub struct Batch<T, E = Never, M = Answered> {
    client: Option<Client>,
    items: Vec<Result<Parts, Error>>,
    /// What calls that do not set an option themselves get.
    options: Option<Box<CallOptions>>,
    _types: Types<T, E, M>,
}

/// What the calls answer, fail with and how they are sent, as types only.
type Types<T, E, M> = PhantomData<fn() -> (T, E, M)>;

impl<T, E, M> std::fmt::Debug for Batch<T, E, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("calls", &self.items.len())
            .field("options", &self.options)
            .finish()
    }
}

impl<T, E, M> Default for Batch<T, E, M> {
    fn default() -> Self {
        Batch {
            client: None,
            items: Vec::new(),
            options: None,
            _types: PhantomData,
        }
    }
}

impl<T, E, M> Batch<T, E, M> {
    /// An empty batch, sent through its first call's client.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a call (its options go with it).
    pub fn push(&mut self, call: Call<T, E, M>) -> &mut Self {
        self.add(call.parts());
        self
    }

    /// Adds a call, builder style.
    pub fn with(mut self, call: Call<T, E, M>) -> Self {
        self.push(call);
        self
    }

    /// The number of calls.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it holds no call.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn add(&mut self, parts: Result<Parts, Error>) {
        if let (None, Ok(parts)) = (&self.client, &parts) {
            self.client = Some(parts.client.clone());
        }
        self.items.push(parts);
    }

    /// The timeout of every call that sets none itself.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options_mut().timeout = Some(timeout);
        self
    }

    /// Runs every call that sets no delay or start time itself no sooner
    /// than `delay` after it is sent.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.options_mut().delay = Some(delay);
        self
    }

    /// Runs every call that sets no delay or start time itself no sooner
    /// than `at` (on the broker's clock).
    pub fn at(mut self, at: SystemTime) -> Self {
        self.options_mut().run_at = Some(at);
        self
    }

    /// Metadata for every call that does not set `key` itself.
    pub fn meta(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.options_mut().metadata.insert(key.into(), value.into());
        self
    }

    /// The group key of every call that sets none itself (see
    /// [`Call::group`]).
    pub fn group(mut self, key: impl Into<String>) -> Self {
        self.options_mut().group = Some(key.into());
        self
    }

    /// The priority of every call that sets none itself, 1 (taken first)
    /// to 5 (last) (see [`CallOptions::priority`](crate::CallOptions::priority)).
    pub fn priority(mut self, priority: u8) -> Self {
        self.options_mut().priority = Some(priority);
        self
    }

    /// The attempt limit of every call that sets none itself.
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.options_mut().max_attempts = Some(attempts);
        self
    }

    /// How long the result of every call that says nothing itself is kept
    /// for fetch-by-id.
    pub fn keep_result(mut self, ttl: Duration) -> Self {
        self.options_mut().result_ttl = Some(ttl);
        self
    }

    /// How long the idempotency keys of calls that have one (and say
    /// nothing themselves) are remembered. Keys are set per call
    /// ([`Call::idempotency_key`]): one for every call would run only the
    /// first.
    pub fn idempotency_ttl(mut self, ttl: Duration) -> Self {
        self.options_mut().idempotency_ttl = Some(ttl);
        self
    }

    fn options_mut(&mut self) -> &mut CallOptions {
        self.options.get_or_insert_with(Default::default)
    }

    /// Encodes every call (refusing the batch at the first bad one) and
    /// registers waiters for calls that answer.
    async fn encode(
        self,
        mode: Mode,
    ) -> Result<Option<(Client, Vec<Encoded>, Payloads)>, BatchError> {
        let Some(client) = self.client else {
            // No call could be read: the first is refused; or no call at all.
            return match self.items.into_iter().next() {
                Some(Err(e)) => Err(BatchError::refused(0, 1, e)),
                _ => Ok(None),
            };
        };
        let calls = self.items.iter().flatten().map(|p| (&p.job, p.options()));
        client
            .know_batch_shards(calls, self.options.as_deref())
            .await;
        let (calls, payloads) = client.encode_batch(self.items, self.options.as_deref(), mode)?;
        Ok(Some((client, calls, payloads)))
    }
}

impl<T, E, M> Extend<Call<T, E, M>> for Batch<T, E, M> {
    fn extend<I: IntoIterator<Item = Call<T, E, M>>>(&mut self, calls: I) {
        let calls = calls.into_iter();
        self.items.reserve(calls.size_hint().0);
        for call in calls {
            self.push(call);
        }
    }
}

impl<T, E, M> FromIterator<Call<T, E, M>> for Batch<T, E, M> {
    fn from_iter<I: IntoIterator<Item = Call<T, E, M>>>(calls: I) -> Self {
        let mut batch = Batch::new();
        batch.extend(calls);
        batch
    }
}

impl Batch<serde_json::Value, serde_json::Value, Answered> {
    /// Adds a call of any answer type, answered here as JSON: a batch of
    /// calls of several jobs that answer differently.
    pub fn push_any<T, E>(&mut self, call: Call<T, E, Answered>) -> &mut Self {
        self.add(call.parts());
        self
    }
}

impl OneWayBatch {
    /// Sends every call; their ids, in order, once all are queued.
    pub async fn send(self) -> Result<Vec<JobId>, BatchError> {
        let Some((client, calls, payloads)) = self.encode(Mode::OneWay).await? else {
            return Ok(Vec::new());
        };
        let (fates, error) = client.send_batch(&calls, &payloads).await;
        match error {
            None => Ok(calls.into_iter().map(|c| c.id).collect()),
            Some(error) => Err(BatchError::partial(error, told(&calls, fates))),
        }
    }
}

impl IntoFuture for OneWayBatch {
    type Output = Result<Vec<JobId>, BatchError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

impl<T, E> Batch<T, E, Answered>
where
    T: DeserializeOwned + Send + 'static,
    E: DeserializeOwned + Send + 'static,
{
    /// Sends every call without waiting for the answers: a [`Pending`]
    /// handle per call, in order (each result is kept for the client's
    /// result TTL unless the calls say, so it can be fetched by id).
    pub async fn send(self) -> Result<Vec<Pending<T, E>>, BatchError> {
        let Some((client, calls, mut payloads)) = self.encode(Mode::Handles).await? else {
            return Ok(Vec::new());
        };
        let receivers = client.wait_for_batch(&calls);
        let (fates, error) = client.send_batch(&calls, &payloads).await;
        payloads.sent();
        if let Some(error) = error {
            client.forget_waiters(calls.iter().map(|c| &c.id));
            return Err(BatchError::partial(error, told(&calls, fates)));
        }
        Ok(calls
            .into_iter()
            .zip(receivers)
            .map(|(call, rx)| client.pending_for(&payloads, call, rx).0)
            .collect())
    }

    /// Sends every call and waits for every answer, in order.
    async fn answers(self) -> Result<Vec<Result<T, CallError<E>>>, BatchError> {
        let Some((client, calls, mut payloads)) = self.encode(Mode::Wait).await? else {
            return Ok(Vec::new());
        };
        let receivers = client.wait_for_batch(&calls);
        let (fates, error) = client.send_batch(&calls, &payloads).await;
        // Sent: the messages are not needed while the answers come.
        payloads.sent();
        let why = error.map(|e| e.to_string()).unwrap_or_default();
        let waits = calls
            .into_iter()
            .zip(receivers)
            .zip(fates)
            .map(|(sent, fate)| {
                let (call, rx) = sent;
                let (client, why, payloads) = (&client, &why, &payloads);
                async move {
                    let job = *payloads.job(&call);
                    let unsent = match fate {
                        Fate::Queued => None,
                        other => Some(other.of(call.id.clone())),
                    };
                    let (pending, observed) = client.pending_for(payloads, call, rx);
                    let answer = match unsent {
                        None => pending.wait().await,
                        Some(sent) => {
                            drop(pending);
                            Err(CallError::Rpc(sent.into_error(why)))
                        }
                    };
                    client.observed(observed, &job, &answer);
                    answer
                }
            });
        Ok(futures_util::future::join_all(waits).await)
    }
}

impl<T, E> IntoFuture for Batch<T, E, Answered>
where
    T: DeserializeOwned + Send + 'static,
    E: DeserializeOwned + Send + 'static,
{
    type Output = Result<Vec<Result<T, CallError<E>>>, BatchError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    /// Sends every call and waits for every answer, in order: a call that
    /// fails is an `Err` in its place. The batch itself fails only when
    /// nothing was sent because a call was refused.
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.answers())
    }
}

impl Client {
    /// An empty batch sent through this client: push calls of any jobs
    /// (of one answer type, or one-way), then `.await` it.
    pub fn batch<T, E, M>(&self) -> Batch<T, E, M> {
        Batch {
            client: Some(self.clone()),
            ..Batch::default()
        }
    }

    /// One-way sends of `job` (`Service.job`), one per parameters object,
    /// in one round trip: `.await` gives their ids in order (options for
    /// all of them go on the batch first).
    pub fn send_many(
        &self,
        job: &str,
        params: impl IntoIterator<Item = serde_json::Value>,
    ) -> OneWayBatch {
        self.many(job, params)
    }

    /// Calls of `job` (`Service.job`), one per parameters object, in one
    /// round trip: `.await` gives every answer in order, each a `Result`
    /// (an application error is `CallError::App` with its value).
    pub fn call_many(
        &self,
        job: &str,
        params: impl IntoIterator<Item = serde_json::Value>,
    ) -> Batch<serde_json::Value, serde_json::Value> {
        self.many(job, params)
    }

    fn many<T, E, M>(
        &self,
        job: &str,
        params: impl IntoIterator<Item = serde_json::Value>,
    ) -> Batch<T, E, M> {
        let mut batch = self.batch();
        let job = untyped_ref(job);
        for params in params {
            let job = match &job {
                Ok(job) => Ok(*job),
                Err(e) => Err(Error::Config(e.to_string())),
            };
            batch.push(Call::new(self, job, params));
        }
        batch
    }

    /// The handle of a sent call of a batch, and its observation.
    fn pending_for<T, E>(
        &self,
        batch: &Payloads,
        call: Encoded,
        rx: tokio::sync::oneshot::Receiver<Vec<u8>>,
    ) -> (Pending<T, E>, Observed) {
        let failures = call
            .kept
            .then(|| self.inner.inbox.read_failures.subscribe());
        let deadline = batch.deadline(&call);
        let pending = self.pending_reply(
            batch.job(&call),
            call.id,
            rx,
            failures,
            call.timeout,
            deadline,
        );
        let observed = call.observed.map_or_else(Observed::none, |o| *o);
        (pending, observed)
    }
}
