//! The memory broker's read-only view: the same figures, excerpts and
//! searches as on Redis, read from the broker's state under its lock, so
//! an application that runs on `memory://` can show its own queues (a
//! worker's gauges, an embedded dashboard).
//!
//! Every answer is bounded the way Redis's is: lists by their `max` (and
//! [`MAX_ENTRIES_PER_READ`]), values by their window (and
//! [`MAX_WINDOW_BYTES`]).

use std::collections::BTreeMap;
use std::time::Instant;

use async_trait::async_trait;

use super::queue_figures::stats;
use super::registry::MemoryBackend;
use super::state::{entry_number, token, Queue, State};
use crate::backend::inspection::excerpts::{
    call_id_needle, DeadLetterExcerpt, Excerpt, Found, Lease, LeasedExcerpt, MessageExcerpt,
    SearchPage, Stream, MAX_ENTRIES_PER_READ, MAX_WINDOW_BYTES,
};
use crate::backend::inspection::figures::{InboxStats, LeasedJob, Ping, QueuedJob, ServiceStats};
use crate::backend::inspection::group_keys::{BusyGroupKeys, MAX_GROUP_KEYS_VISITED};
use crate::backend::inspection::scheduled::{attempt_and_job, ScheduledExcerpt, ScheduledJob};
use crate::backend::inspection::Inspection;
use crate::error::Error;
use crate::periodic::stored::{read_states, PeriodicState};

/// How much of a scheduled job's token an excerpt holds (as on Redis).
const TOKEN_WINDOW_BYTES: usize = 512;

/// `len` bytes of `value` from `offset` (at most [`MAX_WINDOW_BYTES`]),
/// with the value's length.
fn window(value: &[u8], offset: u64, len: usize) -> Excerpt {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(value.len());
    let end = start
        .saturating_add(len.min(MAX_WINDOW_BYTES))
        .min(value.len());
    Excerpt {
        bytes: value[start..end].to_vec(),
        len: value.len() as u64,
    }
}

/// A queued or leased job of a queue by token: its message.
fn job_message<'a>(q: &'a Queue, token: &str) -> Option<&'a [u8]> {
    let n = entry_number(token)?;
    if let Some(lease) = q.leased.get(&n) {
        return Some(&lease.payload);
    }
    q.ready
        .iter()
        .find(|r| r.token == n)
        .map(|r| r.payload.as_slice())
}

fn dead_excerpt(q: &Queue, token: &str, window_bytes: usize) -> Option<DeadLetterExcerpt> {
    let dead = q.dead.iter().find(|d| d.token == token)?;
    Some(DeadLetterExcerpt {
        token: dead.token.clone(),
        reason: Some(window(dead.reason.as_bytes(), 0, window_bytes)),
        message: Some(window(&dead.payload, 0, window_bytes)),
    })
}

/// The leased jobs of a queue in token order (Redis lists pending entries
/// by id), at most `max`.
fn leases(q: &Queue, max: usize) -> Vec<(u64, &super::state::Lease)> {
    let mut leased: Vec<_> = q.leased.iter().map(|(n, l)| (*n, l)).collect();
    leased.sort_by_key(|(n, _)| *n);
    leased.truncate(max.min(MAX_ENTRIES_PER_READ));
    leased
}

impl State {
    fn knows(&self, service: &str) -> bool {
        self.queues.contains_key(service)
            || self.scheduled.get(service).is_some_and(|s| !s.is_empty())
    }

    /// The jobs on `service`'s schedule, soonest due first.
    fn schedule_of(&self, service: &str) -> Vec<(&String, u64, &Vec<u8>)> {
        let mut jobs: Vec<_> = self
            .scheduled
            .get(service)
            .map(|s| s.iter().map(|(id, (due, m))| (id, *due, m)).collect())
            .unwrap_or_default();
        jobs.sort_by(|a, b| (a.1, a.0).cmp(&(b.1, b.0)));
        jobs
    }
}

#[async_trait]
impl Inspection for MemoryBackend {
    async fn ping(&self) -> Result<Ping, Error> {
        let started = Instant::now();
        drop(self.state());
        Ok(Ping {
            latency: started.elapsed(),
            server_version: Some(format!(
                "memory (rpc-runtime {})",
                env!("CARGO_PKG_VERSION")
            )),
        })
    }

    async fn services(&self) -> Result<Vec<String>, Error> {
        let mut services: Vec<String> = self.state().queues.keys().cloned().collect();
        services.sort();
        Ok(services)
    }

    async fn has_service(&self, service: &str) -> Result<bool, Error> {
        Ok(self.state().knows(service))
    }

