//! Per-key concurrency in memory: the same slots, parking and hand-on as
//! `scripts/group_admit.lua` and `scripts/group_release.lua` on Redis,
//! each step under the broker's one lock. Slots lapse on the wall clock in
//! ms, as Redis's do on its `TIME`.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::lanes::{lane_free, lane_of_message};
use super::registry::MemoryBackend;
use super::state::{entry_number, State};
use crate::backend::{Delivery, GroupAdmission, GroupSlot, GroupSlots};
use crate::error::Error;

fn now_ms() -> u64 {
    rpc_protocol::time::unix_ms(SystemTime::now())
}

fn lease_ms(lease: Duration) -> u64 {
    u64::try_from(lease.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// A group is its queue's, shared by the queue's priority lanes
/// (`lanes.rs`).
fn group_of(queue: &str, slot: &GroupSlot<'_>) -> (String, String, String) {
    (
        lane_free(queue).to_owned(),
        slot.job.to_owned(),
        slot.key.to_owned(),
    )
}

/// The call id of a parked message, if it has a readable one.
fn call_id(message: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Id {
        id: String,
    }
    serde_json::from_slice::<Id>(message).ok().map(|m| m.id)
}

/// Moves the oldest parked messages of a group onto its queue, each onto
/// the lane of its priority, while slots are free, each holding its slot;
/// forgets a group with nothing left. Returns how many moved (the caller
/// wakes the takers).
fn refill(state: &mut State, group: &(String, String, String), limit: u32, until: u64) -> u32 {
    let limit = limit.clamp(1, rpc_protocol::limits::MAX_GROUP_LIMIT) as usize;
    let mut moving = Vec::new();
    if let Some(g) = state.groups.get_mut(group) {
        while moving.len() < limit && g.running.len() < limit {
            let Some(message) = g.waiting.pop_front() else {
                break;
            };
            if let Some(id) = call_id(&message) {
                g.running.insert(id, until);
            }
            moving.push(message);
        }
        if g.running.is_empty() && g.waiting.is_empty() {
            state.groups.remove(group);
        }
    }
    let moved = moving.len() as u32;
    for message in moving {
        let lane = lane_of_message(&group.0, &message).into_owned();
        state.enqueue(&lane, message, false);
    }
    moved
}

#[async_trait]
impl GroupSlots for MemoryBackend {
    async fn take_group_slot(
        &self,
        delivery: &Delivery,
        id: &str,
        slot: &GroupSlot<'_>,
        lease: Duration,
    ) -> Result<GroupAdmission, Error> {
        let now = now_ms();
        let until = now.saturating_add(lease_ms(lease));
        let limit = slot.limit.clamp(1, rpc_protocol::limits::MAX_GROUP_LIMIT) as usize;
        let group = group_of(&delivery.queue, slot);
        let mut state = self.state();
        let g = state.groups.entry(group.clone()).or_default();
        g.running.retain(|_, lapses| *lapses > now);
        if let Some(lapses) = g.running.get_mut(id) {
            *lapses = until;
            return Ok(GroupAdmission::Run);
        }
        if g.running.len() < limit && g.waiting.is_empty() {
            g.running.insert(id.to_owned(), until);
            return Ok(GroupAdmission::Run);
        }
        // Parked: the lease leaves the queue as the message joins the list.
        let lease = state
            .queues
            .get_mut(&delivery.queue)
            .zip(entry_number(&delivery.token))
            .and_then(|(q, token)| q.leased.remove(&token));
        let Some(lease) = lease else {
            // Completed or parked already: nothing to park.
            return Ok(GroupAdmission::Parked);
        };
        state
            .groups
            .entry(group.clone())
            .or_default()
            .waiting
            .push_back(lease.payload);
        let moved = refill(&mut state, &group, slot.limit, until);
        drop(state);
        if moved > 0 {
            self.shared.jobs_ready.notify_waiters();
        }
        Ok(GroupAdmission::Parked)
    }

    async fn release_group_slot(
        &self,
        queue: &str,
        id: Option<&str>,
        slot: &GroupSlot<'_>,
        lease: Duration,
    ) -> Result<u32, Error> {
        let now = now_ms();
        let group = group_of(queue, slot);
        let mut state = self.state();
        if let Some(g) = state.groups.get_mut(&group) {
            g.running.retain(|_, lapses| *lapses > now);
            if let Some(id) = id {
                g.running.remove(id);
            }
        }
        let moved = refill(
            &mut state,
            &group,
            slot.limit,
            now.saturating_add(lease_ms(lease)),
        );
        drop(state);
        if moved > 0 {
            self.shared.jobs_ready.notify_waiters();
        }
        Ok(moved)
    }

    async fn renew_group_slots(
        &self,
        queue: &str,
        held: &[(String, String, String)],
        until_ms: u64,
    ) -> Result<(), Error> {
        let mut state = self.state();
        for (id, job, key) in held {
            let group = (lane_free(queue).to_owned(), job.clone(), key.clone());
            if let Some(lapses) = state
                .groups
                .get_mut(&group)
                .and_then(|g| g.running.get_mut(id))
            {
                *lapses = until_ms;
            }
        }
        Ok(())
    }

    async fn groups_waiting(
        &self,
        queue: &str,
        max: usize,
    ) -> Result<Vec<(String, String)>, Error> {
        Ok(self
            .state()
            .groups
            .iter()
            .filter(|((q, _, _), g)| q == lane_free(queue) && !g.waiting.is_empty())
            .take(max)
            .map(|((_, job, key), _)| (job.clone(), key.clone()))
            .collect())
    }
}
