//! The Redis backend: one stream per service, consumed through a consumer
//! group, plus one reply list per client. `docs/PROTOCOL.md` is the normative
//! description of the keys and commands; this module implements it.
//!
//! Why streams: a consumer group gives each job a lease (the pending entries
//! list) that survives the worker, so a job taken by a worker that dies is
//! still known to Redis and can be claimed by another once it has been idle
//! for the visibility timeout (`XPENDING` + `XCLAIM`). `XACK` + `XDEL` end a
//! job for good, so acked jobs take no memory.
//!
//! Keys (`P` is the configurable prefix; `{...}` are Cluster hash tags so all
//! keys of one queue, one inbox or one result live in one slot):
//!
//! | key                  | type   | what                                   |
//! |----------------------|--------|----------------------------------------|
//! | `P:{Service}:jobs`   | stream | jobs of a service, group `workers`     |
//! | `P:{Service}:dead`   | stream | dead letters of a service (capped)     |
//! | `P:inbox:{client}`   | list   | replies to one client (expires)        |
//! | `P:result:{call}`    | string | a kept reply (expires)                 |
//!
//! Connections. Ordinary commands go over one shared connection that
//! reconnects by itself: a `ConnectionManager` on a single Redis, a
//! `cluster_async::ClusterConnection` on a Cluster. Blocking reads get a
//! connection of their own per reader, because a blocking command would
//! stall every command queued behind it on a shared connection, and the
//! `redis` crate's default response timeout is shorter than a blocking read
//! (DESIGN.md, "Known pitfalls"). On a single Redis over plain TCP or a Unix
//! socket that connection is a `RespConnection`: the reader writes and
//! parses on it itself, with no driver task in between (the hot path of
//! every call; see `resp.rs` for why). Over TLS it is the `redis` crate's
//! multiplexed connection with the response timeout turned off, on a
//! Cluster a cluster connection.
//!
//! URLs: `redis://`, `rediss://` (TLS), `redis+unix://`, and for a Cluster
//! `redis+cluster://[user:pass@]host:port,host:port[/db]` (or
//! `rediss+cluster://`): the listed nodes are seeds, the slot map is learned
//! from them. A TLS URL may carry `?ca=/path/ca.pem` to trust a private CA,
//! and `client_cert=` / `client_key=` for mutual TLS.
//!
//! On a Cluster a completion touches keys in up to three slots (the queue,
//! the caller's inbox, the kept result), so it is sent as one pipeline per
//! slot, reply first and ack last: a crash in between redelivers the job
//! (at-least-once) rather than losing its reply.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, FromRedisValue, RedisError, Value};

use super::resp::RespConnection;
use super::{
    complete_each, Backend, CompletedAndTaken, Completion, DeadLetter, Delivery, PushedAndPopped,
    Reader, DEAD_LETTER_CAP, DEFAULT_INBOX_TTL,
};
use crate::error::Error;

/// The consumer group every worker joins.
pub const GROUP: &str = "workers";
/// The stream field holding the message.
const FIELD: &str = "m";
/// Response timeout of ordinary (non-blocking) commands.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// Connection timeout of every connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// On a Cluster with several queues in different slots one `XREADGROUP`
/// cannot block on all of them; each queue then gets a short blocking turn.
const CLUSTER_TURN: Duration = Duration::from_millis(200);

/// The connection ordinary commands share.
#[derive(Clone)]
enum Commands {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// Whether a command failed because the connection did (not because Redis
/// refused the command), so that one more try on a fresh connection may work.
fn is_connection_failure(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal()
}

impl Commands {
    async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        match self {
            Commands::Single(con) => {
                retry_once(|| async { cmd.query_async(&mut con.clone()).await }).await
            }
            Commands::Cluster(con) => cmd.query_async(&mut con.clone()).await,
        }
    }

    /// Runs a pipeline and returns each command's reply, errors included
    /// (as `Value::ServerError`), so callers can tell a vanished group from
    /// a real failure.
    async fn pipeline(&self, pipe: &redis::Pipeline) -> redis::RedisResult<Vec<Value>> {
        match self {
            Commands::Single(con) => {
                retry_once(|| async { pipe.query_async(&mut con.clone()).await }).await
            }
            Commands::Cluster(con) => pipe.query_async(&mut con.clone()).await,
        }
    }
}

/// Runs `attempt`, and once more if the connection failed. After Redis
/// restarts, a `ConnectionManager`'s first command still sees the failure of
/// the old connection; one retry reconnects. A duplicate (the first try did
/// reach Redis) is harmless under at-least-once delivery.
async fn retry_once<T, F, Fut>(attempt: F) -> redis::RedisResult<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = redis::RedisResult<T>>,
{
    match attempt().await {
        Err(e) if is_connection_failure(&e) => attempt().await,
        other => other,
    }
}

/// How blocking readers connect. (One per backend, so the size difference
/// of the variants does not matter.)
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum ReaderSource {
    Single(redis::Client),
    Cluster(ClusterClient),
}

/// Redis as a broker.
pub struct RedisBackend {
    source: ReaderSource,
    commands: Commands,
    prefix: String,
    url_for_logs: String,
}

/// A parsed broker URL: where to connect, whether it is a Cluster, and the
/// TLS material it names.
pub(crate) struct Target {
    /// `redis://` / `rediss://` URLs, one per node (one for a single Redis).
    pub(crate) nodes: Vec<String>,
    pub(crate) cluster: bool,
    pub(crate) tls: Option<redis::TlsCertificates>,
}

