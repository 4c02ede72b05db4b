//! The worker's heartbeat: it says it is alive, and hears the operator.
//!
//! At start, before it takes a job, and then every
//! [`beat_every`](super::WorkerSettings::beat_every) (5 s by default) the
//! worker writes a [`WorkerBeat`] (id, host, pid, version, services,
//! concurrency, jobs in flight, start, memory) that expires after
//! [`beat_ttl`](super::WorkerSettings::beat_ttl) (30 s): a worker that
//! dies, is SIGKILLed or loses Redis disappears from `rpc workers` at most
//! that long after its last beat. A worker that stops cleanly removes its
//! beat at once. The model is Sidekiq's `processes` set and BullMQ's worker
//! list; the keys are docs/PROTOCOL.md's "Workers".
//!
//! Each beat reads back the operator's control: `quiet` stops the worker
//! taking jobs (the same switch a shutdown throws first: the taker, the
//! intake movers, the periodic ticker and reclaiming stop; running jobs
//! finish and their leases are renewed), `stop` shuts it down as SIGTERM
//! does. Both are what Sidekiq's quiet and stop do.
//!
//! The janitor also calls [`forget_gone_consumers`] here: a consumer of a
//! group that holds no lease, has been idle longer than the TTL and whose
//! worker has no live beat is removed from the group (`XGROUP
//! DELCONSUMER`), so `rpc stats` lists the workers that are there.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rpc_protocol::worker::{
    WorkerBeat, WorkerControl, WorkerState, BEAT_VERSION, MAX_BEAT_TEXT_BYTES, MAX_BEAT_TTL_MS,
    MAX_WORKERS_LISTED,
};
use tokio::sync::Notify;

use super::shared::Shared;

/// How long the last word of a stopping worker (removing its beat) may
/// take before the worker exits without it; the beat then expires.
const UNREGISTER_BOUND: Duration = Duration::from_secs(2);

/// One worker's heartbeat, shared by the beating task and the run loop.
pub(super) struct Heartbeat {
    shared: Arc<Shared>,
    started_ms: u64,
    host: String,
    state: AtomicU8,
    /// The switch that stops the taker, the movers and the ticker.
    quiet: Arc<tokio::sync::watch::Sender<bool>>,
    /// Woken when an operator asks the worker to stop.
    stop_asked: Notify,
    /// The last beat failed (so the next success is worth a line in the log).
    failing: AtomicBool,
}

impl Heartbeat {
    pub(super) fn new(
        shared: Arc<Shared>,
        quiet: Arc<tokio::sync::watch::Sender<bool>>,
    ) -> Arc<Heartbeat> {
        Arc::new(Heartbeat {
            started_ms: shared.clock.now_ms(),
            shared,
            host: host_name(),
            state: AtomicU8::new(WorkerState::Running as u8),
            quiet,
            stop_asked: Notify::new(),
            failing: AtomicBool::new(false),
        })
    }

    fn state(&self) -> WorkerState {
        match self.state.load(Ordering::Relaxed) {
            s if s == WorkerState::Quiet as u8 => WorkerState::Quiet,
            s if s == WorkerState::Stopping as u8 => WorkerState::Stopping,
            _ => WorkerState::Running,
        }
    }

    /// The beat as of now.
    fn beat(&self) -> WorkerBeat {
        let settings = &self.shared.settings;
        // Jobs whose lease is held: running, or their completion on its way.
        // (Not the free slots: the taker holds one while it waits to read.)
        let in_flight: usize = crate::sync::lock(&self.shared.running)
            .values()
            .map(|tokens| tokens.len())
            .sum();
        // Services, not their shards' queues.
        let mut services: Vec<String> =
            self.shared.services.keys().map(|s| s.to_string()).collect();
        services.sort();
        let now = self.shared.clock.now_ms();
        WorkerBeat {
            v: BEAT_VERSION,
            id: settings.consumer.clone(),
            host: self.host.clone(),
            pid: std::process::id(),
            version: settings.version.clone(),
            services,
            concurrency: u32::try_from(settings.concurrency).unwrap_or(u32::MAX),
            in_flight: u32::try_from(in_flight).unwrap_or(u32::MAX),
            started_ms: self.started_ms.min(now),
            beat_ms: now,
            every_ms: settings.beat_every.as_millis() as u64,
            ttl_ms: settings.beat_ttl.as_millis() as u64,
            rss_bytes: resident_bytes(),
            state: self.state(),
        }
    }

