//! The Redis backend: one stream per service, consumed through a consumer
//! group, plus one reply list per client.
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
//! Commands go over a `ConnectionManager` (reconnects by itself). Blocking
//! reads get their own connection with the response timeout turned off,
//! because the `redis` crate's default response timeout is shorter than a
//! blocking read (DESIGN.md, "Known pitfalls").

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Value};

use super::{Backend, Completion, DeadLetter, Delivery, Reader};
use crate::error::Error;

/// The consumer group every worker joins.
pub const GROUP: &str = "workers";
/// How long an inbox lives after its last reply (a dead client's inbox expires).
const INBOX_TTL_MS: u64 = 60_000;
/// Dead letters kept per service (approximate trim).
const DEAD_LETTER_CAP: usize = 10_000;
/// The stream field holding the message.
const FIELD: &str = "m";

/// Redis as a broker.
pub struct RedisBackend {
    client: redis::Client,
    commands: ConnectionManager,
    prefix: String,
    url_for_logs: String,
}

impl RedisBackend {
    /// Connects to `url` (`redis://[user:pass@]host:port/db`, `rediss://` for TLS).
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, Error> {
        let client = redis::Client::open(url).map_err(|e| Error::InvalidUrl {
            url: redact(url),
            reason: e.to_string(),
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_number_of_retries(2);
        let commands = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(|e| Error::Broker(format!("cannot connect to {}: {e}", redact(url))))?;
        Ok(RedisBackend {
            client,
            commands,
            prefix: prefix.to_owned(),
            url_for_logs: redact(url),
        })
    }

    fn jobs_key(&self, queue: &str) -> String {
        format!("{}:{{{}}}:jobs", self.prefix, queue)
    }

    fn dead_key(&self, queue: &str) -> String {
        format!("{}:{{{}}}:dead", self.prefix, queue)
    }

    async fn create_group(&self, queue: &str) -> Result<(), Error> {
        let mut con = self.commands.clone();
        let res: redis::RedisResult<Value> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(self.jobs_key(queue))
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut con)
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// The URL without its password, for messages and logs.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
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
        format!("{}:result:{{{}}}", self.prefix, call_id)
    }

    async fn open_reader(&self) -> Result<Box<dyn Reader>, Error> {
        Ok(Box::new(RedisReader {
            client: self.client.clone(),
            con: None,
            jobs_key_prefix: self.prefix.clone(),
            backend_commands: self.commands.clone(),
        }))
    }

    async fn push_job(&self, queue: &str, payload: &[u8]) -> Result<(), Error> {
        let mut con = self.commands.clone();
        let _: Value = redis::cmd("XADD")
            .arg(self.jobs_key(queue))
            .arg("*")
            .arg(FIELD)
            .arg(payload)
            .query_async(&mut con)
            .await?;
        Ok(())
    }

    async fn get_result(&self, call_id: &str) -> Result<Option<Vec<u8>>, Error> {
        let mut con = self.commands.clone();
        let v: Option<Vec<u8>> = redis::cmd("GET")
            .arg(self.result_name(call_id))
            .query_async(&mut con)
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
        let mut con = self.commands.clone();
        let min_idle_ms = min_idle.as_millis() as u64;
        // XPENDING gives the delivery counts that XAUTOCLAIM does not; the
        // XCLAIM that follows re-checks the idle time, so two workers racing
        // for the same entry cannot both win it.
        let pending: redis::RedisResult<Value> = redis::cmd("XPENDING")
            .arg(&key)
            .arg(GROUP)
            .arg("IDLE")
            .arg(min_idle_ms)
            .arg("-")
            .arg("+")
            .arg(max)
            .query_async(&mut con)
            .await;
        let pending = match pending {
            Ok(v) => v,
            Err(e) if e.code() == Some("NOGROUP") => {
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
                        counts.insert(id, n as u32);
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
        let claimed: Value = claim.query_async(&mut con).await?;
        let mut out = Vec::new();
        let mut vanished = Vec::new();
        for (id, payload) in parse_entries(&claimed) {
            let deliveries = counts.get(&id).copied().unwrap_or(1) + 1;
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
            let _: Value = ack.query_async(&mut con).await?;
        }
        Ok(out)
    }

    async fn extend(&self, queue: &str, consumer: &str, tokens: &[String]) -> Result<(), Error> {
        if tokens.is_empty() {
            return Ok(());
        }
        let mut con = self.commands.clone();
        // XCLAIM by the current owner with min-idle 0 resets the idle time:
        // the lease is renewed without counting a new delivery (JUSTID).
        let mut claim = redis::cmd("XCLAIM");
        claim
            .arg(self.jobs_key(queue))
            .arg(GROUP)
            .arg(consumer)
            .arg(0)
            .arg(tokens)
            .arg("JUSTID");
        let _: Value = claim.query_async(&mut con).await?;
        Ok(())
    }

    async fn complete(&self, delivery: &Delivery, completion: Completion) -> Result<(), Error> {
        let key = self.jobs_key(&delivery.queue);
        let mut pipe = redis::pipe();
        if let Some(body) = &completion.reply {
            if let Some(to) = &completion.reply_to {
                pipe.cmd("RPUSH").arg(to).arg(body).ignore();
                pipe.cmd("PEXPIRE").arg(to).arg(INBOX_TTL_MS).ignore();
            }
            if let Some((id, ttl)) = &completion.keep_result {
                pipe.cmd("SET")
                    .arg(self.result_name(id))
                    .arg(body)
                    .arg("PX")
                    .arg(ttl.as_millis().max(1) as u64)
                    .ignore();
            }
        }
        if let Some(payload) = &completion.requeue {
            pipe.cmd("XADD")
                .arg(&key)
                .arg("*")
                .arg(FIELD)
                .arg(payload)
                .ignore();
        }
        if let Some(reason) = &completion.dead_letter {
            pipe.cmd("XADD")
                .arg(self.dead_key(&delivery.queue))
                .arg("MAXLEN")
                .arg("~")
                .arg(DEAD_LETTER_CAP)
                .arg("*")
                .arg("reason")
                .arg(reason)
                .arg(FIELD)
                .arg(&delivery.payload)
                .ignore();
        }
        pipe.cmd("XACK")
            .arg(&key)
            .arg(GROUP)
            .arg(&delivery.token)
            .ignore();
        pipe.cmd("XDEL").arg(&key).arg(&delivery.token).ignore();
        let mut con = self.commands.clone();
        let _: () = pipe.query_async(&mut con).await?;
        Ok(())
    }

    async fn dead_letters(&self, queue: &str, max: usize) -> Result<Vec<DeadLetter>, Error> {
        let mut con = self.commands.clone();
        let v: Value = redis::cmd("XRANGE")
            .arg(self.dead_key(queue))
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(max)
            .query_async(&mut con)
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
}

/// A dedicated connection for blocking reads, opened lazily and dropped on
/// error so the next read reconnects.
struct RedisReader {
    client: redis::Client,
    con: Option<MultiplexedConnection>,
    jobs_key_prefix: String,
    backend_commands: ConnectionManager,
}

impl RedisReader {
    async fn connection(&mut self) -> Result<&mut MultiplexedConnection, Error> {
        if self.con.is_none() {
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(5)))
                .set_response_timeout(None);
            let con = self
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            self.con = Some(con);
        }
        Ok(self.con.as_mut().expect("just set"))
    }

    async fn run(&mut self, cmd: &redis::Cmd, wait: Duration) -> Result<Value, Error> {
        let con = self.connection().await?;
        // Guard against a half-open TCP connection: a blocking read never
        // legitimately takes much longer than its own timeout.
        let guard = wait + Duration::from_secs(5);
        match tokio::time::timeout(guard, cmd.query_async::<Value>(con)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                self.con = None;
                Err(e.into())
            }
            Err(_) => {
                self.con = None;
                Err(Error::Broker(
                    "blocking read timed out; reconnecting".to_owned(),
                ))
            }
        }
    }
}

#[async_trait]
impl Reader for RedisReader {
    async fn pop_replies(
        &mut self,
        inbox: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Vec<u8>>, Error> {
        let mut cmd = redis::cmd("BLMPOP");
        cmd.arg(wait.as_secs_f64().max(0.01))
            .arg(1)
            .arg(inbox)
            .arg("LEFT")
            .arg("COUNT")
            .arg(max);
        let v = self.run(&cmd, wait).await?;
        // Reply: nil, or [key, [element, ...]].
        let mut out = Vec::new();
        if let Value::Array(parts) = v {
            if let Some(Value::Array(items)) = parts.into_iter().nth(1) {
                for item in items {
                    if let Value::BulkString(b) = item {
                        out.push(b);
                    }
                }
            }
        }
        Ok(out)
    }

    async fn take_jobs(
        &mut self,
        queues: &[String],
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, Error> {
        let keys: Vec<String> = queues
            .iter()
            .map(|q| format!("{}:{{{}}}:jobs", self.jobs_key_prefix, q))
            .collect();
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(max)
            .arg("BLOCK")
            .arg(wait.as_millis() as u64)
            .arg("STREAMS")
            .arg(&keys);
        for _ in &keys {
            cmd.arg(">");
        }
        let v = match self.run(&cmd, wait).await {
            Ok(v) => v,
            Err(Error::Broker(msg)) if msg.contains("NOGROUP") => {
                // Redis restarted without persistence (or someone deleted the
                // stream): recreate the groups and carry on.
                for key in &keys {
                    let mut con = self.backend_commands.clone();
                    let res: redis::RedisResult<Value> = redis::cmd("XGROUP")
                        .arg("CREATE")
                        .arg(key)
                        .arg(GROUP)
                        .arg("0")
                        .arg("MKSTREAM")
                        .query_async(&mut con)
                        .await;
                    if let Err(e) = res {
                        if e.code() != Some("BUSYGROUP") {
                            return Err(e.into());
                        }
                    }
                }
                return Ok(Vec::new());
            }
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        // Reply: nil, or [[key, [[id, [field, value, ...]], ...]], ...].
        if let Value::Array(streams) = v {
            for stream in streams {
                let Value::Array(parts) = stream else {
                    continue;
                };
                let Some(key) = parts.first().and_then(as_string) else {
                    continue;
                };
                let Some(idx) = keys.iter().position(|k| *k == key) else {
                    continue;
                };
                let Some(entries) = parts.get(1) else {
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
        Ok(out)
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