    async fn service_stats(&self, service: &str) -> Result<Option<ServiceStats>, Error> {
        let state = self.state();
        Ok(state.queues.get(service).map(|q| stats(&state, service, q)))
    }

    async fn service_stats_bounded(&self, service: &str) -> Result<Option<ServiceStats>, Error> {
        self.service_stats(service).await
    }

    async fn leased(&self, service: &str, max: usize) -> Result<Option<Vec<LeasedJob>>, Error> {
        let state = self.state();
        let Some(q) = state.queues.get(service) else {
            return Ok(None);
        };
        let now = Instant::now();
        Ok(Some(
            leases(q, max)
                .into_iter()
                .map(|(n, l)| LeasedJob {
                    token: token(l.enqueued_ms, n),
                    consumer: l.consumer.clone(),
                    idle: now.duration_since(l.since),
                    deliveries: u64::from(l.deliveries),
                    payload: Some(l.payload.clone()),
                })
                .collect(),
        ))
    }

    async fn queued(&self, service: &str, max: usize) -> Result<Option<Vec<QueuedJob>>, Error> {
        let state = self.state();
        Ok(state.queues.get(service).map(|q| {
            q.ready
                .iter()
                .take(max.min(MAX_ENTRIES_PER_READ))
                .map(|r| QueuedJob {
                    token: token(r.enqueued_ms, r.token),
                    payload: r.payload.clone(),
                })
                .collect()
        }))
    }

    async fn inboxes(&self) -> Result<Vec<InboxStats>, Error> {
        let state = self.state();
        let now = Instant::now();
        let mut inboxes: Vec<InboxStats> = state
            .inboxes
            .iter()
            .filter(|(_, inbox)| inbox.expires > now)
            .map(|(name, inbox)| InboxStats {
                client: name.strip_prefix("inbox:").unwrap_or(name).to_owned(),
                replies: inbox.replies.len() as u64,
                expires_in: Some(inbox.expires.duration_since(now)),
            })
            .collect();
        inboxes.sort_by(|a, b| a.client.cmp(&b.client));
        Ok(inboxes)
    }

    async fn dead_letter_excerpts(
        &self,
        service: &str,
        after: Option<&str>,
        max: usize,
        window_bytes: usize,
    ) -> Result<Vec<DeadLetterExcerpt>, Error> {
        let state = self.state();
        let Some(q) = state.queues.get(service) else {
            return Ok(Vec::new());
        };
        let after = after.and_then(entry_number).unwrap_or(0);
        Ok(q.dead
            .iter()
            .filter(|d| entry_number(&d.token).is_some_and(|n| n > after))
            .take(max.min(MAX_ENTRIES_PER_READ))
            .filter_map(|d| dead_excerpt(q, &d.token, window_bytes))
            .collect())
    }

    async fn dead_letters_by_token(
        &self,
        service: &str,
        tokens: &[&str],
        window_bytes: usize,
    ) -> Result<Vec<Option<DeadLetterExcerpt>>, Error> {
        let state = self.state();
        let q = state.queues.get(service);
        Ok(tokens
            .iter()
            .map(|t| q.and_then(|q| dead_excerpt(q, t, window_bytes)))
            .collect())
    }

    async fn dead_letter_count(&self, service: &str) -> Result<u64, Error> {
        let state = self.state();
        Ok(state.queues.get(service).map_or(0, |q| q.dead.len() as u64))
    }

    async fn queued_excerpts(
        &self,
        service: &str,
        after: Option<&str>,
        max: usize,
        window_bytes: usize,
    ) -> Result<Option<Vec<MessageExcerpt>>, Error> {
        let state = self.state();
        let after = after.and_then(entry_number);
        Ok(state.queues.get(service).map(|q| {
            q.ready
                .iter()
                .filter(|r| after.is_none_or(|a| r.token > a))
                .take(max.min(MAX_ENTRIES_PER_READ))
                .map(|r| MessageExcerpt {
                    token: token(r.enqueued_ms, r.token),
                    message: Some(window(&r.payload, 0, window_bytes)),
                })
                .collect()
        }))
    }

    async fn leased_excerpts(
        &self,
        service: &str,
        max: usize,
        window_bytes: usize,
    ) -> Result<Option<Vec<LeasedExcerpt>>, Error> {
        let state = self.state();
        let Some(q) = state.queues.get(service) else {
            return Ok(None);
        };
        let now = Instant::now();
        Ok(Some(
            leases(q, max)
                .into_iter()
                .map(|(n, l)| LeasedExcerpt {
                    token: token(l.enqueued_ms, n),
                    lease: Lease {
                        consumer: l.consumer.clone(),
                        idle: now.duration_since(l.since),
                        deliveries: u64::from(l.deliveries),
                    },
                    message: Some(window(&l.payload, 0, window_bytes)),
                })
                .collect(),
        ))
    }

