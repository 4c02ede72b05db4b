//! What a [`Call`](super::Call) runs: a typed call and wait, a send that
//! returns a [`Pending`] handle, a one-way send.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::handle::Client;
use super::pending::Pending;
use super::place::place_until;
use super::reply::{decode_reply, label};
use super::send::Routing;

use crate::call::{CallOptions, JobId, JobRef};
use crate::error::{CallError, Error};

impl Client {
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
}
