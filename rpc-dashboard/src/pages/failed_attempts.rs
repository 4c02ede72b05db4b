//! The failures page's second list: recent failed attempts that are not
//! dead letters (retried, or answered with an error), from each service's
//! `P:{S}:failures` stream that workers keep (newest first, with the job,
//! call, attempt, error, how long it ran, on which worker, and whether it
//! is retried). Searchable like the dead letters (a job's full name or a
//! call id, exactly) and paged with its own cursor.
//!
//! Bounded whatever is written: each stream holds about
//! [`FAILURES_CAP`] entries (workers trim it), so a page reads at most
//! `max + 1` entries of each service, or, when searching, at most the
//! whole (capped) stream of each, and shows at most `max` rows. The cursor
//! is an entry id, which is a time: the next page shows the entries of
//! every service older than the last row shown.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rpc_protocol::limits::{FAILURES_CAP, MAX_ID_BYTES};
use rpc_runtime::inspect::{human_time, RecordedFailure};
use rpc_runtime::Inspector;

use crate::bounds;
use crate::error::PageError;

/// A failed attempt's row.
pub struct AttemptRow {
    pub service: String,
    /// Its entry id (the cursor of the page after it).
    pub entry: String,
    /// `3m ago`.
    pub failed: String,
    /// The call id, when it can be linked.
    pub id: Option<String>,
    pub job: String,
    pub attempt: u32,
    /// `handler: first attempts fail`.
    pub error: String,
    /// `120ms`.
    pub duration: String,
    pub worker: String,
    pub retried: bool,
}

/// One page of failed attempts: its rows and where the next starts.
pub struct Attempts {
    pub rows: Vec<AttemptRow>,
    pub next: Option<String>,
}

/// An entry id as a pair of numbers, to compare ids of two streams.
fn order(entry: &str) -> (u64, u64) {
    entry
        .split_once('-')
        .and_then(|(ms, seq)| Some((ms.parse().ok()?, seq.parse().ok()?)))
        .unwrap_or((0, 0))
}

/// The newest `max` failed attempts of `services` older than `before`
/// that match `q` (a job's full name or a call id) when given.
pub async fn page(
    inspector: &Inspector,
    services: &[String],
    q: Option<&str>,
    before: Option<&str>,
    max: usize,
) -> Result<Attempts, PageError> {
    let read = if q.is_some() { FAILURES_CAP } else { max + 1 };
    let mut found: Vec<(String, RecordedFailure)> = Vec::new();
    for s in services {
        let entries = inspector.recent_failures(s, before, read).await?;
        found.extend(
            entries
                .into_iter()
                .filter(|e| q.is_none_or(|q| e.failure.id == q || e.failure.job == q))
                .map(|e| (s.clone(), e)),
        );
    }
    found.sort_by_key(|(_, e)| std::cmp::Reverse(order(&e.entry)));
    let next = if found.len() > max {
        found.truncate(max);
        found.last().map(|(_, e)| e.entry.clone())
    } else {
        None
    };
    let now = SystemTime::now();
    let rows = found
        .into_iter()
        .map(|(service, e)| {
            let f = e.failure;
            AttemptRow {
                failed: human_time::relative(UNIX_EPOCH + Duration::from_millis(e.at_ms), now),
                id: Some(f.id).filter(|id| !id.is_empty() && id.len() <= MAX_ID_BYTES),
                job: bounds::name(&f.job),
                attempt: f.attempt,
                error: format!("{}: {}", bounds::name(&f.kind), f.message),
                duration: human_time::duration(Duration::from_millis(f.duration_ms)),
                worker: bounds::name(&f.worker),
                retried: f.retried,
                entry: e.entry,
                service,
            }
        })
        .collect();
    Ok(Attempts { rows, next })
}
