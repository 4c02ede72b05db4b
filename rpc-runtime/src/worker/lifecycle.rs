//! The lifecycle loop: the worker looks at each of its services in one
//! round trip (`Schedule::poll_lifecycle`): due scheduled jobs and retries
//! move onto the queue (exactly once, whichever worker gets there first),
//! and the worker learns which services are paused and which calls were
//! cancelled. Now and then ([`SWEEP_EVERY`]) the poll also walks the
//! scheduled messages for ones that lost their due time, which would
//! never run.
//!
//! How often (docs/PROTOCOL.md, "The lifecycle poll's cadence"): a service
//! is *busy* on this worker while the worker holds the lease of one of its
//! jobs, and for [`IDLE_AFTER`] after that or after a poll of it moved a
//! job, learned a cancellation or saw its pause flag change; a busy
//! service is polled every [`POLL_EVERY`], an idle one every
//! [`IDLE_EVERY`] times the number of workers serving it, at most ten
//! times (`idle_polls.rs`). Either is polled at once when it turns busy, at the
//! next due time its last poll reported, and at the due time of a retry
//! or delayed call this worker put on the schedule itself (`due_hint.rs`).
//! The worker looks at its leases every [`POLL_EVERY`] (no round trip), so
//! a job that runs for longer than that makes its service busy within it:
//! the running job learns of its cancellation within ~[`POLL_EVERY`], as
//! before. An idle fleet then sends a tenth of the polls it used to (one
//! script per service per worker a second, not ten).
//!
//! Cancellations are read up to [`CANCELLED_PER_POLL`] at a time, and a
//! poll that got that many is followed by another at once, so a storm of
//! cancellations of made-up ids delays a real one by the time it takes to
//! read them (100,000 in well under a second), never by a poll each.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::idle_polls::IDLE_EVERY;
use super::shared::Shared;
use crate::sync::lock;

/// How often a busy service is polled, and how often the worker looks at
/// its leases: the most a pause, a cancellation or a newly scheduled job's
/// due time waits to be seen while the worker runs jobs of the service.
pub(super) const POLL_EVERY: Duration = Duration::from_millis(100);

/// How long a service stays busy after its last lease or its last poll
/// that found something to do.
const IDLE_AFTER: Duration = Duration::from_secs(1);

/// Scheduled jobs moved per poll; a poll that moves this many is followed
/// by another at once.
const MOVE_PER_POLL: usize = 1_000;

/// Cancellations read per poll; a poll that reads this many is followed by
/// another at once.
const CANCELLED_PER_POLL: usize = 10_000;

/// How often a sweep of the scheduled messages starts (it then goes on a
/// page per poll until it has gone round).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// When one service is polled next, and until when it is busy.
#[derive(Clone, Copy)]
struct Cadence {
    next_poll: Instant,
    busy_until: Instant,
}

/// The lifecycle loop's memory between polls.
pub(super) struct Lifecycle {
    shared: Arc<Shared>,
    /// Per service: the newest cancellation seen (broker ms). Starting at
    /// 0 learns every cancellation the broker still remembers.
    seen: HashMap<String, u64>,
    /// Per service: where its sweep of the scheduled messages is.
    sweeps: HashMap<String, String>,
    /// Per service: when it is polled next, and whether it is busy.
    cadence: HashMap<String, Cadence>,
    next_sweep: Instant,
    /// The last poll failed (its warning is not repeated).
    failing: bool,
}

impl Lifecycle {
    pub(super) fn new(shared: Arc<Shared>) -> Lifecycle {
        let now = Instant::now();
        let cadence = shared
            .served
            .names()
            .iter()
            .map(|q| {
                // Busy at first: a worker that starts often starts to work.
                let c = Cadence {
                    next_poll: now,
                    busy_until: now + IDLE_AFTER,
                };
                (q.clone(), c)
            })
            .collect();
        Lifecycle {
            shared,
            seen: HashMap::new(),
            sweeps: HashMap::new(),
            cadence,
            // The first round sweeps: garbage a crash left is gone at start.
            next_sweep: now,
            failing: false,
        }
    }

