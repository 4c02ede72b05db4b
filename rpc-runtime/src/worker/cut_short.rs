//! What ends a job other than its handler returning: its call cancelled
//! before it ran (as far as the broker knows), its deadline passing while
//! the handler runs, its cancellation not heeded within the grace period,
//! or a panic. Split from `job.rs`, which runs the job.

use std::time::Duration;

use super::shared::Shared;

use crate::backend::Delivery;
use crate::context::cancellations::Cancellations;

/// Whether call `id` is cancelled as far as the broker knows, asked only
/// while this worker has had to forget cancellations (a storm of them) or
/// has not polled the queue lately: otherwise what it learned is the
/// whole answer.
pub(super) async fn forgot_cancelled(shared: &Shared, delivery: &Delivery, id: &str) -> bool {
    // What the polls said is the whole answer, unless this worker had to
    // forget cancellations or its last poll of the queue is old (an idle
    // poll backed off: `idle_polls.rs`).
    if !shared.cancels.overflowed(shared.clock.now_ms())
        && !shared
            .idle_polls
            .is_stale(super::lanes::queue_of(&delivery.queue))
    {
        return false;
    }
    match shared.backend.cancelled_at(&delivery.queue, id).await {
        Ok(Some(at)) => {
            shared.cancels.note(&delivery.queue, id, at);
            true
        }
        Ok(None) => false,
        Err(e) => {
            tracing::warn!(id, error = %e, "could not ask the broker whether a call is cancelled; running it");
            false
        }
    }
}

/// How a handler's run ended.
pub(super) enum Ran<T> {
    /// It returned (or panicked: the `Err`).
    Done(T),
    /// Its deadline passed first; it was dropped.
    Expired,
    /// It was cancelled and did not end within the grace period; it was
    /// dropped.
    Abandoned,
}

/// Resolves at `due`; never without one.
pub(super) async fn expiry(due: Option<tokio::time::Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// Resolves `grace` after call `id` is learned to be cancelled.
pub(super) async fn abandoned(cancels: &Cancellations, id: &str, grace: Duration) {
    cancels.wait(id).await;
    tokio::time::sleep(grace).await;
}

/// What a caught panic said, for the failure's message.
pub(super) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}
