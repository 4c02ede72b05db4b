//! The figures of the operator's view on Redis: `PING`, the services (a
//! `SCAN` for jobs streams, on every master of a Cluster), each queue's
//! counts (`XINFO`, `XPENDING`, `XLEN`), its leased and queued jobs, and
//! the clients' inboxes.
//!
//! How Redis's answers become the figures:
//!
//! * **queued**: XINFO GROUPS `lag`; where Redis cannot say, the stream
//!   length minus the leased entries, which is exact because workers
//!   delete every entry they ack;
//! * **leased**: the group's pending entries;
//! * **entries added**: XINFO STREAM `entries-added` (Redis 7+).
//!
//! A queue's figures are those of its default lane's stream summed with
//! its other priority lanes' streams (`lanes.rs`), consumers listed once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use redis::streams::{StreamPendingReply, StreamRangeReply};
use redis::{FromRedisValue, Value};
use rpc_protocol::priority::DEFAULT;
use rpc_protocol::stream::GROUP;

use super::super::read_only::ReadOnlyScript;
use super::super::scan;
use super::view::{entry_time_ms, message_of, RedisView};
use crate::backend::inspection::figures::{InboxStats, LeasedJob, Ping, QueuedJob, ServiceStats};
use crate::backend::inspection::lanes::empty_lanes;
use crate::error::Error;

impl RedisView {
    /// Sends `PING` and asks for the server's version.
    pub(crate) async fn ping(&self) -> Result<Ping, Error> {
        let started = Instant::now();
        let _: Value = self.query(&redis::cmd("PING")).await?;
        let latency = started.elapsed();
        let info: Value = self.query(redis::cmd("INFO").arg("server")).await?;
        let info = match info {
            // A Cluster answers keyless commands from one node; a reply per
            // node (a map) is possible with other routings.
            Value::Map(mut nodes) if !nodes.is_empty() => nodes.swap_remove(0).1,
            other => other,
        };
        let text = String::from_redis_value(info).unwrap_or_default();
        let server_version = text
            .lines()
            .find_map(|line| line.strip_prefix("redis_version:"))
            .map(|v| v.trim().to_owned());
        Ok(Ping {
            latency,
            server_version,
        })
    }

    /// The services that have a jobs stream under this prefix, sorted:
    /// `SCAN MATCH P:{*}:jobs` (on every master of a Cluster).
    pub(crate) async fn services(&self) -> Result<Vec<String>, Error> {
        scan::services(&self.connection, &self.keys)
            .await
            .map_err(|e| self.broker(e))
    }

