//! A sharded service as the operator sees it: one service, whatever the
//! number of queues it is spread over (docs/PROTOCOL.md, "Sharded
//! services"). Shard 0 is the queue `S`, shard `k >= 1` the queue `S~k`;
//! the operator's tools never list `S~k` as a service of its own, and a
//! service's figures are the sums over its shards.
//!
//! The [`Inspector`] answers for a *name*: a service name `S` means every
//! shard of `S`, a shard's queue name `S~k` that queue alone (a per-shard
//! breakdown, the dashboard's page of one shard). Its methods of the same
//! name as [`Inspection`](crate::backend::Inspection)'s shadow them (an
//! inherent method wins over the `Deref` target's), so every view built on
//! the inspector covers every shard without knowing about shards; the
//! queue-by-queue answers stay reachable through [`Inspector::queues`] and
//! the queue names of [`Inspector::shard_queues`].
//!
//! Which shards a service has: `0 .. max(count, seen)` of its shard count
//! (`P:{S}:shards`, which workers and operators keep), and any `S~k`
//! queue the scan finds beyond them (calls a client placed before any
//! worker served that many). That scan is reused for a second
//! (`recent_scan.rs`): a page or a scrape asks for many services' shards
//! at once, and one `SCAN` of the keyspace serves them all. The shards are
//! read at once, not one after the other: on one connection the commands
//! go out pipelined, on a Cluster each to its own node.
//!
//! A token (a stream entry id) is unique only within one shard's stream,
//! so a token of shard `k >= 1` is shown marked, `<id>~k`, as call ids
//! are ([`mark_token`]); [`locate`] turns a service and a marked token
//! back into the queue and the entry id. Shard 0's tokens are plain, so a
//! service of one shard reads as it always did. Merged lists live in
//! `shard_lists.rs`.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;

use futures_util::future::try_join_all;
use rpc_protocol::shards::{self, SEPARATOR};
use serde::Serialize;

use super::{DailyCount, Inspector, RecordedFailure};
use crate::backend::inspection::figures::ServiceStats;
use crate::backend::{ShardCount, ShardOp};
use crate::error::Error;

/// `token` of shard `shard` as the operator's tools show it: plain for
/// shard 0, `<token>~<shard>` after.
pub fn mark_token(token: &str, shard: u32) -> String {
    if shard == 0 {
        token.to_owned()
    } else {
        shards::with_shard(token, shard)
    }
}

/// The queue and entry id a token of `name` (a service, or one shard's
/// queue) names: a token marked `~k` names shard `k` of the service; an
/// unmarked one names `name`'s own queue (shard 0 of a service).
pub fn locate<'a>(name: &'a str, token: &'a str) -> (Cow<'a, str>, &'a str) {
    match (shards::shard_of_id(token), token.rsplit_once(SEPARATOR)) {
        (Some(shard), Some((bare, _))) => {
            let service = shards::service_of_queue(name);
            (shards::queue(service, shard), bare)
        }
        _ => (Cow::Borrowed(name), token),
    }
}

/// One shard's figures, in a service's per-shard breakdown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShardFigures {
    /// The shard number (0 is the queue named like the service).
    pub shard: u32,
    /// Its queue: `S` for shard 0, `S~k` after.
    pub queue: String,
    /// Jobs waiting for a worker.
    pub queued: u64,
    /// Jobs delivered and not yet acked.
    pub leased: u64,
    /// Jobs on its schedule (delayed calls, retries).
    pub scheduled: u64,
    /// Its dead letters.
    pub dead_letters: u64,
    /// Consumers in its group.
    pub consumers: u64,
    /// Age of its oldest leased job, ms (`None` with nothing leased).
    pub oldest_leased_age_ms: Option<u64>,
}

impl Inspector {
    /// The services that have a queue, sorted: a shard's queue (`S~k`)
    /// counts as its service `S`, never as a service of its own. Shadows
    /// [`Inspection::services`](crate::backend::Inspection::services),
    /// which lists queues ([`Inspector::queues`]).
    pub async fn services(&self) -> Result<Vec<String>, Error> {
        let services: BTreeSet<String> = self
            .queues()
            .await?
            .iter()
            .map(|q| shards::service_of_queue(q).to_owned())
            .collect();
        Ok(services.into_iter().collect())
    }

