//! Which shard (queue) a call goes to, and the shard counts behind it.
//!
//! A service's shard count is the schema's `#[shards = N]` unless the
//! broker holds one (`P:{S}:shards`, set by an operator), which wins. The
//! broker's is read once per service and process before the first call
//! (or batch) of that service goes out ([`Client::know_shards`]), and
//! refreshed in the background every [`REFRESH`]; if that first read
//! fails, the schema's number is used, which loses nothing (workers read
//! every shard either number names). A call with an idempotency key waits
//! for a read that answered, so every duplicate meets the same claim; so
//! does a call with a group key, so that all of a key's calls share one
//! shard's slots. rpc_protocol::shards has the rules; docs/PROTOCOL.md, "Sharded
//! services", the text.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rpc_protocol::shards;

use super::handle::Client;
use super::routing::fresh_call_id;
use super::shard_cache::entry;

use crate::backend::{Broker, ShardOp};
use crate::call::{CallOptions, JobId, JobRef};
use crate::error::Error;
use crate::sync::lock;

/// How long a broker's shard count is used before it is read again.
pub(super) const REFRESH: Duration = Duration::from_secs(5);

/// Where a call goes: its queue, and the shard to mark its id with (`None`
/// for a service of one shard, whose ids stay unmarked).
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub(crate) queue: Arc<str>,
    pub(crate) mark: Option<u32>,
}

/// `route` on the lane of priority `priority` (rpc_protocol::priority): a
/// call at the default priority keeps the queue's name as it is.
fn lane(route: Route, priority: u8) -> Route {
    if priority == rpc_protocol::priority::DEFAULT {
        return route;
    }
    Route {
        queue: Arc::from(rpc_protocol::priority::lane_queue(&route.queue, priority).as_ref()),
        mark: route.mark,
    }
}

impl Client {
    /// The queue `job` goes to with `options`, and whether its id is
    /// marked; starts a read of the broker's count when it is stale.
    pub(super) fn route(&self, job: &JobRef, options: &CallOptions) -> Route {
        let cache = &self.inner.shards;
        let mut services = lock(&cache.services);
        let known = entry(&mut services, job.service);
        let count = known
            .broker
            .map_or(job.shards, |c| c.placing(job.shards))
            .clamp(1, shards::MAX_SHARDS);
        let stale = known.read_at.is_none_or(|at| at.elapsed() >= REFRESH);
        if stale && !known.reading.swap(true, Ordering::AcqRel) {
            self.read_in_background(job.service, known.reading.clone());
        }
        if count == 1 {
            return lane(
                Route {
                    queue: known.queues[0].clone(),
                    mark: None,
                },
                options.priority_of(job),
            );
        }
        // A keyed call goes to its key's shard, so a key's slots are one
        // slot's state; an idempotency key wins (every duplicate meets the
        // same claim).
        let shard = match options.idempotency_key.as_ref().or(options.group.as_ref()) {
            Some(key) => shards::shard_of_key(key, count),
            None => cache.next.fetch_add(1, Ordering::Relaxed) % count,
        };
        while known.queues.len() <= shard as usize {
            let k = known.queues.len() as u32;
            known
                .queues
                .push(Arc::from(shards::queue(job.service, k).as_ref()));
        }
        lane(
            Route {
                queue: known.queues[shard as usize].clone(),
                mark: Some(shard),
            },
            options.priority_of(job),
        )
    }

    /// A fresh call id for `route`: random, after the client's id prefix
    /// and a dash when it has one (so an ACL user limited to
    /// `P:result:{tenant-*` reads its own kept results, docs/SECURITY.md),
    /// marked `~k` when the service has several shards.
    pub(super) fn call_id_for(&self, route: &Route) -> JobId {
        fresh_call_id(&self.inner.config.client_id_prefix, route.mark)
    }

    /// Waits for the first read of the broker's shard count of `job`'s
    /// service in this process, as a Kafka producer fetches a topic's
    /// metadata before its first send: otherwise a short-lived process (the
    /// `rpc` command, a cron job) or a process's first batch places every
    /// call by the schema's count (1 for an untyped call) while an operator
    /// set another, all on shard 0 (an adversarial review found
    /// `rpc call S.j -` putting 20 of 20 calls there). One read per service
    /// and process, shared by the calls that wait for it; if it fails, the
    /// calls go on with the schema's count and the background refresh.
    /// A call that must land on its key's shard (an idempotency key or a
    /// group key) waits for a read that answered, trying again if the
    /// first did not, so every duplicate meets the same claim.
    pub(super) async fn know_shards(&self, job: &JobRef, options: &CallOptions) {
        let keyed = options.idempotency_key.is_some() || options.group.is_some();
        self.know_count(job.service, keyed).await;
    }

