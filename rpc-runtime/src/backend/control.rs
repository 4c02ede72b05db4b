//! The operator's and the caller's levers on a queue: cancel a call,
//! pause and resume, claim an idempotency key, list and remove dead
//! letters.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::Error;

/// A dead-lettered message, as listed by [`Control::dead_letters`].
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The broker's id for the dead-letter entry.
    pub token: String,
    /// Why it was dead-lettered.
    pub reason: String,
    /// The message exactly as it was on the queue (of an intake element
    /// over the workers' size limit, only its first KiB).
    pub payload: Vec<u8>,
}

/// What [`Control::cancel_job`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// The call waited on the schedule: it was moved onto the queue,
    /// flagged, and will be answered `cancelled` without running.
    Unscheduled,
    /// The call was marked cancelled: a worker that has it queued skips it,
    /// one running it stops it. (Also what a cancel of an unknown or
    /// finished call does: the mark expires unused.)
    Marked,
    /// The request went to the workers through the service's intake (this
    /// client may not write the lifecycle keys itself); a worker applies it
    /// as above within moments.
    Requested,
}

/// What [`Control::claim_once`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnceClaim {
    /// The key was free: it is this call's now; run it.
    Claimed,
    /// The key is held by call `id`; `same` says whether for the same job
    /// and parameters (same fingerprint). `id` may be the claiming call's
    /// own: the broker cannot tell a redelivery or retry of the call that
    /// claimed it from a second copy of its message; the worker can.
    Held { id: String, same: bool },
    /// The broker refused the claim for good (the key holds a value of
    /// another type, no permission): asking again would get the same.
    Refused(String),
}

/// Levers on a queue: cancellation, pause, idempotency keys, dead letters.
#[async_trait]
pub trait Control: Send + Sync + 'static {
    /// Marks call `id` of `queue` cancelled (workers skip it if queued and
    /// stop it if running). A call waiting on the schedule is moved onto
    /// the queue at once, flagged cancelled, so a worker answers its caller
    /// `cancelled` without running it. On Redis, a client that may not do
    /// that itself (the client ACL role) hands the request to the workers
    /// through the service's intake ([`Cancelled::Requested`]).
    async fn cancel_job(&self, queue: &str, id: &str) -> Result<Cancelled, Error>;

    /// When call `id` of `queue` was cancelled (broker ms), if the broker
    /// remembers: what a worker that had to forget cancellations asks
    /// before it starts a job.
    async fn cancelled_at(&self, queue: &str, id: &str) -> Result<Option<u64>, Error>;

    /// Pauses (`true`) or resumes a queue: workers stop taking its jobs
    /// within about a second. Returns whether the state changed.
    async fn set_paused(&self, queue: &str, paused: bool) -> Result<bool, Error>;

    /// Whether a queue is paused.
    async fn is_paused(&self, queue: &str) -> Result<bool, Error>;

    /// Claims idempotency key `key` of `queue` for call `id`, for `ttl`,
    /// unless another call holds it: returns who does. Of any number of
    /// workers racing with calls of one key, exactly one claims it.
    async fn claim_once(
        &self,
        queue: &str,
        key: &str,
        id: &str,
        fingerprint: &str,
        ttl: Duration,
    ) -> Result<OnceClaim, Error>;

    /// Lists up to `max` dead letters of a queue, oldest first.
    async fn dead_letters(&self, queue: &str, max: usize) -> Result<Vec<DeadLetter>, Error>;

    /// Deletes one dead letter; `false` if it was not there.
    async fn remove_dead_letter(&self, queue: &str, token: &str) -> Result<bool, Error>;
}
