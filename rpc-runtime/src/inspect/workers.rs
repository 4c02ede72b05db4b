//! The workers an operator sees: each service's registry joined with the
//! beats that have not expired (what
//! [`Inspector::workers`](super::Inspector::workers) lists), and what a
//! call that timed out can say about its service ([`ServiceHealth`]).
//!
//! A worker is *live* while its beat key exists and its beat is younger
//! than the TTL it states; it is *gone* when its registry entry remains
//! (for a day after its last beat) but its beat expired, or it stopped
//! and removed it. A beat that does not read is shown as *unreadable*
//! with the reason: any worker may write there, so nothing in it is
//! trusted before [`WorkerBeat::decode`] checked it.

use std::collections::BTreeMap;

use rpc_protocol::worker::{WorkerBeat, MAX_WORKERS_LISTED};
use serde::Serialize;

use crate::backend::{Broker, ShardOp};
use crate::error::Error;

/// Whether a worker is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Liveness {
    /// Its beat is there and younger than its TTL.
    Live,
    /// Its beat expired (or it stopped): only the registry remembers it.
    Gone,
    /// Its beat is there but does not read (see `error`).
    Unreadable,
}

/// One worker as the registries and its beat tell it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerInfo {
    /// The worker's id (its consumer name).
    pub id: String,
    /// Whether it is there.
    pub liveness: Liveness,
    /// Its last beat (ms since the epoch, Redis's clock), from the beat
    /// when it reads, else from the registry.
    pub last_beat_ms: u64,
    /// How long ago that was, ms, on the broker's clock.
    pub last_beat_age_ms: u64,
    /// The services whose registries name it (the beat's own list when
    /// it reads).
    pub services: Vec<String>,
    /// The beat, when it is there and reads.
    pub beat: Option<WorkerBeat>,
    /// Why the beat does not read, for `Unreadable`.
    pub error: Option<String>,
}

impl WorkerInfo {
    /// How long it has run, ms, for a live worker.
    pub fn uptime_ms(&self, now_ms: u64) -> Option<u64> {
        self.beat
            .as_ref()
            .map(|b| now_ms.saturating_sub(b.started_ms))
    }
}

/// What the broker can say of one service's workers and queue, in a few
/// bounded reads: what a call that timed out reports (the typed client's
/// [`TimeoutDiagnosis`](crate::TimeoutDiagnosis) is made from it). Each
/// figure is `None` when it could not be read: with the client ACL role
/// only the pause flag is readable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServiceHealth {
    /// The service.
    pub service: String,
    /// Whether it is paused.
    pub paused: Option<bool>,
    /// Workers with a live beat that serve it.
    pub live_workers: Option<u64>,
    /// Of those, how many are quiet or stopping (take no jobs).
    pub quiet_workers: Option<u64>,
    /// The last beat of any worker of the service (ms, Redis's clock), if
    /// one beat in the last day.
    pub last_seen_ms: Option<u64>,
    /// Jobs waiting for a worker.
    pub queued: Option<u64>,
    /// How long the oldest of them has waited, ms.
    pub oldest_queued_age_ms: Option<u64>,
    /// The broker's clock when this was read (ms since the epoch).
    pub now_ms: u64,
}