pub(crate) fn parse_target(url: &str) -> Result<Target, Error> {
    let invalid = |reason: String| Error::InvalidUrl {
        url: redact(url),
        reason,
    };
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    // Our own query parameters name files; the redis crate does not know them.
    let mut ca = None;
    let mut client_cert = None;
    let mut client_key = None;
    let mut passed_on = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = url::form_urlencoded::parse(format!("v={v}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        match k {
            "ca" => ca = Some(v),
            "client_cert" => client_cert = Some(v),
            "client_key" => client_key = Some(v),
            _ => passed_on.push(pair.to_owned()),
        }
    }
    let read = |what: &str, path: &str| {
        std::fs::read(path).map_err(|e| invalid(format!("cannot read the {what} `{path}`: {e}")))
    };
    let tls = if ca.is_some() || client_cert.is_some() {
        let client_tls = match (&client_cert, &client_key) {
            (Some(c), Some(k)) => Some(redis::ClientTlsConfig {
                client_cert: read("client certificate", c)?,
                client_key: read("client key", k)?,
            }),
            (None, None) => None,
            _ => return Err(invalid("client_cert and client_key go together".to_owned())),
        };
        Some(redis::TlsCertificates {
            client_tls,
            root_cert: ca
                .as_deref()
                .map(|p| read("CA certificate", p))
                .transpose()?,
        })
    } else {
        None
    };
    let rest_query = if passed_on.is_empty() {
        String::new()
    } else {
        format!("?{}", passed_on.join("&"))
    };
    let cluster_scheme = if let Some(rest) = base.strip_prefix("redis+cluster://") {
        Some(("redis", rest))
    } else {
        base.strip_prefix("rediss+cluster://")
            .map(|rest| ("rediss", rest))
    };
    let Some((scheme, rest)) = cluster_scheme else {
        if tls.is_some() && !base.starts_with("rediss://") {
            return Err(invalid(
                "ca/client_cert only make sense with rediss:// (TLS)".to_owned(),
            ));
        }
        return Ok(Target {
            nodes: vec![format!("{base}{rest_query}")],
            cluster: false,
            tls,
        });
    };
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, p),
        None => (rest, ""),
    };
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let nodes: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|host| match userinfo {
            Some(u) => format!("{scheme}://{u}@{host}/{path}{rest_query}"),
            None => format!("{scheme}://{host}/{path}{rest_query}"),
        })
        .collect();
    if nodes.is_empty() {
        return Err(invalid(
            "a cluster URL lists its seed nodes: redis+cluster://host:port,host:port".to_owned(),
        ));
    }
    Ok(Target {
        nodes,
        cluster: true,
        tls,
    })
}

impl RedisBackend {
    /// Connects to `url` (`redis://[user:pass@]host:port/db`, `rediss://` for
    /// TLS, `redis+cluster://host:port,host:port` for a Cluster).
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, Error> {
        let target = parse_target(url.trim())?;
        if target.nodes.iter().any(|n| n.starts_with("rediss://")) {
            // rustls needs a process-wide crypto provider; another part of the
            // program may have installed one already, which is just as good.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let invalid = |e: RedisError| Error::InvalidUrl {
            url: redact(url),
            reason: e.to_string(),
        };
        let cannot_connect =
            |e: RedisError| Error::Broker(format!("cannot connect to {}: {e}", redact(url)));
        let (source, commands) = if target.cluster {
            let builder = |response_timeout: Option<Duration>| {
                let mut b = ClusterClient::builder(target.nodes.clone())
                    .connection_timeout(CONNECT_TIMEOUT)
                    .retries(2);
                if let Some(t) = response_timeout {
                    b = b.response_timeout(t);
                }
                if let Some(certs) = &target.tls {
                    b = b.certs(certs.clone());
                }
                b.build()
            };
            let commands_client = builder(Some(COMMAND_TIMEOUT)).map_err(invalid)?;
            // Readers block: their connections must have no response timeout.
            let reader_client = builder(None).map_err(invalid)?;
            let con = commands_client
                .get_async_connection()
                .await
                .map_err(cannot_connect)?;
            (ReaderSource::Cluster(reader_client), Commands::Cluster(con))
        } else {
            let node = target.nodes[0].as_str();
            let client = match &target.tls {
                Some(certs) => redis::Client::build_with_tls(node, certs.clone()),
                None => redis::Client::open(node),
            }
            .map_err(invalid)?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(COMMAND_TIMEOUT))
                .set_number_of_retries(2);
            let con = ConnectionManager::new_with_config(client.clone(), config)
                .await
                .map_err(cannot_connect)?;
            (ReaderSource::Single(client), Commands::Single(con))
        };
        Ok(RedisBackend {
            source,
            commands,
            prefix: prefix.to_owned(),
            url_for_logs: redact(url),
        })
    }

    fn jobs_key(&self, queue: &str) -> String {
        jobs_key(&self.prefix, queue)
    }

    fn dead_key(&self, queue: &str) -> String {
        dead_key(&self.prefix, queue)
    }

    async fn create_group(&self, queue: &str) -> Result<(), Error> {
        Ok(create_group(&self.commands, &self.jobs_key(queue)).await?)
    }
}

fn jobs_key(prefix: &str, queue: &str) -> String {
    format!("{prefix}:{{{queue}}}:jobs")
}

