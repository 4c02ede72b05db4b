//! Sending a call: encoding its message once, then either leading (the
//! job and the read of the inbox in one round trip) or waiting for the
//! router to hand the reply over.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use rpc_protocol::job::{JobName, OutgoingJob, PROTOCOL_VERSION};
use rpc_protocol::WriteParams;
use tokio::sync::oneshot;
use tracing::Instrument;

use super::follow::{holder_of, vouched};
use super::handle::Client;
use super::interceptor::Outgoing;
use super::lead::{Lead, Led};
use super::observe::Observed;
use super::pending::Pending;

use super::place::{self, place_until, Placement};
use super::reply::{label, timed_out};

use crate::call::{CallOptions, JobId, JobRef};
use crate::clock::Reading;
use crate::error::Error;
use crate::sync::lock;
use crate::telemetry::{TraceContext, TRACEPARENT};

impl Client {
    pub(super) fn timeout_for(&self, job: &JobRef, options: &CallOptions) -> Duration {
        options
            .timeout
            .or(job.timeout_ms.map(Duration::from_millis))
            .unwrap_or(self.inner.config.default_timeout)
    }

    /// Encodes a call's message: its deadline, when it is due (checked:
    /// see [`Placement::of`]) and its idempotency key. Returns the message,
    /// the timeout and the placement.
    pub(super) fn encode<Req: WriteParams + ?Sized>(
        &self,
        job: &JobRef,
        id: &JobId,
        request: &Req,
        options: &CallOptions,
        routing: Routing<'_>,
    ) -> Result<(Vec<u8>, Duration, Placement), Error> {
        let mut payload = Vec::with_capacity(256);
        let (timeout, placement) =
            self.encode_into(job, id, request, options, routing, &mut payload)?;
        Ok((payload, timeout, placement))
    }

