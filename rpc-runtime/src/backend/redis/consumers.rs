//! Consumer housekeeping: forgetting the consumer names of workers that
//! are gone and hold no leases. A consumer is forgotten when it holds no
//! pending entry, has not even tried to read for `idle` (Redis's `idle`,
//! which every blocking read resets, so a live idle worker never
//! qualifies), and is not one of the live workers in `keep`.

use std::time::Duration;

use redis::Value;

use super::commands::is_nogroup;
use super::connect::RedisBackend;
use super::scripts::compiled;
use super::values::{as_fields, as_int, as_string};
use crate::error::Error;
use rpc_protocol::scripts;
use rpc_protocol::stream::GROUP;

impl RedisBackend {
    pub(super) async fn forget_idle(
        &self,
        queue: &str,
        idle: Duration,
        keep: &[String],
    ) -> Result<usize, Error> {
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
            // `idle` is the time since the consumer last tried to read (a
            // blocking read that found nothing counts); `inactive` (Redis
            // 7.2+) only counts successful reads, so a live worker of a
            // quiet queue would look gone by it.
            let quiet = fields
                .iter()
                .find(|(k, _)| k == "idle")
                .and_then(|(_, v)| as_int(v));
            let (Some(name), Some(0), Some(quiet)) = (name, pending, quiet) else {
                continue;
            };
            if quiet < idle_ms || keep.contains(&name) {
                continue;
            }
            // DELCONSUMER drops the consumer's pending entries too: the
            // script checks again, in one step with the delete, that the
            // consumer still holds none and is still idle (a worker that
            // came back may have read a job since the listing).
            let mut invocation = compiled(&scripts::FORGET_CONSUMER).prepare_invoke();
            invocation.key(&key).arg(GROUP).arg(&name).arg(idle_ms);
            let forgot = self.commands.invoke(&invocation).await?;
            if as_int(&forgot) != Some(1) {
                continue;
            }
            tracing::info!(queue, consumer = %name, "forgot an idle consumer with no pending jobs");
            removed += 1;
        }
        Ok(removed)
    }

    /// Removes the acked entries of `queue`'s stream that no worker will
    /// delete: `trim_acked.lua` with `+`, which trims up to the oldest lease
    /// held, or to the group's last delivered entry when none is. What a
    /// trim of acks alone left for its worker's next read stays when that
    /// worker is killed first, and what a batch `XACK` did not count in
    /// full leaves (on a single Redis and on a Cluster alike).
    pub(super) async fn sweep_acked(&self, queue: &str) -> Result<(), Error> {
        let key = self.jobs_key(queue);
        let mut invocation = compiled(&scripts::TRIM_ACKED).prepare_invoke();
        invocation.key(&key).arg(GROUP).arg("+");
        match self.commands.invoke(&invocation).await {
            Ok(_) => Ok(()),
            Err(e) if is_nogroup(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
