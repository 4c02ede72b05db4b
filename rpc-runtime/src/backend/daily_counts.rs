//! Processed and failed jobs per service and per day (UTC), kept by the
//! broker so that a chart of the last weeks survives a restart of whoever
//! draws it: workers add what they counted, the dashboard reads it back
//! (Sidekiq's `stat:processed:<date>`, per service).
//!
//! A day is named `YYYY-MM-DD` ([`utc_day`]). On Redis each count is a
//! string counter (`P:{S}:stat:processed:<day>`, `P:{S}:stat:failed:<day>`)
//! that expires [`DAILY_STATS_KEPT`] after its last write, so the counters
//! of a service stay a few dozen keys whatever it runs.

use async_trait::async_trait;
use rpc_protocol::limits::DAILY_STATS_KEPT;

use crate::error::Error;

/// One day's counts of one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyCount {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    /// Jobs that ended that day, whatever the outcome.
    pub processed: u64,
    /// Of those, the ones that failed (an error answer, a retry, a dead letter).
    pub failed: u64,
}

/// Daily counts: added by workers, read by operators' tools.
#[async_trait]
pub trait DailyCounts: Send + Sync + 'static {
    /// Adds `processed` and `failed` to `queue`'s counts of `day`, and
    /// keeps them [`DAILY_STATS_KEPT`] from now.
    async fn add_daily_counts(
        &self,
        queue: &str,
        day: &str,
        processed: u64,
        failed: u64,
    ) -> Result<(), Error>;

    /// `queue`'s counts of each of `days` (zero for a day with none).
    async fn daily_counts(&self, queue: &str, days: &[String]) -> Result<Vec<DailyCount>, Error>;
}

/// The UTC day of `ms` since the Unix epoch, as `YYYY-MM-DD`.
pub fn utc_day(ms: u64) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.date_naive().to_string())
        .unwrap_or_else(|| "9999-12-31".to_owned())
}

/// The `n` days up to and including the day of `now_ms`, oldest first.
pub fn last_days(now_ms: u64, n: u32) -> Vec<String> {
    const DAY_MS: u64 = 24 * 60 * 60 * 1000;
    (0..u64::from(n))
        .rev()
        .map(|back| utc_day(now_ms.saturating_sub(back * DAY_MS)))
        .collect()
}

/// How long a count is kept after its last write, in seconds (`EXPIRE`).
pub(crate) fn kept_secs() -> u64 {
    DAILY_STATS_KEPT.as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_dates_oldest_first() {
        assert_eq!(utc_day(0), "1970-01-01");
        // 2026-12-06T23:59:59.999Z and the next millisecond.
        assert_eq!(utc_day(1_796_601_599_999), "2026-12-06");
        assert_eq!(utc_day(1_796_601_600_000), "2026-12-07");
        assert_eq!(
            last_days(1_796_601_600_000, 3),
            ["2026-12-05", "2026-12-06", "2026-12-07"]
        );
    }
}
