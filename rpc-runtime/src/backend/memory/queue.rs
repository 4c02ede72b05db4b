//! The memory broker's queue: jobs in, leases out (with the same
//! reclaim of idle leases as Redis), completions applied under one lock.
//! A queue name here may be a priority lane's (`Q^p`, `lanes.rs`): its
//! jobs and leases are the lane's, its schedule and dead letters its
//! queue's.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use rpc_protocol::limits::{is_client_id, DEFAULT_INBOX_TTL};
use rpc_protocol::stream::ALREADY_SCHEDULED;

use super::lanes::lane_free;
use super::registry::MemoryBackend;
use super::state::{entry_number, token as token_text, Inbox};
use crate::backend::control::DeadLetter;
use crate::backend::delivery::{CompleteError, Completion, Delivery};
use crate::backend::queue::Queue;
use crate::backend::reader::Reader;
use crate::backend::DEAD_LETTER_CAP;
use crate::error::Error;

#[async_trait]
impl Queue for MemoryBackend {
    fn describe(&self) -> String {
        format!("memory://{}", self.shared.name)
    }

    fn is_shared(&self) -> bool {
        false
    }

    fn inbox_name(&self, client_id: &str) -> String {
        format!("inbox:{client_id}")
    }

    fn result_name(&self, call_id: &str) -> String {
        format!("result:{call_id}")
    }

    fn is_inbox(&self, key: &str) -> bool {
        key.strip_prefix("inbox:").is_some_and(is_client_id)
    }

    async fn broker_time_ms(&self) -> Result<u64, Error> {
        // The broker is this process: its clock is ours.
        Ok(rpc_protocol::time::unix_ms(SystemTime::now()))
    }

    async fn open_reader(&self) -> Result<Box<dyn Reader>, Error> {
        Ok(Box::new(self.clone()))
    }

    async fn push_job(&self, queue: &str, payload: &[u8]) -> Result<(), Error> {
        self.push(queue, payload.to_vec());
        Ok(())
    }

    async fn push_jobs(
        &self,
        queue: &str,
        payloads: &[&[u8]],
    ) -> Result<Vec<Result<(), Error>>, Error> {
        // Under one lock, as one pipeline reaches Redis in one piece.
        let mut state = self.state();
        for payload in payloads {
            state.enqueue(queue, payload.to_vec(), false);
        }
        drop(state);
        self.shared.jobs_ready.notify_waiters();
        Ok(payloads.iter().map(|_| Ok(())).collect())
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
        state.seen(queue, consumer);
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
                    token: token_text(lease.enqueued_ms, *token),
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
        state.seen(queue, consumer);
        if let Some(q) = state.queues.get_mut(queue) {
            let now = Instant::now();
            for t in tokens {
                if let Some(lease) = entry_number(t).and_then(|t| q.leased.get_mut(&t)) {
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
        let token = entry_number(&delivery.token);
        // A dead letter is a new entry, with a token of its own (as XADD
        // to the dead-letter stream gives it on Redis).
        let dead_token = completion.dead_letter.is_some().then(|| {
            state.next_token += 1;
            token_text(
                rpc_protocol::time::unix_ms(SystemTime::now()),
                state.next_token,
            )
        });
        // The lease is the lane's; the dead letters are its queue's.
        let q = state.queues.entry(delivery.queue.clone()).or_default();
        let lease = token.and_then(|t| q.leased.remove(&t));
        if let (Some(reason), Some(dead_token)) = (completion.dead_letter.clone(), dead_token) {
            let dead = state.dead_letters_mut(&delivery.queue);
            if dead.len() >= DEAD_LETTER_CAP {
                dead.pop_front();
            }
            let payload = lease
                .map(|l| l.payload)
                .unwrap_or_else(|| delivery.payload.clone());
            dead.push_back(DeadLetter {
                token: dead_token,
                reason,
                payload,
            });
        }
        if let Some(payload) = &completion.requeue {
            match &completion.requeue_after {
                // Cancelled while the worker held it: queued flagged on its
                // lane, to be answered `cancelled`, not scheduled (as
                // complete.lua's `S`).
                Some((token, _))
                    if state
                        .cancelled
                        .get(lane_free(&delivery.queue))
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
                    let taken = state.schedule(&delivery.queue, token, payload.clone(), delay);
                    if let Err(payload) = taken {
                        state.next_token += 1;
                        let dead_token = token_text(
                            rpc_protocol::time::unix_ms(SystemTime::now()),
                            state.next_token,
                        );
                        let dead = state.dead_letters_mut(&delivery.queue);
                        if dead.len() >= DEAD_LETTER_CAP {
                            dead.pop_front();
                        }
                        dead.push_back(DeadLetter {
                            token: dead_token,
                            reason: ALREADY_SCHEDULED.to_owned(),
                            payload,
                        });
                    }
                }
                None => state.enqueue(&delivery.queue, payload.clone(), false),
            }
        }
        drop(state);
        self.shared.jobs_ready.notify_waiters();
        self.shared.replies_ready.notify_waiters();
        Ok(())
    }

    async fn forget_idle_consumers(
        &self,
        queue: &str,
        idle: Duration,
        keep: &[String],
    ) -> Result<usize, Error> {
        let mut state = self.state();
        let Some(q) = state.queues.get_mut(queue) else {
            return Ok(0);
        };
        let holding: std::collections::HashSet<&str> =
            q.leased.values().map(|l| l.consumer.as_str()).collect();
        let gone: Vec<String> = q
            .consumers
            .iter()
            .filter(|(name, seen)| {
                seen.elapsed() >= idle && !holding.contains(name.as_str()) && !keep.contains(name)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in &gone {
            q.consumers.remove(name);
        }
        Ok(gone.len())
    }

    async fn queues(&self) -> Result<Vec<String>, Error> {
        // Queues, not lanes: a lane's calls are its queue's (cancelling
        // on the queue reaches them).
        Ok(self.state().lane_free_queues())
    }
}
