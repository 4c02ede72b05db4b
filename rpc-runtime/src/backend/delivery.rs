//! What passes between a worker and the broker for one job: the
//! [`Delivery`] it is handed, the [`Completion`] it answers with, and why
//! a completion may not have taken effect.

use std::time::Duration;

use crate::error::Error;

/// One job handed to a worker.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The queue (service name) it came from.
    pub queue: String,
    /// The broker's handle for the lease (a stream entry id on Redis).
    pub token: String,
    /// The job message as sent by the client.
    pub payload: Vec<u8>,
    /// How many times the broker has handed this message out, this one included.
    pub deliveries: u32,
    /// When the message was added to the queue, in ms since the Unix epoch
    /// on the broker's clock (a Redis stream entry id's time part): with
    /// the message's `timeout_ms` it gives a deadline that does not depend
    /// on the sender's clock.
    pub enqueued_ms: Option<u64>,
    /// The job was cancelled while it waited on the schedule: the worker
    /// answers it `cancelled` without running it (a Redis stream entry's
    /// `c` field).
    pub cancelled: bool,
}

/// Everything that happens when a worker is done with a delivery, applied in
/// one round trip: reply, keep the result, requeue or dead-letter, then ack.
#[derive(Debug, Clone, Default)]
pub struct Completion {
    /// The reply envelope, if the job produces one.
    pub reply: Option<Vec<u8>>,
    /// The inbox to push the reply onto (absent: nobody is waiting).
    pub reply_to: Option<String>,
    /// Keep the reply under the result key of this call id, for this long.
    pub keep_result: Option<(String, Duration)>,
    /// Put this message back on the same queue (a retry).
    pub requeue: Option<Vec<u8>>,
    /// Put the retry on the queue's schedule instead, under this token (the
    /// call id), due after this delay on the broker's clock (a backoff).
    pub requeue_after: Option<(String, Duration)>,
    /// With `requeue_after`: due at this time on the broker's clock (ms)
    /// rather than after the delay (a delayed call's own `run_at_ms`, so
    /// no worker's estimate of the broker's clock moves it).
    pub requeue_at_ms: Option<u64>,
    /// Move the message to the queue's dead-letter stream with this reason.
    pub dead_letter: Option<String>,
    /// With `dead_letter`: the worker that gives up on it, and how long its
    /// last attempt ran, when it ran (the dead letter's optional `worker`
    /// and `duration_ms` fields, for the dashboard's list of failures).
    pub dead_letter_by: Option<(String, Option<Duration>)>,
    /// How long the inbox lives after this reply (a dead client's replies
    /// expire); `None` is the backend's default.
    pub inbox_ttl: Option<Duration>,
}

/// The parts of a [`Completion`], in the order they are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletionStep {
    /// Push the reply onto the caller's inbox.
    Reply,
    /// Keep the reply under the call's result key.
    Keep,
    /// Queue the retry.
    Requeue,
    /// Add the dead letter.
    DeadLetter,
    /// Ack (and delete) the delivery.
    Ack,
}

impl std::fmt::Display for CompletionStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CompletionStep::Reply => "writing the reply",
            CompletionStep::Keep => "keeping the result",
            CompletionStep::Requeue => "queueing the retry",
            CompletionStep::DeadLetter => "writing the dead letter",
            CompletionStep::Ack => "acking the job",
        })
    }
}

/// Why a completion did not (wholly) take effect. The job is acked only
/// when every step before the ack was written, so in both cases it is
/// still leased.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompleteError {
    /// It may work if sent again: the connection failed, or the broker is
    /// loading, busy, out of memory or failing over. What was written, if
    /// anything, is safe to write again.
    #[error("{0}")]
    Transient(String),
    /// The broker refused a step for good (a key of the wrong type, no
    /// permission): the steps before `step` took effect, it and those after
    /// did not. `None`: the broker refused the whole completion.
    #[error("{} refused: {reason}", step.map_or("the completion".to_owned(), |s| s.to_string()))]
    Refused {
        step: Option<CompletionStep>,
        reason: String,
    },
}

impl From<Error> for CompleteError {
    fn from(e: Error) -> Self {
        CompleteError::Transient(e.to_string())
    }
}
