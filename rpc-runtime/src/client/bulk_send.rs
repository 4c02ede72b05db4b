//! How a [`Batch`](super::Batch) goes out: every call encoded first (one
//! bad call refuses the whole batch before anything is sent), all the
//! messages into one buffer (a batch of 100,000 held one allocation per
//! message, and the client spent a third of its time in `malloc` and in
//! page faults on fresh memory: `rpc-bench --profile typed --bulk`), then the
//! messages of each queue sent in one round trip per chunk
//! ([`Queue::push_jobs`](crate::backend::Queue::push_jobs)), a few chunks
//! in flight at once, the queues side by side, and each call's fate
//! recorded.
//!
//! A queue is the unit of a round trip because on a Cluster one pipeline
//! goes to one slot, and every key of a queue shares one hash tag. When a
//! service is spread over shards, a shard becomes that unit here, and
//! nothing above this file changes.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::bulk_error::{BatchError, Sent};
use super::handle::Client;
use super::observe::Observed;
use super::reply::{label, timed_out};
use super::send::Routing;
use super::typed::Parts;

use crate::call::{CallOptions, JobId, JobRef};
use crate::clock::Reading;
use crate::error::Error;
use crate::sync::lock;

/// Jobs per round trip at most: Redis reads a chunk in a few passes of its
/// event loop, and other clients are served between them.
pub(super) const CHUNK_JOBS: usize = 1_000;
/// Round trips of one queue's chunks in flight at once: Redis adds one
/// chunk while the next is on its way and the client reads the answers to
/// the one before (`rpc-bench --jobs`, the bulk row).
pub(super) const CHUNKS_IN_FLIGHT: usize = 4;
/// Bytes of messages per round trip at most (a chunk goes past it by one
/// message at most, and holds one whatever its size).
pub(super) const CHUNK_BYTES: usize = 1024 * 1024;

/// At most this many bytes are reserved for a batch's messages up front
/// (a batch's buffer grows past it as any `Vec` does).
const RESERVED_BYTES: usize = 32 * 1024 * 1024;

/// How the calls of a batch are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// One-way: nobody waits, nothing is kept unless asked.
    OneWay,
    /// Answered, waited for here: nothing kept unless asked (as `.await`
    /// on a single call).
    Wait,
    /// Answered, handed back as [`Pending`](super::Pending) handles: the
    /// result kept for the client's result TTL (as `.send()`).
    Handles,
}

/// One call of a batch, encoded and ready to send. A batch of 100,000
/// holds one per call, and fresh memory is what the client pays most for
/// on the way (a page fault per 4 KiB: `rpc-bench --profile typed
/// --bulk`), so what the calls share is kept once, in [`Payloads`]: the
/// job (this was 256 bytes and an allocated id; 112 now, the id in place).
pub(super) struct Encoded {
    /// Its job, in [`Payloads::job`].
    job: u32,
    pub(super) id: JobId,
    /// The queue (shard) it goes to.
    pub(super) queue: Arc<str>,
    /// Where its message is in the batch's [`Payloads`].
    pub(super) payload: Range<usize>,
    /// The call's timeout (a delayed call's from when it is due), counted
    /// from [`Payloads::encoded_at`].
    pub(super) timeout: Duration,
    /// Whether its result is kept (its wait also watches failed reads).
    pub(super) kept: bool,
    /// Its observation; `None` when idle.
    pub(super) observed: Option<Box<Observed>>,
}

/// When a batch is encoded: every call of it is stamped from one reading
/// of the clocks.
#[derive(Clone, Copy)]
struct Now {
    clocks: Reading,
    instant: tokio::time::Instant,
}

/// What became of one call as its batch was sent: a [`Sent`] without the
/// id, made into one only when the batch failed (a batch of 100,000 kept
/// a 104-byte `Sent` per call, each with a copy of the id, and the fresh
/// memory cost the client more page faults than its messages did:
/// `rpc-bench --profile typed --bulk`).
#[derive(Debug)]
pub(super) enum Fate {
    NotSent,
    Queued,
    Refused(Box<Error>),
    Unknown,
}

impl Fate {
    /// The fate of call `id`, as the batch's error tells it.
    pub(super) fn of(self, id: JobId) -> Sent {
        match self {
            Fate::NotSent => Sent::NotSent(id),
            Fate::Queued => Sent::Queued(id),
            Fate::Refused(e) => Sent::Refused(id, *e),
            Fate::Unknown => Sent::Unknown(id),
        }
    }
}

