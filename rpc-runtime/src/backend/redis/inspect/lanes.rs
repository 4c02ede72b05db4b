//! The priority lanes of a queue on Redis: lane `p` other than the default
//! is the stream `P:{Q}:jobs:<p>` (`Keys::jobs_at`), in the queue's slot,
//! read like the default lane's stream (`stats.rs`) and added to it.
//!
//! Most queues have no such stream, so one `EXISTS` of the four keys (one
//! command: they share the slot) answers for all of them; only when one
//! exists is each read: its length and entries added (`stream_figures.lua`,
//! which reads no entry; `XLEN` alone where the script cannot run), then
//! its group's lag, pending entries and consumers. A key of another type where a lane belongs is marked
//! unreadable, never an error, and counts nothing.

use redis::{FromRedisValue, Value};
use rpc_protocol::priority::OTHER_LANES;

use super::super::read_only::ReadOnlyScript;
use super::view::RedisView;
use crate::backend::inspection::figures::ServiceStats;
use crate::backend::inspection::lanes::empty_lanes;
use crate::error::Error;

impl RedisView {
    /// The figures of each lane of `queue` other than the default that
    /// has a key, one [`ServiceStats`] each (an empty list when none has).
    pub(super) async fn other_lane_stats(&self, queue: &str) -> Result<Vec<ServiceStats>, Error> {
        let keys: Vec<String> = OTHER_LANES
            .iter()
            .map(|&p| self.keys.jobs_at(queue, p))
            .collect();
        let present: u64 = self.query(redis::cmd("EXISTS").arg(&keys)).await?;
        if present == 0 {
            return Ok(Vec::new());
        }
        let mut lanes = Vec::with_capacity(keys.len());
        for (&priority, key) in OTHER_LANES.iter().zip(&keys) {
            let kind: String = self.query(redis::cmd("TYPE").arg(key)).await?;
            let read = match kind.as_str() {
                "none" => continue,
                "stream" => self.lane_stats(queue, priority, key).await,
                other => Err(Error::Broker(format!("{key} is a {other}"))),
            };
            // A stream deleted or replaced between the reads, or garbage,
            // is read as unreadable for this look rather than failing the
            // view.
            lanes.push(read.unwrap_or_else(|_| unreadable(queue, priority)));
        }
        Ok(lanes)
    }

    /// Lane `priority`'s figures from its stream `stream`.
    async fn lane_stats(
        &self,
        queue: &str,
        priority: u8,
        stream: &str,
    ) -> Result<ServiceStats, Error> {
        let figures = match self
            .read_only(ReadOnlyScript::StreamFigures, &[stream], &[])
            .await
        {
            Ok(Value::Array(parts)) => {
                let number = |i: usize| {
                    parts
                        .get(i)
                        .and_then(|v| u64::from_redis_value(v.clone()).ok())
                };
                (number(0).unwrap_or(0), number(1))
            }
            // No `EVALSHA_RO` (Redis 6, a user without it): the length
            // alone, so the queue's entries added are unknown.
            _ => (self.query(redis::cmd("XLEN").arg(stream)).await?, None),
        };
        self.stream_stats(queue, priority, figures).await
    }
}

/// A lane that could not be read: no figures, marked.
fn unreadable(queue: &str, priority: u8) -> ServiceStats {
    let mut lanes = empty_lanes();
    for lane in lanes.iter_mut().filter(|l| l.priority == priority) {
        lane.unreadable = true;
    }
    ServiceStats {
        service: queue.to_owned(),
        shards: 1,
        queued: 0,
        lanes,
        leased: 0,
        dead_letters: 0,
        stream_length: 0,
        entries_added: Some(0),
        consumers: Vec::new(),
        oldest_leased_age: None,
    }
}
