//! The Redis side of [`Inspection`](crate::backend::Inspection): a view
//! over the backend's shared connection and its keys, and the few helpers
//! every read of it uses (errors that name the server, the read-only
//! scripts, entry times).
//!
//! It reads the keys `docs/PROTOCOL.md` describes and writes nothing.
//! Plain reads need `XINFO`, `XPENDING`, `XRANGE`, `XLEN`, `SCAN`, `TYPE`,
//! `EXISTS`, `HGETALL`, `LLEN`, `PTTL`, `ZCARD`, `ZCOUNT`, `ZRANGE`, `HMGET`,
//! `GET` and `TIME`; the bounded reads of `excerpts.rs`, `find.rs` and
//! `scheduled.rs` run read-only scripts (`+evalsha_ro +script|load`,
//! `read_only.rs`).

use std::collections::HashMap;
use std::time::Duration;

use redis::streams::{StreamId, StreamInfoGroupsReply, StreamPendingCountReply, StreamPendingId};
use redis::{FromRedisValue, Value};
use rpc_protocol::stream::{GROUP, MESSAGE as FIELD};
use rpc_protocol::Keys;

use super::super::commands::Commands;
use super::super::read_only::ReadOnlyScript;
use super::super::scan::scan_all;
use crate::backend::inspection::excerpts::Stream;
use crate::backend::inspection::figures::ConsumerStats;
use crate::error::Error;

/// The read-only view: cloning is cheap and shares the connection.
#[derive(Clone)]
pub(crate) struct RedisView {
    pub(super) connection: Commands,
    pub(super) keys: Keys,
    pub(super) url_for_errors: String,
}

impl RedisView {
    pub(crate) fn new(connection: Commands, keys: Keys, url_for_errors: String) -> Self {
        RedisView {
            connection,
            keys,
            url_for_errors,
        }
    }

    /// Every key of type `kind` matching `pattern`, on every master of a Cluster.
    pub(super) async fn scan_masters(
        &self,
        pattern: &str,
        kind: &str,
    ) -> redis::RedisResult<Vec<String>> {
        scan_all(&self.connection, pattern, kind).await
    }

    pub(super) async fn exists(&self, key: &str) -> Result<bool, Error> {
        let n: u64 = self.query(redis::cmd("EXISTS").arg(key)).await?;
        Ok(n > 0)
    }

    /// The `workers` group of a jobs stream, if a worker created it.
    pub(super) async fn group(
        &self,
        jobs: &str,
    ) -> Result<Option<redis::streams::StreamInfoGroup>, Error> {
        let groups: StreamInfoGroupsReply = self
            .query(redis::cmd("XINFO").arg("GROUPS").arg(jobs))
            .await?;
        Ok(groups.groups.into_iter().find(|g| g.name == GROUP))
    }

    /// The oldest `max` leases of `service`'s jobs stream (`XPENDING`,
    /// extended form), with the stream's key; `Ok(None)` for an unknown
    /// service, none before a worker created the group.
    pub(super) async fn oldest_leases(
        &self,
        service: &str,
        max: usize,
    ) -> Result<Option<(String, Vec<StreamPendingId>)>, Error> {
        let jobs = self.keys.jobs(service);
        if !self.exists(&jobs).await? {
            return Ok(None);
        }
        if max == 0 || self.group(&jobs).await?.is_none() {
            return Ok(Some((jobs, Vec::new())));
        }
        let pending: StreamPendingCountReply = self
            .query(
                redis::cmd("XPENDING")
                    .arg(&jobs)
                    .arg(GROUP)
                    .arg("-")
                    .arg("+")
                    .arg(max),
            )
            .await?;
        Ok(Some((jobs, pending.ids)))
    }

    pub(super) async fn consumers(&self, jobs: &str) -> Result<Vec<ConsumerStats>, Error> {
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
    pub(super) async fn server_time_ms(&self) -> Result<u64, Error> {
        let (secs, micros): (u64, u64) = self.query(&redis::cmd("TIME")).await?;
        Ok(secs * 1000 + micros / 1000)
    }

    pub(super) async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, Error> {
        let result = match &self.connection {
            Commands::Single(con) => cmd.query_async(&mut con.clone()).await,
            Commands::Cluster(con) => cmd.query_async(&mut con.clone()).await,
        };
        result.map_err(|e| self.broker(e))
    }

    pub(super) async fn pipeline<T: FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, Error> {
        let result = match &self.connection {
            Commands::Single(con) => pipe.query_async(&mut con.clone()).await,
            Commands::Cluster(con) => pipe.query_async(&mut con.clone()).await,
        };
        result.map_err(|e| self.broker(e))
    }

    /// A script answered in a shape it never answers in.
    pub(super) fn unexpected(&self, script: &str) -> Error {
        Error::Broker(format!(
            "{}: {script} answered in a shape it never answers in",
            self.url_for_errors
        ))
    }

    pub(super) fn broker(&self, e: redis::RedisError) -> Error {
        Error::Broker(format!("{}: {e}", self.url_for_errors))
    }

    pub(super) fn stream_key(&self, service: &str, stream: Stream) -> String {
        match stream {
            Stream::Jobs => self.keys.jobs(service),
            Stream::Dead => self.keys.dead(service),
        }
    }

    pub(super) async fn read_only(
        &self,
        script: ReadOnlyScript,
        keys: &[&str],
        args: &[&[u8]],
    ) -> Result<Value, Error> {
        self.connection
            .invoke_read_only(script, keys, args)
            .await
            .map_err(|e| self.broker(e))
    }
}

/// The milliseconds part of a stream entry id (`<ms>-<seq>`): when it was added.
pub(super) fn entry_time_ms(id: &str) -> Option<u64> {
    id.split_once('-').map_or(id, |(ms, _)| ms).parse().ok()
}

/// The message of a stream entry: its `m` field (empty without one).
pub(super) fn message_of(entry: &StreamId) -> Vec<u8> {
    match entry.map.get(FIELD) {
        Some(Value::BulkString(bytes)) => bytes.clone(),
        _ => Vec::new(),
    }
}
