//! Recent failures in memory: per queue, the newest
//! [`FAILURES_CAP`](rpc_protocol::limits::FAILURES_CAP) as long as the
//! broker lives (one process; nothing to expire).

use async_trait::async_trait;
use rpc_protocol::limits::FAILURES_CAP;

use super::registry::MemoryBackend;
use crate::backend::failures::{cut_message, Failure, Failures, RecordedFailure};
use crate::error::Error;

#[async_trait]
impl Failures for MemoryBackend {
    async fn record_failure(&self, queue: &str, failure: &Failure) -> Result<(), Error> {
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let mut state = self.state();
        let (entries, seq) = state.failures.entry(queue.to_owned()).or_default();
        *seq += 1;
        entries.push_back(RecordedFailure {
            entry: format!("{at_ms}-{seq}"),
            at_ms,
            failure: Failure {
                message: cut_message(&failure.message),
                ..failure.clone()
            },
        });
        while entries.len() > FAILURES_CAP {
            entries.pop_front();
        }
        Ok(())
    }

    async fn recent_failures(
        &self,
        queue: &str,
        before: Option<&str>,
        max: usize,
    ) -> Result<Vec<RecordedFailure>, Error> {
        let state = self.state();
        let Some((entries, _)) = state.failures.get(queue) else {
            return Ok(Vec::new());
        };
        // Entries are in the order written; the cursor is one of them.
        let newer_than_cursor = before.map_or(0, |before| {
            entries
                .iter()
                .rev()
                .position(|e| e.entry == before)
                .map_or(entries.len(), |at| at + 1)
        });
        Ok(entries
            .iter()
            .rev()
            .skip(newer_than_cursor)
            .take(max.clamp(1, FAILURES_CAP))
            .cloned()
            .collect())
    }
}
