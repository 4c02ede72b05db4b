//! The last scan of the queues, kept for a moment. Finding a service's
//! shards (`shards.rs`) needs the queues a `SCAN` finds (`S~k` beyond the
//! kept shard count), and a page or a scrape asks that of many services
//! at once: one scan of the keyspace a second serves them all, where one
//! per question would walk a large keyspace many times over.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::sync::lock;

/// How long a scan of the queues serves.
const REUSED_FOR: Duration = Duration::from_secs(1);

/// When a scan was made, and the queues it found.
type Scan = (Instant, Arc<Vec<String>>);

/// The last scan of the queues and when it was made, shared by an
/// inspector's clones.
#[derive(Debug, Clone, Default)]
pub(crate) struct RecentScan(Arc<Mutex<Option<Scan>>>);

impl RecentScan {
    /// The queues found by a scan made less than a second ago, if any.
    pub(crate) fn get(&self) -> Option<Arc<Vec<String>>> {
        lock(&self.0)
            .as_ref()
            .filter(|(at, _)| at.elapsed() < REUSED_FOR)
            .map(|(_, queues)| queues.clone())
    }

    /// Keeps what a scan just found; returns it.
    pub(crate) fn put(&self, queues: Vec<String>) -> Arc<Vec<String>> {
        let queues = Arc::new(queues);
        *lock(&self.0) = Some((Instant::now(), queues.clone()));
        queues
    }
}
