//! Pause on the worker: which of its services are paused, as its last
//! lifecycle poll saw them (`P:{Service}:paused`). The taker reads only the
//! queues that are not, so a pause stops new jobs within a poll and one
//! blocking read (about a second while the worker runs jobs of the
//! service, about two while it is idle there and polled every second:
//! `lifecycle.rs`); running jobs finish. A sharded service has one flag,
//! and pausing it pauses every shard.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use rpc_protocol::shards::{service_of_queue, split_queue};

use crate::sync::lock;

/// The paused services, as last polled.
#[derive(Default)]
pub(super) struct PausedQueues {
    paused: Mutex<HashSet<String>>,
    /// Whether any is paused (checked without the lock on every read).
    any: AtomicBool,
}

impl PausedQueues {
    /// Records a poll's answer for `queue`. The pause flag is the
    /// service's, in shard 0's slot: only a poll of shard 0 (the queue
    /// named after the service) reads it, and it stands for every shard.
    pub(super) fn set(&self, queue: &str, paused: bool) {
        let (queue, shard) = split_queue(queue);
        if shard != 0 {
            return;
        }
        let mut set = lock(&self.paused);
        let changed = if paused {
            set.insert(queue.to_owned())
        } else {
            set.remove(queue)
        };
        if changed {
            // tests/lifecycle waits on this event (its `paused` field and
            // a message starting "service ").
            tracing::info!(
                queue,
                paused,
                "service {}",
                if paused {
                    "paused: taking none of its jobs"
                } else {
                    "resumed"
                }
            );
        }
        self.any.store(!set.is_empty(), Ordering::Release);
    }

    /// Whether `queue` is paused.
    pub(super) fn is_paused(&self, queue: &str) -> bool {
        self.any.load(Ordering::Acquire) && lock(&self.paused).contains(service_of_queue(queue))
    }

    /// The queues of `all` that are not paused, or `None` when none is
    /// (the usual case: the caller reads `all` as it is).
    pub(super) fn active(&self, all: &[String]) -> Option<Vec<String>> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let set = lock(&self.paused);
        Some(
            all.iter()
                .filter(|q| !set.contains(service_of_queue(q)))
                .cloned()
                .collect(),
        )
    }
}
