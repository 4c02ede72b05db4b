//! Cancellation on the worker: the calls this worker has learned are
//! cancelled (from its lifecycle polls of `P:{Service}:cancelled`).
//!
//! A job is checked against the learned set before it starts (a cancelled
//! queued job never runs). A running job's `Context` holds this set and
//! its call id: `is_cancelled()` looks the id up, `cancelled()` waits for
//! the set to change until it holds the id, and the worker drops a handler
//! that has not ended a grace period after that. Nothing is registered per
//! job, so the plain call path pays one atomic load (the set is consulted
//! only when it is not empty) and one reference count.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::client::lock;
use crate::wire::limits::MAX_ID_BYTES;

/// Cancelled call ids remembered per worker at most (the oldest go first);
/// the broker remembers them for a day (`backend::CANCEL_MEMORY`).
const REMEMBERED: usize = 100_000;

/// What a worker knows of cancellations.
#[derive(Debug)]
pub(crate) struct Cancellations {
    /// Call ids learned to be cancelled, with when (broker ms).
    learned: Mutex<HashMap<String, u64>>,
    /// Whether `learned` has anything (checked without the lock).
    any: AtomicBool,
    /// Bumped whenever `learned` gains ids, to wake waiting jobs.
    changed: tokio::sync::watch::Sender<u64>,
}

impl Default for Cancellations {
    fn default() -> Self {
        Cancellations {
            learned: Mutex::default(),
            any: AtomicBool::new(false),
            changed: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl Cancellations {
    /// Whether call `id` is known to be cancelled.
    pub(crate) fn is_cancelled(&self, id: &str) -> bool {
        self.any.load(Ordering::Acquire) && lock(&self.learned).contains_key(id)
    }

    /// Resolves once call `id` is known to be cancelled.
    pub(crate) async fn wait(&self, id: &str) {
        // Subscribed before the look: a change after it is seen.
        let mut changes = self.changed.subscribe();
        loop {
            if self.is_cancelled(id) {
                return;
            }
            if changes.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// Learns cancellations from a poll (ids are unchecked broker data:
    /// an id no call can have is ignored with a log line) and wakes the
    /// running jobs to look. Returns how many were new.
    pub(super) fn learn(&self, queue: &str, cancelled: Vec<(String, u64)>) -> usize {
        let mut new = 0;
        let mut learned = lock(&self.learned);
        for (id, at) in cancelled {
            if id.is_empty() || id.len() > MAX_ID_BYTES {
                tracing::warn!(
                    queue,
                    bytes = id.len(),
                    "ignoring a cancellation entry that is no call id"
                );
                continue;
            }
            if learned.insert(id.clone(), at).is_none() {
                tracing::debug!(queue, id, "learned a cancellation");
                new += 1;
            }
        }
        if learned.len() > REMEMBERED {
            let mut by_age: Vec<(u64, String)> =
                learned.iter().map(|(id, at)| (*at, id.clone())).collect();
            by_age.sort();
            for (_, id) in by_age.into_iter().take(learned.len() - REMEMBERED) {
                learned.remove(&id);
            }
        }
        self.any.store(!learned.is_empty(), Ordering::Release);
        drop(learned);
        if new > 0 {
            self.changed.send_modify(|generation| *generation += 1);
        }
        new
    }
}