    /// The answers for one queue each, shards apart: `per_queue().scheduled("S", n)`
    /// is shard 0's schedule alone, where [`Inspector::scheduled`] merges
    /// every shard of `S`.
    pub fn per_queue(&self) -> &dyn crate::backend::Inspection {
        &*self.broker
    }

    /// Every queue there is, shards apart (`S`, `S~1`, ...), sorted.
    pub async fn queues(&self) -> Result<Vec<String>, Error> {
        let queues = self.broker.services().await?;
        self.scanned.put(queues.clone());
        Ok(queues)
    }

    /// The queues as a scan found them at most a second ago
    /// (`recent_scan.rs`).
    pub(super) async fn recent_queues(&self) -> Result<Arc<Vec<String>>, Error> {
        if let Some(queues) = self.scanned.get() {
            return Ok(queues);
        }
        let queues = self.broker.services().await?;
        Ok(self.scanned.put(queues))
    }

    /// `service`'s shard count as kept in the broker (`rpc shards`):
    /// what clients place calls on and the most shards it ever had.
    pub async fn shard_count(&self, service: &str) -> Result<ShardCount, Error> {
        self.broker.shard_count(service, ShardOp::Read).await
    }

    /// The shards of `name`, ascending: every shard of a service (at least
    /// shard 0), or just the one a shard's queue name (`S~k`) names.
    pub async fn shards_of(&self, name: &str) -> Result<Vec<u32>, Error> {
        let (service, shard) = shards::split_queue(name);
        if shard > 0 {
            return Ok(vec![shard]);
        }
        let kept = self.shard_count(service).await?.serving(1);
        let mut all: BTreeSet<u32> = (0..kept).collect();
        for queue in self.recent_queues().await?.iter() {
            let (s, k) = shards::split_queue(queue);
            if s == service {
                all.insert(k);
            }
        }
        Ok(all.into_iter().collect())
    }

    /// The queues of `name`'s shards, with their numbers
    /// ([`shards_of`](Self::shards_of)).
    pub async fn shard_queues(&self, name: &str) -> Result<Vec<(u32, String)>, Error> {
        let service = shards::service_of_queue(name);
        Ok(self
            .shards_of(name)
            .await?
            .into_iter()
            .map(|k| (k, shards::queue(service, k).into_owned()))
            .collect())
    }

