//! The worker's progress writer: one task that writes the progress its
//! jobs report (`context/progress.rs` keeps it) to the broker, at most one
//! value per call every [`WRITE_INTERVAL`], the newest.
//!
//! One task for all jobs, woken when a call has something new, so a job
//! that reports pays no round trip and a job that does not pays nothing.
//! Writes are best effort: a value the broker refuses is logged and
//! dropped (the next report replaces it anyway). A stopping worker writes
//! what is left once its jobs have drained ([`flush`]).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use rpc_protocol::progress::{ProgressValue, WRITE_INTERVAL};

use super::shared::Shared;
use crate::context::progress::DueWrite;

/// Writes progress until aborted (after [`flush`] at shutdown).
pub(super) fn spawn(shared: Arc<Shared>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let board = shared.progress.clone();
        loop {
            // Registered before looking, so a report after the look wakes us.
            let woken = board.wake.notified();
            let (due, next) = board.take_due(Instant::now(), WRITE_INTERVAL);
            for write in due {
                write_one(&shared, write).await;
            }
            match next {
                Some(next) => {
                    tokio::select! {
                        () = woken => {}
                        () = tokio::time::sleep_until(next.into()) => {}
                    }
                }
                None => woken.await,
            }
        }
    })
}

/// Writes every value not written yet (a stopping worker's last).
pub(super) async fn flush(shared: &Shared) {
    for write in shared.progress.take_all() {
        write_one(shared, write).await;
    }
}

async fn write_one(shared: &Shared, write: DueWrite) {
    let DueWrite { id, report, ttl } = write;
    // When it was reported, on the broker's clock as this worker sees it.
    let ago = SystemTime::now()
        .duration_since(report.at)
        .unwrap_or_default();
    let at_ms = shared
        .clock
        .now_ms()
        .saturating_sub(u64::try_from(ago.as_millis()).unwrap_or(0));
    let value = ProgressValue {
        seq: report.seq,
        at_ms,
        attempt: report.attempt,
        done: report.steps.map(|(done, _)| done),
        total: report.steps.map(|(_, total)| total),
        fraction: report.fraction,
        message: report.message,
    };
    if let Err(e) = shared
        .backend
        .write_progress(&id, &value.encode(), ttl)
        .await
    {
        tracing::debug!(id, "progress not written: {e}");
        shared.broker_error();
    }
}
