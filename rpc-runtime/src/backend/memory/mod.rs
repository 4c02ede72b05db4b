//! The in-process backend (`memory://NAME`): the same lease / ack / reclaim /
//! dead-letter semantics as Redis, in one process, for tests, demos and
//! single-binary deployments.
//!
//! Brokers are registered by name in a process-wide table so that a client
//! and a worker that both connect to `memory://default` meet. The table holds
//! weak references: a broker lives while something uses it.
//!
//! `registry.rs` finds a broker by name, `state.rs` is what it holds, and
//! one file implements each capability (`queue.rs`, `reader.rs`,
//! `schedule.rs`, `control.rs`, `inspection.rs`, `presence.rs`,
//! `progress.rs`, `rate_limits.rs`, `group_slots.rs`); `lanes.rs` names a
//! queue's priority lanes and says which state they share, and
//! `service_view.rs` reads a queue's lanes together for the inspection;
//! the operator's view of each lane's depth and of the group keys is in
//! `lane_depths.rs` and `group_keys.rs`.

mod control;
mod daily_counts;
mod failures;
mod group_keys;
mod group_slots;
mod inspection;
mod lane_depths;
mod lanes;
#[cfg(test)]
mod lanes_tests;
mod presence;
mod progress;
mod queue;
mod rate_limits;
mod reader;
mod registry;
mod schedule;
mod service_view;
mod shard_counts;
mod state;

pub use self::registry::MemoryBackend;
