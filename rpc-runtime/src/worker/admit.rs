//! What a job message asks of the worker before its handler may run: a
//! delayed call taken before its time goes onto the schedule, and a call
//! with an idempotency key claims the key (or is answered with the call
//! that holds it).
//!
//! Both happen here, in the worker, rather than in the client, because the
//! client ACL role may not write the schedule or the keys: a client that
//! could would be able to rewrite another caller's scheduled call, or plant
//! a key that hands another caller its own result (docs/SECURITY.md). The
//! worker writes both from a message it has checked, and computes the
//! fingerprint itself from the parameters it would run.
//!
//! A key held under this very call's id is this call's only when the
//! delivery is the claiming call again: redelivered (its worker died or
//! stalled after the claim) or a retry. A fresh entry of the same message
//! (a sender that sent again, unsure its first send landed, or anyone
//! replaying it) is a second copy, which must not run a second time. The
//! order of the checks in `job.rs` makes this hold: a delayed call goes
//! on the schedule, and a job this worker does not know is handed back,
//! before the key is claimed, so no message claims and then comes back as
//! a fresh entry to find itself holding the key. For the same reason a
//! claim the broker did not answer (the connection failed: the `SET` may
//! or may not have landed) is tried again within the same delivery,
//! where a key found under this call's own id is this call's, rather than
//! put back on the schedule as a fresh entry that would take itself for a
//! copy and never run.

use std::time::Duration;

use rpc_protocol::fingerprint::fingerprint;
use rpc_protocol::job::JobMessage;
use rpc_protocol::limits::MAX_DELAY_MS;

use super::shared::Shared;

use crate::backend::{Delivery, OnceClaim};
use crate::call::CallOptions;

/// How long a call whose key could not be claimed (the broker failed
/// for all of [`CLAIM_PATIENCE`]) waits on the schedule before a worker
/// tries again.
const CLAIM_RETRY: Duration = Duration::from_secs(1);

/// How long a delivery keeps trying to claim its key while the broker
/// does not answer (its lease is renewed meanwhile), and the first and
/// longest pauses between tries.
const CLAIM_PATIENCE: Duration = Duration::from_secs(30);
const CLAIM_PAUSE_FIRST: Duration = Duration::from_millis(100);
const CLAIM_PAUSE_MAX: Duration = Duration::from_secs(4);

/// What to do with a message before its handler runs.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Admission {
    /// Run it (its idempotency key, if it has one, is this call's).
    Run,
    /// Not yet: put it on the schedule for this long (a delayed call that
    /// came early; a claim the broker could not answer).
    Later(Duration),
    /// It cannot run, for this reason: dead-letter it (an absurd start,
    /// beyond the longest delay; a key Redis refuses to claim).
    Refuse(String),
    /// Its key is held by this call for the same job and parameters:
    /// answer with that call's id.
    Held(String),
    /// A second copy of the message of the call that holds its key: it
    /// does not run; its caller is pointed at the call's own kept result,
    /// which the first copy writes.
    Copy,
    /// Its key is held by this call for other parameters (or another
    /// job). The holder is for the worker's log only.
    Conflict(String),
}

/// Whether a delayed call is due: `Later` until its `run_at_ms` on the
/// broker's clock.
pub(super) fn when_due(shared: &Shared, msg: &JobMessage<'_>) -> Admission {
    let Some(run_at) = msg.run_at_ms else {
        return Admission::Run;
    };
    let now = shared.clock.now_ms();
    if run_at <= now {
        return Admission::Run;
    }
    if run_at - now > MAX_DELAY_MS + 60_000 {
        return Admission::Refuse(format!(
            "`run_at_ms` {run_at} is more than 366 days after now ({now} on the broker's clock): it would never run"
        ));
    }
    Admission::Later(Duration::from_millis(run_at - now))
}

/// How long the call's result is kept (`None`: not kept): its
/// `result_ttl_ms`, and for a call with an idempotency key at least as long
/// as the key is held, so a duplicate sent while the key lives finds the
/// result of the call it is answered with, whatever its sender asked.
pub(super) fn result_ttl(msg: &JobMessage<'_>) -> Option<Duration> {
    let asked = Duration::from_millis(msg.result_ttl_ms);
    let ttl = match msg.idempotency_key {
        Some(_) => asked.max(key_ttl(msg)),
        None => asked,
    };
    (!ttl.is_zero()).then_some(ttl)
}

