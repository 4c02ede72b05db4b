//! A service's busiest group keys (docs/PROTOCOL.md, "Per-key
//! concurrency"), over its shards: what `rpc stats`, the service page and
//! the exporter show. Bounded twice: the broker is asked about at most
//! [`MAX_GROUP_KEYS_VISITED`] keys of a service per look, and of those the
//! [`TOP_GROUP_KEYS`] busiest are kept, so no view grows with the number
//! of tenants.

use std::collections::BTreeMap;

use futures_util::future::try_join_all;
use rpc_protocol::shards;

use super::Inspector;
use crate::backend::inspection::group_keys::{
    BusyGroupKeys, MAX_GROUP_KEYS_VISITED, TOP_GROUP_KEYS,
};
use crate::error::Error;

impl Inspector {
    /// The [`TOP_GROUP_KEYS`] busiest group keys of `name` (a service:
    /// over its shards; a shard's queue `S~k`: that one), most calls
    /// running first, then most waiting; `capped` when the look stopped
    /// at [`MAX_GROUP_KEYS_VISITED`] keys before it saw them all. State
    /// of the wrong type shows as unreadable (`None`), never an error.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), rpc_runtime::Error> {
    /// let inspector = rpc_runtime::Inspector::connect("redis://127.0.0.1:6379/", "rpc").await?;
    /// for k in inspector.busy_group_keys("Mailer").await?.keys {
    ///     println!("{} {}: {:?} running, {:?} waiting", k.job, k.key, k.running, k.waiting);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn busy_group_keys(&self, name: &str) -> Result<BusyGroupKeys, Error> {
        let queues = self.shard_queues(name).await?;
        // The bound is the service's: shared out over its shards.
        let each = (MAX_GROUP_KEYS_VISITED / queues.len().max(1)).max(1);
        let parts = try_join_all(
            queues
                .iter()
                .map(|(_, q)| self.per_queue().group_keys(q, each)),
        )
        .await?;
        Ok(BusyGroupKeys::merge(parts, TOP_GROUP_KEYS))
    }

    /// [`Inspector::busy_group_keys`] of every service that has group
    /// keys, by service, in one pass over the broker (one `SCAN` on
    /// Redis, stopped after [`MAX_GROUP_KEYS_VISITED`] keys per queue
    /// there is; the queues as a scan of them found them at most a second
    /// ago, so a scrape that lists the services first pays no scan more).
    pub async fn every_busy_group_key(&self) -> Result<BTreeMap<String, BusyGroupKeys>, Error> {
        let queues = self.recent_queues().await?.len();
        let max = MAX_GROUP_KEYS_VISITED.saturating_mul(queues.max(1));
        let by_queue = self.per_queue().every_group_key(max).await?;
        let mut by_service: BTreeMap<String, Vec<BusyGroupKeys>> = BTreeMap::new();
        for (queue, keys) in by_queue {
            let service = shards::service_of_queue(&queue).to_owned();
            by_service.entry(service).or_default().push(keys);
        }
        Ok(by_service
            .into_iter()
            .map(|(service, parts)| (service, BusyGroupKeys::merge(parts, TOP_GROUP_KEYS)))
            .collect())
    }
}
