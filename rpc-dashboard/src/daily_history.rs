//! The history the dashboard shows across restarts: jobs processed and
//! failed per day over the last 30 days, per service and in all, read from
//! the counters workers keep in Redis (`P:{S}:stat:processed:<day>`, see
//! docs/PROTOCOL.md, "Daily counts"), drawn as SVG bars on the server.
//!
//! Reading 30 days of every service on every page would be 60 `GET`s per
//! service. Days before yesterday no longer change (workers flush within
//! seconds of a job's end), so they are read once and remembered; only
//! today and yesterday are read on each page. What is remembered is
//! bounded by the services shown times the days charted, and forgotten
//! when a day leaves the window.

use std::collections::HashMap;
use std::sync::Mutex;

use rpc_protocol::limits::DAILY_STATS_SHOWN;
use rpc_runtime::inspect::{last_days, DailyCount};
use rpc_runtime::Inspector;

use crate::error::PageError;

/// Width and height of a chart's SVG viewBox.
const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 120.0;
/// Days that are read again on every page: today and yesterday.
const LIVE_DAYS: usize = 2;

/// The counts of days that no longer change, by (service, day).
#[derive(Default)]
pub struct DailyHistory {
    settled: Mutex<HashMap<(String, String), (u64, u64)>>,
}

impl DailyHistory {
    /// `service`'s counts over the charted days, oldest first, `now_ms`
    /// on the broker's clock.
    pub async fn of(
        &self,
        inspector: &Inspector,
        service: &str,
        now_ms: u64,
    ) -> Result<Vec<DailyCount>, PageError> {
        let days = last_days(now_ms, DAILY_STATS_SHOWN);
        let settled_until = days.len().saturating_sub(LIVE_DAYS);
        let missing: Vec<String> = {
            let settled = self.lock();
            days.iter()
                .enumerate()
                .filter(|(i, day)| {
                    *i >= settled_until
                        || !settled.contains_key(&(service.to_owned(), (*day).clone()))
                })
                .map(|(_, day)| day.clone())
                .collect()
        };
        let read = inspector.daily_counts(service, &missing).await?;
        let mut settled = self.lock();
        let oldest = &days[0];
        settled.retain(|(_, day), _| day >= oldest);
        for count in &read {
            if days[settled_until..].contains(&count.day) {
                continue;
            }
            settled.insert(
                (service.to_owned(), count.day.clone()),
                (count.processed, count.failed),
            );
        }
        let fresh: HashMap<&str, &DailyCount> = read.iter().map(|c| (c.day.as_str(), c)).collect();
        Ok(days
            .iter()
            .map(|day| match fresh.get(day.as_str()) {
                Some(c) => (*c).clone(),
                None => {
                    let (processed, failed) = settled
                        .get(&(service.to_owned(), day.clone()))
                        .copied()
                        .unwrap_or_default();
                    DailyCount {
                        day: day.clone(),
                        processed,
                        failed,
                    }
                }
            })
            .collect())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), (u64, u64)>> {
        // Whole entries only: a panic elsewhere cannot leave one half-written.
        self.settled.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Several services' counts added day by day (each list oldest first, the
/// same days).
pub fn total(per_service: &[Vec<DailyCount>]) -> Vec<DailyCount> {
    let mut out: Vec<DailyCount> = per_service.first().cloned().unwrap_or_default();
    for counts in per_service.iter().skip(1) {
        for (sum, c) in out.iter_mut().zip(counts) {
            sum.processed = sum.processed.saturating_add(c.processed);
            sum.failed = sum.failed.saturating_add(c.failed);
        }
    }
    out
}

/// One day's bars.
pub struct DayBar {
    pub day: String,
    pub processed: u64,
    pub failed: u64,
    pub x: String,
    pub width: String,
    /// The processed bar's top and height.
    pub y: String,
    pub height: String,
    /// The failed bar's top and height (drawn over the processed one).
    pub failed_y: String,
    pub failed_height: String,
}

/// A chart of daily counts, ready for the template.
pub struct DailyChart {
    pub bars: Vec<DayBar>,
    pub processed: u64,
    pub failed: u64,
    /// The top of the scale.
    pub max: u64,
    pub first_day: String,
    pub last_day: String,
}

impl DailyChart {
    /// Draws `counts` (oldest first).
    pub fn new(counts: &[DailyCount]) -> DailyChart {
        let max = counts
            .iter()
            .map(|c| c.processed.max(c.failed))
            .max()
            .unwrap_or(0);
        let scale = max.max(1) as f64;
        let step = WIDTH / counts.len().max(1) as f64;
        let height = |n: u64| (n as f64 / scale).clamp(0.0, 1.0) * (HEIGHT - 2.0);
        let bars = counts
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let (h, fh) = (height(c.processed), height(c.failed));
                DayBar {
                    day: c.day.clone(),
                    processed: c.processed,
                    failed: c.failed,
                    x: format!("{:.1}", i as f64 * step + 1.0),
                    width: format!("{:.1}", (step - 2.0).max(1.0)),
                    y: format!("{:.1}", HEIGHT - h),
                    height: format!("{h:.1}"),
                    failed_y: format!("{:.1}", HEIGHT - fh),
                    failed_height: format!("{fh:.1}"),
                }
            })
            .collect();
        DailyChart {
            bars,
            processed: counts.iter().map(|c| c.processed).sum(),
            failed: counts.iter().map(|c| c.failed).sum(),
            max,
            first_day: counts.first().map(|c| c.day.clone()).unwrap_or_default(),
            last_day: counts.last().map(|c| c.day.clone()).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(day: &str, processed: u64, failed: u64) -> DailyCount {
        DailyCount {
            day: day.to_owned(),
            processed,
            failed,
        }
    }

    #[test]
    fn bars_are_scaled_to_the_busiest_day_and_totals_add_up() {
        let a = vec![day("d1", 10, 0), day("d2", 40, 4)];
        let b = vec![day("d1", 0, 0), day("d2", 60, 6)];
        let sum = total(&[a, b]);
        assert_eq!(sum, [day("d1", 10, 0), day("d2", 100, 10)]);
        let chart = DailyChart::new(&sum);
        assert_eq!((chart.processed, chart.failed, chart.max), (110, 10, 100));
        assert_eq!(chart.bars[1].height, format!("{:.1}", HEIGHT - 2.0));
        assert_eq!(
            chart.bars[0].height,
            format!("{:.1}", (HEIGHT - 2.0) / 10.0)
        );
        assert_eq!(
            (chart.first_day.as_str(), chart.last_day.as_str()),
            ("d1", "d2")
        );
        // No counts at all: flat, not a division by zero.
        let empty = DailyChart::new(&[day("d1", 0, 0)]);
        assert_eq!(empty.bars[0].height, "0.0");
    }
}
