//! The read-only view of a broker's queues, for operators: what
//! [`Inspector`](crate::Inspector), `rpc stats`, `rpc top` and the
//! dashboard show. It writes nothing, so it is safe to point at a
//! production Redis with an operator's read-only ACL user.
//!
//! What the figures mean:
//!
//! * **queued**: jobs not yet delivered to a worker;
//! * **leased**: delivered and not yet acked (running, or waiting to be
//!   reclaimed from a dead worker);
//! * **dead letters**: jobs that will never run, with why;
//! * **entries added**: every job ever added to the queue (Redis 7+), the
//!   basis of "jobs in per second" (see [`Rates`]);
//! * **lanes**: how many of the queued calls wait at each priority
//!   (`lanes.rs`), which add up to queued;
//! * **group keys**: the calls running and parked per job and group key,
//!   the busiest of a bounded look (`group_keys.rs`).
//!
//! Pages that must stay small whatever the queues hold read *excerpts*:
//! values cut to a window by the broker, each with its full length
//! (`excerpts.rs`). Ages are measured against the broker's clock, so a
//! skewed clock on the operator's machine does not distort them.

pub mod excerpts;
pub mod figures;
pub mod group_keys;
pub mod lanes;
pub mod scheduled;

use std::collections::BTreeMap;
use std::time::Instant;

use async_trait::async_trait;

use self::excerpts::{
    DeadLetterExcerpt, Excerpt, Found, Lease, LeasedExcerpt, MessageExcerpt, SearchPage, Stream,
};
use self::figures::{InboxStats, LeasedJob, Ping, QueuedJob, ServiceStats};
use self::group_keys::BusyGroupKeys;
use self::scheduled::{ScheduledExcerpt, ScheduledJob};
use crate::error::Error;
use crate::periodic::stored::PeriodicState;

pub use self::figures::Rates;