fn dead_key(prefix: &str, queue: &str) -> String {
    format!("{prefix}:{{{queue}}}:dead")
}

fn result_key(prefix: &str, call_id: &str) -> String {
    format!("{prefix}:result:{{{call_id}}}")
}

/// Appends a completion's commands to `pipes`: reply to the inbox, keep the
/// result, requeue or dead-letter, then ack (reply first, ack last, so a
/// crash in between redelivers the job rather than losing its reply). With
/// one pipeline everything goes into it; with three (a Cluster: one per
/// slot) the inbox, result and queue commands go to the first, second and
/// third.
fn add_completion(
    pipes: &mut [redis::Pipeline],
    prefix: &str,
    key: &str,
    delivery: &Delivery,
    completion: &Completion,
) {
    let last = pipes.len().saturating_sub(1);
    let (inbox, result, queue) = (0, 1.min(last), 2.min(last));
    if let Some(body) = &completion.reply {
        if let Some(to) = &completion.reply_to {
            let ttl = completion.inbox_ttl.unwrap_or(DEFAULT_INBOX_TTL);
            pipes[inbox].cmd("RPUSH").arg(to).arg(body);
            pipes[inbox]
                .cmd("PEXPIRE")
                .arg(to)
                .arg(ttl.as_millis().max(1) as u64);
        }
        if let Some((id, ttl)) = &completion.keep_result {
            pipes[result]
                .cmd("SET")
                .arg(result_key(prefix, id))
                .arg(body)
                .arg("PX")
                .arg(ttl.as_millis().max(1) as u64);
        }
    }
    let queue = &mut pipes[queue];
    if let Some(payload) = &completion.requeue {
        queue.cmd("XADD").arg(key).arg("*").arg(FIELD).arg(payload);
    }
    if let Some(reason) = &completion.dead_letter {
        queue
            .cmd("XADD")
            .arg(dead_key(prefix, &delivery.queue))
            .arg("MAXLEN")
            .arg("~")
            .arg(DEAD_LETTER_CAP)
            .arg("*")
            .arg("reason")
            .arg(reason)
            .arg(FIELD)
            .arg(&delivery.payload);
    }
    queue.cmd("XACK").arg(key).arg(GROUP).arg(&delivery.token);
    queue.cmd("XDEL").arg(key).arg(&delivery.token);
}

/// Whether a completion's replies (pipelined with errors kept) say it took
/// effect. NOGROUP on `XACK` is fine: Redis lost the group (a restart without
/// persistence), so there is no lease left to end.
fn check_completion(delivery: &Delivery, replies: &[Value]) -> Result<(), Error> {
    for reply in replies {
        if let Value::ServerError(e) = reply {
            if e.code() != "NOGROUP" {
                return Err(Error::Broker(format!(
                    "completing job {}: {}",
                    delivery.token,
                    RedisError::from(e.clone())
                )));
            }
        }
    }
    Ok(())
}

/// Applies a completion over the shared connection: one round trip on a
/// single Redis, one pipeline per slot on a Cluster.
async fn complete_on(
    commands: &Commands,
    prefix: &str,
    delivery: &Delivery,
    completion: &Completion,
) -> Result<(), Error> {
    let slots = match commands {
        Commands::Cluster(_) => 3,
        Commands::Single(_) => 1,
    };
    let mut pipes = vec![redis::pipe(); slots];
    let key = jobs_key(prefix, &delivery.queue);
    add_completion(&mut pipes, prefix, &key, delivery, completion);
    for mut pipe in pipes {
        if pipe.is_empty() {
            continue;
        }
        pipe.ignore_errors();
        let replies = commands.pipeline(&pipe).await?;
        check_completion(delivery, &replies)?;
    }
    Ok(())
}

/// `XGROUP CREATE key workers 0 MKSTREAM`, where an existing group is fine.
/// The group starts at `0` so jobs sent while no group existed (a Redis
/// restarted without persistence, then a client's `XADD`) are still served.
async fn create_group(commands: &Commands, key: &str) -> redis::RedisResult<()> {
    let res: redis::RedisResult<Value> = commands
        .query(
            redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(key)
                .arg(GROUP)
                .arg("0")
                .arg("MKSTREAM"),
        )
        .await;
    match res {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether Redis said the stream or its consumer group does not exist: after
/// a restart without persistence, or a deleted stream.
fn is_nogroup(e: &RedisError) -> bool {
    e.code() == Some("NOGROUP")
}

/// The URL without its password, for messages and logs.
pub(crate) fn redact(url: &str) -> String {
    // Cluster URLs list several hosts, which `url` cannot parse; redact the
    // user info by hand.
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            let userinfo = &rest[..at];
            let user = userinfo.split_once(':').map(|(u, _)| u);
            if let Some(user) = user {
                return format!("{scheme}://{user}:***@{}", &rest[at + 1..]);
            }
        }
    }
    url.to_owned()
}

#[async_trait]
impl Backend for RedisBackend {
    fn describe(&self) -> String {
        self.url_for_logs.clone()
    }

    fn inbox_name(&self, client_id: &str) -> String {
        format!("{}:inbox:{{{}}}", self.prefix, client_id)
    }

    fn result_name(&self, call_id: &str) -> String {
        result_key(&self.prefix, call_id)
    }

