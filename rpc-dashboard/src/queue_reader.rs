//! What the dashboard reads from Redis about queues: which services exist,
//! how many jobs are queued, leased and dead, who consumes them, and the
//! entries themselves.
//!
//! Read-only, and only the commands an operator role needs (`SCAN`, `XLEN`,
//! `XINFO`, `XPENDING`, `XRANGE`, `GET`). Key names follow docs/PROTOCOL.md
//! (`P:{Service}:jobs`, `P:{Service}:dead`, group `workers`). Writes (replay,
//! delete, enqueue) go through `rpc_runtime::Client`, never through here.
//!
//! This is the minimal reading the dashboard needs on its own; when
//! rpc-runtime grows an operator module of its own, this file is where the
//! dashboard switches to it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, FromRedisValue, Value};

/// The consumer group every jobs stream has (PROTOCOL.md).
const GROUP: &str = "workers";
/// How long any one command may take before the page reports Redis as down.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);

/// Why Redis could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReadError(pub String);

impl From<redis::RedisError> for ReadError {
    fn from(e: redis::RedisError) -> Self {
        ReadError(e.to_string())
    }
}

impl From<redis::ParsingError> for ReadError {
    fn from(e: redis::ParsingError) -> Self {
        ReadError(format!("unexpected answer from Redis: {e}"))
    }
}

/// Counts for one service, as the overview shows them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceStats {
    pub service: String,
    /// In the stream and not yet handed to any worker.
    pub queued: u64,
    /// Handed to a worker and not yet acked (the group's pending entries).
    pub leased: u64,
    pub dead_letters: u64,
    pub consumers: Vec<ConsumerStats>,
    /// Jobs ever added to the stream (`XINFO STREAM` entries-added, Redis 7+).
    pub entries_added: Option<u64>,
    /// Jobs ever handed out by the group (`XINFO GROUPS` entries-read, Redis 7+).
    pub entries_read: Option<u64>,
    /// The group's last delivered entry: entries after it are queued.
    pub last_delivered: Option<String>,
}

/// One worker process as its consumer group sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConsumerStats {
    pub name: String,
    /// Jobs it holds a lease on.
    pub pending: u64,
    /// Since its last read or claim.
    pub idle: Duration,
    /// Since its last successful read (Redis 7.2+).
    pub inactive: Option<Duration>,
}

/// One stream entry: its id and fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: String,
    pub fields: Vec<(String, Vec<u8>)>,
}

impl Entry {
    /// The field's value, if the entry has it.
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }

    /// When the entry was added: stream ids start with milliseconds since the epoch.
    pub fn added_at(&self) -> Option<SystemTime> {
        let ms = self.id.split('-').next()?.parse::<u64>().ok()?;
        Some(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
    }
}

/// A job a worker holds: the entry and its lease.
#[derive(Debug, Clone, PartialEq)]
pub struct LeasedJob {
    pub entry: Entry,
    pub consumer: String,
    pub idle: Duration,
    pub deliveries: u64,
}

#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// A read-only view of one application's queues (one key prefix).
#[derive(Clone)]
pub struct QueueReader {
    connection: Connection,
    prefix: String,
}

