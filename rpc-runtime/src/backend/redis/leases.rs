//! Leases: renewing the jobs a worker still runs, and taking over jobs
//! whose worker died or stalled (idle past the visibility timeout).

use std::time::Duration;

use redis::Value;

use super::commands::is_nogroup;
use super::connect::RedisBackend;
use super::values::{as_int, as_string, entry_time_ms, parse_entries};
use crate::backend::Delivery;
use crate::error::Error;
use rpc_protocol::stream::GROUP;

impl RedisBackend {
    pub(super) async fn reclaim_idle(
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
        for entry in parse_entries(claimed) {
            let deliveries = counts
                .get(&entry.id)
                .copied()
                .unwrap_or(1)
                .saturating_add(1);
            match entry.payload {
                Some(payload) => out.push(Delivery {
                    queue: queue.to_owned(),
                    enqueued_ms: entry_time_ms(&entry.id),
                    token: entry.id,
                    payload,
                    deliveries,
                    cancelled: entry.cancelled,
                }),
                None => vanished.push(entry.id),
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

    pub(super) async fn renew(
        &self,
        queue: &str,
        consumer: &str,
        tokens: &[String],
    ) -> Result<(), Error> {
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
}
