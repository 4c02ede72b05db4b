//! The priority lanes of a queue on Redis: lane `p` other than the default
//! is the stream `P:{Q}:jobs:<p>` (`Keys::jobs_at`), in the queue's slot.
//!
//! Most queues have no such stream, so one `EXISTS` of the four keys (one
//! command: they share the slot) answers for all of them; only when one
//! exists is each read, the way the default lane is (`stats.rs`): the
//! group's `lag`, or where Redis cannot say, the stream's length minus its
//! leased entries. A key of another type where a lane belongs is marked
//! unreadable, never an error.

use redis::streams::StreamPendingReply;
use rpc_protocol::priority::OTHER_LANES;
use rpc_protocol::stream::GROUP;

use super::view::RedisView;
use crate::backend::inspection::lanes::LaneDepth;
use crate::error::Error;

impl RedisView {
    /// The lanes of queue `queue` other than the default one that have a
    /// key (an empty list when none has: the lanes are then all empty).
    pub(super) async fn other_lanes(&self, queue: &str) -> Result<Vec<LaneDepth>, Error> {
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
            lanes.push(self.lane_depth(priority, key).await?);
        }
        Ok(lanes)
    }

    /// One lane's depth from its stream `stream`.
    async fn lane_depth(&self, priority: u8, stream: &str) -> Result<LaneDepth, Error> {
        let kind: String = self.query(redis::cmd("TYPE").arg(stream)).await?;
        let mut lane = LaneDepth::empty(priority);
        match kind.as_str() {
            "none" => {}
            // A stream deleted or replaced between the reads is read as
            // unreadable for this look rather than failing the view.
            "stream" => match self.not_delivered(stream).await {
                Ok(n) => lane.queued = n,
                Err(_) => lane.unreadable = true,
            },
            _ => lane.unreadable = true,
        }
        Ok(lane)
    }

    /// What jobs stream `stream` holds not yet delivered: the group's lag;
    /// where Redis cannot say (Redis 6, entries deleted before delivery),
    /// its length minus its leased entries, which is exact as workers
    /// delete what they ack; every entry before a worker made the group.
    async fn not_delivered(&self, stream: &str) -> Result<u64, Error> {
        let group = self.group(stream).await?;
        if let Some(lag) = group.as_ref().and_then(|g| g.lag) {
            return Ok(lag as u64);
        }
        let length: u64 = self.query(redis::cmd("XLEN").arg(stream)).await?;
        let leased = match group {
            Some(_) => {
                let pending: StreamPendingReply = self
                    .query(redis::cmd("XPENDING").arg(stream).arg(GROUP))
                    .await?;
                pending.count() as u64
            }
            None => 0,
        };
        Ok(length.saturating_sub(leased))
    }
}
