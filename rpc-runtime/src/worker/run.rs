//! A [`Worker`] running: the heartbeat, the taker, the janitor, the
//! lifecycle loop, the intake movers, the periodic ticker, the progress
//! writer and the metrics listener, started together and stopped
//! gracefully (on the shutdown future, or when an operator asks through
//! the heartbeat).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::Semaphore;

use super::heartbeat::Heartbeat;
use super::janitor::janitor_loop;
use super::lifecycle::Lifecycle;
use super::probe::probe_loop;
use super::shared::Shared;
use super::signal::shutdown_signal;
use super::stats::StatsSnapshot;
use super::take::take_loop;
use super::{daily_flush, intake, periodic, progress_writer, shard_watch};

use crate::error::Error;
use crate::telemetry::listener;
use crate::telemetry::listener::Exposition;

/// A worker serving mounted services. Clone-free: run it once.
pub struct Worker {
    pub(super) shared: Arc<Shared>,
    /// The bound metrics listener and what it serves.
    pub(super) exposition: Option<(tokio::net::TcpListener, Arc<Exposition>)>,
    /// The periodic jobs, checked.
    pub(super) periodic: Vec<super::periodic_check::Prepared>,
}

impl Worker {
    /// The address the metrics listener is bound to (see
    /// [`WorkerBuilder::metrics_addr`]); it serves once the worker runs.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        let (listener, _) = self.exposition.as_ref()?;
        listener.local_addr().ok()
    }

    /// Counters so far.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.snapshot()
    }

    /// A handle to the counters that stays valid while the worker runs.
    pub fn stats_handle(&self) -> impl Fn() -> StatsSnapshot + Send + Sync + 'static {
        let shared = self.shared.clone();
        move || shared.snapshot()
    }

    /// Runs until SIGTERM or ctrl-c, then shuts down gracefully.
    pub async fn run(self) -> Result<StatsSnapshot, Error> {
        self.run_until(shutdown_signal()).await
    }

    /// Runs until `shutdown` completes, then shuts down gracefully.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<StatsSnapshot, Error> {
        let shared = self.shared;
        // The checks are served, and so the broker probed, only with a listener.
        let (serving, probe) = match self.exposition {
            Some((listener, exposition)) => (
                Some(tokio::spawn(listener::serve(listener, exposition))),
                Some(tokio::spawn(probe_loop(shared.clone()))),
            ),
            None => (None, None),
        };
        let slots = Arc::new(Semaphore::new(shared.settings.concurrency));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stop_tx = Arc::new(stop_tx);
        // Listed from the first beat, before any job is taken.
        let heartbeat = Heartbeat::new(shared.clone(), stop_tx.clone());
        heartbeat.beat_once().await;
        let beating = tokio::spawn(heartbeat.clone().run());
        tracing::info!(
            broker = %shared.backend.describe(),
            queues = ?shared.served.names(),
            consumer = %shared.settings.consumer,
            concurrency = shared.settings.concurrency,
            "worker started"
        );
        // Pauses and cancellations known before the first job is taken.
        let mut lifecycle = Lifecycle::new(shared.clone());
        lifecycle.round().await;
        let taker = tokio::spawn(take_loop(shared.clone(), slots.clone(), stop_rx.clone()));
        let ticker = periodic::spawn(shared.clone(), self.periodic, stop_rx.clone());
        let janitor = tokio::spawn(janitor_loop(shared.clone(), slots.clone(), stop_rx.clone()));
        let lifecycle = tokio::spawn(lifecycle.run());
        let movers = intake::spawn(&shared, &shared.served.names(), &stop_rx);
        let watcher = shard_watch::spawn(shared.clone(), stop_rx.clone());
        let daily = daily_flush::spawn(shared.clone(), stop_rx.clone());
        let progress = progress_writer::spawn(shared.clone());
        // Ready once the taker has read the queues (`take.rs`).
        tokio::select! {
            _ = shutdown => {}
            _ = heartbeat.stop_asked() => {}
        }
        heartbeat.stopping();
        shared.health.stopping();
        tracing::info!("worker stopping: no new jobs; waiting for running ones");
        let _ = stop_tx.send(true);
        for mover in movers {
            let _ = mover.await;
        }
        let _ = watcher.await;
        let _ = taker.await;
        if let Some(ticker) = ticker {
            let _ = ticker.await;
        }
        // Running jobs hold slots; getting all of them back means all are done.
        let all = shared.settings.concurrency as u32;
        let drained = tokio::time::timeout(shared.settings.shutdown_grace, async {
            let _all = slots.acquire_many(all).await;
            // Jobs done; their completions may still be on their way.
            shared.outstanding.wait_idle().await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                "shutdown grace period over; unfinished jobs will be reclaimed by other workers"
            );
        }
        let _ = daily.await;
        daily_flush::flush(&shared).await;
        progress.abort();
        progress_writer::flush(&shared).await;
        janitor.abort();
        lifecycle.abort();
        beating.abort();
        heartbeat.unregister().await;
        if let Some(serving) = serving {
            serving.abort();
        }
        if let Some(probe) = probe {
            probe.abort();
        }
        Ok(shared.snapshot())
    }
}