impl QueueReader {
    /// Connects to `url`: `redis://`, `rediss://`, `redis+unix://`, or
    /// `redis+cluster://host:port,host:port` (`rediss+cluster://` for TLS).
    pub async fn connect(url: &str, prefix: &str) -> Result<QueueReader, ReadError> {
        let url = url.trim();
        let cluster = [
            ("redis+cluster://", "redis"),
            ("rediss+cluster://", "rediss"),
        ]
        .iter()
        .find_map(|(p, scheme)| url.strip_prefix(p).map(|rest| (*scheme, rest)));
        let connection = match cluster {
            Some((scheme, rest)) => {
                let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
                let (userinfo, hosts) = match authority.rsplit_once('@') {
                    Some((u, h)) => (format!("{u}@"), h),
                    None => (String::new(), authority),
                };
                let nodes: Vec<String> = hosts
                    .split(',')
                    .filter(|h| !h.trim().is_empty())
                    .map(|h| format!("{scheme}://{userinfo}{}/{path}", h.trim()))
                    .collect();
                let client = redis::cluster::ClusterClient::builder(nodes)
                    .connection_timeout(COMMAND_TIMEOUT)
                    .response_timeout(COMMAND_TIMEOUT)
                    .retries(1)
                    .build()?;
                Connection::Cluster(client.get_async_connection().await?)
            }
            None => {
                let client = redis::Client::open(url)?;
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(COMMAND_TIMEOUT))
                    .set_response_timeout(Some(COMMAND_TIMEOUT))
                    .set_number_of_retries(1);
                Connection::Single(ConnectionManager::new_with_config(client, config).await?)
            }
        };
        Ok(QueueReader {
            connection,
            prefix: prefix.to_owned(),
        })
    }

    /// The key of a service's jobs stream.
    pub fn jobs_key(&self, service: &str) -> String {
        format!("{}:{{{service}}}:jobs", self.prefix)
    }

    /// The key of a service's dead-letter stream.
    pub fn dead_key(&self, service: &str) -> String {
        format!("{}:{{{service}}}:dead", self.prefix)
    }

    async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, ReadError> {
        let value = match self.connection.clone() {
            Connection::Single(mut con) => cmd.query_async::<Value>(&mut con).await?,
            Connection::Cluster(mut con) => cmd.query_async::<Value>(&mut con).await?,
        };
        Ok(redis::from_redis_value(value)?)
    }

    /// Every service with a jobs or dead-letter stream under the prefix, sorted.
    pub async fn services(&self) -> Result<Vec<String>, ReadError> {
        let pattern = format!("{}:{{*}}:*", self.prefix);
        let keys = match &self.connection {
            Connection::Single(_) => self.scan_node(None, &pattern).await?,
            Connection::Cluster(_) => {
                let mut keys = Vec::new();
                for (host, port) in self.cluster_masters().await? {
                    keys.extend(self.scan_node(Some((host, port)), &pattern).await?);
                }
                keys
            }
        };
        let head = format!("{}:{{", self.prefix);
        let services: BTreeSet<String> = keys
            .iter()
            .filter_map(|k| k.strip_prefix(&head))
            .filter_map(|rest| {
                rest.strip_suffix("}:jobs")
                    .or_else(|| rest.strip_suffix("}:dead"))
            })
            .map(str::to_owned)
            .collect();
        Ok(services.into_iter().collect())
    }

    /// `SCAN`s one node (a Cluster master by address) for keys matching `pattern`.
    async fn scan_node(
        &self,
        node: Option<(String, u16)>,
        pattern: &str,
    ) -> Result<Vec<String>, ReadError> {
        let mut keys = Vec::new();
        let mut cursor = 0u64;
        loop {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000);
            let value = match (&self.connection, &node) {
                (Connection::Cluster(con), Some((host, port))) => {
                    let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                        host: host.clone(),
                        port: *port,
                    });
                    con.clone().route_command(cmd, routing).await?
                }
                _ => self.query::<Value>(&cmd).await?,
            };
            let (next, batch): (u64, Vec<String>) = redis::from_redis_value(value)?;
            keys.extend(batch);
            if next == 0 {
                return Ok(keys);
            }
            cursor = next;
        }
    }

    /// The masters of a Cluster, from `CLUSTER SLOTS`.
    async fn cluster_masters(&self) -> Result<Vec<(String, u16)>, ReadError> {
        let slots: Vec<Value> = self
            .query(&redis::cmd("CLUSTER").arg("SLOTS").clone())
            .await?;
        let mut masters = BTreeSet::new();
        for range in slots {
            let Value::Array(parts) = range else { continue };
            if let Some(Value::Array(master)) = parts.get(2) {
                let host: Option<String> = master.first().and_then(|v| from_value(v.clone()));
                let port: Option<u16> = master.get(1).and_then(|v| from_value(v.clone()));
                if let (Some(host), Some(port)) = (host, port) {
                    masters.insert((host, port));
                }
            }
        }
        Ok(masters.into_iter().collect())
    }

    /// Whether the service has a jobs or dead-letter stream.
    pub async fn exists(&self, service: &str) -> Result<bool, ReadError> {
        let jobs: u64 = self
            .query(redis::cmd("EXISTS").arg(self.jobs_key(service)))
            .await?;
        let dead: u64 = self
            .query(redis::cmd("EXISTS").arg(self.dead_key(service)))
            .await?;
        Ok(jobs + dead > 0)
    }

    /// Counts and consumers of one service.
    pub async fn service_stats(&self, service: &str) -> Result<ServiceStats, ReadError> {
        let jobs = self.jobs_key(service);
        let length: u64 = self.query(redis::cmd("XLEN").arg(&jobs)).await?;
        let dead_letters: u64 = self
            .query(redis::cmd("XLEN").arg(self.dead_key(service)))
            .await?;
        let mut stats = ServiceStats {
            service: service.to_owned(),
            queued: length,
            dead_letters,
            ..ServiceStats::default()
        };
        if length == 0 && !self.key_exists(&jobs).await? {
            return Ok(stats);
        }
        let info: BTreeMap<String, Value> = self
            .query(redis::cmd("XINFO").arg("STREAM").arg(&jobs))
            .await?;
        stats.entries_added = info
            .get("entries-added")
            .and_then(|v| from_value(v.clone()));
        let groups: Vec<BTreeMap<String, Value>> = self
            .query(redis::cmd("XINFO").arg("GROUPS").arg(&jobs))
            .await?;
        let Some(group) = groups.iter().find(|g| {
            g.get("name").and_then(|v| from_value::<String>(v.clone())) == Some(GROUP.to_owned())
        }) else {
            return Ok(stats);
        };
        let number = |field: &str| group.get(field).and_then(|v| from_value::<u64>(v.clone()));
        stats.leased = number("pending").unwrap_or(0);
        stats.entries_read = number("entries-read");
        stats.last_delivered = group
            .get("last-delivered-id")
            .and_then(|v| from_value(v.clone()));
        // Acked jobs are deleted, so what is left and not leased is queued.
        stats.queued = length.saturating_sub(stats.leased);
        stats.consumers = self.consumers(&jobs).await?;
        Ok(stats)
    }

    async fn key_exists(&self, key: &str) -> Result<bool, ReadError> {
        let n: u64 = self.query(redis::cmd("EXISTS").arg(key)).await?;
        Ok(n > 0)
    }

    async fn consumers(&self, jobs: &str) -> Result<Vec<ConsumerStats>, ReadError> {
        let rows: Vec<BTreeMap<String, Value>> = self
            .query(redis::cmd("XINFO").arg("CONSUMERS").arg(jobs).arg(GROUP))
            .await?;
        Ok(rows
            .iter()
            .map(|row| {
                let ms = |f: &str| row.get(f).and_then(|v| from_value::<i64>(v.clone()));
                ConsumerStats {
                    name: row
                        .get("name")
                        .and_then(|v| from_value(v.clone()))
                        .unwrap_or_default(),
                    pending: ms("pending").unwrap_or(0).max(0) as u64,
                    idle: millis(ms("idle").unwrap_or(0)),
                    inactive: ms("inactive").filter(|&m| m >= 0).map(millis),
                }
            })
            .collect())
    }

    /// Up to `max` jobs held by workers, oldest lease first.
    pub async fn leased(&self, service: &str, max: usize) -> Result<Vec<LeasedJob>, ReadError> {
        let jobs = self.jobs_key(service);
        let pending: Result<Vec<(String, String, u64, u64)>, ReadError> = self
            .query(
                redis::cmd("XPENDING")
                    .arg(&jobs)
                    .arg(GROUP)
                    .arg("-")
                    .arg("+")
                    .arg(max),
            )
            .await;
        let pending = match pending {
            Ok(p) => p,
            Err(e) if e.0.contains("NOGROUP") => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::with_capacity(pending.len());
        for (id, consumer, idle_ms, deliveries) in pending {
            // An entry deleted while still pending (acked elsewhere) reads as no fields.
            let entry = self
                .range(&jobs, &id, &id, 1)
                .await?
                .into_iter()
                .next()
                .unwrap_or(Entry {
                    id: id.clone(),
                    fields: Vec::new(),
                });
            out.push(LeasedJob {
                entry,
                consumer,
                idle: Duration::from_millis(idle_ms),
                deliveries,
            });
        }
        Ok(out)
    }

    /// Up to `max` jobs no worker has taken yet, oldest first.
    pub async fn queued(&self, stats: &ServiceStats, max: usize) -> Result<Vec<Entry>, ReadError> {
        let start = match &stats.last_delivered {
            Some(id) if id != "0-0" => format!("({id}"),
            _ => "-".to_owned(),
        };
        self.range(&self.jobs_key(&stats.service), &start, "+", max)
            .await
    }

    /// Up to `max` entries of a stream between two ids (inclusive; `(id` excludes).
    pub async fn range(
        &self,
        key: &str,
        start: &str,
        end: &str,
        max: usize,
    ) -> Result<Vec<Entry>, ReadError> {
        // Each entry is `[id, [field, value, field, value, ...]]`.
        let rows: Vec<(String, Vec<Vec<u8>>)> = self
            .query(
                redis::cmd("XRANGE")
                    .arg(key)
                    .arg(start)
                    .arg(end)
                    .arg("COUNT")
                    .arg(max),
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, flat)| Entry {
                id,
                fields: flat
                    .chunks(2)
                    .map(|pair| {
                        let name = String::from_utf8_lossy(&pair[0]).into_owned();
                        (name, pair.get(1).cloned().unwrap_or_default())
                    })
                    .collect(),
            })
            .collect())
    }
}

fn from_value<T: FromRedisValue>(value: Value) -> Option<T> {
    redis::from_redis_value(value).ok()
}

fn millis(ms: i64) -> Duration {
    Duration::from_millis(ms.max(0) as u64)
}

/// Whether `s` is a stream entry id (`1700000000000-0`): tokens in URLs are
/// checked before they reach Redis.
pub fn is_entry_id(s: &str) -> bool {
    let mut parts = s.splitn(2, '-');
    let number =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    number(parts.next()) && number(parts.next())
}
