//! Per-key concurrency, the worker's side (docs/PROTOCOL.md, "Per-key
//! concurrency"): a job message with a `group` key runs only while it
//! holds one of its key's slots, at most the job's limit across the fleet.
//! A message that finds no slot free is parked by the broker (taken off
//! the stream and appended to the key's waiting list in one step) and its
//! delivery ends without running; when a keyed job ends, its slot is given
//! back and the key's oldest waiting messages move back onto the stream.
//!
//! Fair share follows from that hand-on: a key never has more than its
//! limit of messages on the stream and running together, so a tenant with
//! ten thousand queued calls and one with ten take turns on the workers
//! rather than the ten waiting behind the ten thousand.
//!
//! The limit is the job's as this worker is configured
//! ([`WorkerBuilder::group_limit`](crate::WorkerBuilder::group_limit)),
//! else its schema's `#[group_limit]`, else 1: the message carries only
//! the key, so no sender can raise it.
//! Slots lapse after the visibility timeout unless renewed, so the slot of
//! a worker that died comes back with its job's lease; the janitor renews
//! the slots of running jobs ([`renew`]) and the lifecycle poll hands
//! lapsed slots on to waiting messages ([`sweep`]) when no completion
//! comes to do it.

use std::collections::HashMap;
use std::time::Duration;

use rpc_protocol::job::JobMessage;
use tokio::time::Instant;

use super::group_limits::Held;
use super::shared::Shared;

use crate::backend::{Delivery, GroupAdmission, GroupSlot};
use crate::sync::lock;

/// How long a keyed call whose slot could not be asked for (the broker
/// failed) waits on the schedule before a worker tries again.
const TAKE_RETRY: Duration = Duration::from_secs(1);

/// How often the lifecycle poll looks for groups whose lapsed slots could
/// take waiting messages, per queue, while this worker has lately seen
/// keyed calls of the queue ([`KEYED_LATELY`]), and how many groups it
/// looks at each time. Otherwise a queue is swept every visibility timeout
/// (at least [`IDLE_SWEEP_MIN`]): a fleet that serves no keyed calls pays a
/// read per queue that rarely, and one whose every slot holder died still
/// has its parked calls handed on.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
const SWEEP_GROUPS: usize = 32;
const KEYED_LATELY: Duration = Duration::from_secs(60);
const IDLE_SWEEP_MIN: Duration = Duration::from_secs(5);

/// The schema's `#[group_limit]` of job `job` of `service`, if mounted here.
fn schema_limit(shared: &Shared, service: &str, job: &str) -> Option<u32> {
    let service = shared.services.get(service)?;
    service.jobs().iter().find(|j| j.name == job)?.group_limit
}

/// What to do with a keyed message before its handler runs.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum GroupStep {
    /// Run it (it holds a slot, or has no key).
    Run,
    /// It was parked: its delivery ends without a completion of its own.
    Parked,
    /// The broker could not be asked: onto the schedule for this long.
    Later(Duration),
}

/// Takes a slot of the message's group key, or parks the message.
pub(super) async fn admit(shared: &Shared, delivery: &Delivery, msg: &JobMessage<'_>) -> GroupStep {
    let Some(key) = msg.group.as_deref() else {
        return GroupStep::Run;
    };
    shared
        .groups
        .saw_keyed(super::lanes::queue_of(&delivery.queue));
    let (service, job) = msg.job.split_once('.').unwrap_or(("", &msg.job));
    let slot = GroupSlot {
        job,
        key,
        limit: shared
            .groups
            .limit_of(service, job, schema_limit(shared, service, job)),
    };
    let lease = shared.settings.visibility_timeout;
    match shared
        .backend
        .take_group_slot(delivery, &msg.id, &slot, lease)
        .await
    {
        Ok(GroupAdmission::Run) => {
            lock(&shared.groups.held).insert(
                (delivery.queue.clone(), delivery.token.clone()),
                Held {
                    id: msg.id.to_string(),
                    job: job.to_owned(),
                    key: key.to_owned(),
                    limit: slot.limit,
                },
            );
            GroupStep::Run
        }
        Ok(GroupAdmission::Parked) => {
            tracing::debug!(id = %msg.id, job = %msg.job, key, limit = slot.limit, "every slot of the call's group key is taken; parked");
            GroupStep::Parked
        }
        Err(e) => {
            shared.broker_error();
            tracing::warn!(id = %msg.id, error = %e, "could not take a slot of the call's group key; putting the call back on the schedule");
            GroupStep::Later(TAKE_RETRY)
        }
    }
}

/// Gives back the slot `delivery`'s job held, if it held one, moving the
/// key's waiting messages on. Sent off on its own task, beside the job's
/// completion rather than before it: the handler is done, so the slot is
/// free, and the completion keeps its place in the worker's batch. A
/// stopping worker waits for it as for a completion; a failure is logged,
/// and the slot then lapses after the visibility timeout and the sweep
/// hands it on.
pub(super) fn release(shared: &Shared, delivery: &Delivery) {
    let held = lock(&shared.groups.held).remove(&(delivery.queue.clone(), delivery.token.clone()));
    let Some(held) = held else {
        return;
    };
    let backend = shared.backend.clone();
    let lease = shared.settings.visibility_timeout;
    let queue = delivery.queue.clone();
    let in_flight = shared.outstanding.enter();
    tokio::spawn(async move {
        let _in_flight = in_flight;
        let slot = GroupSlot {
            job: &held.job,
            key: &held.key,
            limit: held.limit,
        };
        if let Err(e) = backend
            .release_group_slot(&queue, Some(&held.id), &slot, lease)
            .await
        {
            tracing::warn!(id = %held.id, error = %e, "could not give back a slot of a group key; it lapses after the visibility timeout");
        }
    });
}

