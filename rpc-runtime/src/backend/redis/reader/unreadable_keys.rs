//! Finding the queue whose stream Redis refuses to read, on the reader's
//! own connection, and leaving it out of the reads (`unreadable_queues.rs`
//! says why and for how long).
//!
//! On a single Redis a worker reads all its queues with one multi-stream
//! `XREADGROUP`, and one key that is no stream (`WRONGTYPE`) fails that
//! read as a whole: Redis names no key. So after such a failure, and only
//! then (the normal read costs nothing more), the reader reads each queue
//! on its own, without blocking, in one pipeline: the reads that work
//! return their jobs (these are leased now, so they are kept), the ones
//! that fail name their key, which is set aside. On a Cluster over TLS the
//! queues are read one by one anyway; the same rule applies to each.
//!
//! When every queue's own read is refused (and none for its key's type),
//! it is no key's fault but the server's (`NOPERM` on `XREADGROUP` itself): that
//! error is returned as before, so the worker reconnects and its health
//! says why. `WRONGTYPE` is always a key's.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use redis::{RedisError, Value};

use super::super::commands::{create_group, is_nogroup};
use super::super::connect::ReaderSource;
use super::super::unreadable_queues::may_be_a_queues;
use super::super::values::collect_deliveries;
use super::{ReadFailure, RedisReader};
use crate::backend::Delivery;
use crate::error::Error;

impl RedisReader {
    /// The jobs keys of `queues`, and those queues, without the ones set
    /// aside (when none is, the cached keys and `queues` itself).
    pub(super) fn readable<'q>(
        &mut self,
        queues: &'q [String],
    ) -> (Arc<[String]>, Cow<'q, [String]>) {
        let keys = self.jobs_keys(queues);
        if self.unreadable.is_empty() {
            return (keys, Cow::Borrowed(queues));
        }
        let (keys, queues): (Vec<String>, Vec<String>) = keys
            .iter()
            .zip(queues)
            .filter(|(key, _)| !self.unreadable.holds(key))
            .map(|(key, queue)| (key.clone(), queue.clone()))
            .unzip();
        (keys.into(), Cow::Owned(queues))
    }

    /// Leases up to `max` new jobs of each of `keys` (of `queues`) with one
    /// `XREADGROUP`, blocking up to `block`; if Redis refuses it for what
    /// may be one key's fault, reads them one by one
    /// ([`RedisReader::read_each`]).
    pub(super) async fn take_from(
        &mut self,
        keys: &[String],
        queues: &[String],
        consumer: &str,
        max: usize,
        block: Option<Duration>,
    ) -> Result<Vec<Delivery>, Error> {
        if keys.is_empty() {
            return self.none_readable(block);
        }
        match self.read_group(keys, consumer, max, block).await {
            Ok(v) => {
                let mut out = Vec::new();
                collect_deliveries(v, keys, queues, &mut out);
                Ok(out)
            }
            Err(ReadFailure::Redis(e)) if may_be_a_queues(&e) => {
                self.read_each(keys, queues, consumer, max).await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// What a read gives when every queue it was to read is set aside: a
    /// look without waiting finds nothing; a read that would wait fails,
    /// as a read of them all did (the worker is told, and backs off).
    pub(super) fn none_readable(&self, block: Option<Duration>) -> Result<Vec<Delivery>, Error> {
        match block {
            None => Ok(Vec::new()),
            Some(_) => Err(self.unreadable.none_readable()),
        }
    }

    /// Leases up to `max` new jobs of each of `keys` (of `queues`), each
    /// read on its own, without blocking; sets aside the queues whose read
    /// Redis refuses (see the module's documentation).
    pub(super) async fn read_each(
        &mut self,
        keys: &[String],
        queues: &[String],
        consumer: &str,
        max: usize,
    ) -> Result<Vec<Delivery>, Error> {
        let read =
            |key: &String| Self::read_group_cmd(std::slice::from_ref(key), consumer, max, None);
        let replies: Vec<Result<Value, RedisError>> =
            if matches!(self.source, ReaderSource::Cluster(..)) {
                // Each key may live on another node: one command at a time.
                let mut replies = Vec::with_capacity(keys.len());
                for key in keys {
                    match self.run(&read(key), Duration::ZERO).await {
                        Ok(v) => replies.push(Ok(v)),
                        Err(ReadFailure::Redis(e)) if e.code().is_some() => replies.push(Err(e)),
                        Err(e) => return Err(e.into()),
                    }
                }
                replies
            } else {
                let mut pipe = redis::pipe();
                for key in keys {
                    pipe.add_command(read(key));
                }
                pipe.ignore_errors();
                self.run_pipeline(&pipe, Duration::ZERO)
                    .await?
                    .into_iter()
                    .map(|v| match v {
                        Value::ServerError(e) => Err(RedisError::from(e)),
                        v => Ok(v),
                    })
                    .collect()
            };
        let mut out = Vec::new();
        let mut answered = false;
        let mut refused = Vec::new();
        let mut server_wide = None;
        for (i, reply) in replies.into_iter().enumerate() {
            match reply {
                Ok(v) => {
                    answered = true;
                    collect_deliveries(v, &keys[i..=i], &queues[i..=i], &mut out);
                }
                Err(e) if is_nogroup(&e) => {
                    answered = true;
                    tracing::warn!(queue = %queues[i], "consumer group missing; recreating it");
                    if let Err(e) = create_group(&self.commands, &keys[i]).await {
                        refused.push((i, e));
                    }
                }
                Err(e) if may_be_a_queues(&e) => refused.push((i, e)),
                Err(e) => {
                    server_wide.get_or_insert(e);
                }
            }
        }
        let keys_fault = answered || refused.iter().any(|(_, e)| e.code() == Some("WRONGTYPE"));
        if !keys_fault && !refused.is_empty() {
            // Every read refused, none for its key's type: the server
            // refuses the read itself.
            let (_, e) = refused.swap_remove(0);
            return Err(e.into());
        }
        for (i, e) in &refused {
            self.unreadable.set_aside(&keys[*i], e);
        }
        match server_wide {
            // Whatever was leased is kept; the next read meets it again.
            Some(e) if out.is_empty() => Err(e.into()),
            _ => Ok(out),
        }
    }
}
