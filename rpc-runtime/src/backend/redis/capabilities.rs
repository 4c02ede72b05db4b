//! [`RedisBackend`]'s capabilities: each broker trait wired to the file
//! that implements it (`leases.rs`, `completion.rs`, `schedule.rs`,
//! `cancel.rs`, `pause.rs`, `once.rs`, `periodic.rs`, `presence.rs`,
//! `inspect/`...).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::Value;

use super::completion::complete_on;
use super::connect::RedisBackend;
use super::reader::RedisReader;
use super::scan;
use super::scripts;
use crate::backend::control::{Cancelled, Control, DeadLetter, OnceClaim};
use crate::backend::delivery::{CompleteError, Completion, Delivery};
use crate::backend::inspection::excerpts::{
    DeadLetterExcerpt, Excerpt, Found, Lease, LeasedExcerpt, MessageExcerpt, SearchPage, Stream,
};
use crate::backend::inspection::figures::{InboxStats, LeasedJob, Ping, QueuedJob, ServiceStats};
use crate::backend::inspection::group_keys::BusyGroupKeys;
use crate::backend::inspection::scheduled::{ScheduledExcerpt, ScheduledJob};
use crate::backend::inspection::Inspection;
use crate::backend::presence::{Presence, Registered};
use crate::backend::queue::Queue;
use crate::backend::reader::Reader;
use crate::backend::schedule::{LifecyclePoll, Schedule};
use crate::backend::tick::{TickAnswer, TickRequest};
use crate::error::Error;
use crate::periodic::stored::PeriodicState;
use rpc_protocol::worker::{WorkerBeat, WorkerControl};

#[async_trait]
impl Queue for RedisBackend {
    fn describe(&self) -> String {
        self.url_for_logs.clone()
    }

    fn inbox_name(&self, client_id: &str) -> String {
        self.keys.inbox(client_id)
    }

    fn result_name(&self, call_id: &str) -> String {
        self.keys.result(call_id)
    }

    fn is_inbox(&self, key: &str) -> bool {
        self.keys.is_inbox(key)
    }

    async fn broker_time_ms(&self) -> Result<u64, Error> {
        let (secs, micros): (u64, u64) = self.commands.query(&redis::cmd("TIME")).await?;
        Ok(secs * 1000 + micros / 1000)
    }

    async fn open_reader(&self) -> Result<Box<dyn Reader>, Error> {
        Ok(Box::new(RedisReader::new(
            self.source.clone(),
            self.keys.clone(),
            self.commands.clone(),
            self.enqueue.clone(),
            self.doorbell.clone(),
        )))
    }

