//! The memory broker's schedule: due jobs moved onto the lane of their
//! priority, the pause flag, new cancellations and the lanes that exist
//! reported, periodic ticks enqueued once (onto their lane too), as
//! `poll.lua` and `tick.lua` do on Redis. Everything here is the queue's,
//! shared by its lanes (`lanes.rs`).

use std::collections::HashMap;
use std::time::SystemTime;

use async_trait::async_trait;

use super::lanes::{lane_free, lane_of_message};
use super::registry::MemoryBackend;
use super::state::PeriodicRecords;
use crate::backend::schedule::{LifecyclePoll, Schedule};
use crate::backend::tick::{TickAnswer, TickMode, TickOutcome, TickRequest};
use crate::error::Error;
use crate::periodic::stored::{read_states, PeriodicState};

#[async_trait]
impl Schedule for MemoryBackend {
    async fn poll_lifecycle(
        &self,
        queue: &str,
        max_move: usize,
        cancelled_after_ms: u64,
        max_cancelled: usize,
        _sweep: Option<&str>,
    ) -> Result<LifecyclePoll, Error> {
        // Called with a queue's name; a lane's is taken as its queue's.
        let queue = lane_free(queue);
        let now_ms = rpc_protocol::time::unix_ms(SystemTime::now());
        let mut state = self.state();
        let mut due: Vec<(u64, String)> = state
            .scheduled
            .get(queue)
            .map(|s| {
                s.iter()
                    .filter(|(_, (due, _))| *due <= now_ms)
                    .map(|(token, (due, _))| (*due, token.clone()))
                    .collect()
            })
            .unwrap_or_default();
        due.sort();
        due.truncate(max_move.max(1));
        let mut moved = 0;
        for (_, token) in due {
            let payload = state
                .scheduled
                .get_mut(queue)
                .and_then(|s| s.remove(&token));
            if let Some((_, payload)) = payload {
                let lane = lane_of_message(queue, &payload).into_owned();
                state.enqueue(&lane, payload, false);
                moved += 1;
            }
        }
        let next_due_ms = state
            .scheduled
            .get(queue)
            .and_then(|s| s.values().map(|(due, _)| *due).min());
        let mut cancelled: Vec<(String, u64)> = state
            .cancelled
            .get(queue)
            .map(|c| {
                c.iter()
                    .filter(|(_, at)| **at > cancelled_after_ms)
                    .map(|(id, at)| (id.clone(), *at))
                    .collect()
            })
            .unwrap_or_default();
        cancelled.sort_by_key(|(_, at)| *at);
        cancelled.truncate(max_cancelled.max(1));
        let paused = state.paused.contains(queue);
        let lanes = state.lane_bits(queue);
        drop(state);
        if moved > 0 {
            self.shared.jobs_ready.notify_waiters();
        }
        Ok(LifecyclePoll {
            now_ms,
            moved,
            next_due_ms,
            paused,
            cancelled,
            dead_lettered: 0,
            sweep_cursor: None,
            lanes,
        })
    }

    // The same decisions as `tick.lua`, under the state lock (so atomic
    // like the script), on this process's clock.
    async fn enqueue_tick(&self, queue: &str, tick: &TickRequest<'_>) -> Result<TickAnswer, Error> {
        let queue = lane_free(queue);
        let now = rpc_protocol::time::unix_ms(SystemTime::now());
        let outcome = {
            let mut state = self.state();
            let records = state.periodic.entry(queue.to_owned()).or_default();
            let previous = records.last.get(tick.name).copied();
            let answer = |outcome| TickAnswer {
                outcome,
                broker_now_ms: now,
                previous_ms: previous,
                unreadable_previous: None,
            };
            let store = |records: &mut PeriodicRecords| {
                records
                    .definitions
                    .insert(tick.name.to_owned(), tick.definition.to_vec());
            };
            match tick.mode {
                TickMode::Register => {
                    store(records);
                    return Ok(answer(TickOutcome::Registered));
                }
                _ if tick.tick_ms > now => return Ok(answer(TickOutcome::Early)),
                _ if previous.is_some_and(|last| last >= tick.tick_ms) => {
                    return Ok(answer(TickOutcome::AlreadyEnqueued))
                }
                TickMode::CatchUp if previous.is_none() => {
                    store(records);
                    return Ok(answer(TickOutcome::Registered));
                }
                _ => {
                    store(records);
                    records.last.insert(tick.name.to_owned(), tick.tick_ms);
                    answer(TickOutcome::Enqueued)
                }
            }
        };
        // Pushed after the lock is released, like a retry; no other tick
        // of this name can be enqueued in between (the record is written).
        self.push(&lane_of_message(queue, tick.message), tick.message.to_vec());
        Ok(outcome)
    }

    async fn periodic_jobs(&self, queue: &str) -> Result<Vec<PeriodicState>, Error> {
        let queue = lane_free(queue);
        let state = self.state();
        let Some(records) = state.periodic.get(queue) else {
            return Ok(Vec::new());
        };
        let pairs = |m: &HashMap<String, Vec<u8>>| -> Vec<(Vec<u8>, Vec<u8>)> {
            m.iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.clone()))
                .collect()
        };
        let last = records
            .last
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.to_string().into_bytes()))
            .collect();
        Ok(read_states(queue, pairs(&records.definitions), last))
    }
}
