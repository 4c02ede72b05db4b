//! The worker's share of the daily counts the dashboard charts: how many
//! jobs of each service ended today, and how many of them failed, added to
//! the broker's counters (`P:{S}:stat:processed:<day>`,
//! `P:{S}:stat:failed:<day>`, see `backend/daily_counts.rs`).
//!
//! A job's end is counted in memory (a lock and a map lookup, no round
//! trip) under the UTC day it ended on, and the counts are flushed with
//! `INCRBY` every [`FLUSH_EVERY`], and once more when the worker stops
//! after its drain, the way Sidekiq's processor counts and its heartbeat
//! flushes. A worker that dies without stopping (SIGKILL, a crash, a lost
//! machine) loses what it counted since the last flush: at most
//! [`FLUSH_EVERY`] of counts. A flush the broker refuses keeps its counts
//! for the next one, so a Redis that is down for a minute loses nothing
//! either.
//!
//! Processed is every job that ended (succeeded, failed, retried,
//! dead-lettered, expired, cancelled); failed is every one that ended in
//! a failure (answered with an error, retried, dead-lettered, an unknown
//! job), as Sidekiq counts a failed attempt that will be retried.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rpc_protocol::time::unix_ms;

use super::shared::Shared;
use crate::backend::daily_counts::utc_day;
use crate::sync::lock;
use crate::telemetry::{JobOutcome, UNKNOWN};

/// How often the counts go to the broker: the most a worker that dies
/// loses.
pub(super) const FLUSH_EVERY: Duration = Duration::from_secs(5);

/// Counts by (service, day): processed, failed.
type Counts = HashMap<(&'static str, String), (u64, u64)>;

/// Counts not flushed yet.
#[derive(Debug, Default)]
pub(super) struct DailyStats {
    pending: Mutex<Counts>,
}

impl DailyStats {
    /// Counts a job of `service` that ended with `outcome`, now.
    pub(super) fn count(&self, service: &'static str, outcome: JobOutcome) {
        if service == UNKNOWN {
            return;
        }
        let failed = matches!(
            outcome,
            JobOutcome::failed | JobOutcome::retried | JobOutcome::dead | JobOutcome::unknown_job
        );
        let day = utc_day(unix_ms(SystemTime::now()));
        let mut pending = lock(&self.pending);
        let counts = pending.entry((service, day)).or_default();
        counts.0 += 1;
        counts.1 += u64::from(failed);
    }

    /// The counts so far, leaving none.
    fn take(&self) -> Counts {
        std::mem::take(&mut *lock(&self.pending))
    }

    /// Puts back counts a flush could not write.
    fn put_back(&self, service: &'static str, day: String, processed: u64, failed: u64) {
        let mut pending = lock(&self.pending);
        let counts = pending.entry((service, day)).or_default();
        counts.0 += processed;
        counts.1 += failed;
    }
}

/// Writes what was counted to the broker; what it refuses waits for the
/// next flush.
pub(super) async fn flush(shared: &Shared) {
    for ((service, day), (processed, failed)) in shared.daily.take() {
        let added = shared
            .backend
            .add_daily_counts(service, &day, processed, failed)
            .await;
        if let Err(e) = added {
            tracing::debug!(service, %day, "daily counts not written yet: {e}");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_end_is_processed_and_only_failures_are_failed() {
        let stats = DailyStats::default();
        for outcome in [
            JobOutcome::succeeded,
            JobOutcome::failed,
            JobOutcome::retried,
            JobOutcome::dead,
            JobOutcome::cancelled,
            JobOutcome::timeout,
        ] {
            stats.count("S", outcome);
        }
        stats.count(UNKNOWN, JobOutcome::failed);
        let taken = stats.take();
        assert_eq!(taken.len(), 1, "{taken:?}");
        let ((service, _day), counts) = taken.into_iter().next().expect("one");
        assert_eq!((service, counts), ("S", (6, 3)));
        assert!(stats.take().is_empty(), "taken counts are not taken again");
    }
}