    async fn open_reader(&self) -> Result<Box<dyn Reader>, Error> {
        Ok(Box::new(RedisReader {
            source: self.source.clone(),
            con: None,
            prefix: self.prefix.clone(),
            commands: self.commands.clone(),
            turn: 0,
            keys: Vec::new(),
            queue_keys: None,
        }))
    }

    async fn push_job(&self, queue: &str, payload: &[u8]) -> Result<(), Error> {
        let _: Value = self
            .commands
            .query(
                redis::cmd("XADD")
                    .arg(self.jobs_key(queue))
                    .arg("*")
                    .arg(FIELD)
                    .arg(payload),
            )
            .await?;
        Ok(())
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
        Ok(())
    }

    async fn reclaim(
        &self,
        queue: &str,
        consumer: &str,
        min_idle: Duration,
        max: usize,
    ) -> Result<Vec<Delivery>, Error> {
        let key = self.jobs_key(queue);
        let min_idle_ms = min_idle.as_millis() as u64;
        // XPENDING gives the delivery counts that XAUTOCLAIM does not; the
        // XCLAIM that follows re-checks the idle time, so two workers racing
        // for the same entry cannot both win it.
        let pending: redis::RedisResult<Value> = self
            .commands
            .query(
                redis::cmd("XPENDING")
                    .arg(&key)
                    .arg(GROUP)
                    .arg("IDLE")
                    .arg(min_idle_ms)
                    .arg("-")
                    .arg("+")
                    .arg(max),
            )
            .await;
        let pending = match pending {
            Ok(v) => v,
            Err(e) if is_nogroup(&e) => {
                self.create_group(queue).await?;
                return Ok(Vec::new());
            }
            Err(e) => return Err(e.into()),
        };
        let mut counts = std::collections::HashMap::new();
        if let Value::Array(rows) = pending {
            for row in rows {
                if let Value::Array(fields) = row {
                    if let (Some(id), Some(n)) = (
                        fields.first().and_then(as_string),
                        fields.get(3).and_then(as_int),
                    ) {
                        counts.insert(id, u32::try_from(n).unwrap_or(u32::MAX));
                    }
                }
            }
        }
        if counts.is_empty() {
            return Ok(Vec::new());
        }
        let mut claim = redis::cmd("XCLAIM");
        claim.arg(&key).arg(GROUP).arg(consumer).arg(min_idle_ms);
        for id in counts.keys() {
            claim.arg(id);
        }
        let claimed: Value = match self.commands.query(&claim).await {
            Ok(v) => v,
            Err(e) if is_nogroup(&e) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        let mut vanished = Vec::new();
        for (id, payload) in parse_entries(&claimed) {
            let deliveries = counts.get(&id).copied().unwrap_or(1).saturating_add(1);
            match payload {
                Some(payload) => out.push(Delivery {
                    queue: queue.to_owned(),
                    token: id,
                    payload,
                    deliveries,
                }),
                None => vanished.push(id),
            }
        }
        // Entries deleted from the stream but still pending (e.g. trimmed):
        // nothing to run, so drop them from the pending list.
        if !vanished.is_empty() {
            let mut ack = redis::cmd("XACK");
            ack.arg(&key).arg(GROUP).arg(&vanished);
            let _: Value = self.commands.query(&ack).await?;
        }
        Ok(out)
    }

    async fn extend(&self, queue: &str, consumer: &str, tokens: &[String]) -> Result<(), Error> {
        if tokens.is_empty() {
            return Ok(());
        }
        let key = self.jobs_key(queue);
        // Renew only leases this consumer still holds. A worker that was
        // frozen past the visibility timeout has lost its jobs to another
        // worker; claiming them back would make both renew the same lease.
        let mut pending = redis::cmd("XPENDING");
        pending
            .arg(&key)
            .arg(GROUP)
            .arg("-")
            .arg("+")
            // Stale entries of this consumer may sort first; leave room.
            .arg(tokens.len() + 1000)
            .arg(consumer);
        let owned: Vec<String> = match self.commands.query::<Value>(&pending).await {
            Ok(Value::Array(rows)) => rows
                .iter()
                .filter_map(|row| match row {
                    Value::Array(fields) => fields.first().and_then(as_string),
                    _ => None,
                })
                .filter(|id| tokens.contains(id))
                .collect(),
            Ok(_) => Vec::new(),
            Err(e) if is_nogroup(&e) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if owned.is_empty() {
            return Ok(());
        }
        // XCLAIM by the current owner with min-idle 0 resets the idle time:
        // the lease is renewed without counting a new delivery (JUSTID).
        let mut claim = redis::cmd("XCLAIM");
        claim
            .arg(&key)
            .arg(GROUP)
            .arg(consumer)
            .arg(0)
            .arg(&owned)
            .arg("JUSTID");
        match self.commands.query::<Value>(&claim).await {
            Ok(_) => Ok(()),
            // The group vanished (Redis restarted empty): there is no lease
            // left to renew; the taker recreates the group.
            Err(e) if is_nogroup(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn complete(&self, delivery: &Delivery, completion: &Completion) -> Result<(), Error> {
        complete_on(&self.commands, &self.prefix, delivery, completion).await
    }

    async fn dead_letters(&self, queue: &str, max: usize) -> Result<Vec<DeadLetter>, Error> {
        let v: Value = self
            .commands
            .query(
                redis::cmd("XRANGE")
                    .arg(self.dead_key(queue))
                    .arg("-")
                    .arg("+")
                    .arg("COUNT")
                    // COUNT must fit an i64; the stream holds ~10,000 at most.
                    .arg(max.min(1_000_000)),
            )
            .await?;
        let mut out = Vec::new();
        if let Value::Array(entries) = v {
            for entry in entries {
                let Value::Array(parts) = entry else { continue };
                let (Some(token), Some(Value::Array(fields))) =
                    (parts.first().and_then(as_string), parts.get(1))
                else {
                    continue;
                };
                let mut reason = String::new();
                let mut payload = Vec::new();
                for pair in fields.chunks(2) {
                    match (pair.first().and_then(as_string).as_deref(), pair.get(1)) {
                        (Some("reason"), Some(v)) => reason = as_string(v).unwrap_or_default(),
                        (Some(FIELD), Some(Value::BulkString(b))) => payload = b.clone(),
                        _ => {}
                    }
                }
                out.push(DeadLetter {
                    token,
                    reason,
                    payload,
                });
            }
        }
        Ok(out)
    }

    async fn remove_dead_letter(&self, queue: &str, token: &str) -> Result<bool, Error> {
        let removed: i64 = self
            .commands
            .query(redis::cmd("XDEL").arg(self.dead_key(queue)).arg(token))
            .await?;
        Ok(removed > 0)
    }

    async fn forget_idle_consumers(&self, queue: &str, idle: Duration) -> Result<usize, Error> {
        let key = self.jobs_key(queue);
        let v: Value = match self
            .commands
            .query(redis::cmd("XINFO").arg("CONSUMERS").arg(&key).arg(GROUP))
            .await
        {
            Ok(v) => v,
            Err(e) if is_nogroup(&e) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let Value::Array(consumers) = v else {
            return Ok(0);
        };
        let idle_ms = idle.as_millis() as i64;
        let mut removed = 0;
        for consumer in consumers {
            let fields = as_fields(&consumer);
            let name = fields
                .iter()
                .find(|(k, _)| k == "name")
                .and_then(|(_, v)| as_string(v));
            let pending = fields
                .iter()
                .find(|(k, _)| k == "pending")
                .and_then(|(_, v)| as_int(v));
            // `inactive` (Redis 7.2+) is the time since the consumer last read
            // successfully; older servers only have `idle`.
            let quiet = fields
                .iter()
                .find(|(k, _)| k == "inactive")
                .or_else(|| fields.iter().find(|(k, _)| k == "idle"))
                .and_then(|(_, v)| as_int(v));
            let (Some(name), Some(0), Some(quiet)) = (name, pending, quiet) else {
                continue;
            };
            if quiet < idle_ms {
                continue;
            }
            // DELCONSUMER drops the consumer's pending entries too; we only
            // get here for consumers with none.
            let _: Value = self
                .commands
                .query(
                    redis::cmd("XGROUP")
                        .arg("DELCONSUMER")
                        .arg(&key)
                        .arg(GROUP)
                        .arg(&name),
                )
                .await?;
            tracing::info!(queue, consumer = %name, "forgot an idle consumer with no pending jobs");
            removed += 1;
        }
        Ok(removed)
    }
}

/// Why a blocking read failed.
enum ReadFailure {
    /// Redis answered with an error or the connection failed.
    Redis(RedisError),
    /// No answer long after the block time: a half-open connection.
    Stalled,
}

impl From<ReadFailure> for Error {
    fn from(f: ReadFailure) -> Self {
        match f {
            ReadFailure::Redis(e) => e.into(),
            ReadFailure::Stalled => {
                Error::Broker("blocking read timed out; reconnecting".to_owned())
            }
        }
    }
}

/// A connection that may block.
enum BlockingConnection {
    /// The reader's own RESP2 connection (plain TCP or Unix socket).
    Direct(RespConnection),
    /// Over TLS: the `redis` crate's connection.
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

/// A dedicated connection for blocking reads, opened lazily and dropped on
/// error so the next read reconnects.
struct RedisReader {
    source: ReaderSource,
    con: Option<BlockingConnection>,
    prefix: String,
    commands: Commands,
    /// Which queue gets the blocking turn next (Cluster, several queues).
    turn: usize,
    /// The stream keys of the queues last read, and of single queues pushed
    /// to: made once, not on every call.
    keys: Vec<(String, Arc<str>)>,
    queue_keys: Option<(Vec<String>, Arc<[String]>)>,
}

impl RedisReader {
    /// The stream key of `queue`.
    fn jobs_key(&mut self, queue: &str) -> Arc<str> {
        if let Some((_, key)) = self.keys.iter().find(|(q, _)| q == queue) {
            return key.clone();
        }
        let key: Arc<str> = jobs_key(&self.prefix, queue).into();
        self.keys.push((queue.to_owned(), key.clone()));
        key
    }

    /// The stream keys of `queues`, in order.
    fn jobs_keys(&mut self, queues: &[String]) -> Arc<[String]> {
        match &self.queue_keys {
            Some((q, keys)) if q[..] == *queues => keys.clone(),
            _ => {
                let keys: Arc<[String]> =
                    queues.iter().map(|q| jobs_key(&self.prefix, q)).collect();
                self.queue_keys = Some((queues.to_vec(), keys.clone()));
                keys
            }
        }
    }

    async fn connection(&mut self) -> Result<&mut BlockingConnection, RedisError> {
        if self.con.is_none() {
            let con = match &self.source {
                ReaderSource::Single(client)
                    if RespConnection::handles(client.get_connection_info()) =>
                {
                    BlockingConnection::Direct(
                        RespConnection::connect(client.get_connection_info(), CONNECT_TIMEOUT)
                            .await?,
                    )
                }
                ReaderSource::Single(client) => {
                    let config = AsyncConnectionConfig::new()
                        .set_connection_timeout(Some(CONNECT_TIMEOUT))
                        .set_response_timeout(None);
                    BlockingConnection::Single(
                        client
                            .get_multiplexed_async_connection_with_config(&config)
                            .await?,
                    )
                }
                ReaderSource::Cluster(client) => {
                    BlockingConnection::Cluster(client.get_async_connection().await?)
                }
            };
            self.con = Some(con);
        }
        match self.con.as_mut() {
            Some(con) => Ok(con),
            None => Err(RedisError::from(std::io::Error::other(
                "reader connection missing",
            ))),
        }
    }

    async fn run(&mut self, cmd: &redis::Cmd, wait: Duration) -> Result<Value, ReadFailure> {
        let con = self.connection().await.map_err(ReadFailure::Redis)?;
        let query = async {
            match con {
                BlockingConnection::Direct(c) => c.query(cmd).await,
                BlockingConnection::Single(c) => cmd.query_async::<Value>(c).await,
                BlockingConnection::Cluster(c) => cmd.query_async::<Value>(c).await,
            }
        };
        let answer = tokio::time::timeout(stall_guard(wait), query).await;
        self.settle(answer)
    }

    /// Runs a pipeline whose last command may block for up to `wait`, with
    /// every command's reply kept, errors included: one reply per command,
    /// in order, or an error. Single Redis only: on a Cluster a pipeline's
    /// keys may live on several nodes.
    async fn run_pipeline(
        &mut self,
        pipe: &redis::Pipeline,
        wait: Duration,
    ) -> Result<Vec<Value>, ReadFailure> {
        let con = self.connection().await.map_err(ReadFailure::Redis)?;
        let query = async {
            match con {
                BlockingConnection::Direct(c) => c.query_pipeline(pipe).await,
                BlockingConnection::Single(c) => pipe.query_async::<Vec<Value>>(c).await,
                BlockingConnection::Cluster(c) => pipe.query_async::<Vec<Value>>(c).await,
            }
        };
        let answer = tokio::time::timeout(stall_guard(wait), query).await;
        let replies = self.settle(answer)?;
        if replies.len() != pipe.len() {
            // Out of step with the connection: start over on a new one.
            self.con = None;
            return Err(ReadFailure::Redis(RedisError::from(std::io::Error::other(
                format!(
                    "pipeline of {} commands answered {} replies",
                    pipe.len(),
                    replies.len()
                ),
            ))));
        }
        Ok(replies)
    }

    /// Keeps the connection after a server error (NOGROUP, NOPERM, ...),
    /// which leaves it usable, and drops it after anything else, so the
    /// next read reconnects.
    fn settle<T>(
        &mut self,
        answer: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    ) -> Result<T, ReadFailure> {
        match answer {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                if e.code().is_none() {
                    self.con = None;
                }
                Err(ReadFailure::Redis(e))
            }
            Err(_) => {
                self.con = None;
                Err(ReadFailure::Stalled)
            }
        }
    }

    /// The `XREADGROUP` that leases up to `max` new jobs of `keys`.
    fn read_group_cmd(
        keys: &[String],
        consumer: &str,
        max: usize,
        block: Option<Duration>,
    ) -> redis::Cmd {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(max);
        if let Some(wait) = block {
            cmd.arg("BLOCK").arg(wait.as_millis().max(1) as u64);
        }
        cmd.arg("STREAMS").arg(keys);
        for _ in keys {
            cmd.arg(">");
        }
        cmd
    }

    /// Recreates the consumer groups of `keys` after Redis said NOGROUP: it
    /// restarted without persistence, or someone deleted the stream.
    async fn recreate_groups(&self, keys: &[String]) -> Result<(), RedisError> {
        tracing::warn!("consumer group missing; recreating it");
        for key in keys {
            create_group(&self.commands, key).await?;
        }
        Ok(())
    }

    async fn read_group(
        &mut self,
        keys: &[String],
        consumer: &str,
        max: usize,
        block: Option<Duration>,
    ) -> Result<Value, ReadFailure> {
        let cmd = Self::read_group_cmd(keys, consumer, max, block);
        match self.run(&cmd, block.unwrap_or(Duration::ZERO)).await {
            Err(ReadFailure::Redis(e)) if is_nogroup(&e) => {
                self.recreate_groups(keys)
                    .await
                    .map_err(ReadFailure::Redis)?;
                Ok(Value::Nil)
            }
            other => other,
        }
    }
}

/// How long a blocking read may go unanswered before its connection counts
/// as half-open: it never legitimately takes much longer than its own timeout.
fn stall_guard(wait: Duration) -> Duration {
    wait + Duration::from_secs(5)
}

#[async_trait]
impl Reader for RedisReader {
    async fn pop_replies(
        &mut self,
        inbox: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Vec<u8>>, Error> {
        let v = self.run(&pop_cmd(inbox, max, wait), wait).await?;
        Ok(parse_popped(v))
    }

    async fn take_jobs(
        &mut self,
        queues: &[String],
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, Error> {
        let keys = self.jobs_keys(queues);
        let cluster = matches!(self.source, ReaderSource::Cluster(_));
        let mut out = Vec::new();
        if cluster && keys.len() > 1 {
            // Keys of different services hash to different slots, and one
            // command may only touch one slot: look at every queue without
            // blocking, then block briefly on one of them in turn.
            for (i, key) in keys.iter().enumerate() {
                let v = self
                    .read_group(std::slice::from_ref(key), consumer, max, None)
                    .await?;
                collect_deliveries(&v, std::slice::from_ref(key), &queues[i..=i], &mut out);
            }
            if out.is_empty() {
                self.turn = (self.turn + 1) % keys.len();
                let i = self.turn;
                let v = self
                    .read_group(
                        std::slice::from_ref(&keys[i]),
                        consumer,
                        max,
                        Some(wait.min(CLUSTER_TURN)),
                    )
                    .await?;
                collect_deliveries(&v, &keys[i..=i], &queues[i..=i], &mut out);
            }
            return Ok(out);
        }
        let v = self.read_group(&keys, consumer, max, Some(wait)).await?;
        collect_deliveries(&v, &keys, queues, &mut out);
        Ok(out)
    }

    async fn complete_and_take(
        &mut self,
        done: &[(Delivery, Completion)],
        queues: &[String],
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> CompletedAndTaken {
        if matches!(self.source, ReaderSource::Cluster(_)) {
            // A completion spans slots, and so nodes: complete over the
            // shared connection, then read.
            let (commands, prefix) = (&self.commands, self.prefix.as_str());
            let not_completed =
                complete_each(done, |d, c| complete_on(commands, prefix, d, c)).await;
            let taken = self.take_jobs(queues, consumer, max, wait).await;
            return CompletedAndTaken {
                not_completed,
                taken,
            };
        }
        // One pipeline: every completion, then the blocking read. Redis runs
        // them in order, so the replies and acks are applied before the
        // read blocks.
        let keys = self.jobs_keys(queues);
        let mut pipe = redis::pipe();
        let mut ends = Vec::with_capacity(done.len());
        for (delivery, completion) in done {
            let key = self.jobs_key(&delivery.queue);
            add_completion(
                std::slice::from_mut(&mut pipe),
                &self.prefix,
                &key,
                delivery,
                completion,
            );
            ends.push(pipe.len());
        }
        pipe.add_command(Self::read_group_cmd(&keys, consumer, max, Some(wait)));
        pipe.ignore_errors();
        let replies = match self.run_pipeline(&pipe, wait).await {
            Ok(replies) => replies,
            // The connection failed: which commands ran is unknown.
            Err(e) => {
                return CompletedAndTaken {
                    not_completed: (0..done.len()).collect(),
                    taken: Err(e.into()),
                }
            }
        };
        let mut not_completed = Vec::new();
        let mut start = 0;
        for (i, end) in ends.into_iter().enumerate() {
            if let Err(e) = check_completion(&done[i].0, &replies[start..end]) {
                tracing::warn!(error = %e, "completing a job failed");
                not_completed.push(i);
            }
            start = end;
        }
        let taken = match &replies[start] {
            Value::ServerError(e) if e.code() == "NOGROUP" => self
                .recreate_groups(&keys)
                .await
                .map(|()| Vec::new())
                .map_err(Error::from),
            Value::ServerError(e) => Err(RedisError::from(e.clone()).into()),
            read => {
                let mut out = Vec::new();
                collect_deliveries(read, &keys, queues, &mut out);
                Ok(out)
            }
        };
        CompletedAndTaken {
            not_completed,
            taken,
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
        let mut push = redis::cmd("XADD");
        push.arg(&*self.jobs_key(queue))
            .arg("*")
            .arg(FIELD)
            .arg(payload);
        if matches!(self.source, ReaderSource::Cluster(_)) {
            // The queue and the inbox live in different slots, maybe on
            // different nodes: push over the shared connection, then read.
            let pushed = self.commands.query::<Value>(&push).await;
            return PushedAndPopped {
                pushed: pushed.map(drop).map_err(Error::from),
                popped: self.pop_replies(inbox, max, wait).await,
            };
        }
        // Redis runs the two in order: the job is queued before the read
        // blocks, and a refused XADD does not stop the read.
        let mut pipe = redis::pipe();
        pipe.add_command(push)
            .add_command(pop_cmd(inbox, max, wait))
            .ignore_errors();
        match self.run_pipeline(&pipe, wait).await {
            Ok(replies) => {
                let mut replies = replies.into_iter();
                let mut next = || match replies.next() {
                    Some(Value::ServerError(e)) => Err(Error::from(RedisError::from(e))),
                    Some(v) => Ok(v),
                    None => Err(Error::Broker("a command got no answer".to_owned())),
                };
                PushedAndPopped {
                    pushed: next().map(drop),
                    popped: next().map(parse_popped),
                }
            }
            Err(e) => {
                let e = Error::from(e);
                PushedAndPopped {
                    popped: Err(Error::Broker(format!("reading replies: {e}"))),
                    pushed: Err(e),
                }
            }
        }
    }
}

/// `BLMPOP <wait> 1 <inbox> LEFT COUNT <max>`, or `BLPOP <inbox> <wait>`
/// for a single reply, which costs Redis less (in `INFO commandstats`
/// during the bench, 2.6 µs per `BLPOP` against 4.3 µs per `BLMPOP`).
fn pop_cmd(inbox: &str, max: usize, wait: Duration) -> redis::Cmd {
    // Seconds with millisecond precision, written without float formatting
    // (this is on every call's path).
    let ms = wait.as_millis().max(10);
    let secs = format!("{}.{:03}", ms / 1000, ms % 1000);
    if max <= 1 {
        let mut cmd = redis::cmd("BLPOP");
        cmd.arg(inbox).arg(secs);
        return cmd;
    }
    let mut cmd = redis::cmd("BLMPOP");
    cmd.arg(secs)
        .arg(1)
        .arg(inbox)
        .arg("LEFT")
        .arg("COUNT")
        .arg(max);
    cmd
}

/// Parses a `BLMPOP` reply, nil or `[key, [element, ...]]`, or a `BLPOP`
/// reply, nil or `[key, element]`.
fn parse_popped(v: Value) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if let Value::Array(parts) = v {
        match parts.into_iter().nth(1) {
            Some(Value::Array(items)) => {
                for item in items {
                    if let Value::BulkString(b) = item {
                        out.push(b);
                    }
                }
            }
            Some(Value::BulkString(b)) => out.push(b),
            _ => {}
        }
    }
    out
}

/// Parses an `XREADGROUP` reply, `nil` or
/// `[[key, [[id, [field, value, ...]], ...]], ...]`, into deliveries.
fn collect_deliveries(v: &Value, keys: &[String], queues: &[String], out: &mut Vec<Delivery>) {
    let streams: Vec<(&Value, &Value)> = match v {
        Value::Array(streams) => streams
            .iter()
            .filter_map(|s| match s {
                Value::Array(parts) => Some((parts.first()?, parts.get(1)?)),
                _ => None,
            })
            .collect(),
        // RESP3 answers with a map of key -> entries.
        Value::Map(pairs) => pairs.iter().map(|(k, v)| (k, v)).collect(),
        _ => Vec::new(),
    };
    for (key, entries) in streams {
        let Some(key) = as_string(key) else { continue };
        let Some(idx) = keys.iter().position(|k| *k == key) else {
            continue;
        };
        for (id, payload) in parse_entries(entries) {
            out.push(Delivery {
                queue: queues[idx].clone(),
                token: id,
                // An entry without our field is still a delivery: the
                // worker dead-letters it as unreadable.
                payload: payload.unwrap_or_default(),
                deliveries: 1,
            });
        }
    }
}

/// Parses `[[id, [field, value, ...]] | [id, nil], ...]` into (id, value of `m`).
/// An entry whose fields are nil (deleted) yields `None`; an entry without an
/// `m` field yields an empty payload.
fn parse_entries(v: &Value) -> Vec<(String, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let Value::Array(entries) = v else {
        return out;
    };
    for entry in entries {
        let Value::Array(parts) = entry else { continue };
        let Some(id) = parts.first().and_then(as_string) else {
            continue;
        };
        match parts.get(1) {
            Some(Value::Array(fields)) => {
                let mut payload = Vec::new();
                for pair in fields.chunks(2) {
                    if let (Some(Value::BulkString(name)), Some(Value::BulkString(value))) =
                        (pair.first(), pair.get(1))
                    {
                        if name == FIELD.as_bytes() {
                            payload = value.clone();
                        }
                    }
                }
                out.push((id, Some(payload)));
            }
            _ => out.push((id, None)),
        }
    }
    out
}

/// A RESP2 flat `[k, v, k, v]` array or a RESP3 map, as (key, value) pairs.
fn as_fields(v: &Value) -> Vec<(String, Value)> {
    match v {
        Value::Array(items) => items
            .chunks(2)
            .filter_map(|pair| Some((as_string(pair.first()?)?, pair.get(1)?.clone())))
            .collect(),
        Value::Map(pairs) => pairs
            .iter()
            .filter_map(|(k, v)| Some((as_string(k)?, v.clone())))
            .collect(),
        _ => Vec::new(),
    }
}

fn as_string(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_become_seed_nodes() {
        let t = parse_target("redis+cluster://u:p@127.0.0.1:7000,127.0.0.1:7001/").unwrap();
        assert!(t.cluster);
        assert_eq!(
            t.nodes,
            vec!["redis://u:p@127.0.0.1:7000/", "redis://u:p@127.0.0.1:7001/"]
        );
        let t = parse_target("rediss+cluster://h:1").unwrap();
        assert_eq!(t.nodes, vec!["rediss://h:1/"]);
        assert!(parse_target("redis+cluster:///").is_err());
    }

    #[test]
    fn tls_query_parameters_are_ours() {
        assert!(matches!(
            parse_target("rediss://h:1/?ca=/does/not/exist"),
            Err(Error::InvalidUrl { .. })
        ));
        assert!(parse_target("redis://h:1/?ca=/x").is_err());
        let t = parse_target("redis://h:1/0?protocol=resp2").unwrap();
        assert_eq!(t.nodes, vec!["redis://h:1/0?protocol=resp2"]);
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("redis://u:secret@h:1/"), "redis://u:***@h:1/");
        assert_eq!(
            redact("redis+cluster://u:s@a:1,b:2/"),
            "redis+cluster://u:***@a:1,b:2/"
        );
        assert_eq!(redact("redis://h:1/"), "redis://h:1/");
    }
}
