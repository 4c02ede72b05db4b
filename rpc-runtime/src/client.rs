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

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::backend::{self, Backend, BrokerConfig, DeadLetter, PushedAndPopped, Reader};
use crate::call::{CallOptions, JobId, JobRef};
use crate::error::{CallError, Error, ErrorKind, Never};
use crate::wire::{self, JobName, OutgoingJob, ReplyMessage, PROTOCOL_VERSION};

/// Replies fetched per blocking read.
const REPLY_BATCH: usize = 256;
/// How long one blocking read of the inbox waits before looping (to notice shutdown).
const REPLY_POLL: Duration = Duration::from_secs(1);
/// How long the read sent along with a leading call's job blocks. A job
/// that Redis refused is only reported when that read returns, so it is
/// short; a slower job's leader just reads again.
const LEAD_FIRST_WAIT: Duration = Duration::from_millis(100);

/// Builds a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    broker: BrokerConfig,
    default_timeout: Duration,
    max_payload: usize,
    result_ttl: Duration,
    max_attempts: Option<u32>,
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

    /// Connects.
    pub async fn connect(self) -> Result<Client, Error> {
        let backend = backend::connect(&self.broker).await?;
        Ok(Client::from_backend(backend, self))
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
            .field("inbox", &self.inner.inbox.name)
            .finish()
    }
}

struct ClientInner {
    backend: Arc<dyn Backend>,
    inbox: Arc<Inbox>,
    router: Mutex<Option<tokio::task::JoinHandle<()>>>,
    config: ClientBuilder,
}

impl Drop for ClientInner {
    fn drop(&mut self) {
        if let Some(router) = self.router.get_mut().ok().and_then(Option::take) {
            router.abort();
        }
    }
}

/// A client's reply inbox and who reads it.
struct Inbox {
    name: String,
    state: Mutex<InboxState>,
    /// Tells the router that calls wait and the reader is free.
    wake_router: tokio::sync::Notify,
    /// Counts failed reads of the inbox. A read cut short by a connection
    /// failure may have popped replies that never arrived; calls whose
    /// result is kept then look for it too (see [`Pending::wait_reply`]).
    read_failures: tokio::sync::watch::Sender<u64>,
}

#[derive(Default)]
struct InboxState {
    /// Calls whose replies someone else reads for them.
    waiters: HashMap<Box<str>, oneshot::Sender<Vec<u8>>>,
    /// Whether a leading call or the router holds the reader.
    busy: bool,
    /// The reader while nobody holds it (`None` before its first use and
    /// after its connection failed: the next holder opens a new one).
    idle: Option<Box<dyn Reader>>,
}

impl Inbox {
    /// Takes the reader if nobody holds it.
    fn try_lease(self: &Arc<Self>) -> Option<ReaderLease> {
        self.lease_if(|_| true)
    }

    /// Takes the reader if nobody holds it and calls wait for replies.
    fn try_lease_for_waiters(self: &Arc<Self>) -> Option<ReaderLease> {
        self.lease_if(|state| !state.waiters.is_empty())
    }

    fn lease_if(self: &Arc<Self>, wanted: impl FnOnce(&InboxState) -> bool) -> Option<ReaderLease> {
        let mut state = lock(&self.state);
        if state.busy || !wanted(&state) {
            return None;
        }
        state.busy = true;
        Some(ReaderLease {
            inbox: self.clone(),
            reader: state.idle.take(),
            held: true,
            reading: false,
        })
    }

    /// Hands each reply to its waiting call; returns the one for `mine`
    /// (the holder's own call), if it is among them.
    fn route(&self, replies: Vec<Vec<u8>>, mine: Option<&str>) -> Option<Vec<u8>> {
        let mut own = None;
        // One lock per batch, not per reply; the sends (which wake the
        // callers) happen after it is released.
        let mut ready = Vec::with_capacity(replies.len());
        {
            let mut state = lock(&self.state);
            for body in replies {
                let waiter = match reply_id(&body) {
                    Some(id) if Some(&*id) == mine => None,
                    Some(id) => match state.waiters.remove(&*id) {
                        Some(tx) => Some(tx),
                        // Late (its call gave up) or a duplicate: dropped.
                        None => continue,
                    },
                    None => {
                        tracing::warn!("dropping an unreadable reply");
                        continue;
                    }
                };
                match waiter {
                    Some(tx) => ready.push((tx, body)),
                    None => own = Some(body),
                }
            }
        }
        for (tx, body) in ready {
            // The caller may have given up (deadline); that is fine.
            let _ = tx.send(body);
        }
        own
    }
}

