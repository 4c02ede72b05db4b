//! The memory broker's shard counts, with the rules of `scripts/shards.lua`.

use async_trait::async_trait;
use rpc_protocol::shards::is_count;

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
}