/// How long the message's idempotency key is held once claimed.
fn key_ttl(msg: &JobMessage<'_>) -> Duration {
    msg.idempotency_ttl_ms
        .map_or(CallOptions::DEFAULT_IDEMPOTENCY_TTL, Duration::from_millis)
}

/// The fingerprint of a keyed call (`None` for a call without a key):
/// claimed with its key, and said in every reply the call gets.
pub(super) fn fingerprint_of(msg: &JobMessage<'_>) -> Option<String> {
    msg.idempotency_key.as_ref()?;
    fingerprint(&msg.job, msg.params.get())
}

/// Claims the message's idempotency key, if it has one, for its call
/// (`fingerprint`: see [`fingerprint_of`]; `left`: the call's time left,
/// if it has a deadline).
pub(super) async fn claim(
    shared: &Shared,
    delivery: &Delivery,
    msg: &JobMessage<'_>,
    fingerprint: Option<&str>,
    left: Option<Duration>,
) -> Admission {
    let Some(key) = msg.idempotency_key.as_deref() else {
        return Admission::Run;
    };
    let Some(fingerprint) = fingerprint else {
        // Cannot happen: `params` was read as JSON.
        return Admission::Refuse("the parameters are not JSON".to_owned());
    };
    let ttl = key_ttl(msg);
    // Past the call's deadline there is nothing left to wait for; the
    // pauses never outlast it.
    let patience = left.map_or(CLAIM_PATIENCE, |left| left.min(CLAIM_PATIENCE));
    let give_up = tokio::time::Instant::now() + patience;
    let mut pause = CLAIM_PAUSE_FIRST;
    let mut tried = false;
    loop {
        let claimed = shared
            .backend
            .claim_once(&delivery.queue, key, &msg.id, fingerprint, ttl)
            .await;
        match claimed {
            Ok(OnceClaim::Claimed) => return Admission::Run,
            Ok(OnceClaim::Held { id, same: true }) if id == msg.id => {
                // An earlier try of this delivery may have landed unheard.
                return if tried || is_the_claiming_call_again(delivery, msg) {
                    Admission::Run
                } else {
                    Admission::Copy
                };
            }
            Ok(OnceClaim::Held { id, same: true }) => return Admission::Held(id),
            Ok(OnceClaim::Held { id, same: false }) => return Admission::Conflict(id),
            Ok(OnceClaim::Refused(reason)) => {
                return Admission::Refuse(format!(
                    "the idempotency key {key:?} cannot be claimed: Redis refused it ({reason}); the call did not run"
                ))
            }
            Err(e) => {
                tried = true;
                let now = tokio::time::Instant::now();
                if now + pause > give_up {
                    tracing::warn!(id = %msg.id, error = %e, "could not claim an idempotency key; putting the call back on the schedule");
                    return Admission::Later(CLAIM_RETRY);
                }
                tracing::warn!(id = %msg.id, error = %e, "could not claim an idempotency key; trying again shortly");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(CLAIM_PAUSE_MAX);
            }
        }
    }
}

/// Whether a delivery whose key its own call id holds (same fingerprint)
/// is the call that claimed it: a redelivery of the same entry, or a
/// retry. Anything else is a fresh entry of the same message.
fn is_the_claiming_call_again(delivery: &Delivery, msg: &JobMessage<'_>) -> bool {
    delivery.deliveries > 1 || msg.attempt > 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_redelivery_or_a_retry_is_the_claiming_call_again() {
        let delivery = |deliveries| Delivery {
            queue: "S".into(),
            token: "1-1".into(),
            payload: Vec::new(),
            deliveries,
            enqueued_ms: None,
            cancelled: false,
        };
        let message = |extra: &str| {
            format!(r#"{{"v":2,"id":"c","job":"S.j","params":{{}},"idempotency_key":"k"{extra}}}"#)
        };
        let fresh = message("");
        let fresh = JobMessage::decode(fresh.as_bytes()).unwrap();
        assert!(!is_the_claiming_call_again(&delivery(1), &fresh));
        assert!(is_the_claiming_call_again(&delivery(2), &fresh));
        let retry = message(r#","attempt":2"#);
        let retry = JobMessage::decode(retry.as_bytes()).unwrap();
        assert!(is_the_claiming_call_again(&delivery(1), &retry));
        // A hand-back never claimed (it is handed back before the claim),
        // so a handed-back copy of a message is a copy like any other.
        let handed_back = message(r#","handoffs":3"#);
        let handed_back = JobMessage::decode(handed_back.as_bytes()).unwrap();
        assert!(!is_the_claiming_call_again(&delivery(1), &handed_back));
    }
}