/// Each call's fate with its id, in order: what a batch that failed part
/// way tells.
pub(super) fn told(calls: &[Encoded], fates: Vec<Fate>) -> Vec<Sent> {
    calls
        .iter()
        .zip(fates)
        .map(|(call, fate)| fate.of(call.id.clone()))
        .collect()
}

/// What the calls of an encoded batch share: their messages, back to
/// back; their jobs (most batches call one); when they were encoded.
pub(super) struct Payloads {
    messages: Vec<u8>,
    jobs: Vec<JobRef>,
    encoded_at: tokio::time::Instant,
}

impl Payloads {
    /// `call`'s message.
    pub(super) fn of(&self, call: &Encoded) -> &[u8] {
        &self.messages[call.payload.clone()]
    }

    /// `call`'s job.
    pub(super) fn job(&self, call: &Encoded) -> &JobRef {
        &self.jobs[call.job as usize]
    }

    /// When `call` times out.
    pub(super) fn deadline(&self, call: &Encoded) -> tokio::time::Instant {
        self.encoded_at + call.timeout
    }

    /// Frees the messages once sent (the rest is kept while the answers
    /// come).
    pub(super) fn sent(&mut self) {
        self.messages = Vec::new();
    }
}

/// The options a call goes out with: its own, with what it leaves unset
/// taken from the batch's.
pub(super) fn merged(own: Option<&CallOptions>, batch: &CallOptions) -> CallOptions {
    let mut options = own.cloned().unwrap_or_default();
    options.timeout = options.timeout.or(batch.timeout);
    options.max_attempts = options.max_attempts.or(batch.max_attempts);
    options.result_ttl = options.result_ttl.or(batch.result_ttl);
    options.idempotency_ttl = options.idempotency_ttl.or(batch.idempotency_ttl);
    options.group = options.group.or_else(|| batch.group.clone());
    options.priority = options.priority.or(batch.priority);
    if options.delay.is_none() && options.run_at.is_none() {
        options.delay = batch.delay;
        options.run_at = batch.run_at;
    }
    for (key, value) in &batch.metadata {
        options
            .metadata
            .entry(key.clone())
            .or_insert_with(|| value.clone());
    }
    options
}

impl Client {
    /// Encodes every call of a batch, in order; the first that cannot be
    /// sent (no such job name, parameters that do not serialize, a bad
    /// idempotency key or delay, too large, refused by an interceptor)
    /// refuses the whole batch, naming it.
    pub(super) fn encode_batch(
        &self,
        items: Vec<Result<Parts, Error>>,
        batch_options: Option<&CallOptions>,
        mode: Mode,
    ) -> Result<(Vec<Encoded>, Payloads), BatchError> {
        let count = items.len();
        let refuse = |index: usize, error: Error| BatchError::refused(index, count, error);
        let mut encoded = Vec::with_capacity(count);
        let mut bytes = Vec::new();
        let mut jobs: Vec<JobRef> = Vec::new();
        let now = Now {
            clocks: self.broker_clock().read(),
            instant: tokio::time::Instant::now(),
        };
        for (index, item) in items.into_iter().enumerate() {
            let parts = item.map_err(|e| refuse(index, e))?;
            let merged_options;
            let options = match batch_options {
                None => parts.options(),
                Some(batch) => {
                    merged_options = merged(parts.options.as_deref(), batch);
                    &merged_options
                }
            };
            if jobs.last() != Some(&parts.job) {
                jobs.push(parts.job);
            }
            let job = (jobs.len() - 1) as u32;
            let call = self
                .encode_one(&parts, job, options, mode, now, &mut bytes)
                .map_err(|e| refuse(index, e))?;
            if index == 0 {
                // Room for the rest if they are about the first one's size
                // (a large first message reserves a bounded room).
                let rest = (call.payload.len() + 16).saturating_mul(count - 1);
                bytes.reserve(rest.min(RESERVED_BYTES));
            }
            encoded.push(call);
        }
        let payloads = Payloads {
            messages: bytes,
            jobs,
            encoded_at: now.instant,
        };
        Ok((encoded, payloads))
    }

