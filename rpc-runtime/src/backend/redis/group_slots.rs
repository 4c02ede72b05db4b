//! Per-key concurrency on Redis: `scripts/group_admit.lua` takes a slot or
//! parks the message, `scripts/group_release.lua` gives a slot back and
//! moves waiting messages onto the stream, both in the slot of the queue's
//! hash tag (a Cluster too). Renewals are one `ZADD XX` per running call,
//! pipelined; the sweep reads the queue's set of groups with waiting
//! messages with `SRANDMEMBER`, so one poll reads a bounded number. A
//! message moved back onto the stream rings the queue's doorbell, as due
//! scheduled jobs do, so Cluster workers waiting on it wake.

use std::time::Duration;

use async_trait::async_trait;
use redis::Value;
use rpc_protocol::stream::GROUP;
use rpc_protocol::Keys;

use super::connect::RedisBackend;
use crate::backend::{Delivery, GroupAdmission, GroupSlot, GroupSlots};
use crate::error::Error;

impl RedisBackend {
    /// The invocation of a group script with its four keys.
    fn group_invocation<'s>(
        &self,
        script: &'s redis::Script,
        queue: &str,
        slot: &GroupSlot<'_>,
    ) -> redis::ScriptInvocation<'s> {
        let mut invocation = script.prepare_invoke();
        invocation
            .key(self.keys.group_running(queue, slot.job, slot.key))
            .key(self.keys.group_waiting(queue, slot.job, slot.key))
            .key(self.keys.groups_waiting(queue))
            .key(self.keys.jobs(queue));
        invocation
    }
}

#[async_trait]
impl GroupSlots for RedisBackend {
    async fn take_group_slot(
        &self,
        delivery: &Delivery,
        id: &str,
        slot: &GroupSlot<'_>,
        lease: Duration,
    ) -> Result<GroupAdmission, Error> {
        let script = super::scripts::compiled(&rpc_protocol::scripts::GROUP_ADMIT);
        let mut invocation = self.group_invocation(script, &delivery.queue, slot);
        invocation
            .arg(id)
            .arg(slot.limit)
            .arg(lease_ms(lease))
            .arg(GROUP)
            .arg(&delivery.token)
            .arg(&delivery.payload[..])
            .arg(Keys::group_member(slot.job, slot.key));
        let answer = self.commands.invoke(&invocation).await?;
        let [admitted, reset, moved] = three_ints(&answer, "group_admit.lua")?;
        note_reset(reset, &delivery.queue, slot);
        if moved > 0 {
            // On a Cluster, wake the workers waiting on the queue's doorbell.
            self.doorbell.ring(&delivery.queue).await;
        }
        Ok(if admitted == 1 {
            GroupAdmission::Run
        } else {
            GroupAdmission::Parked
        })
    }

    async fn release_group_slot(
        &self,
        queue: &str,
        id: Option<&str>,
        slot: &GroupSlot<'_>,
        lease: Duration,
    ) -> Result<u32, Error> {
        let script = super::scripts::compiled(&rpc_protocol::scripts::GROUP_RELEASE);
        let mut invocation = self.group_invocation(script, queue, slot);
        invocation
            .arg(id.unwrap_or(""))
            .arg(slot.limit)
            .arg(lease_ms(lease))
            .arg(Keys::group_member(slot.job, slot.key));
        let answer = self.commands.invoke(&invocation).await?;
        let [moved, reset, _] = three_ints(&answer, "group_release.lua")?;
        note_reset(reset, queue, slot);
        if moved > 0 {
            self.doorbell.ring(queue).await;
        }
        Ok(u32::try_from(moved).unwrap_or(0))
    }

    async fn renew_group_slots(
        &self,
        queue: &str,
        held: &[(String, String, String)],
        until_ms: u64,
    ) -> Result<(), Error> {
        if held.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for (id, job, key) in held {
            // XX: a slot given back or lapsed (and maybe handed on) is not
            // taken again by a renewal.
            pipe.cmd("ZADD")
                .arg(self.keys.group_running(queue, job, key))
                .arg("XX")
                .arg(until_ms)
                .arg(id)
                .ignore();
        }
        self.commands.query_pipeline(&pipe).await?;
        Ok(())
    }

    async fn groups_waiting(
        &self,
        queue: &str,
        max: usize,
    ) -> Result<Vec<(String, String)>, Error> {
        let mut cmd = redis::cmd("SRANDMEMBER");
        cmd.arg(self.keys.groups_waiting(queue)).arg(max.max(1));
        let members: Vec<String> = match self.commands.query(&cmd).await {
            Ok(members) => members,
            // A key of another type: the next release script resets it.
            Err(e) if e.code() == Some("WRONGTYPE") => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let mut groups = Vec::new();
        let mut garbage = Vec::new();
        for member in &members {
            match Keys::split_group_member(member) {
                Some((job, key)) if !job.is_empty() && rpc_protocol::limits::is_group_key(key) => {
                    groups.push((job.to_owned(), key.to_owned()))
                }
                // Not a member a worker writes: dropped, so it never
                // crowds out the real ones.
                _ => garbage.push(member),
            }
        }
        if !garbage.is_empty() {
            let mut srem = redis::cmd("SREM");
            srem.arg(self.keys.groups_waiting(queue)).arg(garbage);
            if let Err(e) = self.commands.query::<Value>(&srem).await {
                tracing::debug!(queue, error = %e, "could not drop garbage members of the groups set");
            }
        }
        Ok(groups)
    }
}

fn lease_ms(lease: Duration) -> u64 {
    u64::try_from(lease.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// The three integers a group script answers.
fn three_ints(answer: &Value, script: &str) -> Result<[i64; 3], Error> {
    let unexpected = || Error::Broker(format!("unexpected answer to {script}: {answer:?}"));
    let Value::Array(items) = answer else {
        return Err(unexpected());
    };
    let mut out = [0; 3];
    for (i, item) in items.iter().take(3).enumerate() {
        match item {
            Value::Int(n) => out[i] = *n,
            _ => return Err(unexpected()),
        }
    }
    Ok(out)
}

fn note_reset(reset: i64, queue: &str, slot: &GroupSlot<'_>) {
    if reset > 0 {
        tracing::warn!(
            queue,
            job = slot.job,
            key = slot.key,
            reset,
            "deleted group keys of the wrong type (garbage written by someone else); the key's slots start over"
        );
    }
}
