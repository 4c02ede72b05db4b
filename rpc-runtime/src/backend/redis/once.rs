//! Idempotency keys: of the calls sent with one key, the first a worker
//! takes claims it and runs; the others are answered with the holder's id
//! (or a conflict, for other parameters) and never run.
//!
//! The claim is made by the worker, not the client: a client role that
//! could write these keys could plant one naming its own call for another
//! caller's key (and so hand that caller its result), and the fingerprint
//! a worker computes from the parameters it will run cannot be forged.
//! One command claims atomically: `SET P:{Service}:once:<key> "<call id>
//! <fingerprint>" NX PX <ttl> GET` sets the key if it is free and answers
//! what it held otherwise, so of any number of racing workers exactly one
//! claims it.
//!
//! A key held under the claiming call's own id is reported as held: only
//! the worker knows whether its delivery is the call that claimed it
//! (redelivered, or a retry) or a second copy of its message. The one case
//! this module settles itself is its own second try: a `SET` sent again
//! after the connection failed under the first may be reading the first.
//! Redis refusing the claim for good (`WRONGTYPE`: a key of another type
//! there) is said apart from a failure that may pass, so the call is
//! answered instead of tried again every second, for ever.

use std::time::Duration;

use redis::Value;

use super::completion::classify;
use super::connect::RedisBackend;
use crate::backend::{CompleteError, OnceClaim};
use crate::error::Error;

impl RedisBackend {
    /// Claims `key` for call `id` unless another call holds it.
    pub(super) async fn claim(
        &self,
        queue: &str,
        key: &str,
        id: &str,
        fingerprint: &str,
        ttl: Duration,
    ) -> Result<OnceClaim, Error> {
        let mut set = redis::cmd("SET");
        set.arg(self.keys.once(queue, key))
            .arg(format!("{id} {fingerprint}"))
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .arg("GET");
        let (answer, retried) = self.commands.query_told_of_retry::<Value>(&set).await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(e) => {
                return match classify(&e) {
                    CompleteError::Refused { reason, .. } => Ok(OnceClaim::Refused(reason)),
                    CompleteError::Transient(reason) => Err(Error::Broker(reason)),
                }
            }
        };
        let held = match answer {
            Value::Nil => return Ok(OnceClaim::Claimed),
            Value::BulkString(held) => String::from_utf8_lossy(&held).into_owned(),
            Value::SimpleString(held) => held,
            other => {
                return Err(Error::Broker(format!(
                    "unexpected answer to SET ... NX GET: {other:?}"
                )))
            }
        };
        Ok(read_holder(&held, id, fingerprint, retried))
    }
}

/// What a held key's value `<call id> <fingerprint>` means for call `id`
/// (`retried`: the `SET` was sent twice). A value not of that form
/// (garbage) holds the key for a call that can never be attached to: a
/// conflict, with the value as the holder.
fn read_holder(held: &str, id: &str, fingerprint: &str, retried: bool) -> OnceClaim {
    let Some((holder, theirs)) = held.split_once(' ') else {
        return OnceClaim::Held {
            id: held.chars().take(256).collect(),
            same: false,
        };
    };
    let same = theirs == fingerprint;
    // The first try of this very claim reached Redis before its connection
    // failed: the key is this delivery's. (A second copy of the message
    // claiming at the same moment is the one case read wrongly: it runs
    // too, as it did before copies were told apart.)
    if holder == id && same && retried {
        return OnceClaim::Claimed;
    }
    OnceClaim::Held {
        id: holder.to_owned(),
        same,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_key_is_read_as_its_holder_or_as_a_conflict() {
        let held = |id: &str, same| OnceClaim::Held {
            id: id.into(),
            same,
        };
        // Held by this call's own id: the worker decides (a redelivery, or
        // a second copy of the message); a second try of this claim is it.
        assert_eq!(read_holder("c1 ab", "c1", "ab", false), held("c1", true));
        assert_eq!(read_holder("c1 ab", "c1", "ab", true), OnceClaim::Claimed);
        assert_eq!(read_holder("c1 ab", "c2", "ab", true), held("c1", true));
        assert_eq!(read_holder("c1 ab", "c1", "cd", true), held("c1", false));
        assert_eq!(
            read_holder("garbage", "c1", "ab", false),
            OnceClaim::Held {
                id: "garbage".into(),
                same: false
            }
        );
    }
}