    async fn push_job(&self, queue: &str, payload: &[u8]) -> Result<(), Error> {
        let push = self.enqueue.push_cmd(&self.keys, queue, payload);
        match self.push_one(queue, push, payload.len()).await {
            Ok(_) => Ok(()),
            Err(e) if self.enqueue.turn_to_intake_after(&e) => {
                let push = self.enqueue.push_cmd(&self.keys, queue, payload);
                self.push_one(queue, push, payload.len()).await?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn push_jobs(
        &self,
        queue: &str,
        payloads: &[&[u8]],
    ) -> Result<Vec<Result<(), Error>>, Error> {
        self.push_many(queue, payloads).await
    }

    fn has_intake(&self) -> bool {
        true
    }

    async fn get_result(&self, call_id: &str) -> Result<Option<Vec<u8>>, Error> {
        let v: Option<Vec<u8>> = self
            .commands
            .query(redis::cmd("GET").arg(self.result_name(call_id)))
            .await?;
        Ok(v)
    }

    async fn prepare_queues(&self, queues: &[String]) -> Result<(), Error> {
        for q in queues {
            self.create_group(q).await?;
        }
        // Load the completion script up front, so the first completions,
        // which ride on the taker's read as `EVALSHA`, find it. (After a
        // restart that empties the script cache, the first one is refused
        // with NOSCRIPT, sent again the ordinary way, which loads it.)
        for script in scripts::LOADED_AT_START {
            let load = redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(script.source)
                .to_owned();
            if let Err(e) = self.commands.query::<Value>(&load).await {
                tracing::warn!(error = %e, "could not load a completion script; it is loaded on first use");
            }
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
        self.reclaim_idle(queue, consumer, min_idle, max).await
    }

    async fn extend(&self, queue: &str, consumer: &str, tokens: &[String]) -> Result<(), Error> {
        self.renew(queue, consumer, tokens).await
    }

    async fn complete(
        &self,
        delivery: &Delivery,
        completion: &Completion,
    ) -> Result<(), CompleteError> {
        complete_on(&self.commands, &self.keys, delivery, completion).await
    }

    async fn forget_idle_consumers(
        &self,
        queue: &str,
        idle: Duration,
        keep: &[String],
    ) -> Result<usize, Error> {
        self.forget_idle(queue, idle, keep).await
    }

    async fn sweep_acked(&self, queue: &str) -> Result<(), Error> {
        RedisBackend::sweep_acked(self, queue).await
    }

    async fn queues(&self) -> Result<Vec<String>, Error> {
        Ok(scan::services(&self.commands, &self.keys).await?)
    }
}

#[async_trait]
impl Presence for RedisBackend {
    async fn beat(&self, beat: &WorkerBeat) -> Result<Option<WorkerControl>, Error> {
        self.write_beat(beat).await
    }

    async fn unregister(&self, worker_id: &str) -> Result<(), Error> {
        self.remove_beat(worker_id).await
    }

    async fn registered(&self, service: &str, max: usize) -> Result<Vec<Registered>, Error> {
        self.read_registry(service, max).await
    }

    async fn beats(&self, ids: &[String]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        self.read_beats(ids).await
    }

    async fn set_control(&self, worker_id: &str, control: WorkerControl) -> Result<(), Error> {
        self.write_control(worker_id, control).await
    }
}

#[async_trait]
impl Schedule for RedisBackend {
    async fn poll_lifecycle(
        &self,
        queue: &str,
        max_move: usize,
        cancelled_after_ms: u64,
        max_cancelled: usize,
        sweep: Option<&str>,
    ) -> Result<LifecyclePoll, Error> {
        self.poll(queue, max_move, cancelled_after_ms, max_cancelled, sweep)
            .await
    }

    async fn enqueue_tick(&self, queue: &str, tick: &TickRequest<'_>) -> Result<TickAnswer, Error> {
        self.offer_tick(queue, tick).await
    }

    async fn periodic_jobs(&self, queue: &str) -> Result<Vec<PeriodicState>, Error> {
        self.list_periodic(queue).await
    }
}

#[async_trait]
impl Control for RedisBackend {
    async fn cancel_job(&self, queue: &str, id: &str) -> Result<Cancelled, Error> {
        self.cancel(queue, id).await
    }

    async fn cancelled_at(&self, queue: &str, id: &str) -> Result<Option<u64>, Error> {
        self.cancelled_score(queue, id).await
    }

    async fn set_paused(&self, queue: &str, paused: bool) -> Result<bool, Error> {
        self.pause(queue, paused).await
    }

    async fn is_paused(&self, queue: &str) -> Result<bool, Error> {
        self.paused(queue).await
    }

    async fn claim_once(
        &self,
        queue: &str,
        key: &str,
        id: &str,
        fingerprint: &str,
        ttl: Duration,
    ) -> Result<OnceClaim, Error> {
        self.claim(queue, key, id, fingerprint, ttl).await
    }

    async fn dead_letters(&self, queue: &str, max: usize) -> Result<Vec<DeadLetter>, Error> {
        self.list_dead_letters(queue, max).await
    }

    async fn remove_dead_letter(&self, queue: &str, token: &str) -> Result<bool, Error> {
        self.delete_dead_letter(queue, token).await
    }
}

#[async_trait]
impl Inspection for RedisBackend {
    async fn ping(&self) -> Result<Ping, Error> {
        self.view.ping().await
    }

    async fn services(&self) -> Result<Vec<String>, Error> {
        self.view.services().await
    }

    async fn has_service(&self, service: &str) -> Result<bool, Error> {
        self.view.has_service(service).await
    }

    async fn service_stats(&self, service: &str) -> Result<Option<ServiceStats>, Error> {
        self.view.service_stats(service).await
    }

    async fn service_stats_bounded(&self, service: &str) -> Result<Option<ServiceStats>, Error> {
        self.view.service_stats_bounded(service).await
    }

    async fn leased(&self, service: &str, max: usize) -> Result<Option<Vec<LeasedJob>>, Error> {
        self.view.leased(service, max).await
    }

    async fn queued(&self, service: &str, max: usize) -> Result<Option<Vec<QueuedJob>>, Error> {
        self.view.queued(service, max).await
    }

    async fn inboxes(&self) -> Result<Vec<InboxStats>, Error> {
        self.view.inboxes().await
    }

    async fn dead_letter_excerpts(
        &self,
        service: &str,
        after: Option<&str>,
        max: usize,
        window: usize,
    ) -> Result<Vec<DeadLetterExcerpt>, Error> {
        self.view
            .dead_letter_excerpts(service, after, max, window)
            .await
    }

    async fn dead_letters_by_token(
        &self,
        service: &str,
        tokens: &[&str],
        window: usize,
    ) -> Result<Vec<Option<DeadLetterExcerpt>>, Error> {
        self.view
            .dead_letters_by_token(service, tokens, window)
            .await
    }

    async fn dead_letter_count(&self, service: &str) -> Result<u64, Error> {
        self.view.dead_letter_count(service).await
    }

    async fn queued_excerpts(
        &self,
        service: &str,
        after: Option<&str>,
        max: usize,
        window: usize,
    ) -> Result<Option<Vec<MessageExcerpt>>, Error> {
        self.view.queued_excerpts(service, after, max, window).await
    }

    async fn leased_excerpts(
        &self,
        service: &str,
        max: usize,
        window: usize,
    ) -> Result<Option<Vec<LeasedExcerpt>>, Error> {
        self.view.leased_excerpts(service, max, window).await
    }

    async fn lease(&self, service: &str, token: &str) -> Result<Option<Lease>, Error> {
        self.view.lease(service, token).await
    }

    async fn message_excerpts(
        &self,
        service: &str,
        stream: Stream,
        tokens: &[&str],
        window: usize,
    ) -> Result<Vec<Option<MessageExcerpt>>, Error> {
        self.view
            .message_excerpts(service, stream, tokens, window)
            .await
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
        self.view
            .entry_window(service, stream, token, field, offset, len)
            .await
    }

    async fn kept_result_window(
        &self,
        call_id: &str,
        offset: u64,
        len: usize,
    ) -> Result<Option<Excerpt>, Error> {
        self.view.kept_result_window(call_id, offset, len).await
    }

    async fn find_call(
        &self,
        service: &str,
        stream: Stream,
        call_id: &str,
        max_matches: usize,
        deadline: Instant,
    ) -> Result<Found, Error> {
        self.view
            .find_call(service, stream, call_id, max_matches, deadline)
            .await
    }

    async fn search_stream(
        &self,
        service: &str,
        stream: Stream,
        text: Option<&str>,
        before: Option<&str>,
        max: usize,
        deadline: Instant,
    ) -> Result<SearchPage, Error> {
        self.view
            .search_stream(service, stream, text, before, max, deadline)
            .await
    }

    async fn periodic_services(&self) -> Result<Vec<String>, Error> {
        self.view.periodic_services().await
    }

    async fn periodic(&self, service: &str) -> Result<Option<Vec<PeriodicState>>, Error> {
        self.view.periodic(service).await
    }

    async fn scheduled(
        &self,
        service: &str,
        max: usize,
    ) -> Result<Option<Vec<ScheduledJob>>, Error> {
        self.view.scheduled(service, max).await
    }

    async fn scheduled_excerpts(
        &self,
        service: &str,
        from: usize,
        max: usize,
        window: usize,
    ) -> Result<Option<Vec<ScheduledExcerpt>>, Error> {
        self.view
            .scheduled_excerpts(service, from, max, window)
            .await
    }

    async fn scheduled_window(
        &self,
        service: &str,
        id: &str,
        offset: u64,
        len: usize,
    ) -> Result<Option<ScheduledExcerpt>, Error> {
        self.view.scheduled_window(service, id, offset, len).await
    }

    async fn scheduled_count(&self, service: &str) -> Result<u64, Error> {
        self.view.scheduled_count(service).await
    }

    async fn group_keys(&self, queue: &str, max_visited: usize) -> Result<BusyGroupKeys, Error> {
        self.view.group_keys(queue, max_visited).await
    }

    async fn every_group_key(
        &self,
        max_visited: usize,
    ) -> Result<BTreeMap<String, BusyGroupKeys>, Error> {
        self.view.every_group_key(max_visited).await
    }
}

impl RedisBackend {
    /// Sends `push`, which adds one job (of `bytes` bytes) to `queue`:
    /// gathered with the pushes sent at the same time on a single Redis,
    /// on its own (and the doorbell rung) on a Cluster.
    async fn push_one(
        &self,
        queue: &str,
        push: redis::Cmd,
        bytes: usize,
    ) -> redis::RedisResult<Value> {
        match &self.coalescer {
            Some(coalescer) => coalescer.push(push, bytes).await,
            None => self.doorbell.push_and_ring(queue, push).await,
        }
    }
}
