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

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use rpc_protocol::time::unix_ms;

use crate::sync::lock;
use crate::telemetry::{JobOutcome, UNKNOWN};

/// How often the counts go to the broker: the most a worker that dies
/// loses.
pub(super) const FLUSH_EVERY: Duration = Duration::from_secs(5);

/// Counts by (service, day as days since the Unix epoch, UTC): processed,
/// failed. The day's name (`YYYY-MM-DD`) is written only when the counts
/// are flushed, not on every job's end; and a worker serves a handful of
/// services, so a short list searched by the service name's address beats
/// hashing it on every job's end.
pub(super) type Counts = Vec<((&'static str, u64), (u64, u64))>;

/// The counts of (`service`, `day`) in `counts`, added if new.
fn entry<'a>(counts: &'a mut Counts, service: &'static str, day: u64) -> &'a mut (u64, u64) {
    let at = counts
        .iter()
        .position(|((s, d), _)| *d == day && (std::ptr::eq(*s, service) || *s == service));
    let at = at.unwrap_or_else(|| {
        counts.push(((service, day), (0, 0)));
        counts.len() - 1
    });
    &mut counts[at].1
}

/// A UTC day in ms.
pub(super) const DAY_MS: u64 = 24 * 60 * 60 * 1000;

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
        let day = unix_ms(SystemTime::now()) / DAY_MS;
        let mut pending = lock(&self.pending);
        let counts = entry(&mut pending, service, day);
        counts.0 += 1;
        counts.1 += u64::from(failed);
    }

    /// The counts so far, leaving none.
    pub(super) fn take(&self) -> Counts {
        std::mem::take(&mut *lock(&self.pending))
    }

    /// Puts back counts a flush could not write.
    pub(super) fn put_back(&self, service: &'static str, day: u64, processed: u64, failed: u64) {
        let mut pending = lock(&self.pending);
        let counts = entry(&mut pending, service, day);
        counts.0 += processed;
        counts.1 += failed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::daily_counts::utc_day;

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
        let ((service, day), counts) = taken.into_iter().next().expect("one");
        assert_eq!((service, counts), ("S", (6, 3)));
        assert_eq!(
            utc_day(day * DAY_MS),
            utc_day(unix_ms(SystemTime::now())),
            "counted under today"
        );
        assert!(stats.take().is_empty(), "taken counts are not taken again");
    }
}
