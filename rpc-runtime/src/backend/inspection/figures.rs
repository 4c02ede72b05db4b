//! The figures the inspector reports, shaped for people and for `--json`:
//! durations serialize as whole milliseconds (`idle_ms`, ...) and messages
//! as the JSON they are (or as text when they are not JSON).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Serialize, Serializer};

use super::lanes::{add_lanes, empty_lanes, LaneDepth};

/// One service's queue, as seen at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceStats {
    /// The service name (the queue; a shard's queue, `S~k`, in a
    /// per-shard breakdown).
    pub service: String,
    /// How many shards the service has (its figures are their sums): 1
    /// for an unsharded service, or one shard's queue.
    pub shards: u32,
    /// Jobs waiting for a worker: in the streams, not yet delivered; the
    /// sum of [`lanes`](Self::lanes).
    pub queued: u64,
    /// The queued jobs by priority, one entry per lane, most urgent first
    /// (docs/PROTOCOL.md, "Priorities").
    pub lanes: Vec<LaneDepth>,
    /// Jobs delivered to a worker and not yet acked (running, or waiting
    /// to be reclaimed from a dead worker).
    pub leased: u64,
    /// Entries in the dead-letter stream.
    pub dead_letters: u64,
    /// Entries in the jobs streams of its lanes (queued + leased).
    pub stream_length: u64,
    /// Entries ever added to its lanes' jobs streams; `None` before Redis
    /// 7 (or where a lane's count could not be read).
    pub entries_added: Option<u64>,
    /// The group's consumers (workers), by name.
    pub consumers: Vec<ConsumerStats>,
    /// How long ago the oldest leased job was added to the stream (a retry
    /// counts from its re-send); `None` with nothing leased.
    #[serde(rename = "oldest_leased_age_ms", serialize_with = "millis_opt")]
    pub oldest_leased_age: Option<Duration>,
}

impl ServiceStats {
    /// One figure set from `parts` (a service's shards, or a queue's
    /// priority lanes), named `name`, of `shards` shards; `None` without
    /// parts. Counts add up, the oldest lease is the oldest of any part,
    /// and a worker, a consumer in every part's group, is listed once,
    /// with the jobs it holds in all of them and its most recent activity.
    pub fn sum_of(name: &str, shards: u32, parts: Vec<ServiceStats>) -> Option<ServiceStats> {
        if parts.is_empty() {
            return None;
        }
        let mut consumers: BTreeMap<String, ConsumerStats> = BTreeMap::new();
        let mut total = ServiceStats {
            service: name.to_owned(),
            shards,
            queued: 0,
            lanes: empty_lanes(),
            leased: 0,
            dead_letters: 0,
            stream_length: 0,
            entries_added: Some(0),
            consumers: Vec::new(),
            oldest_leased_age: None,
        };
        for part in parts {
            total.queued += part.queued;
            add_lanes(&mut total.lanes, &part.lanes);
            total.leased += part.leased;
            total.dead_letters += part.dead_letters;
            total.stream_length += part.stream_length;
            total.entries_added = total
                .entries_added
                .zip(part.entries_added)
                .map(|(a, b)| a + b);
            total.oldest_leased_age = total.oldest_leased_age.max(part.oldest_leased_age);
            for c in part.consumers {
                match consumers.get_mut(&c.name) {
                    Some(seen) => {
                        seen.pending += c.pending;
                        seen.idle = seen.idle.min(c.idle);
                        seen.inactive = match (seen.inactive, c.inactive) {
                            (Some(a), Some(b)) => Some(a.min(b)),
                            (a, b) => a.or(b),
                        };
                    }
                    None => {
                        consumers.insert(c.name.clone(), c);
                    }
                }
            }
        }
        total.consumers = consumers.into_values().collect();
        Some(total)
    }
}

/// One consumer of a service's group: one worker process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsumerStats {
    /// The consumer name (`host-pid-random` for rpc-runtime workers).
    pub name: String,
    /// Jobs it holds leases on.
    pub pending: u64,
    /// Time since it last read, claimed or renewed anything.
    #[serde(rename = "idle_ms", serialize_with = "millis")]
    pub idle: Duration,
    /// Time since it last read or claimed successfully (Redis 7.2+).
    #[serde(rename = "inactive_ms", serialize_with = "millis_opt")]
    pub inactive: Option<Duration>,
}

/// A job delivered to a worker and not yet acked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeasedJob {
    /// The stream entry id (what `rpc` calls a token).
    pub token: String,
    /// The consumer holding the lease.
    pub consumer: String,
    /// Time since the lease was last delivered or renewed.
    #[serde(rename = "idle_ms", serialize_with = "millis")]
    pub idle: Duration,
    /// How often the group has handed this entry out.
    pub deliveries: u64,
    /// The message; `None` if the entry was deleted meanwhile.
    #[serde(rename = "message", serialize_with = "message_opt")]
    pub payload: Option<Vec<u8>>,
}

/// A job waiting for a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueuedJob {
    /// The stream entry id.
    pub token: String,
    /// The message (empty for an entry without the `m` field).
    #[serde(rename = "message", serialize_with = "message")]
    pub payload: Vec<u8>,
}

/// One client's inbox: replies waiting to be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InboxStats {
    /// The client id (the `{client}` of `P:inbox:{client}`).
    pub client: String,
    /// Replies in the list, not yet read by the client.
    pub replies: u64,
    /// Time until the inbox expires; `None` if it has no expiry.
    #[serde(rename = "expires_in_ms", serialize_with = "millis_opt")]
    pub expires_in: Option<Duration>,
}

/// Jobs per second into and out of one queue between two samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rates {
    /// Entries added per second (new jobs and retries); `None` before Redis 7.
    pub in_per_sec: Option<f64>,
    /// Entries removed per second (completed, retried or dead-lettered).
    pub out_per_sec: Option<f64>,
}

impl Rates {
    /// The rates between an `earlier` and a `later` sample of one service
    /// taken `elapsed` apart: in from the growth of `entries_added`, out
    /// from what was added minus how much the stream grew.
    pub fn between(earlier: &ServiceStats, later: &ServiceStats, elapsed: Duration) -> Rates {
        let secs = elapsed.as_secs_f64();
        let added = match (earlier.entries_added, later.entries_added) {
            // A smaller count means the stream was recreated: no rate.
            (Some(a), Some(b)) if b >= a && secs > 0.0 => Some((b - a) as f64),
            _ => None,
        };
        let removed = added
            .map(|added| added - (later.stream_length as f64 - earlier.stream_length as f64))
            .filter(|removed| *removed >= 0.0);
        Rates {
            in_per_sec: added.map(|n| n / secs),
            out_per_sec: removed.map(|n| n / secs),
        }
    }
}

/// The answer to [`Inspector::ping`](super::Inspector::ping).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ping {
    /// Round trip of one `PING`.
    #[serde(rename = "latency_us", serialize_with = "micros")]
    pub latency: Duration,
    /// `redis_version` from `INFO server`, if the server told it.
    pub server_version: Option<String>,
}

pub(super) fn millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn millis_opt<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => millis(d, s),
        None => s.serialize_none(),
    }
}

fn micros<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// A message as JSON when it is JSON (they all should be), else as text.
pub(super) fn message<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(json) => json.serialize(s),
        Err(_) => String::from_utf8_lossy(bytes).serialize(s),
    }
}

fn message_opt<S: Serializer>(payload: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match payload {
        Some(bytes) => message(bytes, s),
        None => s.serialize_none(),
    }
}
