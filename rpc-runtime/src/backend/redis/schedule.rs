//! The schedule: jobs that must not run yet wait in a per-service sorted
//! set, never in the consumer group, so no lease timeout can hand them out
//! early (Celery on Redis runs ETA jobs twice for exactly that reason).
//!
//! Keys, under the service's hash tag so the scripts touch one slot:
//! `P:{Service}:schedule` (sorted set: entry token scored by the time it is
//! due, ms on Redis's clock) and `P:{Service}:scheduled` (hash: entry token
//! -> job message). `scripts/schedule.lua` adds an entry due after a delay
//! measured on Redis's clock; `scripts/move_due.lua` moves due entries onto
//! the jobs stream atomically, so of many workers racing each job moves
//! exactly once.

use std::sync::OnceLock;
use std::time::Duration;

use redis::{Script, Value};

use super::{jobs_key, RedisBackend};
use crate::error::Error;

/// `schedule.lua`'s source.
pub(super) const SCHEDULE_SOURCE: &str = include_str!("scripts/schedule.lua");
/// `move_due.lua`'s source.
pub(super) const MOVE_DUE_SOURCE: &str = include_str!("scripts/move_due.lua");

fn schedule_script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| Script::new(SCHEDULE_SOURCE))
}

fn move_due_script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| Script::new(MOVE_DUE_SOURCE))
}

/// The schedule of `queue`: the sorted set of entry tokens.
pub(super) fn schedule_key(prefix: &str, queue: &str) -> String {
    format!("{prefix}:{{{queue}}}:schedule")
}

/// The messages of `queue`'s schedule, by entry token.
pub(super) fn scheduled_key(prefix: &str, queue: &str) -> String {
    format!("{prefix}:{{{queue}}}:scheduled")
}

impl RedisBackend {
    /// Puts `payload` on `queue`'s schedule under `token`, due after `delay`
    /// on Redis's clock; returns the due time (ms since the epoch, Redis's
    /// clock).
    pub(super) async fn add_to_schedule(
        &self,
        queue: &str,
        token: &str,
        payload: &[u8],
        delay: Duration,
    ) -> Result<u64, Error> {
        let mut invocation = schedule_script().prepare_invoke();
        invocation
            .key(schedule_key(&self.prefix, queue))
            .key(scheduled_key(&self.prefix, queue))
            .arg(token)
            .arg(payload)
            .arg(delay.as_millis() as u64);
        match self.commands.invoke(&invocation).await? {
            Value::Int(due) => Ok(due.max(0) as u64),
            other => Err(Error::Broker(format!(
                "unexpected answer to schedule.lua: {other:?}"
            ))),
        }
    }

    /// Moves up to `max` of `queue`'s due jobs onto its stream; returns how
    /// many moved.
    pub(super) async fn move_due(&self, queue: &str, max: usize) -> Result<usize, Error> {
        let mut invocation = move_due_script().prepare_invoke();
        invocation
            .key(schedule_key(&self.prefix, queue))
            .key(scheduled_key(&self.prefix, queue))
            .key(jobs_key(&self.prefix, queue))
            .arg(max.max(1));
        match self.commands.invoke(&invocation).await? {
            Value::Int(moved) => Ok(moved.max(0) as usize),
            other => Err(Error::Broker(format!(
                "unexpected answer to move_due.lua: {other:?}"
            ))),
        }
    }
}