    /// Whether `service` exists here: it has a jobs stream, or calls wait
    /// on its schedule or intake though no worker made its stream yet (a
    /// delayed call sent before the first worker started).
    pub(crate) async fn has_service(&self, service: &str) -> Result<bool, Error> {
        for key in [
            self.keys.jobs(service),
            self.keys.schedule(service),
            self.keys.intake(service),
        ] {
            if self.exists(&key).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The figures of one service's queue; `Ok(None)` if the service has no
    /// jobs stream (unknown, or never sent a job).
    pub(crate) async fn service_stats(&self, service: &str) -> Result<Option<ServiceStats>, Error> {
        let jobs = self.keys.jobs(service);
        if !self.exists(&jobs).await? {
            return Ok(None);
        }
        let stream: HashMap<String, Value> = self
            .query(redis::cmd("XINFO").arg("STREAM").arg(&jobs))
            .await?;
        let number = |name: &str| {
            stream
                .get(name)
                .and_then(|v| u64::from_redis_value(v.clone()).ok())
        };
        let figures = (number("length").unwrap_or(0), number("entries-added"));
        self.stats_with(service, figures).await.map(Some)
    }

    /// The figures of [`service_stats`](Self::service_stats) without
    /// reading the jobs stream's first and last entries, which `XINFO
    /// STREAM` sends whole (16 MB per service with 8 MB messages): for
    /// pages that must stay small. Runs the read-only script
    /// `stream_figures.lua` (`+evalsha_ro +script|load`).
    pub(crate) async fn service_stats_bounded(
        &self,
        service: &str,
    ) -> Result<Option<ServiceStats>, Error> {
        let jobs = self.keys.jobs(service);
        let reply = self
            .read_only(ReadOnlyScript::StreamFigures, &[&jobs], &[])
            .await?;
        let Value::Array(parts) = reply else {
            return Ok(None);
        };
        let number = |i: usize| {
            parts
                .get(i)
                .and_then(|v| u64::from_redis_value(v.clone()).ok())
        };
        let figures = (number(0).unwrap_or(0), number(1));
        self.stats_with(service, figures).await.map(Some)
    }

    /// The figures of a service whose default lane's jobs stream has
    /// `stream_length` entries and has had `entries_added`: that stream's
    /// summed with its other priority lanes' (`lanes.rs`), as a service's
    /// shards are, and its dead letters, which the lanes share.
    async fn stats_with(
        &self,
        service: &str,
        figures: (u64, Option<u64>),
    ) -> Result<ServiceStats, Error> {
        let mut parts = vec![self.stream_stats(service, DEFAULT, figures).await?];
        parts.extend(self.other_lane_stats(service).await?);
        let dead_letters: u64 = self
            .query(redis::cmd("XLEN").arg(self.keys.dead(service)))
            .await?;
        let mut total = ServiceStats::sum_of(service, 1, parts)
            .ok_or_else(|| self.unexpected("the default lane's figures"))?;
        total.dead_letters = dead_letters;
        Ok(total)
    }

    /// The figures of lane `priority`'s jobs stream of `service` (no dead
    /// letters: the lanes share them), which has `stream_length` entries
    /// and has had `entries_added`.
    pub(super) async fn stream_stats(
        &self,
        service: &str,
        priority: u8,
        (stream_length, entries_added): (u64, Option<u64>),
    ) -> Result<ServiceStats, Error> {
        let jobs = self.keys.jobs_at(service, priority);
        let group = self.group(&jobs).await?;
        let pending: StreamPendingReply = match &group {
            Some(_) => {
                self.query(redis::cmd("XPENDING").arg(&jobs).arg(GROUP))
                    .await?
            }
            None => StreamPendingReply::Empty,
        };
        let leased = pending.count() as u64;
        let queued = match group.as_ref().and_then(|g| g.lag) {
            Some(lag) => lag as u64,
            // Redis 6, or entries deleted before being delivered: every
            // entry in the stream is queued or leased, as workers delete
            // what they ack.
            None => stream_length.saturating_sub(leased),
        };
        let consumers = match group {
            Some(_) => self.consumers(&jobs).await?,
            None => Vec::new(),
        };
        let oldest_leased_age = match &pending {
            StreamPendingReply::Data(data) => {
                let now = self.server_time_ms().await?;
                entry_time_ms(&data.start_id)
                    .map(|added| Duration::from_millis(now.saturating_sub(added)))
            }
            _ => None,
        };
        let mut lanes = empty_lanes();
        for lane in lanes.iter_mut().filter(|l| l.priority == priority) {
            lane.queued = queued;
        }
        Ok(ServiceStats {
            service: service.to_owned(),
            shards: 1,
            queued,
            lanes,
            leased,
            dead_letters: 0,
            stream_length,
            entries_added,
            consumers,
            oldest_leased_age,
        })
    }

    /// Up to `max` leased jobs, oldest lease first, with their messages
    /// (`XPENDING` extended form, then `XRANGE` of those ids); `Ok(None)` for
    /// an unknown service.
    pub(crate) async fn leased(
        &self,
        service: &str,
        max: usize,
    ) -> Result<Option<Vec<LeasedJob>>, Error> {
        let Some((jobs, pending)) = self.oldest_leases(service, max.min(1_000_000)).await? else {
            return Ok(None);
        };
        if pending.is_empty() {
            return Ok(Some(Vec::new()));
        }
        // One XRANGE per id, in one pipeline (one slot: the queue's).
        let mut pipe = redis::pipe();
        for row in &pending {
            pipe.cmd("XRANGE").arg(&jobs).arg(&row.id).arg(&row.id);
        }
        let entries: Vec<StreamRangeReply> = self.pipeline(&pipe).await?;
        let jobs = pending
            .into_iter()
            .zip(entries)
            .map(|(row, entry)| LeasedJob {
                payload: entry.ids.first().map(message_of),
                token: row.id,
                consumer: row.consumer,
                idle: Duration::from_millis(row.last_delivered_ms as u64),
                deliveries: row.times_delivered as u64,
            })
            .collect();
        Ok(Some(jobs))
    }

    /// Up to `max` queued jobs, oldest first: the entries after the group's
    /// last delivered id (all entries if no worker created the group yet);
    /// `Ok(None)` for an unknown service.
    pub(crate) async fn queued(
        &self,
        service: &str,
        max: usize,
    ) -> Result<Option<Vec<QueuedJob>>, Error> {
        let jobs = self.keys.jobs(service);
        if !self.exists(&jobs).await? {
            return Ok(None);
        }
        if max == 0 {
            return Ok(Some(Vec::new()));
        }
        let start = match self.group(&jobs).await? {
            Some(group) => format!("({}", group.last_delivered_id),
            None => "-".to_owned(),
        };
        let range: StreamRangeReply = self
            .query(
                redis::cmd("XRANGE")
                    .arg(&jobs)
                    .arg(start)
                    .arg("+")
                    .arg("COUNT")
                    .arg(max.min(1_000_000)),
            )
            .await?;
        let queued = range
            .ids
            .iter()
            .map(|entry| QueuedJob {
                token: entry.id.clone(),
                payload: message_of(entry),
            })
            .collect();
        Ok(Some(queued))
    }

    /// The clients' inboxes under this prefix (`P:inbox:{client}`), with
    /// the replies waiting in each and when it expires, sorted by client: a
    /// long list nobody drains is a client that died or stopped reading.
    pub(crate) async fn inboxes(&self) -> Result<Vec<InboxStats>, Error> {
        let keys = self
            .scan_masters(&self.keys.inbox_pattern(), "list")
            .await
            .map_err(|e| self.broker(e))?;
        let mut inboxes = Vec::with_capacity(keys.len());
        for key in &keys {
            let Some(client) = self.keys.client_of_inbox(key) else {
                continue;
            };
            let mut pipe = redis::pipe();
            pipe.cmd("LLEN").arg(key).cmd("PTTL").arg(key);
            let (replies, ttl_ms): (u64, i64) = self.pipeline(&pipe).await?;
            // -2: expired since the scan; -1: no expiry (not one of ours).
            if ttl_ms == -2 {
                continue;
            }
            inboxes.push(InboxStats {
                client: client.to_owned(),
                replies,
                expires_in: u64::try_from(ttl_ms).ok().map(Duration::from_millis),
            });
        }
        inboxes.sort_by(|a, b| a.client.cmp(&b.client));
        Ok(inboxes)
    }
}
