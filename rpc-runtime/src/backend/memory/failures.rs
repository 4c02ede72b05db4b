//! Recent failures in memory: per queue, the newest
//! [`FAILURES_CAP`](rpc_protocol::limits::FAILURES_CAP) as long as the
//! broker lives (one process; nothing to expire). A queue's priority lanes
//! share its list (`lanes.rs`).

use async_trait::async_trait;
use rpc_protocol::limits::FAILURES_CAP;

use super::lanes::lane_free;
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
        let (entries, seq) = state
            .failures
            .entry(lane_free(queue).to_owned())
            .or_default();
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
        // As on Redis: older than the cursor's entry id, which must be one.
        let before = match before {
            None => None,
            Some(id) => Some(order(id).ok_or_else(|| Error::Codec {
                what: "read recent failures".to_owned(),
                reason: format!("{id:?} is not a failure entry id (`<ms>-<seq>`)"),
            })?),
        };
        let state = self.state();
        let Some((entries, _)) = state.failures.get(lane_free(queue)) else {
            return Ok(Vec::new());
        };
        Ok(entries
            .iter()
            .rev()
            .filter(|e| before.is_none_or(|b| order(&e.entry).is_some_and(|o| o < b)))
            .take(max.clamp(1, FAILURES_CAP))
            .cloned()
            .collect())
    }
}

/// An entry id, `<ms>-<seq>`, as numbers to compare.
fn order(entry: &str) -> Option<(u64, u64)> {
    let (ms, seq) = entry.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}