/// The inbox's reader, held by one call or the router. Dropping it gives
/// it back, and wakes the router if calls are left waiting, so a holder
/// that is cancelled or fails cannot strand them.
struct ReaderLease {
    inbox: Arc<Inbox>,
    /// The connection; `None` until opened, and after it failed.
    reader: Option<Box<dyn Reader>>,
    /// Whether this lease still holds the reader.
    held: bool,
    /// Whether a read is in flight on it: a lease dropped then (its holder
    /// cancelled) throws the connection away, since a blocking read left on
    /// it would hold up the next command and could pop a reply nobody gets.
    reading: bool,
}

impl ReaderLease {
    /// Pops replies as [`Reader::pop_replies`] does, opening the reader if
    /// needed. (After a failure the reader reconnects by itself.)
    async fn pop(
        &mut self,
        backend: &dyn Backend,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Vec<u8>>, Error> {
        let reader = open(&mut self.reader, backend).await?;
        self.reading = true;
        let popped = reader.pop_replies(&self.inbox.name, max, wait).await;
        self.reading = false;
        if popped.is_err() {
            self.inbox.read_failures.send_modify(|n| *n += 1);
        }
        popped
    }

    /// Pushes a job and pops replies as [`Reader::push_and_pop`] does,
    /// opening the reader if needed (`Err` if it cannot be opened).
    async fn push_and_pop(
        &mut self,
        backend: &dyn Backend,
        queue: &str,
        payload: &[u8],
        max: usize,
        wait: Duration,
    ) -> Result<PushedAndPopped, Error> {
        let reader = open(&mut self.reader, backend).await?;
        self.reading = true;
        let sent = reader
            .push_and_pop(queue, payload, &self.inbox.name, max, wait)
            .await;
        self.reading = false;
        if sent.popped.is_err() {
            self.inbox.read_failures.send_modify(|n| *n += 1);
        }
        Ok(sent)
    }

    /// Gives the reader back, unless calls still wait: then keeps it (the
    /// router reads on) and says so.
    fn release_if_idle(&mut self) -> bool {
        self.give_back(true)
    }

    /// Gives the reader back (with its connection, unless a read on it was
    /// cut short) and wakes the router if calls wait; with `only_if_idle`,
    /// only when none do.
    fn give_back(&mut self, only_if_idle: bool) -> bool {
        let mut state = lock(&self.inbox.state);
        if only_if_idle && !state.waiters.is_empty() {
            return false;
        }
        state.busy = false;
        state.idle = if self.reading {
            None
        } else {
            self.reader.take()
        };
        self.held = false;
        if !state.waiters.is_empty() {
            self.inbox.wake_router.notify_one();
        }
        true
    }

    /// Gives the reader back after registering a waiter for `id`, whose
    /// reply somebody else must now read.
    fn release_waiting(self, id: &JobId) -> oneshot::Receiver<Vec<u8>> {
        let (tx, rx) = oneshot::channel();
        lock(&self.inbox.state)
            .waiters
            .insert(id.as_str().into(), tx);
        // Drop gives the reader back and wakes the router.
        rx
    }
}

/// The reader in `slot`, opened first if there is none.
async fn open<'r>(
    slot: &'r mut Option<Box<dyn Reader>>,
    backend: &dyn Backend,
) -> Result<&'r mut Box<dyn Reader>, Error> {
    match slot {
        Some(reader) => Ok(reader),
        None => Ok(slot.insert(backend.open_reader().await?)),
    }
}

impl Drop for ReaderLease {
    fn drop(&mut self) {
        if self.held {
            self.give_back(false);
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

    fn from_backend(backend: Arc<dyn Backend>, config: ClientBuilder) -> Client {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let inbox = Arc::new(Inbox {
            name: backend.inbox_name(&id),
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
            }),
        }
    }

    /// The broker this client talks to.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.inner.backend
    }

    /// Number of calls waiting for a reply to be routed to them (for
    /// metrics and leak tests); a call reading its own reply is not counted.
    pub fn in_flight(&self) -> usize {
        lock(&self.inner.inbox.state).waiters.len()
    }

    // ----- untyped API (the old library's) -----

    /// Fire and forget: enqueue `job` (`Service.job`) with `data` and return its id.
    pub async fn call(&self, job: &str, data: serde_json::Value) -> Result<JobId, Error> {
        self.send_one_way(&untyped_ref(job)?, &data, &CallOptions::default())
            .await
    }

    /// Call `job` with `data` and wait for the answer.
    pub async fn call_and_wait(
        &self,
        job: &str,
        data: serde_json::Value,
    ) -> Result<Response, Error> {
        self.call_and_wait_with(job, data, &CallOptions::default())
            .await
    }

