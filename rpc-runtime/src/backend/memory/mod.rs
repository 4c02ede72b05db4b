//! The in-process backend (`memory://NAME`): the same lease / ack / reclaim /
//! dead-letter semantics as Redis, in one process, for tests, demos and
//! single-binary deployments.
//!
//! Brokers are registered by name in a process-wide table so that a client
//! and a worker that both connect to `memory://default` meet. The table holds
//! weak references: a broker lives while something uses it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use tokio::sync::Notify;

use super::{
    Backend, Cancelled, CompleteError, Completion, DeadLetter, Delivery, LifecyclePoll, OnceClaim,
    Reader, CANCEL_MEMORY, DEAD_LETTER_CAP, DEFAULT_INBOX_TTL,
};
use super::{TickAnswer, TickMode, TickOutcome, TickRequest};
use crate::error::Error;

mod reader;
use crate::periodic::{read_states, PeriodicState};

#[derive(Default)]
struct Queue {
    ready: VecDeque<Ready>,
    leased: HashMap<u64, Lease>,
    dead: VecDeque<DeadLetter>,
}

/// A queued job.
struct Ready {
    token: u64,
    /// When it was queued (ms since the epoch).
    enqueued_ms: u64,
    payload: Vec<u8>,
    /// Cancelled while it was scheduled (Redis's `c` field).
    cancelled: bool,
}

struct Lease {
    payload: Vec<u8>,
    cancelled: bool,
    enqueued_ms: u64,
    consumer: String,
    since: Instant,
    deliveries: u32,
}

struct Inbox {
    replies: VecDeque<Vec<u8>>,
    expires: Instant,
}

#[derive(Default)]
struct State {
    next_token: u64,
    queues: HashMap<String, Queue>,
    inboxes: HashMap<String, Inbox>,
    results: HashMap<String, (Vec<u8>, Instant)>,
    /// Per queue: scheduled jobs by token, with when they are due (ms
    /// since the epoch).
    scheduled: HashMap<String, HashMap<String, (u64, Vec<u8>)>>,
    /// Per queue: cancelled call ids, with when (ms since the epoch).
    cancelled: HashMap<String, HashMap<String, u64>>,
    /// Paused queues.
    paused: std::collections::HashSet<String>,
    /// Idempotency keys by (queue, key): the call id, its fingerprint, and
    /// when the key is forgotten.
    once: HashMap<(String, String), (String, String, Instant)>,
    /// Per queue: the periodic jobs' definitions and last ticks.
    periodic: HashMap<String, PeriodicRecords>,
}

/// One queue's periodic jobs, as Redis keeps them in two hashes.
#[derive(Default)]
struct PeriodicRecords {
    /// Name -> definition JSON.
    definitions: HashMap<String, Vec<u8>>,
    /// Name -> the last tick enqueued (ms since the epoch).
    last: HashMap<String, u64>,
}

struct Shared {
    name: String,
    state: Mutex<State>,
    jobs_ready: Notify,
    replies_ready: Notify,
}

/// An in-process broker.
#[derive(Clone)]
pub struct MemoryBackend {
    shared: Arc<Shared>,
}

fn registry() -> &'static Mutex<HashMap<String, Weak<Shared>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Weak<Shared>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

impl MemoryBackend {
    /// The broker registered under `name` (empty means `default`), created on first use.
    pub fn named(name: &str) -> Arc<dyn Backend> {
        let name = match name.trim_end_matches('/') {
            "" => "default",
            n => n,
        };
        let mut table = registry().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(shared) = table.get(name).and_then(Weak::upgrade) {
            return Arc::new(MemoryBackend { shared });
        }
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            state: Mutex::default(),
            jobs_ready: Notify::new(),
            replies_ready: Notify::new(),
        });
        table.insert(name.to_owned(), Arc::downgrade(&shared));
        table.retain(|_, w| w.strong_count() > 0);
        Arc::new(MemoryBackend { shared })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the queues half-updated
        // in a way that matters more than losing the broker, so keep going.
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, queue: &str, payload: Vec<u8>) {
        let mut state = self.state();
        state.enqueue(queue, payload, false);
        drop(state);
        self.shared.jobs_ready.notify_waiters();
    }

    /// Puts a job on the schedule, due after `delay`.
    fn schedule(
        state: &mut State,
        queue: &str,
        token: &str,
        payload: Vec<u8>,
        delay: Duration,
    ) -> u64 {
        let due =
            rpc_protocol::time::unix_ms(SystemTime::now()).saturating_add(delay.as_millis() as u64);
        state
            .scheduled
            .entry(queue.to_owned())
            .or_default()
            .insert(token.to_owned(), (due, payload));
        due
    }
}

