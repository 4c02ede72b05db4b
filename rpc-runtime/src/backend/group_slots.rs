//! Per-key concurrency (PROTOCOL.md, "Per-key concurrency"): a call that
//! carries a group key (a tenant, a customer, a resource) runs only while
//! it holds one of its key's slots, at most the job's limit across the
//! fleet; a call that finds none free is parked on the key's waiting list
//! and moved back onto the stream when a slot comes free.
//!
//! A capability of its own, beside [`Queue`](super::Queue), because the
//! park and the hand-on are broker-side steps that must each be atomic
//! (the entry leaves the stream as it joins the list; a freed slot and the
//! message moved into it are one step), which Redis does with
//! `scripts/group_admit.lua` and `scripts/group_release.lua` and the
//! memory broker under its lock.

use std::time::Duration;

use async_trait::async_trait;

use super::Delivery;
use crate::error::Error;

/// One group of one job: the job (its wire name inside the service), the
/// call's key, and the job's per-key limit as this worker knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupSlot<'a> {
    /// The job's wire name inside its service.
    pub job: &'a str,
    /// The call's group key (checked: [`rpc_protocol::limits::is_group_key`]).
    pub key: &'a str,
    /// The most calls of this job and key that run at once (1 to
    /// [`MAX_GROUP_LIMIT`](rpc_protocol::limits::MAX_GROUP_LIMIT)).
    pub limit: u32,
}

/// What [`GroupSlots::take_group_slot`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupAdmission {
    /// The call holds a slot: run it, then give the slot back.
    Run,
    /// No slot was free: the message left the stream (its delivery needs no
    /// completion) and waits on the key's list.
    Parked,
}

/// Slots of group keys, parked messages, and their hand-on.
#[async_trait]
pub trait GroupSlots: Send + Sync + 'static {
    /// Takes a slot of `slot`'s key for call `id` of `delivery` (kept if
    /// the call holds one already), or parks the message. The slot lapses
    /// after `lease` unless renewed or given back.
    async fn take_group_slot(
        &self,
        delivery: &Delivery,
        id: &str,
        slot: &GroupSlot<'_>,
        lease: Duration,
    ) -> Result<GroupAdmission, Error>;

    /// Gives call `id`'s slot back (`None`: only lapsed slots are freed, a
    /// sweep), then moves waiting messages of the key onto the queue while
    /// slots are free, each holding its slot for `lease`. Returns how many
    /// moved.
    async fn release_group_slot(
        &self,
        queue: &str,
        id: Option<&str>,
        slot: &GroupSlot<'_>,
        lease: Duration,
    ) -> Result<u32, Error>;

    /// Renews the slots of calls still running, each `(call id, job, key)`,
    /// to lapse at `until_ms` (broker ms); a slot already given back or
    /// lapsed is not taken again.
    async fn renew_group_slots(
        &self,
        queue: &str,
        held: &[(String, String, String)],
        until_ms: u64,
    ) -> Result<(), Error>;

    /// Up to `max` groups of `queue` with parked messages, `(job, key)`,
    /// in no particular order (what the lifecycle poll sweeps).
    async fn groups_waiting(&self, queue: &str, max: usize)
        -> Result<Vec<(String, String)>, Error>;
}
