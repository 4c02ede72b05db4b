//! Heartbeats on Redis (docs/PROTOCOL.md, "Workers").
//!
//! Keys: `P:worker:{id}`, the beat (JSON, `SET ... PX ttl`);
//! `P:{S}:workers`, the sorted set of worker id -> last beat ms of each
//! service, trimmed by every beat to the last day and the newest
//! [`MAX_WORKERS_LISTED`] entries, and expiring a day after the last beat;
//! `P:worker:{id}:control`, what an
//! operator asks (`quiet` / `stop`). The beat and its control share the
//! worker's hash tag, each registry its service's, so every command here
//! names one key and runs as is on a Cluster.

use rpc_protocol::worker::{
    WorkerBeat, WorkerControl, CONTROL_TTL_MS, MAX_WORKERS_LISTED, REGISTRY_RETENTION_MS,
};

use super::connect::RedisBackend;
use crate::backend::presence::Registered;
use crate::error::Error;

impl RedisBackend {
    pub(super) async fn write_beat(
        &self,
        beat: &WorkerBeat,
    ) -> Result<Option<WorkerControl>, Error> {
        let _: () = self
            .commands
            .query(
                redis::cmd("SET")
                    .arg(self.keys.worker(&beat.id))
                    .arg(beat.encode())
                    .arg("PX")
                    .arg(beat.ttl_ms),
            )
            .await?;
        let forget_before = beat.beat_ms.saturating_sub(REGISTRY_RETENTION_MS);
        for service in &beat.services {
            let key = self.keys.workers(service);
            let _: i64 = self
                .commands
                .query(redis::cmd("ZADD").arg(&key).arg(beat.beat_ms).arg(&beat.id))
                .await?;
            let _: i64 = self
                .commands
                .query(
                    redis::cmd("ZREMRANGEBYSCORE")
                        .arg(&key)
                        .arg("-inf")
                        .arg(format!("({forget_before}")),
                )
                .await?;
            // Keep the newest entries only: a fleet restarted every minute
            // for a day must not make the registry a list nobody can read.
            let _: i64 = self
                .commands
                .query(
                    redis::cmd("ZREMRANGEBYRANK")
                        .arg(&key)
                        .arg(0)
                        .arg(-(MAX_WORKERS_LISTED as i64) - 1),
                )
                .await?;
            // Transient too: a service none beats for a day leaves nothing.
            let _: i64 = self
                .commands
                .query(redis::cmd("PEXPIRE").arg(&key).arg(REGISTRY_RETENTION_MS))
                .await?;
        }
        let control: Option<Vec<u8>> = self
            .commands
            .query(redis::cmd("GET").arg(self.keys.worker_control(&beat.id)))
            .await?;
        Ok(control.as_deref().and_then(WorkerControl::parse))
    }

    pub(super) async fn remove_beat(&self, worker_id: &str) -> Result<(), Error> {
        let _: i64 = self
            .commands
            .query(redis::cmd("DEL").arg(self.keys.worker(worker_id)))
            .await?;
        Ok(())
    }

    pub(super) async fn read_registry(
        &self,
        service: &str,
        max: usize,
    ) -> Result<Vec<Registered>, Error> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let entries: Vec<(Vec<u8>, f64)> = self
            .commands
            .query(
                redis::cmd("ZRANGE")
                    .arg(self.keys.workers(service))
                    .arg(0)
                    .arg(max.min(MAX_WORKERS_LISTED) - 1)
                    .arg("REV")
                    .arg("WITHSCORES"),
            )
            .await?;
        // Anyone with a worker's rights may write here: ids that could not
        // be a worker's, and scores out of range, are left out.
        Ok(entries
            .into_iter()
            .filter_map(|(id, score)| {
                let id = String::from_utf8(id).ok()?;
                let ok = rpc_protocol::worker::is_worker_id(&id)
                    && score.is_finite()
                    && score >= 0.0
                    && score <= rpc_protocol::limits::MAX_DEADLINE_MS as f64;
                ok.then_some(Registered {
                    id,
                    last_beat_ms: score as u64,
                })
            })
            .collect())
    }

    pub(super) async fn read_beats(&self, ids: &[String]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        // One `GET` each (the beats live in their workers' slots), all in
        // flight at once.
        let reads = ids.iter().map(|id| async move {
            if !rpc_protocol::worker::is_worker_id(id) {
                return Ok(None);
            }
            // Cut in Redis: a hostile value must not cost the reader more
            // than a beat can be.
            let max = rpc_protocol::worker::MAX_BEAT_BYTES as i64;
            let value: Vec<u8> = self
                .commands
                .query(
                    redis::cmd("GETRANGE")
                        .arg(self.keys.worker(id))
                        .arg(0)
                        .arg(max),
                )
                .await?;
            // A key that expired (or never was) reads as empty.
            let value = (!value.is_empty()).then_some(value);
            Ok::<_, Error>(value)
        });
        futures_util::future::join_all(reads)
            .await
            .into_iter()
            .collect()
    }

    pub(super) async fn write_control(
        &self,
        worker_id: &str,
        control: WorkerControl,
    ) -> Result<(), Error> {
        let _: () = self
            .commands
            .query(
                redis::cmd("SET")
                    .arg(self.keys.worker_control(worker_id))
                    .arg(control.as_str())
                    .arg("PX")
                    .arg(CONTROL_TTL_MS),
            )
            .await?;
        Ok(())
    }
}
