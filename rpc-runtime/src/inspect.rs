//! A read-only view of the queues in Redis, for operators: `rpc stats`,
//! `rpc top`, the dashboard.
//!
//! It reads the keys `docs/PROTOCOL.md` describes (`P:{Service}:jobs` and its
//! consumer group `workers`, `P:{Service}:dead`, `P:inbox:{client}`,
//! `P:result:{call}`, and the periodic jobs' hashes in `periodic.rs`) and
//! writes nothing, so it
//! is safe to point at a production Redis, and an ACL user allowed only
//! read commands is enough for it (the operator rules in
//! `docs/PROTOCOL.md`, "ACL"). It sits beside the backend rather than behind
//! the [`Backend`](crate::backend::Backend) trait: workers and clients need
//! none of this, and the memory backend has no separate process to inspect.
//!
//! What the figures mean, in the protocol's terms:
//!
//! * **queued**: entries not yet delivered to the group (XINFO GROUPS `lag`;
//!   where Redis cannot say, the stream length minus the leased entries,
//!   which is exact because workers delete every entry they ack);
//! * **leased**: delivered and not yet acked (the group's pending entries);
//! * **dead letters**: entries of the dead-letter stream;
//! * **entries added**: every entry ever added to the jobs stream (Redis 7+),
//!   the basis of "jobs in per second" (see [`Rates`]).
//!
//! Pages that must stay small whatever the queues hold read through
//! `excerpts` (values cut to a window inside Redis, with their full
//! lengths) and `find` (a call looked up by id inside Redis, in bounded
//! steps); those need `+evalsha_ro +script|load +xrevrange +zscore`
//! besides the read commands above.
//!
//! Ages are measured against Redis's own clock (`TIME`), so a skewed clock on
//! the operator's machine does not distort them; [`human_time`] writes them
//! (and due times) for people, the same in every view.
//!
//! ```no_run
//! # async fn f() -> Result<(), rpc_runtime::Error> {
//! let inspector = rpc_runtime::Inspector::connect("redis://127.0.0.1:6379/", "rpc").await?;
//! for service in inspector.services().await? {
//!     if let Some(stats) = inspector.service_stats(&service).await? {
//!         println!("{service}: {} queued, {} leased", stats.queued, stats.leased);
//!     }
//! }
//! # Ok(()) }
//! ```

use std::collections::HashMap;

use rpc_protocol::Keys;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::streams::{StreamId, StreamRangeReply};
use redis::streams::{StreamInfoGroupsReply, StreamPendingCountReply, StreamPendingReply};
use redis::{FromRedisValue, Value};

use crate::backend::redis::read_only::ReadOnlyScript;
use crate::backend::redis::{parse_target, redact, scan, scan_all, Commands as Connection, GROUP};
use crate::error::Error;

mod excerpts;
mod figures;
mod find;
pub mod human_time;
mod periodic;
mod scheduled;

pub use excerpts::{
    DeadLetterExcerpt, Excerpt, Lease, LeasedExcerpt, MessageExcerpt, Stream, MAX_ENTRIES_PER_READ,
    MAX_WINDOW_BYTES,
};
pub use figures::{ConsumerStats, InboxStats, LeasedJob, Ping, QueuedJob, Rates, ServiceStats};
pub use find::Found;
pub use scheduled::{ScheduledExcerpt, ScheduledJob};

/// How long one command may take before the inspector reports Redis as
/// unreachable.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The stream field holding the message (`docs/PROTOCOL.md`).
const FIELD: &str = "m";

/// A read-only connection to the queues of one key prefix. Cloning is
/// cheap and shares the connection.
#[derive(Clone)]
pub struct Inspector {
    connection: Connection,
    keys: Keys,
    url_for_errors: String,
}