    /// [`Client::encode`], the message appended to `out` (a batch writes
    /// all its messages into one buffer). On an error `out` is as it was.
    pub(super) fn encode_into<Req: WriteParams + ?Sized>(
        &self,
        job: &JobRef,
        id: &JobId,
        request: &Req,
        options: &CallOptions,
        routing: Routing<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(Duration, Placement), Error> {
        let Routing {
            reply_to,
            result_ttl,
            trace,
            now,
        } = routing;
        let timeout = self.timeout_for(job, options);
        let placement = Placement::of(job, options, timeout, now.broker_ms)?;
        // The call's span is recorded: its context replaces the parent's;
        // interceptors may change the metadata. Either way the metadata is
        // copied, only then.
        let changed;
        let interceptors = &self.inner.config.interceptors;
        let meta = if trace.is_none() && interceptors.is_empty() {
            &options.metadata
        } else {
            let mut meta = options.metadata.clone();
            if let Some(trace) = trace {
                meta.insert(TRACEPARENT.to_owned(), trace.traceparent());
            }
            let mut outgoing = Outgoing {
                job,
                id,
                timeout,
                metadata: &mut meta,
            };
            interceptors
                .run(&mut outgoing)
                .map_err(|reason| Error::Refused {
                    job: label(job).to_string(),
                    reason,
                })?;
            changed = meta;
            &changed
        };
        let name = JobName {
            service: job.service,
            job: job.job,
        };
        let key = options.idempotency_key.as_deref();
        // One pass into one buffer: the parameters are serialized in place.
        let message = OutgoingJob {
            // A worker that would run a delayed call at once, or every
            // duplicate of a keyed one, must refuse it instead.
            v: if placement.run_at_ms.is_some() || key.is_some() {
                rpc_protocol::job::PROTOCOL_VERSION_LIFECYCLE
            } else {
                PROTOCOL_VERSION
            },
            id: id.as_str(),
            job: name,
            params: request,
            reply_to,
            // The deadline twice: as time left, which workers measure from
            // when the call was sent (or is due) on the broker's clock (no
            // clock of this machine's involved), and as an absolute time
            // for older workers. A delayed call's time counts from when
            // it is due.
            deadline_ms: u64::try_from((placement.delay + timeout).as_millis())
                .ok()
                .and_then(|ms| now.local_ms.checked_add(ms)),
            timeout_ms: Some(timeout.as_millis() as u64),
            attempt: 1,
            max_attempts: options
                .max_attempts
                .or(job.max_attempts)
                .or(self.inner.config.max_attempts),
            result_ttl_ms: result_ttl.as_millis() as u64,
            meta,
            sent_ms: now.sampled.then_some(now.broker_ms),
            run_at_ms: placement.run_at_ms,
            idempotency_key: key,
            idempotency_ttl_ms: options
                .idempotency_ttl
                .filter(|_| key.is_some())
                .map(|ttl| ttl.as_millis() as u64),
            group: options.group.as_deref(),
            priority: Some(options.priority_of(job)),
        };
        let start = out.len();
        let written = message
            .write_json(out)
            .map_err(|e| Error::codec(format!("encode the request for `{name}`"), e))
            .and_then(|()| {
                let size = out.len() - start;
                if size > self.inner.config.max_payload {
                    return Err(Error::PayloadTooLarge {
                        job: name.to_string(),
                        size,
                        limit: self.inner.config.max_payload,
                    });
                }
                Ok(())
            });
        if let Err(e) = written {
            out.truncate(start);
            return Err(e);
        }
        Ok((timeout, placement))
    }

    /// How long the worker keeps the call's result: the options', else the
    /// client's for a call that keeps (`send`, untyped `call_and_wait`),
    /// else not at all; an idempotent call's at least as long as its key
    /// is held, so every duplicate finds it.
    pub(super) fn result_ttl(&self, options: &CallOptions, keep: bool) -> Duration {
        let ttl = match options.result_ttl {
            Some(ttl) => ttl,
            None if keep => self.inner.config.result_ttl,
            None => Duration::ZERO,
        };
        // Every duplicate of an idempotent call gets the first one's
        // result from where it is kept, as long as the key is remembered.
        match &options.idempotency_key {
            Some(_) => ttl.max(place::idempotency_ttl(options)),
            None => ttl,
        }
    }

    pub(super) async fn send_inner<Req, T, E>(
        &self,
        job: &JobRef,
        request: &Req,
        options: &CallOptions,
        keep: bool,
    ) -> Result<Pending<T, E>, Error>
    where
        Req: WriteParams + ?Sized,
    {
        self.know_shards(job, options).await;
        let observed = self.observe(job, options);
        let call = self.encode_call(job, request, options, keep, &observed)?;
        let kept = !self.result_ttl(options, keep).is_zero();
        self.send_encoded(job, call, kept).await
    }

    /// Encodes a call that expects a reply, under a fresh id, and sets its
    /// deadline.
    pub(super) fn encode_call<Req>(
        &self,
        job: &JobRef,
        request: &Req,
        options: &CallOptions,
        keep: bool,
        observed: &Observed,
    ) -> Result<OutgoingCall, Error>
    where
        Req: WriteParams + ?Sized,
    {
        let route = self.route(job, options);
        let id = self.call_id_for(&route);
        observed.span.record("messaging.message.id", id.as_str());
        let (payload, timeout, placement) = self.encode(
            job,
            &id,
            request,
            options,
            Routing {
                reply_to: Some(&self.inner.inbox.name()),
                result_ttl: self.result_ttl(options, keep),
                trace: observed.trace.as_ref(),
                now: self.broker_clock().read(),
            },
        )?;
        // A delayed call waits for its delay and then its timeout.
        let timeout = timeout + placement.delay;
        Ok(OutgoingCall {
            id,
            queue: route.queue,
            payload,
            timeout,
            deadline: tokio::time::Instant::now() + timeout,
        })
    }

    /// Registers a waiter for the call, then sends its message over the
    /// shared connection; the router reads the reply. A call attached to
    /// another by its idempotency key gets a handle to that one's kept
    /// result instead.
    pub(super) async fn send_encoded<T, E>(
        &self,
        job: &JobRef,
        call: OutgoingCall,
        kept: bool,
    ) -> Result<Pending<T, E>, Error> {
        let OutgoingCall {
            id,
            queue,
            payload,
            timeout,
            deadline,
        } = call;
        // Watch for failed reads from before the reply can come.
        let failures = kept.then(|| self.inner.inbox.read_failures.subscribe());
        // Register before sending: a fast worker may answer before push_job returns.
        let (tx, rx) = oneshot::channel();
        self.wait_for(&id, tx);
        let backend = &*self.inner.backend;
        match place_until(backend, job, &queue, &id, &payload, deadline, timeout).await {
            Ok(()) => Ok(self.pending_reply(job, id, rx, failures, timeout, deadline)),
            Err(e) => {
                lock(&self.inner.inbox.state).waiters.remove(id.as_str());
                Err(e)
            }
        }
    }

    /// A handle to a call whose reply will be routed to `rx`; `failures`
    /// (for a call whose result is kept) watches the inbox's failed reads.
    pub(super) fn pending_reply<T, E>(
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
    pub(super) fn wait_for(&self, id: &JobId, tx: oneshot::Sender<Vec<u8>>) {
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
    pub(super) async fn call_raw<Req>(
        &self,
        job: &JobRef,
        request: &Req,
        options: &CallOptions,
        keep: bool,
        observed: &Observed,
    ) -> Result<(JobId, Vec<u8>), Error>
    where
        Req: WriteParams + ?Sized,
    {
        self.know_shards(job, options).await;
        let call = self.encode_call(job, request, options, keep, observed)?;
        self.call_encoded(job, call, options, keep)
            .instrument(observed.span.clone())
            .await
    }

    /// Sends an encoded call and waits for its reply (see [`Client::call_raw`]).
    async fn call_encoded(
        &self,
        job: &JobRef,
        call: OutgoingCall,
        options: &CallOptions,
        keep: bool,
    ) -> Result<(JobId, Vec<u8>), Error> {
        let (deadline, timeout) = (call.deadline, call.timeout);
        let (id, body) = self.call_until_reply(job, call, options, keep).await?;
        if holder_of(&body).is_none() {
            return Ok((id, body));
        }
        // Boxed: off the plain path, whose future stays small.
        Box::pin(self.follow(job, &body, deadline, timeout)).await
    }

    /// Sends an encoded call and waits for the reply routed to it: leads
    /// if the reader is free, else waits for the router.
    async fn call_until_reply(
        &self,
        job: &JobRef,
        call: OutgoingCall,
        options: &CallOptions,
        keep: bool,
    ) -> Result<(JobId, Vec<u8>), Error> {
        let kept = !self.result_ttl(options, keep).is_zero();
        let lease = self.inner.inbox.try_lease();
        let OutgoingCall {
            id,
            queue,
            payload,
            timeout,
            deadline,
        } = call;
        let payload = match lease {
            None => payload,
            Some(lease) => {
                // The lead runs to its end even if this call is dropped or
                // times out first (see `Lead`), so a read in flight loses no
                // reply.
                let lead = Lead::new(
                    self.clone(),
                    lease,
                    queue.clone(),
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
                        return Box::pin(pending.wait_reply()).await.map(|body| (id, body));
                    }
                    // Refused, or unknown whether it was queued: send it the
                    // ordinary way (a duplicate is harmless: same call id).
                    Ok(Led::NotSent(payload)) => payload,
                }
            }
        };
        let call = OutgoingCall {
            id,
            queue,
            payload,
            timeout,
            deadline,
        };
        // Both boxed: the plain call's future (boxed too, by `Call`) stays
        // within the allocator's small sizes, where three blocks cost far
        // less than one large one.
        let pending = Box::pin(self.send_encoded::<(), ()>(job, call, kept)).await?;
        let id = pending.id.clone();
        Box::pin(pending.wait_reply()).await.map(|body| (id, body))
    }

    /// Follows a holder answer (the call's idempotency key is held by an
    /// earlier call for the same job and parameters): the answer is that
    /// call's kept result, polled until the deadline, under that call's
    /// id, when it answers this call (see `follow.rs`).
    pub(super) async fn follow(
        &self,
        job: &JobRef,
        body: &[u8],
        deadline: tokio::time::Instant,
        timeout: Duration,
    ) -> Result<(JobId, Vec<u8>), Error> {
        let holder = holder_of(body).ok_or(Error::Closed)?;
        let attached: Pending<(), ()> = Pending {
            client: self.clone(),
            id: holder.id.clone(),
            job: label(job),
            rx: None,
            failures: None,
            timeout,
            deadline,
            _types: PhantomData,
        };
        let kept = attached.poll_kept().await?;
        let body = vouched(label(job), &holder, kept)?;
        Ok((holder.id, body))
    }
}

/// Where a message's answer goes and whose span it continues.
pub(super) struct Routing<'a> {
    /// The inbox for the reply (`None`: one-way).
    pub(super) reply_to: Option<&'a str>,
    /// How long the worker keeps the result.
    pub(super) result_ttl: Duration,
    /// The call span's trace context, replacing the options' `traceparent`.
    pub(super) trace: Option<&'a TraceContext>,
    /// The clocks' reading the call is stamped from (a batch's calls share
    /// one).
    pub(super) now: Reading,
}

/// A call encoded and ready to send.
pub(super) struct OutgoingCall {
    pub(super) id: JobId,
    /// The queue (shard) it goes to.
    pub(super) queue: Arc<str>,
    pub(super) payload: Vec<u8>,
    pub(super) timeout: Duration,
    pub(super) deadline: tokio::time::Instant,
}