    async fn know_count(&self, service: &'static str, keyed: bool) {
        let first = {
            let mut services = lock(&self.inner.shards.services);
            let known = entry(&mut services, service);
            if known.read_at.is_some() {
                return;
            }
            known.first_read.clone()
        };
        first.get_or_init(|| self.read_count(service)).await;
        let known = lock(&self.inner.shards.services)
            .iter()
            .any(|k| k.service == service && k.read_at.is_some());
        if keyed && !known {
            self.read_count(service).await;
        }
    }

    /// Reads `service`'s count now, and learns it.
    async fn read_count(&self, service: &'static str) {
        match self.inner.backend.shard_count(service, ShardOp::Read).await {
            Ok(count) => self.inner.shards.learn(service, count),
            Err(e) => {
                tracing::debug!(service, error = %e, "could not read the shard count")
            }
        }
    }

    /// [`Client::know_shards`] for a batch: the count of every service in
    /// it is read once before the batch is encoded, as for a first call;
    /// a keyed call (its own key, or the batch's group) lands on the same
    /// shard whether it goes alone or in a batch (an adversarial review
    /// found a batched keyed call on shard 0 and its duplicate, sent alone,
    /// on the key's shard: both ran).
    pub(super) async fn know_batch_shards<'a>(
        &self,
        calls: impl Iterator<Item = (&'a JobRef, &'a CallOptions)>,
        batch: Option<&CallOptions>,
    ) {
        let batch_keyed = batch.is_some_and(|b| b.group.is_some());
        // Each service once, keyed if any of its calls is.
        let mut services: Vec<(&'static str, bool)> = Vec::new();
        for (job, options) in calls {
            let keyed = batch_keyed || options.idempotency_key.is_some() || options.group.is_some();
            match services.iter_mut().find(|(s, _)| *s == job.service) {
                Some((_, any)) => *any |= keyed,
                None => services.push((job.service, keyed)),
            }
        }
        for (service, keyed) in services {
            self.know_count(service, keyed).await;
        }
    }

    /// Reads `service`'s count off the call path.
    fn read_in_background(&self, service: &'static str, reading: Arc<AtomicBool>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            reading.store(false, Ordering::Release);
            return;
        };
        let backend: Arc<dyn Broker> = self.inner.backend.clone();
        let client = Arc::downgrade(&self.inner);
        rt.spawn(async move {
            let read = backend.shard_count(service, ShardOp::Read).await;
            if let Some(inner) = client.upgrade() {
                match read {
                    Ok(count) => inner.shards.learn(service, count),
                    Err(e) => {
                        tracing::debug!(service, error = %e, "could not read the shard count")
                    }
                }
            }
            reading.store(false, Ordering::Release);
        });
    }

    /// How many shards `service` may have queues on (for a cancel that
    /// does not know a call's shard): every one a worker reads.
    pub(super) async fn shards_to_search(&self, service: &str) -> Result<u32, Error> {
        let count = self
            .inner
            .backend
            .shard_count(service, ShardOp::Read)
            .await?;
        Ok(count.serving(1))
    }
}

/// The shard queues of `service` a cancel without a marked id looks in.
pub(super) fn every_queue(service: &str, count: u32) -> impl Iterator<Item = String> + '_ {
    (0..count.max(1)).map(move |k| shards::queue(service, k).into_owned())
}

/// The queue a marked id's call went to, if the id is marked.
pub(super) fn queue_of_id(service: &str, id: &JobId) -> Option<String> {
    shards::shard_of_id(id.as_str()).map(|k| shards::queue(service, k).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmarked_ids_name_no_queue() {
        assert_eq!(queue_of_id("S", &JobId::from("abc")), None);
        assert_eq!(
            queue_of_id("S", &JobId::from("abc~3")).as_deref(),
            Some("S~3")
        );
        assert_eq!(every_queue("S", 3).collect::<Vec<_>>(), ["S", "S~1", "S~2"]);
    }
}