    async fn lease(&self, service: &str, token: &str) -> Result<Option<Lease>, Error> {
        let state = self.state();
        let lease = state
            .queues
            .get(service)
            .zip(entry_number(token))
            .and_then(|(q, n)| q.leased.get(&n));
        Ok(lease.map(|l| Lease {
            consumer: l.consumer.clone(),
            idle: Instant::now().duration_since(l.since),
            deliveries: u64::from(l.deliveries),
        }))
    }

    async fn message_excerpts(
        &self,
        service: &str,
        stream: Stream,
        tokens: &[&str],
        window_bytes: usize,
    ) -> Result<Vec<Option<MessageExcerpt>>, Error> {
        let state = self.state();
        let q = state.queues.get(service);
        Ok(tokens
            .iter()
            .map(|t| {
                let q = q?;
                let message = match stream {
                    Stream::Jobs => job_message(q, t)?,
                    Stream::Dead => &q.dead.iter().find(|d| d.token == *t)?.payload,
                };
                Some(MessageExcerpt {
                    token: (*t).to_owned(),
                    message: Some(window(message, 0, window_bytes)),
                })
            })
            .collect())
    }

    async fn entry_window(
        &self,
        service: &str,
        stream: Stream,
        token: &str,
        field: &str,
        offset: u64,
        len: usize,
    ) -> Result<Option<Excerpt>, Error> {
        let state = self.state();
        let Some(q) = state.queues.get(service) else {
            return Ok(None);
        };
        let value = match (stream, field) {
            (Stream::Jobs, rpc_protocol::stream::MESSAGE) => job_message(q, token),
            (Stream::Dead, rpc_protocol::stream::MESSAGE) => q
                .dead
                .iter()
                .find(|d| d.token == token)
                .map(|d| d.payload.as_slice()),
            (Stream::Dead, rpc_protocol::stream::REASON) => q
                .dead
                .iter()
                .find(|d| d.token == token)
                .map(|d| d.reason.as_bytes()),
            _ => None,
        };
        Ok(value.map(|v| window(v, offset, len)))
    }

    async fn kept_result_window(
        &self,
        call_id: &str,
        offset: u64,
        len: usize,
    ) -> Result<Option<Excerpt>, Error> {
        let state = self.state();
        let now = Instant::now();
        Ok(state
            .results
            .get(call_id)
            .filter(|(_, expires)| *expires > now)
            .map(|(body, _)| window(body, offset, len)))
    }

    async fn find_call(
        &self,
        service: &str,
        stream: Stream,
        call_id: &str,
        max_matches: usize,
        deadline: Instant,
    ) -> Result<Found, Error> {
        let needle = call_id_needle(call_id);
        let holds = |message: &[u8]| {
            message
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
        };
        let state = self.state();
        let Some(q) = state.queues.get(service) else {
            return Ok(Found {
                tokens: Vec::new(),
                finished: true,
            });
        };
        let mut matches: Vec<(u64, String)> = match stream {
            Stream::Jobs => q
                .ready
                .iter()
                .map(|r| (r.token, r.enqueued_ms, &r.payload))
                .chain(
                    q.leased
                        .iter()
                        .map(|(n, l)| (*n, l.enqueued_ms, &l.payload)),
                )
                .filter(|(_, _, m)| holds(m))
                .map(|(n, ms, _)| (n, token(ms, n)))
                .collect(),
            Stream::Dead => q
                .dead
                .iter()
                .filter(|d| holds(&d.payload))
                .filter_map(|d| Some((entry_number(&d.token)?, d.token.clone())))
                .collect(),
        };
        matches.sort_by_key(|m| std::cmp::Reverse(m.0));
        let finished = matches.len() <= max_matches && Instant::now() <= deadline;
        matches.truncate(max_matches);
        Ok(Found {
            tokens: matches.into_iter().map(|(_, t)| t).collect(),
            finished,
        })
    }