    /// [`Client::call_and_wait`] with options.
    pub async fn call_and_wait_with(
        &self,
        job: &str,
        data: serde_json::Value,
        options: &CallOptions,
    ) -> Result<Response, Error> {
        let job_ref = untyped_ref(job)?;
        let (id, body) = self.call_raw(&job_ref, &data, options, true).await?;
        let data = decode_reply::<serde_json::Value, serde_json::Value>(label(&job_ref), &body)
            .map_err(|e| untyped_error(job, e))?;
        let response_key = self.inner.backend.result_name(id.as_str());
        Ok(Response {
            data,
            id,
            response_key,
        })
    }

    /// Send `job` without waiting; the handle can be awaited later.
    pub async fn send(
        &self,
        job: &str,
        data: serde_json::Value,
    ) -> Result<Pending<serde_json::Value, serde_json::Value>, Error> {
        self.send_typed(&untyped_ref(job)?, &data, &CallOptions::default())
            .await
    }

    // ----- typed API (what generated clients call) -----

    /// Calls a job and waits for its typed answer.
    pub async fn call_typed<Req, T, E>(
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
        let (_, body) = self.call_raw(job, request, options, false).await?;
        decode_reply(label(job), &body)
    }

    /// Sends a job and returns a handle to its answer; the result is kept for
    /// the client's result TTL so other processes can fetch it by id.
    pub async fn send_typed<Req, T, E>(
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

    /// Sends a one-way job and returns once it is enqueued.
    pub async fn send_one_way<Req>(
        &self,
        job: &JobRef,
        request: &Req,
        options: &CallOptions,
    ) -> Result<JobId, Error>
    where
        Req: Serialize + ?Sized,
    {
        let id = JobId::new_random();
        let (payload, timeout) = self.encode(job, &id, request, options, None, Duration::ZERO)?;
        // Even enqueueing is bounded by the call's timeout: with the broker
        // down, reconnect attempts must not hold the caller past it.
        let deadline = tokio::time::Instant::now() + timeout;
        push_until(&*self.inner.backend, job, &id, &payload, deadline, timeout).await?;
        Ok(id)
    }

    /// Re-attaches to a call sent earlier, possibly by another process, by its
    /// id. Awaiting the handle polls the kept result until the client's
    /// default timeout.
    pub fn pending<T, E>(&self, id: JobId) -> Pending<T, E> {
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
        let (id, payload) = wire::for_replay(&dead.payload).ok_or_else(|| Error::Codec {
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
        let pending = self.pending::<serde_json::Value, serde_json::Value>(id.clone());
        Ok(pending
            .try_fetch()
            .await?
            .map(|r| r.map_err(|e| untyped_error("", e))))
    }

    fn timeout_for(&self, job: &JobRef, options: &CallOptions) -> Duration {
        options
            .timeout
            .or(job.timeout_ms.map(Duration::from_millis))
            .unwrap_or(self.inner.config.default_timeout)
    }

    fn encode<Req: Serialize + ?Sized>(
        &self,
        job: &JobRef,
        id: &JobId,
        request: &Req,
        options: &CallOptions,
        reply_to: Option<&str>,
        result_ttl: Duration,
    ) -> Result<(Vec<u8>, Duration), Error> {
        let timeout = self.timeout_for(job, options);
        let name = JobName {
            service: job.service,
            job: job.job,
        };
        // One pass into one buffer: the parameters are serialized in place.
        let message = OutgoingJob {
            v: PROTOCOL_VERSION,
            id: id.as_str(),
            job: name,
            params: request,
            reply_to,
            // The deadline twice: as time left, which workers measure from
            // the broker's timestamp of the entry (no clock of ours
            // involved), and as an absolute time for older workers.
            deadline_ms: Some(wire::unix_ms(SystemTime::now() + timeout)),
            timeout_ms: Some(timeout.as_millis() as u64),
            attempt: 1,
            max_attempts: options
                .max_attempts
                .or(job.max_attempts)
                .or(self.inner.config.max_attempts),
            result_ttl_ms: result_ttl.as_millis() as u64,
            meta: &options.metadata,
        };
        let mut payload = Vec::with_capacity(256);
        serde_json::to_writer(&mut payload, &message)
            .map_err(|e| Error::codec(format!("encode the request for `{name}`"), e))?;
        if payload.len() > self.inner.config.max_payload {
            return Err(Error::PayloadTooLarge {
                job: name.to_string(),
                size: payload.len(),
                limit: self.inner.config.max_payload,
            });
        }
        Ok((payload, timeout))
    }

    fn result_ttl(&self, options: &CallOptions, keep: bool) -> Duration {
        match options.result_ttl {
            Some(ttl) => ttl,
            None if keep => self.inner.config.result_ttl,
            None => Duration::ZERO,
        }
    }

    async fn send_inner<Req, T, E>(
        &self,
        job: &JobRef,
        request: &Req,
        options: &CallOptions,
        keep: bool,
    ) -> Result<Pending<T, E>, Error>
    where
        Req: Serialize + ?Sized,
    {
        let call = self.encode_call(job, request, options, keep)?;
        let kept = !self.result_ttl(options, keep).is_zero();
        self.send_encoded(
            job,
            call.id,
            &call.payload,
            kept,
            call.timeout,
            call.deadline,
        )
        .await
    }

    /// Encodes a call that expects a reply, under a fresh id, and sets its
    /// deadline.
    fn encode_call<Req>(
        &self,
        job: &JobRef,
        request: &Req,
        options: &CallOptions,
        keep: bool,
    ) -> Result<OutgoingCall, Error>
    where
        Req: Serialize + ?Sized,
    {
        let id = JobId::new_random();
        let (payload, timeout) = self.encode(
            job,
            &id,
            request,
            options,
            Some(&self.inner.inbox.name),
            self.result_ttl(options, keep),
        )?;
        Ok(OutgoingCall {
            id,
            payload,
            timeout,
            deadline: tokio::time::Instant::now() + timeout,
        })
    }

    /// Registers a waiter for `id`, then sends its message over the shared
    /// connection; the router reads the reply.
    async fn send_encoded<T, E>(
        &self,
        job: &JobRef,
        id: JobId,
        payload: &[u8],
        kept: bool,
        timeout: Duration,
        deadline: tokio::time::Instant,
    ) -> Result<Pending<T, E>, Error> {
        // Watch for failed reads from before the reply can come.
        let failures = kept.then(|| self.inner.inbox.read_failures.subscribe());
        // Register before sending: a fast worker may answer before push_job returns.
        let (tx, rx) = oneshot::channel();
        self.wait_for(&id, tx);
        if let Err(e) = push_until(&*self.inner.backend, job, &id, payload, deadline, timeout).await
        {
            lock(&self.inner.inbox.state).waiters.remove(id.as_str());
            return Err(e);
        }
        Ok(self.pending_reply(job, id, rx, failures, timeout, deadline))
    }

    /// A handle to a call whose reply will be routed to `rx`; `failures`
    /// (for a call whose result is kept) watches the inbox's failed reads.
    fn pending_reply<T, E>(
        &self,
        job: &JobRef,
        id: JobId,
        rx: oneshot::Receiver<Vec<u8>>,
        failures: Option<tokio::sync::watch::Receiver<u64>>,
        timeout: Duration,
        deadline: tokio::time::Instant,
    ) -> Pending<T, E> {
        Pending {
            client: self.clone(),
            id,
            job: label(job),
            rx: Some(rx),
            failures,
            timeout,
            deadline,
            _types: PhantomData,
        }
    }

    /// Registers a waiter whose reply the router (or a leading call) reads.
    fn wait_for(&self, id: &JobId, tx: oneshot::Sender<Vec<u8>>) {
        let free = {
            let mut state = lock(&self.inner.inbox.state);
            state.waiters.insert(id.as_str().into(), tx);
            !state.busy
        };
        self.ensure_router();
        if free {
            self.inner.inbox.wake_router.notify_one();
        }
    }

    /// Sends a job and waits for its reply: leads if the reader is free,
    /// else waits for the reply to be routed. Returns the call id and the
    /// reply envelope.
    async fn call_raw<Req>(
        &self,
        job: &JobRef,
        request: &Req,
        options: &CallOptions,
        keep: bool,
    ) -> Result<(JobId, Vec<u8>), Error>
    where
        Req: Serialize + ?Sized,
    {
        let OutgoingCall {
            id,
            payload,
            timeout,
            deadline,
        } = self.encode_call(job, request, options, keep)?;
        let kept = !self.result_ttl(options, keep).is_zero();
        let payload = match self.inner.inbox.try_lease() {
            None => payload,
            Some(lease) => {
                // The lead runs to its end even if this call is dropped or
                // times out first (see `Lead`), so a read in flight loses no
                // reply.
                let lead = Lead::new(
                    self.clone(),
                    lease,
                    job.service,
                    payload,
                    id.clone(),
                    deadline,
                );
                match tokio::time::timeout_at(deadline, lead).await {
                    Ok(Led::Reply(body)) => return Ok((id, body)),
                    Ok(Led::TimedOut) | Err(_) => return Err(timed_out(label(job), &id, timeout)),
                    Ok(Led::Waiting(rx)) => {
                        // The lead's read failed: its own reply may be lost.
                        let failures = kept.then(|| {
                            let mut failures = self.inner.inbox.read_failures.subscribe();
                            failures.mark_changed();
                            failures
                        });
                        let pending: Pending<(), ()> =
                            self.pending_reply(job, id.clone(), rx, failures, timeout, deadline);
                        return pending.wait_reply().await.map(|body| (id, body));
                    }
                    // Refused, or unknown whether it was queued: send it the
                    // ordinary way (a duplicate is harmless: same call id).
                    Ok(Led::NotSent(payload)) => payload,
                }
            }
        };
        let pending = self
            .send_encoded::<(), ()>(job, id.clone(), &payload, kept, timeout, deadline)
            .await?;
        pending.wait_reply().await.map(|body| (id, body))
    }

    fn ensure_router(&self) {
        let mut router = lock(&self.inner.router);
        if router.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        let backend = self.inner.backend.clone();
        let inbox = Arc::downgrade(&self.inner.inbox);
        *router = Some(tokio::spawn(route_replies(backend, inbox)));
    }
}

/// A call encoded and ready to send.
struct OutgoingCall {
    id: JobId,
    payload: Vec<u8>,
    timeout: Duration,
    deadline: tokio::time::Instant,
}

/// How a leading call ended.
enum Led {
    /// Its reply.
    Reply(Vec<u8>),
    /// The job went out but the read failed: the reply will be routed here.
    Waiting(oneshot::Receiver<Vec<u8>>),
    /// The job may not be queued (Redis refused it, or the connection
    /// failed first); here is the message to send again.
    NotSent(Vec<u8>),
    /// The deadline passed with no reply.
    TimedOut,
}

/// A leading call: its job and the read of the inbox, run to the end even
/// if the caller goes away. Dropped unfinished (the caller timed out or was
/// cancelled), it finishes in a task of its own, so a blocking read in
/// flight, which may already have popped replies of other calls, is always
/// read to its end and routed.
struct Lead {
    run: Option<std::pin::Pin<Box<dyn Future<Output = Led> + Send>>>,
}

impl Lead {
    fn new(
        client: Client,
        lease: ReaderLease,
        queue: &'static str,
        payload: Vec<u8>,
        id: JobId,
        deadline: tokio::time::Instant,
    ) -> Lead {
        Lead {
            run: Some(Box::pin(lead(client, lease, queue, payload, id, deadline))),
        }
    }
}

impl Future for Lead {
    type Output = Led;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Led> {
        let Some(run) = self.run.as_mut() else {
            return std::task::Poll::Pending;
        };
        let led = std::task::ready!(run.as_mut().poll(cx));
        self.run = None;
        std::task::Poll::Ready(led)
    }
}

impl Drop for Lead {
    fn drop(&mut self) {
        if let Some(run) = self.run.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(run);
                }
                // No runtime left to finish it: dropping the lease gives
                // the reader back (its connection goes with it).
                Err(_) => drop(run),
            }
        }
    }
}

