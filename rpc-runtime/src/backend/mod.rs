//! The broker seam: the few operations the client and the worker need from a
//! queue, so the runtime does not care whether it runs on Redis or in memory.
//!
//! The operations are shaped by the promises in DESIGN.md rather than by any
//! one broker's commands: a job is *taken* (leased to one consumer), then
//! *completed* in one step that acks it and pushes its reply, or *reclaimed*
//! by another consumer once its lease has gone idle for the visibility
//! timeout. Blocking reads live on a separate [`Reader`] because on Redis a
//! blocking command must have a connection of its own (see DESIGN.md, "Known
//! pitfalls").

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::Error;

pub mod memory;
pub mod redis;
mod resp;
mod tick;

pub use tick::{TickAnswer, TickMode, TickOutcome, TickRequest};

/// How long an inbox lives after its last reply, unless the completion says
/// otherwise (a dead client's inbox expires).
pub const DEFAULT_INBOX_TTL: Duration = Duration::from_secs(60);
/// How long a cancellation is remembered: a call queued behind a backlog
/// (or a pause) that long is still skipped when a worker reaches it.
pub const CANCEL_MEMORY: Duration = Duration::from_secs(24 * 60 * 60);
/// Dead letters kept per queue; the oldest go first (approximately, on Redis).
pub use rpc_protocol::stream::DEAD_LETTER_CAP;

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

/// A dead-lettered message, as listed by [`Backend::dead_letters`].
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The broker's id for the dead-letter entry.
    pub token: String,
    /// Why it was dead-lettered.
    pub reason: String,
    /// The message exactly as it was on the queue.
    pub payload: Vec<u8>,
}

/// A broker connection shared by all tasks of a client or worker.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// A short description for logs (`redis://127.0.0.1:6379/0`, `memory://default`).
    fn describe(&self) -> String;

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

    /// Lists up to `max` dead letters of a queue, oldest first.
    async fn dead_letters(&self, queue: &str, max: usize) -> Result<Vec<DeadLetter>, Error>;

    /// Deletes one dead letter; `false` if it was not there.
    async fn remove_dead_letter(&self, queue: &str, token: &str) -> Result<bool, Error>;

    /// Forgets consumers of the queue that have been idle for at least `idle`
    /// and hold no leases (workers that died long ago), so they do not pile
    /// up in the broker. Returns how many were forgotten.
    async fn forget_idle_consumers(&self, _queue: &str, _idle: Duration) -> Result<usize, Error> {
        Ok(0)
    }

    /// A worker's regular look at one queue's lifecycle state, in one
    /// round trip: moves up to `max_move` due scheduled jobs onto the queue
    /// (atomically: of many workers racing, each job moves exactly once),
    /// dead-letters scheduled entries that would never run, and reports
    /// the next due time, whether the queue is paused and up to
    /// `max_cancelled` calls cancelled after `cancelled_after_ms` (broker
    /// clock). With `sweep` (a cursor, `"0"` to start) it also looks at a
    /// page of the scheduled messages for ones without a due time.
    async fn poll_lifecycle(
        &self,
        queue: &str,
        max_move: usize,
        cancelled_after_ms: u64,
        max_cancelled: usize,
        sweep: Option<&str>,
    ) -> Result<LifecyclePoll, Error>;

    /// Marks call `id` of `queue` cancelled (workers skip it if queued and
    /// stop it if running). A call waiting on the schedule is moved onto
    /// the queue at once, flagged cancelled, so a worker answers its caller
    /// `cancelled` without running it. On Redis, a client that may not do
    /// that itself (the client ACL role) hands the request to the workers
    /// through the service's intake ([`Cancelled::Requested`]).
    async fn cancel_job(&self, queue: &str, id: &str) -> Result<Cancelled, Error>;

    /// Whether clients may put calls on an intake that workers must move
    /// onto the queue (Redis: yes; the memory backend queues directly).
    fn has_intake(&self) -> bool {
        false
    }

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

    /// The services that have a queue here (for a cancel by id alone).
    async fn queues(&self) -> Result<Vec<String>, Error>;

    // Periodic jobs

    /// Offers one tick of a periodic job on `queue` (the job's service):
    /// in one atomic step the broker enqueues `tick.message` if the tick is
    /// newer than the job's last one enqueued (and, for a catch-up, the job
    /// ran before), records it as the last, and stores `tick.definition`.
    /// Of many workers offering the same tick, exactly one gets
    /// [`TickOutcome::Enqueued`]. A tick in the broker's future is refused
    /// ([`TickOutcome::Early`]).
    async fn enqueue_tick(&self, queue: &str, tick: &TickRequest<'_>) -> Result<TickAnswer, Error>;

    /// The periodic jobs recorded for `queue`, sorted by name: their
    /// stored definitions and last ticks, unreadable values marked as such.
    async fn periodic_jobs(
        &self,
        queue: &str,
    ) -> Result<Vec<crate::periodic::PeriodicState>, Error>;
}

