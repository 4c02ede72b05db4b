//! What a [`Call`](super::Call) runs once its parts are checked: a typed
//! call and wait, a send that returns a [`Pending`] handle, a one-way send.
//!
//! The parts are moved into the call's (boxed) future as one value, and
//! the answer's path runs in this one `async fn` rather than a chain of
//! them: the future stays within the allocator's small sizes (see
//! rpc-bench/RESULTS.md).

use rpc_protocol::WriteParams;
use serde::de::DeserializeOwned;

use super::handle::Client;
use super::pending::Pending;
use super::place::place_until;
use super::reply::{decode_reply, label};
use super::send::Routing;

use crate::call::{CallOptions, JobId, JobRef};
use crate::error::{CallError, Error};

/// What a call without options of its own uses.
static NO_OPTIONS: CallOptions = CallOptions::NONE;

/// A call's parts once it is checked: what its future runs with.
pub(super) struct Parts {
    pub(super) client: Client,
    pub(super) job: JobRef,
    pub(super) params: Box<dyn WriteParams + Send + Sync>,
    /// `None`: no option set.
    pub(super) options: Option<Box<CallOptions>>,
}

impl Parts {
    /// The call's options, or none set.
    pub(super) fn options(&self) -> &CallOptions {
        self.options.as_deref().unwrap_or(&NO_OPTIONS)
    }

    /// Calls the job and waits for its typed answer.
    pub(super) async fn answer<T, E>(self) -> Result<T, CallError<E>>
    where
        T: DeserializeOwned,
        E: DeserializeOwned,
    {
        let (client, job) = (&self.client, &self.job);
        let options = self.options();
        let observed = client.observe(job, options);
        let answer = match client
            .call_raw(job, &*self.params, options, false, &observed)
            .await
        {
            Ok((_, body)) => decode_reply(label(job), &body),
            // Boxed: only a timeout pays for the diagnosis's state.
            Err(e) => Err(CallError::Rpc(
                Box::pin(client.explain(Some(job.service), e)).await,
            )),
        };
        client.observed(observed, job, &answer);
        answer
    }

    /// Sends the job and returns a handle to its answer; the result is
    /// kept for the client's result TTL so other processes can fetch it
    /// by id.
    pub(super) async fn send<T, E>(self) -> Result<Pending<T, E>, Error>
    where
        T: DeserializeOwned,
        E: DeserializeOwned,
    {
        let options = self.options();
        self.client
            .send_inner(&self.job, &*self.params, options, true)
            .await
    }

    /// Sends a one-way job and returns once it is enqueued. Nothing is
    /// kept unless `options.result_ttl` asks for it (then the result can
    /// be fetched by id, though nobody waits on an inbox).
    pub(super) async fn send_one_way(self) -> Result<JobId, Error> {
        let (client, job) = (&self.client, &self.job);
        let options = self.options();
        client.know_shards(job, options).await;
        let route = client.route(job, options);
        let id = client.call_id_for(&route);
        let observed = client.observe(job, options);
        observed.span.record("messaging.message.id", id.as_str());
        let (payload, timeout, placement) = client.encode(
            job,
            &id,
            &*self.params,
            options,
            Routing {
                reply_to: None,
                result_ttl: client.result_ttl(options, false),
                trace: observed.trace.as_ref(),
                now: client.broker_clock().read(),
            },
        )?;
        // Even enqueueing is bounded by the call's timeout: with the broker
        // down, reconnect attempts must not hold the caller past it.
        let timeout = timeout + placement.delay;
        let deadline = tokio::time::Instant::now() + timeout;
        place_until(
            &*client.inner.backend,
            job,
            &route.queue,
            &id,
            &payload,
            deadline,
            timeout,
        )
        .await?;
        Ok(id)
    }
}