    /// Whether `name` exists: any of its shards has a queue, or calls
    /// waiting on its schedule or intake.
    pub async fn has_service(&self, name: &str) -> Result<bool, Error> {
        for (_, queue) in self.shard_queues(name).await? {
            if self.broker.has_service(&queue).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// `name`'s figures, summed over its shards (`shards` says how many it
    /// has, [`shards_of`](Self::shards_of)); `Ok(None)` when no shard has
    /// a queue.
    pub async fn service_stats(&self, name: &str) -> Result<Option<ServiceStats>, Error> {
        let queues = self.shard_queues(name).await?;
        let parts = try_join_all(queues.iter().map(|(_, q)| self.broker.service_stats(q))).await?;
        Ok(sum(
            name,
            queues.len(),
            parts.into_iter().flatten().collect(),
        ))
    }

    /// [`service_stats`](Self::service_stats) read without any message,
    /// for pages that must stay small.
    pub async fn service_stats_bounded(&self, name: &str) -> Result<Option<ServiceStats>, Error> {
        let queues = self.shard_queues(name).await?;
        let parts = try_join_all(
            queues
                .iter()
                .map(|(_, q)| self.broker.service_stats_bounded(q)),
        )
        .await?;
        Ok(sum(
            name,
            queues.len(),
            parts.into_iter().flatten().collect(),
        ))
    }

    /// `name`'s figures shard by shard (bounded reads): where a hot or
    /// stuck shard shows. A shard without a queue yet has zeros but its
    /// schedule and dead letters.
    pub async fn shard_figures(&self, name: &str) -> Result<Vec<ShardFigures>, Error> {
        let queues = self.shard_queues(name).await?;
        try_join_all(queues.into_iter().map(|(shard, queue)| async move {
            let stats = self.broker.service_stats_bounded(&queue).await?;
            let dead_letters = match &stats {
                Some(s) => s.dead_letters,
                None => self.broker.dead_letter_count(&queue).await?,
            };
            Ok::<_, Error>(ShardFigures {
                shard,
                scheduled: self.broker.scheduled_count(&queue).await?,
                queued: stats.as_ref().map_or(0, |s| s.queued),
                leased: stats.as_ref().map_or(0, |s| s.leased),
                dead_letters,
                consumers: stats.as_ref().map_or(0, |s| s.consumers.len() as u64),
                oldest_leased_age_ms: stats
                    .as_ref()
                    .and_then(|s| s.oldest_leased_age)
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                queue,
            })
        }))
        .await
    }

    /// How many dead letters `name` has, over its shards.
    pub async fn dead_letter_count(&self, name: &str) -> Result<u64, Error> {
        let queues = self.shard_queues(name).await?;
        let counts =
            try_join_all(queues.iter().map(|(_, q)| self.broker.dead_letter_count(q))).await?;
        Ok(counts.into_iter().sum())
    }

    /// How many jobs wait on `name`'s schedules, over its shards.
    pub async fn scheduled_count(&self, name: &str) -> Result<u64, Error> {
        let queues = self.shard_queues(name).await?;
        let counts =
            try_join_all(queues.iter().map(|(_, q)| self.broker.scheduled_count(q))).await?;
        Ok(counts.into_iter().sum())
    }

    /// Whether `name`'s service is paused (one flag for every shard).
    pub async fn is_paused(&self, name: &str) -> Result<bool, Error> {
        self.broker.is_paused(shards::service_of_queue(name)).await
    }

    /// `name`'s jobs processed and failed on each of `days` (UTC days,
    /// `YYYY-MM-DD`; see [`last_days`](super::last_days) for the last few
    /// on the broker's clock), as the workers counted them
    /// (`P:{S}:stat:processed:<day>`, one count per shard), added up over
    /// its shards; zero for a day with no count.
    pub async fn daily_counts(
        &self,
        name: &str,
        days: &[String],
    ) -> Result<Vec<DailyCount>, Error> {
        let mut total: Vec<DailyCount> = days
            .iter()
            .map(|day| DailyCount {
                day: day.clone(),
                processed: 0,
                failed: 0,
            })
            .collect();
        let queues = self.shard_queues(name).await?;
        let per_shard = try_join_all(
            queues
                .iter()
                .map(|(_, q)| self.broker.daily_counts(q, days)),
        )
        .await?;
        for counts in per_shard {
            for (t, c) in total.iter_mut().zip(counts) {
                t.processed = t.processed.saturating_add(c.processed);
                t.failed = t.failed.saturating_add(c.failed);
            }
        }
        Ok(total)
    }

    /// At most `max` of `name`'s recent failed attempts over its shards,
    /// newest first, older than entry `before` when given (the last entry
    /// of the page before): from `P:{S}:failures` of each shard, which
    /// workers keep to about
    /// [`FAILURES_CAP`](rpc_protocol::limits::FAILURES_CAP) entries each.
    /// Entry ids are times, so the shards' records merge by them (the
    /// entry of shard `k >= 1` comes marked `~k`; `before` may be marked).
    pub async fn recent_failures(
        &self,
        name: &str,
        before: Option<&str>,
        max: usize,
    ) -> Result<Vec<RecordedFailure>, Error> {
        let before = before.map(|b| locate(name, b).1);
        let queues = self.shard_queues(name).await?;
        let per_shard = try_join_all(
            queues
                .iter()
                .map(|(_, q)| self.broker.recent_failures(q, before, max)),
        )
        .await?;
        let mut all = Vec::new();
        for ((shard, _), failures) in queues.iter().zip(per_shard) {
            for mut f in failures {
                f.entry = mark_token(&f.entry, *shard);
                all.push(f);
            }
        }
        all.sort_by_key(|f| std::cmp::Reverse(entry_order(locate(name, &f.entry).1)));
        all.truncate(max);
        Ok(all)
    }
}

/// A stream entry id's order: `(ms, seq)`, for merging shards' streams
/// (an id is a time); a shard mark (`~k`) is not part of it; garbage sorts
/// first.
pub fn entry_order(id: &str) -> (u64, u64) {
    let id = id.split(SEPARATOR).next().unwrap_or(id);
    id.split_once('-')
        .and_then(|(ms, seq)| Some((ms.parse().ok()?, seq.parse().ok()?)))
        .unwrap_or((0, 0))
}

/// One service's figures from those of its `shards` shards that have a
/// queue (`None` when none has): [`ServiceStats::sum_of`].
fn sum(name: &str, shards: usize, parts: Vec<ServiceStats>) -> Option<ServiceStats> {
    ServiceStats::sum_of(name, u32::try_from(shards).unwrap_or(u32::MAX), parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::inspection::figures::ConsumerStats;
    use std::time::Duration;

    #[test]
    fn tokens_of_shards_are_marked_and_found_again() {
        assert_eq!(mark_token("5-0", 0), "5-0");
        assert_eq!(mark_token("5-0", 3), "5-0~3");
        assert_eq!(locate("S", "5-0~3"), (Cow::Borrowed("S~3"), "5-0"));
        assert_eq!(locate("S", "5-0"), (Cow::Borrowed("S"), "5-0"));
        assert_eq!(locate("S~2", "5-0"), (Cow::Borrowed("S~2"), "5-0"));
        assert_eq!(locate("S~2", "5-0~1"), (Cow::Borrowed("S~1"), "5-0"));
        // Not a shard mark: left as it is (the broker finds no such entry).
        assert_eq!(locate("S", "5-0~999"), (Cow::Borrowed("S"), "5-0~999"));
    }

    fn part(queue: &str, queued: u64, consumer: (&str, u64, u64)) -> ServiceStats {
        ServiceStats {
            service: queue.into(),
            shards: 1,
            queued,
            lanes: crate::backend::inspection::lanes::lanes_of(queued, &[]),
            leased: consumer.1,
            dead_letters: 1,
            stream_length: queued + consumer.1,
            entries_added: Some(10),
            consumers: vec![ConsumerStats {
                name: consumer.0.into(),
                pending: consumer.1,
                idle: Duration::from_millis(consumer.2),
                inactive: None,
            }],
            oldest_leased_age: Some(Duration::from_millis(consumer.2)),
        }
    }

    #[test]
    fn a_service_adds_up_its_shards_and_lists_each_worker_once() {
        let total = sum(
            "S",
            2,
            vec![part("S", 3, ("w1", 2, 50)), part("S~1", 4, ("w1", 1, 20))],
        )
        .unwrap();
        assert_eq!(total.service, "S");
        assert_eq!(total.shards, 2);
        assert_eq!((total.queued, total.leased, total.dead_letters), (7, 3, 2));
        assert_eq!(total.lanes[2].queued, 7, "the default lane's, summed");
        assert_eq!(total.entries_added, Some(20));
        assert_eq!(total.oldest_leased_age, Some(Duration::from_millis(50)));
        assert_eq!(total.consumers.len(), 1);
        assert_eq!(total.consumers[0].pending, 3);
        assert_eq!(total.consumers[0].idle, Duration::from_millis(20));
        assert!(sum("S", 3, Vec::new()).is_none());
    }

    #[test]
    fn entry_ids_order_as_times() {
        assert!(entry_order("10-1") > entry_order("9-5"));
        assert!(entry_order("10-1") > entry_order("10-0"));
        assert_eq!(entry_order("10-1~3"), (10, 1));
        assert_eq!(entry_order("garbage"), (0, 0));
    }
}