async fn lead(
    client: Client,
    mut lease: ReaderLease,
    queue: &'static str,
    payload: Vec<u8>,
    id: JobId,
    deadline: tokio::time::Instant,
) -> Led {
    let inbox = &client.inner.inbox;
    let backend = &*client.inner.backend;
    let wait = deadline
        .saturating_duration_since(tokio::time::Instant::now())
        .min(LEAD_FIRST_WAIT);
    // One reply is what a lone call waits for, and popping one is cheaper
    // for Redis; later reads, if any, take what has piled up.
    let sent = match lease.push_and_pop(backend, queue, &payload, 1, wait).await {
        Ok(sent) => sent,
        Err(e) => {
            tracing::debug!(error = %e, "reply reader cannot connect; sending the ordinary way");
            return Led::NotSent(payload);
        }
    };
    if let Err(e) = sent.pushed {
        tracing::debug!(error = %e, "sending along with the read failed; sending the ordinary way");
        if let Ok(replies) = sent.popped {
            inbox.route(replies, None);
        }
        return Led::NotSent(payload);
    }
    let mut popped = sent.popped;
    loop {
        match popped {
            Ok(replies) => {
                if let Some(body) = inbox.route(replies, Some(id.as_str())) {
                    return Led::Reply(body);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "reply reader failed; the router reads on");
                client.ensure_router();
                return Led::Waiting(lease.release_waiting(&id));
            }
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left < Duration::from_millis(1) {
            return Led::TimedOut;
        }
        popped = lease.pop(backend, REPLY_BATCH, left.min(REPLY_POLL)).await;
    }
}

/// Enqueues a job message, giving up at the call's deadline (a broker that
/// is down may otherwise keep a reconnecting command waiting for seconds).
async fn push_until(
    backend: &dyn Backend,
    job: &JobRef,
    id: &JobId,
    payload: &[u8],
    deadline: tokio::time::Instant,
    timeout: Duration,
) -> Result<(), Error> {
    match tokio::time::timeout_at(deadline, backend.push_job(job.service, payload)).await {
        Ok(pushed) => pushed,
        Err(_) => Err(timed_out(label(job), id, timeout)),
    }
}

/// The router task: while calls wait for replies and no leading call holds
/// the reader, block on the inbox and hand each reply to its waiter.
async fn route_replies(backend: Arc<dyn Backend>, inbox: std::sync::Weak<Inbox>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let Some(ib) = inbox.upgrade() else { return };
        // Register before looking, so a wake-up sent in between is kept.
        let notified = ib.wake_router.notified();
        let Some(mut lease) = ib.try_lease_for_waiters() else {
            notified.await;
            continue;
        };
        loop {
            match lease.pop(&*backend, REPLY_BATCH, REPLY_POLL).await {
                Ok(replies) => {
                    backoff = Duration::from_millis(50);
                    ib.route(replies, None);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reply reader failed; reconnecting");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
            if lease.release_if_idle() {
                break;
            }
            // Let the woken callers run before the next blocking read is
            // sent: its write is off the callers' critical path.
            tokio::task::yield_now().await;
        }
    }
}

/// The call id of a reply, borrowed from it when possible.
///
/// Replies from this crate's workers start with `{"v":1,"id":"` (see
/// [`wire::encode_ok_reply`]); an id without escapes is then read straight
/// from the bytes. Anything else goes through the JSON parser.
fn reply_id(body: &[u8]) -> Option<std::borrow::Cow<'_, str>> {
    const HEAD: &[u8] = b"{\"v\":1,\"id\":\"";
    if let Some(rest) = body.strip_prefix(HEAD) {
        if let Some(end) = rest.iter().position(|&b| b == b'"') {
            let id = &rest[..end];
            if !id.contains(&b'\\') {
                if let Ok(id) = std::str::from_utf8(id) {
                    return Some(std::borrow::Cow::Borrowed(id));
                }
            }
        }
    }
    #[derive(serde::Deserialize)]
    struct IdOnly<'a> {
        #[serde(borrow)]
        id: std::borrow::Cow<'a, str>,
    }
    if !wire::is_json_object(body) {
        return None;
    }
    serde_json::from_slice::<IdOnly>(body).ok().map(|r| r.id)
}

