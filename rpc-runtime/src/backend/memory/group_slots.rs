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

/// How many queued messages after a parked one `park_ahead` looks at, in
/// chunks of how many (a chunk that parks nothing ends the look), and the
/// bytes after which it stops: read, and decoded but left queued (`AHEAD`,
/// `CHUNK`, `READ` and `WASTE` in group_admit.lua).
const AHEAD: usize = 100;
const CHUNK: usize = 10;
const READ: usize = 256 * 1024;
const WASTE: usize = 32 * 1024;

/// The job, group key and call id of a message, when it is small enough
/// to decode (16 KiB, as the script) and is not a delayed call.
fn job_key_and_id(message: &[u8]) -> Option<(String, String, String)> {
    if message.len() > 16 * 1024 {
        return None;
    }
    let fields: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(message).ok()?;
    if fields.contains_key("run_at_ms") {
        return None;
    }
    match (fields.get("job")?, fields.get("group")?, fields.get("id")?) {
        (
            serde_json::Value::String(job),
            serde_json::Value::String(key),
            serde_json::Value::String(id),
        ) => Some((job.clone(), key.clone(), id.clone())),
        _ => None,
    }
}

/// Whether `haystack` holds `needle`.
fn holds(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Parks, behind a parked message, the next calls of its job and key
/// (`this`) that no worker was handed yet (among the next `AHEAD` queued
/// on its lane, not cancelled, holding no slot: a hand-on reserved one for
/// a message it moved back), in order, as group_admit.lua does: it stops
/// after a chunk of `CHUNK` that parked nothing, or after the message by
/// which `READ` bytes were read (each entry's fields
/// and values: `m` and the message, `c` and `1` when cancelled) or `WASTE`
/// bytes of messages holding the script's marks were decoded and left.
fn park_ahead(
    state: &mut State,
    lane: &str,
    group: &(String, String, String),
    this: &(String, String, String),
) {
    let (Some(q), Some(g)) = (state.queues.get_mut(lane), state.groups.get(group)) else {
        return;
    };
    let parks = |payload: &[u8]| {
        job_key_and_id(payload).is_some_and(|(job, key, id)| {
            job == this.0 && key == this.1 && !g.running.contains_key(&id)
        })
    };
    let group_mark = format!(r#""group":"{}""#, this.1);
    let job_mark = format!(r#""job":"{}""#, this.0);
    let marked = |payload: &[u8]| {
        payload.len() <= 16 * 1024
            && holds(payload, group_mark.as_bytes())
            && holds(payload, job_mark.as_bytes())
    };
    let (mut taken, mut read, mut wasted) = (Vec::new(), 0, 0);
    let mut i = 0;
    let mut parked_before_chunk = 0;
    while i < q.ready.len() && i + taken.len() < AHEAD {
        let looked = i + taken.len();
        if looked > 0 && looked % CHUNK == 0 {
            if taken.len() == parked_before_chunk {
                break;
            }
            parked_before_chunk = taken.len();
        }
        let r = &q.ready[i];
        read += 1 + r.payload.len() + if r.cancelled { 2 } else { 0 };
        if !r.cancelled && marked(&r.payload) && parks(&r.payload) {
            taken.extend(q.ready.remove(i).map(|r| r.payload));
        } else {
            if !r.cancelled && marked(&r.payload) {
                wasted += r.payload.len();
            }
            i += 1;
        }
        if read >= READ || wasted >= WASTE {
            break;
        }
    }
    if let Some(g) = state.groups.get_mut(group) {
        g.waiting.extend(taken);
    }
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
        let ahead = job_key_and_id(&lease.payload);
        state
            .groups
            .entry(group.clone())
            .or_default()
            .waiting
            .push_back(lease.payload);
        if let Some(this) = ahead {
            park_ahead(&mut state, &delivery.queue, &group, &this);
        }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::backend::Broker;

    fn message(id: &str, job: &str, key: &str) -> Vec<u8> {
        let mut m = json!({"v": 1, "id": id, "job": format!("Q.{job}"), "group": key});
        if id == "delayed" {
            m["run_at_ms"] = json!(1);
        }
        serde_json::to_vec(&m).unwrap()
    }

    async fn take(broker: &Arc<dyn Broker>, n: usize) -> Vec<Delivery> {
        let mut reader = broker.open_reader().await.unwrap();
        reader
            .take_jobs(&["Q".to_owned()], "w1", n, Duration::ZERO)
            .await
            .unwrap()
    }

    fn ids(taken: &[Delivery]) -> Vec<String> {
        taken.iter().map(|d| call_id(&d.payload).unwrap()).collect()
    }

    /// group_admit.lua's parking ahead (tests/protocol_rules/group_admit.rs
    /// on Redis): a parked call takes the next queued calls of its job and
    /// key behind it, in order, and leaves the rest and what a worker holds.
    #[tokio::test]
    async fn a_parked_call_parks_the_queued_calls_of_its_job_and_key_behind_it() {
        let broker: Arc<dyn Broker> = MemoryBackend::named("group-slots-ahead");
        let slot = GroupSlot {
            job: "work",
            key: "A",
            limit: 1,
        };
        let lease = Duration::from_secs(60);
        let calls = [
            ("a0", "work", "A"),
            ("a1", "work", "A"),
            ("a2", "work", "A"),
            ("b1", "work", "B"),
            ("a3", "work", "A"),
            ("other", "other", "A"),
            ("delayed", "work", "A"),
            ("a4", "work", "A"),
        ];
        for (id, job, key) in calls {
            broker.push_job("Q", &message(id, job, key)).await.unwrap();
        }
        let held = take(&broker, 3).await;
        assert_eq!(ids(&held), ["a0", "a1", "a2"]);
        let admit = |d: &Delivery, id: &'static str| {
            let broker = broker.clone();
            let d = d.clone();
            async move { broker.take_group_slot(&d, id, &slot, lease).await.unwrap() }
        };
        assert_eq!(admit(&held[0], "a0").await, GroupAdmission::Run);
        assert_eq!(admit(&held[1], "a1").await, GroupAdmission::Parked);
        assert_eq!(admit(&held[2], "a2").await, GroupAdmission::Parked);
        assert_eq!(ids(&take(&broker, 10).await), ["b1", "other", "delayed"]);
        // The slot goes round in parking order: a1, then what it parked
        // ahead, then a2.
        let mut order = Vec::new();
        let mut running = "a0".to_owned();
        for _ in 0..4 {
            broker
                .release_group_slot("Q", Some(&running), &slot, lease)
                .await
                .unwrap();
            let next = take(&broker, 10).await;
            assert_eq!(next.len(), 1);
            running = ids(&next).remove(0);
            order.push(running.clone());
        }
        assert_eq!(order, ["a1", "a3", "a4", "a2"]);
    }

    /// A message a hand-on moved back holds its slot: a call parked after
    /// it leaves it queued, to run.
    #[tokio::test]
    async fn a_message_moved_back_is_not_parked_ahead() {
        let broker: Arc<dyn Broker> = MemoryBackend::named("group-slots-moved");
        let slot = GroupSlot {
            job: "work",
            key: "A",
            limit: 1,
        };
        let lease = Duration::from_secs(60);
        let admit = |d: Delivery, id: &'static str| {
            let broker = broker.clone();
            async move { broker.take_group_slot(&d, id, &slot, lease).await.unwrap() }
        };
        for id in ["a0", "a1", "a2"] {
            broker
                .push_job("Q", &message(id, "work", "A"))
                .await
                .unwrap();
        }
        let held = take(&broker, 3).await;
        assert_eq!(admit(held[0].clone(), "a0").await, GroupAdmission::Run);
        assert_eq!(admit(held[1].clone(), "a1").await, GroupAdmission::Parked);
        // a0 ends: a1 goes back onto the queue, holding the slot.
        broker
            .release_group_slot("Q", Some("a0"), &slot, lease)
            .await
            .unwrap();
        // a2, handed to a worker before that, finds the slot taken.
        assert_eq!(admit(held[2].clone(), "a2").await, GroupAdmission::Parked);
        let a1 = take(&broker, 10).await;
        assert_eq!(ids(&a1), ["a1"], "a1 is still queued");
        assert_eq!(admit(a1[0].clone(), "a1").await, GroupAdmission::Run);
    }
}
