//! The worker's movers: one task per service, each with a blocking
//! connection of its own, moving what clients without `XADD` rights put on
//! the service's intake onto its jobs stream (`backend/redis/intake.rs`
//! says why the intake exists and how a move works).
//!
//! A mover waits in `BLMOVE` with the script that moves right behind it in
//! one pipeline, so an element is on the stream a few microseconds after a
//! client pushed it, whichever worker's mover Redis hands it to. A mover
//! holds no job: a worker that stops, or dies, loses nothing (what one took
//! and did not move waits in `moving` for the next move).

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::shared::Shared;
use super::take::sleep_or_stop;

/// How long one wait for the intake blocks before it loops (to notice a
/// stop, and to move what a mover that died left in `moving`).
const WAIT: Duration = Duration::from_secs(1);

/// Starts a mover for each of `queues`, if the broker has intakes (none
/// otherwise: the memory backend queues directly).
pub(super) fn spawn(
    shared: &Arc<Shared>,
    queues: &[String],
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    if !shared.backend.has_intake() {
        return Vec::new();
    }
    queues
        .iter()
        .map(|queue| tokio::spawn(mover(shared.clone(), queue.clone(), stop.clone())))
        .collect()
}

async fn mover(shared: Arc<Shared>, queue: String, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut reader = None;
    let mut backoff = Duration::from_millis(50);
    let mut failing = false;
    while !*stop.borrow() {
        let r = match reader.as_mut() {
            Some(r) => r,
            None => match shared.backend.open_reader().await {
                Ok(r) => reader.insert(r),
                Err(e) => {
                    if !failing {
                        tracing::warn!(queue, error = %e, "the intake mover cannot reach the broker; retrying");
                    }
                    failing = true;
                    sleep_or_stop(&mut stop, backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            },
        };
        let moved = tokio::select! {
            moved = r.move_intake(&queue, WAIT, shared.settings.max_message_bytes) => moved,
            _ = stop.changed() => return,
        };
        match moved {
            Ok(n) => {
                if std::mem::take(&mut failing) {
                    tracing::info!(queue, "the intake mover reaches the broker again");
                }
                backoff = Duration::from_millis(50);
                if n > 0 {
                    tracing::trace!(queue, moved = n, "moved calls from the intake");
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(queue, error = %e, "moving the intake failed; retrying");
                }
                failing = true;
                shared.broker_error();
                reader = None;
                sleep_or_stop(&mut stop, backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}
