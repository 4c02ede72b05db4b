//! A sharded service's shard count, as the broker keeps it (Redis:
//! `P:{S}:shards`, `scripts/shards.lua`): what clients place calls on
//! (`count`), and the most shards the service ever had (`seen`), which
//! workers read so that lowering the count loses nothing. The number in
//! the schema is the default; the broker's, when set, wins for placing.
//!
//! The count is one key, and a key can be lost (evicted, deleted, written
//! over): the shards a service has also show as keys of their own, which
//! [`ShardCounts::shards_with_work`] finds, so a worker serves them even
//! then (`worker/shard_discovery.rs`).

use async_trait::async_trait;

use crate::error::Error;

/// What to do with a service's shard count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardOp {
    /// Only read it (a client).
    Read,
    /// Read it, and raise `seen` to this many (a worker serving them).
    Serve(u32),
    /// Set `count` to this many, raising `seen` to at least the old count
    /// and the new one (an operator).
    Set(u32),
}

/// A service's shard count in the broker: `None` where a field is absent
/// or garbage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardCount {
    /// The shards clients place calls on.
    pub count: Option<u32>,
    /// The most shards the service ever had.
    pub seen: Option<u32>,
}

impl ShardCount {
    /// How many shards to place calls on, given the schema's number (1
    /// for an untyped call): the count an operator set, else the most the
    /// service has had (what its workers' schema says), so a typed and
    /// an untyped client agree and an idempotency key lands on one shard.
    pub fn placing(&self, schema: u32) -> u32 {
        self.count
            .unwrap_or_else(|| schema.max(self.seen.unwrap_or(1)))
            .max(1)
    }

    /// How many shards a worker reads, given the schema's number: every
    /// one a client may have written to.
    pub fn serving(&self, schema: u32) -> u32 {
        schema
            .max(self.count.unwrap_or(1))
            .max(self.seen.unwrap_or(1))
            .max(1)
    }
}

/// Reading and recording shard counts.
#[async_trait]
pub trait ShardCounts: Send + Sync {
    /// Runs `op` on `service`'s shard count; returns it as it is after.
    async fn shard_count(&self, service: &str, op: ShardOp) -> Result<ShardCount, Error>;

    /// The shards `k >= from` of `service` that hold work in the broker (a
    /// jobs stream, a priority lane's, a schedule, an intake or a mover's
    /// list), in order: each shard asked in turn, a few past the last
    /// found (Redis: `shards_found.rs`), below
    /// [`MAX_SHARDS`](rpc_protocol::shards::MAX_SHARDS). A few dozen
    /// commands a service, so a worker asks at start, not on each read of
    /// the count.
    async fn shards_with_work(&self, service: &str, from: u32) -> Result<Vec<u32>, Error>;
}