/// A call in flight: await [`Pending::wait`] for its answer, or keep its
/// [`Pending::id`] and fetch the result later (from any process) while it is kept.
pub struct Pending<T, E = Never> {
    client: Client,
    id: JobId,
    job: JobLabel,
    rx: Option<oneshot::Receiver<Vec<u8>>>,
    /// For a call whose result is kept: the inbox's failed reads.
    failures: Option<tokio::sync::watch::Receiver<u64>>,
    timeout: Duration,
    deadline: tokio::time::Instant,
    _types: PhantomData<fn() -> (T, E)>,
}

impl<T, E> std::fmt::Debug for Pending<T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("id", &self.id)
            .field("job", &format_args!("{}", self.job))
            .finish()
    }
}

impl<T, E> Drop for Pending<T, E> {
    fn drop(&mut self) {
        if self.rx.is_some() {
            lock(&self.client.inner.inbox.state)
                .waiters
                .remove(self.id.as_str());
        }
    }
}

impl<T, E> Pending<T, E> {
    /// Waits for the reply envelope routed to this call, until its deadline.
    async fn wait_reply(mut self) -> Result<Vec<u8>, Error> {
        let Some(mut rx) = self.rx.take() else {
            return Err(Error::Closed);
        };
        let waited = tokio::time::timeout_at(self.deadline, self.reply_or_kept(&mut rx)).await;
        if !matches!(waited, Ok(Ok(_))) {
            // The reader removes the entry when it delivers a reply, so
            // only a call that got none still has one to remove.
            lock(&self.client.inner.inbox.state)
                .waiters
                .remove(self.id.as_str());
        }
        match waited {
            Ok(Ok(body)) => Ok(body),
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => Err(timed_out(self.job, &self.id, self.timeout)),
        }
    }