impl State {
    /// Appends a job to a queue (the caller wakes the takers).
    fn enqueue(&mut self, queue: &str, payload: Vec<u8>, cancelled: bool) {
        self.next_token += 1;
        let token = self.next_token;
        self.queues
            .entry(queue.to_owned())
            .or_default()
            .ready
            .push_back(Ready {
                token,
                enqueued_ms: rpc_protocol::time::unix_ms(SystemTime::now()),
                payload,
                cancelled,
            });
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    fn describe(&self) -> String {
        format!("memory://{}", self.shared.name)
    }

    fn inbox_name(&self, client_id: &str) -> String {
        format!("inbox:{client_id}")
    }

    async fn poll_lifecycle(
        &self,
        queue: &str,
        max_move: usize,
        cancelled_after_ms: u64,
        max_cancelled: usize,
        _sweep: Option<&str>,
    ) -> Result<LifecyclePoll, Error> {
        let now_ms = rpc_protocol::time::unix_ms(SystemTime::now());
        let mut state = self.state();
        let mut due: Vec<(u64, String)> = state
            .scheduled
            .get(queue)
            .map(|s| {
                s.iter()
                    .filter(|(_, (due, _))| *due <= now_ms)
                    .map(|(token, (due, _))| (*due, token.clone()))
                    .collect()
            })
            .unwrap_or_default();
        due.sort();
        due.truncate(max_move.max(1));
        let mut moved = 0;
        for (_, token) in due {
            let payload = state
                .scheduled
                .get_mut(queue)
                .and_then(|s| s.remove(&token));
            if let Some((_, payload)) = payload {
                state.enqueue(queue, payload, false);
                moved += 1;
            }
        }
        let next_due_ms = state
            .scheduled
            .get(queue)
            .and_then(|s| s.values().map(|(due, _)| *due).min());
        let mut cancelled: Vec<(String, u64)> = state
            .cancelled
            .get(queue)
            .map(|c| {
                c.iter()
                    .filter(|(_, at)| **at > cancelled_after_ms)
                    .map(|(id, at)| (id.clone(), *at))
                    .collect()
            })
            .unwrap_or_default();
        cancelled.sort_by_key(|(_, at)| *at);
        cancelled.truncate(max_cancelled.max(1));
        let paused = state.paused.contains(queue);
        drop(state);
        if moved > 0 {
            self.shared.jobs_ready.notify_waiters();
        }
        Ok(LifecyclePoll {
            now_ms,
            moved,
            next_due_ms,
            paused,
            cancelled,
            dead_lettered: 0,
            sweep_cursor: None,
        })
    }

    async fn cancel_job(&self, queue: &str, id: &str) -> Result<Cancelled, Error> {
        let now_ms = rpc_protocol::time::unix_ms(SystemTime::now());
        let forget_before = now_ms.saturating_sub(CANCEL_MEMORY.as_millis() as u64);
        let mut state = self.state();
        let marks = state.cancelled.entry(queue.to_owned()).or_default();
        marks.insert(id.to_owned(), now_ms);
        marks.retain(|_, at| *at > forget_before);
        let scheduled = state.scheduled.get_mut(queue).and_then(|s| s.remove(id));
        let Some((_, payload)) = scheduled else {
            return Ok(Cancelled::Marked);
        };
        state.enqueue(queue, payload, true);
        drop(state);
        self.shared.jobs_ready.notify_waiters();
        Ok(Cancelled::Unscheduled)
    }

    async fn cancelled_at(&self, queue: &str, id: &str) -> Result<Option<u64>, Error> {
        Ok(self
            .state()
            .cancelled
            .get(queue)
            .and_then(|c| c.get(id).copied()))
    }

    async fn set_paused(&self, queue: &str, paused: bool) -> Result<bool, Error> {
        let mut state = self.state();
        Ok(if paused {
            state.paused.insert(queue.to_owned())
        } else {
            state.paused.remove(queue)
        })
    }

    async fn is_paused(&self, queue: &str) -> Result<bool, Error> {
        Ok(self.state().paused.contains(queue))
    }

    async fn claim_once(
        &self,
        queue: &str,
        key: &str,
        id: &str,
        fingerprint: &str,
        ttl: Duration,
    ) -> Result<OnceClaim, Error> {
        let now = Instant::now();
        let mut state = self.state();
        state.once.retain(|_, (_, _, until)| *until > now);
        let key = (queue.to_owned(), key.to_owned());
        if let Some((holder, theirs, _)) = state.once.get(&key) {
            let same = theirs == fingerprint;
            if holder == id && same {
                return Ok(OnceClaim::Claimed);
            }
            return Ok(OnceClaim::Held {
                id: holder.clone(),
                same,
            });
        }
        state
            .once
            .insert(key, (id.to_owned(), fingerprint.to_owned(), now + ttl));
        Ok(OnceClaim::Claimed)
    }

    async fn queues(&self) -> Result<Vec<String>, Error> {
        let mut queues: Vec<String> = self.state().queues.keys().cloned().collect();
        queues.sort();
        Ok(queues)
    }

    fn is_inbox(&self, key: &str) -> bool {
        key.strip_prefix("inbox:").is_some_and(super::is_client_id)
    }

    async fn broker_time_ms(&self) -> Result<u64, Error> {
        // The broker is this process: its clock is ours.
        Ok(rpc_protocol::time::unix_ms(SystemTime::now()))
    }

    fn result_name(&self, call_id: &str) -> String {
        format!("result:{call_id}")
    }

    async fn open_reader(&self) -> Result<Box<dyn Reader>, Error> {
        Ok(Box::new(self.clone()))
    }

    async fn push_job(&self, queue: &str, payload: &[u8]) -> Result<(), Error> {
        self.push(queue, payload.to_vec());
        Ok(())
    }

    async fn get_result(&self, call_id: &str) -> Result<Option<Vec<u8>>, Error> {
        let mut state = self.state();
        let now = Instant::now();
        state.results.retain(|_, (_, expires)| *expires > now);
        Ok(state.results.get(call_id).map(|(body, _)| body.clone()))
    }

    async fn prepare_queues(&self, queues: &[String]) -> Result<(), Error> {
        let mut state = self.state();
        for q in queues {
            state.queues.entry(q.clone()).or_default();
        }
        Ok(())
    }

    async fn reclaim(
        &self,
        queue: &str,
        consumer: &str,
        min_idle: Duration,
        max: usize,
    ) -> Result<Vec<Delivery>, Error> {
        let mut state = self.state();
        let Some(q) = state.queues.get_mut(queue) else {
            return Ok(Vec::new());
        };
        let now = Instant::now();
        let mut out = Vec::new();
        for (token, lease) in q.leased.iter_mut() {
            if out.len() >= max {
                break;
            }
            if now.duration_since(lease.since) >= min_idle {
                lease.since = now;
                lease.deliveries += 1;
                lease.consumer = consumer.to_owned();
                out.push(Delivery {
                    queue: queue.to_owned(),
                    token: token.to_string(),
                    payload: lease.payload.clone(),
                    deliveries: lease.deliveries,
                    enqueued_ms: Some(lease.enqueued_ms),
                    cancelled: lease.cancelled,
                });
            }
        }
        Ok(out)
    }

    async fn extend(&self, queue: &str, consumer: &str, tokens: &[String]) -> Result<(), Error> {
        let mut state = self.state();
        if let Some(q) = state.queues.get_mut(queue) {
            let now = Instant::now();
            for t in tokens {
                if let Some(lease) = t.parse().ok().and_then(|t: u64| q.leased.get_mut(&t)) {
                    if lease.consumer == consumer {
                        lease.since = now;
                    }
                }
            }
        }
        Ok(())
    }

    async fn complete(
        &self,
        delivery: &Delivery,
        completion: &Completion,
    ) -> Result<(), CompleteError> {
        let mut state = self.state();
        let now = Instant::now();
        if let (Some(body), Some((id, ttl))) = (&completion.reply, &completion.keep_result) {
            state.results.insert(id.clone(), (body.clone(), now + *ttl));
        }
        if let (Some(body), Some(to)) = (&completion.reply, &completion.reply_to) {
            let expires = now + completion.inbox_ttl.unwrap_or(DEFAULT_INBOX_TTL);
            let inbox = state.inboxes.entry(to.clone()).or_insert_with(|| Inbox {
                replies: VecDeque::new(),
                expires,
            });
            inbox.replies.push_back(body.clone());
            inbox.expires = expires;
            state.inboxes.retain(|_, inbox| inbox.expires > now);
        }
        let token: Option<u64> = delivery.token.parse().ok();
        let q = state.queues.entry(delivery.queue.clone()).or_default();
        let lease = token.and_then(|t| q.leased.remove(&t));
        if let Some(reason) = completion.dead_letter.clone() {
            if q.dead.len() >= DEAD_LETTER_CAP {
                q.dead.pop_front();
            }
            let payload = lease
                .map(|l| l.payload)
                .unwrap_or_else(|| delivery.payload.clone());
            q.dead.push_back(DeadLetter {
                token: delivery.token.clone(),
                reason,
                payload,
            });
        }
        if let Some(payload) = &completion.requeue {
            match &completion.requeue_after {
                // Cancelled while the worker held it: queued flagged, to be
                // answered `cancelled`, not scheduled (as complete.lua's `S`).
                Some((token, _))
                    if state
                        .cancelled
                        .get(&delivery.queue)
                        .is_some_and(|c| c.contains_key(token)) =>
                {
                    state.enqueue(&delivery.queue, payload.clone(), true)
                }
                Some((token, delay)) => {
                    let delay = match completion.requeue_at_ms {
                        Some(at) => Duration::from_millis(
                            at.saturating_sub(rpc_protocol::time::unix_ms(SystemTime::now())),
                        ),
                        None => *delay,
                    };
                    Self::schedule(&mut state, &delivery.queue, token, payload.clone(), delay);
                }
                None => state.enqueue(&delivery.queue, payload.clone(), false),
            }
        }
        drop(state);
        self.shared.jobs_ready.notify_waiters();
        self.shared.replies_ready.notify_waiters();
        Ok(())
    }

    async fn dead_letters(&self, queue: &str, max: usize) -> Result<Vec<DeadLetter>, Error> {
        let state = self.state();
        Ok(state
            .queues
            .get(queue)
            .map(|q| q.dead.iter().take(max).cloned().collect())
            .unwrap_or_default())
    }

    async fn remove_dead_letter(&self, queue: &str, token: &str) -> Result<bool, Error> {
        let mut state = self.state();
        let Some(q) = state.queues.get_mut(queue) else {
            return Ok(false);
        };
        let before = q.dead.len();
        q.dead.retain(|d| d.token != token);
        Ok(q.dead.len() < before)
    }

    // Periodic jobs: the same decisions as `tick.lua`, under the state lock
    // (so atomic like the script), on this process's clock.

    async fn enqueue_tick(&self, queue: &str, tick: &TickRequest<'_>) -> Result<TickAnswer, Error> {
        let now = rpc_protocol::time::unix_ms(SystemTime::now());
        let outcome = {
            let mut state = self.state();
            let records = state.periodic.entry(queue.to_owned()).or_default();
            let previous = records.last.get(tick.name).copied();
            let answer = |outcome| TickAnswer {
                outcome,
                broker_now_ms: now,
                previous_ms: previous,
                unreadable_previous: None,
            };
            let store = |records: &mut PeriodicRecords| {
                records
                    .definitions
                    .insert(tick.name.to_owned(), tick.definition.to_vec());
            };
            match tick.mode {
                TickMode::Register => {
                    store(records);
                    return Ok(answer(TickOutcome::Registered));
                }
                _ if tick.tick_ms > now => return Ok(answer(TickOutcome::Early)),
                _ if previous.is_some_and(|last| last >= tick.tick_ms) => {
                    return Ok(answer(TickOutcome::AlreadyEnqueued))
                }
                TickMode::CatchUp if previous.is_none() => {
                    store(records);
                    return Ok(answer(TickOutcome::Registered));
                }
                _ => {
                    store(records);
                    records.last.insert(tick.name.to_owned(), tick.tick_ms);
                    answer(TickOutcome::Enqueued)
                }
            }
        };
        // Pushed after the lock is released, like a retry; no other tick
        // of this name can be enqueued in between (the record is written).
        self.push(queue, tick.message.to_vec());
        Ok(outcome)
    }

    async fn periodic_jobs(&self, queue: &str) -> Result<Vec<PeriodicState>, Error> {
        let state = self.state();
        let Some(records) = state.periodic.get(queue) else {
            return Ok(Vec::new());
        };
        let pairs = |m: &HashMap<String, Vec<u8>>| -> Vec<(Vec<u8>, Vec<u8>)> {
            m.iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.clone()))
                .collect()
        };
        let last = records
            .last
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.to_string().into_bytes()))
            .collect();
        Ok(read_states(queue, pairs(&records.definitions), last))
    }
}
