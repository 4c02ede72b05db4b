//! A whole broker: every capability a client, a worker and an operator's
//! tools need, as one trait object (`Arc<dyn Broker>`), in the manner of
//! apalis-core's backend traits.

use super::control::Control;
use super::daily_counts::DailyCounts;
use super::failures::Failures;
use super::group_slots::GroupSlots;
use super::inspection::Inspection;
use super::presence::Presence;
use super::progress::ProgressStore;
use super::queue::Queue;
use super::rate_limits::RateLimits;
use super::schedule::Schedule;
use super::shard_counts::ShardCounts;

/// A broker connection shared by all tasks of a client or worker: the
/// queue, its schedule, the operator's levers and the read-only view, each
/// implemented by Redis and by `memory://`.
pub trait Broker:
    Queue
    + Schedule
    + Control
    + Inspection
    + DailyCounts
    + Failures
    + Presence
    + ShardCounts
    + ProgressStore
    + RateLimits
    + GroupSlots
{
}

impl<
        T: Queue
            + Schedule
            + Control
            + Inspection
            + DailyCounts
            + Failures
            + Presence
            + ShardCounts
            + ProgressStore
            + RateLimits
            + GroupSlots,
    > Broker for T
{
}
