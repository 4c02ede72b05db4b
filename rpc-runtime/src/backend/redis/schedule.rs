//! The schedule: jobs that must not run yet wait in a per-service sorted
//! set, never in the consumer group, so no lease timeout can hand them out
//! early (Celery on Redis runs ETA jobs twice for exactly that reason).
//!
//! Keys, under the service's hash tag so the scripts touch one slot:
//! `P:{Service}:schedule` (sorted set: entry token scored by the time it is
//! due, ms on Redis's clock) and `P:{Service}:scheduled` (hash: entry token
//! -> job message). `scripts/schedule.lua` adds an entry due after a delay
//! measured on Redis's clock; `scripts/poll.lua`, the worker's regular look
//! at a service, moves due entries onto the jobs stream atomically, so of
//! many workers racing each job moves exactly once, and on the way reports
//! what else a worker must follow: the next due time, the pause flag and
//! new cancellations (`cancel.rs`, `pause.rs`).

use std::sync::OnceLock;
use std::time::Duration;

use redis::{Script, Value};

use super::cancel::cancelled_key;
use super::pause::paused_key;
use super::values::{as_int, as_string};
use super::{jobs_key, RedisBackend};
use crate::backend::LifecyclePoll;
use crate::error::Error;

/// The most cancellations one poll reports (the rest come on the next).
const CANCELLED_PER_POLL: usize = 1_000;

/// `schedule.lua`'s source.
pub(super) const SCHEDULE_SOURCE: &str = include_str!("scripts/schedule.lua");
/// `poll.lua`'s source.
pub(super) const POLL_SOURCE: &str = include_str!("scripts/poll.lua");

fn schedule_script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| Script::new(SCHEDULE_SOURCE))
}

fn poll_script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| Script::new(POLL_SOURCE))
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

    /// One lifecycle poll of `queue` (see `scripts/poll.lua`).
    pub(super) async fn poll(
        &self,
        queue: &str,
        max_move: usize,
        cancelled_after_ms: u64,
    ) -> Result<LifecyclePoll, Error> {
        let mut invocation = poll_script().prepare_invoke();
        invocation
            .key(schedule_key(&self.prefix, queue))
            .key(scheduled_key(&self.prefix, queue))
            .key(jobs_key(&self.prefix, queue))
            .key(cancelled_key(&self.prefix, queue))
            .key(paused_key(&self.prefix, queue))
            .arg(max_move.max(1))
            .arg(cancelled_after_ms)
            .arg(CANCELLED_PER_POLL);
        let reply = self.commands.invoke(&invocation).await?;
        let unexpected = || Error::Broker(format!("unexpected answer to poll.lua: {reply:?}"));
        let Value::Array(parts) = &reply else {
            return Err(unexpected());
        };
        let int = |i: usize| parts.get(i).and_then(as_int);
        let (Some(now_ms), Some(moved), Some(next_due), Some(paused)) =
            (int(0), int(1), int(2), int(3))
        else {
            return Err(unexpected());
        };
        if let Some(Value::Array(errors)) = parts.get(5) {
            for error in errors.iter().filter_map(as_string) {
                tracing::warn!(queue, error, "part of the lifecycle poll was refused");
            }
        }
        let cancelled = match parts.get(4) {
            Some(Value::Array(pairs)) => pairs
                .chunks(2)
                .filter_map(|pair| {
                    let id = as_string(pair.first()?)?;
                    let at = as_string(pair.get(1)?)?.parse::<f64>().ok()?;
                    Some((id, at.max(0.0) as u64))
                })
                .collect(),
            _ => Vec::new(),
        };
        Ok(LifecyclePoll {
            now_ms: now_ms.max(0) as u64,
            moved: moved.max(0) as usize,
            next_due_ms: (next_due >= 0).then_some(next_due as u64),
            paused: paused == 1,
            cancelled,
        })
    }
}
