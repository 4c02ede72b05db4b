//! The caller's side: send jobs, wait for replies.
//!
//! A [`Client`] owns one reply inbox and one reader: a connection for
//! blocking reads of that inbox. Whoever holds the reader reads for everyone
//! and hands each reply to its waiting call by id through a map of oneshot
//! channels. So a thousand calls in flight cost a thousand map entries, not
//! a thousand connections.
//!
//! Who holds the reader: a call that finds it free *leads*: it sends its job
//! and the blocking read of the inbox as one pipeline on the reader's
//! connection, and reads until its own reply comes (routing any others on
//! the way). That is a lone call's whole cost: one write, one round trip, no
//! hand-off between tasks. Calls that find the reader taken send their job
//! over the shared connection and wait for their reply to be routed to
//! them; when the leader is done and calls still wait, a router task takes
//! the reader and reads for them until none is left. The router stops when
//! the last clone of the client is dropped.
//!
//! Every call has a deadline (its timeout, from the call options, the job's
//! schema attribute or the client default). The deadline travels in the
//! message so workers skip expired jobs, and the caller stops waiting at it.

mod call;
mod cancel;
mod follow;
mod interceptor;
mod lead;
mod observe;
mod pending;
mod place;
mod routing;
mod send;
use self::send::Routing;
mod untyped;

pub use self::call::{Answered, Call, OneWay, OneWayCall};
use self::follow::*;
use self::interceptor::Interceptors;
pub use self::interceptor::{Interceptor, Outgoing};
use self::lead::*;
use self::observe::*;
pub use self::pending::Pending;
use self::pending::*;
use self::place::*;
use self::routing::*;
use self::untyped::*;

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::backend::{self, Broker, BrokerConfig, DeadLetter, Enqueue, PushedAndPopped, Reader};
use crate::call::{CallOptions, JobId, JobRef};
use crate::clock::BrokerClock;
use crate::error::{CallError, Error, ErrorKind, Never};
use crate::telemetry::ClientMetrics;
use rpc_protocol::job::JobName;
use rpc_protocol::job::OutgoingJob;
use rpc_protocol::job::PROTOCOL_VERSION;
use rpc_protocol::reply::ReplyMessage;

/// Replies fetched per blocking read.
const REPLY_BATCH: usize = 256;
/// How long one blocking read of the inbox waits before looping (to notice shutdown).
const REPLY_POLL: Duration = Duration::from_secs(1);
/// How long the read sent along with a leading call's job blocks. A job
/// that Redis refused is only reported when that read returns, so it is
/// short; a slower job's leader just reads again.
const LEAD_FIRST_WAIT: Duration = Duration::from_millis(100);
/// How old the sample of the broker's clock may get before the client takes
/// another (in the background; calls go on with the old one meanwhile).
const CLOCK_RESAMPLE: Duration = Duration::from_secs(300);

/// Builds a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    broker: BrokerConfig,
    default_timeout: Duration,
    max_payload: usize,
    result_ttl: Duration,
    max_attempts: Option<u32>,
    client_id_prefix: String,
    metrics: Option<ClientMetrics>,
    interceptors: Interceptors,
}

impl ClientBuilder {
    /// A builder for the broker at `url` (`redis://`, `rediss://`, `memory://`).
    pub fn new(url: impl Into<String>) -> Self {
        ClientBuilder {
            broker: BrokerConfig::new(url),
            default_timeout: Duration::from_secs(30),
            max_payload: 8 * 1024 * 1024,
            result_ttl: Duration::from_secs(300),
            max_attempts: None,
            client_id_prefix: String::new(),
            metrics: None,
            interceptors: Interceptors::default(),
        }
    }

