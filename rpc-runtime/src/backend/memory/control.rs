//! The memory broker's levers: cancellations (a scheduled call is moved
//! onto its queue flagged), pause flags, idempotency keys, dead letters:
//! each its queue's, shared by the queue's priority lanes (`lanes.rs`).

use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use rpc_protocol::limits::CANCEL_MEMORY;

use super::lanes::lane_free;
use super::registry::MemoryBackend;
use crate::backend::control::{Cancelled, Control, DeadLetter, OnceClaim};
use crate::error::Error;

#[async_trait]
impl Control for MemoryBackend {
    async fn cancel_job(&self, queue: &str, id: &str) -> Result<Cancelled, Error> {
        let now_ms = rpc_protocol::time::unix_ms(SystemTime::now());
        let forget_before = now_ms.saturating_sub(CANCEL_MEMORY.as_millis() as u64);
        // The mark is the queue's, so the worker of any of its lanes sees
        // it; a scheduled call goes back onto the default lane flagged (as
        // cancel.lua does).
        let queue = lane_free(queue);
        let mut state = self.state();
        let marks = state.cancelled.entry(queue.to_owned()).or_default();
        marks.insert(id.to_owned(), now_ms);
        marks.retain(|_, at| *at > forget_before);
        let scheduled = state.scheduled.get_mut(queue).and_then(|s| s.remove(id));
        let Some((_, payload)) = scheduled else {
            return Ok(Cancelled::Marked);
        };
        state.enqueue(queue, payload, true);
        drop(state);
        self.shared.jobs_ready.notify_waiters();
        Ok(Cancelled::Unscheduled)
    }

    async fn cancelled_at(&self, queue: &str, id: &str) -> Result<Option<u64>, Error> {
        Ok(self
            .state()
            .cancelled
            .get(lane_free(queue))
            .and_then(|c| c.get(id).copied()))
    }

    async fn set_paused(&self, queue: &str, paused: bool) -> Result<bool, Error> {
        let queue = lane_free(queue);
        let mut state = self.state();
        Ok(if paused {
            state.paused.insert(queue.to_owned())
        } else {
            state.paused.remove(queue)
        })
    }

    async fn is_paused(&self, queue: &str) -> Result<bool, Error> {
        Ok(self.state().paused.contains(lane_free(queue)))
    }

    async fn claim_once(
        &self,
        queue: &str,
        key: &str,
        id: &str,
        fingerprint: &str,
        ttl: Duration,
    ) -> Result<OnceClaim, Error> {
        let now = Instant::now();
        let mut state = self.state();
        state.once.retain(|_, (_, _, until)| *until > now);
        let key = (lane_free(queue).to_owned(), key.to_owned());
        if let Some((holder, theirs, _)) = state.once.get(&key) {
            let same = theirs == fingerprint;
            return Ok(OnceClaim::Held {
                id: holder.clone(),
                same,
            });
        }
        state
            .once
            .insert(key, (id.to_owned(), fingerprint.to_owned(), now + ttl));
        Ok(OnceClaim::Claimed)
    }

    async fn dead_letters(&self, queue: &str, max: usize) -> Result<Vec<DeadLetter>, Error> {
        let state = self.state();
        Ok(state
            .dead_letters(queue)
            .map(|dead| dead.iter().take(max).cloned().collect())
            .unwrap_or_default())
    }

    async fn remove_dead_letter(&self, queue: &str, token: &str) -> Result<bool, Error> {
        let mut state = self.state();
        let Some(q) = state.queues.get_mut(lane_free(queue)) else {
            return Ok(false);
        };
        let before = q.dead.len();
        q.dead.retain(|d| d.token != token);
        Ok(q.dead.len() < before)
    }
}
