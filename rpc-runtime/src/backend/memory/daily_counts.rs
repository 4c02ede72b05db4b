//! Daily counts in memory: a map by queue and day, as long as the broker
//! lives (one process; nothing to expire but what `DAILY_STATS_KEPT`
//! would on Redis, which a process does not outlive in practice). A
//! queue's priority lanes count together (`lanes.rs`).

use async_trait::async_trait;

use super::lanes::lane_free;
use super::registry::MemoryBackend;
use crate::backend::daily_counts::{DailyCount, DailyCounts};
use crate::error::Error;

#[async_trait]
impl DailyCounts for MemoryBackend {
    async fn add_daily_counts(
        &self,
        queue: &str,
        day: &str,
        processed: u64,
        failed: u64,
    ) -> Result<(), Error> {
        let mut state = self.state();
        let counts = state
            .daily
            .entry((lane_free(queue).to_owned(), day.to_owned()))
            .or_default();
        counts.0 = counts.0.saturating_add(processed);
        counts.1 = counts.1.saturating_add(failed);
        Ok(())
    }

    async fn daily_counts(&self, queue: &str, days: &[String]) -> Result<Vec<DailyCount>, Error> {
        let state = self.state();
        Ok(days
            .iter()
            .map(|day| {
                let (processed, failed) = state
                    .daily
                    .get(&(lane_free(queue).to_owned(), day.clone()))
                    .copied()
                    .unwrap_or_default();
                DailyCount {
                    day: day.clone(),
                    processed,
                    failed,
                }
            })
            .collect())
    }
}
