//! The memory broker's read-only view: the same figures, excerpts and
//! searches as on Redis, read from the broker's state under its lock, so
//! an application that runs on `memory://` can show its own queues (a
//! worker's gauges, an embedded dashboard).
//!
//! A service here is a queue with all its priority lanes, read together
//! (`service_view.rs`): its figures and lists count every lane's calls,
//! and `services` lists no lane of its own.
//!
//! Every answer is bounded the way Redis's is: lists by their `max` (and
//! [`MAX_ENTRIES_PER_READ`]), values by their window (and
//! [`MAX_WINDOW_BYTES`]).

use std::collections::BTreeMap;
use std::time::Instant;

use async_trait::async_trait;

use super::lanes::lane_free;
use super::registry::MemoryBackend;
use super::state::{entry_number, token, State};
use crate::backend::control::DeadLetter;
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

fn dead_excerpt(dead: &DeadLetter, window_bytes: usize) -> DeadLetterExcerpt {
    DeadLetterExcerpt {
        token: dead.token.clone(),
        reason: Some(window(dead.reason.as_bytes(), 0, window_bytes)),
        message: Some(window(&dead.payload, 0, window_bytes)),
    }
}

impl State {
    /// The jobs on `service`'s schedule, soonest due first.
    fn schedule_of(&self, service: &str) -> Vec<(&String, u64, &Vec<u8>)> {
        let mut jobs: Vec<_> = self
            .scheduled
            .get(lane_free(service))
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
        Ok(self.state().lane_free_queues())
    }

    async fn has_service(&self, service: &str) -> Result<bool, Error> {
        Ok(self.state().knows(service))
    }

    async fn service_stats(&self, service: &str) -> Result<Option<ServiceStats>, Error> {
        Ok(self.state().view(service).map(|v| v.stats(service)))
    }

    async fn service_stats_bounded(&self, service: &str) -> Result<Option<ServiceStats>, Error> {
        self.service_stats(service).await
    }

    async fn leased(&self, service: &str, max: usize) -> Result<Option<Vec<LeasedJob>>, Error> {
        let state = self.state();
        let Some(view) = state.view(service) else {
            return Ok(None);
        };
        let now = Instant::now();
        Ok(Some(
            view.leased()
                .into_iter()
                .take(max.min(MAX_ENTRIES_PER_READ))
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
        Ok(state.view(service).map(|view| {
            view.ready()
                .into_iter()
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
        let Some(dead) = state.dead_letters(service) else {
            return Ok(Vec::new());
        };
        let after = after.and_then(entry_number).unwrap_or(0);
        Ok(dead
            .iter()
            .filter(|d| entry_number(&d.token).is_some_and(|n| n > after))
            .take(max.min(MAX_ENTRIES_PER_READ))
            .map(|d| dead_excerpt(d, window_bytes))
            .collect())
    }

    async fn dead_letters_by_token(
        &self,
        service: &str,
        tokens: &[&str],
        window_bytes: usize,
    ) -> Result<Vec<Option<DeadLetterExcerpt>>, Error> {
        let state = self.state();
        let dead = state.dead_letters(service);
        Ok(tokens
            .iter()
            .map(|t| {
                let d = dead?.iter().find(|d| d.token == *t)?;
                Some(dead_excerpt(d, window_bytes))
            })
            .collect())
    }

    async fn dead_letter_count(&self, service: &str) -> Result<u64, Error> {
        let state = self.state();
        Ok(state.dead_letters(service).map_or(0, |d| d.len() as u64))
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
        Ok(state.view(service).map(|view| {
            view.ready()
                .into_iter()
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
        let Some(view) = state.view(service) else {
            return Ok(None);
        };
        let now = Instant::now();
        Ok(Some(
            view.leased()
                .into_iter()
                .take(max.min(MAX_ENTRIES_PER_READ))
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
            .view(service)
            .zip(entry_number(token))
            .and_then(|(view, n)| view.lease(n));
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
        let view = state.view(service);
        Ok(tokens
            .iter()
            .map(|t| {
                let view = view.as_ref()?;
                let message = match stream {
                    Stream::Jobs => view.job_message(t)?,
                    Stream::Dead => &view.dead_letter(t)?.payload,
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
        let Some(view) = state.view(service) else {
            return Ok(None);
        };
        let value = match (stream, field) {
            (Stream::Jobs, rpc_protocol::stream::MESSAGE) => view.job_message(token),
            (Stream::Dead, rpc_protocol::stream::MESSAGE) => {
                view.dead_letter(token).map(|d| d.payload.as_slice())
            }
            (Stream::Dead, rpc_protocol::stream::REASON) => {
                view.dead_letter(token).map(|d| d.reason.as_bytes())
            }
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
        let Some(view) = state.view(service) else {
            return Ok(Found {
                tokens: Vec::new(),
                finished: true,
            });
        };
        let mut matches: Vec<(u64, String)> = match stream {
            Stream::Jobs => view
                .ready()
                .into_iter()
                .map(|r| (r.token, r.enqueued_ms, &r.payload))
                .chain(
                    view.leased()
                        .into_iter()
                        .map(|(n, l)| (n, l.enqueued_ms, &l.payload)),
                )
                .filter(|(_, _, m)| holds(m))
                .map(|(n, ms, _)| (n, token(ms, n)))
                .collect(),
            Stream::Dead => view
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
        let Some(view) = state.view(service) else {
            return Ok(SearchPage {
                tokens: Vec::new(),
                reached: None,
            });
        };
        let mut entries: Vec<(u64, String, bool)> = match stream {
            Stream::Jobs => view
                .ready()
                .into_iter()
                .map(|r| (r.token, token(r.enqueued_ms, r.token), holds(&r.payload)))
                .chain(
                    view.leased()
                        .into_iter()
                        .map(|(n, l)| (n, token(l.enqueued_ms, n), holds(&l.payload))),
                )
                .collect(),
            Stream::Dead => view
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
        let Some(records) = state.periodic.get(lane_free(service)) else {
            return Ok(state.view(service).is_some().then(Vec::new));
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
        let job = state
            .scheduled
            .get(lane_free(service))
            .and_then(|s| s.get(id));
        Ok(job.map(|(due_ms, payload)| ScheduledExcerpt {
            token: window(id.as_bytes(), 0, TOKEN_WINDOW_BYTES),
            due_ms: Some(*due_ms),
            message: Some(window(payload, offset, len)),
        }))
    }

    async fn scheduled_count(&self, service: &str) -> Result<u64, Error> {
        let state = self.state();
        Ok(state
            .scheduled
            .get(lane_free(service))
            .map_or(0, |s| s.len() as u64))
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
