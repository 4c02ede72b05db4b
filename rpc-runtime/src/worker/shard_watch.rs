//! Notices a service's shard count growing while the worker runs: an
//! operator raised it (`rpc shards S N`), and clients place calls on the
//! new shards within seconds. Every [`WATCH_EVERY`] (jittered) the worker
//! reads each service's count (one `HMGET`) and starts reading the shards
//! it does not read yet: their consumer group, their intake mover, the
//! lifecycle poll. Shards are never dropped: one no longer written to is
//! drained like any other.
//!
//! The count may also be lost (`shard_discovery.rs`): a read that says
//! fewer shards than the worker serves records them again.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::intake;
use super::jitter::jitter;
use super::shard_discovery::{restore_seen, served_count};
use super::shared::Shared;

use crate::backend::ShardOp;

/// How often a worker reads its services' shard counts.
const WATCH_EVERY: Duration = Duration::from_secs(5);

/// Starts the watcher; it ends when `stop` says so, after the movers it
/// started.
pub(super) fn spawn(
    shared: Arc<Shared>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(watch(shared, stop))
}

async fn watch(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut movers = Vec::new();
    let mut services: Vec<(&'static str, u32)> = shared
        .services
        .iter()
        .map(|(name, s)| (*name, s.shards()))
        .collect();
    services.sort_unstable();
    loop {
        let wait = WATCH_EVERY + Duration::from_millis(jitter(1_000));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            break;
        }
        for &(name, schema) in &services {
            let count = match shared.backend.shard_count(name, ShardOp::Read).await {
                Ok(count) => count,
                Err(e) => {
                    tracing::debug!(service = name, error = %e, "could not read the shard count");
                    continue;
                }
            };
            let read = shared.served.names();
            restore_seen(&*shared.backend, name, count, served_count(&read, name)).await;
            let serving = count.serving(schema);
            let missing: Vec<String> = (0..serving)
                .map(|k| rpc_protocol::shards::queue(name, k).into_owned())
                .filter(|q| !read.contains(q))
                .collect();
            if missing.is_empty() {
                continue;
            }
            if let Err(e) = shared.backend.prepare_queues(&missing).await {
                tracing::warn!(service = name, error = %e, "cannot prepare the new shards; trying again");
                continue;
            }
            let added = shared.served.add(&missing);
            tracing::info!(
                service = name,
                shards = serving,
                "the service's shard count grew; reading its new shards"
            );
            movers.extend(intake::spawn(&shared, &added, &stop));
        }
    }
    for mover in movers {
        let _ = mover.await;
    }
}