    /// Writes one beat and acts on the control it reads back.
    pub(super) async fn beat_once(&self) {
        match self.shared.backend.beat(&self.beat()).await {
            Ok(control) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("heartbeat written again");
                }
                match control {
                    Some(WorkerControl::Quiet) => self.go_quiet(),
                    Some(WorkerControl::Stop) => {
                        if self.state() != WorkerState::Stopping {
                            tracing::info!("an operator asked this worker to stop");
                        }
                        self.stop_asked.notify_one();
                    }
                    None => {}
                }
            }
            Err(e) => {
                self.shared.broker_error();
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "could not write the heartbeat; this worker will look gone until it can");
                }
            }
        }
    }

    fn go_quiet(&self) {
        let was = self.state.compare_exchange(
            WorkerState::Running as u8,
            WorkerState::Quiet as u8,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        if was.is_ok() {
            tracing::info!(
                "an operator asked this worker to be quiet: it takes no new jobs and finishes the running ones"
            );
            let _ = self.quiet.send(true);
        }
    }

    /// Beats until aborted.
    pub(super) async fn run(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.shared.settings.beat_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first beat was written at start
        loop {
            tick.tick().await;
            self.beat_once().await;
        }
    }

    /// Resolves when an operator asked the worker to stop.
    pub(super) async fn stop_asked(&self) {
        self.stop_asked.notified().await;
    }

    /// The worker is shutting down: said in the next beats.
    pub(super) fn stopping(&self) {
        self.state
            .store(WorkerState::Stopping as u8, Ordering::Relaxed);
    }

    /// Removes the beat of a worker that exits (bounded: it expires anyway).
    pub(super) async fn unregister(&self) {
        let id = &self.shared.settings.consumer;
        match tokio::time::timeout(UNREGISTER_BOUND, self.shared.backend.unregister(id)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "could not remove the heartbeat; it expires"),
            Err(_) => tracing::debug!("removing the heartbeat timed out; it expires"),
        }
    }
}

/// Removes from the worker's groups the consumers that are gone: no lease
/// held, idle longer than the beat TTL, and no live beat (one that has not
/// expired) under their name. Called by the janitor every TTL.
pub(super) async fn forget_gone_consumers(shared: &Shared) {
    let now = shared.clock.now_ms();
    // Read once per service, whatever its shards.
    let mut fleets: std::collections::HashMap<&str, Vec<String>> = Default::default();
    let names = shared.lanes.with_lanes(&shared.served.names());
    for queue in names.iter() {
        let service = rpc_protocol::shards::service_of_queue(queue);
        if !fleets.contains_key(service) {
            match live_workers(shared, service, now).await {
                Ok(live) => {
                    shared.idle_polls.fleet_is(service, live.len());
                    fleets.insert(service, live);
                }
                Err(e) => {
                    tracing::debug!(error = %e, queue, "could not read the live workers");
                    continue;
                }
            }
        }
        let live = &fleets[service];
        if let Err(e) = shared
            .backend
            .forget_idle_consumers(queue, shared.settings.beat_ttl, live)
            .await
        {
            tracing::debug!(error = %e, queue, "could not forget gone consumers");
        }
    }
    // Acked entries a killed worker's trim left for its next read
    // (`trim_acked.lua`): the main streams only, as lanes are completed
    // one job at a time.
    for queue in shared.served.names().iter() {
        if let Err(e) = shared.backend.sweep_acked(queue).await {
            tracing::debug!(error = %e, queue, "could not sweep acked entries");
        }
    }
}

/// The workers of `queue` whose beat has not expired (and this one).
async fn live_workers(
    shared: &Shared,
    queue: &str,
    now_ms: u64,
) -> Result<Vec<String>, crate::error::Error> {
    // A beat lives at most MAX_BEAT_TTL_MS: older registry entries are gone.
    let recent: Vec<String> = shared
        .backend
        .registered(queue, MAX_WORKERS_LISTED)
        .await?
        .into_iter()
        .filter(|r| r.last_beat_ms.saturating_add(MAX_BEAT_TTL_MS) >= now_ms)
        .map(|r| r.id)
        .collect();
    let beats = shared.backend.beats(&recent).await?;
    let mut live: Vec<String> = recent
        .into_iter()
        .zip(beats)
        .filter(|(_, beat)| beat.is_some())
        .map(|(id, _)| id)
        .collect();
    // This worker is live whatever the registry says (its first beat
    // may not be there yet), and counted once.
    if !live.contains(&shared.settings.consumer) {
        live.push(shared.settings.consumer.clone());
    }
    Ok(live)
}

/// This machine's name: `HOSTNAME`, else the kernel's, cut to what a beat
/// may carry.
fn host_name() -> String {
    let name = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .unwrap_or_default();
    let mut name: String = name.trim().chars().filter(|c| !c.is_control()).collect();
    while name.len() > MAX_BEAT_TEXT_BYTES {
        name.pop();
    }
    if name.is_empty() {
        "unknown".to_owned()
    } else {
        name
    }
}

/// The process's resident memory in bytes, on Linux (`VmRSS` of
/// `/proc/self/status`, in kB there, so no page size is needed); `None`
/// elsewhere.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kb.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resident_memory_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            let rss = resident_bytes().expect("VmRSS on Linux");
            assert!(rss > 1024 * 1024, "{rss}");
        }
    }

    #[test]
    fn a_host_name_is_never_empty_nor_too_long() {
        let name = host_name();
        assert!(!name.is_empty() && name.len() <= MAX_BEAT_TEXT_BYTES);
    }
}