    /// Key prefix (default `rpc`); clients and workers must agree.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.broker.prefix = prefix.into();
        self
    }

    /// Timeout of calls whose options and schema set none (default 30 s).
    pub fn default_timeout(mut self, timeout: Duration) -> Self {
        self.default_timeout = timeout;
        self
    }

    /// Largest request message accepted, in bytes (default 8 MiB).
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    /// How long results of `send_*` calls are kept for fetch-by-id (default 5 min).
    pub fn result_ttl(mut self, ttl: Duration) -> Self {
        self.result_ttl = ttl;
        self
    }

    /// Default attempt limit for calls whose options and schema set none.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// Starts this client's id, and so its inbox key, with `prefix` and a
    /// dash (`rpc:inbox:{tenant-a-<random>}`), so a Redis ACL user can be
    /// limited to its own inboxes (`~rpc:inbox:{tenant-a-*`, see
    /// `deploy/redis/roles.acl`). Letters, digits and `_ . :` only.
    pub fn client_id_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.client_id_prefix = prefix.into();
        self
    }

    /// Counts this client's calls and their latency in `metrics` (see
    /// [`ClientMetrics::register`]); off unless set.
    pub fn metrics(mut self, metrics: ClientMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// How calls are added to a Redis jobs stream (default
    /// [`Enqueue::Auto`]: directly, or through the service's intake once
    /// Redis refuses this client `XADD`, as it does the client ACL role).
    pub fn enqueue(mut self, enqueue: Enqueue) -> Self {
        self.broker.enqueue = enqueue;
        self
    }

    /// Runs `interceptor` on every call this client sends, after those
    /// added before it: to add metadata (a token, a tenant) or refuse the
    /// call (see [`Interceptor`]).
    pub fn interceptor(mut self, interceptor: impl Interceptor) -> Self {
        self.interceptors.push(interceptor);
        self
    }

    /// Connects.
    pub async fn connect(self) -> Result<Client, Error> {
        if !self.client_id_prefix.is_empty()
            && !rpc_protocol::limits::is_client_id(&format!("{}-x", self.client_id_prefix))
        {
            return Err(Error::config(format_args!(
                "client id prefix {:?} has characters an inbox key may not \
                 (letters, digits and `_ - . :` only, 100 at most)",
                self.client_id_prefix
            )));
        }
        let backend = backend::connect(&self.broker).await?;
        let client = Client::from_backend(backend, self);
        // The broker's clock, for `sent_ms` and delayed calls: without a
        // sample this machine's clock stands in (and the next call retries).
        if let Err(e) = client.inner.clock.sample(&*client.inner.backend).await {
            tracing::warn!(error = %e, "could not read the broker's clock; using this machine's until it can");
        }
        Ok(client)
    }
}

/// A connection to the broker for making calls. Cheap to clone; clones share
/// the inbox and the reader.
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("broker", &self.inner.backend.describe())
            .field("inbox", &self.inner.inbox.name())
            .finish()
    }
}

struct ClientInner {
    backend: Arc<dyn Broker>,
    inbox: Arc<Inbox>,
    router: Mutex<Option<tokio::task::JoinHandle<()>>>,
    config: ClientBuilder,
    /// The broker's clock as this client sees it.
    clock: Arc<BrokerClock>,
    /// A sample of the clock is being taken in the background.
    sampling: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for ClientInner {
    fn drop(&mut self) {
        if let Some(router) = self.router.get_mut().ok().and_then(Option::take) {
            router.abort();
        }
    }
}

/// The answer to an untyped [`Client::call_and_wait`]: the old library's
/// `Response { data, id, response_key }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// What the job returned.
    pub data: serde_json::Value,
    /// The call id.
    pub id: JobId,
    /// The key under which the result is kept (while its TTL lasts, when the
    /// call asked for it to be kept).
    pub response_key: String,
}

impl Client {
    /// Connects to `url` with default settings.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), rpc_runtime::Error> {
    /// let client = rpc_runtime::Client::connect("redis://127.0.0.1:6379/").await?;
    /// let reply = client.call_and_wait("Calculator.add", serde_json::json!({"a": 1, "b": 2})).await?;
    /// assert_eq!(reply.data, 3);
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<Client, Error> {
        ClientBuilder::new(url).connect().await
    }

