//! The lifecycle loop: every [`POLL_EVERY`] (sooner when a scheduled job is
//! due sooner) the worker looks at each of its services in one round trip
//! (`Schedule::poll_lifecycle`): due scheduled jobs and retries move onto
//! the queue (exactly once, whichever worker gets there first), and the
//! worker learns which services are paused and which calls were cancelled.
//! Now and then ([`SWEEP_EVERY`]) the poll also walks the scheduled
//! messages for ones that lost their due time, which would never run.
//!
//! Cancellations are read up to [`CANCELLED_PER_POLL`] at a time, and a
//! poll that got that many is followed by another at once, so a storm of
//! cancellations of made-up ids delays a real one by the time it takes to
//! read them (100,000 in well under a second), never by a poll each.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::shared::Shared;

/// How often each service is polled at least: the most a pause, a
/// cancellation or a newly scheduled job's due time waits to be seen.
pub(super) const POLL_EVERY: Duration = Duration::from_millis(100);

/// Scheduled jobs moved per poll; a poll that moves this many is followed
/// by another at once.
const MOVE_PER_POLL: usize = 1_000;

/// Cancellations read per poll; a poll that reads this many is followed by
/// another at once.
const CANCELLED_PER_POLL: usize = 10_000;

/// How often a sweep of the scheduled messages starts (it then goes on a
/// page per poll until it has gone round).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The lifecycle loop's memory between rounds.
pub(super) struct Lifecycle {
    shared: Arc<Shared>,
    /// Per service: the newest cancellation seen (broker ms). Starting at
    /// 0 learns every cancellation the broker still remembers.
    seen: HashMap<String, u64>,
    /// Per service: where its sweep of the scheduled messages is.
    sweeps: HashMap<String, String>,
    next_sweep: Instant,
    /// The last round failed (its warning is not repeated).
    failing: bool,
}

impl Lifecycle {
    pub(super) fn new(shared: Arc<Shared>) -> Lifecycle {
        Lifecycle {
            shared,
            seen: HashMap::new(),
            sweeps: HashMap::new(),
            // The first round sweeps: garbage a crash left is gone at start.
            next_sweep: Instant::now(),
            failing: false,
        }
    }

    /// Polls forever, a round every [`POLL_EVERY`] or sooner.
    pub(super) async fn run(mut self) {
        loop {
            let wake = self.round().await;
            loop {
                let wake = match self.shared.due_hint.take_until(Instant::now()) {
                    Some(hint) => wake.min(hint),
                    None => wake,
                };
                tokio::select! {
                    _ = tokio::time::sleep_until(wake) => break,
                    _ = self.shared.due_hint.earlier.notified() => {}
                }
            }
        }
    }

    /// One look at every service (the worker takes one before it takes any
    /// job, so a paused service or a cancelled call is known from the
    /// start); returns when the next is due.
    pub(super) async fn round(&mut self) -> Instant {
        let shared = self.shared.clone();
        let started = Instant::now();
        let mut wake = started + POLL_EVERY;
        let mut failed = false;
        if started >= self.next_sweep {
            self.next_sweep = started + SWEEP_EVERY;
            for queue in &shared.queues {
                self.sweeps
                    .entry(queue.clone())
                    .or_insert_with(|| "0".to_owned());
            }
        }
        for queue in &shared.queues {
            let since = self.seen.get(queue).copied().unwrap_or(0);
            // One ms back: cancellations in the same ms as the newest seen
            // are read again (and known already), none is skipped.
            let polled = shared
                .backend
                .poll_lifecycle(
                    queue,
                    MOVE_PER_POLL,
                    since.saturating_sub(1),
                    CANCELLED_PER_POLL,
                    self.sweeps.get(queue).map(String::as_str),
                )
                .await;
            let poll = match polled {
                Ok(poll) => poll,
                Err(e) => {
                    failed = true;
                    shared.broker_error();
                    if !self.failing {
                        tracing::warn!(error = %e, queue, "polling the schedule, pauses and cancellations failed; retrying");
                    }
                    continue;
                }
            };
            shared.paused.set(queue, poll.paused);
            match poll.sweep_cursor {
                Some(cursor) => self.sweeps.insert(queue.clone(), cursor),
                None => self.sweeps.remove(queue),
            };
            if let Some(newest) = poll.cancelled.iter().map(|(_, at)| *at).max() {
                self.seen.insert(queue.clone(), newest.max(since));
            }
            let more_cancelled = poll.cancelled.len() >= CANCELLED_PER_POLL;
            if !poll.cancelled.is_empty() {
                shared.cancels.learn(queue, poll.cancelled);
            }
            if more_cancelled {
                wake = started;
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
        self.failing = failed;
        wake
    }
}
