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
//!
//! The set's memory is bounded whatever the broker holds: ids are kept as
//! 64-bit keyed hashes (the key is random per process, so no sender can
//! make two ids collide on purpose), at most [`REMEMBERED`] of them, the
//! oldest forgotten first. A storm of made-up cancellations can push a real
//! one out; from then on, for as long as the broker remembers
//! cancellations, the worker also asks the broker about each job before it
//! starts it ([`Cancellations::overflowed`]), so forgetting costs a round
//! trip per job, never a cancellation.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::sync::lock;
use rpc_protocol::limits::CANCEL_MEMORY;
use rpc_protocol::limits::MAX_ID_BYTES;

/// Cancelled call ids remembered per worker at most (the oldest go first);
/// the broker remembers them for a day (`rpc_protocol::limits::CANCEL_MEMORY`).
const REMEMBERED: usize = 200_000;

/// What a worker knows of cancellations.
#[derive(Debug)]
pub(crate) struct Cancellations {
    /// Hashes of the call ids learned to be cancelled, with when (broker ms).
    learned: Mutex<HashMap<u64, u64>>,
    /// The key of the hashes.
    hasher: RandomState,
    /// Whether `learned` has anything (checked without the lock).
    any: AtomicBool,
    /// When (broker ms) the newest cancellation forgotten for want of room
    /// was made (0: none): until the broker forgets it too, a job is also
    /// checked against the broker before it starts.
    forgot_at_ms: AtomicU64,
    /// Bumped whenever `learned` gains ids, to wake waiting jobs.
    changed: tokio::sync::watch::Sender<u64>,
}

impl Default for Cancellations {
    fn default() -> Self {
        Cancellations {
            learned: Mutex::default(),
            hasher: RandomState::new(),
            any: AtomicBool::new(false),
            forgot_at_ms: AtomicU64::new(0),
            changed: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl Cancellations {
    fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    /// Whether call `id` is known to be cancelled.
    pub(crate) fn is_cancelled(&self, id: &str) -> bool {
        self.any.load(Ordering::Acquire) && lock(&self.learned).contains_key(&self.hash(id))
    }

    /// Whether this worker forgot a cancellation the broker may still hold
    /// (at broker time `now_ms`): then a job must be checked against the
    /// broker before it starts.
    pub(crate) fn overflowed(&self, now_ms: u64) -> bool {
        let at = self.forgot_at_ms.load(Ordering::Relaxed);
        at != 0 && now_ms.saturating_sub(at) < CANCEL_MEMORY.as_millis() as u64
    }

    /// Remembers that call `id` is cancelled (the broker said so).
    pub(crate) fn note(&self, queue: &str, id: &str, at: u64) {
        self.learn(queue, vec![(id.to_owned(), at)]);
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
    pub(crate) fn learn(&self, queue: &str, cancelled: Vec<(String, u64)>) -> usize {
        let mut new = 0;
        let mut ignored = 0;
        let mut learned = lock(&self.learned);
        for (id, at) in cancelled {
            if id.is_empty() || id.len() > MAX_ID_BYTES {
                ignored += 1;
                continue;
            }
            if learned.insert(self.hash(&id), at).is_none() {
                // tests/lifecycle waits on this event, by its message.
                tracing::debug!(queue, id, "learned a cancellation");
                new += 1;
            }
        }
        if ignored > 0 {
            tracing::warn!(
                queue,
                ignored,
                "ignoring cancellation entries that are no call id"
            );
        }
        if learned.len() > REMEMBERED {
            // Forget the oldest, down to nine tenths, so this runs seldom.
            let mut ages: Vec<u64> = learned.values().copied().collect();
            let excess = learned.len() - REMEMBERED * 9 / 10;
            let (_, cut, _) = ages.select_nth_unstable(excess - 1);
            let cut = *cut;
            let before = learned.len();
            learned.retain(|_, at| *at > cut);
            tracing::warn!(
                queue,
                forgot = before - learned.len(),
                "more cancellations than a worker remembers: forgot the oldest; jobs are checked against the broker before they start for a day"
            );
            self.forgot_at_ms.fetch_max(cut.max(1), Ordering::Relaxed);
        }
        self.any.store(!learned.is_empty(), Ordering::Release);
        drop(learned);
        if new > 0 {
            self.changed.send_modify(|generation| *generation += 1);
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storm_of_cancellations_stays_bounded_and_marks_the_overflow() {
        let cancels = Cancellations::default();
        let storm: Vec<(String, u64)> = (0..REMEMBERED as u64 + 10)
            .map(|i| (format!("bogus-{i}"), 1_000 + i))
            .collect();
        cancels.learn("Q", storm);
        assert!(lock(&cancels.learned).len() <= REMEMBERED);
        assert!(cancels.overflowed(2_000));
        // The newest are kept: a real cancellation after the storm is known.
        cancels.learn("Q", vec![("real".to_owned(), 5_000_000)]);
        assert!(cancels.is_cancelled("real"));
        assert!(!cancels.is_cancelled("never"));
        assert!(!Cancellations::default().overflowed(2_000));
    }
}
