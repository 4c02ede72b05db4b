//! Cancelling calls and pausing services from the caller's side: the
//! broker operations behind `Pending::cancel`, `Client::cancel` and
//! `Client::pause`/`resume`. Workers act on them (`worker::cancel`,
//! `worker::pause`); the caller of a cancelled call is answered
//! `cancelled` by the worker that skips or stops it.

use rpc_protocol::limits::MAX_ID_BYTES;

use super::handle::Client;
use super::pending::Pending;
use super::shard_choice::{every_queue, queue_of_id};

use crate::backend::Cancelled;
use crate::call::JobId;
use crate::error::Error;

impl Client {
    /// Cancels call `id` of `service`: if it waits on the schedule it is
    /// answered `cancelled` at once; if it is queued it is skipped; if it
    /// is running, its handler is told (`Context::cancelled`) and dropped
    /// after the worker's grace period. Cancelling a finished call does
    /// nothing. A client the broker does not let write the lifecycle keys
    /// (the client ACL role) hands the request to the workers instead
    /// ([`Cancelled::Requested`]).
    ///
    /// A sharded service's call is cancelled in the shard its id names
    /// (`...~k`); an id that names none is cancelled in every shard.
    pub async fn cancel_in(&self, service: &str, id: &JobId) -> Result<Cancelled, Error> {
        check_id(id)?;
        let service = rpc_protocol::shards::service_of_queue(service);
        if let Some(queue) = queue_of_id(service, id) {
            return self.inner.backend.cancel_job(&queue, id.as_str()).await;
        }
        let count = self.shards_to_search(service).await?;
        let mut outcome = Cancelled::Marked;
        for queue in every_queue(service, count) {
            let done = self.inner.backend.cancel_job(&queue, id.as_str()).await?;
            outcome = strongest(outcome, done);
        }
        Ok(outcome)
    }

    /// Cancels call `id` without knowing its service: it is cancelled in
    /// every service that has a queue on the broker (found with `SCAN`,
    /// which the client ACL role may not: an operator's tool).
    /// [`Client::cancel_in`] is one round trip when the service is known.
    pub async fn cancel(&self, id: &JobId) -> Result<Cancelled, Error> {
        check_id(id)?;
        let services = self.inner.backend.queues().await?;
        if services.is_empty() {
            return Err(Error::config(format_args!(
                "cannot cancel call {id}: no service has a queue on this broker"
            )));
        }
        // A marked id's call is in that shard of whichever service.
        let shard = rpc_protocol::shards::shard_of_id(id.as_str());
        let mut outcome = Cancelled::Marked;
        for queue in &services {
            let in_shard = rpc_protocol::shards::split_queue(queue).1;
            if shard.is_some_and(|k| k != in_shard) {
                continue;
            }
            let done = self.inner.backend.cancel_job(queue, id.as_str()).await?;
            outcome = strongest(outcome, done);
        }
        Ok(outcome)
    }

    /// Pauses `service`: every worker stops taking its jobs within about a
    /// second; running jobs finish, new calls queue up (their deadlines
    /// still apply). The state lives in the broker, so workers that start
    /// later see it. Returns whether it was running before.
    pub async fn pause(&self, service: &str) -> Result<bool, Error> {
        let service = rpc_protocol::shards::service_of_queue(service);
        self.inner.backend.set_paused(service, true).await
    }

    /// Resumes a paused `service`. Returns whether it was paused.
    pub async fn resume(&self, service: &str) -> Result<bool, Error> {
        let service = rpc_protocol::shards::service_of_queue(service);
        self.inner.backend.set_paused(service, false).await
    }

    /// Whether `service` is paused.
    pub async fn is_paused(&self, service: &str) -> Result<bool, Error> {
        let service = rpc_protocol::shards::service_of_queue(service);
        self.inner.backend.is_paused(service).await
    }
}

impl<T, E> Pending<T, E> {
    /// Cancels this call (see [`Client::cancel_in`]); awaiting the handle
    /// then gives the error kind `cancelled` once a worker answers.
    pub async fn cancel(&self) -> Result<Cancelled, Error> {
        match self.job.service() {
            Some(service) => self.client.cancel_in(service, &self.id).await,
            None => self.client.cancel(&self.id).await,
        }
    }
}

/// The more telling of two cancels' outcomes: unscheduled over requested
/// over marked.
fn strongest(a: Cancelled, b: Cancelled) -> Cancelled {
    match (a, b) {
        (Cancelled::Unscheduled, _) | (_, Cancelled::Unscheduled) => Cancelled::Unscheduled,
        (Cancelled::Requested, _) | (_, Cancelled::Requested) => Cancelled::Requested,
        _ => Cancelled::Marked,
    }
}

fn check_id(id: &JobId) -> Result<(), Error> {
    if id.as_str().is_empty() || id.as_str().len() > MAX_ID_BYTES {
        return Err(Error::config(format_args!(
            "cannot cancel call {id:?}: a call id is 1 to {MAX_ID_BYTES} bytes"
        )));
    }
    Ok(())
}