    /// Encodes one call of a batch, its message appended to `bytes`.
    fn encode_one(
        &self,
        parts: &Parts,
        job_index: u32,
        options: &CallOptions,
        mode: Mode,
        now: Now,
        bytes: &mut Vec<u8>,
    ) -> Result<Encoded, Error> {
        let job = parts.job;
        let observed = self.observe(&job, options);
        let keep = mode == Mode::Handles;
        let route = self.route(&job, options);
        let id = self.call_id_for(&route);
        observed.span.record("messaging.message.id", id.as_str());
        let inbox = (mode != Mode::OneWay).then(|| self.inner.inbox.name());
        let result_ttl = self.result_ttl(options, keep);
        let start = bytes.len();
        let (timeout, placement) = self.encode_into(
            &job,
            &id,
            &*parts.params,
            options,
            Routing {
                reply_to: inbox.as_deref(),
                result_ttl,
                trace: observed.trace.as_ref(),
                now: now.clocks,
            },
            bytes,
        )?;
        // A delayed call waits for its delay and then its timeout.
        let timeout = timeout + placement.delay;
        Ok(Encoded {
            job: job_index,
            id,
            queue: route.queue,
            payload: start..bytes.len(),
            timeout,
            kept: !result_ttl.is_zero(),
            observed: (!observed.is_idle()).then(|| Box::new(observed)),
        })
    }

    /// Registers a waiter for every call of a batch (under one lock), so
    /// a fast worker's replies find them; returns the receivers in order.
    pub(super) fn wait_for_batch(&self, calls: &[Encoded]) -> Vec<oneshot::Receiver<Vec<u8>>> {
        let mut receivers = Vec::with_capacity(calls.len());
        let free = {
            let mut state = lock(&self.inner.inbox.state);
            for call in calls {
                let (tx, rx) = oneshot::channel();
                state.waiters.insert(call.id.as_str().into(), tx);
                receivers.push(rx);
            }
            !state.busy
        };
        self.ensure_router();
        if free {
            self.inner.inbox.wake_router.notify_one();
        }
        receivers
    }