/// The workers of `services` at `now_ms`.
pub(crate) async fn workers_of(
    broker: &dyn Broker,
    services: &[String],
    now_ms: u64,
) -> Result<Vec<WorkerInfo>, Error> {
    // id -> (last beat per the registries, services naming it)
    let mut seen: BTreeMap<String, (u64, Vec<String>)> = BTreeMap::new();
    for service in services {
        for entry in broker.registered(service, MAX_WORKERS_LISTED).await? {
            let (last, named) = seen.entry(entry.id).or_default();
            *last = (*last).max(entry.last_beat_ms);
            named.push(service.clone());
        }
    }
    let ids: Vec<String> = seen.keys().cloned().collect();
    let beats = broker.beats(&ids).await?;
    let mut workers: Vec<WorkerInfo> = seen
        .into_iter()
        .zip(beats)
        .map(|((id, (last, services)), raw)| {
            let (liveness, beat, error) = match raw.map(|raw| WorkerBeat::decode(&raw)) {
                None => (Liveness::Gone, None, None),
                Some(Ok(beat)) if beat.id != id => (
                    Liveness::Unreadable,
                    None,
                    Some(format!("the beat names another worker, {:?}", beat.id)),
                ),
                Some(Ok(beat)) if !beat.is_live_at(now_ms) => (Liveness::Gone, Some(beat), None),
                Some(Ok(beat)) => (Liveness::Live, Some(beat), None),
                Some(Err(e)) => (Liveness::Unreadable, None, Some(e.to_string())),
            };
            let last_beat_ms = beat.as_ref().map_or(last, |b| b.beat_ms.max(last));
            WorkerInfo {
                services: beat.as_ref().map_or(services, |b| b.services.clone()),
                id,
                liveness,
                last_beat_ms,
                last_beat_age_ms: now_ms.saturating_sub(last_beat_ms),
                beat,
                error,
            }
        })
        .collect();
    workers.sort_by(|a, b| {
        (a.liveness != Liveness::Live)
            .cmp(&(b.liveness != Liveness::Live))
            .then_with(|| a.id.cmp(&b.id))
    });
    Ok(workers)
}

/// How many of the newest registry entries a timeout's diagnosis reads:
/// enough to find a live worker among the last ones to beat, few enough
/// to stay a handful of commands.
const HEALTH_WORKERS_READ: usize = 32;

/// See [`Inspector::service_health`]: the pause flag, the newest registry
/// entries and their beats, the queue's length and its oldest waiting job;
/// what cannot be read is left `None`.
pub(crate) async fn service_health(broker: &dyn Broker, service: &str) -> ServiceHealth {
    let now_ms = match broker.broker_time_ms().await {
        Ok(ms) => ms,
        Err(_) => rpc_protocol::time::unix_ms(std::time::SystemTime::now()),
    };
    let mut health = ServiceHealth {
        service: service.to_owned(),
        paused: broker.is_paused(service).await.ok(),
        now_ms,
        ..ServiceHealth::default()
    };
    if let Ok(registered) = broker.registered(service, HEALTH_WORKERS_READ).await {
        health.last_seen_ms = registered.iter().map(|r| r.last_beat_ms).max();
        let ids: Vec<String> = registered.into_iter().map(|r| r.id).collect();
        if let Ok(beats) = broker.beats(&ids).await {
            let (mut live, mut quiet) = (0, 0);
            let decoded = beats
                .iter()
                .flatten()
                .filter_map(|raw| WorkerBeat::decode(raw).ok());
            for beat in decoded {
                if beat.is_live_at(now_ms) && beat.services.iter().any(|s| s == service) {
                    live += 1;
                    if beat.state != rpc_protocol::worker::WorkerState::Running {
                        quiet += 1;
                    }
                }
            }
            health.live_workers = Some(live);
            health.quiet_workers = Some(quiet);
        }
    }
    // A sharded service's jobs wait on every shard it has: the count the
    // broker keeps (clients may read it), one queue otherwise.
    let shards = broker
        .shard_count(service, ShardOp::Read)
        .await
        .map_or(1, |count| count.serving(1));
    for shard in 0..shards {
        let queue = rpc_protocol::shards::queue(service, shard);
        let Ok(Some(stats)) = broker.service_stats_bounded(&queue).await else {
            continue;
        };
        health.queued = Some(health.queued.unwrap_or(0) + stats.queued);
        // The oldest waiting call of each priority lane with calls queued.
        for lane in stats.lanes.iter().filter(|l| l.queued > 0) {
            let lane = rpc_protocol::priority::lane_queue(&queue, lane.priority);
            let age = broker
                .queued_excerpts(&lane, None, 1, 0)
                .await
                .ok()
                .flatten()
                .and_then(|jobs| jobs.into_iter().next())
                .and_then(|job| token_ms(&job.token))
                .map(|added| now_ms.saturating_sub(added));
            health.oldest_queued_age_ms = health.oldest_queued_age_ms.max(age);
        }
    }
    health
}

/// The time a stream entry id (`<ms>-<seq>`) was added.
fn token_ms(token: &str) -> Option<u64> {
    token.split_once('-')?.0.parse().ok()
}
