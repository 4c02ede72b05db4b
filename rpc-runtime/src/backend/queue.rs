//! The queue itself: how a job gets on it, how a worker takes and finishes
//! it, and where its reply goes.
//!
//! The operations are shaped by the promises in DESIGN.md rather than by any
//! one broker's commands: a job is *taken* (leased to one consumer), then
//! *completed* in one step that acks it and pushes its reply, or *reclaimed*
//! by another consumer once its lease has gone idle for the visibility
//! timeout. Blocking reads live on a separate [`Reader`].

use std::time::Duration;

use async_trait::async_trait;

use super::delivery::{CompleteError, Completion, Delivery};
use super::reader::Reader;
use crate::error::Error;

/// Jobs in, leases out, replies back: what every client and worker needs.
#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// A short description for logs (`redis://127.0.0.1:6379/0`, `memory://default`).
    fn describe(&self) -> String;

    /// Whether other processes can reach this broker (Redis: yes; a
    /// `memory://` broker lives inside one process, so a command-line tool
    /// or dashboard that opens one sees only its own, empty, queues).
    fn is_shared(&self) -> bool {
        true
    }

    /// The name of a client's reply inbox.
    fn inbox_name(&self, client_id: &str) -> String;

    /// The name under which a call's result is kept.
    fn result_name(&self, call_id: &str) -> String;

    /// Whether `key` names a client's reply inbox of this backend (under its
    /// prefix): the only keys a worker pushes replies to, whatever a
    /// message's `reply_to` says.
    fn is_inbox(&self, key: &str) -> bool;

    /// The broker's clock, in ms since the Unix epoch (Redis: `TIME`).
    /// Workers track their offset to it, so deadlines measured from a
    /// queue entry's broker timestamp hold whatever the clocks say.
    async fn broker_time_ms(&self) -> Result<u64, Error>;

    /// Opens a reader for blocking reads (one per reading task).
    async fn open_reader(&self) -> Result<Box<dyn Reader>, Error>;

    /// Appends a job to a queue.
    async fn push_job(&self, queue: &str, payload: &[u8]) -> Result<(), Error>;

    /// Appends jobs to one queue in one round trip, in order (Redis: one
    /// pipeline; the caller keeps each batch to a size Redis takes in one
    /// go). `Ok` holds each job's fate: `Ok(())` queued, `Err` refused by
    /// the broker (not queued). `Err`: the round trip failed, and any of
    /// the jobs may have been queued.
    async fn push_jobs(
        &self,
        queue: &str,
        payloads: &[&[u8]],
    ) -> Result<Vec<Result<(), Error>>, Error>;

    /// Whether clients may put calls on an intake that workers must move
    /// onto the queue (Redis: yes; the memory backend queues directly).
    fn has_intake(&self) -> bool {
        false
    }

    /// Reads a kept result, if it is still there.
    async fn get_result(&self, call_id: &str) -> Result<Option<Vec<u8>>, Error>;

    /// Makes sure the queues exist and can be consumed (creates consumer
    /// groups on Redis). Idempotent.
    async fn prepare_queues(&self, queues: &[String]) -> Result<(), Error>;

    /// Takes over jobs whose lease has been idle for at least `min_idle`
    /// (their worker died or stalled).
    async fn reclaim(
        &self,
        queue: &str,
        consumer: &str,
        min_idle: Duration,
        max: usize,
    ) -> Result<Vec<Delivery>, Error>;

    /// Renews the leases of jobs this consumer is still running, so they are
    /// not reclaimed while the handler is alive.
    async fn extend(&self, queue: &str, consumer: &str, tokens: &[String]) -> Result<(), Error>;

    /// Applies a completion and acks the delivery, each step only after the
    /// one before it was written (the ack last). Borrowed, so a worker can
    /// retry it through a broker outage without copying the reply.
    async fn complete(
        &self,
        delivery: &Delivery,
        completion: &Completion,
    ) -> Result<(), CompleteError>;

    /// Forgets consumers of the queue that have been idle for at least `idle`,
    /// hold no leases and are not named in `keep` (the live workers): workers
    /// that are gone, so they do not pile up in the broker. Returns how many
    /// were forgotten.
    async fn forget_idle_consumers(
        &self,
        queue: &str,
        idle: Duration,
        keep: &[String],
    ) -> Result<usize, Error>;

    /// The services that have a queue here.
    async fn queues(&self) -> Result<Vec<String>, Error>;

    /// Removes from the queue what is acked yet still stored, if the broker
    /// can leave such things (Redis: acked stream entries a killed worker
    /// would have deleted with its next read). Called now and then.
    async fn sweep_acked(&self, _queue: &str) -> Result<(), Error> {
        Ok(())
    }
}