    /// Forgets the waiters of calls that were not queued.
    pub(super) fn forget_waiters<'a>(&self, ids: impl Iterator<Item = &'a JobId>) {
        let mut state = lock(&self.inner.inbox.state);
        for id in ids {
            state.waiters.remove(id.as_str());
        }
    }

    /// Sends encoded calls: each queue's in order, one round trip per
    /// chunk, the queues at the same time, each chunk bounded by the
    /// earliest deadline among its calls (a broker that is down must not
    /// hold a call past its deadline). A call whose deadline passed before
    /// the batch went out (a short timeout in a batch that took longer to
    /// encode) is not sent: it is refused with its timeout, alone, and
    /// bounds nothing (an adversarial review found one such call cutting
    /// off 39,999 others, in the name of one of them). Returns each call's
    /// fate and the first failure, if any.
    pub(super) async fn send_batch(
        &self,
        calls: &[Encoded],
        payloads: &Payloads,
    ) -> (Vec<Fate>, Option<Error>) {
        let mut fates: Vec<Fate> = calls.iter().map(|_| Fate::NotSent).collect();
        let now = tokio::time::Instant::now();
        // Each queue's calls, in the batch's order.
        let mut queues: Vec<(&str, Vec<usize>)> = Vec::new();
        for (index, call) in calls.iter().enumerate() {
            if payloads.deadline(call) <= now {
                let job = label(payloads.job(call));
                fates[index] = Fate::Refused(Box::new(timed_out(job, &call.id, call.timeout)));
                continue;
            }
            match queues.iter_mut().find(|(q, _)| *q == &*call.queue) {
                Some((_, indices)) => indices.push(index),
                None => queues.push((&call.queue, vec![index])),
            }
        }
        let sends = queues
            .iter()
            .map(|(queue, indices)| self.send_queue(queue, indices, calls, payloads));
        let mut first_error = None;
        let sent = futures_util::future::join_all(sends).await;
        for ((_, indices), (outcomes, error)) in queues.iter().zip(sent) {
            for (&index, fate) in indices.iter().zip(outcomes) {
                fates[index] = fate;
            }
            if first_error.is_none() {
                first_error = error;
            }
        }
        if first_error.is_none() {
            first_error = fates.iter().find_map(|fate| match fate {
                Fate::Refused(e) => Some(Error::Broker(e.to_string())),
                _ => None,
            });
        }
        (fates, first_error)
    }

    /// Sends the calls at `indices` (all for `queue`), in chunks: the first
    /// alone, then up to [`CHUNKS_IN_FLIGHT`] round trips at a time on the
    /// one connection (written in order, so Redis adds them in order). A
    /// chunk whose round trip fails is of unknown fate; so are the chunks
    /// already sent after it, and the chunks not yet sent are not sent.
    /// Returns the fates of the first calls of `indices`, in order (the
    /// rest were not sent).
    async fn send_queue(
        &self,
        queue: &str,
        indices: &[usize],
        calls: &[Encoded],
        payloads: &Payloads,
    ) -> (Vec<Fate>, Option<Error>) {
        use futures_util::stream::{FuturesOrdered, StreamExt};

        let backend = &*self.inner.backend;
        let mut chunks: Vec<&[usize]> = Vec::new();
        let mut rest = indices;
        while !rest.is_empty() {
            let size = chunk_len(rest.iter().map(|&i| calls[i].payload.len()));
            let (chunk, after) = rest.split_at(size);
            chunks.push(chunk);
            rest = after;
        }
        let mut answers = FuturesOrdered::new();
        // How many chunks were handed to the connection.
        let mut started = 0;
        // The first chunk alone: a broker that is down costs one chunk of
        // unknown fate, the rest are known not sent.
        if let Some(&first) = chunks.first() {
            let deadline = chunk_deadline(payloads, calls, first);
            let first = payloads_of(payloads, calls, first);
            answers.push_back(push_chunk(backend, queue, first, deadline));
            started = 1;
        }
        let mut fates = Vec::with_capacity(indices.len());
        let mut answered = 0;
        while let Some(pushed) = answers.next().await {
            let chunk = chunks[answered];
            answered += 1;
            let failed = match pushed {
                Ok(Ok(outcomes)) if outcomes.len() == chunk.len() => {
                    fates.extend(outcomes.into_iter().map(|outcome| match outcome {
                        Ok(()) => Fate::Queued,
                        Err(e) => Fate::Refused(Box::new(e)),
                    }));
                    while started < chunks.len() && started - answered < CHUNKS_IN_FLIGHT {
                        let deadline = chunk_deadline(payloads, calls, chunks[started]);
                        let next = payloads_of(payloads, calls, chunks[started]);
                        let next = push_chunk(backend, queue, next, deadline);
                        answers.push_back(next);
                        started += 1;
                    }
                    continue;
                }
                Ok(Ok(outcomes)) => Error::Broker(format!(
                    "the broker told the fate of {} of {} jobs sent to `{queue}`",
                    outcomes.len(),
                    chunk.len()
                )),
                Ok(Err(e)) => e,
                Err(_) => {
                    // In the name of the call whose deadline bounded it.
                    let bound = chunk
                        .iter()
                        .map(|&i| &calls[i])
                        .min_by_key(|c| payloads.deadline(c))
                        .expect("a chunk has calls");
                    timed_out(label(payloads.job(bound)), &bound.id, bound.timeout)
                }
            };
            drop(answers);
            let unknown = chunks[answered - 1..started].iter().map(|c| c.len()).sum();
            fates.extend(std::iter::repeat_with(|| Fate::Unknown).take(unknown));
            return (fates, Some(failed));
        }
        (fates, None)
    }
}

/// The earliest deadline of the calls at `chunk`: what bounds its round
/// trip.
fn chunk_deadline(payloads: &Payloads, calls: &[Encoded], chunk: &[usize]) -> tokio::time::Instant {
    chunk
        .iter()
        .map(|&i| payloads.deadline(&calls[i]))
        .min()
        .expect("a chunk has calls")
}

/// The messages of the calls at `chunk`, in order.
fn payloads_of<'a>(payloads: &'a Payloads, calls: &[Encoded], chunk: &[usize]) -> Vec<&'a [u8]> {
    chunk.iter().map(|&i| payloads.of(&calls[i])).collect()
}

