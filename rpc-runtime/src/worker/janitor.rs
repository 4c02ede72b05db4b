//! The janitor: renews the leases of running jobs and takes over jobs
//! whose worker died or stalled past the visibility timeout; on the way it
//! keeps the worker's view of the broker's clock fresh and, every beat TTL,
//! forgets the consumers of workers that are gone (`heartbeat.rs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::shared::Shared;
use super::take::start_job;

use crate::sync::lock;

/// How often the janitor turns: three times per visibility timeout, so one
/// late renewal does not cost a lease.
pub(super) fn janitor_period(settings: &super::settings::WorkerSettings) -> Duration {
    (settings.visibility_timeout / 3).max(Duration::from_millis(50))
}

/// The longest one broker call of the janitor may take when the broker
/// does not answer: the Redis backend's command timeout (10 s), then a
/// reconnect within its connect timeout (5 s), with a margin.
const BROKER_CALL_BOUND: Duration = Duration::from_secs(20);

/// How long the worker may go without a sign of progress of its loops
/// before `/healthz` fails: two janitor periods, plus one broker call that
/// runs into its timeouts (the janitor marks progress after every call, so
/// a broker that does not answer does not fail liveness; see
/// `telemetry/health.rs`).
pub(super) fn liveness_window(settings: &super::settings::WorkerSettings) -> Duration {
    janitor_period(settings) * 2 + BROKER_CALL_BOUND
}

pub(super) async fn janitor_loop(
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let period = janitor_period(&shared.settings);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sweep = tokio::time::Instant::now();
    // A job taken over waits for a slot (at most one at a time).
    let waiting = Arc::new(AtomicBool::new(false));
    loop {
        tick.tick().await;
        if last_sweep.elapsed() >= shared.settings.beat_ttl {
            // Consumers of workers that are gone (`heartbeat.rs`).
            last_sweep = tokio::time::Instant::now();
            super::heartbeat::forget_gone_consumers(&shared).await;
        }
        shared.health.loop_turned();
        match shared.clock.sample(&*shared.backend).await {
            Ok(()) => shared.health.broker_answered(),
            Err(e) => {
                shared.broker_error();
                tracing::debug!(error = %e, "could not read the broker's clock");
                shared
                    .health
                    .broker_failed(format_args!("reading its clock failed: {e}"));
            }
        }
        shared.health.loop_turned();
        let running: Vec<(String, Vec<String>)> = lock(&shared.running)
            .iter()
            .map(|(q, t)| (q.clone(), t.iter().cloned().collect()))
            .collect();
        for (queue, tokens) in running {
            if let Err(e) = shared
                .backend
                .extend(&queue, &shared.settings.consumer, &tokens)
                .await
            {
                shared.broker_error();
                tracing::warn!(error = %e, queue, "renewing leases failed");
            }
            shared.health.loop_turned();
        }
        super::group_admit::renew(&shared).await;
        if *stop.borrow() {
            // Shutting down: keep renewing the leases of running jobs, take no new ones.
            continue;
        }
        for queue in shared.lanes.with_lanes(&shared.served.names()).iter() {
            if shared.paused.is_paused(queue) {
                // A paused service's stalled jobs wait for the resume too.
                continue;
            }
            let free = slots.available_permits();
            // Every slot taken: still take one job over, which waits for the
            // next free slot, one at a time. With concurrency 1 the taker
            // holds the only slot while it waits for new jobs, so a worker
            // that took over nothing then would never take over a job of a
            // dead worker (found by an adversarial review).
            if free == 0 && waiting.load(Ordering::Acquire) {
                break;
            }
            match shared
                .backend
                .reclaim(
                    queue,
                    &shared.settings.consumer,
                    shared.settings.visibility_timeout,
                    free.max(1),
                )
                .await
            {
                Ok(deliveries) => {
                    shared.health.loop_turned();
                    for delivery in deliveries {
                        shared.stats.reclaimed.fetch_add(1, Ordering::Relaxed);
                        if let Some(metrics) = &shared.metrics {
                            metrics.reclaimed();
                        }
                        tracing::info!(queue, token = %delivery.token, deliveries = delivery.deliveries, "took over a job whose lease expired");
                        match slots.clone().try_acquire_owned() {
                            Ok(permit) => start_job(shared.clone(), delivery, permit, None).await,
                            Err(_) => wait_for_a_slot(&shared, &slots, &waiting, delivery),
                        }
                    }
                }
                Err(e) => {
                    shared.health.loop_turned();
                    shared.broker_error();
                    tracing::warn!(error = %e, queue, "reclaiming stalled jobs failed");
                }
            }
        }
    }
}

/// Starts `delivery`, a job taken over while every slot was taken, at the
/// next free slot; its lease is renewed meanwhile (it is in `running`).
fn wait_for_a_slot(
    shared: &Arc<Shared>,
    slots: &Arc<Semaphore>,
    waiting: &Arc<AtomicBool>,
    delivery: crate::backend::Delivery,
) {
    shared.hold_lease(&delivery);
    waiting.store(true, Ordering::Release);
    let (shared, slots, waiting) = (shared.clone(), slots.clone(), waiting.clone());
    // Not counted as outstanding: a stopping worker does not wait for it
    // (its lease lapses, and another worker takes it over).
    tokio::spawn(async move {
        if let Ok(permit) = slots.acquire_owned().await {
            waiting.store(false, Ordering::Release);
            start_job(shared, delivery, permit, None).await;
        }
    });
}
