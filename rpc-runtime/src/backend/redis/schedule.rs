//! The schedule: jobs that must not run yet wait in a per-service sorted
//! set, never in the consumer group, so no lease timeout can hand them out
//! early (Celery on Redis runs ETA jobs twice for exactly that reason).
//!
//! Keys, under the service's hash tag so the scripts touch one slot:
//! `P:{Service}:schedule` (sorted set: entry token scored by the time it is
//! due, ms on Redis's clock) and `P:{Service}:scheduled` (hash: entry token
//! -> job message). Workers add entries (a delayed call taken before its
//! time, a retry with backoff: `complete.lua`'s step `S`, due after a delay
//! measured on Redis's clock); `scripts/poll.lua`, the worker's regular look
//! at a service, moves due entries onto the jobs stream atomically, so of
//! many workers racing each job moves exactly once, dead-letters entries
//! that would never run, and on the way reports what else a worker must
//! follow: the next due time, the pause flag and new cancellations
//! (`cancel.rs`, `pause.rs`).

use redis::{Script, Value};

use super::connect::RedisBackend;
use super::values::{as_int, as_string};
use crate::backend::{LifecyclePoll, DEAD_LETTER_CAP};
use crate::error::Error;
use rpc_protocol::limits::MAX_DELAY_MS;

/// How far ahead of now a scheduled entry may be due: the longest delay a
/// call may ask for, and a day to spare. Anything later is garbage.
const HORIZON_MS: u64 = MAX_DELAY_MS + 24 * 60 * 60 * 1000;

fn poll_script() -> &'static Script {
    super::scripts::compiled(&rpc_protocol::scripts::POLL)
}

impl RedisBackend {
    /// One lifecycle poll of `queue` (see `scripts/poll.lua`).
    pub(super) async fn poll(
        &self,
        queue: &str,
        max_move: usize,
        cancelled_after_ms: u64,
        max_cancelled: usize,
        sweep: Option<&str>,
    ) -> Result<LifecyclePoll, Error> {
        let mut invocation = poll_script().prepare_invoke();
        invocation
            .key(self.keys.schedule(queue))
            .key(self.keys.scheduled(queue))
            .key(self.keys.jobs(queue))
            .key(self.keys.cancelled(queue))
            .key(self.keys.paused(queue))
            .key(self.keys.dead(queue))
            .arg(max_move.max(1))
            .arg(cancelled_after_ms)
            .arg(max_cancelled.max(1))
            .arg(HORIZON_MS)
            .arg(DEAD_LETTER_CAP)
            .arg(sweep.unwrap_or(""));
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
        if moved > 0 {
            // Due jobs landed on the stream: on a Cluster, wake the
            // workers waiting on this queue's doorbell (`doorbell.rs`).
            self.doorbell.ring(queue).await;
        }
        let dead_lettered = int(6).unwrap_or(0).max(0) as usize;
        if dead_lettered > 0 {
            tracing::warn!(
                queue,
                dead_lettered,
                "dead-lettered scheduled entries that would never run (due beyond the horizon, or without a due time)"
            );
        }
        let sweep_cursor = parts
            .get(7)
            .and_then(as_string)
            .filter(|c| !c.is_empty() && c != "0");
        Ok(LifecyclePoll {
            now_ms: now_ms.max(0) as u64,
            moved: moved.max(0) as usize,
            next_due_ms: (next_due >= 0).then_some(next_due as u64),
            paused: paused == 1,
            cancelled,
            dead_lettered,
            sweep_cursor,
            // Only the bits of lanes 1, 2, 4 and 5 mean anything.
            lanes: (int(8).unwrap_or(0) & 0b1_1011) as u8,
        })
    }
}
