//! Blocking reads: a [`Reader`] owns a connection of its own, because on
//! Redis a blocking command would stall every command queued behind it on
//! a shared connection (DESIGN.md, "Known pitfalls"). The hot path of a
//! call (push and wait) and of a worker (complete and take) runs here.

use std::time::Duration;

use async_trait::async_trait;

use super::delivery::{CompleteError, Completion, Delivery};
use crate::error::Error;

/// A connection for blocking reads.
#[async_trait]
pub trait Reader: Send {
    /// Waits up to `wait` for replies in `inbox`, and returns up to `max` of them.
    async fn pop_replies(
        &mut self,
        inbox: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Vec<u8>>, Error>;

    /// Waits up to `wait` for new jobs on any of `queues`, and leases up to
    /// `max` of them to `consumer`.
    async fn take_jobs(
        &mut self,
        queues: &[String],
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, Error>;

    /// Applies the completions in `done`, then takes jobs as
    /// [`take_jobs`](Reader::take_jobs) does. On a single Redis both go out
    /// as one pipeline on this connection, so a worker that finished a job
    /// pays one write, and one wake-up of Redis, for the reply, the ack and
    /// its next read.
    async fn complete_and_take(
        &mut self,
        done: &[(Delivery, Completion)],
        queues: &[String],
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> CompletedAndTaken;

    /// Appends a job to `queue`, then waits for replies in `inbox` as
    /// [`pop_replies`](Reader::pop_replies) does. On a single Redis both go
    /// out as one pipeline on this connection, so a lone call costs one
    /// write and one round trip, its reply coming back on the read that was
    /// sent with it.
    async fn push_and_pop(
        &mut self,
        queue: &str,
        payload: &[u8],
        inbox: &str,
        max: usize,
        wait: Duration,
    ) -> PushedAndPopped;

    /// Sends what this reader still owes the broker before it is dropped
    /// (a stopping worker, a reader given up after an error): on Redis,
    /// the trims it owes larger ack-only batches and the `XDEL` of acked
    /// entries a batch or a trim left, which else go with the next read
    /// that waits for jobs. Errors are logged, not returned.
    async fn settle(&mut self) {}

    /// How many times since the last call a queue was left out of the
    /// reads because the broker refused to read it (on Redis, its stream
    /// replaced by another type: `backend/redis/unreadable_queues.rs`),
    /// while the other queues went on being read. The worker counts them
    /// as broker errors.
    fn queues_set_aside(&mut self) -> usize {
        0
    }

    /// Waits up to `wait` for calls on `queue`'s intake and moves what is
    /// there onto the queue (see
    /// [`Queue::has_intake`](super::queue::Queue::has_intake)), dead-lettering
    /// elements over `max_message_bytes`; returns how many elements it
    /// moved, applied or dead-lettered.
    async fn move_intake(
        &mut self,
        _queue: &str,
        wait: Duration,
        _max_message_bytes: usize,
    ) -> Result<usize, Error> {
        tokio::time::sleep(wait).await;
        Ok(0)
    }
}

/// Completes each of `done` in turn with `complete`, and returns the indices
/// of those that failed, with why: [`Reader::complete_and_take`] where
/// completions cannot ride on the read.
pub(crate) async fn complete_each<'a, F, Fut>(
    done: &'a [(Delivery, Completion)],
    mut complete: F,
) -> Vec<(usize, CompleteError)>
where
    F: FnMut(&'a Delivery, &'a Completion) -> Fut,
    Fut: std::future::Future<Output = Result<(), CompleteError>>,
{
    let mut failed = Vec::new();
    for (i, (delivery, completion)) in done.iter().enumerate() {
        if let Err(e) = complete(delivery, completion).await {
            failed.push((i, e));
        }
    }
    failed
}

/// What [`Reader::push_and_pop`] did.
#[derive(Debug)]
pub struct PushedAndPopped {
    /// Whether the job was queued. An error says Redis refused it, or that
    /// the connection failed before Redis said (the job may then be queued).
    pub pushed: Result<(), Error>,
    /// The replies popped (for any call of the inbox), or why the read failed.
    pub popped: Result<Vec<Vec<u8>>, Error>,
}

/// What [`Reader::complete_and_take`] did.
#[derive(Debug)]
pub struct CompletedAndTaken {
    /// Indices into `done` of the completions that did not (wholly) take
    /// effect, with why: Redis refused a step, or the connection failed
    /// before their answer came. The caller deals with them the ordinary
    /// way (a transient failure is safe to repeat: at worst the caller sees
    /// a duplicate reply, which it drops).
    pub not_completed: Vec<(usize, CompleteError)>,
    /// The jobs taken, or why the read failed.
    pub taken: Result<Vec<Delivery>, Error>,
}
