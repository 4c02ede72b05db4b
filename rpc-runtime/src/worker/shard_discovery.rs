//! A worker serves the shards that hold work in the broker, not only those
//! the shard count (`P:{S}:shards`) names. That hash is one key, and a key
//! can be lost: evicted under a `maxmemory` policy, deleted by a cleanup,
//! an unreplicated write lost in a failover, written over by a value of
//! another type (`shards.lua` reads that as unset). A worker started after
//! that would serve only its schema's shards, and the jobs queued, delayed
//! or in the intake of the others would wait for ever.
//!
//! So at start a worker asks which shards above those it serves hold work
//! ([`ShardCounts::shards_with_work`](crate::backend::ShardCounts::shards_with_work):
//! each shard's keys looked at in turn, a few past the last found, too
//! many commands for every read of the count), serves every shard up to
//! the highest found, and raises `seen` to match (`shards.lua serve`) so
//! that clients and other workers agree again. Found numbers are below
//! `MAX_SHARDS`, so a planted key costs at most the readers of a service
//! of the most shards allowed.
//!
//! While it runs there is a cheaper repair ([`restore_seen`],
//! `shard_watch.rs`): `seen` never goes down, so a count that reads below
//! the shards a worker serves was lost, and the worker records what it
//! serves again.

use rpc_protocol::shards;

use crate::backend::{Broker, ShardCount, ShardOp};

/// How many shards of `service` the queues `serving` are (`0 .. n`): one
/// past the highest.
pub(super) fn served_count(serving: &[String], service: &str) -> u32 {
    serving
        .iter()
        .map(|q| shards::split_queue(q))
        .filter(|&(s, _)| s == service)
        .map(|(_, k)| k + 1)
        .max()
        .unwrap_or(0)
}

/// The queues of `services` to read beyond `serving` (the queues read
/// now): every shard up to the highest that holds work in the broker,
/// prepared (their consumer groups made), with `seen` raised to cover
/// them. Shards from the first that cannot be prepared (a key of another
/// type where its stream goes) on are left out, so `seen` never names a
/// shard no worker can start on. Empty when nothing is found above, or
/// when the broker will not say.
pub(super) async fn serve_found(
    backend: &dyn Broker,
    services: &[&'static str],
    serving: &[String],
) -> Vec<String> {
    let mut added = Vec::new();
    for &service in services {
        let now = served_count(serving, service);
        let above = match backend.shards_with_work(service, now).await {
            Ok(above) => above,
            Err(e) => {
                tracing::info!(
                    service,
                    error = %e,
                    "cannot look for shards the shard count does not name; serving what it says"
                );
                continue;
            }
        };
        let Some(&highest) = above.last() else {
            continue;
        };
        tracing::warn!(
            service,
            shards = ?above,
            serving = now,
            "shards of the service hold work beyond its shard count (P:{{S}}:shards lost?); serving them"
        );
        let queues: Vec<String> = (now..=highest)
            .map(|k| shards::queue(service, k).into_owned())
            .collect();
        let prepared = prepare(backend, service, queues).await;
        let count = now + u32::try_from(prepared.len()).unwrap_or(0);
        if count > now {
            if let Err(e) = backend.shard_count(service, ShardOp::Serve(count)).await {
                tracing::warn!(service, error = %e, "cannot record the shards found; serving them all the same");
            }
        }
        added.extend(prepared);
    }
    added
}

/// `queues` prepared: all at once, or, when that fails, one by one up to
/// the first that fails.
async fn prepare(backend: &dyn Broker, service: &str, queues: Vec<String>) -> Vec<String> {
    if backend.prepare_queues(&queues).await.is_ok() {
        return queues;
    }
    let mut prepared = Vec::new();
    for queue in queues {
        if let Err(e) = backend.prepare_queues(std::slice::from_ref(&queue)).await {
            tracing::warn!(
                service,
                queue,
                error = %e,
                "cannot prepare a shard found in the broker; serving the shards below it"
            );
            break;
        }
        prepared.push(queue);
    }
    prepared
}

/// Records again that `service` has `served` shards when `count` (just
/// read) says fewer were ever seen: the hash was lost, and clients would
/// place on too few shards, workers that start would read too few. Quiet
/// when the key cannot hold the record (a value of another type).
pub(super) async fn restore_seen(
    backend: &dyn Broker,
    service: &str,
    count: ShardCount,
    served: u32,
) {
    if served <= count.serving(1) {
        return;
    }
    match backend.shard_count(service, ShardOp::Serve(served)).await {
        Ok(after) if after.serving(1) >= served => tracing::warn!(
            service,
            shards = served,
            "the shard count read fewer shards than this worker serves (P:{{S}}:shards lost?); recorded them again"
        ),
        Ok(_) => tracing::debug!(service, "the shard count cannot be recorded (a key of another type?)"),
        Err(e) => tracing::debug!(service, error = %e, "could not record the shards served"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shards_served_are_counted_past_the_highest() {
        let serving: Vec<String> = ["A", "S", "S~1", "S~2", "B~4"]
            .iter()
            .map(|q| q.to_string())
            .collect();
        assert_eq!(served_count(&serving, "S"), 3);
        assert_eq!(served_count(&serving, "A"), 1);
        assert_eq!(served_count(&serving, "B"), 5);
        assert_eq!(served_count(&serving, "C"), 0);
    }
}