    async fn search_stream(
        &self,
        service: &str,
        stream: Stream,
        text: Option<&str>,
        before: Option<&str>,
        max: usize,
        _deadline: Instant,
    ) -> Result<SearchPage, Error> {
        let needle = text.map(call_id_needle);
        let holds = |message: &[u8]| match &needle {
            Some(n) => message.windows(n.len()).any(|w| w == n.as_bytes()),
            None => true,
        };
        let below = before.and_then(entry_number).unwrap_or(u64::MAX);
        let state = self.state();
        let Some(q) = state.queues.get(service) else {
            return Ok(SearchPage {
                tokens: Vec::new(),
                reached: None,
            });
        };
        let mut entries: Vec<(u64, String, bool)> = match stream {
            Stream::Jobs => q
                .ready
                .iter()
                .map(|r| (r.token, token(r.enqueued_ms, r.token), holds(&r.payload)))
                .chain(
                    q.leased
                        .iter()
                        .map(|(n, l)| (*n, token(l.enqueued_ms, *n), holds(&l.payload))),
                )
                .collect(),
            Stream::Dead => q
                .dead
                .iter()
                .filter_map(|d| Some((entry_number(&d.token)?, d.token.clone(), holds(&d.payload))))
                .collect(),
        };
        entries.retain(|(n, _, _)| *n < below);
        entries.sort_by_key(|e| std::cmp::Reverse(e.0));
        let max = max.max(1);
        let mut page = SearchPage {
            tokens: Vec::new(),
            reached: None,
        };
        for (i, (_, token, matches)) in entries.iter().enumerate() {
            if *matches {
                page.tokens.push(token.clone());
            }
            if page.tokens.len() >= max && i + 1 < entries.len() {
                page.reached = Some(token.clone());
                break;
            }
        }
        Ok(page)
    }

    async fn periodic_services(&self) -> Result<Vec<String>, Error> {
        let state = self.state();
        let mut services: Vec<String> = state
            .periodic
            .iter()
            .filter(|(_, r)| !r.definitions.is_empty() || !r.last.is_empty())
            .map(|(s, _)| s.clone())
            .collect();
        services.sort();
        Ok(services)
    }

    async fn periodic(&self, service: &str) -> Result<Option<Vec<PeriodicState>>, Error> {
        let state = self.state();
        let Some(records) = state.periodic.get(service) else {
            return Ok(state.queues.contains_key(service).then(Vec::new));
        };
        let definitions = records
            .definitions
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.clone()))
            .collect();
        let last = records
            .last
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.to_string().into_bytes()))
            .collect();
        Ok(Some(read_states(service, definitions, last)))
    }

    async fn scheduled(
        &self,
        service: &str,
        max: usize,
    ) -> Result<Option<Vec<ScheduledJob>>, Error> {
        let state = self.state();
        if !state.knows(service) {
            return Ok(None);
        }
        Ok(Some(
            state
                .schedule_of(service)
                .into_iter()
                .take(max.min(MAX_ENTRIES_PER_READ))
                .map(|(id, due_ms, payload)| {
                    let (attempt, job) = attempt_and_job(payload);
                    ScheduledJob {
                        id: id.clone(),
                        due_ms,
                        attempt,
                        job,
                        payload: payload.clone(),
                    }
                })
                .collect(),
        ))
    }

    async fn scheduled_excerpts(
        &self,
        service: &str,
        from: usize,
        max: usize,
        window_bytes: usize,
    ) -> Result<Option<Vec<ScheduledExcerpt>>, Error> {
        let state = self.state();
        if !state.knows(service) {
            return Ok(None);
        }
        Ok(Some(
            state
                .schedule_of(service)
                .into_iter()
                .skip(from)
                .take(max.min(MAX_ENTRIES_PER_READ))
                .map(|(id, due_ms, payload)| ScheduledExcerpt {
                    token: window(id.as_bytes(), 0, TOKEN_WINDOW_BYTES),
                    due_ms: Some(due_ms),
                    message: Some(window(payload, 0, window_bytes)),
                })
                .collect(),
        ))
    }

    async fn scheduled_window(
        &self,
        service: &str,
        id: &str,
        offset: u64,
        len: usize,
    ) -> Result<Option<ScheduledExcerpt>, Error> {
        let state = self.state();
        let job = state.scheduled.get(service).and_then(|s| s.get(id));
        Ok(job.map(|(due_ms, payload)| ScheduledExcerpt {
            token: window(id.as_bytes(), 0, TOKEN_WINDOW_BYTES),
            due_ms: Some(*due_ms),
            message: Some(window(payload, offset, len)),
        }))
    }

    async fn scheduled_count(&self, service: &str) -> Result<u64, Error> {
        let state = self.state();
        Ok(state.scheduled.get(service).map_or(0, |s| s.len() as u64))
    }

    async fn group_keys(&self, queue: &str, max_visited: usize) -> Result<BusyGroupKeys, Error> {
        Ok(self.state().group_keys_of(queue, max_visited))
    }

    async fn every_group_key(
        &self,
        max_visited: usize,
    ) -> Result<BTreeMap<String, BusyGroupKeys>, Error> {
        Ok(self
            .state()
            .group_keys(None, MAX_GROUP_KEYS_VISITED, max_visited))
    }
}