/// Gives back the slot a keyed message may hold without having taken it
/// here: a message moved back from its key's waiting list reserved a slot
/// as it moved, and one that ends before it reaches [`admit`] (cancelled
/// while it waited, out of attempts) would leave the reservation to block
/// the key until it lapsed.
pub(super) fn release_reserved(shared: &Shared, delivery: &Delivery, msg: &JobMessage<'_>) {
    let Some(key) = msg.group.as_deref() else {
        return;
    };
    shared
        .groups
        .saw_keyed(super::lanes::queue_of(&delivery.queue));
    let (service, job) = msg.job.split_once('.').unwrap_or(("", &msg.job));
    let limit = shared
        .groups
        .limit_of(service, job, schema_limit(shared, service, job));
    lock(&shared.groups.held).insert(
        (delivery.queue.clone(), delivery.token.clone()),
        Held {
            id: msg.id.to_string(),
            job: job.to_owned(),
            key: key.to_owned(),
            limit,
        },
    );
    release(shared, delivery);
}

/// The largest message parking ahead moves (`park_ahead` in
/// group_admit.lua decodes nothing larger).
const PARKED_AHEAD_MAX_BYTES: usize = 16 * 1024;

/// Gives back the slot a keyed message the checks refused (unreadable, a
/// `reply_to` that is no inbox, another protocol version) may hold:
/// parking ahead moves calls no worker has checked onto their key's
/// waiting list, and the hand-on that moves one back reserves a slot under
/// its id, which would block the key until it lapsed. The message is read
/// as the script read it: any JSON object with a string `id`, a `job` of
/// this queue's service and a valid `group` key (a member given twice
/// counts as its last), whatever else it holds.
pub(super) fn release_refused(shared: &Shared, delivery: &Delivery) {
    if delivery.payload.len() > PARKED_AHEAD_MAX_BYTES {
        return;
    }
    let Ok(fields) =
        serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&delivery.payload)
    else {
        return;
    };
    let text = |name: &str| fields.get(name).and_then(serde_json::Value::as_str);
    let (Some(id), Some(job), Some(key)) = (text("id"), text("job"), text("group")) else {
        return;
    };
    let Some((service, job)) = job.split_once('.') else {
        return;
    };
    let queue = super::lanes::queue_of(&delivery.queue);
    let well_formed = !job.is_empty()
        && job.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && service == rpc_protocol::shards::service_of_queue(queue)
        && rpc_protocol::limits::is_group_key(key)
        && !id.is_empty();
    if !well_formed {
        return;
    }
    shared.groups.saw_keyed(queue);
    let limit = shared
        .groups
        .limit_of(service, job, schema_limit(shared, service, job));
    lock(&shared.groups.held).insert(
        (delivery.queue.clone(), delivery.token.clone()),
        Held {
            id: id.to_owned(),
            job: job.to_owned(),
            key: key.to_owned(),
            limit,
        },
    );
    release(shared, delivery);
}

/// Renews the slots of this worker's running keyed jobs, with their
/// leases (the janitor's turn).
pub(super) async fn renew(shared: &Shared) {
    let mut by_queue: HashMap<String, Vec<(String, String, String)>> = HashMap::new();
    for ((queue, _), held) in lock(&shared.groups.held).iter() {
        by_queue.entry(queue.clone()).or_default().push((
            held.id.clone(),
            held.job.clone(),
            held.key.clone(),
        ));
    }
    let lease = shared.settings.visibility_timeout.as_millis() as u64;
    let until = shared.clock.now_ms().saturating_add(lease);
    for (queue, held) in by_queue {
        if let Err(e) = shared.backend.renew_group_slots(&queue, &held, until).await {
            shared.broker_error();
            tracing::warn!(error = %e, queue, "renewing slots of group keys failed");
        }
    }
}

/// Hands lapsed slots of `queue`'s groups on to their waiting messages (a
/// worker that held them died), at most every [`SWEEP_EVERY`] (see there).
pub(super) async fn sweep(shared: &Shared, queue: &str) {
    let now = Instant::now();
    let keyed_lately = lock(&shared.groups.keyed_seen)
        .get(queue)
        .is_some_and(|at| now < *at + KEYED_LATELY);
    let every = if keyed_lately {
        SWEEP_EVERY
    } else {
        shared.settings.visibility_timeout.max(IDLE_SWEEP_MIN)
    };
    {
        let mut swept = lock(&shared.groups.swept);
        if swept.get(queue).is_some_and(|at| now < *at + every) {
            return;
        }
        swept.insert(queue.to_owned(), now);
    }
    let groups = match shared.backend.groups_waiting(queue, SWEEP_GROUPS).await {
        Ok(groups) => groups,
        Err(e) => {
            shared.broker_error();
            tracing::debug!(error = %e, queue, "could not read the groups with waiting calls");
            return;
        }
    };
    let service = rpc_protocol::shards::service_of_queue(queue);
    let lease = shared.settings.visibility_timeout;
    for (job, key) in groups {
        let slot = GroupSlot {
            job: &job,
            key: &key,
            limit: shared
                .groups
                .limit_of(service, &job, schema_limit(shared, service, &job)),
        };
        match shared
            .backend
            .release_group_slot(queue, None, &slot, lease)
            .await
        {
            Ok(0) => {}
            Ok(moved) => {
                tracing::debug!(
                    queue,
                    job,
                    key,
                    moved,
                    "lapsed slots of a group key handed on to waiting calls"
                )
            }
            Err(e) => {
                shared.broker_error();
                tracing::debug!(error = %e, queue, "could not hand lapsed group slots on");
            }
        }
    }
}
