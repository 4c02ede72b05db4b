//! Time on the broker: the worker's lifecycle poll (due delayed jobs and
//! retries, the pause flag, new cancellations) and the ticks of periodic
//! jobs.

use async_trait::async_trait;

use super::tick::{TickAnswer, TickRequest};
use crate::error::Error;
use crate::periodic::stored::PeriodicState;

/// What [`Schedule::poll_lifecycle`] found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LifecyclePoll {
    /// The broker's clock when it looked (ms since the epoch).
    pub now_ms: u64,
    /// Scheduled jobs moved onto the queue.
    pub moved: usize,
    /// When the next scheduled job is due, if any.
    pub next_due_ms: Option<u64>,
    /// Whether the queue is paused.
    pub paused: bool,
    /// Call ids cancelled after the time asked for, with when (broker
    /// clock, ms), oldest first. Unchecked: entries come from the broker.
    pub cancelled: Vec<(String, u64)>,
    /// Scheduled entries dead-lettered because they would never run (due
    /// beyond the horizon, or a message without a due time).
    pub dead_lettered: usize,
    /// Where the sweep of scheduled messages goes on (`None`: it went
    /// round, or none was asked for).
    pub sweep_cursor: Option<String>,
    /// The queue's priority lanes other than the default that exist: bit
    /// `p - 1` for lane `p` ([`rpc_protocol::priority`]). A worker reads
    /// them from then on.
    pub lanes: u8,
}

/// Time on the broker: delayed jobs, retries, pauses and cancellations
/// polled by workers, and periodic ticks enqueued exactly once.
#[async_trait]
pub trait Schedule: Send + Sync + 'static {
    /// A worker's regular look at one queue's lifecycle state, in one
    /// round trip: moves up to `max_move` due scheduled jobs onto the queue
    /// (atomically: of many workers racing, each job moves exactly once),
    /// dead-letters scheduled entries that would never run, and reports
    /// the next due time, whether the queue is paused and up to
    /// `max_cancelled` calls cancelled after `cancelled_after_ms` (broker
    /// clock). With `sweep` (a cursor, `"0"` to start) it also looks at a
    /// page of the scheduled messages for ones without a due time.
    async fn poll_lifecycle(
        &self,
        queue: &str,
        max_move: usize,
        cancelled_after_ms: u64,
        max_cancelled: usize,
        sweep: Option<&str>,
    ) -> Result<LifecyclePoll, Error>;

    /// Offers one tick of a periodic job on `queue` (the job's service):
    /// in one atomic step the broker enqueues `tick.message` if the tick is
    /// newer than the job's last one enqueued (and, for a catch-up, the job
    /// ran before), records it as the last, and stores `tick.definition`.
    /// Of many workers offering the same tick, exactly one gets
    /// [`TickOutcome::Enqueued`](super::tick::TickOutcome::Enqueued). A
    /// tick in the broker's future is refused
    /// ([`TickOutcome::Early`](super::tick::TickOutcome::Early)).
    async fn enqueue_tick(&self, queue: &str, tick: &TickRequest<'_>) -> Result<TickAnswer, Error>;

    /// The periodic jobs recorded for `queue`, sorted by name: their
    /// stored definitions and last ticks, unreadable values marked as such.
    async fn periodic_jobs(&self, queue: &str) -> Result<Vec<PeriodicState>, Error>;
}
