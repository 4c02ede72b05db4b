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
    complete_each, Backend, CompleteError, CompletedAndTaken, Completion, DeadLetter, Delivery,
    PushedAndPopped, Reader, DEAD_LETTER_CAP, DEFAULT_INBOX_TTL,
};
use super::{TickAnswer, TickMode, TickOutcome, TickRequest};
use crate::error::Error;
use crate::periodic::{read_states, PeriodicState};

#[derive(Default)]
struct Queue {
    /// Token, when it was queued (ms since the epoch), message.
    ready: VecDeque<(u64, u64, Vec<u8>)>,
    leased: HashMap<u64, Lease>,
    dead: VecDeque<DeadLetter>,
}

struct Lease {
    payload: Vec<u8>,
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
        state.next_token += 1;
        let token = state.next_token;
        state
            .queues
            .entry(queue.to_owned())
            .or_default()
            .ready
            .push_back((token, crate::wire::unix_ms(SystemTime::now()), payload));
        drop(state);
        self.shared.jobs_ready.notify_waiters();
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

    async fn schedule_job(
        &self,
        queue: &str,
        token: &str,
        payload: &[u8],
        delay: Duration,
    ) -> Result<u64, Error> {
        let due = crate::wire::unix_ms(SystemTime::now()).saturating_add(delay.as_millis() as u64);
        self.state()
            .scheduled
            .entry(queue.to_owned())
            .or_default()
            .insert(token.to_owned(), (due, payload.to_vec()));
        Ok(due)
    }

    async fn move_due_jobs(&self, queue: &str, max: usize) -> Result<usize, Error> {
        let now = crate::wire::unix_ms(SystemTime::now());
        let due: Vec<Vec<u8>> = {
            let mut state = self.state();
            let Some(schedule) = state.scheduled.get_mut(queue) else {
                return Ok(0);
            };
            let mut ready: Vec<(u64, String)> = schedule
                .iter()
                .filter(|(_, (due, _))| *due <= now)
                .map(|(token, (due, _))| (*due, token.clone()))
                .collect();
            ready.sort();
            ready.truncate(max.max(1));
            ready
                .into_iter()
                .filter_map(|(_, token)| schedule.remove(&token).map(|(_, payload)| payload))
                .collect()
        };
        let moved = due.len();
        for payload in due {
            self.push(queue, payload);
        }
        Ok(moved)
    }

    fn is_inbox(&self, key: &str) -> bool {
        key.strip_prefix("inbox:").is_some_and(super::is_client_id)
    }

    async fn broker_time_ms(&self) -> Result<u64, Error> {
        // The broker is this process: its clock is ours.
        Ok(crate::wire::unix_ms(SystemTime::now()))
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
        drop(state);
        if let Some(payload) = &completion.requeue {
            self.push(&delivery.queue, payload.clone());
        }
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
        let now = crate::wire::unix_ms(SystemTime::now());
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

#[async_trait]
impl Reader for MemoryBackend {
    async fn pop_replies(
        &mut self,
        inbox: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Vec<u8>>, Error> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Register interest before looking, so a reply pushed between the
            // look and the wait still wakes us.
            let notified = self.shared.replies_ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.state();
                if let Some(ib) = state.inboxes.get_mut(inbox) {
                    if !ib.replies.is_empty() {
                        let n = max.min(ib.replies.len());
                        let out: Vec<_> = ib.replies.drain(..n).collect();
                        if ib.replies.is_empty() {
                            state.inboxes.remove(inbox);
                        }
                        return Ok(out);
                    }
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn take_jobs(
        &mut self,
        queues: &[String],
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, Error> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.shared.jobs_ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.state();
                let now = Instant::now();
                let mut out = Vec::new();
                for name in queues {
                    let Some(q) = state.queues.get_mut(name) else {
                        continue;
                    };
                    while out.len() < max {
                        let Some((token, enqueued_ms, payload)) = q.ready.pop_front() else {
                            break;
                        };
                        q.leased.insert(
                            token,
                            Lease {
                                payload: payload.clone(),
                                consumer: consumer.to_owned(),
                                since: now,
                                deliveries: 1,
                                enqueued_ms,
                            },
                        );
                        out.push(Delivery {
                            queue: name.clone(),
                            token: token.to_string(),
                            payload,
                            deliveries: 1,
                            enqueued_ms: Some(enqueued_ms),
                        });
                    }
                }
                if !out.is_empty() {
                    return Ok(out);
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn complete_and_take(
        &mut self,
        done: &[(Delivery, Completion)],
        queues: &[String],
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> CompletedAndTaken {
        let not_completed = complete_each(done, |d, c| Backend::complete(&*self, d, c)).await;
        CompletedAndTaken {
            not_completed,
            taken: self.take_jobs(queues, consumer, max, wait).await,
        }
    }

    async fn push_and_pop(
        &mut self,
        queue: &str,
        payload: &[u8],
        inbox: &str,
        max: usize,
        wait: Duration,
    ) -> PushedAndPopped {
        let pushed = self.push_job(queue, payload).await;
        PushedAndPopped {
            pushed,
            popped: self.pop_replies(inbox, max, wait).await,
        }
    }
}