    /// The reply routed to `rx`. For a call whose result is kept, also the
    /// kept result once a read of the inbox has failed: Redis may have
    /// popped the reply just before the connection broke (a restart, say),
    /// and then it never comes.
    async fn reply_or_kept(
        &mut self,
        rx: &mut oneshot::Receiver<Vec<u8>>,
    ) -> Result<Vec<u8>, oneshot::error::RecvError> {
        let Some(failures) = self.failures.as_mut() else {
            return rx.await;
        };
        tokio::select! {
            reply = &mut *rx => return reply,
            changed = failures.changed() => {
                if changed.is_err() {
                    return rx.await;
                }
            }
        }
        let mut delay = Duration::from_millis(100);
        loop {
            let backend = &self.client.inner.backend;
            tokio::select! {
                reply = &mut *rx => return reply,
                // A broker still down answers with an error: try again later.
                kept = backend.get_result(self.id.as_str()) => {
                    if let Ok(Some(body)) = kept {
                        lock(&self.client.inner.inbox.state)
                            .waiters
                            .remove(self.id.as_str());
                        return Ok(body);
                    }
                }
            }
            tokio::select! {
                reply = &mut *rx => return reply,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }
}

impl<T: DeserializeOwned, E: DeserializeOwned> Pending<T, E> {
    /// The call id.
    pub fn id(&self) -> &JobId {
        &self.id
    }

    /// The key the result is kept under (the old library's `response_key`).
    pub fn response_key(&self) -> String {
        self.client.inner.backend.result_name(self.id.as_str())
    }

    /// Waits for the answer until the call's deadline.
    pub async fn wait(self) -> Result<T, CallError<E>> {
        let job = self.job;
        if self.rx.is_some() {
            let body = self.wait_reply().await?;
            return decode_reply(job, &body);
        }
        // Re-attached by id: poll the kept result.
        let mut delay = Duration::from_millis(20);
        loop {
            // Bounded by the deadline too: a broker that is down must not
            // hold the caller past it.
            let fetched = tokio::time::timeout_at(self.deadline, self.try_fetch()).await;
            match fetched {
                Ok(Ok(Some(result))) => return result,
                Ok(Err(e)) => return Err(e.into()),
                Ok(Ok(None)) | Err(_) => {}
            }
            let now = tokio::time::Instant::now();
            if now >= self.deadline {
                return Err(timed_out(job, &self.id, self.timeout).into());
            }
            tokio::time::sleep(delay.min(self.deadline - now)).await;
            delay = (delay * 2).min(Duration::from_millis(500));
        }
    }

    /// Fetches the kept result now: `None` if it is not there (yet).
    pub async fn try_fetch(&self) -> Result<Option<Result<T, CallError<E>>>, Error> {
        let body = self
            .client
            .inner
            .backend
            .get_result(self.id.as_str())
            .await?;
        Ok(body.map(|b| decode_reply(self.job, &b)))
    }
}

/// The error of a call that got no answer by its deadline.
fn timed_out(job: JobLabel, id: &JobId, after: Duration) -> Error {
    Error::Timeout {
        job: job.to_string(),
        id: id.to_string(),
        after,
    }
}

fn label(job: &JobRef) -> JobLabel {
    JobLabel(Some(JobName {
        service: job.service,
        job: job.job,
    }))
}

/// The job a call is for, for error messages: kept as two static names and
/// formatted only when a message is actually made.
#[derive(Debug, Clone, Copy, Default)]
struct JobLabel(Option<JobName<'static>>);

impl std::fmt::Display for JobLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(name) => name.fmt(f),
            None => Ok(()),
        }
    }
}

