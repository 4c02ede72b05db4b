//! Daily counts on Redis: one string counter per service, day and kind
//! (`P:{S}:stat:processed:<day>`, `P:{S}:stat:failed:<day>`, both in the
//! service's slot), added with `INCRBY` and kept with `EXPIRE`.
//!
//! A count is added with `INCRBY`: when the connection drops under it, the
//! one retry every command gets may count that flush twice (a chart, not
//! accounting). The `EXPIRE` after it is set again by every later write,
//! so a count whose `EXPIRE` failed once still expires. They are read with one `GET`
//! each: the operator's ACL role has `GET`, and 60 small reads on one
//! connection take a few milliseconds.

use async_trait::async_trait;

use super::connect::RedisBackend;
use crate::backend::daily_counts::{kept_secs, DailyCount, DailyCounts};
use crate::error::Error;

#[async_trait]
impl DailyCounts for RedisBackend {
    async fn add_daily_counts(
        &self,
        queue: &str,
        day: &str,
        processed: u64,
        failed: u64,
    ) -> Result<(), Error> {
        for (key, n) in [
            (self.keys.stat_processed(queue, day), processed),
            (self.keys.stat_failed(queue, day), failed),
        ] {
            if n == 0 {
                continue;
            }
            let _: i64 = self
                .commands
                .query(redis::cmd("INCRBY").arg(&key).arg(n))
                .await?;
            let _: i64 = self
                .commands
                .query(redis::cmd("EXPIRE").arg(&key).arg(kept_secs()))
                .await?;
        }
        Ok(())
    }

    async fn daily_counts(&self, queue: &str, days: &[String]) -> Result<Vec<DailyCount>, Error> {
        let mut out = Vec::with_capacity(days.len());
        for day in days {
            let processed = self.count(&self.keys.stat_processed(queue, day)).await?;
            let failed = self.count(&self.keys.stat_failed(queue, day)).await?;
            out.push(DailyCount {
                day: day.clone(),
                processed,
                failed,
            });
        }
        Ok(out)
    }
}

impl RedisBackend {
    /// A counter's value; 0 for a missing key or one that holds no count
    /// (anything in Redis may have been written by anyone).
    async fn count(&self, key: &str) -> Result<u64, Error> {
        let value: Option<Vec<u8>> = match self.commands.query(redis::cmd("GET").arg(key)).await {
            Ok(value) => value,
            Err(e) if e.code() == Some("WRONGTYPE") => None,
            Err(e) => return Err(e.into()),
        };
        Ok(value
            .and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u64>().ok())
            .unwrap_or(0))
    }
}
