//! The lifecycle loop: every [`POLL_EVERY`] (sooner when a scheduled job is
//! due sooner) the worker looks at each of its services in one round trip
//! (`Backend::poll_lifecycle`): due scheduled jobs and retries move onto
//! the queue (exactly once, whichever worker gets there first), and the
//! worker learns which services are paused and which calls were cancelled.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::Shared;
use crate::client::lock;

/// How often each service is polled at least: the most a pause, a
/// cancellation or a newly scheduled job's due time waits to be seen.
pub(super) const POLL_EVERY: Duration = Duration::from_millis(100);

/// Scheduled jobs moved per poll; a poll that moves this many is followed
/// by another at once.
const MOVE_PER_POLL: usize = 1_000;

/// When this worker itself scheduled a retry due, so the loop wakes for it
/// without waiting for its next poll (the retry's gap is then its backoff,
/// not its backoff plus up to a poll).
#[derive(Default)]
pub(super) struct DueHint {
    at: Mutex<Option<Instant>>,
    earlier: Notify,
}

impl DueHint {
    /// A retry of this worker's is due at `at` (a little after, to let its
    /// completion reach the broker first).
    pub(super) fn due_at(&self, at: Instant) {
        let mut hint = lock(&self.at);
        if hint.is_none_or(|h| at < h) {
            *hint = Some(at);
            self.earlier.notify_one();
        }
    }

    fn take_until(&self, now: Instant) -> Option<Instant> {
        let mut hint = lock(&self.at);
        match *hint {
            Some(at) if at <= now => {
                *hint = None;
                None
            }
            other => other,
        }
    }
}

pub(super) async fn lifecycle_loop(shared: Arc<Shared>) {
    // Per service: the newest cancellation seen (broker ms). Starting at 0
    // learns every cancellation the broker still remembers.
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut failing = false;
    loop {
        let started = Instant::now();
        let mut wake = started + POLL_EVERY;
        let mut failed = false;
        for queue in &shared.queues {
            let since = seen.get(queue).copied().unwrap_or(0);
            // One ms back: cancellations in the same ms as the newest seen
            // are read again (and known already), none is skipped.
            let polled = shared
                .backend
                .poll_lifecycle(queue, MOVE_PER_POLL, since.saturating_sub(1))
                .await;
            let poll = match polled {
                Ok(poll) => poll,
                Err(e) => {
                    failed = true;
                    shared.broker_error();
                    if !failing {
                        tracing::warn!(error = %e, queue, "polling the schedule, pauses and cancellations failed; retrying");
                    }
                    continue;
                }
            };
            shared.paused.set(queue, poll.paused);
            if let Some(newest) = poll.cancelled.iter().map(|(_, at)| *at).max() {
                seen.insert(queue.clone(), newest.max(since));
            }
            if !poll.cancelled.is_empty() {
                shared.cancels.learn(queue, poll.cancelled);
            }
            if poll.moved > 0 {
                tracing::debug!(
                    queue,
                    moved = poll.moved,
                    "moved due scheduled jobs onto the queue"
                );
            }
            if poll.moved >= MOVE_PER_POLL {
                wake = started;
            } else if let Some(due) = poll.next_due_ms {
                let wait = Duration::from_millis(due.saturating_sub(poll.now_ms));
                wake = wake.min(started + wait);
            }
        }
        failing = failed;
        loop {
            let wake = match shared.due_hint.take_until(Instant::now()) {
                Some(hint) => wake.min(hint),
                None => wake,
            };
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => break,
                _ = shared.due_hint.earlier.notified() => {}
            }
        }
    }
}