/// What [`Backend::poll_lifecycle`] found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LifecyclePoll {
    /// The broker's clock when it looked (ms since the epoch).
    pub now_ms: u64,
    /// Scheduled jobs moved onto the queue.
    pub moved: usize,
    /// When the next scheduled job is due, if any.
    pub next_due_ms: Option<u64>,
    /// Whether the queue is paused.
    pub paused: bool,
    /// Call ids cancelled after the time asked for, with when (broker
    /// clock, ms), oldest first. Unchecked: entries come from the broker.
    pub cancelled: Vec<(String, u64)>,
    /// Scheduled entries dead-lettered because they would never run (due
    /// beyond the horizon, or a message without a due time).
    pub dead_lettered: usize,
    /// Where the sweep of scheduled messages goes on (`None`: it went
    /// round, or none was asked for).
    pub sweep_cursor: Option<String>,
}

/// What [`Backend::cancel_job`] did.
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

/// What [`Backend::claim_once`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnceClaim {
    /// The key was free (or already this call's: a redelivery): it is
    /// this call's now; run it.
    Claimed,
    /// The key is held by call `id`; `same` says whether for the same job
    /// and parameters (same fingerprint).
    Held { id: String, same: bool },
}

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

    /// Waits up to `wait` for calls on `queue`'s intake and moves what is
    /// there onto the queue (see [`Backend::has_intake`]); returns how many
    /// elements it moved or applied.
    async fn move_intake(&mut self, _queue: &str, wait: Duration) -> Result<usize, Error> {
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

/// Whether `id` can name a client's inbox: 1 to 128 characters of
/// `A-Z a-z 0-9 _ - . :` (docs/PROTOCOL.md, "Keys"). No braces, so an inbox
/// key has exactly one hash tag; no spaces or control characters.
pub fn is_client_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

/// Where and how to connect: the URL and the key prefix.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `redis://`, `rediss://`, `redis+cluster://` or `memory://` URL.
    pub url: String,
    /// Prefix of every key (lets several applications share one Redis).
    pub prefix: String,
    /// How a client adds jobs on Redis.
    pub enqueue: Enqueue,
}

impl BrokerConfig {
    /// A config for `url` with the default prefix `rpc`.
    pub fn new(url: impl Into<String>) -> Self {
        BrokerConfig {
            url: url.into(),
            prefix: "rpc".to_owned(),
            enqueue: Enqueue::Auto,
        }
    }
}

/// How a client adds jobs to a Redis jobs stream (docs/PROTOCOL.md, "The
/// intake"; docs/SECURITY.md). A URL's `?enqueue=auto|stream|intake` wins
/// over the builder's setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Enqueue {
    /// `XADD` to the stream until Redis answers `NOPERM` (a client-role ACL
    /// user), then through the intake for good. The one refused `XADD`
    /// shows in Redis's `ACL LOG`: restricted users better say `Intake`.
    #[default]
    Auto,
    /// Always `XADD` to the stream (a trusted producer).
    Stream,
    /// Always `RPUSH` to the service's intake, which workers move onto the
    /// stream: what the client ACL role allows.
    Intake,
}

/// Connects to the broker the URL names.
pub async fn connect(config: &BrokerConfig) -> Result<Arc<dyn Backend>, Error> {
    let url = config.url.trim();
    if let Some(name) = url.strip_prefix("memory://") {
        return Ok(memory::MemoryBackend::named(name));
    }
    if url.starts_with("redis://")
        || url.starts_with("rediss://")
        || url.starts_with("redis+cluster://")
        || url.starts_with("rediss+cluster://")
        || url.starts_with("redis+unix://")
        || url.starts_with("unix://")
    {
        return Ok(Arc::new(
            redis::RedisBackend::connect(url, &config.prefix, config.enqueue).await?,
        ));
    }
    Err(Error::InvalidUrl {
        url: url.to_owned(),
        reason: "expected a redis://, rediss://, redis+cluster:// or memory:// URL".to_owned(),
    })
}
