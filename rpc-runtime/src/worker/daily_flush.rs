//! Flushing the worker's daily counts (`daily_stats.rs`) to the broker:
//! every [`FLUSH_EVERY`] while the worker takes jobs, and once more after
//! its drain. Apart from the counter, which every job's end touches
//! through [`Shared`], so the counter does not depend on what shares it.

use std::sync::Arc;

use super::daily_stats::{DAY_MS, FLUSH_EVERY};
use super::shared::Shared;
use crate::backend::daily_counts::utc_day;

/// Writes what was counted to the broker; what it refuses waits for the
/// next flush.
pub(super) async fn flush(shared: &Shared) {
    for ((service, day), (processed, failed)) in shared.daily.take() {
        let name = utc_day(day.saturating_mul(DAY_MS));
        let added = shared
            .backend
            .add_daily_counts(service, &name, processed, failed)
            .await;
        if let Err(e) = added {
            tracing::debug!(service, day = %name, "daily counts not written yet: {e}");
            shared.broker_error();
            shared.daily.put_back(service, day, processed, failed);
        }
    }
}

/// Flushes every [`FLUSH_EVERY`] until the worker stops taking jobs; the
/// caller awaits it and flushes once more after the drain ([`flush`]).
/// It is never aborted: a flush cut off between taking the counts and
/// writing them would lose them.
pub(super) fn spawn(
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            let stopping = async {
                let _ = stop.wait_for(|stopping| *stopping).await;
            };
            tokio::select! {
                _ = tick.tick() => {}
                () = stopping => return,
            }
            flush(&shared).await;
        }
    })
}