    /// A builder with settings.
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(url)
    }

    fn from_backend(backend: Arc<dyn Broker>, config: ClientBuilder) -> Client {
        let id = fresh_client_id(&config.client_id_prefix);
        let inbox = Arc::new(Inbox {
            name: Mutex::new(backend.inbox_name(&id).into()),
            id_prefix: config.client_id_prefix.clone(),
            state: Mutex::default(),
            wake_router: tokio::sync::Notify::new(),
            read_failures: tokio::sync::watch::Sender::new(0),
        });
        Client {
            inner: Arc::new(ClientInner {
                backend,
                inbox,
                router: Mutex::new(None),
                config,
                clock: Arc::new(BrokerClock::new()),
                sampling: Arc::default(),
            }),
        }
    }

    /// The broker's clock; a sample older than a few minutes is renewed in
    /// the background.
    pub(super) fn broker_clock(&self) -> &BrokerClock {
        use std::sync::atomic::Ordering;
        let inner = &self.inner;
        if !inner.clock.sampled_within(CLOCK_RESAMPLE)
            && !inner.sampling.swap(true, Ordering::Relaxed)
        {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let (clock, backend, sampling) = (
                    inner.clock.clone(),
                    inner.backend.clone(),
                    inner.sampling.clone(),
                );
                rt.spawn(async move {
                    if let Err(e) = clock.sample(&*backend).await {
                        tracing::debug!(error = %e, "could not sample the broker's clock");
                    }
                    sampling.store(false, Ordering::Relaxed);
                });
            } else {
                inner.sampling.store(false, Ordering::Relaxed);
            }
        }
        &inner.clock
    }

    /// A fresh call id: random, after the client's id prefix and a dash
    /// when it has one, so an ACL user limited to `P:result:{tenant-*`
    /// reads its own kept results (docs/SECURITY.md).
    pub(super) fn new_call_id(&self) -> JobId {
        JobId::from(fresh_client_id(&self.inner.config.client_id_prefix))
    }

    /// The broker this client talks to.
    pub fn backend(&self) -> &Arc<dyn Broker> {
        &self.inner.backend
    }

    /// The key of this client's reply inbox now (it changes if something
    /// overwrites the inbox and the client moves to a fresh one).
    pub fn inbox(&self) -> String {
        self.inner.inbox.name().to_string()
    }

    /// Number of calls waiting for a reply to be routed to them (for
    /// metrics and leak tests); a call reading its own reply is not counted.
    pub fn in_flight(&self) -> usize {
        lock(&self.inner.inbox.state).waiters.len()
    }

    // ----- untyped API: jobs by name, JSON in and out -----

    /// A call of `job` (`Service.job`) with `data`: `.await` sends it and
    /// waits for the answer (options go on the [`Call`] first; `.send()`
    /// gives a [`Pending`] handle instead).
    ///
    /// ```no_run
    /// # async fn f(client: rpc_runtime::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let sum = client.call("Calculator.add", serde_json::json!({"a": 1, "b": 2})).await?;
    /// assert_eq!(sum, 3);
    /// # Ok(()) }
    /// ```
    pub fn call(
        &self,
        job: &str,
        data: serde_json::Value,
    ) -> Call<serde_json::Value, serde_json::Value> {
        Call::new(self, untyped_ref(job), &data)
    }

    /// A one-way send of `job` with `data`: `.await` returns its id once it
    /// is queued, and nothing waits for an answer (the old library's
    /// `call(name, data)`).
    pub fn send(&self, job: &str, data: serde_json::Value) -> OneWayCall {
        Call::new(self, untyped_ref(job), &data)
    }

    /// Calls `job` with `data` and waits for the answer, as the old
    /// library's `call_and_wait` did: the answer's `data`, with the call's
    /// `id` and the `response_key` its result is kept under (see
    /// [`Call::response`], which takes options).
    pub async fn call_and_wait(
        &self,
        job: &str,
        data: serde_json::Value,
    ) -> Result<Response, Error> {
        self.call(job, data).response().await
    }

    /// What [`Call::response`] runs.
    pub(super) async fn respond(
        &self,
        job: JobRef,
        data: &serde_json::value::RawValue,
        options: &CallOptions,
    ) -> Result<Response, Error> {
        let observed = self.observe(&job, options);
        let answer = self
            .call_raw(&job, data, options, true, &observed)
            .await
            .map_err(CallError::Rpc)
            .and_then(|(id, body)| {
                decode_reply::<serde_json::Value, serde_json::Value>(label(&job), &body)
                    .map(|data| (id, data))
            });
        self.observed(observed, &job, &answer);
        let name = label(&job).to_string();
        let (id, data) = answer.map_err(|e| untyped_error(&name, e))?;
        let response_key = self.inner.backend.result_name(id.as_str());
        Ok(Response {
            data,
            id,
            response_key,
        })
    }

    // ----- what a Call runs -----

    /// Calls a job and waits for its typed answer.
    pub(crate) async fn call_typed<Req, T, E>(
        &self,
        job: &JobRef,
        request: &Req,
        options: &CallOptions,
    ) -> Result<T, CallError<E>>
    where
        Req: Serialize + ?Sized,
        T: DeserializeOwned,
        E: DeserializeOwned,
    {
        let observed = self.observe(job, options);
        let answer = match self.call_raw(job, request, options, false, &observed).await {
            Ok((_, body)) => decode_reply(label(job), &body),
            Err(e) => Err(CallError::Rpc(e)),
        };
        self.observed(observed, job, &answer);
        answer
    }

    /// Sends a job and returns a handle to its answer; the result is kept for
    /// the client's result TTL so other processes can fetch it by id.
    pub(crate) async fn send_typed<Req, T, E>(
        &self,
        job: &JobRef,
        request: &Req,
        options: &CallOptions,
    ) -> Result<Pending<T, E>, Error>
    where
        Req: Serialize + ?Sized,
        T: DeserializeOwned,
        E: DeserializeOwned,
    {
        self.send_inner(job, request, options, true).await
    }

    /// Sends a one-way job and returns once it is enqueued. Nothing is kept
    /// unless `options.result_ttl` asks for it (then the result can be
    /// fetched by id, though nobody waits on an inbox).
    pub(crate) async fn send_one_way<Req>(
        &self,
        job: &JobRef,
        request: &Req,
        options: &CallOptions,
    ) -> Result<JobId, Error>
    where
        Req: Serialize + ?Sized,
    {
        let id = self.new_call_id();
        let observed = self.observe(job, options);
        observed.span.record("messaging.message.id", id.as_str());
        let (payload, timeout, placement) = self.encode(
            job,
            &id,
            request,
            options,
            Routing {
                reply_to: None,
                result_ttl: self.result_ttl(options, false),
                trace: observed.trace.as_ref(),
            },
        )?;
        // Even enqueueing is bounded by the call's timeout: with the broker
        // down, reconnect attempts must not hold the caller past it.
        let timeout = timeout + placement.delay;
        let deadline = tokio::time::Instant::now() + timeout;
        place_until(&*self.inner.backend, job, &id, &payload, deadline, timeout).await?;
        Ok(id)
    }

    /// Re-attaches to a call sent earlier, possibly by another process, by its
    /// id: awaiting the handle polls the kept result until the client's
    /// default timeout.
    ///
    /// ```no_run
    /// # async fn f(client: rpc_runtime::Client, id: rpc_runtime::JobId) -> Result<(), Box<dyn std::error::Error>> {
    /// let pending: rpc_runtime::Pending<i64> = client.attach(id);
    /// let sum = pending.await?;
    /// # Ok(()) }
    /// ```
    pub fn attach<T, E>(&self, id: JobId) -> Pending<T, E> {
        let timeout = self.inner.config.default_timeout;
        Pending {
            client: self.clone(),
            id,
            job: JobLabel::default(),
            rx: None,
            failures: None,
            timeout,
            deadline: tokio::time::Instant::now() + timeout,
            _types: PhantomData,
        }
    }

    /// Lists up to `max` dead letters of a service, oldest first.
    pub async fn dead_letters(&self, service: &str, max: usize) -> Result<Vec<DeadLetter>, Error> {
        self.inner.backend.dead_letters(service, max).await
    }

    /// Puts a dead-lettered job back on its queue with a fresh attempt count
    /// and no deadline (the old one has passed), then removes the dead
    /// letter. Returns the call id. Sidekiq's "retry from the dead set".
    pub async fn replay_dead_letter(
        &self,
        service: &str,
        dead: &DeadLetter,
    ) -> Result<JobId, Error> {
        let (id, payload) =
            rpc_protocol::job::for_replay(&dead.payload).ok_or_else(|| Error::Codec {
                what: format!("replay dead letter {}", dead.token),
                reason: "it is not a readable job message (it was dead-lettered as unreadable)"
                    .to_owned(),
            })?;
        // Enqueue first, then delete: a crash in between leaves a duplicate
        // dead letter, never a lost job.
        self.inner.backend.push_job(service, &payload).await?;
        self.inner
            .backend
            .remove_dead_letter(service, &dead.token)
            .await?;
        Ok(JobId::from(id))
    }

    /// Reads a kept result by call id without waiting: `None` while it is not
    /// there (not done yet, or expired).
    pub async fn fetch_result(
        &self,
        id: &JobId,
    ) -> Result<Option<Result<serde_json::Value, Error>>, Error> {
        let pending = self.attach::<serde_json::Value, serde_json::Value>(id.clone());
        Ok(pending
            .try_fetch()
            .await?
            .map(|r| r.map_err(|e| untyped_error("", e))))
    }
}

pub(crate) use crate::sync::lock;