/// Read-only questions about a broker's queues. Every answer is bounded:
/// lists by their `max`, values by their `window`.
#[async_trait]
pub trait Inspection: Send + Sync + 'static {
    /// Whether the broker answers, how fast, and its version.
    async fn ping(&self) -> Result<Ping, Error>;

    /// The services that have a queue, sorted.
    async fn services(&self) -> Result<Vec<String>, Error>;

    /// Whether `service` exists: it has a queue, or calls wait on its
    /// schedule or intake though no worker made its queue yet (a delayed
    /// call sent before the first worker started).
    async fn has_service(&self, service: &str) -> Result<bool, Error>;

    /// The figures of one service's queue; `Ok(None)` for a service with
    /// no queue (unknown, or never sent a job).
    async fn service_stats(&self, service: &str) -> Result<Option<ServiceStats>, Error>;

    /// The figures of [`service_stats`](Self::service_stats) read without
    /// any message (on Redis, `XINFO STREAM` sends the first and last
    /// entries whole): for pages that must stay small.
    async fn service_stats_bounded(&self, service: &str) -> Result<Option<ServiceStats>, Error>;

    /// Up to `max` leased jobs, oldest lease first, with their messages;
    /// `Ok(None)` for an unknown service.
    async fn leased(&self, service: &str, max: usize) -> Result<Option<Vec<LeasedJob>>, Error>;

    /// Up to `max` queued jobs, oldest first, with their messages;
    /// `Ok(None)` for an unknown service.
    async fn queued(&self, service: &str, max: usize) -> Result<Option<Vec<QueuedJob>>, Error>;

    /// The clients' inboxes, with the replies waiting in each and when it
    /// expires, sorted by client: a long list nobody drains is a client
    /// that died or stopped reading.
    async fn inboxes(&self) -> Result<Vec<InboxStats>, Error>;

    /// Up to `max` dead letters of `service`, oldest first, after the one
    /// with token `after` (from the oldest without one), reasons and
    /// messages cut to their first `window` bytes.
    async fn dead_letter_excerpts(
        &self,
        service: &str,
        after: Option<&str>,
        max: usize,
        window: usize,
    ) -> Result<Vec<DeadLetterExcerpt>, Error>;

    /// Dead letters of `service` by token, cut as in
    /// [`dead_letter_excerpts`](Self::dead_letter_excerpts) (`None` for a
    /// token with no dead letter).
    async fn dead_letters_by_token(
        &self,
        service: &str,
        tokens: &[&str],
        window: usize,
    ) -> Result<Vec<Option<DeadLetterExcerpt>>, Error>;

    /// How many dead letters `service` has.
    async fn dead_letter_count(&self, service: &str) -> Result<u64, Error>;

    /// Up to `max` queued jobs of `service`, oldest first, after the entry
    /// `after` when given (paging on), messages cut to their first `window`
    /// bytes; `Ok(None)` for an unknown service.
    async fn queued_excerpts(
        &self,
        service: &str,
        after: Option<&str>,
        max: usize,
        window: usize,
    ) -> Result<Option<Vec<MessageExcerpt>>, Error>;

    /// Up to `max` leased jobs of `service`, oldest lease first, messages
    /// cut to their first `window` bytes; `Ok(None)` for an unknown service.
    async fn leased_excerpts(
        &self,
        service: &str,
        max: usize,
        window: usize,
    ) -> Result<Option<Vec<LeasedExcerpt>>, Error>;

    /// Who holds the job `token` of `service`, if a worker does.
    async fn lease(&self, service: &str, token: &str) -> Result<Option<Lease>, Error>;

    /// Jobs (or dead letters) of `service` by token, messages cut to their
    /// first `window` bytes (`None` for a token with no entry).
    async fn message_excerpts(
        &self,
        service: &str,
        stream: Stream,
        tokens: &[&str],
        window: usize,
    ) -> Result<Vec<Option<MessageExcerpt>>, Error>;

    /// `len` bytes from `offset` of one field (`m`, the message, or
    /// `reason`) of one job or dead letter: what a download reads a chunk
    /// at a time. `None` when the entry or the field is not there.
    async fn entry_window(
        &self,
        service: &str,
        stream: Stream,
        token: &str,
        field: &str,
        offset: u64,
        len: usize,
    ) -> Result<Option<Excerpt>, Error>;

    /// `len` bytes from `offset` of the result kept for `call_id`; `None`
    /// when there is none (never kept, or expired).
    async fn kept_result_window(
        &self,
        call_id: &str,
        offset: u64,
        len: usize,
    ) -> Result<Option<Excerpt>, Error>;

    /// The jobs (or dead letters) of `service` whose message holds
    /// `call_id`, newest first: up to `max_matches` of them, looking until
    /// `deadline` at the latest (the answer says whether it looked at all).
    async fn find_call(
        &self,
        service: &str,
        stream: Stream,
        call_id: &str,
        max_matches: usize,
        deadline: Instant,
    ) -> Result<Found, Error>;

    /// A page of one of `service`'s streams, newest first, below the
    /// entry `before` (from the newest without one): the entries whose
    /// message holds `text` as JSON writes a string (`"..."`, quotes
    /// included: a call id, a job's full name), or every entry without
    /// `text`; up to `max` of them, looking until `deadline` at the latest
    /// (the answer says where it stopped). What a list of dead letters
    /// pages with, in bounded time per page whatever the stream holds.
    async fn search_stream(
        &self,
        service: &str,
        stream: Stream,
        text: Option<&str>,
        before: Option<&str>,
        max: usize,
        deadline: Instant,
    ) -> Result<SearchPage, Error>;

    /// The services with periodic jobs, sorted.
    async fn periodic_services(&self) -> Result<Vec<String>, Error>;

    /// The periodic jobs of `service`, sorted by name: their stored
    /// definitions and last ticks, unreadable values marked as such;
    /// `Ok(None)` for an unknown service (neither periodic jobs nor a
    /// queue), `Ok(Some(empty))` for one without periodic jobs.
    async fn periodic(&self, service: &str) -> Result<Option<Vec<PeriodicState>>, Error>;

    /// Up to `max` jobs on `service`'s schedule, soonest due first, with
    /// their messages; `Ok(None)` for an unknown service (neither a queue
    /// nor a schedule).
    async fn scheduled(
        &self,
        service: &str,
        max: usize,
    ) -> Result<Option<Vec<ScheduledJob>>, Error>;

    /// Up to `max` jobs on `service`'s schedule, soonest first, from the
    /// `from`-th soonest (0: the soonest; paging on by rank), tokens and
    /// messages cut (messages to their first `window` bytes); `Ok(None)`
    /// for an unknown service.
    async fn scheduled_excerpts(
        &self,
        service: &str,
        from: usize,
        max: usize,
        window: usize,
    ) -> Result<Option<Vec<ScheduledExcerpt>>, Error>;

    /// `len` bytes from `offset` of the message of job `id` on `service`'s
    /// schedule, and when it is due; `None` when it is not on the schedule.
    async fn scheduled_window(
        &self,
        service: &str,
        id: &str,
        offset: u64,
        len: usize,
    ) -> Result<Option<ScheduledExcerpt>, Error>;

    /// How many jobs wait on `service`'s schedule (0 for none, or an
    /// unknown service).
    async fn scheduled_count(&self, service: &str) -> Result<u64, Error>;

    /// The group keys of queue `queue` (one shard's) with their calls
    /// running and waiting, at most `max_visited` of them read (`capped`
    /// when there were more), in no particular order: the
    /// [`Inspector`](crate::Inspector) merges shards and keeps the
    /// busiest. State of the wrong type reads as unreadable, never an
    /// error.
    async fn group_keys(&self, queue: &str, max_visited: usize) -> Result<BusyGroupKeys, Error>;

    /// [`group_keys`](Self::group_keys) of every queue that has any, by
    /// queue, found in one pass (on Redis one `SCAN`, where asking each
    /// queue would scan once per queue): at most
    /// [`MAX_GROUP_KEYS_VISITED`](group_keys::MAX_GROUP_KEYS_VISITED)
    /// read per queue, and the pass stops after `max_visited` in all
    /// (every queue then `capped`).
    async fn every_group_key(
        &self,
        max_visited: usize,
    ) -> Result<BTreeMap<String, BusyGroupKeys>, Error>;
}