/// The result of a reply in exactly the shape [`wire::encode_ok_reply`]
/// writes, `{"v":1,"id":"<id without escapes>","ok":<result>}`, sliced out
/// without parsing the envelope; `None` for any other shape.
fn ok_result(body: &[u8]) -> Option<&[u8]> {
    let rest = body.strip_prefix(b"{\"v\":1,\"id\":\"")?;
    let end = rest.iter().position(|&b| b == b'"')?;
    if rest[..end].contains(&b'\\') {
        return None;
    }
    rest[end + 1..]
        .strip_prefix(b",\"ok\":")?
        .strip_suffix(b"}")
}

fn decode_reply<T: DeserializeOwned, E: DeserializeOwned>(
    job: JobLabel,
    body: &[u8],
) -> Result<T, CallError<E>> {
    // Fast path for the usual reply. Anything it cannot read (another
    // shape, more fields after `ok`, a result of the wrong type) goes
    // through the full parse below, which also makes the error message.
    if let Some(Ok(value)) = ok_result(body).map(serde_json::from_slice::<T>) {
        return Ok(value);
    }
    let reply =
        ReplyMessage::decode(body).map_err(|e| Error::codec("decode a reply envelope", e))?;
    if let Some(ok) = reply.ok {
        return serde_json::from_str(ok.get())
            .map_err(|e| Error::codec(format!("decode the result of `{job}`"), e).into());
    }
    let Some(err) = reply.error else {
        // `"ok": null` is dropped by the Option; that is a unit result.
        return serde_json::from_str("null")
            .map_err(|e| Error::codec(format!("decode the result of `{job}`"), e).into());
    };
    if err.kind == ErrorKind::App {
        if let Some(data) = err.data {
            return match serde_json::from_str::<E>(data.get()) {
                Ok(app) => Err(CallError::App(app)),
                Err(e) => {
                    Err(Error::codec(format!("decode the application error of `{job}`"), e).into())
                }
            };
        }
    }
    Err(Error::Remote {
        job: job.to_string(),
        kind: err.kind,
        message: err.message.into_owned(),
        data: err.data.and_then(|d| serde_json::from_str(d.get()).ok()),
    }
    .into())
}

