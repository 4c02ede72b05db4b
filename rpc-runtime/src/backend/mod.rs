//! The broker seam: what the client, the worker and the operator's tools
//! need from a queue, so the runtime does not care whether it runs on Redis
//! or in memory.
//!
//! The seam is a few capability traits, each implemented by both brokers:
//!
//! * [`Queue`] (`queue.rs`): jobs in, leases out, completions back, with
//!   blocking reads on a [`Reader`] of their own (`reader.rs`) and the
//!   [`Delivery`] / [`Completion`] they exchange (`delivery.rs`).
//! * [`Schedule`] (`schedule.rs`): the lifecycle poll (delayed jobs,
//!   retries, pause, cancellations) and periodic ticks (`tick.rs`).
//! * [`Control`] (`control.rs`): cancel, pause, idempotency keys, dead
//!   letters.
//! * [`Inspection`] (`inspection.rs`): the read-only view behind
//!   [`Inspector`](crate::Inspector), the CLI and the dashboard.
//! * [`DailyCounts`] (`daily_counts.rs`): processed and failed jobs per
//!   service and day, added by workers, read by the dashboard.
//! * [`Failures`] (`failures.rs`): each service's recent failed attempts,
//!   added by workers, read by the dashboard.
//! * [`Presence`] (`presence.rs`): workers' heartbeats, the registries of
//!   who serves each service, and the operator's quiet/stop controls.
//! * [`ShardCounts`] (`shard_counts.rs`): a sharded service's shard count.
//! * [`ProgressStore`] (`progress.rs`): each running call's newest
//!   progress, written by its worker, read by its watchers.
//! * [`RateLimits`] (`rate_limits.rs`): the fleet's shared rate limits,
//!   asked by workers before a limited job starts.
//!
//! * [`GroupSlots`] (`group_slots.rs`): per-key concurrency, the slots of
//!   group keys and the messages parked until one is free.
//!
//! [`Broker`] (`broker.rs`) is all eleven; [`connect`] (`connect.rs`) opens
//! the one a URL names ([`BrokerConfig`], `config.rs`). The brokers live
//! in `redis/` and `memory/`.

mod broker;
mod config;
mod connect;
mod control;
pub mod daily_counts;
mod delivery;
pub mod failures;
mod group_slots;
pub mod inspection;
pub mod memory;
pub mod presence;
pub mod progress;
mod queue;
pub mod rate_limits;
mod reader;
pub mod redis;
mod schedule;
pub mod shard_counts;
mod tick;

pub use self::broker::Broker;
pub use self::config::{BrokerConfig, Enqueue};
pub use self::connect::connect;
pub use self::control::{Cancelled, Control, DeadLetter, OnceClaim};
pub use self::daily_counts::{DailyCount, DailyCounts};
pub use self::delivery::{CompleteError, Completion, CompletionStep, Delivery};
pub use self::failures::{Failure, Failures, RecordedFailure};
pub use self::group_slots::{GroupAdmission, GroupSlot, GroupSlots};
pub use self::inspection::Inspection;
pub use self::presence::{Presence, Registered};
pub use self::progress::ProgressStore;
pub use self::queue::Queue;
pub use self::rate_limits::{
    Limit, RateAnswer, RateLimits, RateScope, RateState, ServiceRateLimit, MAX_RATE_LIMITS_LISTED,
};
pub use self::reader::{CompletedAndTaken, PushedAndPopped, Reader};
pub use self::schedule::{LifecyclePoll, Schedule};
pub use self::shard_counts::{ShardCount, ShardCounts, ShardOp};
pub use self::tick::{TickAnswer, TickMode, TickOutcome, TickRequest};
/// Dead letters kept per queue; the oldest go first (approximately, on Redis).
pub use rpc_protocol::stream::DEAD_LETTER_CAP;