impl Inspector {
    /// Connects to `url` (`redis://`, `rediss://`, `redis+unix://`, or
    /// `redis+cluster://host:port,...` for a Cluster) to inspect the queues
    /// under `prefix`. Fails with [`Error::InvalidUrl`] or, when Redis does
    /// not answer or refuses the credentials, [`Error::Broker`].
    pub async fn connect(url: &str, prefix: &str) -> Result<Inspector, Error> {
        if url.trim().starts_with("memory://") {
            return Err(Error::InvalidUrl {
                url: url.to_owned(),
                reason: "a memory:// broker lives inside one process; only Redis can be inspected"
                    .to_owned(),
            });
        }
        let target = parse_target(url.trim())?;
        if target.nodes.iter().any(|n| n.starts_with("rediss://")) {
            // rustls needs a process-wide crypto provider; one already
            // installed is just as good.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let invalid = |e: redis::RedisError| Error::InvalidUrl {
            url: redact(url),
            reason: e.to_string(),
        };
        let unreachable =
            |e: redis::RedisError| Error::Broker(format!("cannot connect to {}: {e}", redact(url)));
        let connection = if target.cluster {
            let mut builder = ClusterClient::builder(target.nodes.clone())
                .connection_timeout(CONNECT_TIMEOUT)
                .response_timeout(COMMAND_TIMEOUT)
                .retries(1);
            if let Some(certs) = target.tls {
                builder = builder.certs(certs);
            }
            let client = builder.build().map_err(invalid)?;
            Connection::Cluster(client.get_async_connection().await.map_err(unreachable)?)
        } else {
            let node = target.nodes[0].as_str();
            let client = match target.tls {
                Some(certs) => redis::Client::build_with_tls(node, certs),
                None => redis::Client::open(node),
            }
            .map_err(invalid)?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(COMMAND_TIMEOUT))
                .set_number_of_retries(1);
            let manager = ConnectionManager::new_with_config(client, config)
                .await
                .map_err(unreachable)?;
            Connection::Single(manager)
        };
        Ok(Inspector {
            connection,
            keys: Keys::new(prefix),
            url_for_errors: redact(url),
        })
    }

    /// The URL this inspector reads, without its password.
    pub fn url(&self) -> &str {
        &self.url_for_errors
    }

    /// Sends `PING` and asks for the server's version.
    pub async fn ping(&self) -> Result<Ping, Error> {
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
    pub async fn services(&self) -> Result<Vec<String>, Error> {
        scan::services(&self.connection, &self.keys)
            .await
            .map_err(|e| self.broker(e))
    }

    /// Whether `service` exists here: it has a jobs stream, or calls wait
    /// on its schedule or intake though no worker made its stream yet (a
    /// delayed call sent before the first worker started).
    pub async fn has_service(&self, service: &str) -> Result<bool, Error> {
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
    pub async fn service_stats(&self, service: &str) -> Result<Option<ServiceStats>, Error> {
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
    pub async fn service_stats_bounded(
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

    /// The figures of a service whose jobs stream has `stream_length`
    /// entries and has had `entries_added`.
    async fn stats_with(
        &self,
        service: &str,
        (stream_length, entries_added): (u64, Option<u64>),
    ) -> Result<ServiceStats, Error> {
        let jobs = self.keys.jobs(service);
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
        let dead_letters: u64 = self
            .query(redis::cmd("XLEN").arg(self.keys.dead(service)))
            .await?;
        Ok(ServiceStats {
            service: service.to_owned(),
            queued,
            leased,
            dead_letters,
            stream_length,
            entries_added,
            consumers,
            oldest_leased_age,
        })
    }

    /// Up to `max` leased jobs, oldest lease first, with their messages
    /// (`XPENDING` extended form, then `XRANGE` of those ids); `Ok(None)` for
    /// an unknown service.
    pub async fn leased(&self, service: &str, max: usize) -> Result<Option<Vec<LeasedJob>>, Error> {
        let jobs = self.keys.jobs(service);
        if !self.exists(&jobs).await? {
            return Ok(None);
        }
        if max == 0 || self.group(&jobs).await?.is_none() {
            return Ok(Some(Vec::new()));
        }
        let pending: StreamPendingCountReply = self
            .query(
                redis::cmd("XPENDING")
                    .arg(&jobs)
                    .arg(GROUP)
                    .arg("-")
                    .arg("+")
                    .arg(max.min(1_000_000)),
            )
            .await?;
        if pending.ids.is_empty() {
            return Ok(Some(Vec::new()));
        }
        // One XRANGE per id, in one pipeline (one slot: the queue's).
        let mut pipe = redis::pipe();
        for row in &pending.ids {
            pipe.cmd("XRANGE").arg(&jobs).arg(&row.id).arg(&row.id);
        }
        let entries: Vec<StreamRangeReply> = self.pipeline(&pipe).await?;
        let jobs = pending
            .ids
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
    pub async fn queued(&self, service: &str, max: usize) -> Result<Option<Vec<QueuedJob>>, Error> {
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

    /// Every stream key matching `pattern`, on every master of a Cluster.
    async fn scan_masters(&self, pattern: &str, kind: &str) -> redis::RedisResult<Vec<String>> {
        scan_all(&self.connection, pattern, kind).await
    }

    /// The clients' inboxes under this prefix (`P:inbox:{client}`), with
    /// the replies waiting in each and when it expires, sorted by client: a
    /// long list nobody drains is a client that died or stopped reading.
    pub async fn inboxes(&self) -> Result<Vec<InboxStats>, Error> {
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

    /// A kept result by call id (`GET P:result:{call}`) while it lasts: the
    /// reply envelope as a worker stored it.
    pub async fn kept_result(&self, call_id: &str) -> Result<Option<Vec<u8>>, Error> {
        let key = self.keys.result(call_id);
        self.query(redis::cmd("GET").arg(key)).await
    }

    async fn exists(&self, key: &str) -> Result<bool, Error> {
        let n: u64 = self.query(redis::cmd("EXISTS").arg(key)).await?;
        Ok(n > 0)
    }

    /// The `workers` group of a jobs stream, if a worker created it.
    async fn group(&self, jobs: &str) -> Result<Option<redis::streams::StreamInfoGroup>, Error> {
        let groups: StreamInfoGroupsReply = self
            .query(redis::cmd("XINFO").arg("GROUPS").arg(jobs))
            .await?;
        Ok(groups.groups.into_iter().find(|g| g.name == GROUP))
    }

    async fn consumers(&self, jobs: &str) -> Result<Vec<ConsumerStats>, Error> {
        let rows: Vec<HashMap<String, Value>> = self
            .query(redis::cmd("XINFO").arg("CONSUMERS").arg(jobs).arg(GROUP))
            .await?;
        let mut consumers: Vec<ConsumerStats> = rows
            .into_iter()
            .filter_map(|row| {
                let number = |name: &str| {
                    row.get(name)
                        .and_then(|v| u64::from_redis_value(v.clone()).ok())
                };
                Some(ConsumerStats {
                    name: String::from_redis_value(row.get("name")?.clone()).ok()?,
                    pending: number("pending").unwrap_or(0),
                    idle: Duration::from_millis(number("idle").unwrap_or(0)),
                    inactive: number("inactive").map(Duration::from_millis),
                })
            })
            .collect();
        consumers.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(consumers)
    }

    /// Redis's clock in milliseconds (on a Cluster, any node's: their
    /// clocks are kept in step like any servers').
    async fn server_time_ms(&self) -> Result<u64, Error> {
        let (secs, micros): (u64, u64) = self.query(&redis::cmd("TIME")).await?;
        Ok(secs * 1000 + micros / 1000)
    }

    async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, Error> {
        let result = match &self.connection {
            Connection::Single(con) => cmd.query_async(&mut con.clone()).await,
            Connection::Cluster(con) => cmd.query_async(&mut con.clone()).await,
        };
        result.map_err(|e| self.broker(e))
    }

    async fn pipeline<T: FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T, Error> {
        let result = match &self.connection {
            Connection::Single(con) => pipe.query_async(&mut con.clone()).await,
            Connection::Cluster(con) => pipe.query_async(&mut con.clone()).await,
        };
        result.map_err(|e| self.broker(e))
    }

    /// A script answered in a shape it never answers in.
    fn unexpected(&self, script: &str) -> Error {
        Error::Broker(format!(
            "{}: {script} answered in a shape it never answers in",
            self.url_for_errors
        ))
    }

    fn broker(&self, e: redis::RedisError) -> Error {
        Error::Broker(format!("{}: {e}", self.url_for_errors))
    }
}

/// The milliseconds part of a stream entry id (`<ms>-<seq>`): when it was added.
fn entry_time_ms(id: &str) -> Option<u64> {
    id.split_once('-').map_or(id, |(ms, _)| ms).parse().ok()
}

/// The message of a stream entry: its `m` field (empty without one).
fn message_of(entry: &StreamId) -> Vec<u8> {
    match entry.map.get(FIELD) {
        Some(Value::BulkString(bytes)) => bytes.clone(),
        _ => Vec::new(),
    }
}
