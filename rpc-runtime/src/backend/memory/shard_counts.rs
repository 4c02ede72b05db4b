//! The memory broker's shard counts, with the rules of `scripts/shards.lua`,
//! and the shards that hold work (a queue or a schedule), as Redis's
//! `shards_found.rs` finds them.

use async_trait::async_trait;
use rpc_protocol::shards::{self, is_count};

use super::lanes::lane_free;
use super::registry::MemoryBackend;
use crate::backend::shard_counts::{ShardCount, ShardCounts, ShardOp};
use crate::error::Error;

#[async_trait]
impl ShardCounts for MemoryBackend {
    async fn shard_count(&self, service: &str, op: ShardOp) -> Result<ShardCount, Error> {
        let mut state = self.state();
        let entry = state
            .shard_counts
            .entry(lane_free(service).to_owned())
            .or_default();
        let (count, seen) = entry;
        match op {
            ShardOp::Read => {}
            ShardOp::Serve(n) if is_count(n) && n > seen.unwrap_or(1) => {
                *seen = Some(seen.unwrap_or(0).max(n));
            }
            ShardOp::Set(n) if is_count(n) => {
                *seen = Some(seen.unwrap_or(0).max(count.unwrap_or(0)).max(n));
                *count = Some(n);
            }
            ShardOp::Serve(_) | ShardOp::Set(_) => {}
        }
        Ok(ShardCount {
            count: *count,
            seen: *seen,
        })
    }

    async fn shards_with_work(&self, service: &str, from: u32) -> Result<Vec<u32>, Error> {
        let state = self.state();
        let mut found: Vec<u32> = state
            .queues
            .keys()
            .chain(state.scheduled.keys())
            .map(|q| shards::split_queue(lane_free(q)))
            .filter(|&(s, shard)| s == service && shard >= from.max(1))
            .map(|(_, shard)| shard)
            .collect();
        found.sort_unstable();
        found.dedup();
        Ok(found)
    }
}