/// The `JobRef` of an untyped call to `Service.job`.
fn untyped_ref(job: &str) -> Result<JobRef, Error> {
    let (service, name) = split_job(job)?;
    // Untyped calls name jobs at run time; JobRef wants 'static names.
    // Leaking per call would grow without bound, so intern them.
    Ok(JobRef {
        service: intern(service),
        job: intern(name),
        timeout_ms: None,
        max_attempts: None,
    })
}

/// An untyped call's application error, as the runtime error that carries it.
fn untyped_error(job: &str, e: CallError<serde_json::Value>) -> Error {
    match e {
        CallError::Rpc(e) => e,
        CallError::App(data) => Error::Remote {
            job: job.to_owned(),
            kind: ErrorKind::App,
            message: "the job returned its application error".to_owned(),
            data: Some(data),
        },
    }
}

fn split_job(job: &str) -> Result<(&str, &str), Error> {
    match job.split_once('.') {
        Some((service, name)) if !service.is_empty() && !name.is_empty() => Ok((service, name)),
        _ => Err(Error::Codec {
            what: format!("route job `{job}`"),
            reason: "job names are `Service.job`".to_owned(),
        }),
    }
}

fn intern(s: &str) -> &'static str {
    static NAMES: std::sync::OnceLock<Mutex<std::collections::HashSet<&'static str>>> =
        std::sync::OnceLock::new();
    let mut names = lock(NAMES.get_or_init(Default::default));
    if let Some(n) = names.get(s) {
        return n;
    }
    let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_id_fast_path_and_fallback() {
        let ok = wire::encode_ok_reply("abc123", "5");
        assert!(matches!(
            reply_id(&ok),
            Some(std::borrow::Cow::Borrowed("abc123"))
        ));
        let escaped = wire::encode_ok_reply("a\"b", "5");
        assert_eq!(reply_id(&escaped).as_deref(), Some("a\"b"));
        let err = wire::encode_error_reply("e1", ErrorKind::Handler, "m", None);
        assert_eq!(reply_id(&err).as_deref(), Some("e1"));
        let reordered = br#"{"id":"x9","v":1,"ok":1}"#;
        assert_eq!(ok_result(&ok), Some(&b"5"[..]));
        assert_eq!(ok_result(&escaped), None);
        assert_eq!(ok_result(&err), None);
        assert_eq!(ok_result(reordered), None);
        assert_eq!(reply_id(reordered).as_deref(), Some("x9"));
        assert!(reply_id(b"garbage").is_none());
    }

    #[test]
    fn replies_decode_by_the_fast_path_or_the_full_parse() {
        let decode = |body: &[u8]| decode_reply::<i64, Never>(JobLabel::default(), body);
        assert_eq!(decode(&wire::encode_ok_reply("a", "5")).ok(), Some(5));
        // More fields after `ok`: not the fast path's shape; still read.
        assert_eq!(decode(br#"{"v":1,"id":"a","ok":5,"x":1}"#).ok(), Some(5));
        assert_eq!(decode(br#"{"ok":7,"id":"a","v":1}"#).ok(), Some(7));
        // A result of the wrong type is a codec error, whichever path.
        let wrong = decode(&wire::encode_ok_reply("a", "\"five\""));
        assert!(
            matches!(wrong, Err(CallError::Rpc(Error::Codec { .. }))),
            "{wrong:?}"
        );
    }
}
