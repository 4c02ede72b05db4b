//! The figures of one memory queue as the operator's view reports them
//! (`inspection.rs`): what Redis's `XINFO` and `XPENDING` say of a jobs
//! stream, read from the queue's state, with its priority lanes
//! (`lane_depths.rs`).

use std::time::{Duration, Instant, SystemTime};

use super::state::{Queue, State};
use crate::backend::inspection::figures::{ConsumerStats, ServiceStats};

fn now_ms() -> u64 {
    rpc_protocol::time::unix_ms(SystemTime::now())
}

/// The figures of queue `service`, `q` in `state`: its lanes other than
/// the default are queues of their own in `state` (`lane_depths.rs`).
pub(super) fn stats(state: &State, service: &str, q: &Queue) -> ServiceStats {
    let now = Instant::now();
    let mut consumers: Vec<ConsumerStats> = q
        .consumers
        .iter()
        .map(|(name, seen)| ConsumerStats {
            name: name.clone(),
            pending: q.leased.values().filter(|l| &l.consumer == name).count() as u64,
            idle: now.duration_since(*seen),
            inactive: None,
        })
        .collect();
    consumers.sort_by(|a, b| a.name.cmp(&b.name));
    let oldest = q.leased.values().map(|l| l.enqueued_ms).min();
    let lanes = state.lanes(service, q.ready.len() as u64);
    ServiceStats {
        service: service.to_owned(),
        shards: 1,
        queued: lanes.iter().map(|l| l.queued).sum(),
        lanes,
        leased: q.leased.len() as u64,
        dead_letters: q.dead.len() as u64,
        stream_length: (q.ready.len() + q.leased.len()) as u64,
        entries_added: Some(q.added),
        consumers,
        oldest_leased_age: oldest.map(|at| Duration::from_millis(now_ms().saturating_sub(at))),
    }
}