/// One chunk's round trip (its messages), bounded by its calls' earliest
/// deadline.
async fn push_chunk(
    backend: &dyn crate::backend::Broker,
    queue: &str,
    payloads: Vec<&[u8]>,
    deadline: tokio::time::Instant,
) -> Result<Result<Vec<Result<(), Error>>, Error>, tokio::time::error::Elapsed> {
    let mut pushed = tokio::time::timeout_at(deadline, backend.push_jobs(queue, &payloads)).await;
    // Garbage where the calls' priority lane would be: those calls go onto
    // their queue's own stream instead, as a single call does
    // (`place::place_until`).
    let (base, p) = rpc_protocol::priority::split_lane(queue);
    if let Ok(Ok(outcomes)) = &mut pushed {
        let wrong_type =
            |o: &Result<(), Error>| matches!(o, Err(e) if e.to_string().contains("WRONGTYPE"));
        if p != rpc_protocol::priority::DEFAULT && outcomes.iter().any(wrong_type) {
            tracing::warn!(
                queue,
                "the calls' priority lane is no stream; sending them on their queue's own"
            );
            let refused: Vec<usize> = (0..outcomes.len())
                .filter(|&i| wrong_type(&outcomes[i]))
                .collect();
            let again: Vec<&[u8]> = refused.iter().map(|&i| payloads[i]).collect();
            match tokio::time::timeout_at(deadline, backend.push_jobs(base, &again)).await {
                Ok(Ok(retried)) if retried.len() == refused.len() => {
                    for (i, outcome) in refused.into_iter().zip(retried) {
                        outcomes[i] = outcome;
                    }
                }
                Ok(Ok(retried)) => {
                    return Ok(Err(Error::Broker(format!(
                        "the broker told the fate of {} of {} jobs sent to `{base}`",
                        retried.len(),
                        refused.len()
                    ))))
                }
                Ok(Err(e)) => return Ok(Err(e)),
                Err(elapsed) => return Err(elapsed),
            }
        }
    }
    pushed
}

/// How many of the next messages (their sizes, in order) go in one chunk.
pub(super) fn chunk_len(sizes: impl Iterator<Item = usize>) -> usize {
    let mut bytes = 0;
    let mut count = 0;
    for size in sizes {
        if count == CHUNK_JOBS || (count > 0 && bytes >= CHUNK_BYTES) {
            break;
        }
        bytes += size;
        count += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn an_encoded_call_stays_small() {
        // A batch holds one per call, in fresh memory (see `Encoded`).
        assert!(std::mem::size_of::<crate::call::JobId>() <= 48);
        assert!(std::mem::size_of::<Encoded>() <= 112);
        assert!(std::mem::size_of::<Fate>() <= 16);
    }

    #[test]
    fn chunks_hold_at_most_a_thousand_jobs_or_about_a_mebibyte() {
        assert_eq!(chunk_len(std::iter::repeat_n(100, 5_000)), CHUNK_JOBS);
        assert_eq!(chunk_len(std::iter::repeat_n(100, 7)), 7);
        assert_eq!(chunk_len(std::iter::empty()), 0);
        // Past the byte budget by one message at most.
        assert_eq!(chunk_len(std::iter::repeat_n(300 * 1024, 10)), 4);
        // One message over the budget still goes, alone.
        assert_eq!(chunk_len(std::iter::repeat_n(5 * 1024 * 1024, 3)), 1);
    }

    #[test]
    fn a_call_s_own_options_win_over_the_batch_s() {
        let meta = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let own = CallOptions {
            timeout: Some(Duration::from_secs(1)),
            run_at: Some(std::time::SystemTime::UNIX_EPOCH),
            metadata: meta(&[("tenant", "a")]),
            ..CallOptions::default()
        };
        let batch = CallOptions {
            timeout: Some(Duration::from_secs(9)),
            max_attempts: Some(3),
            delay: Some(Duration::from_secs(5)),
            metadata: meta(&[("tenant", "b"), ("source", "import")]),
            ..CallOptions::default()
        };
        let options = merged(Some(&own), &batch);
        assert_eq!(options.timeout, Some(Duration::from_secs(1)));
        assert_eq!(options.max_attempts, Some(3));
        // Its own start time: the batch's delay does not apply.
        assert_eq!(options.delay, None);
        assert_eq!(options.metadata["tenant"], "a");
        assert_eq!(options.metadata["source"], "import");
        let options = merged(None, &batch);
        assert_eq!(options.delay, Some(Duration::from_secs(5)));
    }
}
