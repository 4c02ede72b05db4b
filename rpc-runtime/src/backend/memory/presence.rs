//! The memory broker's heartbeats: beats that expire, the registries of
//! who serves each queue, and the operator's controls, as Redis keeps them
//! (`backend/redis/presence.rs`).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use rpc_protocol::worker::{
    WorkerBeat, WorkerControl, CONTROL_TTL_MS, MAX_WORKERS_LISTED, REGISTRY_RETENTION_MS,
};

use super::lanes::lane_free;
use super::registry::MemoryBackend;
use crate::backend::presence::{Presence, Registered};
use crate::error::Error;

#[async_trait]
impl Presence for MemoryBackend {
    async fn beat(&self, beat: &WorkerBeat) -> Result<Option<WorkerControl>, Error> {
        let now = Instant::now();
        let mut state = self.state();
        state.beats.retain(|_, (_, expires)| *expires > now);
        state.beats.insert(
            beat.id.clone(),
            (beat.encode(), now + Duration::from_millis(beat.ttl_ms)),
        );
        let forget_before = beat.beat_ms.saturating_sub(REGISTRY_RETENTION_MS);
        for service in &beat.services {
            let registry = state
                .registries
                .entry(lane_free(service).to_owned())
                .or_default();
            registry.insert(beat.id.clone(), beat.beat_ms);
            registry.retain(|_, at| *at >= forget_before);
            if registry.len() > MAX_WORKERS_LISTED {
                let mut by_age: Vec<(u64, String)> =
                    registry.iter().map(|(id, at)| (*at, id.clone())).collect();
                by_age.sort();
                for (_, id) in &by_age[..by_age.len() - MAX_WORKERS_LISTED] {
                    registry.remove(id);
                }
            }
        }
        state.controls.retain(|_, (_, expires)| *expires > now);
        Ok(state.controls.get(&beat.id).map(|(control, _)| *control))
    }

    async fn unregister(&self, worker_id: &str) -> Result<(), Error> {
        self.state().beats.remove(worker_id);
        Ok(())
    }

    async fn registered(&self, service: &str, max: usize) -> Result<Vec<Registered>, Error> {
        let state = self.state();
        let Some(registry) = state.registries.get(lane_free(service)) else {
            return Ok(Vec::new());
        };
        let mut entries: Vec<Registered> = registry
            .iter()
            .map(|(id, at)| Registered {
                id: id.clone(),
                last_beat_ms: *at,
            })
            .collect();
        entries.sort_by(|a, b| b.last_beat_ms.cmp(&a.last_beat_ms).then(b.id.cmp(&a.id)));
        entries.truncate(max.min(MAX_WORKERS_LISTED));
        Ok(entries)
    }

    async fn beats(&self, ids: &[String]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        let now = Instant::now();
        let state = self.state();
        Ok(ids
            .iter()
            .map(|id| {
                state
                    .beats
                    .get(id)
                    .filter(|(_, expires)| *expires > now)
                    .map(|(beat, _)| beat.clone())
            })
            .collect())
    }

    async fn set_control(&self, worker_id: &str, control: WorkerControl) -> Result<(), Error> {
        let expires = Instant::now() + Duration::from_millis(CONTROL_TTL_MS);
        self.state()
            .controls
            .insert(worker_id.to_owned(), (control, expires));
        Ok(())
    }
}