    /// Polls forever: each service when its cadence says, the leases
    /// looked at every [`POLL_EVERY`].
    pub(super) async fn run(mut self) {
        let mut look_at = Instant::now();
        loop {
            let now = Instant::now();
            if now >= look_at {
                self.look_at_leases(now);
                look_at = now + POLL_EVERY;
            }
            // A retry or delayed call of this worker's is due: every
            // service is polled (the hint does not say whose it is).
            if self.shared.due_hint.take_if_come(now) {
                for c in self.cadence.values_mut() {
                    c.next_poll = now;
                }
            }
            self.poll_due(now).await;
            let mut wake = self
                .cadence
                .values()
                .map(|c| c.next_poll)
                .fold(look_at, Instant::min);
            // One that came while the polls ran is polled for at once.
            if let Some(hint) = self.shared.due_hint.peek() {
                wake = wake.min(hint);
            }
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = self.shared.due_hint.earlier.notified() => {}
            }
        }
    }

    /// Marks the services this worker holds leases of busy (without a round
    /// trip); one that was idle is polled at once.
    fn look_at_leases(&mut self, now: Instant) {
        let shared = Arc::clone(&self.shared);
        let list = shared.served.list();
        let running = lock(&shared.running);
        // Leases are kept per lane; a lane's lease makes its queue busy.
        let leased_queues: std::collections::HashSet<&str> = running
            .iter()
            .filter(|(_, l)| !l.is_empty())
            .map(|(lane, _)| super::lanes::queue_of(lane))
            .collect();
        for (i, queue) in list.names.iter().enumerate() {
            // A job taken since the last look counts, even if it ended.
            let taken = list.taken[i].swap(false, Ordering::Relaxed);
            let leased = leased_queues.contains(queue.as_str());
            if !(taken || leased) {
                continue;
            }
            if let Some(c) = self.cadence.get_mut(queue) {
                if c.busy_until <= now {
                    c.next_poll = now;
                }
                c.busy_until = now + IDLE_AFTER;
            }
        }
    }

    /// Polls every service whose time has come.
    async fn poll_due(&mut self, now: Instant) {
        let names = self.shared.served.names();
        // A shard added while the worker runs is polled at once.
        for queue in names.iter() {
            self.cadence.entry(queue.clone()).or_insert(Cadence {
                next_poll: now,
                busy_until: now + IDLE_AFTER,
            });
        }
        let due: Vec<String> = names
            .iter()
            .filter(|q| self.cadence.get(*q).is_some_and(|c| c.next_poll <= now))
            .cloned()
            .collect();
        if due.is_empty() {
            return;
        }
        self.start_sweep(now);
        let mut failed = false;
        for queue in &due {
            failed |= !self.poll(queue).await;
        }
        self.failing = failed;
    }

    /// One look at every service (the worker takes one before it takes any
    /// job, so a paused service or a cancelled call is known from the
    /// start); returns when the next is due.
    pub(super) async fn round(&mut self) -> Instant {
        let now = Instant::now();
        self.start_sweep(now);
        let mut failed = false;
        for queue in self.shared.served.names().iter() {
            failed |= !self.poll(queue).await;
        }
        self.failing = failed;
        self.cadence
            .values()
            .map(|c| c.next_poll)
            .fold(now + IDLE_EVERY, Instant::min)
    }

    /// Starts a sweep of every service's scheduled messages when one is due.
    fn start_sweep(&mut self, now: Instant) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + SWEEP_EVERY;
        for queue in self.shared.served.names().iter() {
            self.sweeps
                .entry(queue.clone())
                .or_insert_with(|| "0".to_owned());
        }
    }

    /// Polls `queue` once and sets when it is polled next; false when the
    /// poll failed.
    async fn poll(&mut self, queue: &str) -> bool {
        let shared = self.shared.clone();
        let started = Instant::now();
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
        let cadence = self.cadence.entry(queue.to_owned()).or_insert(Cadence {
            next_poll: started,
            busy_until: started,
        });
        let poll = match polled {
            Ok(poll) => poll,
            Err(e) => {
                shared.broker_error();
                if !self.failing {
                    tracing::warn!(error = %e, queue, "polling the schedule, pauses and cancellations failed; retrying");
                }
                cadence.next_poll = started + POLL_EVERY;
                return false;
            }
        };
        shared.idle_polls.polled(queue, started);
        let new_lanes = shared.lanes.learn(queue, poll.lanes);
        if !new_lanes.is_empty() {
            tracing::info!(queue, lanes = ?new_lanes, "reading the queue's priority lanes from now on");
            if let Err(e) = shared.backend.prepare_queues(&new_lanes).await {
                // The taker's first read of a lane creates its group too.
                tracing::debug!(error = %e, queue, "could not prepare the priority lanes");
            }
            cadence.busy_until = started + IDLE_AFTER;
        }
        super::group_admit::sweep(&shared, queue).await;
        // Only shard 0's poll reads the service's pause flag.
        let reads_pause = rpc_protocol::shards::split_queue(queue).1 == 0;
        let was_paused = shared.paused.is_paused(queue);
        shared.paused.set(queue, poll.paused);
        match poll.sweep_cursor {
            Some(cursor) => self.sweeps.insert(queue.to_owned(), cursor),
            None => self.sweeps.remove(queue),
        };
        if let Some(newest) = poll.cancelled.iter().map(|(_, at)| *at).max() {
            self.seen.insert(queue.to_owned(), newest.max(since));
        }
        let more_cancelled = poll.cancelled.len() >= CANCELLED_PER_POLL;
        let learned = !poll.cancelled.is_empty();
        if learned {
            shared.cancels.learn(queue, poll.cancelled);
        }
        if poll.moved > 0 {
            tracing::debug!(
                queue,
                moved = poll.moved,
                "moved due scheduled jobs onto the queue"
            );
        }
        // Something happened in the service: busy for a while.
        if poll.moved > 0 || learned || (reads_pause && was_paused != poll.paused) {
            cadence.busy_until = started + IDLE_AFTER;
        }
        let every = if cadence.busy_until > started {
            POLL_EVERY
        } else {
            shared.idle_polls.idle_every(queue)
        };
        cadence.next_poll = started + every;
        if more_cancelled || poll.moved >= MOVE_PER_POLL {
            cadence.next_poll = started;
        } else if let Some(due) = poll.next_due_ms {
            let wait = Duration::from_millis(due.saturating_sub(poll.now_ms));
            cadence.next_poll = cadence.next_poll.min(started + wait);
        }
        true
    }
}
