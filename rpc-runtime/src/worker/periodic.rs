//! The worker's periodic-job task: one task per worker that sleeps until
//! the next tick of any of its periodic jobs, on the broker's clock, and
//! offers that tick to the broker ([`Schedule::enqueue_tick`](crate::backend::Schedule::enqueue_tick)), which
//! enqueues it unless another worker did. Every worker of a job offers every
//! tick: there is no leader to elect or lose, and a worker that dies costs
//! nothing as long as another runs.
//!
//! Which ticks a worker offers, and how:
//!
//! * At start, per job: with [`MissedTicks::RunOnce`] the latest tick at or
//!   before the start is offered as a *catch-up* (enqueued if the job has
//!   run before and that tick has not: one run for whatever was missed);
//!   with [`MissedTicks::Skip`] the definition is only registered.
//! * Then each tick after the start is offered *on time* when it comes
//!   due. A worker that wakes late (it was frozen, or the broker did not
//!   answer) offers the latest due tick only: one run, never a burst.
//! * A broker error is retried with backoff until the tick is enqueued,
//!   found done, or superseded by the next tick; a tick the broker finds in
//!   its future is offered again when the broker's clock reaches it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::shared::Shared;

use super::periodic_check::Prepared;
use crate::backend::{TickAnswer, TickMode, TickOutcome, TickRequest};
use crate::periodic::MissedTicks;

/// First wait after a broker error; doubled per failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// One periodic job, as this worker's task follows it.
struct Follower {
    job: Prepared,
    /// The latest tick dealt with (enqueued, found done, or skipped).
    handled: Option<u64>,
    /// When to look at this job next, ms on the broker's clock (`None`:
    /// never again, a cron expression with no more instants).
    wake_ms: Option<u64>,
    failures: u32,
}

/// Starts the task, if the worker has periodic jobs. It returns when `stop`
/// turns true; stopping it at any await is safe (each offer is atomic on
/// the broker).
pub(super) fn spawn(
    shared: Arc<Shared>,
    jobs: Vec<Prepared>,
    stop: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    if jobs.is_empty() {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut stop = stop;
        tokio::select! {
            _ = follow(shared, jobs) => {}
            _ = stop.wait_for(|stopped| *stopped) => {}
        }
    }))
}

async fn follow(shared: Arc<Shared>, jobs: Vec<Prepared>) {
    let started_ms = shared.clock.now_ms();
    let mut followers: Vec<Follower> = jobs
        .into_iter()
        .map(|job| Follower {
            job,
            handled: None,
            wake_ms: Some(started_ms),
            failures: 0,
        })
        .collect();
    for follower in &mut followers {
        follower.start(&shared, started_ms).await;
    }
    loop {
        let now = shared.clock.now_ms();
        for follower in &mut followers {
            if follower.wake_ms.is_some_and(|wake| wake <= now) {
                follower.turn(&shared, now, started_ms).await;
            }
        }
        let Some(wake) = followers.iter().filter_map(|f| f.wake_ms).min() else {
            // No job will ever tick again.
            return std::future::pending().await;
        };
        // The broker's clock, as this worker knows it, may move against
        // ours between samples: the loop looks again when it wakes.
        let wait = wake.saturating_sub(shared.clock.now_ms());
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
}

impl Follower {
    /// The first offer: a catch-up or a registration (see the module docs).
    async fn start(&mut self, shared: &Shared, started_ms: u64) {
        let latest = self.job.schedule.latest_at_or_before(started_ms);
        if let (MissedTicks::RunOnce, Some(_)) = (self.job.missed, latest) {
            // Offered by the first turn, as a catch-up (it is at or before
            // the start), and retried like any other if the broker fails.
            return;
        }
        // Skip (or no tick before now): ticks up to the start are not ours.
        self.handled = latest;
        self.wake_ms = self.job.schedule.next_after(started_ms);
        let definition = self.job.definition(self.wake_ms);
        let request = TickRequest {
            name: &self.job.name,
            tick_ms: latest.unwrap_or(0),
            mode: TickMode::Register,
            message: &[],
            definition: &definition,
        };
        // Only for the listing: the first on-time tick stores it anyway.
        if let Err(e) = shared
            .backend
            .enqueue_tick(self.job.service, &request)
            .await
        {
            shared.broker_error();
            tracing::warn!(error = %e, periodic = %self.job.name, "could not register the periodic job");
        }
    }

    /// Offers the latest due tick, if it is newer than the last one handled.
    async fn turn(&mut self, shared: &Shared, now: u64, started_ms: u64) {
        let schedule = &self.job.schedule;
        let Some(tick) = schedule.latest_at_or_before(now) else {
            self.wake_ms = schedule.next_after(now);
            return;
        };
        if self.handled.is_some_and(|handled| tick <= handled) {
            self.wake_ms = self.handled.and_then(|h| schedule.next_after(h.max(now)));
            return;
        }
        let mode = if tick <= started_ms {
            TickMode::CatchUp
        } else {
            TickMode::OnTime
        };
        let next = schedule.next_after(tick);
        let message = self.job.message(tick);
        let definition = self.job.definition(next);
        let request = TickRequest {
            name: &self.job.name,
            tick_ms: tick,
            mode,
            message: &message,
            definition: &definition,
        };
        match shared
            .backend
            .enqueue_tick(self.job.service, &request)
            .await
        {
            Ok(answer) => self.answered(shared, tick, next, mode, &answer).await,
            Err(e) => {
                shared.broker_error();
                let backoff = FIRST_BACKOFF
                    .saturating_mul(1 << self.failures.min(16))
                    .min(MAX_BACKOFF);
                self.failures += 1;
                tracing::warn!(
                    error = %e, periodic = %self.job.name, tick,
                    retry_in_ms = backoff.as_millis() as u64,
                    "could not offer the periodic job's tick to the broker"
                );
                self.wake_ms = Some(now + backoff.as_millis() as u64);
            }
        }
    }

    async fn answered(
        &mut self,
        shared: &Shared,
        tick: u64,
        next: Option<u64>,
        mode: TickMode,
        answer: &TickAnswer,
    ) {
        self.failures = 0;
        let name = &self.job.name;
        if let Some(garbage) = &answer.unreadable_previous {
            tracing::warn!(
                periodic = %name, recorded = %garbage,
                "the recorded last tick is not a number; treated as none"
            );
        }
        match answer.outcome {
            TickOutcome::Early => {
                // Our view of the broker's clock runs ahead: look again
                // when the broker reaches the tick, with a fresh offset.
                let wait = tick.saturating_sub(answer.broker_now_ms) + 1;
                tracing::debug!(periodic = %name, tick, wait_ms = wait, "tick offered early");
                if let Err(e) = shared.clock.sample(&*shared.backend).await {
                    tracing::debug!(error = %e, "could not read the broker's clock");
                }
                self.wake_ms = Some(shared.clock.now_ms() + wait);
                return;
            }
            TickOutcome::Enqueued if mode == TickMode::CatchUp => tracing::info!(
                periodic = %name, tick, last = ?answer.previous_ms,
                "enqueued one run for the ticks missed while no worker ran"
            ),
            TickOutcome::Enqueued => tracing::debug!(periodic = %name, tick, "enqueued"),
            TickOutcome::AlreadyEnqueued | TickOutcome::Registered => {}
        }
        self.handled = Some(tick);
        self.wake_ms = next;
    }
}
